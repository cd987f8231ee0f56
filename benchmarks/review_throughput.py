"""How many orders per second go from entry to a review decision, beside a floor.

    .venv/bin/python benchmarks/review_throughput.py [--orders N] [--concurrency C]

For each backend (a temporary SQLite file; a temporary PostgreSQL database on the
server of TEST_POSTGRES_URL) it builds the runtime with the four built-in review rules
on (credit_limit, stock, price_policy, manual_review, with settings every order passes),
submits N orders of 3 lines through ``submit_order`` (what every channel calls) from C
concurrent tasks while the embedded job runner reviews them, and stops the clock when
the outbox is drained and every order is APPROVED with its stock reserved.

The floor is the same rows written in the same database in the same run with plain
bulk inserts (multi-row INSERTs of 500 rows, one transaction per table): as many
orders, lines, events, review findings and outbox jobs as the pipeline left behind.
The ratio says how many times faster the bare writes are than the pipeline.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from piccolo.table import Table
from submit_orders import ADDRESS, fresh_database, markdown_table

from ordergraph.core import db, runtime
from ordergraph.core.auth import Principal, Role
from ordergraph.core.masterdata import CustomerData, ProductData, upsert_customer, upsert_products
from ordergraph.core.orders import LineDraft, OrderDraft, submit_order
from ordergraph.core.tables import Order, OrderEvent, OrderLine, OutboxJob, ReviewFinding
from ordergraph.settings import Settings

RULES = {
    "credit_limit": {"enabled": True},
    "stock": {"enabled": True},
    "price_policy": {"enabled": True},
    "manual_review": {"enabled": True},
}
SKUS = ("BENCH-MUG", "BENCH-TEE", "BENCH-LAMP")
WARM_UP = 20
CHUNK = 500
CHANNEL = "bench"
FLOOR_CHANNEL = "bench-floor"


@dataclass
class Result:
    backend: str
    orders: int
    pipeline_seconds: float
    floor_seconds: float
    rows_per_order: dict[str, float]

    @property
    def pipeline_rate(self) -> float:
        return self.orders / self.pipeline_seconds

    @property
    def floor_rate(self) -> float:
        return self.orders / self.floor_seconds

    @property
    def ratio(self) -> float:
        return self.floor_rate / self.pipeline_rate


def draft(external_id: str) -> OrderDraft:
    return OrderDraft(
        channel=CHANNEL,
        external_id=external_id,
        customer_email="bench@example.com",
        lines=[LineDraft(sku, i + 1) for i, sku in enumerate(SKUS)],
        shipping_address=ADDRESS,
    )


async def seed(orders: int) -> None:
    await upsert_customer(CustomerData("bench@example.com", "Bench", Decimal(10**9), "EUR"))
    await upsert_products(
        [
            ProductData(sku, f"Benchmark {sku}", Decimal("9.90"), "EUR", 10 * (orders + WARM_UP))
            for sku in SKUS
        ]
    )


async def pipeline(rt: runtime.Runtime, prefix: str, orders: int, concurrency: int) -> float:
    """Submit ``orders`` from ``concurrency`` tasks, wait for every decision; the seconds."""
    principal = Principal(Role.INTEGRATOR, "benchmark")
    queue = iter(range(orders))

    async def client() -> None:
        for i in queue:
            await submit_order(rt, draft(f"{prefix}-{i}"), principal)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    assert rt.runner is not None
    await rt.runner.drain()
    return time.perf_counter() - started


async def rows_left_by(prefix: str) -> dict[type[Table], list[dict]]:
    """Every row the pipeline wrote for the measured orders, to copy for the floor."""
    ids = [
        r["id"]
        for r in await Order.select(Order.id).where(
            (Order.channel == CHANNEL) & Order.external_id.like(f"{prefix}-%")
        )
    ]
    approved = await Order.count().where(Order.id.is_in(ids) & (Order.status == "APPROVED"))
    if approved != len(ids):
        raise RuntimeError(f"only {approved} of {len(ids)} orders were approved")
    return {
        Order: await Order.select().where(Order.id.is_in(ids)),
        OrderLine: await OrderLine.select().where(OrderLine.order.is_in(ids)),
        OrderEvent: await OrderEvent.select().where(OrderEvent.order.is_in(ids)),
        ReviewFinding: await ReviewFinding.select().where(ReviewFinding.order.is_in(ids)),
        OutboxJob: await OutboxJob.select(),  # emptied before the measured run
    }


async def insert_chunks(table: type[Table], rows: Sequence[dict]) -> list[int]:
    ids: list[int] = []
    async with db.write_transaction():
        for start in range(0, len(rows), CHUNK):
            chunk = [table(**row) for row in rows[start : start + CHUNK]]
            ids += [r["id"] for r in await table.insert(*chunk).returning(table.id)]
    return ids


async def floor(rows: dict[type[Table], list[dict]]) -> float:
    """Write copies of ``rows`` with plain bulk inserts; the seconds."""

    def copy(row: dict, **changes: object) -> dict:
        out = {k: v for k, v in row.items() if k != "id"}
        out.update(changes)
        return out

    orders = [copy(r, channel=FLOOR_CHANNEL, external_id=f"floor-{r['id']}") for r in rows[Order]]
    started = time.perf_counter()
    new_ids = await insert_chunks(Order, orders)
    renumber = {r["id"]: new for r, new in zip(rows[Order], new_ids, strict=True)}
    for table in (OrderLine, OrderEvent, ReviewFinding):
        await insert_chunks(table, [copy(r, order=renumber[r["order"]]) for r in rows[table]])
    await insert_chunks(OutboxJob, [copy(r) for r in rows[OutboxJob]])
    return time.perf_counter() - started


async def run(backend: str, orders: int, concurrency: int) -> Result:
    async with fresh_database(backend) as url:
        rt = runtime.build(Settings(database_url=url, plugins=RULES))
        await rt.open(run_jobs=True)
        try:
            await seed(orders)
            await pipeline(rt, "warm", WARM_UP, concurrency)
            await OutboxJob.delete(force=True)  # the floor copies the measured run's jobs
            pipeline_seconds = await pipeline(rt, "bench", orders, concurrency)
            rows = await rows_left_by("bench")
            floor_seconds = await floor(rows)
        finally:
            await rt.close()
    per_order = {table._meta.tablename: len(found) / orders for table, found in rows.items()}
    return Result(backend, orders, pipeline_seconds, floor_seconds, per_order)


def table(results: list[Result]) -> str:
    header = ("backend", "orders", "pipeline s", "pipeline orders/s", "floor s",
              "floor orders/s", "floor / pipeline")  # fmt: skip
    rows = [
        (
            r.backend,
            str(r.orders),
            f"{r.pipeline_seconds:.2f}",
            f"{r.pipeline_rate:.1f}",
            f"{r.floor_seconds:.2f}",
            f"{r.floor_rate:.1f}",
            f"{r.ratio:.1f}x",
        )
        for r in results
    ]
    return markdown_table(header, rows)


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=500, help="orders per run (default 500)")
    parser.add_argument("--concurrency", type=int, default=4, help="submitting tasks (4)")
    parser.add_argument(
        "--backends", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"]
    )
    args = parser.parse_args(argv)
    if args.orders < 1 or args.concurrency < 1:
        parser.error("--orders and --concurrency must be at least 1")
    results = []
    for backend in args.backends:
        print(f"{backend}: {args.orders} orders, {args.concurrency} tasks...", file=sys.stderr)
        results.append(await run(backend, args.orders, args.concurrency))
    print(table(results))
    rows = ", ".join(f"{n:g} {name}" for name, n in results[0].rows_per_order.items())
    print(f"\nRows per order, in the pipeline and in the floor: {rows}.")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
