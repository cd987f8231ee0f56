"""0005: a webhook delivery is its id and the digest of its body, so a new order sent
under a delivery id used before is imported instead of taken for a redelivery."""

# ruff: noqa: E501

SQLITE = [
    'ALTER TABLE "webhook_deliveries" ADD COLUMN "body_sha256" VARCHAR(64) NOT NULL DEFAULT \'\'',
    "DROP INDEX webhook_deliveries_channel_delivery",
    'CREATE UNIQUE INDEX webhook_deliveries_channel_delivery_body ON "webhook_deliveries" ("channel", "delivery_id", "body_sha256")',
]

POSTGRES = [
    'ALTER TABLE "webhook_deliveries" ADD COLUMN "body_sha256" VARCHAR(64) NOT NULL DEFAULT \'\'',
    "DROP INDEX webhook_deliveries_channel_delivery",
    'CREATE UNIQUE INDEX webhook_deliveries_channel_delivery_body ON "webhook_deliveries" ("channel", "delivery_id", "body_sha256")',
]
