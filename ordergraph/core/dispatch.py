"""The core's own jobs: what happens after an order event is committed."""

from __future__ import annotations

import datetime
from dataclasses import asdict
from dataclasses import fields as dataclass_fields
from typing import TYPE_CHECKING, Any

from ordergraph.core.orders import OrderEventView, event_view, load_order
from ordergraph.core.tables import OrderEvent

if TYPE_CHECKING:
    from ordergraph.core.jobs import Job
    from ordergraph.core.runtime import Runtime


class HookFailed(RuntimeError):
    pass


def event_message(event: dict[str, Any], customer_id: int) -> dict[str, Any]:
    """The bus message for one event (JSON): the event's fields, and ``customer_id`` so
    that subscriptions can filter by owner."""
    view = event_view(event)
    return {**asdict(view), "at": view.at.isoformat(), "customer_id": customer_id}


def message_event(message: dict[str, Any]) -> OrderEventView:
    """The event a bus message carries: ``event_message`` read back by a subscriber."""
    fields = {f.name: message[f.name] for f in dataclass_fields(OrderEventView)}
    return OrderEventView(**{**fields, "at": datetime.datetime.fromisoformat(message["at"])})


def core_jobs(rt: Runtime) -> dict[str, Job]:
    async def publish_order_event(payload: dict[str, Any]) -> None:
        row = await (
            OrderEvent.select(*OrderEvent.all_columns(), OrderEvent.order.customer.as_alias("cid"))
            .where(OrderEvent.id == payload["event_id"])
            .first()
        )
        if row is not None:
            await rt.bus.publish(event_message(row, row["cid"]))

    async def run_order_event_hooks(payload: dict[str, Any]) -> None:
        if not (
            rt.plugins.hook_implemented("notify") or rt.plugins.hook_implemented("after_transition")
        ):
            return
        row = await OrderEvent.select().where(OrderEvent.id == payload["event_id"]).first()
        if row is None:
            return
        event = event_view(row)
        order = await load_order(event.order_id)
        failures = (await rt.plugins.call("notify", order=order, event=event)).failures
        if event.type == "transition":
            failures += (
                await rt.plugins.call("after_transition", order=order, event=event)
            ).failures
        if failures:
            raise HookFailed("; ".join(f"{f.plugin}.{f.hook}: {f.error}" for f in failures))

    return {
        "publish_order_event": publish_order_event,
        "run_order_event_hooks": run_order_event_hooks,
    }
