"""The analytics stage's records: what it derives from the timeline, never a second truth.

They are written only through the ``events_recorded`` hook, in the transaction that
appends the events they count (a rollup's counts by way of ``analytics_rollup_deltas``),
and ``ordergraph analytics rebuild`` recomputes them from the timeline alone. Their keys
and indexes are declared in migrations m0013, m0014 and m0016.
"""

from __future__ import annotations

from piccolo.columns import BigInt, Integer, Varchar
from piccolo.table import Table


class OrderFacts(Table, tablename="analytics_orders"):
    """Where each order stands, as far as its timeline has told: its dimensions (the
    team and person assigned, the first carrier), its status and since when, and the
    instants it first reached the stages that durations are measured from; its failed
    delivery attempts, and whether a short pick cancelled part of it (1) or not (0).

    Instants are whole seconds since the Unix epoch (0: not yet), so that durations
    are the same integers live and rebuilt, on both databases."""

    order_id = Integer(unique=True)
    channel = Varchar(length=32, default="")
    order_type = Varchar(length=32, default="")
    priority = Varchar(length=16, default="")
    country = Varchar(length=2, default="")
    currency = Varchar(length=3, default="")
    team = Varchar(length=64, default="")
    person = Varchar(length=200, default="")
    carrier = Varchar(length=64, default="")
    status = Varchar(length=32, default="")
    status_since = BigInt(default=0)
    received_at = BigInt(default=0)
    approved_at = BigInt(default=0)
    shipped_at = BigInt(default=0)
    delivered_at = BigInt(default=0)
    failed_deliveries = Integer(default=0)
    cut_short = Integer(default=0)


class _Counts:
    """The columns of a rollup row: its key, and the count and sum kept under it."""

    day = Varchar(length=10)
    metric = Varchar(length=16)
    detail = Varchar(length=200, default="")
    team = Varchar(length=64, default="")
    dimension = Varchar(length=16, default="all")
    value = Varchar(length=200, default="")
    currency = Varchar(length=3, default="")
    bucket = Integer(default=-1)
    n = BigInt(default=0)
    total = BigInt(default=0)


class Rollup(_Counts, Table, tablename="analytics_rollups"):
    """One day's (``day`` 2026-11-30) or month's (``day`` 2026-11) count (``n``) and sum
    (``total``) of a measure, for one value of one dimension, within one team or every
    team's (``team`` ``*``).

    ``metric`` names the measure's family and ``detail`` the measure (``edge`` and
    ``IN_REVIEW>APPROVED``); ``dimension`` is ``all`` (``value`` empty) or one of
    ``channel``, ``person``, ``order_type``, ``priority``, ``carrier``, ``country``,
    ``sku``; ``team`` is the order's team ('' before it has one) or ``*``. Durations are
    histograms: one row per logarithmic ``bucket`` (``histogram.py``), ``total`` the
    seconds, and a summary row of every bucket's (bucket -2); a plain count has bucket
    -1. Money has its ``currency`` and ``total`` in
    minor units."""


class RollupDelta(_Counts, Table, tablename="analytics_rollup_deltas"):
    """Counts a transaction added to ``analytics_rollups`` rows, not folded into them yet.

    Every order event adds to the same few rows of the day (every team's count of
    orders received, say): written there, two transactions that count at once would
    wait for each other's commit. Appended here (the order's team's day only), they
    never wait; ``rollups.fold`` adds them to the rollups soon after (to the team's day
    and month and every team's day and month), and every read sums both tables."""
