"""``ordergraph worker``: runs outbox jobs handed over by ``ArqRelay`` (needs ``REDIS_URL``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker, func

from ordergraph.core import jobs, periodic, runtime
from ordergraph.settings import Settings


def create_worker(
    settings: Settings, *, installed_plugins: Mapping[str, Any] | None = None, **kwargs: Any
) -> Worker:
    """An arq worker that runs outbox jobs; it relays due jobs to arq itself too.

    ``installed_plugins`` replaces entry-point discovery, as in ``create_app``; the
    other keyword arguments go to arq's ``Worker``.
    """
    if not settings.redis_url:
        raise ValueError("ordergraph worker needs REDIS_URL (for example redis://127.0.0.1:6379)")
    rt = runtime.build(settings, installed_plugins)

    async def startup(ctx: dict[str, Any]) -> None:
        await rt.open(run_jobs=True)

    async def shutdown(ctx: dict[str, Any]) -> None:
        await rt.close()

    async def run_outbox_job(ctx: dict[str, Any], job_id: int) -> str | None:
        return await jobs.run_job(rt, job_id)

    return Worker(
        functions=[func(run_outbox_job, name=jobs.ARQ_FUNCTION)],
        # Periodic work (register_periodic): arq's cron looks for it; the database decides.
        cron_jobs=[periodic.arq_cron_job(rt)],
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        # Retries are the outbox's business; arq runs each attempt once.
        max_tries=1,
        handle_signals=kwargs.pop("handle_signals", True),
        **kwargs,
    )
