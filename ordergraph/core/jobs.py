"""The outbox and the job runners that drain it.

A job is an outbox row written in the same transaction as the state change that
caused it; after commit a runner executes it. Two runners share this module:

* ``EmbeddedRunner`` runs jobs inside the API process (the SQLite default);
* ``ArqRelay`` hands due jobs to arq, and ``ordergraph worker`` runs them.

Either way ``run_job`` does the work, so retries, backoff and the final failed
record behave the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ordergraph.core import db
from ordergraph.core.tables import OutboxJob

if TYPE_CHECKING:
    from arq.connections import ArqRedis

    from ordergraph.core.runtime import Runtime

log = logging.getLogger(__name__)

Job = Callable[[dict[str, Any]], Awaitable[None]]
# How long a claimed job may run before another runner may take it over.
LEASE = datetime.timedelta(minutes=10)
BATCH = 100
PURGE_EVERY_SECONDS = 3600
# How long stopping a runner waits for the job in hand before cancelling it.
STOP_GRACE_SECONDS = 10.0


class UnknownJob(RuntimeError):
    pass


async def enqueue_many(
    items: list[tuple[str, dict[str, Any]]], *, delay: float = 0, max_attempts: int = 5
) -> list[int]:
    """Write jobs to the outbox in one statement; call inside the caller's transaction."""
    run_after = db.now() + datetime.timedelta(seconds=delay)
    rows = await OutboxJob.insert(
        *(
            OutboxJob(
                name=name,
                payload=json.dumps(payload, default=str),
                run_after=run_after,
                max_attempts=max_attempts,
            )
            for name, payload in items
        )
    )
    return [row["id"] for row in rows]


async def enqueue_job(name: str, payload: dict[str, Any], *, delay: float = 0) -> int:
    """Write one job to the outbox (the public form for plugins)."""
    return (await enqueue_many([(name, payload)], delay=delay))[0]


async def due_jobs(limit: int = BATCH) -> list[dict[str, Any]]:
    """Pending jobs whose time has come, and running ones whose lease ran out."""
    now = db.now()
    return await (
        OutboxJob.select(OutboxJob.id, OutboxJob.attempts)
        .where(OutboxJob.status.is_in(["pending", "running"]) & (OutboxJob.run_after <= now))
        .order_by(OutboxJob.id)
        .limit(limit)
    )


async def run_job(rt: Runtime, job_id: int) -> str | None:
    """Claim and run one job; return its new status, or None when another runner has it."""
    now = db.now()
    claimed = await (
        OutboxJob.update(
            {
                OutboxJob.status: "running",
                OutboxJob.attempts: OutboxJob.attempts + 1,
                OutboxJob.run_after: now + LEASE,
            }
        )
        .where(
            (OutboxJob.id == job_id)
            & OutboxJob.status.is_in(["pending", "running"])
            & (OutboxJob.run_after <= now)
        )
        .returning(OutboxJob.name, OutboxJob.payload, OutboxJob.attempts, OutboxJob.max_attempts)
    )
    if not claimed:
        return None
    job = claimed[0]
    # Finish only while this claim holds: a job that overran its lease may have been
    # claimed again, and then the later claim records the outcome.
    still_mine = (
        (OutboxJob.id == job_id)
        & (OutboxJob.status == "running")
        & (OutboxJob.attempts == job["attempts"])
    )
    try:
        handler = rt.job_handlers.get(job["name"])
        if handler is None:
            raise UnknownJob(f"no job named {job['name']!r} is registered")
        payload = job["payload"]
        await handler(json.loads(payload) if isinstance(payload, str) else payload)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        final = job["attempts"] >= job["max_attempts"]
        delay = rt.settings.job_retry_base_seconds * 2 ** (job["attempts"] - 1)
        log.warning(
            "job %s (%s) attempt %s failed: %s", job_id, job["name"], job["attempts"], error
        )
        await OutboxJob.update(
            {
                OutboxJob.status: "failed" if final else "pending",
                OutboxJob.last_error: error,
                OutboxJob.run_after: db.now() + datetime.timedelta(seconds=min(delay, 3600)),
                OutboxJob.finished_at: db.now() if final else None,
            }
        ).where(still_mine)
        return "failed" if final else "pending"
    await OutboxJob.update({OutboxJob.status: "done", OutboxJob.finished_at: db.now()}).where(
        still_mine
    )
    return "done"


async def purge_done(older_than: datetime.timedelta) -> int:
    """Delete jobs that finished ``done`` before ``older_than`` ago; failed ones stay for
    an operator. Returns how many were deleted."""
    deleted = await (
        OutboxJob.delete()
        .where((OutboxJob.status == "done") & (OutboxJob.finished_at < db.now() - older_than))
        .returning(OutboxJob.id)
    )
    return len(deleted)


class _Loop:
    """A background loop that drains due jobs when woken, and at least every ``poll`` s."""

    def __init__(self, rt: Runtime, poll: float = 1.0) -> None:
        self.rt = rt
        self.poll = poll
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.stopping = False
        self.idle = asyncio.Event()
        self._next_purge = 0.0

    def wake(self) -> None:
        self.idle.clear()
        self._wake.set()

    async def start(self) -> None:
        self.stopping = False
        await self._purge_now_and_then()
        self._task = asyncio.create_task(self._run(), name=type(self).__name__)

    async def stop(self) -> None:
        """Let the job in hand finish, then stop.

        Cancelling a job midway would leave it ``running`` until its lease ends
        (and, on SQLite, a connection behind); only a job that overruns the grace
        period is cancelled.
        """
        if self._task is None:
            return
        self.stopping = True
        self._wake.set()
        done, _ = await asyncio.wait({self._task}, timeout=STOP_GRACE_SECONDS)
        if not done:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        while not self.stopping:
            self._wake.clear()
            try:
                jobs = await due_jobs()
                await self.handle(jobs)
                await self._purge_now_and_then()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: draining the outbox failed", type(self).__name__)
                jobs = []
            if len(jobs) < BATCH and not self._wake.is_set():
                self.idle.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll)

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

    async def handle(self, jobs: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    async def drain(self) -> None:
        """Wait until no job is due (for the CLI, tests and shutdown)."""
        while True:
            self.wake()
            await self.idle.wait()
            if not await due_jobs(1):
                return


class EmbeddedRunner(_Loop):
    """Runs jobs in this process, one at a time (SQLite has one writer anyway)."""

    async def handle(self, jobs: list[dict[str, Any]]) -> None:
        for job in jobs:
            if self.stopping:
                return
            await run_job(self.rt, job["id"])


ARQ_FUNCTION = "run_outbox_job"


class ArqRelay(_Loop):
    """Hands due jobs to arq; the attempt number in the arq job id keeps retries apart."""

    def __init__(self, rt: Runtime, redis: ArqRedis, poll: float = 1.0) -> None:
        super().__init__(rt, poll)
        self.redis = redis

    async def handle(self, jobs: list[dict[str, Any]]) -> None:
        for job in jobs:
            if self.stopping:
                return
            await self.redis.enqueue_job(
                ARQ_FUNCTION, job["id"], _job_id=f"outbox:{job['id']}:{job['attempts']}"
            )
