"""The demo's parcels: what the local courier reported, recorded with the ``manual`` carrier.

Every scan is dated relative to the day the demo is loaded, on the clock of the place it
happened (Europe/London, with its summer and winter offsets), after the parcel shipped.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from ordergraph.stages.tracking import updates

UK = ZoneInfo("Europe/London")
CARRIER = "manual"  # a local courier: staff record its scans (recordTrackingEvents)
SOURCE = "manual:demo"
LEEDS = updates.Location("Leeds", "West Yorkshire", "LS1 6DT", "GB")


def place(address: dict[str, str]) -> updates.Location:
    """The town of a shipping address, where its parcel is delivered."""
    return updates.Location(address["city"], "", address["postalCode"], "GB")


def on_day(now: datetime.datetime, days_ago: int, hour: int, minute: int = 0) -> datetime.datetime:
    """``days_ago`` days before ``now``'s date (-1: the day after), at that time in the UK."""
    day = now.astimezone(UK).date() - datetime.timedelta(days=days_ago)
    return datetime.datetime(day.year, day.month, day.day, hour, minute, tzinfo=UK)


def hours_ago(now: datetime.datetime, hours: float) -> datetime.datetime:
    """``hours`` before ``now`` (to the minute), on the clock in the UK."""
    return (now - datetime.timedelta(hours=hours)).astimezone(UK).replace(second=0, microsecond=0)


@dataclass(frozen=True)
class Scan:
    at: datetime.datetime
    status: str
    description: str
    code: str
    where: updates.Location
    reason: str | None = None

    def update(self, estimate: updates.Estimate | None = None) -> updates.TrackingUpdate:
        """The scan as staff record it, with the courier's estimate when it gave one."""
        # The offset the place had at that instant (+00:00 in winter, +01:00 in summer).
        local = self.at.astimezone(UK)
        aware = local.replace(tzinfo=datetime.timezone(local.utcoffset() or datetime.timedelta()))
        event = updates.TrackingEvent(
            aware, self.status, self.description, self.code, self.reason, self.where
        )
        return updates.TrackingUpdate(events=[event], estimate=estimate, source=SOURCE)


def collected(at: datetime.datetime) -> Scan:
    return Scan(at, "picked_up", "Collected from the shop by the courier", "PU", LEEDS)


def at_depot(at: datetime.datetime, where: updates.Location) -> Scan:
    return Scan(at, "in_transit", f"Sorted at the {where.city} depot", "DP", where)


def out_for_delivery(at: datetime.datetime, where: updates.Location) -> Scan:
    return Scan(at, "out_for_delivery", "Out for delivery with the driver", "OD", where)


def delivered(at: datetime.datetime, where: updates.Location, words: str) -> Scan:
    return Scan(at, "delivered", words, "DL", where)


def nobody_home(at: datetime.datetime, where: updates.Location) -> Scan:
    words = "Nobody home; a card was left to rebook the delivery"
    return Scan(at, "delivery_failed", words, "NH", where, "consignee_not_home")
