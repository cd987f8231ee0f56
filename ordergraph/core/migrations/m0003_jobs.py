"""0003: runners claim jobs in batches under renewed leases, and PostgreSQL wakes them.

``claimed_by`` names the runner holding a running job, so that only it renews the
lease and records the outcome. The partial index holds the unfinished jobs only
(done ones pile up until their retention ends), for the claim and the next due
time. On PostgreSQL every statement that inserts jobs notifies ``ordergraph_jobs``
on commit, which wakes the runners of every process.
"""

# ruff: noqa: E501

SQLITE = [
    'ALTER TABLE "outbox" ADD COLUMN "claimed_by" VARCHAR(64) DEFAULT null',
    'CREATE INDEX outbox_unfinished ON "outbox" ("run_after", "id") WHERE "status" IN (\'pending\', \'running\')',
]

POSTGRES = [
    'ALTER TABLE "outbox" ADD COLUMN "claimed_by" VARCHAR(64) DEFAULT null',
    'CREATE INDEX outbox_unfinished ON "outbox" USING btree ("run_after", "id") WHERE "status" IN (\'pending\', \'running\')',
    "CREATE FUNCTION ordergraph_notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('ordergraph_jobs', ''); RETURN NULL; END $$",
    'CREATE TRIGGER outbox_notify AFTER INSERT ON "outbox" FOR EACH STATEMENT EXECUTE FUNCTION ordergraph_notify_jobs()',
]
