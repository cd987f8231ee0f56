"""0017: rollup rows that let a year be read in a few thousand rows: each team's months
(every team's were kept already), and each histogram's summary row (bucket -2: its count
and seconds over every bucket), for the rows stored before; the fold writes both since.

On PostgreSQL the rollups' pages keep room (``fillfactor``) for the new version of a row
the fold adds to, so that it stays on its page and the key's index is not written again
(a HOT update): the fold writes more rows now."""

_COLUMNS = "dimension, team, day, metric, value, detail, currency, bucket, n, total"
_KEY = "dimension, team, day, metric, value, detail, currency"

_ROWS = [
    f'INSERT INTO "analytics_rollups" ({_COLUMNS}) '
    "SELECT dimension, team, SUBSTR(day, 1, 7), metric, value, detail, currency, bucket, "
    "SUM(n), SUM(total) FROM analytics_rollups WHERE team <> '*' AND LENGTH(day) = 10 "
    "GROUP BY dimension, team, SUBSTR(day, 1, 7), metric, value, detail, currency, bucket",
    f'INSERT INTO "analytics_rollups" ({_COLUMNS}) '
    f"SELECT {_KEY}, -2, SUM(n), SUM(total) FROM analytics_rollups WHERE bucket >= 0 "
    f"GROUP BY {_KEY}",
]

SQLITE = _ROWS
POSTGRES = [*_ROWS, 'ALTER TABLE "analytics_rollups" SET (fillfactor = 70)']
