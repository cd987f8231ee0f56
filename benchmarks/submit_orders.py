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

import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from decimal import Decimal

import httpx
from asgi_lifespan import LifespanManager
from common import ADDRESS, EMAIL, argument_parser, bench_customer, fresh_database, markdown_table

from ordergraph.app import create_app
from ordergraph.core import auth
from ordergraph.core.settings import Settings
from ordergraph.stages.entry.masterdata import (
    ProductData,
    upsert_products,
)

WARM_UP = 20
SKUS = ("BENCH-MUG", "BENCH-TEE", "BENCH-LAMP")
SUBMIT = """
mutation Submit($input: SubmitOrderInput!) {
  submitOrder(input: $input) { created order { id status } errors { field code message } }
}
"""


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


async def seed(orders: int) -> str:
    """Products with enough stock for every order, the customer, and an integrator token."""
    await bench_customer("Bench Customer")
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
        "customerEmail": EMAIL,
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


async def main(argv: list[str]) -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--orders", type=int, default=500, help="orders per run (default 500)")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[1, 8],
        help="concurrent clients; several values make several runs (default 1 8)",
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
