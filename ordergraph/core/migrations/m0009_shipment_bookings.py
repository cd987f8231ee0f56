"""0009: buying labels: a shipment's booking with its carrier, and the label bought."""

# ruff: noqa: E501


def _tables(serial: str, btree: str, blob: str) -> list[str]:
    return [
        f'CREATE TABLE "shipment_bookings" ("id" {serial} PRIMARY KEY NOT NULL, "shipment" INTEGER UNIQUE NOT NULL REFERENCES "shipments" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "carrier" VARCHAR(64) NOT NULL DEFAULT \'\', "state" VARCHAR(16) NOT NULL DEFAULT \'pending\', "attempts" INTEGER NOT NULL DEFAULT 0, "last_error" TEXT NOT NULL DEFAULT \'\', "tracking_number" VARCHAR(128) NOT NULL DEFAULT \'\', "label" {blob} DEFAULT null, "label_format" VARCHAR(16) NOT NULL DEFAULT \'\', "requested_at" TIMESTAMPTZ DEFAULT null, "booked_at" TIMESTAMPTZ DEFAULT null)',
        f'CREATE INDEX shipment_bookings_order ON "shipment_bookings" {btree}("order")',
    ]


SQLITE = _tables("INTEGER", "", "BLOB")
POSTGRES = _tables("SERIAL", "USING btree ", "BYTEA")
