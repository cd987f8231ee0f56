"""Asking carriers about shipments in transit, on a schedule.

A carrier plugin implements ``track_shipments`` and may set ``poll_interval_minutes``,
``poll_batch_size`` and ``stop_after_days``. One poll round takes, per carrier, the
shipments due (never asked, or asked ``poll_interval_minutes`` ago), in batches, hands
each batch to the carrier's plugin and ingests what it says. A batch that fails is
asked again later, backing off (twice the interval, four times, ... at most 32 times).
A shipment is no longer asked about once delivered or cancelled, or ``stop_after_days``
after it shipped.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ordergraph.core import db
from ordergraph.core.periodic import Periodic
from ordergraph.core.plugins import PluginInfo, hookimpl
from ordergraph.stages.fulfilment.labels import Booking
from ordergraph.stages.tracking.tables import ShipmentTracking
from ordergraph.stages.tracking.updates import TrackingUpdate, ingest

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime

POLL_HOOK = "track_shipments"
POLL_EVERY = datetime.timedelta(minutes=1)
"""How often the poll looks for due shipments (each carrier's interval decides which)."""
DEFAULT_INTERVAL_MINUTES = 120
DEFAULT_BATCH = 10
DEFAULT_STOP_AFTER_DAYS = 90
MAX_BACKOFF = 32
BATCHES_PER_ROUND = 100
FINISHED = ("delivered", "cancelled")


@dataclass
class PollResult:
    asked: int = 0
    new_events: int = 0
    failed_batches: int = 0


async def _start_tracking(carrier: str) -> None:
    """A tracking row for every shipment of this carrier that has none yet."""
    async with db.write_transaction():
        await db.raw(
            'INSERT INTO shipment_tracking (shipment, "order", status) '
            "SELECT s.id, s.\"order\", 'pending' FROM shipments s WHERE s.carrier = {} "
            "AND s.tracking_number <> '' AND NOT EXISTS "
            "(SELECT 1 FROM shipment_tracking t WHERE t.shipment = s.id) "
            "ON CONFLICT (shipment) DO NOTHING",
            carrier,
        )


async def due_shipments(
    carrier: str, now: datetime.datetime, limit: int, stop_after_days: int
) -> list[dict[str, Any]]:
    return await (
        ShipmentTracking.select(
            ShipmentTracking.shipment.as_alias("id"),
            ShipmentTracking.order.as_alias("order"),
            ShipmentTracking.shipment.carrier.as_alias("carrier"),
            ShipmentTracking.shipment.tracking_number.as_alias("tracking_number"),
            ShipmentTracking.poll_failures,
        )
        .where(
            (ShipmentTracking.shipment.carrier == carrier)
            & ShipmentTracking.status.not_in(list(FINISHED))
            & (ShipmentTracking.next_poll_at.is_null() | (ShipmentTracking.next_poll_at <= now))
            & (
                ShipmentTracking.shipment.created_at
                > now - datetime.timedelta(days=stop_after_days)
            )
            & (ShipmentTracking.shipment.tracking_number != "")
        )
        .order_by(ShipmentTracking.next_poll_at)
        .order_by(ShipmentTracking.id)
        .limit(limit)
    )


async def _schedule(
    shipment_ids: list[int], now: datetime.datetime, interval: datetime.timedelta, error: str = ""
) -> None:
    async with db.write_transaction():
        if not error:
            await ShipmentTracking.update(
                {
                    ShipmentTracking.polls: ShipmentTracking.polls + 1,
                    ShipmentTracking.poll_failures: 0,
                    ShipmentTracking.poll_error: "",
                    ShipmentTracking.last_polled_at: now,
                    ShipmentTracking.next_poll_at: now + interval,
                }
            ).where(ShipmentTracking.shipment.is_in(shipment_ids))
            return
        for row in await ShipmentTracking.select(
            ShipmentTracking.id, ShipmentTracking.poll_failures
        ).where(ShipmentTracking.shipment.is_in(shipment_ids)):
            failures = row["poll_failures"] + 1
            await ShipmentTracking.update(
                {
                    ShipmentTracking.polls: ShipmentTracking.polls + 1,
                    ShipmentTracking.poll_failures: failures,
                    ShipmentTracking.poll_error: error[:1000],
                    ShipmentTracking.last_polled_at: now,
                    ShipmentTracking.next_poll_at: now + interval * min(2**failures, MAX_BACKOFF),
                }
            ).where(ShipmentTracking.id == row["id"])


async def poll_carrier(
    rt: Runtime, carrier: str, now: datetime.datetime | None = None
) -> PollResult:
    """One round for one carrier: every batch due now."""
    now = now or db.now()
    settings = rt.plugins.plugins[carrier].settings
    interval = datetime.timedelta(
        minutes=settings.get("poll_interval_minutes", DEFAULT_INTERVAL_MINUTES)
    )
    batch = settings.get("poll_batch_size", DEFAULT_BATCH)
    stop_after = settings.get("stop_after_days", DEFAULT_STOP_AFTER_DAYS)
    result = PollResult()
    await _start_tracking(carrier)
    for _ in range(BATCHES_PER_ROUND):
        shipments = await due_shipments(carrier, now, batch, stop_after)
        if not shipments:
            break
        ids = [s["id"] for s in shipments]
        result.asked += len(shipments)
        answer = await rt.plugins.call(POLL_HOOK, only=[carrier], shipments=shipments)
        if answer.failures:
            result.failed_batches += 1
            await _schedule(ids, now, interval, error=answer.failures[0].error)
            continue
        values = answer.values
        told: dict[str, TrackingUpdate] = values[0] if values else {}
        for shipment in shipments:
            update = told.get(shipment["tracking_number"])
            if update is not None:
                ingested = await ingest(rt, shipment["id"], update, shipment=shipment)
                result.new_events += ingested.new_events
        await _schedule(ids, now, interval)
    return result


def polled_carriers(rt: Runtime) -> list[str]:
    """The enabled plugins that track shipments by polling."""
    return [name for name in rt.plugins.implementers(POLL_HOOK) if name in rt.plugins.plugins]


async def poll_carriers(rt: Runtime, now: datetime.datetime | None = None) -> dict[str, PollResult]:
    return {carrier: await poll_carrier(rt, carrier, now) for carrier in polled_carriers(rt)}


class Stage:
    """The tracking stage's hooks: the carrier poll as periodic work."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(category="other", description="Stage 4: tracking.")

    @hookimpl
    def register_periodic(self) -> dict[str, Periodic]:
        if not polled_carriers(self.rt):
            return {}

        async def poll(now: datetime.datetime) -> None:
            await poll_carriers(self.rt, now)

        return {"tracking.poll_carriers": Periodic(POLL_EVERY, poll, "Ask carriers for news.")}

    @hookimpl
    async def label_bought(self, shipment_id: int, carrier: str, booking: Booking) -> None:
        """The carrier's estimate at booking is the shipment's first ETA."""
        if booking.estimate is not None:
            update = TrackingUpdate(events=[], estimate=booking.estimate, source=carrier)
            await ingest(self.rt, shipment_id, update)
