"""0011: webhook endpoints registered through GraphQL, and the index that lists an
endpoint's deliveries (its ``notifications`` channel) newest first."""

# ruff: noqa: E501


def _tables(pk: str, btree: str) -> list[str]:
    return [
        f'CREATE TABLE "webhook_endpoints" ("id" {pk}, "url" VARCHAR(1000) NOT NULL DEFAULT \'\', "event_types" TEXT NOT NULL DEFAULT \'*\', "description" VARCHAR(200) NOT NULL DEFAULT \'\', "secret" VARCHAR(100) NOT NULL DEFAULT \'\', "created_by" VARCHAR(200) NOT NULL DEFAULT \'\', "created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, "secret_rotated_at" TIMESTAMPTZ DEFAULT null, "deleted_at" TIMESTAMPTZ DEFAULT null)',
        f'CREATE INDEX notifications_channel_id ON "notifications" {btree}("channel", "id")',
    ]


SQLITE = _tables("INTEGER PRIMARY KEY NOT NULL", "")
POSTGRES = _tables("SERIAL PRIMARY KEY NOT NULL", "USING btree ")
