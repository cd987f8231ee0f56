"""``ordergraph worker``: a process that runs outbox jobs (with ``REDIS_URL``).

API processes of a deployment with Redis only write jobs; workers claim and run
them (``core.jobs.JobRunner``) and publish the events through Redis, so that every
API process hears them. Start as many as the work needs: they share the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Mapping
from typing import Any

from ordergraph.core import assembly
from ordergraph.core.settings import Settings


async def run_worker(
    settings: Settings,
    *,
    installed_plugins: Mapping[str, Any] | None = None,
    stop: asyncio.Event | None = None,
    started: asyncio.Event | None = None,
) -> None:
    """Run jobs until ``stop`` is set (by default: until SIGTERM or SIGINT).

    ``installed_plugins`` replaces entry-point discovery, as in ``create_app``;
    ``started`` is set once the runner runs.
    """
    if not settings.redis_url:
        raise ValueError("ordergraph worker needs REDIS_URL (for example redis://127.0.0.1:6379)")
    rt = assembly.build(settings, installed_plugins)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    await rt.open(worker=True)
    try:
        if started is not None:
            started.set()
        await stop.wait()
    finally:
        # Stopping lets the jobs in hand finish; a second signal must not cut that short.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(rt.close())
