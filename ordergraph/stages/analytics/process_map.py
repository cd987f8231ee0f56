"""The process map: the merged status graph with the orders in each state now, and the
transitions orders took in a period with the time they waited before each.

The orders in a state now come from the per-status counts (``order_status_counts``) or,
for a team, from the analytics facts; their ages and lateness from the facts of the
orders in states that are not final (few, whatever the size of the history, and read
through the index on (status, since)). Transitions come from the rollups' ``edge``
histograms, so a year costs its days' rows.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from ordergraph.core import db
from ordergraph.core.statusgraph import StatusGraph, default_graph
from ordergraph.stages.analytics.kpis import Duration, Figures, check_period, spans
from ordergraph.stages.analytics.rollups import COUNTED, EVERY_TEAM, FACTS, SUMMARY, seconds

AGE_BUCKETS = ((3_600, "under_hour"), (86_400, "under_day"), (7 * 86_400, "under_week"))
"""Ages of the orders in a state, in seconds since they entered it: below each limit,
and ``older``."""


@dataclass
class StateNow:
    """The orders in one state now."""

    name: str
    description: str
    final: bool
    count: int = 0
    ages: dict[str, int] = field(default_factory=dict)
    oldest_since: datetime.datetime | None = None
    late: int = 0


@dataclass
class Edge:
    """A move between two states taken in the period: the merged graph's name for it,
    whether the default graph names it, and the wait in its source state before it."""

    name: str | None
    source: str
    target: str
    duration: Duration
    in_default_graph: bool


@dataclass
class ProcessMap:
    states: list[StateNow]
    edges: list[Edge]

    @property
    def unnamed(self) -> list[Edge]:
        """Paths taken that the default graph does not name, most taken first."""
        return sorted(
            (edge for edge in self.edges if not edge.in_default_graph),
            key=lambda edge: (-edge.duration.count, edge.source, edge.target),
        )


def final_states(graph: StatusGraph) -> set[str]:
    """States no transition leaves."""
    left = {source for t in graph.transitions.values() for source in t.sources}
    return set(graph.states) - left


async def states_now(
    graph: StatusGraph, team: str | None, now: datetime.datetime
) -> list[StateNow]:
    """Every state of the graph with its orders now; ages and lateness for the states
    that are not final (a final state's orders stay there)."""
    final = final_states(graph)
    states = {
        name: StateNow(name, description, name in final)
        for name, description in graph.states.items()
    }
    if team is None:
        rows = await db.raw("SELECT status, SUM(n) AS n FROM order_status_counts GROUP BY status")
    else:
        rows = await db.raw(
            f"SELECT status, COUNT(*) AS n FROM {FACTS} WHERE team = {{}} GROUP BY status", team
        )
    for row in rows:
        if row["status"] in states:
            states[row["status"]].count = int(row["n"])
    moving = sorted(set(states) - final)
    if not moving:
        return list(states.values())
    at = seconds(now)
    condition, argument = db.one_of("f.status", moving)
    where, args = [condition], [argument]
    if team is not None:
        where.append("f.team = {}")
        args.append(team)
    ages = ", ".join(
        f"SUM(CASE WHEN f.status_since > {at - limit} THEN 1 ELSE 0 END) AS {name}"
        for limit, name in AGE_BUCKETS
    )
    today = now.date().isoformat()
    # Before shipping an order is late past its assignment's due time; once shipped,
    # past a promised date its shipment has not met.
    late = (
        "SUM(CASE WHEN f.status IN ('APPROVED', 'PROCESSING') AND EXISTS (SELECT 1 FROM "
        'assignments a WHERE a."order" = f.order_id AND a.due_at < {}) OR f.status = '
        "'SHIPPED' AND EXISTS (SELECT 1 FROM shipment_tracking t WHERE t.\"order\" = "
        "f.order_id AND t.delivered_at IS NULL AND t.promised_date < {}) "
        "THEN 1 ELSE 0 END) AS late"
    )
    for row in await db.raw(
        f"SELECT f.status, COUNT(*) AS n, MIN(f.status_since) AS oldest, {ages}, {late} "
        f"FROM {FACTS} f WHERE {' AND '.join(where)} GROUP BY f.status",
        now,
        today if db.current().is_sqlite else now.date(),
        *args,
    ):
        state = states.get(row["status"])
        if state is None:
            continue
        total, below = int(row["n"]), 0
        for _, name in AGE_BUCKETS:
            state.ages[name] = int(row[name] or 0) - below
            below = int(row[name] or 0)
        state.ages["older"] = total - below
        state.late = int(row["late"] or 0)
        if row["oldest"]:
            state.oldest_since = datetime.datetime.fromtimestamp(row["oldest"], datetime.UTC)
    return list(states.values())


async def process_map(
    graph: StatusGraph,
    start: datetime.date,
    end: datetime.date,
    team: str | None,
    now: datetime.datetime,
) -> ProcessMap:
    check_period(start, end)
    days, args = spans(start, end, months=True)
    where = ["dimension = 'all'", "team = {}", "metric = 'edge'", f"bucket <> {SUMMARY}", days]
    args = [EVERY_TEAM if team is None else team, *args]
    figures = Figures("period")
    for row in await db.raw(
        f"SELECT detail, bucket, SUM(n) AS n, SUM(total) AS total FROM {COUNTED} "
        f"WHERE {' AND '.join(where)} GROUP BY detail, bucket",
        *args,
    ):
        figures.add("edge", row["detail"], "", row["bucket"], int(row["n"]), int(row["total"]))
    named = {(s, t.target): t.name for t in graph.transitions.values() for s in t.sources}
    default = {(s, t.target) for t in default_graph().transitions.values() for s in t.sources}
    edges = [
        Edge(named.get(pair), *pair, duration, pair in default)
        for pair, duration in figures.edges().items()
    ]
    return ProcessMap(await states_now(graph, team, now), edges)
