"""The rollups, derived from order events as they are appended, and rebuilt from them.

``derive`` is the one function that turns events into rollups: the ``events_recorded``
hook calls it in the transaction that appends the events, and ``rebuild`` calls it on
the whole timeline, oldest event first. What it reads besides the events (the order's
dimensions, a decision's findings, a statement's lines, an alert's opening, the due
and promised times) is written before the event and not changed after it, so the
rollups kept live and the rebuilt ones are the same.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

from ordergraph.core import db
from ordergraph.core.money import to_minor
from ordergraph.core.orders import OrderEventView, OrderView
from ordergraph.stages.analytics.histogram import bucket_of
from ordergraph.stages.analytics.tables import OrderFacts, Rollup, RollupDelta
from ordergraph.stages.tracking.updates import TRACKING_EVENT

DIMENSIONS = ("channel", "person", "order_type", "priority", "carrier", "country")
"""The dimensions every measure is kept by, besides the day and the team."""

EXCEPTION_STATUSES = frozenset(
    {
        "delivery_failed",
        "delivery_delayed",
        "on_hold",
        "return_to_sender",
        "cancelled",
        "unknown",
    }
)
"""Tracking statuses counted as delivery exceptions (tracking stage's ``STATUSES``)."""

EVERY_TEAM = "*"
"""The team of the rollup rows that count every team's orders."""
SUMMARY = -2
"""The bucket of a histogram's summary row: its count and seconds over every bucket,
so that a read of counts alone skips the buckets."""
FOLDED = frozenset(
    {
        "submitted", "transition", "assigned", "queued", "unassigned", "released",
        "handed_back", "shipment", "task_completed", TRACKING_EVENT, "alert_opened",
        "alert_resolved", "statement_issued", "payment_recorded",
    }
)  # fmt: skip
"""The event types ``_fold`` reads; others change no rollup."""
REASONED = frozenset({"REJECTED", "ON_HOLD"})
"""The review's decisions whose findings are counted as reasons."""

_CHUNK = 2_000
FACTS = OrderFacts._meta.tablename
ROLLUPS = Rollup._meta.tablename
DELTAS = RollupDelta._meta.tablename
_KEY = ("dimension", "team", "day", "metric", "value", "detail", "currency", "bucket")
_COLUMNS = ", ".join((*_KEY, "n", "total"))
# The month keeps the column's type: PostgreSQL pushes a read's conditions on the day
# into every arm of a UNION only where the arms' types agree.
_MONTH = "CAST(SUBSTR(day, 1, 7) AS VARCHAR(10))"


def _spread(source: str) -> str:
    """The rows of ``source`` (a team's day, as appended) each counted in its team's day
    and month and in every team's day and month, and a histogram's bucket rows also in
    the summary row (``SUMMARY``) of each: what ``Tally`` leaves to the fold."""
    rest = "metric, value, detail, currency"
    arms = []
    for team in ("team", f"'{EVERY_TEAM}'"):
        for day in ("day", _MONTH):
            arms.append(f"SELECT dimension, {team}, {day}, {rest}, bucket, n, total FROM {source}")
            arms.append(
                f"SELECT dimension, {team}, {day}, {rest}, {SUMMARY}, n, total FROM {source} "
                "WHERE bucket >= 0"
            )
    return " UNION ALL ".join(arms)


COUNTED = f"(SELECT {_COLUMNS} FROM {ROLLUPS} UNION ALL {_spread(DELTAS)}) AS counted"
"""What every read of the rollups reads: their rows and the counts not folded into them
yet, to be summed by key."""


@dataclass
class Facts:
    """An order's row of ``analytics_orders``."""

    order_id: int
    channel: str = ""
    order_type: str = ""
    priority: str = ""
    country: str = ""
    currency: str = ""
    team: str = ""
    person: str = ""
    carrier: str = ""
    status: str = ""
    status_since: int = 0
    received_at: int = 0
    approved_at: int = 0
    shipped_at: int = 0
    delivered_at: int = 0
    failed_deliveries: int = 0
    cut_short: int = 0


FACT_COLUMNS = tuple(f.name for f in fields(Facts))


@dataclass
class Tally:
    """Rollup increments, summed per key before they are written (an upsert may not
    touch one row twice)."""

    rows: dict[tuple[Any, ...], list[int]] = field(default_factory=lambda: defaultdict(_zero))

    def count(
        self,
        at: int,
        metric: str,
        detail: str | db.Sql,
        facts: Facts,
        *,
        n: int = 1,
        total: int = 0,
        currency: str = "",
        bucket: int = -1,
        by: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        """Add ``n`` and ``total`` to the measure for the day of ``at`` in the order's
        team, for all orders and for each dimension the order has a value of (or the
        pairs ``by``). The fold adds them to the team's month and to every team's
        (``*``) day and month too (``_spread``)."""
        day = _day(at)
        pairs = by if by is not None else [("all", ""), *_dimensions(facts)]
        for dimension, value in pairs:
            row = self.rows[(day, metric, detail, facts.team, dimension, value, currency, bucket)]
            row[0] += n
            row[1] += total

    def duration(self, at: int, metric: str, detail: str, facts: Facts, since: int) -> None:
        """One duration from ``since`` to ``at`` (counted without one when ``since`` is
        unknown)."""
        if not since:
            self.count(at, metric, detail, facts)
            return
        seconds = max(0, at - since)
        self.count(at, metric, detail, facts, total=seconds, bucket=bucket_of(seconds))

    def deltas(self) -> db.Upsert:
        """The counts, appended to ``analytics_rollup_deltas`` (``fold`` adds them up)."""
        keys = ("day", "metric", "detail", "team", "dimension", "value", "currency", "bucket")
        return db.Upsert(
            DELTAS,
            (),
            [
                {**dict(zip(keys, key, strict=True)), "n": n, "total": total}
                for key, (n, total) in sorted(self.rows.items(), key=_in_order)
            ],
        )


def _in_order(item: tuple[tuple[Any, ...], list[int]]) -> tuple[Any, ...]:
    """A row's place among the appended ones: by key, details worked out in the
    database (``db.Sql``) after the others of the same day and metric."""
    key = item[0]
    return (key[:2], isinstance(key[2], db.Sql), key)


def _zero() -> list[int]:
    return [0, 0]


@functools.lru_cache(maxsize=1024)
def _day(at: int) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).date().isoformat()


def _dimensions(facts: Facts) -> list[tuple[str, str]]:
    return [(name, getattr(facts, name)) for name in DIMENSIONS if getattr(facts, name)]


def seconds(instant: datetime.datetime | str | None) -> int:
    """Whole seconds since the epoch of an instant as either database returns it."""
    if instant is None:
        return 0
    if isinstance(instant, str):
        instant = datetime.datetime.fromisoformat(instant)
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=datetime.UTC)
    return int(instant.timestamp())


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _facts_of_order(order_id: int, row: Mapping[str, Any]) -> Facts:
    address = _json(row["shipping_address"]) or {}
    return Facts(
        order_id,
        channel=row["channel"],
        order_type=row["type"],
        priority=row["priority"],
        country=str(address.get("country") or "")[:2].upper(),
        currency=row["currency"],
    )


async def derive(
    events: Sequence[OrderEventView], submitted: Mapping[int, OrderView]
) -> list[db.Upsert]:
    """The rollups and facts that ``events`` (in the order of their ids) change."""
    events = [event for event in events if event.type in FOLDED]
    if not events:
        return []
    order_ids = sorted({event.order_id for event in events})
    # A submitted order is new: it has no facts yet.
    facts = await _read_facts([i for i in order_ids if i not in submitted])
    customers = {order.id: order.customer_id for order in submitted.values()}
    unknown = [i for i in order_ids if i not in facts and i not in submitted]
    if unknown:
        condition, argument = db.one_of("id", unknown)
        for row in await db.raw(
            "SELECT id, channel, type, priority, currency, shipping_address, customer "
            f"FROM orders WHERE {condition}",
            argument,
        ):
            facts[row["id"]] = _facts_of_order(row["id"], row)
            customers[row["id"]] = row["customer"]
    lookups = await Lookups.read(events, customers)
    before = {i: dataclasses.replace(f) for i, f in facts.items()}
    tally = Tally()
    for event in events:
        order = submitted.get(event.order_id)
        if event.order_id not in facts and order is not None:
            facts[event.order_id] = _facts_of_order(
                order.id,
                {
                    "channel": order.channel,
                    "type": order.type,
                    "priority": order.priority,
                    "currency": order.currency,
                    "shipping_address": order.shipping_address,
                },
            )
        if event.order_id in facts:
            _fold(event, facts[event.order_id], tally, lookups)
    return [
        db.Upsert(
            FACTS,
            ("order_id",),
            [
                {name: getattr(facts[i], name) for name in FACT_COLUMNS}
                for i in order_ids
                if i in facts and facts[i] != before.get(i)
            ],
            replace=FACT_COLUMNS[1:],
        ),
        tally.deltas(),
    ]


async def _read_facts(order_ids: list[int]) -> dict[int, Facts]:
    """The orders' facts, locked until the transaction ends on PostgreSQL (SQLite's
    writer is alone), so that two transactions never both move one order's facts."""
    if not order_ids:
        return {}
    condition, argument = db.one_of("order_id", order_ids)
    lock = "" if db.current().is_sqlite else " ORDER BY order_id FOR UPDATE"
    columns = ", ".join(FACT_COLUMNS)
    rows = await db.raw(f"SELECT {columns} FROM {FACTS} WHERE {condition}{lock}", argument)
    return {row["order_id"]: Facts(**row) for row in rows}


@dataclass
class Lookups:
    """The records besides the events that ``_fold`` needs, read once per batch."""

    findings: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    statements: dict[int, dict[str, Any]] = field(default_factory=dict)
    alert_opened: dict[int, int] = field(default_factory=dict)
    ship_due: dict[int, int] = field(default_factory=dict)
    promised: dict[int, str] = field(default_factory=dict)
    first_estimate: dict[int, tuple[str, str]] = field(default_factory=dict)
    customers: Mapping[int, int] = field(default_factory=dict)

    @classmethod
    async def read(cls, events: Sequence[OrderEventView], customers: Mapping[int, int]) -> Lookups:
        """What ``_fold`` needs of the events' orders (``customers``: the customer of each
        submitted one)."""
        found = cls(customers=customers)
        decided = {
            e.order_id
            for e in events
            if e.type == "transition" and "round" in e.data and e.to_status in REASONED
        }
        if decided:
            condition, argument = db.one_of('"order"', sorted(decided))
            for row in await db.raw(
                f'SELECT "order", round, rule, outcome, code FROM review_findings '
                f"WHERE {condition} AND outcome <> 'pass' ORDER BY id",
                argument,
            ):
                found.findings.setdefault((row["order"], row["round"]), []).append(
                    f"{row['outcome']}:{row['rule']}:{row['code']}"
                )
        issued = {e.order_id for e in events if e.type == "statement_issued"}
        if issued:
            condition, argument = db.one_of('"order"', sorted(issued))
            for row in await db.raw(
                f'SELECT "order", snapshot FROM statements WHERE {condition}', argument
            ):
                found.statements[row["order"]] = _json(row["snapshot"]) or {}
        resolved = {e.data.get("alert") for e in events if e.type == "alert_resolved"}
        if resolved - {None}:
            condition, argument = db.one_of("id", sorted(resolved - {None}))
            for row in await db.raw(
                f"SELECT id, opened_at FROM alerts WHERE {condition}", argument
            ):
                found.alert_opened[row["id"]] = seconds(row["opened_at"])
        shipped = {e.order_id for e in events if e.to_status == "SHIPPED"}
        if shipped:
            condition, argument = db.one_of('"order"', sorted(shipped))
            for row in await db.raw(
                f'SELECT "order", due_at FROM assignments WHERE {condition}', argument
            ):
                if row["due_at"] is not None:
                    found.ship_due[row["order"]] = seconds(row["due_at"])
        delivered = {e.order_id for e in events if e.to_status == "DELIVERED"}
        if delivered:
            # Per shipment: its promised date and the first estimate its carrier gave.
            condition, argument = db.one_of('t."order"', sorted(delivered))
            for row in await db.raw(
                'SELECT t."order", t.promised_date, e.estimated_delivery, e.estimate_from, '
                "e.estimate_to FROM shipment_tracking t LEFT JOIN eta_history e ON e.id = "
                "(SELECT MIN(id) FROM eta_history WHERE shipment = t.shipment) "
                f"WHERE {condition}",
                argument,
            ):
                order = row["order"]
                if row["promised_date"] is not None:
                    promised = str(row["promised_date"])[:10]
                    found.promised[order] = max(promised, found.promised.get(order, promised))
                window = _estimate_days(row)
                if window is not None:
                    known = found.first_estimate.get(order, window)
                    found.first_estimate[order] = max(window, known, key=lambda w: w[1])
        return found


def _estimate_days(row: Mapping[str, Any]) -> tuple[str, str] | None:
    """The UTC days of an estimate: its window's, or its one instant's."""
    start = row["estimate_from"] or row["estimated_delivery"]
    end = row["estimate_to"] or row["estimated_delivery"]
    if start is None or end is None:
        return None
    return _day(seconds(start)), _day(seconds(end))


def _fold(event: OrderEventView, facts: Facts, tally: Tally, lookups: Lookups) -> None:
    """Apply one event to its order's facts and add what it counts to ``tally``."""
    at = seconds(event.at)
    data = event.data
    if event.type == "submitted":
        facts.status, facts.status_since, facts.received_at = event.to_status or "", at, at
        customer = lookups.customers.get(event.order_id)
        received = "received" if customer is None else _received_from(customer, at)
        tally.count(at, "flow", received, facts)
    elif event.type == "transition":
        _transition(event, at, facts, tally, lookups)
    elif event.type in ("assigned", "queued", "unassigned"):
        facts.team, facts.person = data.get("team") or "", data.get("member") or ""
    elif event.type in ("released", "handed_back"):
        facts.person = ""
    elif event.type == "shipment":
        facts.carrier = facts.carrier or str(data.get("carrier") or "")[:64]
        tally.count(at, "task", "shipment", facts)
    elif event.type == "task_completed":
        tally.count(at, "task", str(data.get("kind")), facts)
        if data.get("shortPick"):
            tally.count(at, "task", "short_pick", facts)
        if data.get("shortPick") == "CANCEL_REST":
            facts.cut_short = 1
        if "units" in data:  # a pick's units found, beside those found short per line
            picked = int(data["units"])
            missing = sum(int(n) for n in (data.get("short") or {}).values())
            tally.count(at, "fill", "to_pick", facts, n=picked + missing)
            tally.count(at, "fill", "picked", facts, n=picked)
    elif event.type == TRACKING_EVENT and data.get("status") in EXCEPTION_STATUSES:
        tally.count(at, "exception", data["status"], facts)
        if data["status"] == "delivery_failed":
            facts.failed_deliveries += 1
    elif event.type == "alert_opened":
        tally.count(at, "alert_open", str(data.get("kind")), facts)
    elif event.type == "alert_resolved":
        opened = lookups.alert_opened.get(data.get("alert"), 0)
        tally.duration(at, "alert_fix", str(data.get("kind")), facts, opened)
    elif event.type == "statement_issued":
        _statement(at, facts, tally, lookups.statements.get(event.order_id, {}))
    elif event.type == "payment_recorded":
        currency = str(data.get("currency") or facts.currency)
        minor = to_minor(Decimal(str(data.get("amount", "0"))), currency)
        tally.count(at, "payment", str(data.get("kind")), facts, total=minor, currency=currency)


def _received_from(customer: int, at: int) -> db.Sql:
    """An order received (at ``at``) from a returning customer, one whose first order
    (the smallest id) came on an earlier UTC day, or from a new one: ``received_returning``
    or ``received_new``. Judged by the statement that appends the count, so a submission
    reads nothing for it; orders of one day judge alike however many come at once, so a
    rebuild judges them as they were judged live."""
    day = datetime.datetime.fromtimestamp(at - at % 86_400, datetime.UTC)
    return db.Sql(
        "CASE WHEN (SELECT created_at FROM orders WHERE customer = {} ORDER BY id LIMIT 1)"
        " < {} THEN 'received_returning' ELSE 'received_new' END",
        (customer, day),
    )


def _transition(
    event: OrderEventView, at: int, facts: Facts, tally: Tally, lookups: Lookups
) -> None:
    source, target = event.from_status or "", event.to_status or ""
    tally.duration(at, "edge", f"{source}>{target}", facts, facts.status_since)
    for finding in lookups.findings.get((event.order_id, event.data.get("round", -1)), []):
        if target in REASONED:
            tally.count(at, "finding", finding, facts)
    if target in ("APPROVED", "REJECTED") and source in ("IN_REVIEW", "ON_HOLD"):
        tally.duration(at, "cycle", "review", facts, facts.received_at)
    if target == "APPROVED" and not facts.approved_at:
        facts.approved_at = at
    elif target == "SHIPPED":
        tally.duration(at, "cycle", "fulfilment", facts, facts.approved_at)
        tally.duration(at, "cycle", "order_to_ship", facts, facts.received_at)
        due = lookups.ship_due.get(event.order_id)
        if due:
            tally.count(at, "on_time", "ship_due", facts)
            if at <= due:
                tally.count(at, "on_time", "shipped", facts)
        facts.shipped_at = at
    elif target == "DELIVERED":
        tally.duration(at, "cycle", "delivery", facts, facts.shipped_at)
        tally.duration(at, "cycle", "order_to_delivery", facts, facts.received_at)
        tally.count(at, "delivery", "delivered", facts)
        if not facts.failed_deliveries:
            tally.count(at, "delivery", "first_attempt", facts)
        estimate = lookups.first_estimate.get(event.order_id)
        if estimate:
            tally.count(at, "eta", "estimated", facts)
            if estimate[0] <= _day(at) <= estimate[1]:
                tally.count(at, "eta", "met", facts)
        promised = lookups.promised.get(event.order_id)
        if promised:
            tally.count(at, "on_time", "delivery_promised", facts)
            if _day(at) <= promised:
                tally.count(at, "on_time", "delivered", facts)
                if not facts.cut_short:
                    tally.count(at, "on_time", "in_full", facts)
        facts.delivered_at = at
    elif target == "SETTLED":
        tally.duration(at, "cycle", "settlement", facts, facts.delivered_at)
        tally.duration(at, "cycle", "order_to_settle", facts, facts.received_at)
    facts.status, facts.status_since = target, at


def _statement(at: int, facts: Facts, tally: Tally, snapshot: dict[str, Any]) -> None:
    currency = str(snapshot.get("currency") or facts.currency)

    def minor(amount: Any) -> int:
        return to_minor(Decimal(str(amount or "0")), currency)

    for detail, key in (("revenue", "total"), ("gross", "subtotal")):
        tally.count(at, "money", detail, facts, total=minor(snapshot.get(key)), currency=currency)
    tally.count(
        at,
        "money",
        "discount",
        facts,
        n=0,
        total=-minor(snapshot.get("adjustmentTotal")),
        currency=currency,
    )
    for line in snapshot.get("lines", []):
        if line.get("kind") != "item":
            continue
        sku = str(line.get("sku") or "")[:200]
        by = [("sku", sku)]
        tally.count(at, "demand", "units", facts, n=int(line.get("quantity") or 0), by=by)
        tally.count(
            at, "demand", "revenue", facts, total=minor(line.get("total")), currency=currency, by=by
        )


async def rebuild() -> int:
    """Recompute every rollup and fact from the timeline, in one transaction; the
    number of events read."""
    read = 0
    async with db.write_transaction():
        await db.raw(f"DELETE FROM {ROLLUPS}")
        await db.raw(f"DELETE FROM {DELTAS}")
        await db.raw(f"DELETE FROM {FACTS}")
        last = 0
        while True:
            rows = await db.raw(
                'SELECT id, "order", type, from_status, to_status, actor, data, at '
                f"FROM order_events WHERE id > {{}} ORDER BY id LIMIT {_CHUNK}",
                last,
            )
            if not rows:
                await fold()
                return read
            events = [
                OrderEventView(
                    id=row["id"],
                    order_id=row["order"],
                    type=row["type"],
                    from_status=row["from_status"],
                    to_status=row["to_status"],
                    actor=row["actor"],
                    data=_json(row["data"]) or {},
                    at=row["at"],
                )
                for row in rows
            ]
            await db.upsert_all(await derive(events, {}))
            read += len(rows)
            last = rows[-1]["id"]


_SUMMED = (
    f"INSERT INTO {ROLLUPS} ({_COLUMNS}) SELECT {', '.join(_KEY)}, SUM(n), SUM(total) "
    "FROM ({spread}) AS spread WHERE TRUE GROUP BY "
    + ", ".join(_KEY)
    + " ORDER BY "
    + ", ".join(_KEY)
    + f" ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET n = {ROLLUPS}.n + excluded.n, "
    f"total = {ROLLUPS}.total + excluded.total"
)


# Transactions that count at once append to the same keys: summed before they are
# spread, they spread into a fraction of the rows.
_SUMMED_FIRST = (
    f"summed AS (SELECT {', '.join(_KEY)}, SUM(n) AS n, SUM(total) AS total "
    f"FROM {{source}} GROUP BY {', '.join(_KEY)}) "
)


def fold_statements(sqlite: bool) -> list[str]:
    """The statements ``fold`` sends, in one transaction on SQLite: for a loader that
    appends counts in bulk to ``analytics_rollup_deltas`` with a driver of its own."""
    spread = _SUMMED.format(spread=_spread("summed"))
    if sqlite:
        return [f"WITH {_SUMMED_FIRST.format(source=DELTAS)}{spread}", f"DELETE FROM {DELTAS}"]
    return [
        f"WITH moved AS (DELETE FROM {DELTAS} RETURNING {_COLUMNS}), "
        f"{_SUMMED_FIRST.format(source='moved')}{spread}"
    ]


async def fold() -> None:
    """Add the counts appended to ``analytics_rollup_deltas`` to the rollups (each to
    its team's day and month, every team's day and month, and the summary rows of
    those of a histogram) and remove them, at once: on PostgreSQL in one statement,
    which locks each rollup row once, in key order; a fold that starts while another
    runs leaves the rows that one took (and those committed since, for the next fold).
    On SQLite in one transaction."""
    async with db.write_transaction():
        for statement in fold_statements(db.current().is_sqlite):
            await db.raw(statement)
