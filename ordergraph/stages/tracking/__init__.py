"""Stage 4, tracking: what carriers say about each shipment, what the customer is told,
and the exceptions a person must resolve.

- ``updates``: carriers' and staff's tracking events, stored once, the ETA and its
  history, the promise, and DELIVERED derived when every shipment is delivered;
- ``polling``: asking carriers on a schedule (the stage's ``Stage``);
- ``lookup``: the customer's own lookup by order number and e-mail, without a token;
- ``alerts``: exceptions owned by the order's team, opened and closed by conditions
  and by staff (stages before this one raise them through ``Runtime.alerts``);
- ``notifications``: each message about an order event sent once per recipient;
- ``webhook_endpoints``: integrators' URLs for order events.

Records (``tables``): ``shipment_tracking``, ``tracking_events``, ``eta_history``,
``alerts``, ``notifications`` and ``webhook_endpoints``.
"""
