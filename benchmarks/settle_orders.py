"""Settlement: statements issued and paid per second, and statement numbers allocated per
second under concurrency.

    .venv/bin/python benchmarks/settle_orders.py [--orders N] [--concurrency C] [--numbers M]

For each backend it moves N three-line orders to COMPLETED, then settles them from C
concurrent tasks: issue the statement (final amount, promotions hook, tax, a gap-free
number) and record one payment of its total in the ledger, which settles the order. It
reports settlements per second and the statements one issue sent. Then C tasks allocate
M statement numbers between them, each in its own transaction (what bounds concurrent
issuing: the series row is held until commit), and it checks the numbers are 1..M with
no gap.
"""

from __future__ import annotations

import asyncio
import sys
import time
from decimal import Decimal

from common import argument_parser, bench_customer, bench_draft, markdown_table, service

from ordergraph.core import db
from ordergraph.core.auth import Principal, Role
from ordergraph.core.orders import submit_order
from ordergraph.core.transitions import transition_order
from ordergraph.stages.entry.masterdata import (
    ProductData,
    upsert_products,
)
from ordergraph.stages.settlement import payments, statements

STEPS = ("start_review", "approve", "start_processing", "ship", "deliver", "complete")


async def run(backend: str, orders: int, concurrency: int, numbers: int) -> tuple[str, ...]:
    async with service(backend, settlement={"shipping_charge": "4.90"}) as rt:
        await bench_customer()
        await upsert_products(
            [ProductData(f"B{i}", f"Bench {i}", Decimal("9.99"), "EUR", 10**6) for i in range(3)]
        )
        admin = Principal(Role.ADMIN, "benchmark")
        ids = []
        for i in range(orders):
            draft = bench_draft(f"S-{i}", [(f"B{n}", n + 1) for n in range(3)])
            order = (await submit_order(rt, draft, admin)).order
            for step in STEPS:
                await transition_order(rt, order.id, step, admin)
            ids.append(order.id)
        queue = iter(ids)
        counts: list[int] = []

        async def settle() -> None:
            for order_id in queue:
                with db.count_statements() as log:
                    statement = await statements.issue_statement(rt, order_id)
                counts.append(log.count)
                await payments.record_entry(
                    rt, statement, "captured", statement.total,
                    idempotency_key=f"bench-{order_id}", method="bench",
                )  # fmt: skip

        started = time.perf_counter()
        await asyncio.gather(*(settle() for _ in range(concurrency)))
        settle_seconds = time.perf_counter() - started

        allocated: list[int] = []

        async def allocate(share: int) -> None:
            for _ in range(share):
                async with db.write_transaction():
                    allocated.append(await statements.allocate_number("BENCH-2026"))

        started = time.perf_counter()
        shares = [numbers // concurrency + (i < numbers % concurrency) for i in range(concurrency)]
        await asyncio.gather(*(allocate(n) for n in shares))
        number_seconds = time.perf_counter() - started
        settled = await db.raw("SELECT COUNT(*) AS n FROM orders WHERE status = 'SETTLED'")
    assert sorted(allocated) == list(range(1, numbers + 1)), "numbers with a gap or a duplicate"
    return (
        backend,
        str(concurrency),
        str(settled[0]["n"]),
        f"{orders / settle_seconds:.0f}",
        str(max(counts)),
        str(numbers),
        f"{numbers / number_seconds:.0f}",
    )


async def main(argv: list[str]) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--orders", type=int, default=300, help="orders per run (300)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8], help="tasks")
    parser.add_argument("--numbers", type=int, default=2000, help="numbers to allocate (2000)")
    args = parser.parse_args(argv)
    rows = []
    for backend in args.backends:
        for concurrency in args.concurrency:
            print(f"{backend}: {args.orders} settlements, {concurrency} tasks...", file=sys.stderr)
            rows.append(await run(backend, args.orders, concurrency, args.numbers))
    header = ("backend", "tasks", "settled", "settlements/s", "statements/issue",
              "numbers", "numbers/s")  # fmt: skip
    print(markdown_table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
