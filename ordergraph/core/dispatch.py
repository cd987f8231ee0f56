"""The core's own jobs: what plugins do after an order event is committed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ordergraph.core.orders import HOOKS_JOB, load_order, message_event

if TYPE_CHECKING:
    from ordergraph.core.jobs import Job
    from ordergraph.core.runtime import Runtime


class HookFailed(RuntimeError):
    pass


def core_jobs(rt: Runtime) -> dict[str, Job]:
    async def run_order_event_hooks(payload: dict[str, Any]) -> None:
        """``notify`` and, for a transition, ``after_transition``, with the event the job
        carries and the order as it is now."""
        event = message_event(payload["event"])
        order = await load_order(event.order_id)
        failures = (await rt.plugins.call("notify", order=order, event=event, runtime=rt)).failures
        if event.type == "transition":
            failures += (
                await rt.plugins.call("after_transition", order=order, event=event)
            ).failures
        if failures:
            raise HookFailed("; ".join(f"{f.plugin}.{f.hook}: {f.error}" for f in failures))

    return {HOOKS_JOB: run_order_event_hooks}
