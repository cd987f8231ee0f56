"""0013: the analytics stage's rollups and per-order facts, kept from the timeline.

The rollups start empty; ``ordergraph analytics rebuild`` fills them from the orders
already stored."""

# ruff: noqa: E501


def _tables(pk: str) -> list[str]:
    return [
        f'CREATE TABLE "analytics_orders" ("id" {pk}, "order_id" INTEGER UNIQUE NOT NULL DEFAULT 0, "channel" VARCHAR(32) NOT NULL DEFAULT \'\', "order_type" VARCHAR(32) NOT NULL DEFAULT \'\', "priority" VARCHAR(16) NOT NULL DEFAULT \'\', "country" VARCHAR(2) NOT NULL DEFAULT \'\', "currency" VARCHAR(3) NOT NULL DEFAULT \'\', "team" VARCHAR(64) NOT NULL DEFAULT \'\', "person" VARCHAR(200) NOT NULL DEFAULT \'\', "carrier" VARCHAR(64) NOT NULL DEFAULT \'\', "status" VARCHAR(32) NOT NULL DEFAULT \'\', "status_since" BIGINT NOT NULL DEFAULT 0, "received_at" BIGINT NOT NULL DEFAULT 0, "approved_at" BIGINT NOT NULL DEFAULT 0, "shipped_at" BIGINT NOT NULL DEFAULT 0, "delivered_at" BIGINT NOT NULL DEFAULT 0)',
        'CREATE INDEX analytics_orders_status ON "analytics_orders" ("status", "status_since")',
        'CREATE INDEX analytics_orders_team_status ON "analytics_orders" ("team", "status", "status_since")',
        f'CREATE TABLE "analytics_rollups" ("id" {pk}, "day" VARCHAR(10) NOT NULL DEFAULT \'\', "metric" VARCHAR(16) NOT NULL DEFAULT \'\', "detail" VARCHAR(200) NOT NULL DEFAULT \'\', "team" VARCHAR(64) NOT NULL DEFAULT \'\', "dimension" VARCHAR(16) NOT NULL DEFAULT \'all\', "value" VARCHAR(200) NOT NULL DEFAULT \'\', "currency" VARCHAR(3) NOT NULL DEFAULT \'\', "bucket" INTEGER NOT NULL DEFAULT -1, "n" BIGINT NOT NULL DEFAULT 0, "total" BIGINT NOT NULL DEFAULT 0)',
        # The key every upsert merges on, and the range every KPI reads: one dimension,
        # one team (or every team's, '*'), a span of days and months.
        'CREATE UNIQUE INDEX analytics_rollups_key ON "analytics_rollups" ("dimension", "team", "day", "metric", "value", "detail", "currency", "bucket")',
    ]


SQLITE = _tables("INTEGER PRIMARY KEY NOT NULL")
POSTGRES = _tables("SERIAL PRIMARY KEY NOT NULL")
