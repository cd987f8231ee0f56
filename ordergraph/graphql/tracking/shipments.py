"""GraphQL for stage 4's tracking: each shipment's status, events, ETA and its history."""

from __future__ import annotations

import datetime
from decimal import Decimal

import strawberry

from ordergraph.core import scope
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.tables import Order as OrderRow
from ordergraph.graphql.context import OPERATORS, READERS, ApiError, Info, require, row_id
from ordergraph.graphql.types import UserError, payload_errors
from ordergraph.stages.tracking import lookup, updates


@strawberry.type
class TrackingLocation:
    city: str
    region: str
    postal_code: str
    country: str = strawberry.field(description="ISO 3166-1 alpha-2, or empty.")
    latitude: Decimal | None
    longitude: Decimal | None


@strawberry.type
class TrackingEvent:
    occurred_at: datetime.datetime = strawberry.field(
        description="The instant, in UTC (when offsetKnown is false: the local time as UTC)."
    )
    local_time: datetime.datetime = strawberry.field(
        description="The same instant on the carrier's local clock, with its offset "
        "(without one when offsetKnown is false)."
    )
    utc_offset_minutes: int | None
    offset_known: bool = strawberry.field(
        description="False when the carrier gave only its local time and its zone is unknown."
    )
    status: str = strawberry.field(description="karrio's tracking status.")
    reason: str | None = strawberry.field(description="karrio's incident reason, if any.")
    code: str = strawberry.field(description="The carrier's own event code.")
    description: str
    location: TrackingLocation
    source: str

    @classmethod
    def from_view(cls, view: updates.EventView) -> TrackingEvent:
        place = view.location
        return cls(
            occurred_at=view.occurred_at,
            local_time=view.local_time,
            utc_offset_minutes=view.utc_offset_minutes,
            offset_known=view.offset_known,
            status=view.status,
            reason=view.reason,
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


@strawberry.type
class DeliveryEstimate:
    estimated_delivery: datetime.datetime | None
    window_from: datetime.datetime | None
    window_to: datetime.datetime | None
    source: str = ""
    recorded_at: datetime.datetime | None = None


@strawberry.type
class ShipmentTracking:
    shipment_id: strawberry.ID
    carrier: str
    tracking_number: str
    status: str
    reason: str | None
    last_event_at: datetime.datetime | None
    delivered_at: datetime.datetime | None
    estimate: DeliveryEstimate
    eta_history: list[DeliveryEstimate] = strawberry.field(
        description="Every estimate the carrier gave, oldest first."
    )
    promised_date: datetime.date | None
    on_time_status: str = strawberry.field(
        description="on_time, late (delivered or estimated after the promise), or unknown."
    )
    events: list[TrackingEvent] = strawberry.field(description="Newest first.")

    @classmethod
    def from_view(cls, view: updates.ShipmentTrackingView) -> ShipmentTracking:
        return cls(
            shipment_id=strawberry.ID(str(view.shipment_id)),
            carrier=view.carrier,
            tracking_number=view.tracking_number,
            status=view.status,
            reason=view.reason,
            last_event_at=view.last_event_at,
            delivered_at=view.delivered_at,
            estimate=_estimate(view.estimate),
            eta_history=[
                _estimate(estimate, source, recorded_at)
                for estimate, source, recorded_at in view.eta_history
            ],
            promised_date=view.promised_date,
            on_time_status=view.on_time_status,
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


@strawberry.type
class PromisePayload:
    tracking: ShipmentTracking | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class PublicPlace:
    city: str
    region: str
    country: str


@strawberry.type
class PublicTrackingEvent:
    occurred_at: datetime.datetime
    local_time: datetime.datetime
    offset_known: bool
    status: str
    description: str
    location: PublicPlace


@strawberry.type
class PublicShipment:
    carrier: str
    status: str
    estimate: DeliveryEstimate
    delivered_at: datetime.datetime | None
    events: list[PublicTrackingEvent] = strawberry.field(description="Newest first.")


@strawberry.type
class PublicOrderTracking:
    number: str
    status: str
    shipments: list[PublicShipment]

    @classmethod
    def from_view(cls, view: lookup.PublicTracking) -> PublicOrderTracking:
        return cls(
            number=view.number,
            status=view.status,
            shipments=[
                PublicShipment(
                    carrier=s.carrier,
                    status=s.status,
                    estimate=_estimate(s.estimate),
                    delivered_at=s.delivered_at,
                    events=[
                        PublicTrackingEvent(
                            occurred_at=e.occurred_at,
                            local_time=e.local_time,
                            offset_known=e.offset_known,
                            status=e.status,
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
        number: str,
        email: str | None = None,
        postal_code: str | None = None,
    ) -> PublicOrderTracking | None:
        try:
            await lookup.limit_lookup(info.context.rt, client_of(info), number)
        except DomainError as error:
            raise ApiError(error.code, str(error.problems[0].message)) from None
        found = await lookup.look_up(number, email=email, postal_code=postal_code)
        return PublicOrderTracking.from_view(found) if found else None

    @strawberry.field(description="The tracking of every shipment of an order.")
    async def shipment_tracking(
        self, info: Info, order_id: strawberry.ID
    ) -> list[ShipmentTracking]:
        principal = require(info, *READERS)
        not_found = ApiError(ErrorCode.NOT_FOUND, f"There is no order {order_id}.")
        try:
            wanted = row_id(order_id, "order")
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
        self, info: Info, shipment_id: strawberry.ID, promised_date: datetime.date | None = None
    ) -> PromisePayload:
        principal = require(info, *OPERATORS)
        wanted = row_id(shipment_id, "shipment", field="shipmentId")
        shipment = await updates.shipment_row(wanted)
        await scope.check_order(
            principal, shipment["order"], what="shipment", ref=wanted, field="shipmentId"
        )
        await updates.set_promised_date(wanted, promised_date)
        return PromisePayload(tracking=await shipment_tracking(wanted), errors=[])
