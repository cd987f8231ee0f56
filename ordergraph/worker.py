"""``ordergraph worker``: an arq worker that runs the outbox's jobs (with ``REDIS_URL``).

API processes of a deployment with Redis write jobs to the outbox and enqueue them to
arq after commit; workers run them (``core.arq_jobs``), relay what a crash left
unsent, run the periodic work on arq's cron, and publish the events through Redis, so
that every API process hears them. Start as many as the work needs, on any machine
that reaches the database and Redis.

arq's tooling works against them: ``ordergraph worker --check`` (or
``arq ordergraph.worker.WorkerSettings --check``) reads the health-check key the
workers refresh every ``HEALTH_CHECK_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import signal
from collections.abc import Mapping
from typing import Any

from arq.connections import RedisSettings
from arq.worker import check_health

from ordergraph.core import assembly
from ordergraph.core.arq_jobs import (
    KEEP_RESULT_SECONDS,
    MAX_TRIES,
    RECORD_SECONDS,
    Names,
    OutboxJobs,
    WakingWorker,
)
from ordergraph.core.jobs import HOLD_AT_LEAST, HOLD_PER_SLOT, STOP_GRACE_SECONDS
from ordergraph.core.runtime import Runtime
from ordergraph.core.settings import Settings

HEALTH_CHECK_SECONDS = 60
# With nothing woken, a worker looks at the queue this often (a retry's or a delayed
# job's time has come, the cron).
IDLE_POLL_SECONDS = 1.0


def redis_settings(settings: Settings) -> dict[str, Any]:
    """What arq's tooling needs to find a deployment's workers (``check_health``)."""
    if not settings.redis_url:
        raise ValueError("ordergraph worker needs REDIS_URL (for example redis://127.0.0.1:6379)")
    return {
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": Names.of(settings.database_url).queue,
    }


def worker_settings(rt: Runtime, outbox: OutboxJobs) -> dict[str, Any]:
    """arq's ``WorkerSettings`` of this deployment, from its runtime.

    A worker holds up to twice ``job_concurrency`` jobs (at least 20), as the embedded
    runner does: ``job_concurrency`` of them run at once and review jobs beside them,
    as one batch.
    """
    concurrency = rt.settings.job_concurrency
    return {
        **redis_settings(rt.settings),
        "functions": outbox.functions(),
        "cron_jobs": outbox.cron_jobs(),
        "max_jobs": max(HOLD_PER_SLOT * concurrency, HOLD_AT_LEAST),
        "job_timeout": rt.settings.job_timeout_seconds + RECORD_SECONDS,
        "keep_result": KEEP_RESULT_SECONDS,
        "max_tries": MAX_TRIES,
        "health_check_interval": HEALTH_CHECK_SECONDS,
        "log_results": False,
        # The cron's times are UTC's, as the periodic work's times are.
        "timezone": datetime.UTC,
    }


def check(settings: Settings) -> int:
    """arq's health check of the deployment's workers: 0 when one reported in the last
    ``HEALTH_CHECK_SECONDS``, else 1."""
    return check_health(redis_settings(settings))


def __getattr__(name: str) -> Any:
    """``WorkerSettings`` for arq's command line (``arq ordergraph.worker.WorkerSettings
    --check``), read from the environment as ``ordergraph worker`` reads it."""
    if name == "WorkerSettings":
        return redis_settings(Settings.from_env(dict(os.environ)))
    raise AttributeError(name)


async def run_worker(
    settings: Settings,
    *,
    installed_plugins: Mapping[str, Any] | None = None,
    stop: asyncio.Event | None = None,
    started: asyncio.Event | None = None,
) -> None:
    """Run jobs until ``stop`` is set (by default: until SIGTERM or SIGINT).

    ``installed_plugins`` replaces entry-point discovery, as in ``create_app``;
    ``started`` is set once the worker takes jobs.
    """
    redis_settings(settings)
    rt = assembly.build(settings, installed_plugins)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    await rt.open(run_jobs=False)
    assert rt.carrier is not None
    outbox = OutboxJobs(rt, rt.carrier)  # type: ignore[arg-type]
    worker = WakingWorker(
        **worker_settings(rt, outbox),
        handle_signals=False,
        wake_channel=outbox.names.wake,
        idle_poll=IDLE_POLL_SECONDS,
        on_taken=outbox.taken,
        holding_batch=outbox.holding_batch,
    )
    running = asyncio.create_task(worker.async_run(), name="arq-worker")
    try:
        await outbox.start()
        if started is not None:
            started.set()
        await asyncio.wait(
            {running, asyncio.ensure_future(stop.wait())}, return_when="FIRST_COMPLETED"
        )
    finally:
        # Stopping lets the jobs in hand finish; a second signal must not cut that short.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(_stop(worker, running, outbox, rt))


async def _stop(
    worker: WakingWorker, running: asyncio.Task[None], outbox: OutboxJobs, rt: Runtime
) -> None:
    """Take no more jobs, let those in hand end (for up to STOP_GRACE_SECONDS), then stop:
    arq puts back the jobs that did not end, to run again."""
    worker.allow_pick_jobs = False
    in_hand = [task for task in worker.tasks.values() if not task.done()]
    if in_hand:
        await asyncio.wait(in_hand, timeout=STOP_GRACE_SECONDS)
    with contextlib.suppress(asyncio.CancelledError):
        await worker.close()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    await outbox.stop()
    await rt.close()
