"""0004: orders counted per status by triggers, and an index for every list query.

``order_status_counts`` holds, per status, the number of orders in it, spread over 16
slots (``orders.id % 16``) and summed on read: every insert, status change or delete of
an order updates its slot in the writing transaction, so the counts are exact at every
commit, and concurrent transitions of different orders mostly update different rows
instead of queueing on one. A status change updates its two rows in the order of the
status names, so two transactions never wait for each other's rows (no deadlock).

List queries read newest first (``ORDER BY id DESC``), so each filter has an index
ending in ``id``; the review queue has a partial index on the priority rank that
``graphql/review.py`` orders by (the same expression, from ``PRIORITIES``); substring
search uses trigram GIN indexes on PostgreSQL (SQLite scans for it).
"""

# ruff: noqa: E501

_RANK = "CASE priority WHEN 'URGENT' THEN 0 WHEN 'HIGH' THEN 1 WHEN 'NORMAL' THEN 2 WHEN 'LOW' THEN 3 ELSE 4 END"

_LIST_INDEXES = [
    "DROP INDEX orders_status",
    'CREATE INDEX orders_status_id ON "orders" ("status", "id")',
    "DROP INDEX orders_customer",
    'CREATE INDEX orders_customer_id ON "orders" ("customer", "id")',
    'CREATE INDEX orders_channel_id ON "orders" ("channel", "id")',
    f'CREATE INDEX orders_review_queue ON "orders" (({_RANK}), "id") WHERE status = \'ON_HOLD\'',
    "DROP INDEX import_errors_status",
    'CREATE INDEX import_errors_status_id ON "import_errors" ("status", "id")',
    'CREATE INDEX import_errors_channel_id ON "import_errors" ("channel", "id")',
]

SEED_COUNTS = 'INSERT INTO "order_status_counts" ("status", "slot", "n") SELECT "status", "id" % 16, COUNT(*) FROM "orders" GROUP BY "status", "id" % 16'

SQLITE = [
    'CREATE TABLE "order_status_counts" ("id" INTEGER PRIMARY KEY NOT NULL, "status" VARCHAR(32) NOT NULL DEFAULT \'\', "slot" INTEGER NOT NULL DEFAULT 0, "n" INTEGER NOT NULL DEFAULT 0)',
    'CREATE UNIQUE INDEX order_status_counts_status_slot ON "order_status_counts" ("status", "slot")',
    'CREATE TRIGGER orders_count_insert AFTER INSERT ON "orders" BEGIN '
    'INSERT INTO "order_status_counts" ("status", "slot", "n") VALUES (NEW."status", NEW."id" % 16, 1) ON CONFLICT ("status", "slot") DO UPDATE SET "n" = "n" + 1; '
    "END",
    'CREATE TRIGGER orders_count_update AFTER UPDATE OF "status" ON "orders" WHEN OLD."status" IS NOT NEW."status" BEGIN '
    'INSERT INTO "order_status_counts" ("status", "slot", "n") VALUES (OLD."status", OLD."id" % 16, -1) ON CONFLICT ("status", "slot") DO UPDATE SET "n" = "n" - 1; '
    'INSERT INTO "order_status_counts" ("status", "slot", "n") VALUES (NEW."status", NEW."id" % 16, 1) ON CONFLICT ("status", "slot") DO UPDATE SET "n" = "n" + 1; '
    "END",
    'CREATE TRIGGER orders_count_delete AFTER DELETE ON "orders" BEGIN '
    'INSERT INTO "order_status_counts" ("status", "slot", "n") VALUES (OLD."status", OLD."id" % 16, -1) ON CONFLICT ("status", "slot") DO UPDATE SET "n" = "n" - 1; '
    "END",
    SEED_COUNTS,
    *_LIST_INDEXES,
]

POSTGRES = [
    'CREATE TABLE "order_status_counts" ("id" SERIAL PRIMARY KEY NOT NULL, "status" VARCHAR(32) NOT NULL DEFAULT \'\', "slot" INTEGER NOT NULL DEFAULT 0, "n" BIGINT NOT NULL DEFAULT 0)',
    'CREATE UNIQUE INDEX order_status_counts_status_slot ON "order_status_counts" ("status", "slot")',
    "CREATE FUNCTION order_status_counts_add(status_ VARCHAR, slot_ INTEGER, delta BIGINT) RETURNS void LANGUAGE plpgsql AS $$ "
    "BEGIN "
    'UPDATE "order_status_counts" SET "n" = "n" + delta WHERE "status" = status_ AND "slot" = slot_; '
    "IF NOT FOUND THEN "
    'INSERT INTO "order_status_counts" ("status", "slot", "n") VALUES (status_, slot_, delta) '
    'ON CONFLICT ("status", "slot") DO UPDATE SET "n" = "order_status_counts"."n" + EXCLUDED."n"; '
    "END IF; "
    "END $$",
    "CREATE FUNCTION orders_count_status() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN "
    "IF TG_OP = 'INSERT' THEN "
    'PERFORM order_status_counts_add(NEW."status", NEW."id" % 16, 1); '
    "ELSIF TG_OP = 'DELETE' THEN "
    'PERFORM order_status_counts_add(OLD."status", OLD."id" % 16, -1); '
    'ELSIF OLD."status" < NEW."status" THEN '
    'PERFORM order_status_counts_add(OLD."status", OLD."id" % 16, -1); '
    'PERFORM order_status_counts_add(NEW."status", NEW."id" % 16, 1); '
    "ELSE "
    'PERFORM order_status_counts_add(NEW."status", NEW."id" % 16, 1); '
    'PERFORM order_status_counts_add(OLD."status", OLD."id" % 16, -1); '
    "END IF; "
    "RETURN NULL; "
    "END $$",
    'CREATE TRIGGER orders_count_insert_delete AFTER INSERT OR DELETE ON "orders" FOR EACH ROW EXECUTE FUNCTION orders_count_status()',
    'CREATE TRIGGER orders_count_update AFTER UPDATE OF "status" ON "orders" FOR EACH ROW WHEN (OLD."status" IS DISTINCT FROM NEW."status") EXECUTE FUNCTION orders_count_status()',
    SEED_COUNTS,
    *_LIST_INDEXES,
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    'CREATE INDEX orders_external_id_trgm ON "orders" USING gin ("external_id" gin_trgm_ops)',
    'CREATE INDEX customers_email_trgm ON "customers" USING gin ("email" gin_trgm_ops)',
    'CREATE INDEX customers_name_trgm ON "customers" USING gin ("name" gin_trgm_ops)',
    'CREATE INDEX products_sku_trgm ON "products" USING gin ("sku" gin_trgm_ops)',
    'CREATE INDEX products_name_trgm ON "products" USING gin ("name" gin_trgm_ops)',
]
