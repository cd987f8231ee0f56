"""The ``manual`` carrier: staff record what a local courier reports, event by event.

It adds the ``recordTrackingEvents`` mutation (admin and staff). Its events go through
the same model as a polled or pushed carrier's: deduplicated, in any order, and the
order is DELIVERED once every shipment is.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Annotated

import strawberry

from ordergraph.plugin_api import (
    OPERATORS,
    PAYLOAD_ERRORS,
    DomainError,
    ErrorCode,
    Estimate,
    IncidentReason,
    Info,
    Location,
    PluginInfo,
    SchemaExtension,
    ShipmentTrackingType,
    TrackingEvent,
    TrackingStatus,
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


@strawberry.input(description="Where a tracking event happened.")
class TrackingLocationInput:
    city: str = strawberry.field(default="", description="The city, at most 128 characters.")
    region: str = strawberry.field(
        default="", description="The region or state, at most 128 characters."
    )
    postal_code: str = strawberry.field(
        default="", description="The postal code, at most 32 characters."
    )
    country: str = strawberry.field(default="", description="ISO 3166-1 alpha-2 country code.")
    latitude: Decimal | None = strawberry.field(
        default=None, description="Degrees north, -90 to 90 (INVALID_VALUE)."
    )
    longitude: Decimal | None = strawberry.field(
        default=None, description="Degrees east, -180 to 180 (INVALID_VALUE)."
    )


@strawberry.input(description="A courier's scan to record.")
class TrackingEventInput:
    occurred_at: datetime.datetime = strawberry.field(
        description="With the local UTC offset: 2024-04-26T09:26:00-07:00."
    )
    status: TrackingStatus = strawberry.field(description="Where the parcel is.")
    description: str = strawberry.field(
        default="", description="What the courier said, at most 500 characters."
    )
    code: str = strawberry.field(
        default="", description="The courier's own code, at most 64 characters."
    )
    reason: IncidentReason | None = strawberry.field(
        default=None, description="Why the delivery went wrong, when it did."
    )
    location: TrackingLocationInput | None = strawberry.field(
        default=None, description="Where it happened."
    )


@strawberry.input(description="The courier's estimate of the delivery.")
class EstimateInput:
    estimated_delivery: datetime.datetime | None = strawberry.field(
        default=None, description="The expected instant, with its offset."
    )
    window_from: datetime.datetime | None = strawberry.field(
        default=None, description="The start of the expected window, with its offset."
    )
    window_to: datetime.datetime | None = strawberry.field(
        default=None, description="The end of the expected window, with its offset."
    )


@strawberry.type(description="The answer to recordTrackingEvents.")
class RecordTrackingPayload:
    tracking: ShipmentTrackingType | None = strawberry.field(
        description=("The shipment's tracking after the events; null when errors is not empty.")
    )
    new_events: int = strawberry.field(
        description="Events not recorded before (the same event twice counts once)."
    )
    errors: list[UserError] = strawberry.field(description=PAYLOAD_ERRORS)


def update_from_input(
    events: list[TrackingEventInput], estimate: EstimateInput | None, actor: str
) -> TrackingUpdate:
    return TrackingUpdate(
        events=[
            TrackingEvent(
                occurred_at=e.occurred_at,
                status=e.status.value,
                description=e.description,
                code=e.code,
                reason=e.reason.value if e.reason else None,
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
        shipment_id: Annotated[
            strawberry.ID,
            strawberry.argument(
                description=(
                    "The shipment's id (Shipment.id); it must go by the manual carrier "
                    "(INVALID_VALUE)."
                )
            ),
        ],
        events: Annotated[
            list[TrackingEventInput],
            strawberry.argument(description="The events, in any order, at most 500."),
        ],
        estimate: Annotated[
            EstimateInput | None,
            strawberry.argument(description="The courier's estimate, when it gave one."),
        ] = None,
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
