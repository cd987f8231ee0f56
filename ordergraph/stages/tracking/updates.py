"""Stage 4, tracking: what carriers say about each shipment, and the order status that follows.

Carriers (polled or pushing webhooks) and staff (the ``manual`` carrier) hand in a
``TrackingUpdate``; ``ingest`` stores its events once however often they arrive, in
any order, keeps the ETA's history and the promise, and moves the order to DELIVERED
through ``transition_order`` when every shipment of it is delivered.

The vocabulary is karrio's: its tracking statuses and incident reasons, so a carrier
mapped by karrio needs no second table.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ordergraph.core import db
from ordergraph.core.auth import SYSTEM
from ordergraph.core.errors import DomainError, ErrorCode, Problem
from ordergraph.core.limits import utc_instant
from ordergraph.core.orders import load_order, recording
from ordergraph.stages.fulfilment.labels import Estimate
from ordergraph.stages.fulfilment.limits import TRACKING_NUMBER
from ordergraph.stages.fulfilment.tables import Shipment
from ordergraph.stages.tracking import alerts
from ordergraph.stages.tracking.limits import (
    CITY,
    COORDINATE_PLACES,
    POSTAL_CODE,
    REGION,
    TRACKING_CODE,
    TRACKING_DESCRIPTION,
)
from ordergraph.stages.tracking.tables import EtaHistory, ShipmentTracking, TrackingEventRow

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime

STATUSES = (
    "pending",
    "picked_up",
    "in_transit",
    "out_for_delivery",
    "ready_for_pickup",
    "delivered",
    "delivery_failed",
    "delivery_delayed",
    "on_hold",
    "return_to_sender",
    "cancelled",
    "unknown",
)
REASONS = (
    "carrier_damaged_parcel",
    "carrier_sorting_error",
    "carrier_address_not_found",
    "carrier_parcel_lost",
    "carrier_not_enough_time",
    "carrier_vehicle_issue",
    "carrier_capacity_exceeded",
    "carrier_mechanical_delay",
    "retailer_cancelled",
    "retailer_incorrect_data",
    "retailer_not_ready",
    "retailer_incorrect_parcel",
    "retailer_incorrect_dimensions",
    "retailer_packaging_issue",
    "consignee_refused",
    "consignee_business_closed",
    "consignee_not_available",
    "consignee_not_home",
    "consignee_cancelled",
    "consignee_verification_failed",
    "consignee_incorrect_address",
    "consignee_access_restricted",
    "consignee_safe_place_unavailable",
    "customs_delay",
    "customs_documentation",
    "customs_duties_unpaid",
    "customs_prohibited",
    "customs_inspection",
    "weather_delay",
    "natural_disaster",
    "force_majeure",
    "parcel_being_researched",
    "security_issue",
    "regulatory_hold",
    "unknown",
)
"""karrio's incident reasons (``TrackingIncidentReason``), in its families."""

MAX_EVENTS = 500
"""The most events one update may carry (a carrier's full history fits many times over)."""
TRACKING_EVENT = "tracking"
"""The order event written when a shipment's tracking moves: notifiers and feeds see it."""


@dataclass(frozen=True)
class Location:
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""
    latitude: Decimal | None = None
    longitude: Decimal | None = None


@dataclass(frozen=True)
class TrackingEvent:
    """One scan. ``occurred_at`` carries the carrier's local offset (09:26-07:00).

    ``offset_unknown``: the carrier gave only its local clock and nothing tells its
    zone; ``occurred_at`` is then naive, that local time, and is kept as such rather
    than dropped (stored as if UTC, with no offset, and shown as local time).
    """

    occurred_at: datetime.datetime
    status: str
    description: str = ""
    code: str = ""
    reason: str | None = None
    location: Location = field(default_factory=Location)
    offset_unknown: bool = False

    @property
    def utc_offset_minutes(self) -> int | None:
        offset = self.occurred_at.utcoffset()
        return None if offset is None else int(offset.total_seconds() // 60)

    @property
    def stored_instant(self) -> datetime.datetime:
        """The instant in UTC; for a local time of unknown offset, that clock as UTC."""
        if self.occurred_at.utcoffset() is None:
            return self.occurred_at.replace(tzinfo=datetime.UTC)
        return self.occurred_at.astimezone(datetime.UTC)

    @property
    def dedupe_key(self) -> str:
        """The same scan reported twice (a poll and a webhook, a retried delivery) is one
        event: the instant, status, code, description and place identify it."""
        parts = (
            self.stored_instant.isoformat(),
            self.status,
            self.code,
            self.description.strip().lower(),
            self.location.city.strip().lower(),
            self.location.postal_code.strip().lower(),
        )
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


@dataclass(frozen=True)
class TrackingUpdate:
    events: list[TrackingEvent]
    estimate: Estimate | None = None
    source: str = ""


@dataclass(frozen=True)
class IngestResult:
    new_events: int
    status: str
    order_delivered: bool


def check_update(update: TrackingUpdate) -> None:
    """Refuse an update with anything the model cannot hold, naming each problem."""
    problems: list[Problem] = []
    if len(update.events) > MAX_EVENTS:
        problems.append(
            Problem(ErrorCode.INVALID_VALUE, f"At most {MAX_EVENTS} events per update.", "events")
        )
    for i, event in enumerate(update.events[:MAX_EVENTS]):
        where = f"events[{i}]"
        utc_instant(event.occurred_at, f"{where}.occurredAt", problems)
        if (event.occurred_at.utcoffset() is None) != event.offset_unknown:
            problems.append(
                Problem(
                    ErrorCode.INVALID_VALUE,
                    "The time needs its UTC offset (2024-04-26T09:26:00-07:00).",
                    f"{where}.occurredAt",
                )
            )
        if event.status not in STATUSES:
            problems.append(
                Problem(
                    ErrorCode.INVALID_VALUE,
                    f"Unknown status {event.status!r}; one of {', '.join(STATUSES)}.",
                    f"{where}.status",
                )
            )
        if event.reason is not None and event.reason not in REASONS:
            problems.append(
                Problem(
                    ErrorCode.INVALID_VALUE, f"Unknown reason {event.reason!r}.", f"{where}.reason"
                )
            )
        TRACKING_DESCRIPTION.check(event.description, f"{where}.description", problems)
        TRACKING_CODE.check(event.code, f"{where}.code", problems)
        place = event.location
        if place.country and not (
            len(place.country) == 2 and place.country.isascii() and place.country.isalpha()
        ):
            problems.append(
                Problem(
                    ErrorCode.INVALID_VALUE,
                    "A country is its two-letter ISO code.",
                    f"{where}.location.country",
                )
            )
        CITY.check(place.city, f"{where}.location.city", problems)
        REGION.check(place.region, f"{where}.location.region", problems)
        POSTAL_CODE.check(place.postal_code, f"{where}.location.postalCode", problems)
        for name, value, bound in (
            ("latitude", place.latitude, 90),
            ("longitude", place.longitude, 180),
        ):
            if value is not None and not (value.is_finite() and -bound <= value <= bound):
                problems.append(
                    Problem(
                        ErrorCode.INVALID_VALUE,
                        f"A {name} lies between -{bound} and {bound}.",
                        f"{where}.location.{name}",
                    )
                )
    if update.estimate is not None:
        for name in ("estimated_delivery", "window_from", "window_to"):
            utc_instant(getattr(update.estimate, name), f"estimate.{name}", problems)
    if problems:
        raise DomainError(*problems)


def _aware(value: Any) -> datetime.datetime | None:
    """Timestamps as aware UTC datetimes (SQLite hands some back without a zone)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def on_time_status(
    promised: datetime.date | None,
    delivered_at: datetime.datetime | None,
    estimate: datetime.datetime | None,
) -> str:
    """``on_time`` or ``late`` against the promised date (a delivery on the day is on
    time; an estimate past the day is late already); ``unknown`` without a promise."""
    if promised is None:
        return "unknown"
    when = delivered_at or estimate
    if when is None:
        return "unknown"
    return "on_time" if when.date() <= promised else "late"


async def shipment_row(shipment_id: int) -> dict[str, Any]:
    row = await (
        Shipment.select(Shipment.id, Shipment.order, Shipment.carrier, Shipment.tracking_number)
        .where(Shipment.id == shipment_id)
        .first()
    )
    if row is None:
        raise DomainError.of(
            ErrorCode.NOT_FOUND, f"There is no shipment {shipment_id}.", "shipmentId"
        )
    return row


async def find_shipment(tracking_number: str) -> dict[str, Any] | None:
    """The latest shipment with this tracking number (id, order, carrier, number); None
    also for text no tracking number can be, which must not reach the database."""
    if not tracking_number or TRACKING_NUMBER.problem(tracking_number, None) is not None:
        return None
    return await (
        Shipment.select(Shipment.id, Shipment.order, Shipment.carrier, Shipment.tracking_number)
        .where(Shipment.tracking_number == tracking_number)
        .order_by(Shipment.id, ascending=False)
        .first()
    )


async def ingest(
    rt: Runtime,
    shipment_id: int,
    update: TrackingUpdate,
    *,
    shipment: dict[str, Any] | None = None,
) -> IngestResult:
    """Store what a carrier said about a shipment: new events once each, the status of
    the latest event by its instant (a late scan of yesterday does not undo today's
    delivery), a new ETA in the history. Then derive the order's DELIVERED status.

    ``shipment`` (id, order, carrier) saves a read when the caller has the row.
    """
    check_update(update)
    shipment = shipment or await shipment_row(shipment_id)
    order_id = shipment["order"]
    events = update.events[:MAX_EVENTS]
    async with recording(rt) as timeline:
        # One ingest per shipment at a time: the tracking row exists, and is locked
        # (SQLite's write transaction is exclusive already).
        current = await _locked_tracking(shipment_id, order_id)
        inserted = []
        if events:
            inserted = await (
                TrackingEventRow.insert(
                    *(
                        TrackingEventRow(
                            shipment=shipment_id,
                            order=order_id,
                            occurred_at=e.stored_instant,
                            utc_offset_minutes=e.utc_offset_minutes,
                            status=e.status,
                            reason=e.reason,
                            code=e.code,
                            description=e.description,
                            city=e.location.city,
                            region=e.location.region,
                            postal_code=e.location.postal_code,
                            country=e.location.country.upper(),
                            latitude=_coordinate(e.location.latitude),
                            longitude=_coordinate(e.location.longitude),
                            source=update.source,
                            dedupe_key=e.dedupe_key,
                        )
                        for e in events
                    )
                )
                .on_conflict(
                    target=(TrackingEventRow.shipment, TrackingEventRow.dedupe_key),
                    action="DO NOTHING",
                )
                .returning(TrackingEventRow.id)
            )
        latest = await (
            TrackingEventRow.select(
                TrackingEventRow.status, TrackingEventRow.reason, TrackingEventRow.occurred_at
            )
            .where(TrackingEventRow.shipment == shipment_id)
            .order_by(TrackingEventRow.occurred_at, ascending=False)
            .order_by(TrackingEventRow.id, ascending=False)
            .first()
        )
        status = latest["status"] if latest else "pending"
        estimate = update.estimate
        changed_estimate = estimate is not None and (
            (
                _aware(current["estimated_delivery"]),
                _aware(current["estimate_from"]),
                _aware(current["estimate_to"]),
            )
            != (
                _utc(estimate.estimated_delivery),
                _utc(estimate.window_from),
                _utc(estimate.window_to),
            )
        )
        values: dict[Any, Any] = {
            ShipmentTracking.status: status,
            ShipmentTracking.reason: latest["reason"] if latest else None,
            ShipmentTracking.last_event_at: latest["occurred_at"] if latest else None,
            ShipmentTracking.delivered_at: (
                latest["occurred_at"] if latest and status == "delivered" else None
            ),
            ShipmentTracking.updated_at: db.now(),
        }
        if changed_estimate and estimate is not None:
            values[ShipmentTracking.estimated_delivery] = _utc(estimate.estimated_delivery)
            values[ShipmentTracking.estimate_from] = _utc(estimate.window_from)
            values[ShipmentTracking.estimate_to] = _utc(estimate.window_to)
            await EtaHistory.insert(
                EtaHistory(
                    shipment=shipment_id,
                    estimated_delivery=_utc(estimate.estimated_delivery),
                    estimate_from=_utc(estimate.window_from),
                    estimate_to=_utc(estimate.window_to),
                    source=update.source,
                )
            )
        await ShipmentTracking.update(values).where(ShipmentTracking.id == current["id"])
        moved = current["status"] != status
        if inserted or moved:
            await alerts.follow_tracking(
                rt, order_id, shipment_id, status, values[ShipmentTracking.reason]
            )
            await timeline.record(
                order_id,
                TRACKING_EVENT,
                SYSTEM,
                data={
                    "shipment": shipment_id,
                    "carrier": shipment["carrier"],
                    "trackingNumber": shipment["tracking_number"],
                    "status": status,
                    "reason": values[ShipmentTracking.reason],
                    "newEvents": len(inserted),
                    "source": update.source,
                },
            )
    delivered = await derive_delivered(rt, order_id) if status == "delivered" else False
    return IngestResult(new_events=len(inserted), status=status, order_delivered=delivered)


async def _locked_tracking(shipment_id: int, order_id: int) -> dict[str, Any]:
    """The shipment's tracking row, created if missing, locked until the transaction ends."""
    await ShipmentTracking.insert(
        ShipmentTracking(shipment=shipment_id, order=order_id)
    ).on_conflict(target=ShipmentTracking.shipment, action="DO NOTHING")
    query = ShipmentTracking.select().where(ShipmentTracking.shipment == shipment_id)
    if not db.current().is_sqlite:
        query = query.lock_rows()
    return await query.first()


def _coordinate(value: Decimal | None) -> str | None:
    """A latitude or longitude as stored: rounded to ``COORDINATE_PLACES``, which fits its
    column whatever precision the carrier sent."""
    if value is None:
        return None
    return str(value.quantize(Decimal(1).scaleb(-COORDINATE_PLACES)).normalize())


def _utc(value: datetime.datetime | None) -> datetime.datetime | None:
    return None if value is None else value.astimezone(datetime.UTC)


async def derive_delivered(rt: Runtime, order_id: int) -> bool:
    """DELIVERED once every shipment of a SHIPPED order is delivered; True when it moved.

    Through ``transition_order``; safe to run twice and concurrently (a lost version
    race is read again, an order already DELIVERED stays so).
    """
    from ordergraph.core.transitions import transition_order

    for _ in range(3):
        order = await load_order(order_id)
        if order is None or order.status != "SHIPPED":
            return False
        rows = await db.raw(
            "SELECT s.id, t.status FROM shipments s "
            'LEFT JOIN shipment_tracking t ON t.shipment = s.id WHERE s."order" = {}',
            order_id,
        )
        if not rows or any(row["status"] != "delivered" for row in rows):
            return False
        try:
            await transition_order(
                rt,
                order_id,
                "deliver",
                SYSTEM,
                expected_version=order.version,
                reason="every shipment is delivered",
            )
            return True
        except DomainError as error:
            if error.code != ErrorCode.VERSION_CONFLICT:
                raise
    return False


async def set_promised_date(shipment_id: int, promised: datetime.date | None) -> None:
    """Record the delivery date promised to the customer for a shipment."""
    shipment = await shipment_row(shipment_id)
    async with db.write_transaction():
        await _locked_tracking(shipment_id, shipment["order"])
        await ShipmentTracking.update(
            {ShipmentTracking.promised_date: promised, ShipmentTracking.updated_at: db.now()}
        ).where(ShipmentTracking.shipment == shipment_id)


@dataclass(frozen=True)
class EventView:
    occurred_at: datetime.datetime
    utc_offset_minutes: int | None
    status: str
    reason: str | None
    code: str
    description: str
    location: Location
    source: str

    @property
    def offset_known(self) -> bool:
        return self.utc_offset_minutes is not None

    @property
    def local_time(self) -> datetime.datetime:
        """The instant on the carrier's wall clock, with its offset (without one when
        the carrier's zone is unknown)."""
        if self.utc_offset_minutes is None:
            return self.occurred_at.replace(tzinfo=None)
        zone = datetime.timezone(datetime.timedelta(minutes=self.utc_offset_minutes))
        return self.occurred_at.astimezone(zone)


@dataclass(frozen=True)
class ShipmentTrackingView:
    shipment_id: int
    order_id: int
    carrier: str
    tracking_number: str
    status: str
    reason: str | None
    last_event_at: datetime.datetime | None
    delivered_at: datetime.datetime | None
    estimate: Estimate
    promised_date: datetime.date | None
    events: list[EventView]
    eta_history: list[tuple[Estimate, str, datetime.datetime]]

    @property
    def on_time_status(self) -> str:
        return on_time_status(
            self.promised_date,
            self.delivered_at,
            self.estimate.window_to or self.estimate.estimated_delivery,
        )


def _event_view(row: dict[str, Any]) -> EventView:
    return EventView(
        occurred_at=_aware(row["occurred_at"]),  # type: ignore[arg-type]
        utc_offset_minutes=row["utc_offset_minutes"],
        status=row["status"],
        reason=row["reason"],
        code=row["code"],
        description=row["description"],
        location=Location(
            city=row["city"],
            region=row["region"],
            postal_code=row["postal_code"],
            country=row["country"],
            latitude=None if row["latitude"] is None else Decimal(row["latitude"]),
            longitude=None if row["longitude"] is None else Decimal(row["longitude"]),
        ),
        source=row["source"],
    )


def _date(value: Any) -> datetime.date | None:
    if value is None or isinstance(value, datetime.date):
        return value
    return datetime.date.fromisoformat(str(value))


async def order_tracking(order_ids: list[int]) -> dict[int, list[ShipmentTrackingView]]:
    """The tracking of every shipment of these orders, events newest first: four
    statements however many orders and shipments."""
    if not order_ids:
        return {}
    shipments = await (
        Shipment.select(Shipment.id, Shipment.order, Shipment.carrier, Shipment.tracking_number)
        .where(Shipment.order.is_in(order_ids))
        .order_by(Shipment.id)
    )
    ids = [s["id"] for s in shipments]
    if not ids:
        return {order_id: [] for order_id in order_ids}
    states = {
        r["shipment"]: r
        for r in await ShipmentTracking.select().where(ShipmentTracking.shipment.is_in(ids))
    }
    events = await (
        TrackingEventRow.select()
        .where(TrackingEventRow.shipment.is_in(ids))
        .order_by(TrackingEventRow.occurred_at, ascending=False)
        .order_by(TrackingEventRow.id, ascending=False)
    )
    history = await (
        EtaHistory.select().where(EtaHistory.shipment.is_in(ids)).order_by(EtaHistory.id)
    )
    result: dict[int, list[ShipmentTrackingView]] = {order_id: [] for order_id in order_ids}
    for s in shipments:
        state = states.get(s["id"]) or {}
        result[s["order"]].append(
            ShipmentTrackingView(
                shipment_id=s["id"],
                order_id=s["order"],
                carrier=s["carrier"],
                tracking_number=s["tracking_number"],
                status=state.get("status", "pending"),
                reason=state.get("reason"),
                last_event_at=_aware(state.get("last_event_at")),
                delivered_at=_aware(state.get("delivered_at")),
                estimate=Estimate(
                    _aware(state.get("estimated_delivery")),
                    _aware(state.get("estimate_from")),
                    _aware(state.get("estimate_to")),
                ),
                promised_date=_date(state.get("promised_date")),
                events=[_event_view(e) for e in events if e["shipment"] == s["id"]],
                eta_history=[
                    (
                        Estimate(
                            _aware(h["estimated_delivery"]),
                            _aware(h["estimate_from"]),
                            _aware(h["estimate_to"]),
                        ),
                        h["source"],
                        _aware(h["recorded_at"]),  # type: ignore[misc]
                    )
                    for h in history
                    if h["shipment"] == s["id"]
                ],
            )
        )
    return result
