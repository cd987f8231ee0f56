"""The figures, read from the rollups: one query for a period, whatever its length.

Every figure is defined in ``docs/analytics.md`` (formula, source records, unit). A
period's figures are the sums of its days' rollup rows, durations' quantiles those of
the summed histograms (``histogram.py``), so a year costs as many rows as its days
hold, never its orders.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from enum import StrEnum

from ordergraph.core import db
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.money import LEDGER_EFFECT
from ordergraph.stages.analytics.histogram import quantile
from ordergraph.stages.analytics.rollups import (
    COUNTED,
    DELTAS,
    DIMENSIONS,
    EVERY_TEAM,
    FACTS,
    ROLLUPS,
    SUMMARY,
)

MAX_DAYS = 366 * 2
"""The longest period one request may ask for."""

TOP_REASONS = 10
TOP_PRODUCTS = 20


class GroupBy(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    TEAM = "team"
    CHANNEL = "channel"
    PERSON = "person"
    ORDER_TYPE = "order_type"
    PRIORITY = "priority"
    CARRIER = "carrier"
    COUNTRY = "country"


PERIODS = (GroupBy.DAY, GroupBy.WEEK, GroupBy.MONTH)

FLOW_COUNTS = {
    "approved": "APPROVED",
    "rejected": "REJECTED",
    "held": "ON_HOLD",
    "shipped": "SHIPPED",
    "delivered": "DELIVERED",
    "completed": "COMPLETED",
    "settled": "SETTLED",
    "cancelled": "CANCELLED",
}
"""Flow counts other than ``received``: transitions into each status."""

CYCLES = (
    "review",
    "fulfilment",
    "delivery",
    "settlement",
    "order_to_ship",
    "order_to_delivery",
    "order_to_settle",
)
SUCCESSFUL_PAYMENTS = frozenset(kind for kind, effect in LEDGER_EFFECT.items() if effect > 0)
DURATIONS = frozenset({"edge", "cycle", "alert_fix"})
"""The measures kept as durations: a histogram's buckets, and its summary row."""


@dataclass(frozen=True)
class Selection:
    """What a reader asks of a set of figures besides the counts and sums, which are
    always read: the durations (``DURATIONS``) whose quantiles it wants, read bucket by
    bucket, and the products sold. A year's histograms are thousands of rows, its
    counts a few hundred."""

    quantiles: frozenset[str] = frozenset()
    products: bool = False


EVERYTHING = Selection(DURATIONS, products=True)


@dataclass(frozen=True)
class Filter:
    """Which orders' figures: a team's, and one dimension's value."""

    team: str | None = None
    dimension: str | None = None
    value: str | None = None


@dataclass
class Duration:
    """A duration's count and quantiles, in seconds."""

    name: str
    count: int = 0
    total_seconds: int = 0
    histogram: dict[int, int] = field(default_factory=dict)

    @property
    def p50(self) -> float | None:
        return quantile(self.histogram.items(), 0.5)

    @property
    def p90(self) -> float | None:
        return quantile(self.histogram.items(), 0.9)

    @property
    def mean(self) -> float | None:
        measured = sum(self.histogram.values())
        return self.total_seconds / measured if measured else None


@dataclass
class Figures:
    """Every figure of one group (a period or a dimension's value)."""

    key: str
    # (metric, detail, currency) -> [n, total]; durations: (metric, detail) -> Duration
    sums: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)
    durations: dict[tuple[str, str], Duration] = field(default_factory=dict)
    products: dict[str, Product] = field(default_factory=dict)

    def add(self, metric: str, detail: str, currency: str, bucket: int, n: int, total: int):
        row = self.sums.setdefault((metric, detail, currency), [0, 0])
        row[0] += n
        row[1] += total
        if bucket >= 0:
            duration = self.durations.setdefault((metric, detail), Duration(detail))
            duration.count += n
            duration.total_seconds += total
            duration.histogram[bucket] = duration.histogram.get(bucket, 0) + n
        elif metric in DURATIONS:  # measured without a start, or a summary of its buckets
            duration = self.durations.setdefault((metric, detail), Duration(detail))
            duration.count += n

    def n(self, metric: str, detail: str, currency: str = "") -> int:
        return self.sums.get((metric, detail, currency), [0, 0])[0]

    def total(self, metric: str, detail: str, currency: str = "") -> int:
        return self.sums.get((metric, detail, currency), [0, 0])[1]

    def entered(self, status: str) -> int:
        """Transitions into ``status``."""
        return sum(
            row[0]
            for (metric, detail, _), row in self.sums.items()
            if metric == "edge" and detail.endswith(f">{status}")
        )

    def count(self, name: str) -> int:
        if name == "received":
            customers = self.customers()
            return self.n("flow", "received") + customers.new + customers.returning
        return self.entered(FLOW_COUNTS[name])

    def cycle(self, name: str) -> Duration:
        return self.durations.get(("cycle", name), Duration(name))

    def edges(self) -> dict[tuple[str, str], Duration]:
        """Per transition taken (source, target): its count and the time in the source."""
        return {
            tuple(detail.split(">", 1)): duration
            for (metric, detail), duration in sorted(self.durations.items())
            if metric == "edge"
        }

    def time_in_states(self) -> list[Duration]:
        """Per state left: the time orders spent in it before leaving."""
        merged: dict[str, Duration] = {}
        for (source, _), edge in self.edges().items():
            state = merged.setdefault(source, Duration(source))
            state.count += edge.count
            state.total_seconds += edge.total_seconds
            for bucket, n in edge.histogram.items():
                state.histogram[bucket] = state.histogram.get(bucket, 0) + n
        return [merged[name] for name in sorted(merged)]

    def of_family(self, metric: str) -> dict[str, int]:
        """Counts of a family's measures, by detail, most first."""
        found: dict[str, int] = defaultdict(int)
        for (family, detail, _), row in self.sums.items():
            if family == metric:
                found[detail] += row[0]
        return dict(sorted(found.items(), key=lambda item: (-item[1], item[0])))

    def currencies(self) -> list[str]:
        return sorted({c for (metric, _, c) in self.sums if c and metric in ("money", "payment")})

    def reasons(self) -> list[tuple[str, str, str, int]]:
        """(outcome, rule, code, count) of the review's reasons, most frequent first."""
        found = [(*detail.split(":", 2), n) for detail, n in self.of_family("finding").items()]
        return found[:TOP_REASONS]

    def money(self) -> list[Money]:
        found = []
        for currency in self.currencies():
            payments = {
                detail: (row[0], row[1])
                for (metric, detail, c), row in sorted(self.sums.items())
                if metric == "payment" and c == currency
            }
            found.append(
                Money(
                    currency,
                    self.n("money", "revenue", currency),
                    self.total("money", "revenue", currency),
                    self.total("money", "gross", currency),
                    self.total("money", "discount", currency),
                    payments,
                )
            )
        return found

    def fulfilment(self) -> Fulfilment:
        tasks = self.of_family("task")
        return Fulfilment(
            shipped_with_due=self.n("on_time", "ship_due"),
            shipped_on_time=self.n("on_time", "shipped"),
            tasks_completed={kind: n for kind, n in tasks.items() if kind != "short_pick"},
            short_picks=tasks.get("short_pick", 0),
            units_to_pick=self.n("fill", "to_pick"),
            units_picked=self.n("fill", "picked"),
        )

    def delivery(self) -> Delivery:
        return Delivery(
            delivered_with_promise=self.n("on_time", "delivery_promised"),
            delivered_on_time=self.n("on_time", "delivered"),
            delivered_in_full_on_time=self.n("on_time", "in_full"),
            delivered=self.n("delivery", "delivered"),
            delivered_first_attempt=self.n("delivery", "first_attempt"),
            delivered_with_estimate=self.n("eta", "estimated"),
            delivered_as_first_estimated=self.n("eta", "met"),
            exceptions=self.of_family("exception"),
            alerts_opened=self.of_family("alert_open"),
        )

    def review(self) -> Review:
        out = {
            target: d.count for (source, target), d in self.edges().items() if source == "IN_REVIEW"
        }
        return Review(
            sum(out.values()), out.get("APPROVED", 0), out.get("REJECTED", 0), out.get("ON_HOLD", 0)
        )

    def customers(self) -> Customers:
        """Orders received by their customer's first day (those counted before it was
        judged are in neither)."""
        return Customers(self.n("flow", "received_new"), self.n("flow", "received_returning"))

    def top_products(self) -> list[Product]:
        """The products sold, most units first."""
        ranked = sorted(self.products.values(), key=lambda p: (-p.units, p.sku))
        return ranked[:TOP_PRODUCTS]


@dataclass
class Money:
    """One currency's money figures of a group, in minor units."""

    currency: str
    statements: int
    revenue: int
    gross: int
    discount: int
    payments: dict[str, tuple[int, int]]

    @property
    def average_order_value(self) -> int | None:
        """Revenue ÷ statements, rounded half up to the minor unit."""
        if not self.statements:
            return None
        return (2 * self.revenue + self.statements) // (2 * self.statements)

    @property
    def discount_share(self) -> float | None:
        return self.discount / self.gross if self.gross else None

    @property
    def payment_success_rate(self) -> float | None:
        moved = sum(n for kind, (n, _) in self.payments.items() if kind in SUCCESSFUL_PAYMENTS)
        tried = moved + self.payments.get("failed", (0, 0))[0]
        return moved / tried if tried else None


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class Customers:
    """A group's orders received by whether their customer had ordered on an earlier day."""

    new: int
    """Orders of customers whose first order came that day (UTC)."""
    returning: int
    """Orders of customers whose first order came on an earlier day."""

    @property
    def returning_share(self) -> float | None:
        return _rate(self.returning, self.new + self.returning)


@dataclass
class Fulfilment:
    """A group's shipping on time against due times, tasks done and units picked."""

    shipped_with_due: int
    shipped_on_time: int
    tasks_completed: dict[str, int]
    short_picks: int
    units_to_pick: int
    units_picked: int

    @property
    def on_time_ship_rate(self) -> float | None:
        return _rate(self.shipped_on_time, self.shipped_with_due)

    @property
    def item_fill_rate(self) -> float | None:
        return _rate(self.units_picked, self.units_to_pick)


@dataclass
class Delivery:
    """A group's deliveries against promised dates, attempts and estimates, and its
    exceptions and alerts by kind."""

    delivered_with_promise: int
    delivered_on_time: int
    delivered_in_full_on_time: int
    delivered: int
    delivered_first_attempt: int
    delivered_with_estimate: int
    delivered_as_first_estimated: int
    exceptions: dict[str, int]
    alerts_opened: dict[str, int]

    @property
    def on_time_delivery_rate(self) -> float | None:
        return _rate(self.delivered_on_time, self.delivered_with_promise)

    @property
    def otif_rate(self) -> float | None:
        return _rate(self.delivered_in_full_on_time, self.delivered_with_promise)

    @property
    def first_attempt_delivery_rate(self) -> float | None:
        return _rate(self.delivered_first_attempt, self.delivered)

    @property
    def eta_accuracy(self) -> float | None:
        return _rate(self.delivered_as_first_estimated, self.delivered_with_estimate)


@dataclass
class Review:
    """The review's decisions of a group: orders leaving IN_REVIEW, and where to."""

    decided: int
    approved: int
    rejected: int
    held: int

    def rate(self, part: int) -> float | None:
        return _rate(part, self.decided)


@dataclass
class Report:
    groups: list[Figures]
    total: Figures
    previous: Figures


def check_period(start: datetime.date, end: datetime.date) -> None:
    if end < start:
        raise DomainError.of(ErrorCode.OUT_OF_RANGE, "`to` is before `from`.", "to")
    if (end - start).days + 1 > MAX_DAYS:
        raise DomainError.of(
            ErrorCode.OUT_OF_RANGE, f"A period may span at most {MAX_DAYS} days.", "to"
        )


def check_filter(wanted: Filter, group_by: GroupBy) -> None:
    if wanted.dimension is None:
        return
    if wanted.dimension not in DIMENSIONS:
        raise DomainError.of(ErrorCode.INVALID_VALUE, "Unknown dimension.", "filter")
    if group_by not in (*PERIODS, GroupBy.TEAM) and group_by.value != wanted.dimension:
        raise DomainError.of(
            ErrorCode.INVALID_VALUE,
            f"A filter on {wanted.dimension} goes with a grouping by period, by team or by "
            f"{wanted.dimension}.",
            "filter",
        )


def group_key(day: str, group_by: GroupBy) -> str:
    if group_by == GroupBy.WEEK:
        year, week, _ = datetime.date.fromisoformat(day).isocalendar()
        return f"{year}-W{week:02d}"
    if group_by == GroupBy.MONTH:
        return day[:7]
    return day


async def report(
    start: datetime.date,
    end: datetime.date,
    group_by: GroupBy,
    wanted: Filter,
    *,
    groups: Selection | None = EVERYTHING,
    total: Selection | None = EVERYTHING,
    previous: Selection | None = EVERYTHING,
) -> Report:
    """The figures of the days ``start`` to ``end`` (inclusive) per group, their total,
    and the total of the period of the same length before; each read as selected
    (``None``: not read, left empty)."""
    check_period(start, end)
    check_filter(wanted, group_by)
    found = Report([], Figures("total"), Figures("previous"))
    length = datetime.timedelta(days=(end - start).days + 1)
    for (first, last), selection, figures in (
        ((start, end), total, found.total),
        ((start - length, start - datetime.timedelta(days=1)), previous, found.previous),
    ):
        if selection is not None:
            for row in await _rows(first, last, selection, group_by, wanted, grouped=False):
                _add(figures, row)
    if groups is not None:
        by_key: dict[str, Figures] = {}
        for row in await _rows(start, end, groups, group_by, wanted, grouped=True):
            key = group_key(row["grp"], group_by) if group_by in PERIODS else row["grp"]
            _add(by_key.setdefault(key, Figures(key)), row)
        found.groups = [by_key[k] for k in sorted(by_key)]
    return found


def _add(figures: Figures, row: dict) -> None:
    n, total = int(row["n"]), int(row["total"])
    if row["dimension"] == "sku":
        product = figures.products.setdefault(row["value"], Product(row["value"]))
        if row["detail"] == "units":
            product.units += n
        else:
            product.revenue[row["currency"]] = product.revenue.get(row["currency"], 0) + total
        return
    figures.add(row["metric"], row["detail"], row["currency"], row["bucket"], n, total)


def spans(first: datetime.date, last: datetime.date, months: bool) -> tuple[str, list[object]]:
    """SQL choosing the rollup rows of the days ``first`` to ``last``: with ``months``,
    the month rows of the whole months among them and the day rows of the rest, so a
    year reads some twelve months and at most sixty days. Every key is named, so that
    both databases' planners look each up in the index."""
    keys: list[str] = []
    day = first
    while day <= last:
        following = (day.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)
        if months and day.day == 1 and following - datetime.timedelta(days=1) <= last:
            keys.append(day.isoformat()[:7])
            day = following
        else:
            keys.append(day.isoformat())
            day += datetime.timedelta(days=1)
    if db.current().is_sqlite:
        # SQLite moves a condition into the arms of the rollups' UNION only when it holds
        # no subquery (``one_of``'s list is one).
        return f"day IN ({', '.join('{}' for _ in keys)})", list(keys)
    condition, argument = db.one_of("day", keys)
    return condition, [argument]


async def _rows(
    first: datetime.date,
    last: datetime.date,
    selection: Selection,
    group_by: GroupBy,
    wanted: Filter,
    *,
    grouped: bool,
) -> list[dict]:
    """The rollup rows selected of the days ``first`` to ``last``, summed, and with
    ``grouped`` per group (a day or month, a team, a dimension's value: ``grp``)."""
    if grouped and group_by not in (*PERIODS, GroupBy.TEAM):
        dimension = group_by.value
    else:
        # A total counts every order, with a value of the grouping's dimension or not.
        dimension = wanted.dimension or "all"
    # Products are kept by SKU alone, and filtered by no dimension but the team.
    products = dimension == "all" and selection.products
    where = ["dimension IN ({}, 'sku')" if products else "dimension = {}"]
    args: list[object] = [dimension]
    if wanted.team is not None:
        where.append("team = {}")
        args.append(wanted.team)
    elif grouped and group_by == GroupBy.TEAM:
        # Each team by name, so that the index takes the days of each.
        condition, argument = db.one_of("team", await _teams(dimension))
        where.append(condition)
        args.append(argument)
    else:
        where.append("team = {}")
        args.append(EVERY_TEAM)
    if wanted.value is not None:
        where.append("value = {}")
        args.append(wanted.value)
    # Whole months are read as months, but in groups by day or week.
    days, days_args = spans(first, last, not grouped or group_by not in (GroupBy.DAY, GroupBy.WEEK))
    if selection.quantiles:
        condition, argument = db.one_of("metric", sorted(selection.quantiles))
        # Durations by their summary rows, or by their buckets where quantiles are asked.
        where += [days, f"(CASE WHEN {condition} THEN bucket <> {SUMMARY} ELSE bucket < 0 END)"]
        args += [*days_args, argument]
    else:
        where += [days, "bucket < 0"]
        args += days_args
    group = "''"
    if grouped:
        group = {GroupBy.TEAM: "team"}.get(group_by, "day" if group_by in PERIODS else "value")
    return await db.raw(
        f"SELECT {group} AS grp, dimension, CASE WHEN dimension = 'sku' THEN value ELSE '' "
        "END AS value, metric, detail, currency, bucket, SUM(n) AS n, SUM(total) AS total "
        f"FROM {COUNTED} WHERE {' AND '.join(where)} GROUP BY 1, 2, 3, 4, 5, 6, 7",
        *args,
    )


async def _teams(dimension: str) -> list[str]:
    """The teams with rollup rows of ``dimension``, every team's (``*``) aside: found
    by walking the rollups' index, one look-up per team, and among the counts not
    folded yet."""
    rows = await db.raw(
        f"WITH RECURSIVE teams(team) AS (SELECT MIN(team) FROM {ROLLUPS} WHERE dimension = {{}} "
        f"UNION ALL SELECT (SELECT MIN(team) FROM {ROLLUPS} WHERE dimension = {{}} AND "
        "team > teams.team) FROM teams WHERE team IS NOT NULL) "
        f"SELECT team FROM teams UNION SELECT team FROM {DELTAS} WHERE dimension = {{}}",
        dimension,
        dimension,
        dimension,
    )
    return sorted({row["team"] for row in rows} - {None, EVERY_TEAM})


@dataclass
class Product:
    """A product's units sold and revenue, by currency in minor units."""

    sku: str
    units: int = 0
    revenue: dict[str, int] = field(default_factory=dict)


@dataclass
class Outstanding:
    """Amounts statements still wait for, by currency and age of the statement."""

    currency: str
    age: str
    statements: int
    amount_minor: int


AGES = ((30, "0-30 days"), (60, "31-60 days"), (90, "61-90 days"), (None, "over 90 days"))


async def outstanding(team: str | None, now: datetime.datetime) -> list[Outstanding]:
    """What the statements of delivered and completed orders (the ones not yet
    settled) still wait for: total less what the ledger moved, summed by currency and
    age in the database, so that thousands of statements answer in a few rows."""
    where = "f.status IN ('DELIVERED', 'COMPLETED')"
    args: list[object] = []
    if team is not None:
        where += " AND f.team = {}"
        args.append(team)
    effect = " ".join(f"WHEN '{kind}' THEN {sign}" for kind, sign in LEDGER_EFFECT.items())
    # An age holds the statements issued at most its whole days ago.
    limits = [limit for limit, _ in AGES if limit is not None]
    age = " ".join(f"WHEN issued_at > {{}} THEN {index}" for index in range(len(limits)))
    issued_after = [now - datetime.timedelta(days=limit + 1) for limit in limits]
    rows = await db.raw(
        f"SELECT currency, CASE {age} ELSE {len(limits)} END AS age, COUNT(*) AS statements, "
        "SUM(due) AS amount FROM (SELECT s.currency, s.issued_at, s.total_minor - COALESCE(("
        f"SELECT SUM(e.amount_minor * CASE e.kind {effect} ELSE 0 END) FROM ledger_entries e "
        f'WHERE e.statement = s.id), 0) AS due FROM {FACTS} f JOIN statements s ON s."order" '
        f"= f.order_id WHERE {where}) AS owed WHERE due > 0 GROUP BY 1, 2 ORDER BY 1, 2",
        *issued_after,
        *args,
    )
    return [
        Outstanding(
            row["currency"], AGES[row["age"]][1], int(row["statements"]), int(row["amount"])
        )
        for row in rows
    ]
