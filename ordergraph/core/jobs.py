"""The outbox and the job runner that drains it.

A job is an outbox row written in the same transaction as the state change that
caused it; after commit a ``JobRunner`` executes it. Without Redis the API process
runs one (embedded); with ``REDIS_URL`` the ``ordergraph worker`` processes do, and
API processes only write jobs. A runner:

* claims due jobs in batches, one statement per batch, each under a lease that it
  renews with a heartbeat while it holds the job: a job whose runner died is due
  again within one lease, and a live runner's long job is never taken over;
* runs them concurrently (on PostgreSQL every query on a pool connection of its own;
  on SQLite, where writers take turns, one job reads while another writes), keeping
  the jobs of one order, and each kind of event job, in the order they were written;
* hands the jobs of a ``Batched`` kind (the review) that start while one batch of
  them runs to one call as the next batch, outside its slots of concurrency;
* marks the jobs that succeeded ``done`` in the statement of its next claim (or in
  one of their own once every job in hand has finished), and puts a failed one back
  with backoff, or ``failed`` after its last attempt;
* sleeps until woken: by its own process after a commit, by PostgreSQL's NOTIFY
  from any process (a trigger on the outbox, heard on a connection of its own), by a
  change of the SQLite file, or when the next job falls due.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ordergraph.core import db
from ordergraph.core.batching import Batched
from ordergraph.core.tables import OutboxJob
from ordergraph.core.waiting import wait_until_set

if TYPE_CHECKING:
    import asyncpg

    from ordergraph.core.runtime import Runtime

log = logging.getLogger(__name__)

Job = Callable[[dict[str, Any]], Awaitable[None]]
# The PostgreSQL channel the outbox trigger (migration m0003) notifies on commit.
NOTIFY_CHANNEL = "ordergraph_jobs"
# A runner holds at most this many jobs (running or waiting their turn) per slot of
# concurrency, and at least HOLD_AT_LEAST, and claims again once half are finished.
HOLD_PER_SLOT = 2
HOLD_AT_LEAST = 20
# Even without a wake-up, a runner looks at the outbox this often (a lost notification,
# a retry scheduled by a runner that then died).
IDLE_CHECK_SECONDS = 60.0
# A job due but claimed by nobody yet (another runner's claim is committing): look again.
RECHECK_SECONDS = 0.05
FILE_CHECK_SECONDS = 1.0
PURGE_EVERY_SECONDS = 3600
# How long stopping a runner waits for the jobs in hand before giving them back.
STOP_GRACE_SECONDS = 10.0
# Matches the partial index outbox_unfinished (a literal, so both planners use it).
_UNFINISHED = "\"status\" IN ('pending', 'running')"


class UnknownJob(RuntimeError):
    pass


async def enqueue_many(
    items: list[tuple[str, dict[str, Any]]], *, delay: float = 0, max_attempts: int = 5
) -> list[int]:
    """Write jobs to the outbox in one statement (none for no jobs); call inside the
    caller's transaction. Jobs whose payload has an ``order_id`` run in the order they
    were written, one after another, with that order's other jobs."""
    if not items:
        return []
    written_rows = outbox_rows(items, delay=delay, max_attempts=max_attempts)
    rows = await db.insert(OutboxJob, written_rows, returning=("id",))
    ids = sorted(row["id"] for row in rows)
    await written(ids, written_rows)
    return ids


Carrier = Callable[[list[dict[str, Any]]], Awaitable[None]]
"""Takes committed outbox rows (with their ``id``) to the processes that run them: in the
deployment with Redis, ``arq_jobs.Carrier.send`` enqueues them to arq."""

_carrier: Carrier | None = None


def carry_with(carrier: Carrier | None) -> Carrier | None:
    """Make ``carrier`` take this process's committed jobs (None: nothing carries them,
    the embedded runner claims them); the one it replaces."""
    global _carrier
    previous, _carrier = _carrier, carrier
    return previous


async def written(ids: Sequence[int], rows: Sequence[dict[str, Any]]) -> None:
    """Jobs ``ids`` were written (``rows``, as ``outbox_rows`` made them): once their
    transaction commits, the carrier takes them, with the rest of that commit's jobs."""
    carrier = _carrier
    if carrier is None or not ids:
        return
    committed = [{**row, "id": job_id} for job_id, row in zip(ids, rows, strict=True)]
    await db.after_commit(lambda: carrier(committed))


def outbox_rows(
    items: Sequence[tuple[str, dict[str, Any]]], *, delay: float = 0, max_attempts: int = 5
) -> list[dict[str, Any]]:
    """The outbox rows of jobs, as ``enqueue_many`` writes them (for ``db.insert_together``)."""
    run_after = db.now() + datetime.timedelta(seconds=delay)
    return [
        {
            "name": name,
            "payload": json.dumps(payload, default=str),
            "run_after": run_after,
            "max_attempts": max_attempts,
        }
        for name, payload in items
    ]


async def enqueue_job(name: str, payload: dict[str, Any], *, delay: float = 0) -> int:
    """Write one job to the outbox (the public form for plugins)."""
    return (await enqueue_many([(name, payload)], delay=delay))[0]


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    name: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int

    @property
    def ordering_key(self) -> tuple[str, Any]:
        """Jobs with the same key run one after another, in id order: an order's jobs,
        and event jobs (whose payload names the event only) by kind."""
        if "order_id" in self.payload:
            return ("order", self.payload["order_id"])
        return ("job", self.name)


async def claim(
    runner: str, limit: int, lease: datetime.timedelta, *, finished: Sequence[int] = ()
) -> list[ClaimedJob]:
    """Claim up to ``limit`` due jobs for ``runner`` in one statement, oldest first, and
    in the same statement mark ``finished`` (jobs it ran to success) done.

    Due are pending jobs whose time has come and running ones whose lease ran out.
    PostgreSQL skips rows another runner is claiming at this moment; SQLite
    serialises writers anyway. A finished job is marked done only while ``runner``
    still holds it, as ``finish_done`` does.
    """
    now = db.now()
    skip_locked = "" if db.current().is_sqlite else " FOR UPDATE SKIP LOCKED"
    due = (
        f'SELECT "id" FROM "outbox" WHERE {_UNFINISHED} AND "run_after" <= {{}} '
        f'ORDER BY "id" LIMIT {{}}{skip_locked}'
    )
    if not finished:
        rows = await db.raw(
            'UPDATE "outbox" SET "status" = \'running\', "attempts" = "attempts" + 1, '
            f'"run_after" = {{}}, "claimed_by" = {{}} WHERE "id" IN ({due}) '
            'RETURNING "id", "name", "payload", "attempts", "max_attempts", "status"',
            now + lease,
            runner,
            now,
            limit,
        )
    else:
        ids = ", ".join("{}" for _ in finished)
        held = f'("id" IN ({ids}) AND "claimed_by" = {{}} AND "status" = \'running\')'
        held_args = [*finished, runner]
        rows = await db.raw(
            f'UPDATE "outbox" SET "status" = CASE WHEN {held} THEN \'done\' ELSE '
            f"'running' END, \"finished_at\" = CASE WHEN {held} THEN {{}} ELSE "
            f'"finished_at" END, "attempts" = "attempts" + CASE WHEN {held} THEN 0 ELSE 1 '
            f'END, "run_after" = CASE WHEN {held} THEN "run_after" ELSE {{}} END, '
            f'"claimed_by" = {{}} WHERE "id" IN (SELECT "id" FROM ({due}) AS due '
            f'UNION ALL SELECT "id" FROM "outbox" WHERE {held}) '
            'RETURNING "id", "name", "payload", "attempts", "max_attempts", "status"',
            *held_args,
            *held_args,
            now,
            *held_args,
            *held_args,
            now + lease,
            runner,
            now,
            limit,
            *held_args,
        )
    return sorted(
        (
            ClaimedJob(
                id=row["id"],
                name=row["name"],
                payload=json.loads(row["payload"])
                if isinstance(row["payload"], str)
                else row["payload"],
                attempts=row["attempts"],
                max_attempts=row["max_attempts"],
            )
            for row in rows
            if row["status"] == "running"
        ),
        key=lambda job: job.id,
    )


def _held_by(runner: str, ids: list[int]) -> Any:
    """The jobs among ``ids`` that ``runner`` still holds: a job whose lease ran out may
    have been claimed again, and then the later claim renews and records it."""
    return (
        OutboxJob.id.is_in(ids) & (OutboxJob.claimed_by == runner) & (OutboxJob.status == "running")
    )


async def run_claimed(rt: Runtime, runner: str, job: ClaimedJob) -> bool:
    """Run a claimed job. A failure is recorded at once (pending again with backoff, or
    ``failed`` after the last attempt); success is for the caller to record, in a batch
    (``finish_done``). Returns whether the job succeeded."""
    try:
        handler = rt.job_handlers.get(job.name)
        if handler is None:
            raise UnknownJob(f"no job named {job.name!r} is registered")
        await handler(job.payload)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        final = job.attempts >= job.max_attempts
        delay = rt.settings.job_retry_base_seconds * 2 ** (job.attempts - 1)
        log.warning("job %s (%s) attempt %s failed: %s", job.id, job.name, job.attempts, error)
        await OutboxJob.update(
            {
                OutboxJob.status: "failed" if final else "pending",
                OutboxJob.last_error: error,
                OutboxJob.run_after: db.now() + datetime.timedelta(seconds=min(delay, 3600)),
                OutboxJob.finished_at: db.now() if final else None,
            }
        ).where(_held_by(runner, [job.id]))
        return False
    return True


async def finish_done(runner: str, ids: list[int]) -> None:
    """Mark jobs that succeeded ``done``, in one statement."""
    await OutboxJob.update({OutboxJob.status: "done", OutboxJob.finished_at: db.now()}).where(
        _held_by(runner, ids)
    )


async def renew_leases(runner: str, ids: list[int], lease: datetime.timedelta) -> None:
    """The heartbeat: extend the lease of every job ``runner`` holds, in one statement."""
    await OutboxJob.update({OutboxJob.run_after: db.now() + lease}).where(_held_by(runner, ids))


async def give_back(runner: str, ids: list[int]) -> None:
    """Make jobs a stopping runner did not finish due again at once; the interrupted
    attempt does not count."""
    await OutboxJob.update(
        {
            OutboxJob.status: "pending",
            OutboxJob.run_after: db.now(),
            OutboxJob.attempts: OutboxJob.attempts - 1,
        }
    ).where(_held_by(runner, ids))


async def next_due() -> datetime.datetime | None:
    """When the next unfinished job falls due (a lease ends, a retry or delay is over)."""
    rows = await db.raw(f'SELECT min("run_after") AS "at" FROM "outbox" WHERE {_UNFINISHED}')
    at = rows[0]["at"] if rows else None
    if isinstance(at, str):  # SQLite's min() loses the column's type
        at = datetime.datetime.fromisoformat(at)
    return at


async def any_due() -> bool:
    at = await next_due()
    return at is not None and at <= db.now()


async def purge_done(older_than: datetime.timedelta) -> int:
    """Delete jobs that finished ``done`` before ``older_than`` ago; failed ones stay for
    an operator. Returns how many were deleted."""
    deleted = await (
        OutboxJob.delete()
        .where((OutboxJob.status == "done") & (OutboxJob.finished_at < db.now() - older_than))
        .returning(OutboxJob.id)
    )
    return len(deleted)


class Notifications:
    """Calls ``wake`` on every NOTIFY of the outbox trigger, from any process.

    LISTEN needs a connection of its own: a pooled one is reset (UNLISTEN) when it
    goes back to the pool. It sends nothing while it waits.
    """

    def __init__(self, url: str, wake: Callable[[], None]) -> None:
        self.url = url
        self.wake = wake
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    def seen(self) -> None:
        pass

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="outbox-notifications")
        async with asyncio.timeout(10):
            await self._listening.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen(self) -> None:
        import asyncpg

        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(self.url)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _, lost=lost: lost.set())
                await connection.add_listener(NOTIFY_CHANNEL, lambda *_: self.wake())
                self._listening.set()
                self.wake()  # whatever was written while nobody listened
                await lost.wait()
                log.warning("lost the outbox notifications; reconnecting")
            except asyncio.CancelledError:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(connection.close(timeout=2))
                raise
            except Exception:
                log.exception("cannot listen for outbox notifications; retrying")
            await asyncio.sleep(1)


class FileWatch:
    """Calls ``wake`` when the SQLite file changes, which is how a commit of another
    process shows (SQLite has no notifications): a look at the file every second, no
    statement."""

    def __init__(self, path: str, wake: Callable[[], None]) -> None:
        self.paths = [Path(path), Path(f"{path}-wal")]
        self.wake = wake
        self._task: asyncio.Task[None] | None = None

    def _stamp(self) -> list[tuple[int, int]]:
        stamps = []
        for path in self.paths:
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                stamps.append((stat.st_mtime_ns, stat.st_size))
        return stamps

    def seen(self) -> None:
        """The runner is about to look at the outbox: changes so far need no wake-up
        (among them this process's own writes)."""
        self._seen = self._stamp()

    async def start(self) -> None:
        self.seen()
        self._task = asyncio.create_task(self._watch(), name="outbox-file-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(FILE_CHECK_SECONDS)
            stamp = self._stamp()
            if stamp != self._seen:
                self._seen = stamp
                self.wake()


class JobRunner:
    """Claims, runs and finishes outbox jobs in this process, until stopped."""

    def __init__(self, rt: Runtime, *, concurrency: int | None = None) -> None:
        self.rt = rt
        self.id = f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        sqlite = db.current().is_sqlite
        self.concurrency = concurrency or rt.settings.job_concurrency
        self.capacity = max(HOLD_PER_SLOT * self.concurrency, HOLD_AT_LEAST)
        self.lease = datetime.timedelta(seconds=rt.settings.job_lease_seconds)
        self.stopping = False
        self.idle = asyncio.Event()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(self.concurrency)
        self._held: dict[int, asyncio.Task[None]] = {}
        self._done: list[int] = []
        self._look = True  # whether new jobs may be due since the last claim
        self._last_of: dict[tuple[str, Any], asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._next_purge = 0.0
        url = db.current().url
        self._wakeups: Notifications | FileWatch = (
            FileWatch(db.current().engine.path, self.wake)  # type: ignore[attr-defined]
            if sqlite
            else Notifications(url, self.wake)
        )

    def wake(self) -> None:
        """Look for due jobs now (a transaction with jobs has committed)."""
        self._look = True
        self.idle.clear()
        self._wake.set()

    def committed(self) -> None:
        """A transaction of this process that wrote jobs has committed. On PostgreSQL the
        outbox's NOTIFY tells of it too (of every process's commits): waking on both
        would claim twice per job, so only the notification wakes the runner there."""
        if isinstance(self._wakeups, FileWatch):
            self.wake()

    async def start(self) -> None:
        self.stopping = False
        await self._purge_now_and_then()
        await self._wakeups.start()
        self._tasks = [
            asyncio.create_task(self._run(), name="job-runner"),
            asyncio.create_task(self._heartbeat(), name="job-heartbeat"),
        ]

    async def stop(self) -> None:
        """Claim nothing more, let the jobs in hand finish (for up to STOP_GRACE_SECONDS),
        record them, and give back the ones that did not finish."""
        if not self._tasks:
            return
        self.stopping = True
        self._wake.set()
        run, heartbeat = self._tasks
        await run
        in_hand = list(self._held.values())
        if in_hand:
            _, unfinished = await asyncio.wait(in_hand, timeout=STOP_GRACE_SECONDS)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
        await self._wakeups.stop()
        try:
            await self._finish_done()
            if self._held:
                await give_back(self.id, list(self._held))
        except Exception:
            log.exception("could not record the jobs in hand; their leases will run out")
        self._held.clear()
        self._tasks = []

    async def drain(self) -> None:
        """Wait until no job is due and none is in hand (for the CLI, tests and shutdown)."""
        while True:
            self.wake()
            await self.idle.wait()
            if not await any_due():
                return

    async def _run(self) -> None:
        while not self.stopping:
            self._wake.clear()
            try:
                claimed = await self._finish_and_claim()
                if not self._held:
                    await self._purge_now_and_then()
                    await self._sleep_until_due(claimed_nothing=not claimed)
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job runner: reading the outbox failed")
                await wait_until_set(self._wake, 1)
                continue
            await self._wake.wait()

    async def _finish_and_claim(self) -> list[ClaimedJob]:
        """Claim once at most half the capacity is in hand and new jobs may be due (a
        wake-up came, or the last claim took all it could), and record the finished jobs
        in the same statement; with nothing to look for, record them when every job in
        hand has finished. A job that finishes sends no statement of its own: jobs done
        in the same tick, or while others ran, are recorded together, whether the runner
        is busy or holds a single job."""
        unfinished = len(self._held) - len(self._done)
        if self.stopping or not self._look or unfinished > self.capacity // 2:
            if unfinished == 0:
                await self._finish_done()
            return []
        self._look = False
        self._wakeups.seen()
        done, self._done = self._done, []
        limit = self.capacity - unfinished
        try:
            claimed = await claim(self.id, limit, self.lease, finished=done)
        except BaseException:
            self._done = done + self._done
            self._look = True
            raise
        for job_id in done:
            self._held.pop(job_id, None)
        if len(claimed) >= limit:
            self._look = True  # more may be due
        for job in claimed:
            if job.id not in self._held:  # already in hand: its lease was renewed late
                self._start(job)
        return claimed

    async def _finish_done(self) -> None:
        if not self._done:
            return
        done, self._done = self._done, []
        await finish_done(self.id, done)
        for job_id in done:
            self._held.pop(job_id, None)

    def _start(self, job: ClaimedJob) -> None:
        key = job.ordering_key
        task = asyncio.create_task(self._run_one(job, self._last_of.get(key)))
        self._held[job.id] = task
        self._last_of[key] = task
        task.add_done_callback(
            lambda t: self._last_of.pop(key) if self._last_of.get(key) is t else None
        )

    async def _run_one(self, job: ClaimedJob, after: asyncio.Task[None] | None) -> None:
        if after is not None:
            await asyncio.wait({after})
        together = isinstance(self.rt.job_handlers.get(job.name), Batched)
        async with contextlib.nullcontext() if together else self._slots:
            try:
                succeeded = await run_claimed(self.rt, self.id, job)
            except Exception:
                log.exception("job %s (%s): recording its failure failed", job.id, job.name)
                succeeded = False
        if succeeded:
            self._done.append(job.id)
        else:
            self._held.pop(job.id, None)
        self._wake.set()

    async def _sleep_until_due(self, *, claimed_nothing: bool) -> None:
        if not claimed_nothing:
            return
        due = await next_due()
        if due is None:
            timeout = IDLE_CHECK_SECONDS
        else:
            timeout = (due - db.now()).total_seconds()
            timeout = min(max(timeout, RECHECK_SECONDS), IDLE_CHECK_SECONDS)
        # Whatever ends the sleep (a wake-up, the next job falling due), look again.
        self._look = True
        if self._wake.is_set():
            return
        self.idle.set()
        await wait_until_set(self._wake, timeout)

    async def _heartbeat(self) -> None:
        every = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            if self._held:
                try:
                    # Jobs that finished while others still run are recorded now at the
                    # latest; the rest keep their leases.
                    await self._finish_done()
                    if self._held:
                        await renew_leases(self.id, list(self._held), self.lease)
                except Exception:
                    log.exception("job runner: renewing the leases of the jobs in hand failed")

    async def _purge_now_and_then(self) -> None:
        """Keep the outbox small: at start and then hourly, delete done jobs past their
        retention."""
        if time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + PURGE_EVERY_SECONDS
        retention = datetime.timedelta(days=self.rt.settings.outbox_retention_days)
        deleted = await purge_done(retention)
        if deleted:
            log.info("deleted %s done jobs finished more than %s ago", deleted, retention)
