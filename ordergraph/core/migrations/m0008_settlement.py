"""0008: stage 5, settlement: statement series and statements, the payment ledger,
delivery problems, promotions and their uses, imported bank statement lines."""

# ruff: noqa: E501


def _tables(pk: str, index_using: str) -> list[str]:
    return [
        f'CREATE TABLE "statement_series" ("id" {pk}, "series" VARCHAR(32) UNIQUE NOT NULL DEFAULT \'\', "last_number" INTEGER NOT NULL DEFAULT 0)',
        f'CREATE TABLE "statements" ("id" {pk}, "order" INTEGER UNIQUE NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "series" VARCHAR(32) NOT NULL DEFAULT \'\', "seq" INTEGER NOT NULL DEFAULT 0, "number" VARCHAR(40) UNIQUE NOT NULL DEFAULT \'\', "currency" VARCHAR(3) NOT NULL DEFAULT \'\', "total_minor" BIGINT NOT NULL DEFAULT 0, "snapshot" JSON NOT NULL DEFAULT \'{{}}\', "issued_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, "due_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
        'CREATE UNIQUE INDEX statements_series_seq ON "statements" ("series", "seq")',
        f'CREATE TABLE "ledger_entries" ("id" {pk}, "statement" INTEGER NOT NULL REFERENCES "statements" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "kind" VARCHAR(16) NOT NULL DEFAULT \'\', "amount_minor" BIGINT NOT NULL DEFAULT 0, "currency" VARCHAR(3) NOT NULL DEFAULT \'\', "method" VARCHAR(32) NOT NULL DEFAULT \'\', "reference" VARCHAR(200) NOT NULL DEFAULT \'\', "idempotency_key" VARCHAR(255) UNIQUE NOT NULL DEFAULT \'\', "fingerprint" VARCHAR(64) NOT NULL DEFAULT \'\', "actor" VARCHAR(200) NOT NULL DEFAULT \'\', "data" JSON NOT NULL DEFAULT \'{{}}\', "at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
        f'CREATE INDEX ledger_entries_statement ON "ledger_entries" {index_using}("statement")',
        f'CREATE TABLE "delivery_problems" ("id" {pk}, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "reported_by" VARCHAR(200) NOT NULL DEFAULT \'\', "description" TEXT NOT NULL DEFAULT \'\', "opened_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, "resolved_at" TIMESTAMPTZ DEFAULT null, "resolved_by" VARCHAR(200) DEFAULT null, "resolution" TEXT NOT NULL DEFAULT \'\')',
        f'CREATE INDEX delivery_problems_order ON "delivery_problems" {index_using}("order")',
        f'CREATE TABLE "promotions" ("id" {pk}, "name" VARCHAR(200) NOT NULL DEFAULT \'\', "kind" VARCHAR(64) NOT NULL DEFAULT \'\', "arguments" JSON NOT NULL DEFAULT \'{{}}\', "priority" INTEGER NOT NULL DEFAULT 0, "combinable" BOOLEAN NOT NULL DEFAULT true, "starts_at" TIMESTAMPTZ DEFAULT null, "ends_at" TIMESTAMPTZ DEFAULT null, "retired_at" TIMESTAMPTZ DEFAULT null, "coupon_code" VARCHAR(64) UNIQUE DEFAULT null, "usage_limit" INTEGER DEFAULT null, "per_customer_limit" INTEGER DEFAULT null, "uses" INTEGER NOT NULL DEFAULT 0, "created_by" VARCHAR(200) NOT NULL DEFAULT \'\', "created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
        f'CREATE TABLE "promotion_uses" ("id" {pk}, "promotion" INTEGER NOT NULL REFERENCES "promotions" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "customer" INTEGER NOT NULL REFERENCES "customers" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
        'CREATE UNIQUE INDEX promotion_uses_promotion_order ON "promotion_uses" ("promotion", "order")',
        f'CREATE INDEX promotion_uses_order ON "promotion_uses" {index_using}("order")',
        f'CREATE TABLE "bank_lines" ("id" {pk}, "line_key" VARCHAR(200) UNIQUE NOT NULL DEFAULT \'\', "source" VARCHAR(16) NOT NULL DEFAULT \'\', "booked_on" VARCHAR(10) NOT NULL DEFAULT \'\', "amount_minor" BIGINT NOT NULL DEFAULT 0, "currency" VARCHAR(3) NOT NULL DEFAULT \'\', "text" TEXT NOT NULL DEFAULT \'\', "counterparty" VARCHAR(200) NOT NULL DEFAULT \'\', "state" VARCHAR(16) NOT NULL DEFAULT \'unmatched\', "statement" INTEGER REFERENCES "statements" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "note" TEXT NOT NULL DEFAULT \'\', "imported_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
        f'CREATE INDEX bank_lines_state ON "bank_lines" {index_using}("state")',
    ]


SQLITE = _tables("INTEGER PRIMARY KEY NOT NULL", "")
POSTGRES = _tables("SERIAL PRIMARY KEY NOT NULL", "USING btree ")
