"""Stage 1 (entry): sales channels that turn incoming orders into ``OrderDraft``s.

``signed_webhook`` is not a plugin: it holds what the Shopify and WooCommerce channels
share, and uses only ``ordergraph.plugin_api`` like them.
"""
