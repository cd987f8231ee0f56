"""Stage 3, processing: teams, assignment, pick/pack/ship tasks and shipments.

The stage is registered like a plugin (``Stage`` below, added by the runtime): its
jobs, its reactions to transitions and its vetoes come through the same hooks a
plugin uses, so the kernel imports nothing of it. It works once an assignment plugin
(one implementing ``assign_order``, such as the built-in ``rules``) is enabled;
without one, approved orders wait in APPROVED for staff, as before.

Records (``tables``): ``teams`` and ``team_members``, ``assignments``,
``fulfilment_lines``, ``tasks``, ``shipments``, ``shipment_lines`` and
``shipment_bookings`` (the labels bought from carriers).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from ordergraph.core import db, jobs, scope
from ordergraph.core.auth import Principal
from ordergraph.core.orders import OrderView
from ordergraph.core.plugins import PluginConfigError, PluginInfo, hookimpl
from ordergraph.core.statusgraph import Transition
from ordergraph.stages.fulfilment.assignment import (
    ASSIGN_JOB,
    WORKING,
    AssignmentChoice,
    assign,
    drain_queue,
)
from ordergraph.stages.fulfilment.labels import BOOK_JOB, book
from ordergraph.stages.fulfilment.teams import (
    DRAIN_JOB,
    Candidate,
    TeamView,
    serialize_assignments,
    team_order_ids,
)
from ordergraph.stages.fulfilment.work import (
    DERIVE_JOB,
    derive_status,
    fulfilment_lines,
    open_quantities,
    open_quantity,
)

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime

# Staff of a team see and act on the orders their team holds (core.scope).
scope.team_orders = team_order_ids

__all__ = ["AssignmentChoice", "Candidate", "Stage", "TeamView", "open_quantities"]


class Stage:
    """The processing stage's hooks, bound to one running service."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @property
    def active(self) -> bool:
        return self.rt.plugins.hook_implemented("assign_order")

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(category="other", description="Stage 3: processing.")

    @hookimpl
    def register_jobs(self) -> dict[str, jobs.Job]:
        for impl in self.rt.plugins.pm.hook.assign_order.get_hookimpls():
            if inspect.iscoroutinefunction(impl.function):
                raise PluginConfigError(f"plugin {impl.plugin_name}: assign_order must be sync")
        rt = self.rt

        async def assign_order(payload: dict[str, Any]) -> None:
            await assign(rt, payload["order_id"])

        async def drain_team_queue(payload: dict[str, Any]) -> None:
            await drain_queue(rt, payload["team_id"])

        async def derive_fulfilment_status(payload: dict[str, Any]) -> None:
            await derive_status(rt, payload["order_id"])

        async def book_shipment(payload: dict[str, Any]) -> None:
            await book(rt, payload["order_id"], payload["shipment_id"])

        return {
            ASSIGN_JOB: assign_order,
            DRAIN_JOB: drain_team_queue,
            DERIVE_JOB: derive_fulfilment_status,
            BOOK_JOB: book_shipment,
        }

    @hookimpl
    async def before_transition(
        self, order: OrderView, transition: Transition, principal: Principal
    ) -> str | None:
        """``ship`` by hand waits until every quantity has shipped or was cancelled."""
        if transition.target == "SHIPPED":
            left = sum(open_quantity(line) for line in (await fulfilment_lines(order.id)).values())
            if left:
                return f"{left} ordered units have not shipped; ship them or cancel them first"
        return None

    @hookimpl
    async def apply_transition(self, order: OrderView, transition: Transition) -> None:
        """Entering APPROVED asks for assignment (a job, after commit); leaving the working
        states closes the assignment, and the member's team queue moves on."""
        if transition.target == "APPROVED" and self.active:
            await jobs.enqueue_job(ASSIGN_JOB, {"order_id": order.id})
        elif order.status in WORKING and transition.target not in WORKING:
            await serialize_assignments()
            closed = await db.raw(
                'UPDATE assignments SET state = {} WHERE "order" = {} AND state <> {} '
                "RETURNING team, state",
                "done",
                order.id,
                "done",
            )
            for row in closed:
                if row["team"] is not None:
                    await jobs.enqueue_job(DRAIN_JOB, {"team_id": row["team"]})
