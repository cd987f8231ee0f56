"""Periodic work: declared through the ``register_periodic`` hook, run at most once per
period however many processes run it.

Each periodic job has a row in ``periodic_jobs`` with its next run time. A process that
finds a job due claims it with one conditional UPDATE (``next_run_at <= now``, set to
the next period); the process whose UPDATE changed the row runs it, every other one
sees no row changed and moves on. A job that fails is recorded and runs again next
period.

``PeriodicLoop`` calls ``run_due`` wherever a job runner runs: in the API process
without ``REDIS_URL``, and in every ``ordergraph worker``. Between runs it sleeps until
the next job is due, so an idle process sends a statement only when work is due.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ordergraph.core import db
from ordergraph.core.plugins import PluginConfigError
from ordergraph.core.tables import PeriodicJob
from ordergraph.core.waiting import wait_until_set

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime

log = logging.getLogger(__name__)

MAX_SLEEP_SECONDS = 300.0
"""The longest the loop sleeps without looking (a job another process claimed and whose
next run time it moved)."""


@dataclass(frozen=True)
class Periodic:
    """Work to run every ``every``; ``run`` gets the time it was claimed for."""

    every: datetime.timedelta
    run: Callable[[datetime.datetime], Awaitable[Any]]
    description: str = ""


def collect(rt: Runtime) -> dict[str, Periodic]:
    """Every periodic job the enabled plugins and the core's stages declare."""
    work: dict[str, Periodic] = {}
    for plugin, declared in rt.plugins.call_sync("register_periodic", runtime=rt).results:
        for name, periodic in declared.items():
            if name in work:
                raise PluginConfigError(f"plugin {plugin}: periodic job {name!r} exists already")
            if not isinstance(periodic, Periodic) or periodic.every <= datetime.timedelta(0):
                raise PluginConfigError(
                    f"plugin {plugin}: periodic job {name!r} needs a Periodic with a period above 0"
                )
            work[name] = periodic
    return work


async def claim(name: str, every: datetime.timedelta, now: datetime.datetime) -> bool:
    """Take this period's run of ``name``; False when it is not due or another took it."""
    async with db.write_transaction():
        await PeriodicJob.insert(PeriodicJob(name=name, next_run_at=now)).on_conflict(
            target=PeriodicJob.name, action="DO NOTHING"
        )
        claimed = await (
            PeriodicJob.update(
                {PeriodicJob.next_run_at: now + every, PeriodicJob.last_started_at: now}
            )
            .where((PeriodicJob.name == name) & (PeriodicJob.next_run_at <= now))
            .returning(PeriodicJob.id)
        )
    return bool(claimed)


async def _finish(name: str, error: str) -> None:
    await PeriodicJob.update(
        {
            PeriodicJob.last_finished_at: db.now(),
            PeriodicJob.last_status: "failed" if error else "done",
            PeriodicJob.last_error: error[:2000],
        }
    ).where(PeriodicJob.name == name)


async def run_due(
    rt: Runtime, work: dict[str, Periodic], now: datetime.datetime | None = None
) -> list[str]:
    """Run every periodic job that is due and that this process claims; their names."""
    now = now or db.now()
    ran = []
    for name, periodic in work.items():
        if not await claim(name, periodic.every, now):
            continue
        error = ""
        try:
            await periodic.run(now)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.exception("periodic job %s failed", name)
        await _finish(name, error)
        ran.append(name)
    return ran


async def seconds_until_due(work: dict[str, Periodic]) -> float:
    """How long until the first of ``work`` is due (0 for a job that never ran)."""
    rows = await PeriodicJob.select(PeriodicJob.name, PeriodicJob.next_run_at).where(
        PeriodicJob.name.is_in(list(work))
    )
    if len(rows) < len(work):
        return 0.0
    first = min(row["next_run_at"] for row in rows)
    return max((first - db.now()).total_seconds(), 0.0)


class PeriodicLoop:
    """Runs this process's share of the periodic work: what is due, then sleeps until the
    next job is due."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.work = collect(rt)
        # Set while the loop sleeps between runs (tests measure a quiet process).
        self.idle = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.work:
            self._stop.clear()
            self._task = asyncio.create_task(self._run(), name="PeriodicLoop")

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await run_due(self.rt, self.work)
                wait = await seconds_until_due(self.work)
            except Exception:
                log.exception("periodic work failed")
                wait = 60.0
            self.idle.set()
            # At least a second: a job due now was claimed by another process.
            await wait_until_set(self._stop, min(max(wait, 1.0), MAX_SLEEP_SECONDS))
            self.idle.clear()

    async def stop(self) -> None:
        """Let the work in hand finish (never cut a transaction short), then stop."""
        if self._task is not None:
            self._stop.set()
            await self._task
            self._task = None
