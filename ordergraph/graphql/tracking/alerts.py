"""GraphQL for stage 4's alerts: the list, acknowledging and resolving, and a live feed."""

from __future__ import annotations

import datetime
from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from ordergraph.core.errors import DomainError
from ordergraph.core.orders import order_number
from ordergraph.graphql.context import OPERATORS, Info, page_size, require, row_id
from ordergraph.graphql.queries import keyset_page
from ordergraph.graphql.types import (
    PAYLOAD_ERRORS,
    Connection,
    UserError,
    connection,
    order_global_id,
    order_key,
    payload_errors,
    stored_enum,
)
from ordergraph.stages.tracking import alerts
from ordergraph.stages.tracking.alerts import SILENT_HOURS
from ordergraph.stages.tracking.tables import Alert as AlertRow

ALERTS_PAGE = 50


AlertState = stored_enum(
    "AlertState",
    "Where an alert stands.",
    {
        "open": "Raised; nobody has said they are on it.",
        "acknowledged": "Someone is on it (acknowledgedBy); it still counts as open work.",
        "resolved": "Closed, by a person with a resolution or by the service when the "
        "cause went away (a later delivery, the work done).",
    },
)
_KIND_MEANINGS = {
    "stuck": "An order sat in a state longer than it may (RECEIVED 1 hour, IN_REVIEW 2, "
    "ON_HOLD 24; APPROVED and PROCESSING their due hours).",
    "sla_breach": "Work was not done by its due time.",
    "delivery_failed": "The carrier could not deliver a parcel.",
    "carrier_exception": "The carrier holds, delays, returns or cancelled a parcel.",
    "tracking_silent": f"A parcel in transit has had no carrier event for {SILENT_HOURS} hours.",
    "job_failed": "A background job for the order failed for good.",
    "plugin_failed": "A plugin failed on the order (its error is in detail).",
    "label_failed": "Buying a shipment's label failed or its outcome is unknown.",
    "payment_held": "A payment provider holds a payment for review.",
    "delivery_problem": "The customer reported a problem with the delivery.",
}
AlertKind = stored_enum(
    "AlertKind",
    "What went wrong.",
    {kind: _KIND_MEANINGS[kind] for kind in alerts.SEVERITY},
)
AlertSeverity = stored_enum(
    "AlertSeverity",
    "How soon an alert is due to be resolved.",
    {
        "high": f"Due {alerts.RESPONSE_HOURS['high']} hours after it opened.",
        "warning": f"Due {alerts.RESPONSE_HOURS['warning']} hours after it opened.",
    },
)


@strawberry.type(
    description=(
        "Something about an order that someone must resolve (admins, and staff of the "
        "order's team)."
    )
)
class Alert:
    id: strawberry.ID = strawberry.field(
        description="The alert's id; acknowledgeAlert and resolveAlert take it."
    )
    kind: AlertKind = strawberry.field(description="What went wrong.")
    severity: AlertSeverity = strawberry.field(description="How soon it is due.")
    order_id: strawberry.ID = strawberry.field(description="The order's id (Order.id).")
    order_number: str = strawberry.field(description="The order's number, such as SO-000013.")
    shipment_id: strawberry.ID | None = strawberry.field(
        description="The shipment it is about (Shipment.id); null when about the order."
    )
    team: str | None = strawberry.field(description="The owning team (the order's).")
    owner: str | None = strawberry.field(description="The member the order is assigned to.")
    state: AlertState = strawberry.field(description="Where it stands.")
    opened_at: datetime.datetime = strawberry.field(
        description="When it was raised (ISO 8601, UTC)."
    )
    due_at: datetime.datetime | None = strawberry.field(
        description="When it is due to be resolved (ISO 8601, UTC), from its severity."
    )
    acknowledged_by: str | None = strawberry.field(
        description="Who acknowledged it, as role:name; null before."
    )
    acknowledged_at: datetime.datetime | None = strawberry.field(
        description="When it was acknowledged (ISO 8601, UTC); null before."
    )
    resolved_by: str | None = strawberry.field(
        description=(
            "Who resolved it, as role:name (system:ordergraph when its cause went "
            "away); null before."
        )
    )
    resolved_at: datetime.datetime | None = strawberry.field(
        description="When it was resolved (ISO 8601, UTC); null before."
    )
    resolution: str = strawberry.field(description="What was done; empty before.")
    detail: JSON = strawberry.field(
        description=(
            "What raised it (the carrier's event, the failed job, the plugin's error), as JSON."
        )
    )

    @classmethod
    def from_view(cls, view: alerts.AlertView) -> Alert:
        return cls(
            id=strawberry.ID(str(view.id)),
            kind=AlertKind(view.kind),
            severity=AlertSeverity(view.severity),
            order_id=order_global_id(view.order_id),
            order_number=order_number(view.order_id),
            shipment_id=None if view.shipment_id is None else strawberry.ID(str(view.shipment_id)),
            team=view.team,
            owner=view.owner,
            state=AlertState(view.state),
            opened_at=view.opened_at,
            due_at=view.due_at,
            acknowledged_by=view.acknowledged_by,
            acknowledged_at=view.acknowledged_at,
            resolved_by=view.resolved_by,
            resolved_at=view.resolved_at,
            resolution=view.resolution,
            detail=view.detail,
        )


@strawberry.type(description="The answer to acknowledging or resolving an alert.")
class AlertPayload:
    alert: Alert | None = strawberry.field(
        default=None, description="The alert after the change; null when errors is not empty."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description=PAYLOAD_ERRORS,
    )


@strawberry.type
class AlertQuery:
    @strawberry.field(description="Alerts you may see (your team's), newest first.")
    async def alerts(
        self,
        info: Info,
        state: Annotated[
            AlertState | None,
            strawberry.argument(
                description="Only alerts in this state (OPEN takes acknowledged ones too: "
                "every alert not resolved); null: every alert."
            ),
        ] = None,
        order_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Only this order's alerts (Order.id)."),
        ] = None,
        first: Annotated[
            int | None,
            strawberry.argument(
                description="How many alerts the page holds: 1 to 100 (default 50); another "
                "number is refused with OUT_OF_RANGE."
            ),
        ] = ALERTS_PAGE,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="The cursor after which the page starts: a cursor this list "
                "handed out (endCursor), else INVALID_CURSOR."
            ),
        ] = None,
    ) -> Connection[Alert]:
        principal = require(info, *OPERATORS)
        size = page_size(first, default=ALERTS_PAGE)
        try:
            wanted = None if order_id is None else order_key(order_id, "orderId")
        except DomainError:
            return connection("alert", [], [], 0, has_next=False)
        clauses = alerts.alert_filters(
            principal, state=state.value if state else None, order_id=wanted
        )
        return await keyset_page(
            "alert",
            AlertRow,
            clauses,
            size,
            after,
            lambda row: Alert.from_view(alerts.alert_view(row)),
            newest_first=True,
            columns=alerts.ALERT_COLUMNS,
        )


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
    async def acknowledge_alert(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The alert's id (Alert.id).")],
    ) -> AlertPayload:
        return await _act(info, id, None)

    @strawberry.mutation(description="Close an alert, saying what was done.")
    async def resolve_alert(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The alert's id (Alert.id).")],
        resolution: Annotated[
            str, strawberry.argument(description="What was done, at most 2,000 characters.")
        ],
    ) -> AlertPayload:
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
