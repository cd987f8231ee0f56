"""The running service's parts, assembled once at start-up (``assembly.build``) and passed
to whatever needs them.

This module holds only the parts and their life cycle; it imports none of the modules
that use a ``Runtime``, so every part of the kernel and every stage may name it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ordergraph.core import db, migrations
from ordergraph.core.events import InProcessBus
from ordergraph.core.plugins import PluginManager
from ordergraph.core.settings import Settings
from ordergraph.core.statusgraph import StatusGraph

Job = Callable[[dict[str, Any]], Awaitable[None]]
"""A job handler: called with the job's payload after the transaction that wrote it."""

BatchScope = Callable[[], contextlib.AbstractAsyncContextManager[None]]
"""A block around the ``apply_transition`` hooks of a transaction that moves several
orders, which a stage opens to write their effects together (the review stage's stock)."""


class Service(Protocol):
    """Something a process runs beside its requests: the job runner, the periodic loop."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Runner(Service, Protocol):
    def committed(self) -> None:
        """A transaction with new jobs has committed in this process."""

    async def drain(self) -> None:
        """Run every job that is due now."""


class AlertDesk(Protocol):
    """Raising and clearing alerts, which the tracking stage keeps, for the stages
    before it (``Runtime.alerts``)."""

    async def open_alert(
        self,
        order_id: int,
        kind: str,
        *,
        shipment_id: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> int | None:
        """Open an alert unless one of this kind is open on the order; its id if opened."""

    async def close_alerts(self, order_id: int, kinds: list[str], resolution: str) -> list[int]:
        """Resolve the order's open alerts of these kinds (their condition cleared)."""


@dataclass
class Runtime:
    settings: Settings
    plugins: PluginManager
    graph: StatusGraph
    bus: InProcessBus
    # The job runner and the periodic loop this process runs, made by ``open``.
    make_runner: Callable[[Runtime], Runner]
    make_periodic: Callable[[Runtime], Service]
    # With Redis: what takes this process's committed jobs to arq (``arq_jobs.Carrier``).
    make_carrier: Callable[[Runtime], Service] | None = None
    job_handlers: dict[str, Job] = field(default_factory=dict)
    # Jobs every order gets when it enters the initial state (the review stage's).
    entry_jobs: list[str] = field(default_factory=list)
    batch_scopes: list[BatchScope] = field(default_factory=list)
    review_rules: list[str] = field(default_factory=list)
    # Set by the tracking stage's alerts when it is registered.
    alerts: AlertDesk | None = None
    runner: Runner | None = None
    database: db.Database | None = None
    periodic: Service | None = None
    carrier: Service | None = None

    def jobs_on_entry(self, order_id: int) -> list[tuple[str, dict[str, Any]]]:
        """Jobs to enqueue when an order enters the initial state."""
        return [(name, {"order_id": order_id}) for name in self.entry_jobs]

    async def open(self, *, run_jobs: bool = True) -> None:
        """Connect the database, migrate (SQLite) or check migrations, start the bus, and
        the job runner or the carrier.

        With ``REDIS_URL`` the process's committed jobs go to arq, whose workers
        (``ordergraph worker``) run them and the periodic work; without it, and with
        ``run_jobs``, the process runs them itself (the embedded runner).
        """
        hands_jobs_to_redis = bool(self.settings.redis_url) and self.make_carrier is not None
        database = self.database = await db.connect(
            self.settings.database_url,
            pool_size=max(10, self.settings.job_concurrency + 2),
            job_notifications_once_a_second=hands_jobs_to_redis,
        )
        try:
            await migrations.ensure_current()
            await self.bus.start()
        except BaseException:
            await db.disconnect(database)
            raise
        if hands_jobs_to_redis:
            self.carrier = self.make_carrier(self)
            try:
                await self.carrier.start()
            except BaseException:
                await self.close()
                raise
        elif run_jobs:
            self.runner = self.make_runner(self)
            # Periodic work runs wherever jobs run; the database lets one process a period.
            self.periodic = self.make_periodic(self)
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
        if self.carrier is not None:
            await self.carrier.stop()
            self.carrier = None
        await self.bus.stop()
        await db.disconnect(self.database)
