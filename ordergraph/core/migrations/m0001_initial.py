"""0001: the core tables, frozen as the DDL piccolo generated for each dialect.

A migration never changes once released: later schema changes are new migrations.
"""

# ruff: noqa: E501

SQLITE = [
    'CREATE TABLE "customers" ("id" INTEGER PRIMARY KEY NOT NULL, "email" VARCHAR(254) UNIQUE NOT NULL DEFAULT \'\', "name" VARCHAR(200) NOT NULL DEFAULT \'\', "credit_limit_minor" INTEGER NOT NULL DEFAULT 0, "currency" VARCHAR(3) NOT NULL DEFAULT \'EUR\', "blocked" BOOLEAN NOT NULL DEFAULT false, "created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE TABLE "products" ("id" INTEGER PRIMARY KEY NOT NULL, "sku" VARCHAR(64) UNIQUE NOT NULL DEFAULT \'\', "name" VARCHAR(200) NOT NULL DEFAULT \'\', "list_price_minor" INTEGER NOT NULL DEFAULT 0, "currency" VARCHAR(3) NOT NULL DEFAULT \'EUR\', "stock_on_hand" INTEGER NOT NULL DEFAULT 0, "stock_reserved" INTEGER NOT NULL DEFAULT 0, "active" BOOLEAN NOT NULL DEFAULT true, "updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE TABLE "orders" ("id" INTEGER PRIMARY KEY NOT NULL, "channel" VARCHAR(32) NOT NULL DEFAULT \'\', "external_id" VARCHAR(128) NOT NULL DEFAULT \'\', "customer" INTEGER NOT NULL REFERENCES "customers" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "type" VARCHAR(32) NOT NULL DEFAULT \'standard\', "priority" VARCHAR(16) NOT NULL DEFAULT \'NORMAL\', "currency" VARCHAR(3) NOT NULL DEFAULT \'\', "subtotal_minor" INTEGER NOT NULL DEFAULT 0, "total_minor" INTEGER NOT NULL DEFAULT 0, "status" VARCHAR(32) NOT NULL DEFAULT \'\', "version" INTEGER NOT NULL DEFAULT 1, "shipping_address" JSON NOT NULL DEFAULT \'{}\', "note" TEXT NOT NULL DEFAULT \'\', "created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, "updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE INDEX orders_customer ON "orders" ("customer")',
    'CREATE INDEX orders_status ON "orders" ("status")',
    'CREATE INDEX orders_created_at ON "orders" ("created_at")',
    'CREATE TABLE "order_lines" ("id" INTEGER PRIMARY KEY NOT NULL, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "line_no" INTEGER NOT NULL DEFAULT 0, "sku" VARCHAR(64) NOT NULL DEFAULT \'\', "name" VARCHAR(200) NOT NULL DEFAULT \'\', "quantity" INTEGER NOT NULL DEFAULT 0, "unit_price_minor" INTEGER NOT NULL DEFAULT 0, "total_minor" INTEGER NOT NULL DEFAULT 0)',
    'CREATE INDEX order_lines_order ON "order_lines" ("order")',
    'CREATE TABLE "order_events" ("id" INTEGER PRIMARY KEY NOT NULL, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "type" VARCHAR(64) NOT NULL DEFAULT \'\', "from_status" VARCHAR(32) DEFAULT null, "to_status" VARCHAR(32) DEFAULT null, "actor" VARCHAR(200) NOT NULL DEFAULT \'\', "data" JSON NOT NULL DEFAULT \'{}\', "at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE INDEX order_events_order ON "order_events" ("order")',
    'CREATE TABLE "outbox" ("id" INTEGER PRIMARY KEY NOT NULL, "name" VARCHAR(100) NOT NULL DEFAULT \'\', "payload" JSON NOT NULL DEFAULT \'{}\', "status" VARCHAR(16) NOT NULL DEFAULT \'pending\', "attempts" INTEGER NOT NULL DEFAULT 0, "max_attempts" INTEGER NOT NULL DEFAULT 5, "run_after" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, "last_error" TEXT NOT NULL DEFAULT \'\', "created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, "finished_at" TIMESTAMPTZ DEFAULT null)',
    'CREATE INDEX outbox_status ON "outbox" ("status")',
    'CREATE INDEX outbox_run_after ON "outbox" ("run_after")',
    'CREATE TABLE "api_tokens" ("id" INTEGER PRIMARY KEY NOT NULL, "name" VARCHAR(200) NOT NULL DEFAULT \'\', "token_hash" VARCHAR(64) UNIQUE NOT NULL DEFAULT \'\', "role" VARCHAR(16) NOT NULL DEFAULT \'\', "customer" INTEGER REFERENCES "customers" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "team" VARCHAR(64) DEFAULT null, "created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE UNIQUE INDEX orders_channel_external_id ON "orders" ("channel", "external_id")',
    'CREATE INDEX outbox_due ON "outbox" ("status", "run_after")',
]

POSTGRES = [
    'CREATE TABLE "customers" ("id" SERIAL PRIMARY KEY NOT NULL, "email" VARCHAR(254) UNIQUE NOT NULL DEFAULT \'\', "name" VARCHAR(200) NOT NULL DEFAULT \'\', "credit_limit_minor" BIGINT NOT NULL DEFAULT 0, "currency" VARCHAR(3) NOT NULL DEFAULT \'EUR\', "blocked" BOOLEAN NOT NULL DEFAULT false, "created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE TABLE "products" ("id" SERIAL PRIMARY KEY NOT NULL, "sku" VARCHAR(64) UNIQUE NOT NULL DEFAULT \'\', "name" VARCHAR(200) NOT NULL DEFAULT \'\', "list_price_minor" BIGINT NOT NULL DEFAULT 0, "currency" VARCHAR(3) NOT NULL DEFAULT \'EUR\', "stock_on_hand" INTEGER NOT NULL DEFAULT 0, "stock_reserved" INTEGER NOT NULL DEFAULT 0, "active" BOOLEAN NOT NULL DEFAULT true, "updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE TABLE "orders" ("id" SERIAL PRIMARY KEY NOT NULL, "channel" VARCHAR(32) NOT NULL DEFAULT \'\', "external_id" VARCHAR(128) NOT NULL DEFAULT \'\', "customer" INTEGER NOT NULL REFERENCES "customers" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "type" VARCHAR(32) NOT NULL DEFAULT \'standard\', "priority" VARCHAR(16) NOT NULL DEFAULT \'NORMAL\', "currency" VARCHAR(3) NOT NULL DEFAULT \'\', "subtotal_minor" BIGINT NOT NULL DEFAULT 0, "total_minor" BIGINT NOT NULL DEFAULT 0, "status" VARCHAR(32) NOT NULL DEFAULT \'\', "version" INTEGER NOT NULL DEFAULT 1, "shipping_address" JSON NOT NULL DEFAULT \'{}\', "note" TEXT NOT NULL DEFAULT \'\', "created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, "updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE INDEX orders_customer ON "orders" USING btree ("customer")',
    'CREATE INDEX orders_status ON "orders" USING btree ("status")',
    'CREATE INDEX orders_created_at ON "orders" USING btree ("created_at")',
    'CREATE TABLE "order_lines" ("id" SERIAL PRIMARY KEY NOT NULL, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "line_no" INTEGER NOT NULL DEFAULT 0, "sku" VARCHAR(64) NOT NULL DEFAULT \'\', "name" VARCHAR(200) NOT NULL DEFAULT \'\', "quantity" INTEGER NOT NULL DEFAULT 0, "unit_price_minor" BIGINT NOT NULL DEFAULT 0, "total_minor" BIGINT NOT NULL DEFAULT 0)',
    'CREATE INDEX order_lines_order ON "order_lines" USING btree ("order")',
    'CREATE TABLE "order_events" ("id" SERIAL PRIMARY KEY NOT NULL, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "type" VARCHAR(64) NOT NULL DEFAULT \'\', "from_status" VARCHAR(32) DEFAULT null, "to_status" VARCHAR(32) DEFAULT null, "actor" VARCHAR(200) NOT NULL DEFAULT \'\', "data" JSON NOT NULL DEFAULT \'{}\', "at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE INDEX order_events_order ON "order_events" USING btree ("order")',
    'CREATE TABLE "outbox" ("id" SERIAL PRIMARY KEY NOT NULL, "name" VARCHAR(100) NOT NULL DEFAULT \'\', "payload" JSON NOT NULL DEFAULT \'{}\', "status" VARCHAR(16) NOT NULL DEFAULT \'pending\', "attempts" INTEGER NOT NULL DEFAULT 0, "max_attempts" INTEGER NOT NULL DEFAULT 5, "run_after" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, "last_error" TEXT NOT NULL DEFAULT \'\', "created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, "finished_at" TIMESTAMPTZ DEFAULT null)',
    'CREATE INDEX outbox_status ON "outbox" USING btree ("status")',
    'CREATE INDEX outbox_run_after ON "outbox" USING btree ("run_after")',
    'CREATE TABLE "api_tokens" ("id" SERIAL PRIMARY KEY NOT NULL, "name" VARCHAR(200) NOT NULL DEFAULT \'\', "token_hash" VARCHAR(64) UNIQUE NOT NULL DEFAULT \'\', "role" VARCHAR(16) NOT NULL DEFAULT \'\', "customer" INTEGER REFERENCES "customers" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "team" VARCHAR(64) DEFAULT null, "created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE UNIQUE INDEX orders_channel_external_id ON "orders" ("channel", "external_id")',
    'CREATE INDEX outbox_due ON "outbox" ("status", "run_after")',
]
