"""Buying a shipment's label from its carrier, in the job runner.

When staff ship without tracking numbers through a carrier whose plugin implements
``create_shipment`` (and whose ``buy_labels`` setting is not false), the ship step
writes a ``shipment_bookings`` row and a job in its transaction. The job asks the
carrier with no transaction open, so no row lock is held while it waits.

The booking row makes the request go out once: the job claims it with a conditional
update (pending or failed -> requesting), so of two runs of the job only one asks,
and a run after the booking finds it booked and does nothing. A carrier's refusal
leaves it failed (asked again by the job's retry, with backoff) and opens a
``label_failed`` alert; the booking that succeeds closes it. A carrier that does not
answer in time may have booked: the state becomes unknown, the alert says so, and
nothing is asked again, so a label is never bought twice.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ordergraph.core import db, scope
from ordergraph.core.auth import SYSTEM, Principal, Role
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.orders import OrderView, load_order, recording
from ordergraph.stages.fulfilment.limits import TRACKING_NUMBER
from ordergraph.stages.fulfilment.tables import Shipment, ShipmentBooking

if TYPE_CHECKING:
    from ordergraph.core.runtime import AlertDesk, Runtime

BOOK_JOB = "book_shipment"
BOOK_HOOK = "create_shipment"
ALERT_KIND = "label_failed"
MAX_LABEL_BYTES = 10_000_000
"""The largest label stored (a 4x6 PDF label is some 10 to 100 kB)."""


@dataclass(frozen=True)
class Estimate:
    """The carrier's estimated delivery, with its window when it gives one."""

    estimated_delivery: datetime.datetime | None = None
    window_from: datetime.datetime | None = None
    window_to: datetime.datetime | None = None


@dataclass(frozen=True)
class Booking:
    """What a carrier's ``create_shipment`` returns: the shipment's (master) tracking
    number, one per parcel when the carrier numbers them, the label, the ETA."""

    tracking_number: str
    label: bytes
    label_format: str = "PDF"
    parcel_tracking_numbers: tuple[str, ...] = ()
    estimate: Estimate | None = None


def _alerts(rt: Runtime) -> AlertDesk:
    assert rt.alerts is not None, "the tracking stage's alerts are registered"
    return rt.alerts


class BookingInProgress(RuntimeError):
    """Another run of the job is asking the carrier right now."""


class BookingFailed(RuntimeError):
    """The carrier refused or failed; the job's retry asks again."""


def buys_labels(rt: Runtime, carrier: str) -> bool:
    plugin = rt.plugins.plugins.get(carrier)
    return (
        plugin is not None
        and carrier in rt.plugins.implementers(BOOK_HOOK)
        and plugin.settings.get("buy_labels", True) is not False
    )


async def start_booking(order_id: int, shipment_id: int, carrier: str) -> tuple[str, dict]:
    """Inside the ship step's transaction: the booking row; returns the job to enqueue."""
    await ShipmentBooking.insert(
        ShipmentBooking(shipment=shipment_id, order=order_id, carrier=carrier)
    )
    return BOOK_JOB, {"order_id": order_id, "shipment_id": shipment_id}


async def _claim(shipment_id: int) -> dict[str, Any] | None:
    """pending or failed -> requesting, for one caller only."""
    async with db.write_transaction():
        rows = await db.raw(
            "UPDATE shipment_bookings SET state = {}, attempts = attempts + 1, "
            "requested_at = {} WHERE shipment = {} AND state IN ({}, {}) "
            "RETURNING id, carrier, attempts",
            "requesting",
            db.now(),
            shipment_id,
            "pending",
            "failed",
        )
    return rows[0] if rows else None


def _shipment_for_carrier(row: dict[str, Any], order: OrderView) -> dict[str, Any]:
    parcels = row["parcels"]
    return {
        "id": row["id"],
        "carrier": row["carrier"],
        "service": row["service"],
        "parcels": json.loads(parcels) if isinstance(parcels, str) else parcels,
        "address": order.shipping_address,
        "reference": order.number,
    }


def _checked(value: Any, carrier: str, parcels: int) -> Booking:
    if not isinstance(value, Booking):
        raise BookingFailed(f"{carrier} returned {type(value).__name__}, not a Booking")
    numbers = (value.tracking_number, *value.parcel_tracking_numbers)
    if any(not n.strip() or TRACKING_NUMBER.problem(n, None) for n in numbers):
        raise BookingFailed(
            f"{carrier}: a tracking number needs 1 to {TRACKING_NUMBER.max_length} characters "
            "and no control characters"
        )
    if value.parcel_tracking_numbers and len(value.parcel_tracking_numbers) != parcels:
        raise BookingFailed(
            f"{carrier}: {len(value.parcel_tracking_numbers)} tracking numbers for "
            f"{parcels} parcels"
        )
    if not value.label or len(value.label) > MAX_LABEL_BYTES:
        raise BookingFailed(f"{carrier}: a label has 1 to {MAX_LABEL_BYTES} bytes")
    return value


async def _fail(
    rt: Runtime, booking: dict[str, Any], order_id: int, shipment_id: int, state: str, error: str
) -> None:
    async with recording(rt):
        await ShipmentBooking.update(
            {ShipmentBooking.state: state, ShipmentBooking.last_error: error[:1000]}
        ).where(ShipmentBooking.id == booking["id"])
        await _alerts(rt).open_alert(
            order_id,
            ALERT_KIND,
            shipment_id=shipment_id,
            detail={
                "plugin": booking["carrier"],
                "error": error[:500],
                "state": state,
                "attempts": booking["attempts"],
            },
        )


async def book(rt: Runtime, order_id: int, shipment_id: int) -> None:
    """The job: buy the label once, store it with the tracking number and the ETA."""
    booking = await _claim(shipment_id)
    if booking is None:
        current = await (
            ShipmentBooking.select(ShipmentBooking.state)
            .where(ShipmentBooking.shipment == shipment_id)
            .first()
        )
        if current is not None and current["state"] == "requesting":
            raise BookingInProgress(f"shipment {shipment_id} is being booked")
        return  # booked, or unknown: never asked again
    order = await load_order(order_id)
    row = await Shipment.select().where(Shipment.id == shipment_id).first()
    assert order is not None and row is not None
    shipment = _shipment_for_carrier(row, order)
    carrier = booking["carrier"]
    answer = await rt.plugins.call(BOOK_HOOK, only=[carrier], order=order, shipment=shipment)
    if answer.failures:
        failure = answer.failures[0]
        if isinstance(failure.exception, TimeoutError):
            await _fail(
                rt,
                booking,
                order_id,
                shipment_id,
                "unknown",
                f"{failure.error}: the carrier may have booked; check before shipping again",
            )
            return
        await _fail(rt, booking, order_id, shipment_id, "failed", failure.error)
        raise BookingFailed(failure.error)
    try:
        if not answer.values:
            raise BookingFailed(f"{carrier} booked nothing")
        result = _checked(answer.values[0], carrier, len(shipment["parcels"]))
    except BookingFailed as error:
        await _fail(rt, booking, order_id, shipment_id, "failed", str(error))
        raise
    await _store(rt, booking, order, shipment, result)
    await rt.plugins.call(
        "label_bought", order=order, shipment_id=shipment_id, carrier=carrier, booking=result
    )


async def _store(
    rt: Runtime,
    booking: dict[str, Any],
    order: OrderView,
    shipment: dict[str, Any],
    result: Booking,
) -> None:
    numbers = result.parcel_tracking_numbers or (result.tracking_number,) * len(shipment["parcels"])
    parcels = [
        {**parcel, "trackingNumber": number}
        for parcel, number in zip(shipment["parcels"], numbers, strict=False)
    ]
    async with recording(rt) as timeline:
        await ShipmentBooking.update(
            {
                ShipmentBooking.state: "booked",
                ShipmentBooking.tracking_number: result.tracking_number,
                ShipmentBooking.label: result.label,
                ShipmentBooking.label_format: result.label_format[:16],
                ShipmentBooking.last_error: "",
                ShipmentBooking.booked_at: db.now(),
            }
        ).where(ShipmentBooking.id == booking["id"])
        await Shipment.update(
            {
                Shipment.tracking_number: result.tracking_number,
                Shipment.parcels: json.dumps(parcels),
            }
        ).where(Shipment.id == shipment["id"])
        await timeline.record(
            order,
            "label_bought",
            SYSTEM,
            data={
                "shipment": shipment["id"],
                "carrier": booking["carrier"],
                "trackingNumber": result.tracking_number,
                "attempts": booking["attempts"],
            },
        )
        await _alerts(rt).close_alerts(order.id, [ALERT_KIND], "the label was bought")


@dataclass(frozen=True)
class Label:
    shipment_id: int
    content: bytes
    format: str
    tracking_number: str


async def label_for(shipment_id: int, principal: Principal) -> Label:
    """A bought label, for staff of the order's team and admins (NOT_FOUND otherwise)."""
    missing = DomainError.of(
        ErrorCode.NOT_FOUND, f"Shipment {shipment_id} has no label.", "shipmentId"
    )
    if principal.role not in (Role.STAFF, Role.ADMIN):
        raise missing
    row = await (
        ShipmentBooking.select(
            ShipmentBooking.order,
            ShipmentBooking.label,
            ShipmentBooking.label_format,
            ShipmentBooking.tracking_number,
        )
        .where((ShipmentBooking.shipment == shipment_id) & (ShipmentBooking.state == "booked"))
        .first()
    )
    if row is None:
        raise missing
    if not await scope.may_access_order(principal, row["order"]):
        raise missing
    return Label(shipment_id, bytes(row["label"]), row["label_format"], row["tracking_number"])


def label_path(shipment_id: int) -> str:
    return f"/shipments/{shipment_id}/label"
