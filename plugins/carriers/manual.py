"""The ``manual`` carrier: staff record what a local courier reports, event by event.

It adds the ``recordTrackingEvents`` mutation (admin and staff). Its events go through
the same model as a polled or pushed carrier's: deduplicated, in any order, and the
order is DELIVERED once every shipment is.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

import strawberry

from ordergraph.plugin_api import (
    OPERATORS,
    DomainError,
    ErrorCode,
    Estimate,
    Info,
    Location,
    PluginInfo,
    SchemaExtension,
    ShipmentTrackingType,
    TrackingEvent,
    TrackingUpdate,
    UserError,
    check_order_scope,
    hookimpl,
    ingest_tracking,
    load_shipment_tracking,
    require,
    row_id,
    shipment_row,
    user_errors,
)


@strawberry.input
class TrackingLocationInput:
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""
    latitude: Decimal | None = None
    longitude: Decimal | None = None


@strawberry.input
class TrackingEventInput:
    occurred_at: datetime.datetime = strawberry.field(
        description="With the local UTC offset: 2024-04-26T09:26:00-07:00."
    )
    status: str = strawberry.field(description="karrio's tracking status: in_transit, ...")
    description: str = ""
    code: str = ""
    reason: str | None = None
    location: TrackingLocationInput | None = None


@strawberry.input
class EstimateInput:
    estimated_delivery: datetime.datetime | None = None
    window_from: datetime.datetime | None = None
    window_to: datetime.datetime | None = None


@strawberry.type
class RecordTrackingPayload:
    tracking: ShipmentTrackingType | None
    new_events: int
    errors: list[UserError]


def update_from_input(
    events: list[TrackingEventInput], estimate: EstimateInput | None, actor: str
) -> TrackingUpdate:
    return TrackingUpdate(
        events=[
            TrackingEvent(
                occurred_at=e.occurred_at,
                status=e.status,
                description=e.description,
                code=e.code,
                reason=e.reason,
                location=Location(**vars(e.location)) if e.location else Location(),
            )
            for e in events
        ],
        estimate=Estimate(**vars(estimate)) if estimate else None,
        source=f"manual:{actor}",
    )


@strawberry.type
class ManualCarrierMutation:
    @strawberry.mutation(description="Record tracking events of a shipment by the manual carrier.")
    async def record_tracking_events(
        self,
        info: Info,
        shipment_id: strawberry.ID,
        events: list[TrackingEventInput],
        estimate: EstimateInput | None = None,
    ) -> RecordTrackingPayload:
        principal = require(info, *OPERATORS)
        try:
            shipment = await shipment_row(row_id(shipment_id, "shipment", field="shipmentId"))
            await check_order_scope(
                principal, shipment["order"], what="shipment", ref=shipment_id, field="shipmentId"
            )
            if shipment["carrier"] != "manual":
                raise DomainError.of(
                    ErrorCode.INVALID_VALUE,
                    f"Shipment {shipment_id} goes by {shipment['carrier']}; its carrier reports "
                    "its tracking.",
                    "shipmentId",
                )
            result = await ingest_tracking(
                info.context.rt,
                shipment["id"],
                update_from_input(events, estimate, principal.actor),
                shipment=shipment,
            )
        except DomainError as error:
            return RecordTrackingPayload(tracking=None, new_events=0, errors=user_errors(error))
        return RecordTrackingPayload(
            tracking=await load_shipment_tracking(shipment["id"]),
            new_events=result.new_events,
            errors=[],
        )


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        category="carrier",
        description="Staff record tracking events for a local courier.",
        enabled_by_default=True,
    )


@hookimpl
def graphql_schema() -> SchemaExtension:
    return SchemaExtension(mutation=(ManualCarrierMutation,))
