"""The event bus: every API process delivers every event to its own subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from conftest import (
    SUBMIT,
    make_settings,
    new_postgres_database,
    order_input,
    seed_shop,
    serve_api,
)
from websockets.asyncio.client import ClientConnection, connect

from ordergraph.core import auth, db
from ordergraph.core.events import (
    QUEUE_SIZE,
    InProcessBus,
    RedisBus,
    SubscriberTooSlow,
    channel_for,
)
from ordergraph.core.limits import LOOKUPS_PER_ORDER

ORDERGRAPH = str(Path(sys.executable).with_name("ordergraph"))
PROBE = "probe"


def event(order_id: int, kind: str = "submitted") -> dict[str, Any]:
    return {
        "id": order_id,
        "order_id": order_id,
        "customer_id": 1,
        "type": kind,
        "from_status": None,
        "to_status": "RECEIVED",
        "actor": "test",
        "data": {},
        "at": db.now().isoformat(),
    }


@contextlib.asynccontextmanager
async def running(bus: InProcessBus) -> AsyncIterator[InProcessBus]:
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()


async def take(messages: AsyncIterator[dict[str, Any]], count: int) -> list[int]:
    """The order ids of the next ``count`` messages."""
    async with asyncio.timeout(10):
        return [(await anext(messages))["order_id"] for _ in range(count)]


CHANNEL = channel_for("postgresql://og@db.internal:5432/shop")


async def test_two_redis_buses_both_deliver_every_event_to_their_subscribers(redis_url: str):
    async with (
        running(RedisBus(redis_url, CHANNEL)) as first,
        running(RedisBus(redis_url, CHANNEL)) as second,
        first.subscribe() as first_a,
        first.subscribe() as first_b,
        second.subscribe() as second_a,
    ):
        # Each bus has subscribed to Redis once subscribe() returned: nothing published
        # now is lost.
        await first.publish(event(1))
        await second.publish(event(2))
        await first.publish(event(3))

        for messages in (first_a, first_b, second_a):
            assert await take(messages, 3) == [1, 2, 3]


async def test_a_bus_listens_to_redis_only_once_it_has_a_subscriber(redis_url: str):
    """A worker, which serves no subscription, receives none of the channel's traffic."""
    client = redis.Redis.from_url(redis_url)
    channel = channel_for("postgresql://og@db.internal:5432/listening")

    async def listeners() -> int:
        return dict(await client.pubsub_numsub(channel))[channel.encode()]

    try:
        async with running(RedisBus(redis_url, channel)) as bus:
            assert await listeners() == 0
            async with bus.subscribe() as messages:
                assert await listeners() == 1
                await bus.publish(event(1))
                assert await take(messages, 1) == [1]
    finally:
        await client.aclose()


async def test_concurrent_publishes_arrive_whole_and_in_the_order_they_were_made(redis_url: str):
    name = f"og-publisher-{os.getpid()}"
    separator = "&" if "?" in redis_url else "?"
    async with (
        running(RedisBus(f"{redis_url}{separator}client_name={name}", CHANNEL)) as publisher,
        running(RedisBus(redis_url, CHANNEL)) as listener,
        listener.subscribe() as messages,
    ):
        # 50 callers at once, each publishing two events: each caller's pair stays
        # together, in the order the calls were made.
        await asyncio.gather(
            *(publisher.publish_many([event(2 * n), event(2 * n + 1)]) for n in range(50))
        )
        assert await take(messages, 100) == list(range(100))
        # They shared their round trips: one connection to Redis, not one per caller.
        clients = await listener.redis.client_list()
        assert len([c for c in clients if c["name"] == name]) == 1


async def test_two_deployments_on_one_redis_do_not_hear_each_other(redis_url: str):
    """Pub/sub ignores Redis database numbers: the channel names the deployment's database."""
    shop = channel_for("postgresql://og:secret@db.internal:5432/shop")
    staging = channel_for("postgresql://og:secret@db.internal:5432/shop_staging")
    other_server = channel_for("postgresql://og:secret@db2.internal:5432/shop")
    assert len({shop, staging, other_server, channel_for("sqlite:///shop.db")}) == 4
    assert "secret" not in shop
    # Another Redis database number, as another deployment would choose.
    elsewhere = redis_url.rsplit("/", 1)[0] + "/15"
    async with (
        running(RedisBus(redis_url, shop)) as ours,
        running(RedisBus(elsewhere, staging)) as theirs,
        ours.subscribe() as ours_hear,
        theirs.subscribe() as theirs_hear,
    ):
        await theirs.publish(event(1))
        await ours.publish(event(2))
        await theirs.publish(event(3))

        assert await take(ours_hear, 1) == [2]
        assert await take(theirs_hear, 2) == [1, 3]


async def test_a_subscriber_that_falls_too_far_behind_is_told_to_resubscribe():
    bus = InProcessBus()
    async with bus.subscribe() as slow:
        for n in range(QUEUE_SIZE + 1):
            await bus.publish(event(n))
        received = []
        with pytest.raises(SubscriberTooSlow):
            async with asyncio.timeout(10):
                async for message in slow:
                    received.append(message["order_id"])
    assert received == sorted(received)
    assert 0 < len(received) < QUEUE_SIZE + 1

    async with bus.subscribe() as fresh:
        await bus.publish(event(7))
        assert await take(fresh, 1) == [7]


# -- Real processes: two `ordergraph serve` and one `ordergraph worker` on PostgreSQL ----------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A new PostgreSQL database, migrated with ``ordergraph migrate`` as before a deploy."""
    async with new_postgres_database() as url:
        yield url


@contextlib.contextmanager
def processes(tmp_path: Path, env: dict[str, str], *commands: list[str]) -> Iterator[list[Path]]:
    """Start the commands; yield their log files; always terminate them."""
    started: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for n, command in enumerate(commands):
            log = tmp_path / f"process-{n}.log"
            logs.append(log)
            with log.open("wb") as out:
                started.append(
                    subprocess.Popen(
                        [ORDERGRAPH, *command], env=env, cwd=tmp_path, stdout=out, stderr=out
                    )
                )
        yield logs
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def wait_until_healthy(port: int, log: Path) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        try:
            async with asyncio.timeout(15):
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        if (await client.get("/health")).status_code == 200:
                            return
                    await asyncio.sleep(0.1)
        except TimeoutError:
            pytest.fail(f"ordergraph serve on port {port} did not start:\n{log.read_text()}")


async def subscribe(port: int, token: str, stack: contextlib.AsyncExitStack) -> ClientConnection:
    ws = await stack.enter_async_context(
        connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=["graphql-transport-ws"])
    )
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    query = "subscription { orderEvents { orderId type toStatus } }"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
    return ws


async def next_event(ws: ClientConnection, timeout: float = 0.1) -> dict[str, Any]:
    message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    assert message["type"] == "next", message
    return message["payload"]["data"]["orderEvents"]


async def wait_until_live(
    sockets: list[ClientConnection], redis_url: str, database_url: str
) -> None:
    """Publish probes on the Redis channel until every subscription has delivered one."""
    client = redis.Redis.from_url(redis_url)
    waiting = set(sockets)
    try:
        async with asyncio.timeout(10):
            while waiting:
                await client.publish(channel_for(database_url), json.dumps(event(0, PROBE)))
                for ws in list(waiting):
                    with contextlib.suppress(TimeoutError):
                        if (await next_event(ws))["type"] == PROBE:
                            waiting.discard(ws)
    finally:
        await client.aclose()


async def submitted_event(ws: ClientConnection, order_id: str) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            received = await next_event(ws, timeout=15)
            if received["type"] != PROBE and received["orderId"] == order_id:
                return received


async def test_two_api_processes_and_a_worker_deliver_an_event_to_both(
    postgres_url: str, redis_url: str, tmp_path: Path
):
    env = {k: v for k, v in os.environ.items() if k != "ORDERGRAPH_CONFIG"}
    env.update(DATABASE_URL=postgres_url, REDIS_URL=redis_url)
    migrate = subprocess.run(
        [ORDERGRAPH, "migrate"], env=env, cwd=tmp_path, capture_output=True, timeout=30
    )
    assert migrate.returncode == 0, migrate.stderr.decode()
    await db.connect(postgres_url)
    try:
        await seed_shop()
        token = await auth.create_token("admin", name="alice")
    finally:
        await db.disconnect()

    ports = [free_port(), free_port()]
    with processes(
        tmp_path,
        env,
        ["serve", "--port", str(ports[0])],
        ["serve", "--port", str(ports[1])],
        ["worker"],
    ) as logs:
        for port, log in zip(ports, logs, strict=False):
            await wait_until_healthy(port, log)
        async with contextlib.AsyncExitStack() as stack:
            sockets = [await subscribe(port, token, stack) for port in ports]
            await wait_until_live(sockets, redis_url, postgres_url)

            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[0]}") as client:
                response = await client.post(
                    "/graphql",
                    json={"query": SUBMIT, "variables": {"input": order_input()}},
                    headers={"Authorization": f"Bearer {token}"},
                )
            order = response.json()["data"]["submitOrder"]["order"]

            received = [await submitted_event(ws, order["id"]) for ws in sockets]

    assert received == [{"orderId": order["id"], "type": "submitted", "toStatus": "RECEIVED"}] * 2


# -- Without Redis: the database serves what it can, and the service says what is missing ------

TRACK = """
query($number: String!) {
  trackOrder(number: $number, email: "nobody@example.com") { status }
}
"""


async def test_without_redis_the_api_serves_counts_lookups_itself_and_is_not_ready(
    database_url: str, caplog: pytest.LogCaptureFixture
):
    closed = free_port()
    settings = make_settings(database_url, redis_url=f"redis://127.0.0.1:{closed}/0")
    with caplog.at_level(logging.WARNING, logger="ordergraph.core.events"):
        async with serve_api(settings) as api:
            answers = [
                await api.gql(TRACK, {"number": "SO-000001"}, as_=None)
                for _ in range(LOOKUPS_PER_ORDER.count + 1)
            ]
            submitted = await api.data(SUBMIT, {"input": order_input()})
            health = await api.client.get("/health")
            ready = await api.client.get("/ready")

    [started] = [r for r in caplog.records if "starting without it" in r.getMessage()]
    assert f"Redis at 127.0.0.1:{closed}/0 (REDIS_URL) is unreachable" in started.getMessage()
    assert started.exc_info is None
    # The lookups are answered, and limited by this process while Redis is away.
    assert answers[:-1] == [{"data": {"trackOrder": None}}] * LOOKUPS_PER_ORDER.count
    assert answers[-1]["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert submitted["submitOrder"]["order"]["status"] == "RECEIVED"
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert ready.status_code == 503
    assert ready.json()["database"] == "ok"
    assert ready.json()["redis"].startswith(f"Redis at 127.0.0.1:{closed}/0 (REDIS_URL)")


async def test_without_redis_a_bus_delivers_its_own_events_to_its_subscribers():
    bus = RedisBus(f"redis://127.0.0.1:{free_port()}/0", CHANNEL)
    async with running(bus), bus.subscribe() as messages:
        await bus.publish_many([event(1), event(2)])
        assert await take(messages, 2) == [1, 2]


async def test_serve_without_redis_says_so_in_one_line_and_answers_unready(tmp_path: Path):
    port, closed = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ORDERGRAPH_CONFIG", "DATABASE_URL", "REDIS_URL")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path}/shop.db", REDIS_URL=f"redis://127.0.0.1:{closed}/0"
    )
    with processes(tmp_path, env, ["serve", "--port", str(port)]) as [log]:
        await wait_until_healthy(port, log)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            ready = await client.get("/ready")
    printed = log.read_text()
    assert "Traceback" not in printed
    [line] = [line for line in printed.splitlines() if "Redis" in line]
    assert f"Redis at 127.0.0.1:{closed}/0 (REDIS_URL) is unreachable" in line
    assert ready.status_code == 503
