"""Stage 4 (tracking): carrier integrations implementing ``create_shipment`` and
``track_shipments``."""
