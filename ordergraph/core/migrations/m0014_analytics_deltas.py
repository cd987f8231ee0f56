"""0014: the counts each transaction adds to the analytics rollups, appended to a table
of their own and folded into the rollups soon after, so that concurrent writers never
wait for each other's lock on a day's shared count."""

# ruff: noqa: E501


def _tables(pk: str) -> list[str]:
    return [
        f'CREATE TABLE "analytics_rollup_deltas" ("id" {pk}, "day" VARCHAR(10) NOT NULL DEFAULT \'\', "metric" VARCHAR(16) NOT NULL DEFAULT \'\', "detail" VARCHAR(200) NOT NULL DEFAULT \'\', "team" VARCHAR(64) NOT NULL DEFAULT \'\', "dimension" VARCHAR(16) NOT NULL DEFAULT \'all\', "value" VARCHAR(200) NOT NULL DEFAULT \'\', "currency" VARCHAR(3) NOT NULL DEFAULT \'\', "bucket" INTEGER NOT NULL DEFAULT -1, "n" BIGINT NOT NULL DEFAULT 0, "total" BIGINT NOT NULL DEFAULT 0)',
    ]


SQLITE = _tables("INTEGER PRIMARY KEY NOT NULL")
POSTGRES = _tables("BIGSERIAL PRIMARY KEY NOT NULL")
