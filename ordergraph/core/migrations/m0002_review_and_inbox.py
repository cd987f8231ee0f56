"""0002: review findings, the import inbox and webhook delivery ids."""

# ruff: noqa: E501

SQLITE = [
    'CREATE TABLE "review_findings" ("id" INTEGER PRIMARY KEY NOT NULL, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "round" INTEGER NOT NULL DEFAULT 0, "rule" VARCHAR(100) NOT NULL DEFAULT \'\', "outcome" VARCHAR(8) NOT NULL DEFAULT \'\', "code" VARCHAR(64) NOT NULL DEFAULT \'\', "message" TEXT NOT NULL DEFAULT \'\', "customer_message" TEXT NOT NULL DEFAULT \'\', "data" JSON NOT NULL DEFAULT \'{}\', "at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE INDEX review_findings_order ON "review_findings" ("order")',
    'CREATE TABLE "import_errors" ("id" INTEGER PRIMARY KEY NOT NULL, "channel" VARCHAR(32) NOT NULL DEFAULT \'\', "reference" VARCHAR(200) NOT NULL DEFAULT \'\', "status" VARCHAR(16) NOT NULL DEFAULT \'open\', "reasons" JSON NOT NULL DEFAULT \'[]\', "payload" TEXT NOT NULL DEFAULT \'\', "attempts" INTEGER NOT NULL DEFAULT 1, "order" INTEGER REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "received_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, "updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE INDEX import_errors_status ON "import_errors" ("status")',
    'CREATE TABLE "webhook_deliveries" ("id" INTEGER PRIMARY KEY NOT NULL, "channel" VARCHAR(32) NOT NULL DEFAULT \'\', "delivery_id" VARCHAR(200) NOT NULL DEFAULT \'\', "received_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE UNIQUE INDEX import_errors_channel_reference ON "import_errors" ("channel", "reference")',
    'CREATE UNIQUE INDEX webhook_deliveries_channel_delivery ON "webhook_deliveries" ("channel", "delivery_id")',
]

POSTGRES = [
    'CREATE TABLE "review_findings" ("id" SERIAL PRIMARY KEY NOT NULL, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "round" INTEGER NOT NULL DEFAULT 0, "rule" VARCHAR(100) NOT NULL DEFAULT \'\', "outcome" VARCHAR(8) NOT NULL DEFAULT \'\', "code" VARCHAR(64) NOT NULL DEFAULT \'\', "message" TEXT NOT NULL DEFAULT \'\', "customer_message" TEXT NOT NULL DEFAULT \'\', "data" JSON NOT NULL DEFAULT \'{}\', "at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE INDEX review_findings_order ON "review_findings" USING btree ("order")',
    'CREATE TABLE "import_errors" ("id" SERIAL PRIMARY KEY NOT NULL, "channel" VARCHAR(32) NOT NULL DEFAULT \'\', "reference" VARCHAR(200) NOT NULL DEFAULT \'\', "status" VARCHAR(16) NOT NULL DEFAULT \'open\', "reasons" JSON NOT NULL DEFAULT \'[]\', "payload" TEXT NOT NULL DEFAULT \'\', "attempts" INTEGER NOT NULL DEFAULT 1, "order" INTEGER REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "received_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, "updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE INDEX import_errors_status ON "import_errors" USING btree ("status")',
    'CREATE TABLE "webhook_deliveries" ("id" SERIAL PRIMARY KEY NOT NULL, "channel" VARCHAR(32) NOT NULL DEFAULT \'\', "delivery_id" VARCHAR(200) NOT NULL DEFAULT \'\', "received_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE UNIQUE INDEX import_errors_channel_reference ON "import_errors" ("channel", "reference")',
    'CREATE UNIQUE INDEX webhook_deliveries_channel_delivery ON "webhook_deliveries" ("channel", "delivery_id")',
]
