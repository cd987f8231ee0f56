"""How long the KPIs and the process map take at volume: p50 and p99 through the API.

    .venv/bin/python benchmarks/analytics.py [--orders N] [--sqlite-orders N] [--requests R]

For each backend (a temporary SQLite file; a temporary PostgreSQL database on the server
of TEST_POSTGRES_URL) it builds in bulk, not through the pipeline, what a year of N
orders leaves in the tables the reads use. Each order gets a full history over the year
before today (submitted, reviewed, held or rejected or cancelled for a few, assigned,
picked, packed, shipped, delivered, confirmed with a statement, paid and settled; the
last days' orders are still on their way), folded by the analytics stage's own fold
(``rollups._fold``) into counts and per-order facts, written with executemany (SQLite)
or COPY (PostgreSQL), the counts appended and folded into the rollups as the pipeline's
are (``rollups.fold_statements``). The orders still in flight also get their order,
assignment and statement rows (the process map's lateness and the outstanding amounts
read them); the per-status counts are written from the facts. The timeline itself is not
written: no read below touches it.

Then it sends R requests of each read through the ASGI app as an admin, periods drawn
at random, and prints p50 and p99 in milliseconds. Targets: p99 under 100 ms at
1,000,000 orders on PostgreSQL and 300 ms at 100,000 on SQLite.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from asgi_lifespan import LifespanManager
from common import argument_parser, fresh_database, markdown_table

from ordergraph.app import create_app
from ordergraph.core import auth, db
from ordergraph.core.orders import OrderEventView
from ordergraph.core.settings import Settings
from ordergraph.stages.analytics.rollups import (
    FACT_COLUMNS,
    Facts,
    Lookups,
    Tally,
    _fold,
    fold_statements,
)

TEAMS = [f"team-{t}" for t in range(5)]
CHANNELS = ["web", "shopify", "woocommerce", "csv"]
TYPES = ["standard", "express", "b2b"]
PRIORITIES = ["LOW", "NORMAL", "HIGH"]
CARRIERS = ["dhl", "ups", "fedex", "manual"]
COUNTRIES = ["DE", "FR", "GB", "NL", "IT", "ES", "AT", "BE", "PL", "SE"]
SKUS = [f"SKU-{i:02d}" for i in range(50)]
CHUNK = 20_000
ROLLUP_COLUMNS = (
    "day", "metric", "detail", "team", "dimension", "value", "currency", "bucket", "n", "total"
)  # fmt: skip

FIGURES = """
query($from: Date!, $to: Date!, $groupBy: AnalyticsGroupBy) {
  analytics(from: $from, to: $to, groupBy: $groupBy) {
    groups { key flow { received shipped settled cancelled } }
    total {
      flow {
        received approved rejected held shipped delivered completed settled cancelled
        cycleTimes { stage duration { count p50Seconds p90Seconds } }
        timeInStates { state duration { count p50Seconds p90Seconds } }
      }
      review { decided approveRate rejectRate holdRate topReasons { rule code count } }
      fulfilment { onTimeShipRate tasksCompleted { kind count } shortPicks }
      delivery { onTimeDeliveryRate exceptions { kind count } }
      money { currency revenue averageOrderValue discountShare paymentSuccessRate }
      products { sku units }
    }
    previous { flow { received settled } money { revenue } }
    outstanding { currency age statements amount }
  }
}
"""
MAP = """
query($from: Date!, $to: Date!) {
  processMap(from: $from, to: $to) {
    states { name count ages { underHour underDay underWeek older } oldestSince late }
    transitions { name from to count wait { p50Seconds p90Seconds } }
    unnamedPaths { from to count }
  }
}
"""


@dataclass(frozen=True)
class Read:
    name: str
    query: str
    days: int
    group_by: str | None = None


READS = [
    Read("analytics, 7 days by day", FIGURES, 7, "DAY"),
    Read("analytics, 30 days by day", FIGURES, 30, "DAY"),
    Read("analytics, 90 days by channel", FIGURES, 90, "CHANNEL"),
    Read("analytics, 365 days by month", FIGURES, 365, "MONTH"),
    Read("analytics, 365 days by team", FIGURES, 365, "TEAM"),
    Read("processMap, 7 days", MAP, 7),
    Read("processMap, 365 days", MAP, 365),
]


@dataclass
class World:
    """What the generator folded: facts, and the rows of the orders in flight."""

    facts: dict[int, Facts]
    tally: Tally
    in_flight: list[tuple[int, Facts, int, int]]  # order, facts, due, statement total


def histories(orders: int, now: datetime.datetime, rng: random.Random) -> Iterator[tuple]:
    """Per order: its id, dimensions and events (type, from, to, data, seconds), the
    events after ``now`` left out."""
    start = now - datetime.timedelta(days=365)
    span = 365 * 86_400
    for order_id in range(1, orders + 1):
        at = int(start.timestamp()) + order_id * span // orders
        team = rng.randrange(len(TEAMS))
        dims = {
            "channel": rng.choice(CHANNELS),
            "order_type": rng.choice(TYPES),
            "priority": rng.choice(PRIORITIES),
            "country": rng.choice(COUNTRIES),
            "team": TEAMS[team],
            "person": f"staff-{team}-{rng.randrange(5)}",
            "carrier": rng.choice(CARRIERS),
        }
        events: list[tuple[str, str | None, str | None, dict[str, Any], int]] = []
        t = at
        events.append(("submitted", None, "RECEIVED", {}, t))
        t += rng.randint(1, 60)
        events.append(("transition", "RECEIVED", "IN_REVIEW", {}, t))
        roll = rng.random()
        t += rng.randint(1, 30)
        if roll < 0.03:
            events.append(("transition", "IN_REVIEW", "REJECTED", {"round": 1}, t))
            yield order_id, dims, events
            continue
        if roll < 0.06:
            events.append(("transition", "IN_REVIEW", "ON_HOLD", {"round": 1}, t))
            t += rng.randint(600, 86_400)
        events.append(("transition", events[-1][2], "APPROVED", {"round": 1}, t))
        events.append(("assigned", None, None, {"team": dims["team"], "member": dims["person"]}, t))
        if roll > 0.99:
            t += rng.randint(60, 3_600)
            events.append(("transition", "APPROVED", "CANCELLED", {}, t))
            yield order_id, dims, events
            continue
        t += rng.randint(600, 8 * 3_600)
        events.append(("transition", "APPROVED", "PROCESSING", {}, t))
        t += rng.randint(300, 3_600)
        events.append(("task_completed", None, None, {"kind": "pick", "shortPick": roll > 0.98}, t))
        events.append(("task_completed", None, None, {"kind": "pack"}, t + 300))
        t += rng.randint(600, 40 * 3_600)
        events.append(("shipment", None, None, {"carrier": dims["carrier"]}, t))
        events.append(("transition", "PROCESSING", "SHIPPED", {}, t))
        if roll > 0.95:
            events.append(
                ("tracking_event", None, None, {"status": "delivery_delayed"}, t + 86_400)
            )
        t += rng.randint(86_400, 5 * 86_400)
        events.append(("transition", "SHIPPED", "DELIVERED", {}, t))
        t += rng.randint(3_600, 3 * 86_400)
        events.append(("transition", "DELIVERED", "COMPLETED", {}, t))
        events.append(("statement_issued", None, None, {}, t))
        t += rng.randint(3_600, 10 * 86_400)
        events.append(("payment_recorded", None, None, {"kind": "captured"}, t))
        events.append(("transition", "COMPLETED", "SETTLED", {}, t))
        yield order_id, dims, events


def fold(orders: int, now: datetime.datetime, flush: Callable[[Tally], None]) -> World:
    """Fold every order's history, handing the tally to ``flush`` every CHUNK orders."""
    rng = random.Random(22)
    until = int(now.timestamp())
    world = World({}, Tally(), [])
    lookups = Lookups()
    for order_id, dims, events in histories(orders, now, rng):
        facts = Facts(
            order_id, channel=dims["channel"], order_type=dims["order_type"],
            priority=dims["priority"], country=dims["country"], currency="EUR",
        )  # fmt: skip
        quantity, sku = rng.randint(1, 3), rng.choice(SKUS)
        total = quantity * 1_990
        lookups.statements[order_id] = {
            "currency": "EUR", "total": f"{total / 100:.2f}", "subtotal": f"{total / 100:.2f}",
            "adjustmentTotal": "0.00",
            "lines": [{"kind": "item", "sku": sku, "quantity": quantity,
                       "total": f"{total / 100:.2f}"}],
        }  # fmt: skip
        lookups.findings[(order_id, 1)] = ["fail:stock:INSUFFICIENT_STOCK"]
        due = events[0][4] + 2 * 86_400
        lookups.ship_due[order_id] = due
        lookups.promised[order_id] = (
            datetime.datetime.fromtimestamp(events[0][4] + 6 * 86_400, datetime.UTC)
            .date()
            .isoformat()
        )
        for number, (kind, source, target, data, at) in enumerate(events):
            if at > until:
                break
            if kind == "payment_recorded":
                data = {**data, "amount": lookups.statements[order_id]["total"], "currency": "EUR"}
            event = OrderEventView(
                number, order_id, kind, source, target, "bench", data,
                datetime.datetime.fromtimestamp(at, datetime.UTC),
            )  # fmt: skip
            _fold(event, facts, world.tally, lookups)
        world.facts[order_id] = facts
        if facts.status in ("APPROVED", "PROCESSING", "SHIPPED", "DELIVERED", "COMPLETED"):
            world.in_flight.append((order_id, facts, due, total))
        lookups = Lookups()
        if order_id % CHUNK == 0:
            flush(world.tally)
            world.tally = Tally()
    flush(world.tally)
    return world


def rollup_rows(tally: Tally) -> list[tuple]:
    return [(*key, n, total) for key, (n, total) in tally.rows.items()]


async def load_postgres(url: str, orders: int, now: datetime.datetime) -> World:
    connection = await asyncpg.connect(url)
    tallies: list[list[tuple]] = []
    world = await asyncio.to_thread(fold, orders, now, lambda t: tallies.append(rollup_rows(t)))
    try:
        # The counts appended as the pipeline appends them, and folded by its fold.
        for rows in tallies:
            await connection.copy_records_to_table(
                "analytics_rollup_deltas", records=rows, columns=ROLLUP_COLUMNS
            )
        for statement in fold_statements(sqlite=False):
            await connection.execute(statement)
        await connection.copy_records_to_table(
            "analytics_orders",
            records=[tuple(getattr(f, c) for c in FACT_COLUMNS) for f in world.facts.values()],
            columns=FACT_COLUMNS,
        )
        await in_flight_postgres(connection, world, now)
        # As autovacuum would soon after: the fold left the appended counts dead.
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()
    return world


async def in_flight_postgres(
    connection: asyncpg.Connection, world: World, now: datetime.datetime
) -> None:
    customer = await connection.fetchval(
        "INSERT INTO customers (email, name, credit_limit_minor, currency, blocked, created_at) "
        "VALUES ('bench@example.com', 'Bench', 0, 'EUR', false, now()) RETURNING id"
    )
    await connection.executemany(
        "INSERT INTO orders (id, channel, external_id, customer, type, priority, currency, "
        "subtotal_minor, total_minor, status, version, shipping_address, note, created_at, "
        "updated_at) VALUES ($1, $2, $3, $4, 'standard', 'NORMAL', 'EUR', $5, $5, $6, 1, "
        "'{}', '', now(), now())",
        [(i, f.channel, f"B-{i}", customer, total, f.status) for i, f, _, total in world.in_flight],
    )
    await connection.executemany(
        'INSERT INTO assignments ("order", state, rule, assigned_by, due_at, explanation, '
        "created_at) VALUES ($1, 'assigned', '', 'bench', $2, '{}', now())",
        [
            (i, datetime.datetime.fromtimestamp(due, datetime.UTC))
            for i, _, due, _ in world.in_flight
        ],
    )
    await connection.executemany(
        'INSERT INTO statements ("order", series, seq, number, currency, total_minor, '
        "snapshot, issued_at, due_at) VALUES ($1, 'ST', $1, $2, 'EUR', $3, '{}', $4, $4)",
        [
            (i, f"ST-{i}", total, now - datetime.timedelta(days=(i % 120)))
            for i, f, _, total in world.in_flight
            if f.status in ("DELIVERED", "COMPLETED")
        ],
    )
    # The triggers counted the orders just written; the counts are the facts' instead.
    await connection.execute("DELETE FROM order_status_counts")
    await connection.executemany(
        "INSERT INTO order_status_counts (status, slot, n) VALUES ($1, 0, $2)",
        status_counts(world),
    )


def status_counts(world: World) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for facts in world.facts.values():
        counts[facts.status] = counts.get(facts.status, 0) + 1
    return sorted(counts.items())


def load_sqlite(path: str, orders: int, now: datetime.datetime) -> World:
    import sqlite3

    connection = sqlite3.connect(path)
    columns = ", ".join(ROLLUP_COLUMNS)
    append = f"INSERT INTO analytics_rollup_deltas ({columns}) VALUES ({', '.join('?' * 10)})"

    def flush(tally: Tally) -> None:
        # The counts appended as the pipeline appends them, and folded by its fold.
        connection.executemany(append, rollup_rows(tally))
        for statement in fold_statements(sqlite=True):
            connection.execute(statement)
        connection.commit()

    world = fold(orders, now, flush)
    connection.executemany(
        f"INSERT INTO analytics_orders ({', '.join(FACT_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(FACT_COLUMNS))})",
        [tuple(getattr(f, c) for c in FACT_COLUMNS) for f in world.facts.values()],
    )
    connection.execute(
        "INSERT INTO customers (email, name, credit_limit_minor, currency, blocked, created_at) "
        "VALUES ('bench@example.com', 'Bench', 0, 'EUR', 0, ?)",
        (now.isoformat(),),
    )
    stamp = now.isoformat(" ")
    connection.executemany(
        "INSERT INTO orders (id, channel, external_id, customer, type, priority, currency, "
        "subtotal_minor, total_minor, status, version, shipping_address, note, created_at, "
        "updated_at) VALUES (?, ?, ?, 1, 'standard', 'NORMAL', 'EUR', ?, ?, ?, 1, '{}', '', ?, ?)",
        [(i, f.channel, f"B-{i}", t, t, f.status, stamp, stamp) for i, f, _, t in world.in_flight],
    )
    connection.executemany(
        'INSERT INTO assignments ("order", state, rule, assigned_by, due_at, explanation, '
        "created_at) VALUES (?, 'assigned', '', 'bench', ?, '{}', ?)",
        [
            (i, datetime.datetime.fromtimestamp(due, datetime.UTC).isoformat(" "), stamp)
            for i, _, due, _ in world.in_flight
        ],
    )
    connection.executemany(
        'INSERT INTO statements ("order", series, seq, number, currency, total_minor, '
        "snapshot, issued_at, due_at) VALUES (?, 'ST', ?, ?, 'EUR', ?, '{}', ?, ?)",
        [
            (i, i, f"ST-{i}", t, (now - datetime.timedelta(days=i % 120)).isoformat(" "), stamp)
            for i, f, _, t in world.in_flight
            if f.status in ("DELIVERED", "COMPLETED")
        ],
    )
    connection.execute("DELETE FROM order_status_counts")
    connection.executemany(
        "INSERT INTO order_status_counts (status, slot, n) VALUES (?, 0, ?)", status_counts(world)
    )
    connection.commit()
    connection.execute("ANALYZE")
    connection.close()
    return world


async def measure(url: str, requests: int, now: datetime.datetime) -> dict[str, list[float]]:
    app = create_app(Settings(database_url=url), run_jobs=False)
    rng = random.Random(7)
    timings: dict[str, list[float]] = {}
    async with LifespanManager(app) as manager:
        token = await auth.create_token("admin", name="bench")
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=60
        ) as client:
            for read in READS:
                times = timings.setdefault(read.name, [])
                for number in range(requests + 3):
                    end = now.date() - datetime.timedelta(
                        days=rng.randrange(0, 365 - read.days + 1)
                    )
                    variables = {
                        "from": (end - datetime.timedelta(days=read.days - 1)).isoformat(),
                        "to": end.isoformat(),
                    }
                    if read.group_by:
                        variables["groupBy"] = read.group_by
                    started = time.perf_counter()
                    response = await client.post(
                        "/graphql",
                        json={"query": read.query, "variables": variables},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    elapsed = (time.perf_counter() - started) * 1000
                    body = response.json()
                    if body.get("errors"):
                        raise RuntimeError(f"{read.name}: {json.dumps(body['errors'])[:500]}")
                    if number >= 3:  # the first requests warm the caches
                        times.append(elapsed)
    return timings


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def main(argv: list[str]) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--orders", type=int, default=1_000_000, help="PostgreSQL's orders")
    parser.add_argument("--sqlite-orders", type=int, default=100_000, help="SQLite's orders")
    parser.add_argument("--requests", type=int, default=100, help="requests per read")
    args = parser.parse_args(argv)
    now = db.now()
    rows = []
    for backend in args.backends:
        orders = args.sqlite_orders if backend == "sqlite" else args.orders
        async with fresh_database(backend) as url:
            if backend == "sqlite":
                await db.connect(url)
                from ordergraph.core import migrations

                await migrations.migrate()
                await db.disconnect()
            started = time.perf_counter()
            print(f"{backend}: folding and loading {orders} orders...", file=sys.stderr)
            if backend == "sqlite":
                world = await asyncio.to_thread(
                    load_sqlite, url.removeprefix("sqlite:///"), orders, now
                )
            else:
                world = await load_postgres(url, orders, now)
            loaded = time.perf_counter() - started
            await db.connect(url)
            (count,) = await db.raw("SELECT COUNT(*) AS n FROM analytics_rollups")
            await db.disconnect()
            print(
                f"{backend}: loaded in {loaded:.0f} s, {count['n']} rollup rows, "
                f"{len(world.in_flight)} orders in flight",
                file=sys.stderr,
            )
            del world
            timings = await measure(url, args.requests, now)
        for name, values in timings.items():
            rows.append(
                [backend, f"{orders:,}", name, f"{statistics.median(values):.1f}",
                 f"{p99(values):.1f}"]
            )  # fmt: skip
    print(markdown_table(["backend", "orders", "read", "p50 ms", "p99 ms"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
