"""An arq worker killed while it holds jobs during a burst: another worker decides its
orders within a minute, and nothing is lost or done twice.

Real processes: one ``ordergraph serve`` and two ``ordergraph worker`` (arq workers)
sharing one database and one Redis. A review rule installed for the test (a package on
the processes' path, found through the ``ordergraph.plugins`` entry point like any
other) holds every review until the test opens its gate, so the first worker is known
to hold jobs when it is killed with SIGKILL, without racing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis
from arq.constants import in_progress_key_prefix
from conftest import SUBMIT, new_postgres_database, order_input, seed_shop
from test_redis_bus import ORDERGRAPH, free_port, wait_until_healthy

from ordergraph.core import auth, db, migrations
from ordergraph.core.arq_jobs import Names
from ordergraph.core.tables import Order, OrderEvent, OutboxJob, Product
from ordergraph.stages.entry.masterdata import ProductData, upsert_products
from ordergraph.stages.review.tables import ReviewFinding

ORDERS = 300
# The submitting clients at once.
CLIENTS = 8
HELD = "gate:held"
OPEN = "gate:open"
GATE_PLUGIN = '''
"""Holds every review until the key gate:open exists in Redis."""
import asyncio
import os

import redis.asyncio as redis

from ordergraph.plugin_api import Finding, PluginInfo, hookimpl


@hookimpl
def plugin_info():
    return PluginInfo(category="review_rule", description="Waits for the test's gate.")


@hookimpl
async def review_order(order):
    client = redis.Redis.from_url(os.environ["GATE_REDIS_URL"])
    try:
        await client.rpush("gate:held", f"{os.getpid()}:{order.id}")
        while not await client.exists("gate:open"):
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    return Finding("pass", "GATE_OPEN", "The gate was open.")
'''
CONFIG = """
[ordergraph]
plugin_timeout_seconds = 300
# The jobs of a killed worker run again 15 s after this.
job_timeout_seconds = 10
review_rules = ["gate", "stock"]

[plugins.gate]
enabled = true

[plugins.stock]
enabled = true
"""


def install_gate(directory: Path) -> None:
    """A package with an ``ordergraph.plugins`` entry point, importable from ``directory``."""
    (directory / "og_gate.py").write_text(GATE_PLUGIN)
    info = directory / "og_gate-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: og-gate\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ordergraph.plugins]\ngate = og_gate\n")


@pytest.fixture(params=["sqlite", "postgresql"])
async def deployment_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A new database on each backend."""
    if request.param not in os.environ.get("ORDERGRAPH_TEST_BACKENDS", "sqlite,postgresql"):
        pytest.skip(f"{request.param} is not among ORDERGRAPH_TEST_BACKENDS")
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path}/ordergraph.db"
        else:
            url = await stack.enter_async_context(new_postgres_database())
        yield url


@contextlib.contextmanager
def started(
    tmp_path: Path, env: dict[str, str], name: str, *command: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``ordergraph COMMAND`` running in ``tmp_path``, logging to NAME.log; stopped after."""
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [ORDERGRAPH, *command], env=env, cwd=tmp_path, stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def until(
    condition: Callable[[], Awaitable[bool]], what: str, timeout: float, logs: list[Path]
) -> None:
    """Poll ``condition`` (an async callable) until it is true, or fail after ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while not await condition():
                await asyncio.sleep(0.1)
    except TimeoutError:
        pytest.fail(
            f"not within {timeout} s: {what}\n"
            + "\n".join(p.read_text() for p in logs if p.exists())
        )


async def test_orders_held_by_a_killed_worker_are_decided_by_another_within_a_minute(
    deployment_url: str, redis_url: str, tmp_path: Path
):
    install_gate(tmp_path)
    (tmp_path / "ordergraph.toml").write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if k != "ORDERGRAPH_CONFIG"}
    env.update(
        DATABASE_URL=deployment_url,
        REDIS_URL=redis_url,
        GATE_REDIS_URL=redis_url,
        PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
    )
    await db.connect(deployment_url)
    await migrations.migrate()
    await seed_shop()
    # Two mugs an order.
    await upsert_products([ProductData("MUG", "Mug", Decimal("12.50"), "EUR", 2 * ORDERS)])
    token = await auth.create_token("admin", name="alice")
    gate = redis.Redis.from_url(redis_url)
    port = free_port()
    logs = [tmp_path / name for name in ("serve.log", "victim.log", "survivor.log")]
    try:
        with (
            started(tmp_path, env, "serve", "serve", "--port", str(port)),
            started(tmp_path, env, "victim", "worker") as victim,
        ):
            await wait_until_healthy(port, logs[0])
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                numbers = iter(range(ORDERS))

                async def submitting() -> None:
                    for n in numbers:
                        response = await client.post(
                            "/graphql",
                            json={"query": SUBMIT, "variables": {"input": order_input(f"K-{n}")}},
                            headers={"Authorization": f"Bearer {token}"},
                            timeout=60,
                        )
                        assert response.json()["data"]["submitOrder"]["errors"] == []

                await asyncio.gather(*(submitting() for _ in range(CLIENTS)))

            names = Names.of(deployment_url)
            in_progress = in_progress_key_prefix + names.jobs

            async def victim_holds_reviews() -> bool:
                return bool(await gate.keys(in_progress + "*")) and await gate.llen(HELD) > 0

            await until(victim_holds_reviews, "the first worker holds reviews", 60, logs)
            with started(tmp_path, env, "survivor", "worker"):
                # The victim is the only worker yet: the jobs in progress are its own.
                held = {
                    int(key.decode().rsplit(":", 1)[1])
                    for key in await gate.keys(in_progress + "*")
                }
                victim.send_signal(signal.SIGKILL)
                killed_at = time.monotonic()
                victim.wait(timeout=10)
                await gate.set(OPEN, "1")

                async def every_order_decided() -> bool:
                    return await Order.count().where(Order.status == "APPROVED") == ORDERS

                await until(every_order_decided, "the orders were decided", 60, logs)
                recovered_in = time.monotonic() - killed_at

                async def every_review_recorded() -> bool:
                    return not await OutboxJob.exists().where(OutboxJob.status != "done")

                await until(every_review_recorded, "the reviews were recorded done", 10, logs)
                reviews = await OutboxJob.select().where(OutboxJob.name == "review_order")
                assert len(reviews) == ORDERS
                # Taken over once, under the same arq job: the victim's try counts.
                assert {r["id"]: r["attempts"] for r in reviews} == {
                    r["id"]: 2 if r["id"] in held else 1 for r in reviews
                }
        events = await OrderEvent.select(
            OrderEvent.order, OrderEvent.type, OrderEvent.to_status
        ).order_by(OrderEvent.id)
        findings = await ReviewFinding.select(ReviewFinding.order, ReviewFinding.rule)
        [mug] = await Product.select(Product.stock_reserved).where(Product.sku == "MUG")
    finally:
        await gate.aclose()
        await db.disconnect()

    print(f"{len(held)} jobs held; {ORDERS} orders decided {recovered_in:.1f} s after kill -9")
    assert recovered_in < 60
    by_order: dict[int, list[tuple[str, str]]] = {}
    for event in sorted(events, key=lambda e: e["order"]):
        by_order.setdefault(event["order"], []).append((event["type"], event["to_status"]))
    # Every order: one submission, one review started (by the victim), one approval.
    assert (
        list(by_order.values())
        == [[("submitted", "RECEIVED"), ("transition", "IN_REVIEW"), ("transition", "APPROVED")]]
        * ORDERS
    )
    assert sorted((f["order"], f["rule"]) for f in findings) == sorted(
        (order, rule) for order in by_order for rule in ("gate", "stock")
    )
    assert mug["stock_reserved"] == 2 * ORDERS  # each order reserved its 2 mugs once
