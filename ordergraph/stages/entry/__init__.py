"""Stage 1, entry: what channels hand in, and the master data orders refer to.

- ``inbox``: what a channel received but could not turn into an order, kept with its
  reasons until an operator replays it, and the webhook deliveries already seen;
- ``masterdata``: products and customers, upserted by their natural keys.

Records: ``import_errors`` and ``webhook_deliveries`` (``tables``), and the rows of the
kernel's ``customers`` and ``products``. Submitting an order is the kernel's
(``core.orders.submit_order``); the channels are plugins.
"""
