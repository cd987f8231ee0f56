"""The outbox: jobs are written with the state change, run after commit, retried, never twice."""

from __future__ import annotations

import asyncio
import collections
import datetime
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import make_settings

from ordergraph.core import db
from ordergraph.core.jobs import LEASE, EmbeddedRunner, enqueue_job, enqueue_many, run_job
from ordergraph.core.plugins import PluginConfigError, PluginInfo, hookimpl
from ordergraph.core.runtime import Runtime, build
from ordergraph.core.tables import Customer, OutboxJob


class Boom(RuntimeError):
    pass


class Recorder:
    """Job handlers that record every run, so tests count side effects, not return values."""

    def __init__(self) -> None:
        self.runs: collections.Counter[str] = collections.Counter()
        self.greeted: list[str] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def greet(self, payload: dict[str, Any]) -> None:
        """Reads the row committed with the job: proves the job runs after the commit."""
        row = await Customer.select(Customer.name).where(Customer.email == payload["email"]).first()
        self.greeted.append(row["name"] if row else "<missing>")

    async def count(self, payload: dict[str, Any]) -> None:
        await asyncio.sleep(0)  # let other runners interleave with this one
        self.runs[payload["key"]] += 1

    async def flaky(self, payload: dict[str, Any]) -> None:
        self.runs["flaky"] += 1
        if self.runs["flaky"] <= 2:
            raise Boom(f"flaky attempt {self.runs['flaky']}")

    async def broken(self, payload: dict[str, Any]) -> None:
        self.runs["broken"] += 1
        raise Boom("the carrier is down")

    async def slow(self, payload: dict[str, Any]) -> None:
        """Runs until the test releases it."""
        self.started.set()
        await self.release.wait()
        self.runs["slow"] += 1


def jobs_plugin(recorder: Recorder) -> SimpleNamespace:
    """A plugin, as pluggy sees one: any object with hookimpl functions."""

    @hookimpl
    def plugin_info() -> PluginInfo:
        return PluginInfo(category="other", description="jobs for tests", enabled_by_default=True)

    @hookimpl
    def register_jobs() -> dict[str, Any]:
        return {
            "greet": recorder.greet,
            "count": recorder.count,
            "flaky": recorder.flaky,
            "broken": recorder.broken,
            "slow": recorder.slow,
        }

    return SimpleNamespace(plugin_info=plugin_info, register_jobs=register_jobs)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def rt(database_url: str, recorder: Recorder) -> AsyncIterator[Runtime]:
    """A runtime with the embedded runner and the test jobs registered by a plugin."""
    runtime = build(make_settings(database_url), installed_plugins={"jobs": jobs_plugin(recorder)})
    await runtime.open(run_jobs=True)
    try:
        yield runtime
    finally:
        await runtime.close()


async def outbox() -> list[dict[str, Any]]:
    return await OutboxJob.select().order_by(OutboxJob.id)


def runner_of(rt: Runtime) -> EmbeddedRunner:
    assert isinstance(rt.runner, EmbeddedRunner)
    return rt.runner


async def test_a_job_of_a_rolled_back_transaction_never_runs(rt: Runtime, recorder: Recorder):
    with pytest.raises(Boom):
        async with db.write_transaction():
            await Customer.insert(Customer(email="grace@example.com", name="Grace"))
            await enqueue_job("greet", {"email": "grace@example.com"})
            raise Boom("the order was invalid after all")
    rt.wake_jobs()
    await runner_of(rt).drain()

    assert await outbox() == []
    assert recorder.greeted == []


async def test_a_committed_job_runs_after_the_commit_and_sees_the_change(
    rt: Runtime, recorder: Recorder
):
    runner = runner_of(rt)
    async with db.write_transaction():
        await Customer.insert(Customer(email="grace@example.com", name="Grace"))
        await enqueue_job("greet", {"email": "grace@example.com"})
        # The runner polls while the transaction is open: the job is not visible to it yet.
        runner.wake()
        await asyncio.wait_for(runner.idle.wait(), 10)
        assert recorder.greeted == []
    rt.wake_jobs()
    await runner.drain()

    assert recorder.greeted == ["Grace"]
    [job] = await outbox()
    assert (job["name"], job["status"], job["attempts"]) == ("greet", "done", 1)
    assert job["finished_at"] is not None


async def test_a_job_that_fails_twice_is_retried_until_done(rt: Runtime, recorder: Recorder):
    async with db.write_transaction():
        await enqueue_job("flaky", {})
    rt.wake_jobs()
    await runner_of(rt).drain()

    [job] = await outbox()
    assert (job["status"], job["attempts"]) == ("done", 3)
    assert recorder.runs["flaky"] == 3


async def test_a_job_that_always_fails_ends_failed_with_its_error(rt: Runtime, recorder: Recorder):
    async with db.write_transaction():
        await enqueue_many([("broken", {})], max_attempts=3)
    rt.wake_jobs()
    await runner_of(rt).drain()

    [job] = await outbox()
    assert (job["status"], job["attempts"]) == ("failed", 3)
    assert job["last_error"] == "Boom: the carrier is down"
    assert job["finished_at"] is not None
    assert recorder.runs["broken"] == 3


async def test_an_unknown_job_ends_failed_naming_it(rt: Runtime):
    async with db.write_transaction():
        await enqueue_many([("no_such_job", {})], max_attempts=1)
    rt.wake_jobs()
    await runner_of(rt).drain()

    [job] = await outbox()
    assert job["status"] == "failed"
    assert "no job named 'no_such_job'" in job["last_error"]


async def test_retries_wait_with_exponential_backoff(database_url: str, recorder: Recorder):
    runtime = build(
        make_settings(database_url, job_retry_base_seconds=60),
        installed_plugins={"jobs": jobs_plugin(recorder)},
    )
    await runtime.open(run_jobs=False)
    try:
        async with db.write_transaction():
            [job_id] = await enqueue_many([("broken", {})])
        for attempt, delay in ((1, 60), (2, 120), (3, 240)):
            before = db.now()
            assert await run_job(runtime, job_id) == "pending"
            [job] = await outbox()
            assert job["attempts"] == attempt
            wait = job["run_after"] - before
            assert (
                datetime.timedelta(seconds=delay) <= wait < datetime.timedelta(seconds=delay + 30)
            )
            # Not due yet: no runner may take it before its time.
            assert await run_job(runtime, job_id) is None
            await OutboxJob.update({OutboxJob.run_after: db.now()}).where(OutboxJob.id == job_id)
    finally:
        await runtime.close()


async def test_a_job_whose_runner_crashed_is_taken_over_after_its_lease(
    rt: Runtime, recorder: Recorder
):
    # What a runner that died mid-job leaves behind: running, one attempt, lease expired.
    expired = db.now() - datetime.timedelta(seconds=1)
    leased = db.now() + LEASE
    await OutboxJob.insert(
        OutboxJob(name="count", payload='{"key": "orphan"}', status="running", attempts=1,
                  run_after=expired),
        OutboxJob(name="count", payload='{"key": "busy"}', status="running", attempts=1,
                  run_after=leased),
    )  # fmt: skip
    await runner_of(rt).drain()

    orphan, busy = await outbox()
    assert (orphan["status"], orphan["attempts"]) == ("done", 2)
    # A job whose lease still holds belongs to a live runner and is left alone.
    assert (busy["status"], busy["attempts"]) == ("running", 1)
    assert recorder.runs == {"orphan": 1}


async def test_two_runners_on_one_outbox_run_every_job_exactly_once(
    database_url: str, recorder: Recorder
):
    runtime = build(make_settings(database_url), installed_plugins={"jobs": jobs_plugin(recorder)})
    await runtime.open(run_jobs=False)
    runners = [EmbeddedRunner(runtime, poll=0.05), EmbeddedRunner(runtime, poll=0.05)]
    try:
        for runner in runners:
            await runner.start()
        async with db.write_transaction():
            await enqueue_many([("count", {"key": f"job-{n}"}) for n in range(40)])
        for runner in runners:
            runner.wake()
        await asyncio.wait_for(asyncio.gather(*(runner.drain() for runner in runners)), 60)
    finally:
        for runner in runners:
            await runner.stop()
        await runtime.close()

    assert recorder.runs == {f"job-{n}": 1 for n in range(40)}


async def test_concurrent_claims_of_the_same_jobs_run_each_once(rt: Runtime, recorder: Recorder):
    await runner_of(rt).stop()  # only the calls below may run the jobs
    async with db.write_transaction():
        ids = await enqueue_many([("count", {"key": f"job-{n}"}) for n in range(10)])

    results = await asyncio.gather(*(run_job(rt, job_id) for job_id in ids for _ in range(3)))

    assert collections.Counter(results) == {"done": 10, None: 20}
    assert recorder.runs == {f"job-{n}": 1 for n in range(10)}
    assert {job["status"] for job in await outbox()} == {"done"}


async def test_stopping_the_runner_finishes_the_job_in_hand_and_starts_no_other(
    rt: Runtime, recorder: Recorder
):
    async with db.write_transaction():
        await enqueue_many([("slow", {}), ("count", {"key": "next"})])
    rt.wake_jobs()
    await asyncio.wait_for(recorder.started.wait(), 10)

    runner = runner_of(rt)
    stopping = asyncio.create_task(runner.stop())
    await asyncio.sleep(0)  # stop() begins: it waits for the job in hand
    assert runner.stopping and not stopping.done()
    recorder.release.set()
    await asyncio.wait_for(stopping, 10)

    in_hand, following = await outbox()
    # Not left `running` for a lease to expire: the job finished and is recorded done.
    assert (in_hand["status"], recorder.runs["slow"]) == ("done", 1)
    assert (following["status"], following["attempts"]) == ("pending", 0)


def test_a_plugin_job_may_not_replace_a_core_job(tmp_path):
    @hookimpl
    def register_jobs() -> dict[str, Any]:
        async def hijack(payload: dict[str, Any]) -> None:
            pass

        return {"run_order_event_hooks": hijack}

    plugin = SimpleNamespace(register_jobs=register_jobs)
    with pytest.raises(PluginConfigError, match="run_order_event_hooks"):
        build(
            make_settings(f"sqlite:///{tmp_path}/og.db", plugins={"thief": {"enabled": True}}),
            installed_plugins={"thief": plugin},
        )


async def test_done_jobs_past_their_retention_are_deleted_failed_ones_are_kept(
    database_url: str, recorder: Recorder
):
    """A runner that starts purges done jobs finished more than ``outbox_retention_days``
    ago, so the outbox does not grow without end; failed jobs stay for an operator."""
    settings = make_settings(database_url, outbox_retention_days=7)
    runtime = build(settings, installed_plugins={"jobs": jobs_plugin(recorder)})
    await runtime.open(run_jobs=False)
    try:
        now, day = db.now(), datetime.timedelta(days=1)
        async with db.write_transaction():
            await OutboxJob.insert(
                OutboxJob(name="greet", status="done", finished_at=now - 8 * day),
                OutboxJob(name="greet", status="done", finished_at=now - 6 * day),
                OutboxJob(name="broken", status="failed", finished_at=now - 30 * day),
            )
        runner = EmbeddedRunner(runtime)
        await runner.start()
        await runner.drain()
        await runner.stop()
        kept = [(job["status"], (now - job["finished_at"]).days) for job in await outbox()]
        assert kept == [("done", 6), ("failed", 30)]
    finally:
        await runtime.close()
