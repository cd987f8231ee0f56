"""Delivery confirmation: by the customer (a mutation or a signed link, see ``links``), or by
the system once ``confirm_after_days`` passed with no problem reported. DELIVERED -> COMPLETED.

A reported problem pauses confirmation until staff resolve it: ``complete`` is vetoed
while a problem is open (the stage's ``before_transition``), whoever fires it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ordergraph.core import db, rate_limits, scope
from ordergraph.core.auth import SYSTEM, Principal
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.limits import DELIVERY_PROBLEM, PROBLEM_REPORTS_PER_ORDER, RESOLUTION
from ordergraph.core.orders import OrderView, load_order, recording
from ordergraph.core.tables import Order, OrderEvent
from ordergraph.core.transitions import transition_order
from ordergraph.stages.settlement.config import SettlementConfig
from ordergraph.stages.settlement.tables import DeliveryProblem
from ordergraph.stages.tracking import alerts

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime

SCAN_BATCH = 500


@dataclass(frozen=True)
class ProblemView:
    id: int
    order_id: int
    reported_by: str
    description: str
    opened_at: datetime.datetime
    resolved_at: datetime.datetime | None
    resolved_by: str | None
    resolution: str


async def open_problem(order_id: int) -> ProblemView | None:
    row = await (
        DeliveryProblem.select()
        .where((DeliveryProblem.order == order_id) & DeliveryProblem.resolved_at.is_null())
        .first()
    )
    return (
        ProblemView(**{("order_id" if k == "order" else k): v for k, v in row.items()})
        if row
        else None
    )


async def confirm_delivery(
    rt: Runtime, order_id: int, principal: Principal, *, how: str = "by the customer"
) -> OrderView:
    await scope.check_order(principal, order_id, field="orderId")
    return await transition_order(
        rt, order_id, "complete", principal, reason=f"delivery confirmed {how}"
    )


# -- Problems -----------------------------------------------------------------------------


async def report_problem(
    rt: Runtime, order_id: int, description: str, principal: Principal
) -> ProblemView:
    """Record a problem with a delivery; confirmation waits until staff resolve it.
    Reports on one order are limited (``PROBLEM_REPORTS_PER_ORDER``): a confirmation
    link in the wrong hands cannot flood the order's timeline and its team's alerts."""
    order = await load_order(order_id)
    if order is None or not await scope.may_access_order(principal, order_id):
        raise DomainError.of(ErrorCode.NOT_FOUND, f"There is no order {order_id}.", "orderId")
    if order.status != "DELIVERED":
        raise DomainError.of(
            ErrorCode.OUT_OF_ORDER,
            f"Order {order.number} is {order.status}; problems are reported on a delivered order.",
            "orderId",
        )
    text = description.strip()
    if not text:
        raise DomainError.of(ErrorCode.REQUIRED, "Describe the problem.", "description")
    if (wrong := DELIVERY_PROBLEM.problem(text, "description")) is not None:
        raise DomainError(wrong)
    await rate_limits.check(rt, "description", (PROBLEM_REPORTS_PER_ORDER, str(order_id)))
    async with recording(rt) as timeline:
        row = (
            await DeliveryProblem.insert(
                DeliveryProblem(order=order_id, reported_by=principal.actor, description=text)
            ).returning(*DeliveryProblem.all_columns())
        )[0]
        await timeline.record(
            order,
            "delivery_problem_reported",
            principal,
            data={"problem": row["id"], "description": text},
        )
    problem = ProblemView(**{("order_id" if k == "order" else k): v for k, v in row.items()})
    await open_delivery_alert(rt, order, problem)
    return problem


async def open_delivery_alert(rt: Runtime, order: OrderView, problem: ProblemView) -> None:
    """Where a reported problem becomes an alert someone must resolve: the
    ``delivery_problem_reported`` hook, which the alerts stage implements."""
    await rt.plugins.call("delivery_problem_reported", order=order, problem=problem)


async def resolve_problem(
    rt: Runtime, problem_id: int, resolution: str, principal: Principal
) -> ProblemView:
    text = resolution.strip()
    if not text:
        raise DomainError.of(ErrorCode.REQUIRED, "Say how it was resolved.", "resolution")
    if (wrong := RESOLUTION.problem(text, "resolution")) is not None:
        raise DomainError(wrong)
    reported = (
        await DeliveryProblem.select(DeliveryProblem.order)
        .where(DeliveryProblem.id == problem_id)
        .first()
    )
    if reported is None or not await scope.may_access_order(principal, reported["order"]):
        raise DomainError.of(
            ErrorCode.NOT_FOUND, f"There is no open delivery problem {problem_id}.", "id"
        )
    async with recording(rt) as timeline:
        rows = await (
            DeliveryProblem.update(
                {
                    DeliveryProblem.resolved_at: db.now(),
                    DeliveryProblem.resolved_by: principal.actor,
                    DeliveryProblem.resolution: text,
                }
            )
            .where((DeliveryProblem.id == problem_id) & DeliveryProblem.resolved_at.is_null())
            .returning(*DeliveryProblem.all_columns())
        )
        if not rows:
            raise DomainError.of(
                ErrorCode.NOT_FOUND, f"There is no open delivery problem {problem_id}.", "id"
            )
        order = await load_order(rows[0]["order"])
        assert order is not None  # orders are never deleted
        await timeline.record(
            order,
            "delivery_problem_resolved",
            principal,
            data={"problem": problem_id, "resolution": text},
        )
        if await open_problem(order.id) is None:
            await alerts.close_alerts(rt, order.id, ["delivery_problem"], text, principal)
    return ProblemView(**{("order_id" if k == "order" else k): v for k, v in rows[0].items()})


# -- Automatic confirmation ---------------------------------------------------------------


async def confirm_due_deliveries(
    rt: Runtime, config: SettlementConfig, now: datetime.datetime | None = None
) -> list[int]:
    """Confirm every delivery older than ``confirm_after_days`` with no open problem;
    return the orders confirmed. The settlement stage runs it as periodic work, hourly."""
    cutoff = (now or db.now()) - datetime.timedelta(days=config.confirm_after_days)
    delivered = await Order.select(Order.id).where(Order.status == "DELIVERED").limit(SCAN_BATCH)
    ids = [row["id"] for row in delivered]
    if not ids:
        return []
    reached = await OrderEvent.select(OrderEvent.order, OrderEvent.at).where(
        OrderEvent.order.is_in(ids) & (OrderEvent.to_status == "DELIVERED")
    )
    last: dict[int, datetime.datetime] = {}
    for row in reached:
        last[row["order"]] = max(row["at"], last.get(row["order"], row["at"]))
    paused = {
        row["order"]
        for row in await DeliveryProblem.select(DeliveryProblem.order).where(
            DeliveryProblem.order.is_in(ids) & DeliveryProblem.resolved_at.is_null()
        )
    }
    confirmed = []
    for order_id in ids:
        if order_id in paused or order_id not in last or last[order_id] > cutoff:
            continue
        try:
            await confirm_delivery(
                rt,
                order_id,
                SYSTEM,
                how=f"automatically: no problem reported within {config.confirm_after_days} days",
            )
        except DomainError:
            # Confirmed, or a problem reported, since the scan read it.
            continue
        confirmed.append(order_id)
    return confirmed
