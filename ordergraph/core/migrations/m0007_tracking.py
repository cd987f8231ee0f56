"""0007: stage 4: per-shipment tracking state, tracking events, ETA history, alerts,
and the periodic jobs' schedule."""

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
        f'CREATE TABLE "alerts" ("id" {serial} PRIMARY KEY NOT NULL, "kind" VARCHAR(32) NOT NULL DEFAULT \'\', "severity" VARCHAR(16) NOT NULL DEFAULT \'warning\', "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "shipment" INTEGER REFERENCES "shipments" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "team" INTEGER REFERENCES "teams" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "owner" VARCHAR(200) DEFAULT null, "state" VARCHAR(16) NOT NULL DEFAULT \'open\', "open_key" VARCHAR(80) UNIQUE DEFAULT null, "opened_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, "due_at" TIMESTAMPTZ DEFAULT null, "acknowledged_by" VARCHAR(200) DEFAULT null, "acknowledged_at" TIMESTAMPTZ DEFAULT null, "resolved_by" VARCHAR(200) DEFAULT null, "resolved_at" TIMESTAMPTZ DEFAULT null, "resolution" TEXT NOT NULL DEFAULT \'\', "detail" JSON NOT NULL DEFAULT \'{{}}\')',
        f'CREATE INDEX alerts_order ON "alerts" {btree}("order")',
        f'CREATE INDEX alerts_state_team ON "alerts" {btree}("state", "team")',
        f'CREATE TABLE "notifications" ("id" {serial} PRIMARY KEY NOT NULL, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "event" INTEGER NOT NULL DEFAULT 0, "channel" VARCHAR(32) NOT NULL DEFAULT \'\', "recipient" VARCHAR(254) NOT NULL DEFAULT \'\', "kind" VARCHAR(32) NOT NULL DEFAULT \'\', "outcome" VARCHAR(16) NOT NULL DEFAULT \'pending\', "attempts" INTEGER NOT NULL DEFAULT 0, "last_error" TEXT NOT NULL DEFAULT \'\', "sent_at" TIMESTAMPTZ DEFAULT null, "created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
        f'CREATE UNIQUE INDEX notifications_once ON "notifications" {btree}("event", "channel", "recipient")',
        f'CREATE INDEX notifications_order ON "notifications" {btree}("order")',
        f'CREATE TABLE "periodic_jobs" ("id" {serial} PRIMARY KEY NOT NULL, "name" VARCHAR(200) UNIQUE NOT NULL DEFAULT \'\', "next_run_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, "last_started_at" TIMESTAMPTZ DEFAULT null, "last_finished_at" TIMESTAMPTZ DEFAULT null, "last_status" VARCHAR(16) NOT NULL DEFAULT \'\', "last_error" TEXT NOT NULL DEFAULT \'\')',
        f'CREATE INDEX shipments_tracking_number ON "shipments" {btree}("tracking_number")',
        # The stuck scan reads orders by priority and status that have sat since a time
        # (priority first: the review queue's partial index stays the one for ON_HOLD).
        f'CREATE INDEX orders_priority_status_updated ON "orders" {btree}("priority", "status", "updated_at")',
        # The plugin-failure scan reads the last day's events of one type.
        f'CREATE INDEX order_events_type_at ON "order_events" {btree}("type", "at")',
    ]


SQLITE = _tables("INTEGER", "")
POSTGRES = _tables("SERIAL", "USING btree ")
