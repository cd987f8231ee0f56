"""How many orders per second go from entry to a review decision, beside a floor.

    .venv/bin/python benchmarks/review_throughput.py [--orders N] [--concurrency C]

For each backend (a temporary SQLite file; a temporary PostgreSQL database on the
server of TEST_POSTGRES_URL) it builds the runtime with the four built-in review rules
on (credit_limit, stock, price_policy, manual_review, with settings every order passes),
submits N orders of 3 lines through ``submit_order`` (what every channel calls) from C
concurrent tasks while the embedded job runner reviews them, and stops the clock when
the outbox is drained and every order is APPROVED with its stock reserved. It also
counts, per order, every statement the process sent to the database meanwhile
(``db.count_statements``: BEGIN, COMMIT and the job runner's included).

The floor, in the same run, on the same database, from as many concurrent tasks, is
the same rows written with the plain driver (asyncpg with the service's pool size,
aiosqlite on one writing connection): two transactions per order, the first writing
the order, its lines and its ``submitted`` event, the second the approval (status and
version), the ``start_review`` and ``approve`` events, the four findings and the
conditional stock reservation of its three SKUs. That is every row the pipeline must
write for an order; its outbox rows for the review job come on top and are counted in
the last line of the output.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiosqlite
import asyncpg
from common import (
    ADDRESS,
    argument_parser,
    bench_customer,
    bench_draft,
    fresh_database,
    markdown_table,
)

from ordergraph.core import assembly, db, runtime
from ordergraph.core.auth import Principal, Role
from ordergraph.core.orders import OrderDraft, submit_order
from ordergraph.core.settings import Settings
from ordergraph.core.tables import Order, OrderEvent, OrderLine, OutboxJob
from ordergraph.stages.entry.masterdata import (
    ProductData,
    upsert_products,
)
from ordergraph.stages.review.tables import ReviewFinding

RULES = {
    "credit_limit": {"enabled": True},
    "stock": {"enabled": True},
    "price_policy": {"enabled": True},
    "manual_review": {"enabled": True},
}
SKUS = ("BENCH-MUG", "BENCH-TEE", "BENCH-LAMP")
PRICE_MINOR = 990
WARM_UP = 20
POOL_SIZE = 10  # db.connect's default: the service's pool
CHANNEL = "bench"
FLOOR_CHANNEL = "bench-floor"

# One transaction per statement group, as a plain-driver program would write an order.
INSERT_ORDER = (
    "INSERT INTO orders (channel, external_id, customer, type, priority, currency, "
    "subtotal_minor, total_minor, status, version, shipping_address, note, created_at, "
    "updated_at) VALUES (?, ?, ?, 'standard', 'NORMAL', 'EUR', ?, ?, 'RECEIVED', 1, ?, '', "
    "?, ?) RETURNING id"
)
INSERT_LINE = (
    'INSERT INTO order_lines ("order", line_no, sku, name, quantity, unit_price_minor, '
    "total_minor) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
INSERT_EVENT = (
    'INSERT INTO order_events ("order", type, from_status, to_status, actor, data, at) '
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
APPROVE = (
    "UPDATE orders SET status = 'APPROVED', version = version + 2, updated_at = ? "
    "WHERE id = ? AND version = 1"
)
INSERT_FINDING = (
    'INSERT INTO review_findings ("order", round, rule, outcome, code, message, '
    "customer_message, data, at) VALUES (?, 1, ?, 'pass', ?, ?, ?, '{}', ?)"
)
RESERVE = (
    "UPDATE products SET stock_reserved = stock_reserved + ? "
    "WHERE sku = ? AND stock_on_hand - stock_reserved >= ?"
)


@dataclass
class Result:
    backend: str
    orders: int
    concurrency: int
    pipeline_seconds: float
    statements_per_order: float
    floor_seconds: float
    rows_per_order: dict[str, float]

    @property
    def pipeline_rate(self) -> float:
        return self.orders / self.pipeline_seconds

    @property
    def floor_rate(self) -> float:
        return self.orders / self.floor_seconds


def draft(external_id: str) -> OrderDraft:
    return bench_draft(external_id, [(sku, i + 1) for i, sku in enumerate(SKUS)], CHANNEL)


async def seed(orders: int) -> int:
    """The customer and products with stock for the pipeline and the floor; the customer id."""
    customer_id = await bench_customer()
    await upsert_products(
        [
            ProductData(
                sku, f"Benchmark {sku}", Decimal(PRICE_MINOR) / 100, "EUR", 10 * (orders + WARM_UP)
            )
            for sku in SKUS
        ]
    )
    return customer_id


async def concurrently(
    orders: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> float:
    """Run ``one(i)`` for every order from ``concurrency`` tasks; the seconds."""
    queue = iter(range(orders))

    async def client() -> None:
        for i in queue:
            await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - started


async def pipeline(rt: runtime.Runtime, prefix: str, orders: int, concurrency: int) -> float:
    """Submit ``orders`` from ``concurrency`` tasks, wait for every decision; the seconds."""
    principal = Principal(Role.INTEGRATOR, "benchmark")
    assert rt.runner is not None
    started = time.perf_counter()
    await concurrently(
        orders, concurrency, lambda i: submit_order(rt, draft(f"{prefix}-{i}"), principal)
    )
    await rt.runner.drain()
    return time.perf_counter() - started


async def check_decided(prefix: str, orders: int) -> dict[str, float]:
    """Every measured order is APPROVED with its findings; the rows per order it left."""
    ids = [
        r["id"]
        for r in await Order.select(Order.id).where(
            (Order.channel == CHANNEL)
            & Order.external_id.like(f"{prefix}-%")
            & (Order.status == "APPROVED")
        )
    ]
    if len(ids) != orders:
        raise RuntimeError(f"only {len(ids)} of {orders} orders were approved")
    counts = {
        "order_lines": await OrderLine.count().where(OrderLine.order.is_in(ids)),
        "order_events": await OrderEvent.count().where(OrderEvent.order.is_in(ids)),
        "review_findings": await ReviewFinding.count().where(ReviewFinding.order.is_in(ids)),
        "outbox": await OutboxJob.count(),  # emptied before the measured run
    }
    return {name: n / orders for name, n in counts.items()}


def order_rows(customer_id: int, external_id: str, now: Any) -> tuple[list[Any], list[list[Any]]]:
    """The order row and its lines' rows (without the order id) as the pipeline writes them."""
    lines = [
        [i + 1, sku, f"Benchmark {sku}", i + 1, PRICE_MINOR, (i + 1) * PRICE_MINOR]
        for i, sku in enumerate(SKUS)
    ]
    total = sum(line[-1] for line in lines)
    order = [FLOOR_CHANNEL, external_id, customer_id, total, total, json.dumps(ADDRESS), now, now]
    return order, lines


def findings(now: Any) -> list[list[Any]]:
    return [
        [rule, f"{rule.upper()}_PASSED", f"{rule} passed.", f"{rule} passed.", now]
        for rule in RULES
    ]


def numbered(sql: str) -> str:
    """``?`` placeholders as asyncpg's ``$1, $2...``."""
    parts = sql.split("?")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], start=1)) + parts[-1]


@contextlib.asynccontextmanager
async def postgres_floor(
    url: str, customer_id: int
) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
    async def keep_session(connection: asyncpg.Connection) -> None:
        pass  # as the service's pool: no reset statement on release

    pool = await asyncpg.create_pool(url, min_size=1, max_size=POOL_SIZE, reset=keep_session)
    insert_order, insert_line, insert_event, approve, insert_finding, reserve = (
        numbered(sql)
        for sql in (INSERT_ORDER, INSERT_LINE, INSERT_EVENT, APPROVE, INSERT_FINDING, RESERVE)
    )

    async def one(i: int) -> None:
        now = datetime.datetime.now(datetime.UTC)
        order, lines = order_rows(customer_id, f"floor-{i}", now)
        async with pool.acquire() as connection, connection.transaction():
            order_id = await connection.fetchval(insert_order, *order)
            await connection.executemany(insert_line, [[order_id, *line] for line in lines])
            await connection.execute(
                insert_event, order_id, "submitted", None, "RECEIVED", "bench", "{}", now
            )
        async with pool.acquire() as connection, connection.transaction():
            now = datetime.datetime.now(datetime.UTC)
            await connection.execute(approve, now, order_id)
            await connection.executemany(insert_event, decision_events(order_id, now))
            await connection.executemany(
                insert_finding, [[order_id, *row] for row in findings(now)]
            )
            await connection.executemany(reserve, reservations(lines))

    try:
        yield one
    finally:
        await pool.close()


def decision_events(order_id: int, now: Any) -> list[list[Any]]:
    return [
        [order_id, "transition", before, after, "system", json.dumps({"transition": name}), now]
        for name, before, after in (
            ("start_review", "RECEIVED", "IN_REVIEW"),
            ("approve", "IN_REVIEW", "APPROVED"),
        )
    ]


def reservations(lines: list[list[Any]]) -> list[list[Any]]:
    """(quantity, sku, quantity) per line, in SKU order as locks must be taken."""
    return sorted(([line[3], line[1], line[3]] for line in lines), key=lambda row: row[1])


@contextlib.asynccontextmanager
async def sqlite_floor(
    url: str, customer_id: int
) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
    connection = await aiosqlite.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    writer = asyncio.Lock()

    async def transaction(write: Callable[[], Awaitable[None]]) -> None:
        async with writer:
            await connection.execute("BEGIN IMMEDIATE")
            try:
                await write()
            except BaseException:
                await connection.execute("ROLLBACK")
                raise
            await connection.execute("COMMIT")

    async def one(i: int) -> None:
        now = datetime.datetime.now(datetime.UTC).isoformat()
        order, lines = order_rows(customer_id, f"floor-{i}", now)
        order_id = 0

        async def submitted() -> None:
            nonlocal order_id
            async with connection.execute(INSERT_ORDER, order) as cursor:
                order_id = (await cursor.fetchone())[0]
            await connection.executemany(INSERT_LINE, [[order_id, *line] for line in lines])
            await connection.execute(
                INSERT_EVENT, [order_id, "submitted", None, "RECEIVED", "bench", "{}", now]
            )

        async def approved() -> None:
            await connection.execute(APPROVE, [now, order_id])
            await connection.executemany(INSERT_EVENT, decision_events(order_id, now))
            await connection.executemany(INSERT_FINDING, [[order_id, *r] for r in findings(now)])
            await connection.executemany(RESERVE, reservations(lines))

        await transaction(submitted)
        await transaction(approved)

    try:
        yield one
    finally:
        await connection.close()


async def check_floor(orders: int) -> None:
    approved = await Order.count().where(
        (Order.channel == FLOOR_CHANNEL) & (Order.status == "APPROVED")
    )
    findings_written = await ReviewFinding.count().where(
        ReviewFinding.order.is_in(Order.select(Order.id).where(Order.channel == FLOOR_CHANNEL))
    )
    if (approved, findings_written) != (orders, orders * len(RULES)):
        raise RuntimeError(f"the floor wrote {approved} orders and {findings_written} findings")


async def run(backend: str, orders: int, concurrency: int) -> Result:
    # Counting from before the job runner starts counts its statements too.
    with db.count_statements() as log:
        async with fresh_database(backend) as url:
            rt = assembly.build(Settings(database_url=url, plugins=RULES))
            await rt.open(run_jobs=True)
            try:
                customer_id = await seed(orders)
                await pipeline(rt, "warm", WARM_UP, concurrency)
                await OutboxJob.delete(force=True)  # the rows per order count the measured run
                counted = log.count
                pipeline_seconds = await pipeline(rt, "bench", orders, concurrency)
                statements = (log.count - counted) / orders
                rows = await check_decided("bench", orders)
                floor = postgres_floor if backend == "postgresql" else sqlite_floor
                async with floor(url, customer_id) as one:
                    floor_seconds = await concurrently(orders, concurrency, one)
                await check_floor(orders)
            finally:
                await rt.close()
    return Result(backend, orders, concurrency, pipeline_seconds, statements, floor_seconds, rows)


def table(results: list[Result]) -> str:
    header = ("backend", "orders", "tasks", "pipeline s", "statements / order",
              "pipeline orders/s", "floor s", "floor orders/s", "pipeline / floor")  # fmt: skip
    rows = [
        (
            r.backend,
            str(r.orders),
            str(r.concurrency),
            f"{r.pipeline_seconds:.2f}",
            f"{r.statements_per_order:.1f}",
            f"{r.pipeline_rate:.1f}",
            f"{r.floor_seconds:.2f}",
            f"{r.floor_rate:.1f}",
            f"{r.pipeline_rate / r.floor_rate:.0%}",
        )
        for r in results
    ]
    return markdown_table(header, rows)


async def main(argv: list[str]) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--orders", type=int, default=500, help="orders per run (default 500)")
    parser.add_argument("--concurrency", type=int, default=16, help="submitting tasks (16)")
    args = parser.parse_args(argv)
    if args.orders < 1 or args.concurrency < 1:
        parser.error("--orders and --concurrency must be at least 1")
    results = []
    for backend in args.backends:
        print(f"{backend}: {args.orders} orders, {args.concurrency} tasks...", file=sys.stderr)
        results.append(await run(backend, args.orders, args.concurrency))
    print(table(results))
    for result in results:
        rows = ", ".join(f"{n:g} {name}" for name, n in result.rows_per_order.items())
        print(f"\n{result.backend}: rows per order in the pipeline: 1 orders, {rows}.")
    print(f"The floor writes per order: 1 orders, {len(SKUS)} order_lines, 3 order_events, "
          f"{len(RULES)} review_findings, 0 outbox.")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
