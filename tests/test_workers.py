"""With REDIS_URL the API writes jobs and enqueues them to arq, an arq worker runs them,
events travel via Redis."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio as redis
from arq.constants import result_key_prefix
from arq.jobs import Job, JobStatus
from conftest import Api, make_settings, submit
from piccolo.engine.postgres import PostgresEngine

from ordergraph.core import db
from ordergraph.core.arq_jobs import JoiningRedis, Names
from ordergraph.core.jobs import enqueue_many
from ordergraph.core.plugins import PluginInfo, hookimpl
from ordergraph.core.settings import Settings
from ordergraph.core.tables import OutboxJob
from ordergraph.worker import check, run_worker
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
def steps() -> list[tuple[str, int]]:
    """When the worker started and ended each ``step`` job."""
    return []


@pytest.fixture
async def worker(
    api: Api, settings: Settings, runs: collections.Counter[str], steps: list[tuple[str, int]]
) -> AsyncIterator[None]:
    """A worker in this process, with two jobs that fail."""

    async def flaky(payload: dict[str, Any]) -> None:
        runs["flaky"] += 1
        if runs["flaky"] <= 2:
            raise Boom(f"flaky attempt {runs['flaky']}")

    async def broken(payload: dict[str, Any]) -> None:
        runs["broken"] += 1
        raise Boom("the carrier is down")

    async def counted(payload: dict[str, Any]) -> None:
        runs[f"counted {payload['n']}"] += 1

    async def step(payload: dict[str, Any]) -> None:
        steps.append(("start", payload["n"]))
        await asyncio.sleep(0.01)  # long enough for another job to start meanwhile
        steps.append(("end", payload["n"]))

    @hookimpl
    def plugin_info() -> PluginInfo:
        return PluginInfo(category="other", description="failing jobs", enabled_by_default=True)

    @hookimpl
    def register_jobs() -> dict[str, Any]:
        return {"flaky": flaky, "broken": broken, "counted": counted, "step": step}

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


async def test_arqs_health_check_reports_the_running_worker_healthy(
    api: Api, settings: Settings, redis_url: str
):
    # No worker has run on this Redis yet.
    assert await asyncio.to_thread(check, settings) == 1
    stop, started = asyncio.Event(), asyncio.Event()
    api_engine = db.current().engine
    running = asyncio.create_task(
        run_worker(settings, installed_plugins={"stock": stock}, stop=stop, started=started)
    )
    try:
        await asyncio.wait_for(started.wait(), 10)
        client = redis.Redis.from_url(redis_url)
        health_key = Names.of(settings.database_url).queue + ":health-check"
        async with asyncio.timeout(10):
            while not await client.exists(health_key):
                await asyncio.sleep(0.05)
        await client.aclose()
        # arq's check (``arq --check``): the key the worker refreshes is there.
        assert await asyncio.to_thread(check, settings) == 0
    finally:
        stop.set()
        await running
        if isinstance(api_engine, PostgresEngine):
            await api_engine.close_connection_pool()
    # A worker that stopped took its key with it.
    assert await asyncio.to_thread(check, settings) == 1


async def test_an_operator_reads_a_jobs_outcome_from_arq_under_the_outbox_rows_id(
    api: Api, worker: None, redis_url: str
):
    async with db.write_transaction():
        [job_id] = await enqueue_many([("counted", {"n": 1})])
    [row] = await wait_for_outbox({"done"})
    client = redis.Redis.from_url(redis_url)
    names = Names.of(api.rt.settings.database_url)
    job = Job(names.job_id(job_id), client, _queue_name=names.queue)
    try:
        assert await job.status() == JobStatus.complete
        info = await job.result_info()
        assert info is not None and info.success and info.function == "counted"
        assert info.args[0] == job_id == row["id"]
        # Sent again (a relay that read the row before it ended), it does not run again.
        assert await api.rt.carrier.enqueue([{**row, "payload": '{"n": 1}'}]) == 0
    finally:
        await client.aclose()


async def test_the_jobs_of_one_order_run_one_after_another_in_the_order_they_were_written(
    api: Api, worker: None, steps: list[tuple[str, int]]
):
    order = await submit(api)
    async with db.write_transaction():
        await enqueue_many([("step", {"order_id": order["databaseId"], "n": n}) for n in range(5)])
    await wait_for_outbox({"done"})
    assert steps == [(edge, n) for n in range(5) for edge in ("start", "end")]


STALLED_ENQUEUE = """
import asyncio, sys
from ordergraph.core import db, jobs
from ordergraph.core.arq_jobs import Carrier

async def main(database_url, redis_url):
    # As every process of the Redis deployment: commits notify once a second at most.
    await db.connect(database_url, job_notifications_once_a_second=True)
    async with db.write_transaction():  # notifies (no carrier yet: not enqueued)
        await jobs.enqueue_job("counted", {"n": 0})
    carrier = Carrier(redis_url, database_url)
    await carrier.start()
    async with db.write_transaction():  # on PostgreSQL, in the same second: silent
        await jobs.enqueue_many([("counted", {"n": n}) for n in (1, 2)])
    print("enqueued", flush=True)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_jobs_of_a_process_killed_between_commit_and_enqueue_are_relayed_and_run_once(
    api: Api, worker: None, runs: collections.Counter[str], redis_url: str
):
    # A Redis that takes the connection and never answers: the process commits its jobs
    # and then waits on the enqueue, where it is killed.
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    stalled = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = stalled.sockets[0].getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-c", STALLED_ENQUEUE, api.rt.settings.database_url,
         f"redis://127.0.0.1:{port}/0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(30):
            while await OutboxJob.count().where(OutboxJob.name == "counted") < 3:
                assert process.poll() is None, process.communicate()
                await asyncio.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        out, _ = process.communicate(timeout=10)
    finally:
        stalled.close()
    assert out == b""  # it never got past the enqueue

    jobs = await wait_for_outbox({"done"})
    assert [(job["name"], job["status"], job["attempts"]) for job in jobs] == [
        ("counted", "done", 1)
    ] * 3
    assert [runs[f"counted {n}"] for n in range(3)] == [1, 1, 1]
    client = redis.Redis.from_url(redis_url)
    names = Names.of(api.rt.settings.database_url)
    try:
        for job in jobs:
            assert await client.exists(result_key_prefix + names.job_id(job["id"]))
    finally:
        await client.aclose()


async def test_transactions_a_worker_makes_at_once_go_as_one_and_each_gets_its_own_answer(
    redis_url: str,
):
    client = JoiningRedis.from_url(redis_url, client_name="joining")
    observer = redis.Redis.from_url(redis_url)
    await observer.set("text", "not a number")

    async def count_up(key: str) -> list[Any]:
        async with client.pipeline() as transaction:
            transaction.incr(key)
            transaction.incr(key)
            transaction.get(key)
            return await transaction.execute()

    try:
        first, failed, second = await asyncio.gather(
            count_up("a"), count_up("text"), count_up("b"), return_exceptions=True
        )
        connections = [c for c in await observer.client_list() if c["name"] == "joining"]
    finally:
        await client.aclose()
        await observer.aclose()
    assert first == [1, 2, b"2"]
    assert second == [1, 2, b"2"]
    assert isinstance(failed, redis.ResponseError)
    # Three transactions at once went to Redis on one connection: as one.
    assert len(connections) == 1
