"""Assigning approved orders: statements per assignment, orders per second, fairness.

    .venv/bin/python benchmarks/assign_orders.py [--orders N] [--members 4 40] [--concurrency C]

For each backend and team size it approves N one-line orders (the stock rule reserving
them), then runs their ``assign_order`` jobs from C concurrent tasks, as several job
runners would, with the built-in ``rules`` plugin (least_loaded). It reports the
statements each assignment sent (the mean and the largest: bounded, not growing with the
team), assignments per second, and the fairness: the spread (max - min) of open orders
per member afterwards.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from decimal import Decimal

from common import argument_parser, bench_customer, bench_draft, markdown_table, service

from ordergraph.core import db
from ordergraph.core.auth import Principal, Role
from ordergraph.core.orders import submit_order
from ordergraph.core.tables import OutboxJob
from ordergraph.stages.entry.masterdata import (
    ProductData,
    upsert_products,
)
from ordergraph.stages.fulfilment import teams
from ordergraph.stages.fulfilment.tables import Assignment
from ordergraph.stages.review import pipeline

PLUGINS = {"stock": {"enabled": True}, "rules": {"enabled": True, "rules": ["-> floor"]}}


async def run(backend: str, orders: int, members: int, concurrency: int) -> tuple[str, ...]:
    async with service(backend, plugins=PLUGINS) as rt:
        await bench_customer()
        await upsert_products([ProductData("BENCH", "Bench", Decimal("9.90"), "EUR", orders)])
        await teams.upsert_team(
            "floor", "", [teams.MemberData(f"m{i}", orders) for i in range(members)]
        )
        principal = Principal(Role.INTEGRATOR, "benchmark")
        for i in range(orders):
            draft = bench_draft(f"A-{i}", [("BENCH", 1)])
            order = (await submit_order(rt, draft, principal)).order
            await pipeline.review_order(rt, order.id)
        due = [
            json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"]
            for r in await OutboxJob.select(OutboxJob.payload).where(
                OutboxJob.name == "assign_order"
            )
        ]
        counts: list[int] = []
        queue = iter(due)

        async def runner() -> None:
            for payload in queue:
                with db.count_statements() as log:
                    await rt.job_handlers["assign_order"](payload)
                counts.append(log.count)

        started = time.perf_counter()
        await asyncio.gather(*(runner() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        held = Counter(
            r["member"]
            for r in await Assignment.select(Assignment.member).where(
                Assignment.state == "assigned"
            )
        )
    # Each job also claims and finishes its outbox row: two statements that are not the
    # assignment's own.
    own = [n - 2 for n in counts]
    return (
        backend,
        str(members),
        str(sum(held.values())),
        f"{sum(own) / len(own):.1f}",
        str(max(own)),
        f"{len(due) / seconds:.0f}",
        str(max(held.values()) - min(held.values())),
    )


async def main(argv: list[str]) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--orders", type=int, default=1000, help="orders per run (1000)")
    parser.add_argument("--members", type=int, nargs="+", default=[4, 40], help="team sizes")
    parser.add_argument("--concurrency", type=int, default=8, help="job-running tasks (8)")
    args = parser.parse_args(argv)
    rows = []
    for backend in args.backends:
        for members in args.members:
            print(f"{backend}: {args.orders} orders into {members} members...", file=sys.stderr)
            rows.append(await run(backend, args.orders, members, args.concurrency))
    header = ("backend", "members", "assigned", "statements/assignment", "max statements",
              "assignments/s", "max - min open per member")  # fmt: skip
    print(markdown_table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
