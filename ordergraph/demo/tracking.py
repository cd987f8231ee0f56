"""The demo's tracking: what the carrier said about the demo's shipments.

DEMO-1003's first parcel is out for delivery and then the courier finds nobody home (a
failed delivery, and so an open alert for the packers); DEMO-1004's parcel is delivered,
which makes the order DELIVERED (the demo then confirms and settles it).
"""

from __future__ import annotations

import datetime

from ordergraph.core.runtime import Runtime
from ordergraph.stages.fulfilment.tables import Shipment
from ordergraph.stages.tracking import updates

BERLIN = datetime.timezone(datetime.timedelta(hours=2))
LEIPZIG = updates.Location("Leipzig", "SN", "04109", "DE")
LONDON = updates.Location("London", "", "SW1Y 4JH", "GB")


def _at(day: int, hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(2024, 5, day, hour, minute, tzinfo=BERLIN)


def _scan(
    at: datetime.datetime,
    status: str,
    words: str,
    code: str,
    place: updates.Location,
    reason: str | None = None,
) -> updates.TrackingEvent:
    return updates.TrackingEvent(at, status, words, code, reason, place)


STORIES = {
    "DEMO-1003": updates.TrackingUpdate(
        events=[
            updates.TrackingEvent(
                _at(2, 18, 5), "picked_up", "Shipment picked up", "PU", None, LEIPZIG
            ),
            updates.TrackingEvent(_at(3, 6, 40), "in_transit", "Departed hub", "DP", None, LEIPZIG),
            updates.TrackingEvent(
                _at(4, 8, 12), "out_for_delivery", "With courier", "OD", None, LONDON
            ),
            updates.TrackingEvent(
                _at(4, 13, 30),
                "delivery_failed",
                "Nobody home; a card was left",
                "NH",
                "consignee_not_home",
                LONDON,
            ),
        ],
        estimate=updates.Estimate(window_from=_at(6, 9), window_to=_at(6, 18)),
        source="demo",
    ),
    "DEMO-1004": updates.TrackingUpdate(
        events=[
            updates.TrackingEvent(
                _at(3, 17, 0), "picked_up", "Shipment picked up", "PU", None, LEIPZIG
            ),
            updates.TrackingEvent(_at(4, 5, 55), "in_transit", "Departed hub", "DP", None, LEIPZIG),
            updates.TrackingEvent(
                _at(5, 9, 10), "out_for_delivery", "With courier", "OD", None, LONDON
            ),
            updates.TrackingEvent(_at(5, 11, 42), "delivered", "Delivered", "DL", None, LONDON),
        ],
        estimate=updates.Estimate(estimated_delivery=_at(5, 12)),
        source="demo",
    ),
}


async def seed_tracking(rt: Runtime, order_ids: dict[str, int]) -> None:
    for external_id, update in STORIES.items():
        order_id = order_ids.get(external_id)
        if order_id is None:
            continue
        shipment = await Shipment.select(Shipment.id).where(Shipment.order == order_id).first()
        if shipment is not None:
            await updates.ingest(rt, shipment["id"], update)
