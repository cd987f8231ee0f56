"""The outbox: jobs are written with the state change, run after commit, retried, never twice."""

from __future__ import annotations

import asyncio
import collections
import contextvars
import datetime
import sqlite3
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest
from conftest import make_settings

from ordergraph.core import db
from ordergraph.core import jobs as jobs_module
from ordergraph.core.assembly import build
from ordergraph.core.jobs import JobRunner, claim, enqueue_job, enqueue_many, run_claimed
from ordergraph.core.plugins import PluginConfigError, PluginInfo, hookimpl
from ordergraph.core.runtime import Runtime
from ordergraph.core.settings import ConfigError, Settings
from ordergraph.core.tables import Customer, OutboxJob
from ordergraph.core.waiting import wait_until_set


class Boom(RuntimeError):
    pass


class Recorder:
    """Job handlers that record every run, so tests count side effects, not return values."""

    def __init__(self) -> None:
        self.runs: collections.Counter[str] = collections.Counter()
        self.greeted: list[str] = []
        self.in_order: list[tuple[int, int]] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.counted = asyncio.Event()
        self.wake: Any = lambda: None

    async def greet(self, payload: dict[str, Any]) -> None:
        """Reads the row committed with the job: proves the job runs after the commit."""
        row = await Customer.select(Customer.name).where(Customer.email == payload["email"]).first()
        self.greeted.append(row["name"] if row else "<missing>")

    async def count(self, payload: dict[str, Any]) -> None:
        await asyncio.sleep(0)  # let other runners interleave with this one
        self.runs[payload["key"]] += 1
        self.counted.set()

    async def flaky(self, payload: dict[str, Any]) -> None:
        self.runs["flaky"] += 1
        if self.runs["flaky"] <= 2:
            raise Boom(f"flaky attempt {self.runs['flaky']}")

    async def broken(self, payload: dict[str, Any]) -> None:
        self.runs["broken"] += 1
        raise Boom("the carrier is down")

    async def slow(self, payload: dict[str, Any]) -> None:
        """Runs until the test releases it."""
        self.runs["slow started"] += 1
        self.started.set()
        await self.release.wait()
        self.runs["slow"] += 1

    async def chain(self, payload: dict[str, Any]) -> None:
        """Writes the next link of a chain, as a review writes the assignment job."""
        self.runs["chain"] += 1
        if payload["left"]:
            async with db.write_transaction():
                await enqueue_many([("chain", {"left": payload["left"] - 1})])
            self.wake()

    async def step(self, payload: dict[str, Any]) -> None:
        """One step of an order; steps of different orders take different times."""
        for _ in range(payload["order_id"] * 3 % 7):
            await asyncio.sleep(0)
        self.in_order.append((payload["order_id"], payload["step"]))


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
            "step": recorder.step,
            "chain": recorder.chain,
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


def runner_of(rt: Runtime) -> JobRunner:
    assert isinstance(rt.runner, JobRunner)
    return rt.runner


async def quiet(rt: Runtime) -> None:
    """Wait until the periodic work that runs at start has run and no job is due (in this
    order: the runner's last look then covers what the periodic work wrote)."""
    assert rt.periodic is not None
    await asyncio.wait_for(rt.periodic.idle.wait(), 30)
    await runner_of(rt).drain()


LEASE = datetime.timedelta(seconds=30)


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
    rt: Runtime, recorder: Recorder, is_postgres: bool
):
    runner = runner_of(rt)
    async with db.write_transaction():
        await Customer.insert(Customer(email="grace@example.com", name="Grace"))
        await enqueue_job("greet", {"email": "grace@example.com"})
        if is_postgres:
            # Another runner claiming now, outside this transaction, finds nothing yet.
            # (On SQLite it would wait for the write lock that this transaction holds.)
            outside = asyncio.create_task(claim("other", 10, LEASE), context=contextvars.Context())
            assert await outside == []
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
            [claimed] = await claim("runner", 10, LEASE)
            assert await run_claimed(runtime, "runner", claimed) is False
            [job] = await outbox()
            assert (job["id"], job["status"], job["attempts"]) == (job_id, "pending", attempt)
            wait = job["run_after"] - before
            assert (
                datetime.timedelta(seconds=delay) <= wait < datetime.timedelta(seconds=delay + 30)
            )
            # Not due yet: no runner may take it before its time.
            assert await claim("runner", 10, LEASE) == []
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
    runners = [JobRunner(runtime), JobRunner(runtime)]
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


async def test_concurrent_claims_never_hand_one_job_to_two_runners(rt: Runtime):
    await runner_of(rt).stop()  # only the claims below may take the jobs
    async with db.write_transaction():
        ids = await enqueue_many([("count", {"key": f"job-{n}"}) for n in range(30)])

    batches = await asyncio.gather(*(claim(f"runner-{n}", 4, LEASE) for n in range(10)))
    batches.append(await claim("runner-10", 30, LEASE))  # whatever the others skipped

    claimed = [job.id for batch in batches for job in batch]
    assert sorted(claimed) == ids
    holders = {job["id"]: job["claimed_by"] for job in await outbox()}
    for n, batch in enumerate(batches):
        assert all(holders[job.id] == f"runner-{n}" for job in batch)
        assert len(batch) <= (4 if n < 10 else 30)


async def test_stopping_the_runner_finishes_the_job_in_hand_and_starts_no_other(
    rt: Runtime, recorder: Recorder
):
    async with db.write_transaction():
        await enqueue_many([("slow", {})])
    rt.wake_jobs()
    await asyncio.wait_for(recorder.started.wait(), 10)

    runner = runner_of(rt)
    stopping = asyncio.create_task(runner.stop())
    await asyncio.sleep(0)  # stop() begins: it waits for the job in hand
    assert runner.stopping and not stopping.done()
    async with db.write_transaction():
        await enqueue_many([("count", {"key": "next"})])
    rt.wake_jobs()
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
        runner = JobRunner(runtime)
        await runner.start()
        await runner.drain()
        await runner.stop()
        kept = [(job["status"], (now - job["finished_at"]).days) for job in await outbox()]
        assert kept == [("done", 6), ("failed", 30)]
    finally:
        await runtime.close()


async def noop_jobs(count: int) -> None:
    async with db.write_transaction():
        await enqueue_many([("count", {"key": f"job-{n}"}) for n in range(count)])


async def test_jobs_are_claimed_and_finished_in_batches(database_url: str, recorder: Recorder):
    runtime = build(make_settings(database_url), installed_plugins={"jobs": jobs_plugin(recorder)})
    # The runner's tasks start inside open(): they record into the log entered before it.
    with db.count_statements() as log:
        await runtime.open(run_jobs=True)
        try:
            await quiet(runtime)
            before = log.count
            await noop_jobs(100)
            runtime.wake_jobs()
            await runner_of(runtime).drain()
            sent = log.statements[before:]
        finally:
            await runtime.close()

    assert recorder.runs == {f"job-{n}": 1 for n in range(100)}
    # The 100 jobs were claimed 20 at a time (10 or 20 once half are done), each claim
    # recording the jobs done before it, and the last ones recorded in one statement.
    outbox = [s for s in sent if s.startswith('UPDATE "outbox"')]
    assert 5 <= len(outbox) <= 11, outbox
    # Beside them: the insert with its BEGIN and COMMIT, and when the runner went idle,
    # the next due time.
    assert len(sent) <= len(outbox) + 6, sent


async def test_a_runner_holding_one_job_at_a_time_spends_one_statement_per_job(
    database_url: str, recorder: Recorder
):
    """Light load: each job written by the one before it. The claim of the next job
    records the previous one done, instead of a claim and a finish for each."""
    runtime = build(make_settings(database_url), installed_plugins={"jobs": jobs_plugin(recorder)})
    with db.count_statements() as log:
        await runtime.open(run_jobs=True)
        try:
            await quiet(runtime)
            recorder.wake = runtime.wake_jobs
            before = log.count
            async with db.write_transaction():
                await enqueue_many([("chain", {"left": 19})])
            runtime.wake_jobs()
            await runner_of(runtime).drain()
            sent = log.statements[before:]
        finally:
            await runtime.close()

    assert recorder.runs["chain"] == 20
    assert [job["status"] for job in await outbox()][-20:] == ["done"] * 20
    outbox_updates = [s for s in sent if s.startswith('UPDATE "outbox"')]
    # Mostly a claim per job that also records the job before it done (the next job's
    # notification may come after the runner went idle: then that job's finish is sent
    # alone); a claim and a finish for each would be 40.
    assert len(outbox_updates) < 2 * 20, outbox_updates


async def test_an_idle_runner_sends_no_statements(database_url: str, recorder: Recorder):
    runtime = build(make_settings(database_url), installed_plugins={"jobs": jobs_plugin(recorder)})
    with db.count_statements() as log:
        await runtime.open(run_jobs=True)
        try:
            await noop_jobs(3)
            runtime.wake_jobs()
            await quiet(runtime)
            before = log.count
            # The idle period measured: a runner that polled would ask every second.
            await asyncio.sleep(3)
            idle = log.statements[before:]
        finally:
            await runtime.close()

    assert idle == []
    assert recorder.runs == {"job-0": 1, "job-1": 1, "job-2": 1}


async def insert_job_from_elsewhere(database_url: str, key: str) -> None:
    """Write a job the way another process does: on a connection this process knows
    nothing of, without waking its runner."""
    if database_url.startswith("sqlite"):

        def insert() -> None:
            # Another process waits for SQLite's write lock as the service does.
            connection = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30)
            with connection:
                connection.execute(
                    "INSERT INTO outbox (name, payload, status, attempts, max_attempts,"
                    " run_after, last_error, created_at)"
                    " VALUES ('count', ?, 'pending', 0, 5, ?, '', ?)",
                    (f'{{"key": "{key}"}}', str(db.now()), str(db.now())),
                )
            connection.close()

        await asyncio.to_thread(insert)
        return
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "INSERT INTO outbox (name, payload, run_after) VALUES ('count', $1, now())",
            f'{{"key": "{key}"}}',
        )
    finally:
        await connection.close()


async def test_a_job_committed_by_another_process_wakes_the_runner(rt: Runtime, recorder: Recorder):
    await quiet(rt)
    # Idle now, and not woken by this process again: only the database can tell it.
    await insert_job_from_elsewhere(rt.settings.database_url, "from elsewhere")

    async with asyncio.timeout(10):  # well below the runner's idle check (60 s)
        while recorder.runs["from elsewhere"] == 0:
            await asyncio.sleep(0.05)
    [job] = await outbox()
    assert (job["status"], job["attempts"]) in {("running", 1), ("done", 1)}


async def test_jobs_of_one_order_run_in_the_order_they_were_written(
    rt: Runtime, recorder: Recorder
):
    async with db.write_transaction():
        await enqueue_many(
            [
                ("step", {"order_id": order, "step": step})
                for step in range(5)
                for order in (1, 2, 3)
            ]
        )
    rt.wake_jobs()
    await runner_of(rt).drain()

    assert len(recorder.in_order) == 15
    for order in (1, 2, 3):
        assert [s for o, s in recorder.in_order if o == order] == [0, 1, 2, 3, 4]


async def test_a_job_that_waits_does_not_hold_up_the_others(rt: Runtime, recorder: Recorder):
    """On both databases a runner runs several jobs at once: one waiting for a carrier
    (here, for the test) leaves the others to run meanwhile."""
    async with db.write_transaction():
        await enqueue_many([("slow", {}), ("count", {"key": "beside"})])
    rt.wake_jobs()
    await asyncio.wait_for(recorder.started.wait(), 10)
    await asyncio.wait_for(recorder.counted.wait(), 10)
    assert (recorder.runs["beside"], recorder.runs["slow"]) == (1, 0)

    recorder.release.set()
    await runner_of(rt).drain()
    assert recorder.runs["slow"] == 1


async def test_a_long_job_of_a_live_runner_is_not_taken_over(database_url: str, recorder: Recorder):
    """The lease is short, so that a dead runner's jobs are soon due again; a live
    runner renews it while its job runs, however long that takes. (Renewals come every
    third of a lease: 3 s leave a busy machine 2 s to send one in time.)"""
    runtime = build(
        make_settings(database_url, job_lease_seconds=3.0),
        installed_plugins={"jobs": jobs_plugin(recorder)},
    )
    await runtime.open(run_jobs=True)
    other = JobRunner(runtime)
    try:
        async with db.write_transaction():
            await enqueue_many([("slow", {})])
        runtime.wake_jobs()
        await asyncio.wait_for(recorder.started.wait(), 10)
        [job] = await outbox()
        holder, claimed_until = job["claimed_by"], job["run_after"]
        await other.start()

        # Three leases go by while the job runs; the other runner looks again and again.
        async with asyncio.timeout(40):
            while db.now() < claimed_until + 3 * runtime.runner.lease:
                await other.drain()
                await asyncio.sleep(0.1)
        [job] = await outbox()
        assert (job["status"], job["attempts"], job["claimed_by"]) == ("running", 1, holder)
        assert job["run_after"] > claimed_until  # renewed
        assert recorder.runs["slow started"] == 1

        recorder.release.set()
        await runner_of(runtime).drain()
        [job] = await outbox()
        assert (job["status"], job["attempts"]) == ("done", 1)
        assert recorder.runs["slow started"] == recorder.runs["slow"] == 1
    finally:
        recorder.release.set()
        await other.stop()
        await runtime.close()


async def test_enqueuing_no_jobs_writes_nothing(rt: Runtime):
    async with db.write_transaction():
        with db.count_statements() as log:
            assert await enqueue_many([]) == []
    assert log.statements == []
    assert await outbox() == []


async def test_a_job_that_outlasts_the_stop_is_given_back_due_at_once(
    rt: Runtime, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(jobs_module, "STOP_GRACE_SECONDS", 0.2)
    async with db.write_transaction():
        await enqueue_many([("slow", {})])
    rt.wake_jobs()
    await asyncio.wait_for(recorder.started.wait(), 10)

    await runner_of(rt).stop()  # the job is never released: stop() cancels it

    [job] = await outbox()
    # Not left `running` until its lease ends, and the interrupted attempt is not counted.
    assert (job["status"], job["attempts"], recorder.runs["slow"]) == ("pending", 0, 0)
    assert job["run_after"] <= db.now()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("job_concurrency = 0", "ordergraph.job_concurrency: expected a whole number of at least"),
        ("job_concurrency = 2.5", "ordergraph.job_concurrency: expected a whole number"),
        ("job_lease_seconds = 0.5", "ordergraph.job_lease_seconds: expected at least 1 second"),
        ("job_lease_seconds = 'long'", "ordergraph.job_lease_seconds: expected seconds"),
    ],
)
def test_runner_settings_are_checked_at_start_up(tmp_path, config: str, message: str):
    path = tmp_path / "ordergraph.toml"
    path.write_text(f"[ordergraph]\n{config}\n")
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"ORDERGRAPH_CONFIG": str(path)})


def test_runner_settings_are_read_from_the_config_file(tmp_path):
    path = tmp_path / "ordergraph.toml"
    path.write_text("[ordergraph]\njob_concurrency = 3\njob_lease_seconds = 12\n")
    settings = Settings.from_env({"ORDERGRAPH_CONFIG": str(path)})
    assert (settings.job_concurrency, settings.job_lease_seconds) == (3, 12.0)


async def test_a_worker_told_to_stop_as_a_commit_wakes_it_stops() -> None:
    wake = asyncio.Event()
    waiting = asyncio.create_task(wait_until_set(wake, 60))
    await asyncio.sleep(0)  # the loop is now waiting for a wake-up
    wake.set()
    waiting.cancel()

    done, _ = await asyncio.wait([waiting], timeout=5)
    assert waiting in done and waiting.cancelled(), "told to stop, it went on waiting"


async def test_a_worker_with_nothing_to_wake_it_looks_again_after_its_timeout() -> None:
    async with asyncio.timeout(5):
        await wait_until_set(asyncio.Event(), 0.01)
