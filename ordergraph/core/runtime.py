"""The running service's parts, built once at start-up and passed to whatever needs them."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ordergraph.core import db, migrations
from ordergraph.core.dispatch import core_jobs
from ordergraph.core.events import InProcessBus, RedisBus, channel_for
from ordergraph.core.jobs import Job, JobRunner
from ordergraph.core.periodic import PeriodicLoop
from ordergraph.core.plugins import PluginConfigError, PluginManager
from ordergraph.core.settings import Settings
from ordergraph.core.statusgraph import StatusGraph, default_graph
from ordergraph.stages.review.pipeline import REVIEW_JOB, configured_rules, review_jobs

# The core's stages, registered like plugins (their jobs, reactions and vetoes come
# through the same hooks), so the kernel imports none of them.
STAGES = {
    "fulfilment": "ordergraph.stages.fulfilment:Stage",
    "settlement": "ordergraph.stages.settlement:Stage",
    "alerts": "ordergraph.stages.tracking.alerts:Stage",
    "tracking": "ordergraph.stages.tracking.polling:Stage",
}


@dataclass
class Runtime:
    settings: Settings
    plugins: PluginManager
    graph: StatusGraph
    bus: InProcessBus
    job_handlers: dict[str, Job] = field(default_factory=dict)
    runner: JobRunner | None = None
    review_rules: list[str] = field(default_factory=list)
    database: db.Database | None = None
    periodic: PeriodicLoop | None = None

    def jobs_on_entry(self, order_id: int) -> list[tuple[str, dict[str, Any]]]:
        """Jobs to enqueue when an order enters the initial state: review, if configured."""
        return [(REVIEW_JOB, {"order_id": order_id})] if self.review_rules else []

    async def open(self, *, run_jobs: bool = True, worker: bool = False) -> None:
        """Connect the database, migrate (SQLite) or check migrations, start bus and runner.

        With ``run_jobs`` the process runs a job runner, unless ``REDIS_URL`` says that
        worker processes run the jobs; a ``worker`` always runs one.
        """
        database = self.database = await db.connect(
            self.settings.database_url, pool_size=max(10, self.settings.job_concurrency + 2)
        )
        try:
            await migrations.ensure_current()
            await self.bus.start()
        except BaseException:
            await db.disconnect(database)
            raise
        if worker or (run_jobs and not self.settings.redis_url):
            self.runner = JobRunner(self)
            # Periodic work runs wherever jobs run; the database lets one process a period.
            self.periodic = PeriodicLoop(self)
            try:
                await self.runner.start()
                await self.periodic.start()
            except BaseException:
                await self.close()
                raise

    def wake_jobs(self) -> None:
        """Tell this process's job runner that a transaction with new jobs has committed
        (other processes hear of it from the database)."""
        if self.runner is not None:
            self.runner.committed()

    async def close(self) -> None:
        if self.periodic is not None:
            await self.periodic.stop()
            self.periodic = None
        if self.runner is not None:
            await self.runner.stop()
            self.runner = None
        await self.bus.stop()
        await db.disconnect(self.database)


def build_graph(plugins: PluginManager) -> StatusGraph:
    graph = default_graph()
    plugins.call_sync("extend_status_graph", graph=graph)
    graph.validate()
    return graph


def load_plugins(settings: Settings, installed: Mapping[str, Any] | None = None) -> PluginManager:
    if installed is None:
        return PluginManager.from_entry_points(
            settings.plugins, timeout=settings.plugin_timeout_seconds
        )
    return PluginManager(installed, settings.plugins, timeout=settings.plugin_timeout_seconds)


def build(settings: Settings, installed_plugins: Mapping[str, Any] | None = None) -> Runtime:
    """Load and validate plugins, the status graph and the jobs; nothing is connected yet.

    ``installed_plugins`` replaces entry-point discovery (name -> plugin module).
    Raises ``PluginConfigError`` or ``StatusGraphError`` naming what is wrong.
    """
    plugins = load_plugins(settings, installed_plugins)
    bus = (
        RedisBus(settings.redis_url, channel_for(settings.database_url))
        if settings.redis_url
        else InProcessBus()
    )
    rt = Runtime(settings=settings, plugins=plugins, graph=build_graph(plugins), bus=bus)
    for name, target in STAGES.items():
        module, _, factory = target.partition(":")
        plugins.add_internal(name, getattr(importlib.import_module(module), factory)(rt))
    rt.job_handlers = core_jobs(rt) | review_jobs(rt)
    rt.review_rules = configured_rules(rt)
    for plugin, jobs in plugins.call_sync("register_jobs", runtime=rt).results:
        for name, job in jobs.items():
            if name in rt.job_handlers:
                raise PluginConfigError(f"plugin {plugin}: job {name!r} is already registered")
            rt.job_handlers[name] = job
    return rt
