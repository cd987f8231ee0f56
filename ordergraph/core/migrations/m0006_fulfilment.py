"""0006: stage 3, processing: teams and members, assignments, tasks, shipments, bins."""

# ruff: noqa: E501

SQLITE = [
    'ALTER TABLE "products" ADD COLUMN "bin_location" VARCHAR(32) NOT NULL DEFAULT \'\'',
    'CREATE TABLE "teams" ("id" INTEGER PRIMARY KEY NOT NULL, "name" VARCHAR(64) UNIQUE NOT NULL DEFAULT \'\', "description" TEXT NOT NULL DEFAULT \'\', "last_assigned" INTEGER DEFAULT null, "created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE TABLE "team_members" ("id" INTEGER PRIMARY KEY NOT NULL, "team" INTEGER NOT NULL REFERENCES "teams" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "staff" VARCHAR(200) UNIQUE NOT NULL DEFAULT \'\', "capacity" INTEGER NOT NULL DEFAULT 10, "order_types" JSON NOT NULL DEFAULT \'[]\', "available" BOOLEAN NOT NULL DEFAULT true, "updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE INDEX team_members_team ON "team_members" ("team")',
    'CREATE TABLE "assignments" ("id" INTEGER PRIMARY KEY NOT NULL, "order" INTEGER UNIQUE NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "team" INTEGER REFERENCES "teams" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "member" INTEGER REFERENCES "team_members" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "state" VARCHAR(16) NOT NULL DEFAULT \'\', "rule" VARCHAR(200) NOT NULL DEFAULT \'\', "assigned_by" VARCHAR(200) NOT NULL DEFAULT \'\', "assigned_at" TIMESTAMPTZ DEFAULT null, "due_at" TIMESTAMPTZ DEFAULT null, "explanation" JSON NOT NULL DEFAULT \'{}\', "created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE INDEX assignments_team ON "assignments" ("team")',
    'CREATE INDEX assignments_member ON "assignments" ("member")',
    'CREATE INDEX assignments_state ON "assignments" ("state")',
    'CREATE TABLE "fulfilment_lines" ("id" INTEGER PRIMARY KEY NOT NULL, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "line_no" INTEGER NOT NULL DEFAULT 0, "sku" VARCHAR(64) NOT NULL DEFAULT \'\', "quantity" INTEGER NOT NULL DEFAULT 0, "picked" INTEGER DEFAULT null, "shipped" INTEGER NOT NULL DEFAULT 0, "cancelled" INTEGER NOT NULL DEFAULT 0, "backordered" INTEGER NOT NULL DEFAULT 0)',
    'CREATE INDEX fulfilment_lines_order ON "fulfilment_lines" ("order")',
    'CREATE TABLE "tasks" ("id" INTEGER PRIMARY KEY NOT NULL, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "kind" VARCHAR(8) NOT NULL DEFAULT \'\', "position" INTEGER NOT NULL DEFAULT 0, "state" VARCHAR(16) NOT NULL DEFAULT \'open\', "assignee" VARCHAR(200) DEFAULT null, "due_at" TIMESTAMPTZ DEFAULT null, "started_at" TIMESTAMPTZ DEFAULT null, "started_by" VARCHAR(200) DEFAULT null, "completed_at" TIMESTAMPTZ DEFAULT null, "completed_by" VARCHAR(200) DEFAULT null, "result" JSON NOT NULL DEFAULT \'{}\')',
    'CREATE INDEX tasks_order ON "tasks" ("order")',
    'CREATE TABLE "shipments" ("id" INTEGER PRIMARY KEY NOT NULL, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "carrier" VARCHAR(64) NOT NULL DEFAULT \'\', "service" VARCHAR(64) NOT NULL DEFAULT \'\', "tracking_number" VARCHAR(128) NOT NULL DEFAULT \'\', "parcels" JSON NOT NULL DEFAULT \'[]\', "created_by" VARCHAR(200) NOT NULL DEFAULT \'\', "created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE INDEX shipments_order ON "shipments" ("order")',
    'CREATE TABLE "shipment_lines" ("id" INTEGER PRIMARY KEY NOT NULL, "shipment" INTEGER NOT NULL REFERENCES "shipments" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "line_no" INTEGER NOT NULL DEFAULT 0, "quantity" INTEGER NOT NULL DEFAULT 0)',
    'CREATE INDEX shipment_lines_shipment ON "shipment_lines" ("shipment")',
    'CREATE INDEX shipment_lines_order ON "shipment_lines" ("order")',
    'CREATE UNIQUE INDEX fulfilment_lines_order_line ON "fulfilment_lines" ("order", "line_no")',
]

POSTGRES = [
    'ALTER TABLE "products" ADD COLUMN "bin_location" VARCHAR(32) NOT NULL DEFAULT \'\'',
    'CREATE TABLE "teams" ("id" SERIAL PRIMARY KEY NOT NULL, "name" VARCHAR(64) UNIQUE NOT NULL DEFAULT \'\', "description" TEXT NOT NULL DEFAULT \'\', "last_assigned" INTEGER DEFAULT null, "created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE TABLE "team_members" ("id" SERIAL PRIMARY KEY NOT NULL, "team" INTEGER NOT NULL REFERENCES "teams" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "staff" VARCHAR(200) UNIQUE NOT NULL DEFAULT \'\', "capacity" INTEGER NOT NULL DEFAULT 10, "order_types" JSON NOT NULL DEFAULT \'[]\', "available" BOOLEAN NOT NULL DEFAULT true, "updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE INDEX team_members_team ON "team_members" USING btree ("team")',
    'CREATE TABLE "assignments" ("id" SERIAL PRIMARY KEY NOT NULL, "order" INTEGER UNIQUE NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "team" INTEGER REFERENCES "teams" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "member" INTEGER REFERENCES "team_members" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "state" VARCHAR(16) NOT NULL DEFAULT \'\', "rule" VARCHAR(200) NOT NULL DEFAULT \'\', "assigned_by" VARCHAR(200) NOT NULL DEFAULT \'\', "assigned_at" TIMESTAMPTZ DEFAULT null, "due_at" TIMESTAMPTZ DEFAULT null, "explanation" JSON NOT NULL DEFAULT \'{}\', "created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE INDEX assignments_team ON "assignments" USING btree ("team")',
    'CREATE INDEX assignments_member ON "assignments" USING btree ("member")',
    'CREATE INDEX assignments_state ON "assignments" USING btree ("state")',
    'CREATE TABLE "fulfilment_lines" ("id" SERIAL PRIMARY KEY NOT NULL, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "line_no" INTEGER NOT NULL DEFAULT 0, "sku" VARCHAR(64) NOT NULL DEFAULT \'\', "quantity" INTEGER NOT NULL DEFAULT 0, "picked" INTEGER DEFAULT null, "shipped" INTEGER NOT NULL DEFAULT 0, "cancelled" INTEGER NOT NULL DEFAULT 0, "backordered" INTEGER NOT NULL DEFAULT 0)',
    'CREATE INDEX fulfilment_lines_order ON "fulfilment_lines" USING btree ("order")',
    'CREATE TABLE "tasks" ("id" SERIAL PRIMARY KEY NOT NULL, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "kind" VARCHAR(8) NOT NULL DEFAULT \'\', "position" INTEGER NOT NULL DEFAULT 0, "state" VARCHAR(16) NOT NULL DEFAULT \'open\', "assignee" VARCHAR(200) DEFAULT null, "due_at" TIMESTAMPTZ DEFAULT null, "started_at" TIMESTAMPTZ DEFAULT null, "started_by" VARCHAR(200) DEFAULT null, "completed_at" TIMESTAMPTZ DEFAULT null, "completed_by" VARCHAR(200) DEFAULT null, "result" JSON NOT NULL DEFAULT \'{}\')',
    'CREATE INDEX tasks_order ON "tasks" USING btree ("order")',
    'CREATE TABLE "shipments" ("id" SERIAL PRIMARY KEY NOT NULL, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "carrier" VARCHAR(64) NOT NULL DEFAULT \'\', "service" VARCHAR(64) NOT NULL DEFAULT \'\', "tracking_number" VARCHAR(128) NOT NULL DEFAULT \'\', "parcels" JSON NOT NULL DEFAULT \'[]\', "created_by" VARCHAR(200) NOT NULL DEFAULT \'\', "created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)',
    'CREATE INDEX shipments_order ON "shipments" USING btree ("order")',
    'CREATE TABLE "shipment_lines" ("id" SERIAL PRIMARY KEY NOT NULL, "shipment" INTEGER NOT NULL REFERENCES "shipments" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "order" INTEGER NOT NULL REFERENCES "orders" ("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFAULT null, "line_no" INTEGER NOT NULL DEFAULT 0, "quantity" INTEGER NOT NULL DEFAULT 0)',
    'CREATE INDEX shipment_lines_shipment ON "shipment_lines" USING btree ("shipment")',
    'CREATE INDEX shipment_lines_order ON "shipment_lines" USING btree ("order")',
    'CREATE UNIQUE INDEX fulfilment_lines_order_line ON "fulfilment_lines" ("order", "line_no")',
]
