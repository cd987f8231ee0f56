"""How fast the API takes orders: N orders of 3 lines each through ``submitOrder``.

    .venv/bin/python benchmarks/submit_orders.py [--orders N] [--concurrency C [C ...]]

For each backend (a temporary SQLite file; a temporary PostgreSQL database created
and dropped on the server of TEST_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432/postgres) and each concurrency, it builds the
real app with its plugins on a fresh database, seeds products and a customer, and
sends the orders through GraphQL over the ASGI transport from C concurrent clients.
The embedded job runner runs as in the service, so the outbox work is included.
Latency is per request; a few warm-up orders are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
from asgi_lifespan import LifespanManager

from ordergraph.app import create_app
from ordergraph.core import auth, db, migrations
from ordergraph.core.settings import Settings
from ordergraph.stages.entry.masterdata import (
    CustomerData,
    ProductData,
    upsert_customer,
    upsert_products,
)

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
WARM_UP = 20
SKUS = ("BENCH-MUG", "BENCH-TEE", "BENCH-LAMP")
SUBMIT = """
mutation Submit($input: SubmitOrderInput!) {
  submitOrder(input: $input) { created order { id status } errors { field code message } }
}
"""
ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postalCode": "SW1Y 4JH",
    "country": "GB",
}


@dataclass
class Result:
    backend: str
    orders: int
    concurrency: int
    seconds: float
    latencies_ms: list[float]

    @property
    def per_second(self) -> float:
        return self.orders / self.seconds

    def percentile(self, p: int) -> float:
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0]
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[p - 1]


@contextlib.asynccontextmanager
async def fresh_database(backend: str) -> AsyncIterator[str]:
    """An empty, migrated database for one run, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="og_bench_") as directory:
            yield f"sqlite:///{Path(directory) / 'bench.db'}"
        return
    name = f"og_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
        await db.connect(url)
        try:
            await migrations.migrate()
        finally:
            await db.disconnect()
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def seed(orders: int) -> str:
    """Products with enough stock for every order, the customer, and an integrator token."""
    await upsert_customer(
        CustomerData("bench@example.com", "Bench Customer", Decimal(10**9), "EUR")
    )
    await upsert_products(
        [
            ProductData(sku, f"Benchmark {sku}", Decimal("9.90"), "EUR", 10 * (orders + WARM_UP))
            for sku in SKUS
        ]
    )
    return await auth.create_token("integrator", name="benchmark")


def order_input(external_id: str) -> dict:
    return {
        "externalId": external_id,
        "customerEmail": "bench@example.com",
        "lines": [{"sku": sku, "quantity": i + 1} for i, sku in enumerate(SKUS)],
        "shippingAddress": ADDRESS,
    }


async def submit(client: httpx.AsyncClient, token: str, external_id: str) -> float:
    """Submit one order; return how long the request took, in milliseconds."""
    started = time.perf_counter()
    response = await client.post(
        "/graphql",
        json={"query": SUBMIT, "variables": {"input": order_input(external_id)}},
        headers={"Authorization": f"Bearer {token}"},
    )
    elapsed = (time.perf_counter() - started) * 1000
    body = response.json()
    payload = (body.get("data") or {}).get("submitOrder")
    if response.status_code != 200 or not payload or payload["errors"] or not payload["created"]:
        raise RuntimeError(f"order {external_id} was not accepted: {body}")
    return elapsed


async def run(backend: str, orders: int, concurrency: int) -> Result:
    async with fresh_database(backend) as url:
        app = create_app(Settings(database_url=url))
        async with LifespanManager(app) as manager:
            token = await seed(orders)
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://bench", timeout=120
            ) as client:
                for i in range(WARM_UP):
                    await submit(client, token, f"WARM-{i}")
                queue = iter(range(orders))
                latencies: list[float] = []

                async def client_loop() -> None:
                    # One client sends its next order when its last one is answered.
                    for i in queue:
                        latencies.append(await submit(client, token, f"BENCH-{i}"))

                started = time.perf_counter()
                await asyncio.gather(*(client_loop() for _ in range(concurrency)))
                seconds = time.perf_counter() - started
    return Result(backend, orders, concurrency, seconds, latencies)


def table(results: list[Result]) -> str:
    header = ("backend", "orders", "concurrency", "seconds", "orders/s", "p50 ms", "p95 ms")
    rows = [
        (
            r.backend,
            str(r.orders),
            str(r.concurrency),
            f"{r.seconds:.2f}",
            f"{r.per_second:.1f}",
            f"{r.percentile(50):.1f}",
            f"{r.percentile(95):.1f}",
        )
        for r in results
    ]
    return markdown_table(header, rows)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"
        for row in [header, *rows]
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=500, help="orders per run (default 500)")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[1, 8],
        help="concurrent clients; several values make several runs (default 1 8)",
    )
    parser.add_argument(
        "--backends", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"]
    )
    args = parser.parse_args(argv)
    if args.orders < 1 or min(args.concurrency) < 1:
        parser.error("--orders and --concurrency must be at least 1")
    results = []
    for backend in args.backends:
        for concurrency in args.concurrency:
            print(f"{backend}: {args.orders} orders, {concurrency} clients...", file=sys.stderr)
            results.append(await run(backend, args.orders, concurrency))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
