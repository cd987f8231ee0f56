"""GraphQL for stage 4's tracking: each shipment's status, events, ETA and its history."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Annotated

import strawberry

from ordergraph.core import scope
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.tables import Order as OrderRow
from ordergraph.graphql.context import OPERATORS, READERS, ApiError, Info, require, row_id
from ordergraph.graphql.types import (
    PAYLOAD_ERRORS,
    UserError,
    order_key,
    payload_errors,
    stored_enum,
)
from ordergraph.stages.tracking import lookup, updates

_STATUS_MEANINGS = {
    "pending": "The carrier knows of the parcel but has not picked it up.",
    "picked_up": "The carrier has the parcel.",
    "in_transit": "On its way.",
    "out_for_delivery": "On the vehicle that delivers it today.",
    "ready_for_pickup": "Waiting at a parcel shop or locker for the customer.",
    "delivered": "Delivered.",
    "delivery_failed": "A delivery was tried and failed (reason says why).",
    "delivery_delayed": "Late: the carrier expects to deliver later than it said.",
    "on_hold": "The carrier holds the parcel (customs, an address problem...).",
    "return_to_sender": "Going back to the shop.",
    "cancelled": "The shipment was cancelled with the carrier.",
    "unknown": "The carrier's status could not be read.",
}
TrackingStatus = stored_enum(
    "TrackingStatus",
    "Where a parcel is, in karrio's vocabulary, whichever carrier reported it.",
    {status: _STATUS_MEANINGS[status] for status in updates.STATUSES},
)
IncidentReason = stored_enum(
    "IncidentReason",
    "Why a delivery went wrong, in karrio's vocabulary: the family (carrier, retailer, "
    "consignee, customs) is the start of the name.",
    {
        reason: (
            "The carrier could not say why."
            if reason == "unknown"
            else reason.replace("_", " ").capitalize() + "."
        )
        for reason in updates.REASONS
    },
)
OnTimeStatus = stored_enum(
    "OnTimeStatus",
    "Whether a shipment keeps its promised date.",
    {
        "on_time": "Delivered, or estimated to be, on or before the promised date.",
        "late": "Delivered, or estimated to be, after the promised date.",
        "unknown": "No promised date, or no delivery date or estimate yet.",
    },
)


@strawberry.type(description="Where a tracking event happened, as the carrier said.")
class TrackingLocation:
    city: str = strawberry.field(description="The city; empty when not said.")
    region: str = strawberry.field(description="The region or state; empty when not said.")
    postal_code: str = strawberry.field(description="The postal code; empty when not said.")
    country: str = strawberry.field(description="ISO 3166-1 alpha-2, or empty.")
    latitude: Decimal | None = strawberry.field(
        description="Degrees north, -90 to 90, to 7 decimal places; null when not said."
    )
    longitude: Decimal | None = strawberry.field(
        description="Degrees east, -180 to 180, to 7 decimal places; null when not said."
    )


@strawberry.type(description="A scan or event a carrier reported for a shipment.")
class TrackingEvent:
    occurred_at: datetime.datetime = strawberry.field(
        description="The instant, in UTC (when offsetKnown is false: the local time as UTC)."
    )
    local_time: datetime.datetime = strawberry.field(
        description="The same instant on the carrier's local clock, with its offset "
        "(without one when offsetKnown is false)."
    )
    utc_offset_minutes: int | None = strawberry.field(
        description="The carrier's local offset from UTC in minutes; null when unknown."
    )
    offset_known: bool = strawberry.field(
        description="False when the carrier gave only its local time and its zone is unknown."
    )
    status: TrackingStatus = strawberry.field(description="Where the parcel was.")
    reason: IncidentReason | None = strawberry.field(
        description="Why the delivery went wrong; null when nothing did."
    )
    code: str = strawberry.field(description="The carrier's own event code.")
    description: str = strawberry.field(description="The carrier's words.")
    location: TrackingLocation = strawberry.field(description="Where it happened.")
    source: str = strawberry.field(
        description=("Who reported it: a carrier plugin's poll or webhook, or manual:role:name.")
    )

    @classmethod
    def from_view(cls, view: updates.EventView) -> TrackingEvent:
        place = view.location
        return cls(
            occurred_at=view.occurred_at,
            local_time=view.local_time,
            utc_offset_minutes=view.utc_offset_minutes,
            offset_known=view.offset_known,
            status=TrackingStatus(view.status),
            reason=None if view.reason is None else IncidentReason(view.reason),
            code=view.code,
            description=view.description,
            location=TrackingLocation(
                city=place.city,
                region=place.region,
                postal_code=place.postal_code,
                country=place.country,
                latitude=place.latitude,
                longitude=place.longitude,
            ),
            source=view.source,
        )


@strawberry.type(description="When a shipment is expected, as a carrier estimated it.")
class DeliveryEstimate:
    estimated_delivery: datetime.datetime | None = strawberry.field(
        description="The expected instant (ISO 8601, UTC); null when unknown."
    )
    window_from: datetime.datetime | None = strawberry.field(
        description="The start of the expected window (ISO 8601, UTC); null when none."
    )
    window_to: datetime.datetime | None = strawberry.field(
        description="The end of the expected window (ISO 8601, UTC); null when none."
    )
    source: str = strawberry.field(
        default="",
        description=(
            "Who estimated it (a carrier plugin, or manual); empty for the current estimate."
        ),
    )
    recorded_at: datetime.datetime | None = strawberry.field(
        default=None,
        description=(
            "When this estimate was recorded (ISO 8601, UTC); null for the current estimate."
        ),
    )


@strawberry.type(description="A shipment's tracking: status, events and estimates.")
class ShipmentTracking:
    shipment_id: strawberry.ID = strawberry.field(description="The shipment's id (Shipment.id).")
    carrier: str = strawberry.field(description="The carrier plugin's name.")
    tracking_number: str = strawberry.field(description="The carrier's tracking number.")
    status: TrackingStatus = strawberry.field(description="Where the parcel is now.")
    reason: IncidentReason | None = strawberry.field(
        description="Why the delivery went wrong; null when nothing did."
    )
    last_event_at: datetime.datetime | None = strawberry.field(
        description="When the carrier last reported (ISO 8601, UTC); null before."
    )
    delivered_at: datetime.datetime | None = strawberry.field(
        description="When it was delivered (ISO 8601, UTC); null before."
    )
    estimate: DeliveryEstimate = strawberry.field(description="The carrier's current estimate.")
    eta_history: list[DeliveryEstimate] = strawberry.field(
        description="Every estimate the carrier gave, oldest first."
    )
    promised_date: datetime.date | None = strawberry.field(
        description="The delivery date promised to the customer; null when none."
    )
    on_time_status: OnTimeStatus = strawberry.field(
        description="Whether it keeps the promised date."
    )
    events: list[TrackingEvent] = strawberry.field(description="Newest first.")

    @classmethod
    def from_view(cls, view: updates.ShipmentTrackingView) -> ShipmentTracking:
        return cls(
            shipment_id=strawberry.ID(str(view.shipment_id)),
            carrier=view.carrier,
            tracking_number=view.tracking_number,
            status=TrackingStatus(view.status),
            reason=None if view.reason is None else IncidentReason(view.reason),
            last_event_at=view.last_event_at,
            delivered_at=view.delivered_at,
            estimate=_estimate(view.estimate),
            eta_history=[
                _estimate(estimate, source, recorded_at)
                for estimate, source, recorded_at in view.eta_history
            ],
            promised_date=view.promised_date,
            on_time_status=OnTimeStatus(view.on_time_status),
            events=[TrackingEvent.from_view(e) for e in view.events],
        )


def _estimate(
    estimate: updates.Estimate, source: str = "", recorded_at: datetime.datetime | None = None
) -> DeliveryEstimate:
    return DeliveryEstimate(
        estimated_delivery=estimate.estimated_delivery,
        window_from=estimate.window_from,
        window_to=estimate.window_to,
        source=source,
        recorded_at=recorded_at,
    )


async def shipment_tracking(shipment_id: int) -> ShipmentTracking:
    """One shipment's tracking as the API shows it."""
    order_id = (await updates.shipment_row(shipment_id))["order"]
    views = (await updates.order_tracking([order_id]))[order_id]
    return ShipmentTracking.from_view(next(v for v in views if v.shipment_id == shipment_id))


@strawberry.type(description="The answer to setPromisedDate.")
class PromisePayload:
    tracking: ShipmentTracking | None = strawberry.field(
        default=None,
        description=("The shipment's tracking after the change; null when errors is not empty."),
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description=PAYLOAD_ERRORS,
    )


@strawberry.type(description="Where a tracking event happened, as much as a customer is shown.")
class PublicPlace:
    city: str = strawberry.field(description="The city; empty when not said.")
    region: str = strawberry.field(description="The region or state; empty when not said.")
    country: str = strawberry.field(
        description="ISO 3166-1 alpha-2 country code; empty when not said."
    )


@strawberry.type(description="A carrier's event, as a customer is shown it.")
class PublicTrackingEvent:
    occurred_at: datetime.datetime = strawberry.field(description="The instant (ISO 8601, UTC).")
    local_time: datetime.datetime = strawberry.field(
        description="The same instant on the carrier's local clock, with its offset."
    )
    offset_known: bool = strawberry.field(
        description="False when the carrier gave only its local time."
    )
    status: TrackingStatus = strawberry.field(description="Where the parcel was.")
    description: str = strawberry.field(description="The carrier's words.")
    location: PublicPlace = strawberry.field(description="Where it happened.")


@strawberry.type(description="A shipment, as a customer is shown it.")
class PublicShipment:
    carrier: str = strawberry.field(description="The carrier's name.")
    status: TrackingStatus = strawberry.field(description="Where the parcel is.")
    estimate: DeliveryEstimate = strawberry.field(description="When it is expected.")
    delivered_at: datetime.datetime | None = strawberry.field(
        description="When it was delivered (ISO 8601, UTC); null before."
    )
    events: list[PublicTrackingEvent] = strawberry.field(description="Newest first.")


@strawberry.type(
    description=(
        "An order's progress, as anyone with its number and the customer's e-mail or "
        "postal code is shown it."
    )
)
class PublicOrderTracking:
    number: str = strawberry.field(description="The order's number.")
    status: str = strawberry.field(description="The order's status (Order.status).")
    shipments: list[PublicShipment] = strawberry.field(description="Its shipments, oldest first.")

    @classmethod
    def from_view(cls, view: lookup.PublicTracking) -> PublicOrderTracking:
        return cls(
            number=view.number,
            status=view.status,
            shipments=[
                PublicShipment(
                    carrier=s.carrier,
                    status=TrackingStatus(s.status),
                    estimate=_estimate(s.estimate),
                    delivered_at=s.delivered_at,
                    events=[
                        PublicTrackingEvent(
                            occurred_at=e.occurred_at,
                            local_time=e.local_time,
                            offset_known=e.offset_known,
                            status=TrackingStatus(e.status),
                            description=e.description,
                            location=PublicPlace(
                                city=e.location.city,
                                region=e.location.region,
                                country=e.location.country,
                            ),
                        )
                        for e in s.events
                    ],
                )
                for s in view.shipments
            ],
        )


def client_of(info: Info) -> str:
    client = info.context.request.client
    return client.host if client else "unknown"


@strawberry.type
class TrackingQuery:
    @strawberry.field(
        description="An order's status and tracking, without a token: its number and the "
        "customer's e-mail, or the delivery postal code. Null when they do not match."
    )
    async def track_order(
        self,
        info: Info,
        number: Annotated[
            str,
            strawberry.argument(
                description=(
                    "The order's number, such as SO-000013. Lookups are limited per "
                    "client and per order (RATE_LIMITED)."
                )
            ),
        ],
        email: Annotated[
            str | None, strawberry.argument(description="The customer's e-mail address.")
        ] = None,
        postal_code: Annotated[
            str | None,
            strawberry.argument(
                description="The delivery address's postal code, instead of the e-mail."
            ),
        ] = None,
    ) -> PublicOrderTracking | None:
        try:
            await lookup.limit_lookup(info.context.rt, client_of(info), number)
        except DomainError as error:
            raise ApiError(error.code, str(error.problems[0].message)) from None
        found = await lookup.look_up(number, email=email, postal_code=postal_code)
        return PublicOrderTracking.from_view(found) if found else None

    @strawberry.field(description="The tracking of every shipment of an order.")
    async def shipment_tracking(
        self,
        info: Info,
        order_id: Annotated[
            strawberry.ID,
            strawberry.argument(
                description=(
                    "The order's id (Order.id; its databaseId is taken too). NOT_FOUND "
                    "when it is not one you may see."
                )
            ),
        ],
    ) -> list[ShipmentTracking]:
        principal = require(info, *READERS)
        not_found = ApiError(ErrorCode.NOT_FOUND, f"There is no order {order_id}.")
        try:
            wanted = order_key(order_id)
        except DomainError:
            raise not_found from None
        row = await OrderRow.select(OrderRow.customer).where(OrderRow.id == wanted).first()
        if row is None or not await scope.may_access_order(
            principal, wanted, customer_id=row["customer"]
        ):
            raise not_found
        views = (await updates.order_tracking([wanted]))[wanted]
        return [ShipmentTracking.from_view(v) for v in views]


@strawberry.type
class TrackingMutation:
    @strawberry.mutation(description="Set (or clear) the delivery date promised for a shipment.")
    @payload_errors
    async def set_promised_date(
        self,
        info: Info,
        shipment_id: Annotated[
            strawberry.ID, strawberry.argument(description="The shipment's id (Shipment.id).")
        ],
        promised_date: Annotated[
            datetime.date | None,
            strawberry.argument(
                description=(
                    "The promised delivery date in the customer's calendar; null clears it."
                )
            ),
        ] = None,
    ) -> PromisePayload:
        principal = require(info, *OPERATORS)
        wanted = row_id(shipment_id, "shipment", field="shipmentId")
        shipment = await updates.shipment_row(wanted)
        await scope.check_order(
            principal, shipment["order"], what="shipment", ref=wanted, field="shipmentId"
        )
        await updates.set_promised_date(wanted, promised_date)
        return PromisePayload(tracking=await shipment_tracking(wanted), errors=[])
