"""With REDIS_URL the API only writes jobs, a worker runs them, events travel via Redis."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import Api, make_settings, submit
from piccolo.engine.postgres import PostgresEngine

from ordergraph.core import db
from ordergraph.core.jobs import enqueue_many
from ordergraph.core.plugins import PluginInfo, hookimpl
from ordergraph.core.settings import Settings
from ordergraph.core.tables import OutboxJob
from ordergraph.worker import run_worker
from plugins.review_rules import stock


class Boom(RuntimeError):
    pass


@pytest.fixture
def settings(database_url: str, redis_url: str) -> Settings:
    """Overrides conftest's: the ``api`` app of these tests runs with Redis, and reviews
    orders with the stock rule."""
    return make_settings(database_url, redis_url=redis_url, plugins={"stock": {"enabled": True}})


@pytest.fixture
def runs() -> collections.Counter[str]:
    """How often the worker ran each test job."""
    return collections.Counter()


@pytest.fixture
async def worker(
    api: Api, settings: Settings, runs: collections.Counter[str]
) -> AsyncIterator[None]:
    """A worker in this process, with two jobs that fail."""

    async def flaky(payload: dict[str, Any]) -> None:
        runs["flaky"] += 1
        if runs["flaky"] <= 2:
            raise Boom(f"flaky attempt {runs['flaky']}")

    async def broken(payload: dict[str, Any]) -> None:
        runs["broken"] += 1
        raise Boom("the carrier is down")

    @hookimpl
    def plugin_info() -> PluginInfo:
        return PluginInfo(category="other", description="failing jobs", enabled_by_default=True)

    @hookimpl
    def register_jobs() -> dict[str, Any]:
        return {"flaky": flaky, "broken": broken}

    plugin = SimpleNamespace(plugin_info=plugin_info, register_jobs=register_jobs)
    # The worker's runtime connects the process's one database again (tables are
    # rebound to its engine): the test may only go on once that is done, and the
    # API's engine is closed here once the worker has closed its own.
    api_engine = db.current().engine
    stop, started = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(
        run_worker(
            settings, installed_plugins={"jobs": plugin, "stock": stock}, stop=stop, started=started
        )
    )
    await asyncio.wait_for(started.wait(), 10)
    try:
        yield
    finally:
        stop.set()
        await running
        if isinstance(api_engine, PostgresEngine):
            await api_engine.close_connection_pool()


async def wait_for_outbox(done: set[str], timeout: float = 30) -> list[dict[str, Any]]:
    """Poll the outbox until every job's status is in ``done``; return the jobs."""
    async with asyncio.timeout(timeout):
        while True:
            jobs = await OutboxJob.select().order_by(OutboxJob.id)
            if jobs and all(job["status"] in done for job in jobs):
                return jobs
            await asyncio.sleep(0.05)


async def test_order_jobs_run_on_the_worker_and_events_travel_through_redis(api: Api, worker: None):
    assert api.rt.runner is None  # the API process writes jobs; it runs none
    assert (await api.client.get("/health")).json()["jobs"] == "workers"

    async with api.rt.bus.subscribe() as messages:
        order = await submit(api)
        events = []
        async with asyncio.timeout(30):
            async for message in messages:
                events.append((message["order_id"], message["type"], message["to_status"]))
                if len(events) == 3:
                    break

    order_id = order["databaseId"]
    # The API publishes the submission, the worker the review's two transitions.
    assert events == [
        (order_id, "submitted", "RECEIVED"),
        (order_id, "transition", "IN_REVIEW"),
        (order_id, "transition", "APPROVED"),
    ]
    # No plugin handles order events: the review is the order's only job (the API
    # process runs none, so the worker ran it).
    [job] = await wait_for_outbox({"done"})
    assert (job["name"], job["attempts"]) == ("review_order", 1)


async def test_failing_jobs_on_a_worker_are_retried_by_the_outbox(
    api: Api, worker: None, runs: collections.Counter[str]
):
    async with db.write_transaction():
        await enqueue_many([("flaky", {}), ("broken", {})], max_attempts=3)
    api.rt.wake_jobs()

    flaky, broken = await wait_for_outbox({"done", "failed"})

    assert (flaky["status"], flaky["attempts"], runs["flaky"]) == ("done", 3, 3)
    assert (broken["status"], broken["attempts"], runs["broken"]) == ("failed", 3, 3)
    assert broken["last_error"] == "Boom: the carrier is down"
