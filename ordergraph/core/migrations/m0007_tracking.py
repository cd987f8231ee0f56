"""0007: stage 4, tracking: per-shipment tracking state, tracking events, ETA history."""

# ruff: noqa: E501


def _tables(serial: str, btree: str) -> list[str]:
    return [
        f'CREATE TABLE "shipment_tracking" ("id" {serial} PRIMARY KEY NOT NULL, "shipment" INTEGER UNIQUE NOT NULL REFERENCES "shipments" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "status" VARCHAR(32) NOT NULL DEFAULT \'pending\', "reason" VARCHAR(64) DEFAULT null, "last_event_at" TIMESTAMPTZ DEFAULT null, "delivered_at" TIMESTAMPTZ DEFAULT null, "estimated_delivery" TIMESTAMPTZ DEFAULT null, "estimate_from" TIMESTAMPTZ DEFAULT null, "estimate_to" TIMESTAMPTZ DEFAULT null, "promised_date" DATE DEFAULT null, "polls" INTEGER NOT NULL DEFAULT 0, "poll_failures" INTEGER NOT NULL DEFAULT 0, "last_polled_at" TIMESTAMPTZ DEFAULT null, "next_poll_at" TIMESTAMPTZ DEFAULT null, "poll_error" TEXT NOT NULL DEFAULT \'\', "updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
        f'CREATE INDEX shipment_tracking_order ON "shipment_tracking" {btree}("order")',
        f'CREATE INDEX shipment_tracking_next_poll ON "shipment_tracking" {btree}("next_poll_at")',
        f'CREATE TABLE "tracking_events" ("id" {serial} PRIMARY KEY NOT NULL, "shipment" INTEGER NOT NULL REFERENCES "shipments" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "occurred_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, "utc_offset_minutes" INTEGER DEFAULT null, "status" VARCHAR(32) NOT NULL DEFAULT \'\', "reason" VARCHAR(64) DEFAULT null, "code" VARCHAR(64) NOT NULL DEFAULT \'\', "description" TEXT NOT NULL DEFAULT \'\', "city" VARCHAR(128) NOT NULL DEFAULT \'\', "region" VARCHAR(128) NOT NULL DEFAULT \'\', "postal_code" VARCHAR(32) NOT NULL DEFAULT \'\', "country" VARCHAR(2) NOT NULL DEFAULT \'\', "latitude" VARCHAR(16) DEFAULT null, "longitude" VARCHAR(16) DEFAULT null, "source" VARCHAR(64) NOT NULL DEFAULT \'\', "dedupe_key" VARCHAR(64) NOT NULL DEFAULT \'\', "received_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
        f'CREATE UNIQUE INDEX tracking_events_dedupe ON "tracking_events" {btree}("shipment", "dedupe_key")',
        f'CREATE INDEX tracking_events_order ON "tracking_events" {btree}("order")',
        f'CREATE TABLE "eta_history" ("id" {serial} PRIMARY KEY NOT NULL, "shipment" INTEGER NOT NULL REFERENCES "shipments" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "estimated_delivery" TIMESTAMPTZ DEFAULT null, "estimate_from" TIMESTAMPTZ DEFAULT null, "estimate_to" TIMESTAMPTZ DEFAULT null, "source" VARCHAR(64) NOT NULL DEFAULT \'\', "recorded_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
        f'CREATE INDEX eta_history_shipment ON "eta_history" {btree}("shipment")',
    ]


SQLITE = _tables("INTEGER", "")
POSTGRES = _tables("SERIAL", "USING btree ")
