"""GraphQL for stage 4's alerts: the list, acknowledging and resolving, and a live feed."""

from __future__ import annotations

import datetime
from collections.abc import AsyncGenerator
from enum import Enum

import strawberry
from strawberry.scalars import JSON

from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.orders import order_number
from ordergraph.graphql.context import OPERATORS, ApiError, Info, require, row_id
from ordergraph.graphql.types import UserError, payload_errors
from ordergraph.stages.tracking import alerts

MAX_ALERTS = 200


@strawberry.enum
class AlertState(Enum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


@strawberry.type
class Alert:
    id: strawberry.ID
    kind: str = strawberry.field(
        description="stuck, sla_breach, delivery_failed, carrier_exception, tracking_silent, "
        "job_failed, plugin_failed, label_failed or payment_held."
    )
    severity: str = strawberry.field(description="high or warning.")
    order_id: strawberry.ID
    order_number: str
    shipment_id: strawberry.ID | None
    team: str | None = strawberry.field(description="The owning team (the order's).")
    owner: str | None = strawberry.field(description="The member the order is assigned to.")
    state: str
    opened_at: datetime.datetime
    due_at: datetime.datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime.datetime | None
    resolved_by: str | None
    resolved_at: datetime.datetime | None
    resolution: str
    detail: JSON

    @classmethod
    def from_view(cls, view: alerts.AlertView) -> Alert:
        return cls(
            id=strawberry.ID(str(view.id)),
            kind=view.kind,
            severity=view.severity,
            order_id=strawberry.ID(str(view.order_id)),
            order_number=order_number(view.order_id),
            shipment_id=None if view.shipment_id is None else strawberry.ID(str(view.shipment_id)),
            team=view.team,
            owner=view.owner,
            state=view.state,
            opened_at=view.opened_at,
            due_at=view.due_at,
            acknowledged_by=view.acknowledged_by,
            acknowledged_at=view.acknowledged_at,
            resolved_by=view.resolved_by,
            resolved_at=view.resolved_at,
            resolution=view.resolution,
            detail=view.detail,
        )


@strawberry.type
class AlertPayload:
    alert: Alert | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class AlertQuery:
    @strawberry.field(description="Alerts you may see (your team's), newest first.")
    async def alerts(
        self,
        info: Info,
        state: AlertState | None = None,
        order_id: strawberry.ID | None = None,
        first: int = 50,
    ) -> list[Alert]:
        principal = require(info, *OPERATORS)
        if not 1 <= first <= MAX_ALERTS:
            raise ApiError(ErrorCode.INVALID_VALUE, f"first: 1 to {MAX_ALERTS}.")
        try:
            wanted = None if order_id is None else row_id(order_id, "order", field="orderId")
        except DomainError:
            return []
        views = await alerts.list_alerts(
            principal, state=state.value if state else None, order_id=wanted, limit=first
        )
        return [Alert.from_view(v) for v in views]


@payload_errors
async def _act(info: Info, alert_id: strawberry.ID, resolution: str | None) -> AlertPayload:
    principal = require(info, *OPERATORS)
    wanted = row_id(alert_id, "alert")
    if resolution is None:
        view = await alerts.acknowledge(info.context.rt, wanted, principal)
    else:
        view = await alerts.resolve(info.context.rt, wanted, principal, resolution)
    return AlertPayload(alert=Alert.from_view(view))


@strawberry.type
class AlertMutation:
    @strawberry.mutation(description="Say you are on it.")
    async def acknowledge_alert(self, info: Info, id: strawberry.ID) -> AlertPayload:
        return await _act(info, id, None)

    @strawberry.mutation(description="Close an alert, saying what was done.")
    async def resolve_alert(self, info: Info, id: strawberry.ID, resolution: str) -> AlertPayload:
        return await _act(info, id, resolution)


@strawberry.type
class AlertSubscription:
    @strawberry.subscription(
        description="Alerts as they open, are acknowledged and resolved: your team's."
    )
    async def alerts(self, info: Info) -> AsyncGenerator[Alert, None]:
        principal = require(info, *OPERATORS)
        async with info.context.rt.bus.subscribe() as messages:
            async for message in messages:
                if message.get("type") not in alerts.ALERT_EVENTS:
                    continue
                try:
                    view = await alerts.get_alert(message["data"]["alert"], principal)
                except DomainError:
                    continue
                yield Alert.from_view(view)
