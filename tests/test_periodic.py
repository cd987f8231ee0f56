"""Periodic work: declared by a plugin, run by the API process's loop and by worker
processes, at most once per period however many look at once."""

from __future__ import annotations

import asyncio
import datetime
from types import SimpleNamespace

from conftest import make_settings, serve_api
from piccolo.engine.postgres import PostgresEngine

from ordergraph.core import db, periodic
from ordergraph.core.periodic import Periodic
from ordergraph.core.plugins import PluginInfo, hookimpl
from ordergraph.core.tables import PeriodicJob
from ordergraph.worker import run_worker

HOUR = datetime.timedelta(hours=1)


def plugin_with(work: dict[str, Periodic]) -> SimpleNamespace:
    @hookimpl
    def plugin_info() -> PluginInfo:
        return PluginInfo(category="other", description="periodic work", enabled_by_default=True)

    @hookimpl
    def register_periodic() -> dict[str, Periodic]:
        return work

    return SimpleNamespace(plugin_info=plugin_info, register_periodic=register_periodic)


async def test_five_runners_at_once_run_a_job_once_per_period(database_url: str) -> None:
    runs: list[datetime.datetime] = []

    async def count(now: datetime.datetime) -> None:
        runs.append(now)

    work = {"count": Periodic(HOUR, count)}
    async with serve_api(
        make_settings(database_url), installed_plugins={"p": plugin_with(work)}, run_jobs=False
    ) as api:
        now = db.now()
        ran = await asyncio.gather(*(periodic.run_due(api.rt, work, now) for _ in range(5)))
        assert sorted(map(len, ran)) == [0, 0, 0, 0, 1]
        assert runs == [now]
        # Not again within the hour, then once more.
        await periodic.run_due(api.rt, work, now + HOUR - datetime.timedelta(seconds=1))
        assert len(runs) == 1
        await asyncio.gather(*(periodic.run_due(api.rt, work, now + HOUR) for _ in range(5)))
        assert runs == [now, now + HOUR]


async def test_a_failing_job_is_recorded_and_runs_again_next_period(database_url: str) -> None:
    attempts = []

    async def broken(now: datetime.datetime) -> None:
        attempts.append(now)
        raise RuntimeError("the carrier is down")

    work = {"broken": Periodic(HOUR, broken)}
    async with serve_api(
        make_settings(database_url), installed_plugins={"p": plugin_with(work)}, run_jobs=False
    ) as api:
        now = db.now()
        assert await periodic.run_due(api.rt, work, now) == ["broken"]
        row = await PeriodicJob.select().where(PeriodicJob.name == "broken").first()
        assert (row["last_status"], row["last_error"]) == (
            "failed",
            "RuntimeError: the carrier is down",
        )
        assert await periodic.run_due(api.rt, work, now + HOUR) == ["broken"]
        assert len(attempts) == 2


async def test_the_embedded_runner_runs_declared_work(database_url: str) -> None:
    ran = asyncio.Event()

    async def mark(now: datetime.datetime) -> None:
        ran.set()

    plugin = plugin_with({"mark": Periodic(HOUR, mark)})
    async with serve_api(make_settings(database_url), installed_plugins={"p": plugin}) as api:
        await asyncio.wait_for(ran.wait(), 10)
        assert api.rt.periodic is not None
        row = await PeriodicJob.select().where(PeriodicJob.name == "mark").first()
        assert row["next_run_at"] > db.now() + datetime.timedelta(minutes=59)


async def test_a_worker_runs_declared_work(database_url: str, redis_url: str) -> None:
    ran = asyncio.Event()

    async def mark(now: datetime.datetime) -> None:
        ran.set()

    plugin = plugin_with({"mark": Periodic(HOUR, mark)})
    settings = make_settings(database_url, redis_url=redis_url)
    async with serve_api(settings, installed_plugins={"p": plugin}) as api:
        # With Redis the API process leaves periodic work to the workers.
        assert api.rt.periodic is None
        api_engine = db.current().engine
        stop, started = asyncio.Event(), asyncio.Event()
        running = asyncio.create_task(
            run_worker(settings, installed_plugins={"p": plugin}, stop=stop, started=started)
        )
        try:
            await asyncio.wait_for(started.wait(), 10)
            await asyncio.wait_for(ran.wait(), 20)
            # The worker records the run (read before it stops: its engine is the one bound).
            async with asyncio.timeout(10):
                while not await PeriodicJob.exists().where(PeriodicJob.last_status == "done"):
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await running
            if isinstance(api_engine, PostgresEngine):
                await api_engine.close_connection_pool()
