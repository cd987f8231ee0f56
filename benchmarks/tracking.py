"""Tracking: carrier updates ingested per second, and the stuck scan at 1,000,000 orders.

    .venv/bin/python benchmarks/updates.py [--shipments N] [--orders M] [--concurrency C]
        [--backends [sqlite] [postgresql]] [--rounds R]

Ingest: N shipped orders with one shipment each are written straight into the tables
(the flow before shipping is not measured), then one carrier response of three scans per
shipment is ingested from C concurrent tasks, as several poll batches would; it reports
responses and events per second and the statements per response. Stuck scan
(PostgreSQL only): M orders, of which 0.1% have sat in APPROVED past their due hours;
it stops unless the plan of the scan's statement reads the orders through
``orders_priority_status_updated``, then reports the statements and time of the first
scan (which opens the alerts) and the median and slowest of the next ``--rounds`` scans
(which find them open).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import statistics
import sys
import time

from common import bench_customer, markdown_table, service

from ordergraph.core import db
from ordergraph.core.migrations import m0004_counts_and_indexes
from ordergraph.stages.tracking import alerts, updates

ZONE = datetime.timezone(datetime.timedelta(hours=-7))


def _numbers(count: int, sqlite: bool) -> str:
    if sqlite:
        return (
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) "
            "SELECT i FROM n"
        )
    return f"SELECT i FROM generate_series(1, {count}) AS i"


async def _orders(count: int, status: str, since: str, customer: int) -> None:
    sqlite = db.current().is_sqlite
    await db.current().engine.run_ddl(
        "INSERT INTO orders (channel, external_id, customer, type, priority, currency, "
        "subtotal_minor, total_minor, status, version, shipping_address, note, created_at, "
        f"updated_at) SELECT 'bench', '{status}-' || i, {customer}, 'standard', "
        f"'NORMAL', 'EUR', 990, 990, '{status}', 1, '{{}}', '', {since}, {since} "
        f"FROM ({_numbers(count, sqlite)}) AS numbers"
    )


async def ingest_run(backend: str, shipments: int, concurrency: int) -> tuple[str, ...]:
    async with service(backend) as rt:
        customer_id = await bench_customer()
        await _orders(shipments, "SHIPPED", "current_timestamp", customer_id)
        await db.current().engine.run_ddl(
            'INSERT INTO shipments ("order", carrier, service, tracking_number, parcels, '
            "created_by, created_at) SELECT id, 'fedex', '', 'T' || id, '[]', 'bench', "
            "current_timestamp FROM orders"
        )
        rows = await db.raw('SELECT id, "order", carrier, tracking_number FROM shipments')
        start = datetime.datetime(2024, 4, 25, 8, tzinfo=ZONE)
        update = updates.TrackingUpdate(
            events=[
                updates.TrackingEvent(
                    start + datetime.timedelta(hours=6 * k),
                    "in_transit",
                    f"scan {k}",
                    "DP",
                    location=updates.Location("Memphis", "TN", "38118", "US"),
                )
                for k in range(3)
            ],
            estimate=updates.Estimate(window_to=start + datetime.timedelta(days=2)),
            source="bench",
        )
        queue = iter(rows)
        counts: list[int] = []

        async def runner() -> None:
            for row in queue:
                with db.count_statements() as log:
                    await updates.ingest(rt, row["id"], update, shipment=row)
                counts.append(log.count)

        began = time.perf_counter()
        await asyncio.gather(*(runner() for _ in range(concurrency)))
        seconds = time.perf_counter() - began
    return (
        backend,
        str(shipments),
        f"{shipments / seconds:.0f}",
        f"{3 * shipments / seconds:.0f}",
        f"{sum(counts) / len(counts):.1f}",
    )


async def stuck_run(orders: int, rounds: int) -> tuple[str, ...]:
    async with service("postgresql") as rt:
        customer_id = await bench_customer()
        stuck = orders // 1000
        # As a bulk import would: the counting triggers off while loading, then one
        # count (kept on, a million updates of one count row take many minutes).
        ddl = db.current().engine.run_ddl
        await ddl('ALTER TABLE "orders" DISABLE TRIGGER USER')
        await _orders(orders - stuck, "SHIPPED", "now()", customer_id)
        await _orders(stuck, "APPROVED", "now() - interval '2 days'", customer_id)
        await ddl('ALTER TABLE "orders" ENABLE TRIGGER USER')
        await ddl('DELETE FROM "order_status_counts"')
        await ddl(m0004_counts_and_indexes.SEED_COUNTS)
        await ddl("ANALYZE orders")
        now = db.now()
        plan = await db.raw(
            "EXPLAIN " + alerts.OPEN_STUCK,
            "warning",
            now,
            now,
            "{}",
            "NORMAL",
            "APPROVED",
            now - datetime.timedelta(hours=12),
            alerts.SCAN_LIMIT,
        )
        lines = [str(value) for row in plan for value in row.values()]
        if not any("orders_priority_status_updated" in line for line in lines) or any(
            "Seq Scan on orders" in line for line in lines
        ):
            raise SystemExit("the stuck scan does not use its index:\n" + "\n".join(lines))
        began = time.perf_counter()
        with db.count_statements() as log:
            opened = await alerts.scan_stuck(rt)
        first = time.perf_counter() - began
        steady = []
        for _ in range(rounds):
            began = time.perf_counter()
            again = await alerts.scan_stuck(rt)
            steady.append(time.perf_counter() - began)
            assert again == 0
    return (
        f"{orders:,}",
        str(opened),
        str(log.count),
        f"{first:.3f}",
        f"{statistics.median(steady):.3f}",
        f"{max(steady):.3f}",
        "yes",
    )


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=10_000, help="shipments (10,000)")
    parser.add_argument("--orders", type=int, default=1_000_000, help="orders (1,000,000)")
    parser.add_argument("--concurrency", type=int, default=8, help="ingesting tasks (8)")
    parser.add_argument(
        "--backends",
        nargs="*",
        choices=["sqlite", "postgresql"],
        default=["sqlite", "postgresql"],
        help="backends for the ingest (none: the stuck scan only)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="steady-state scans (5)")
    args = parser.parse_args(argv)
    rows = []
    for backend in args.backends:
        print(f"{backend}: ingesting for {args.shipments} shipments...", file=sys.stderr)
        rows.append(await ingest_run(backend, args.shipments, args.concurrency))
    if rows:
        header = ("backend", "shipments", "responses/s", "events/s", "statements/response")
        print(markdown_table(header, rows))
        print()
    print(f"postgresql: stuck scan over {args.orders} orders...", file=sys.stderr)
    scan = await stuck_run(args.orders, args.rounds)
    header = (
        "orders",
        "stuck alerts opened",
        "first scan statements",
        "first scan s",
        "steady scan s (median)",
        "steady scan s (max)",
        "index used",
    )
    print(markdown_table(header, [scan]))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
