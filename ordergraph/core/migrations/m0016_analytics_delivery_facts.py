"""0016: what an order's facts must remember for first-attempt delivery and OTIF: its
failed delivery attempts so far, and whether a short pick cancelled part of it.

Orders stored before it count as delivered at the first attempt and in full until
``ordergraph analytics rebuild`` reads their timelines again."""

_COLUMNS = [
    'ALTER TABLE "analytics_orders" ADD COLUMN "failed_deliveries" INTEGER NOT NULL DEFAULT 0',
    'ALTER TABLE "analytics_orders" ADD COLUMN "cut_short" INTEGER NOT NULL DEFAULT 0',
]

SQLITE = _COLUMNS
POSTGRES = _COLUMNS
