"""UPS tracking through karrio (UPS Track API v1, OAuth client credentials).

karrio sends the requests (one per tracking number) and maps UPS's status types and
codes to its statuses. Its parser reads each activity's local ``date`` and ``time``
without their zone and flattens the place, so the instant is rebuilt from UPS's own
``gmtDate``/``gmtTime`` with the local ``gmtOffset`` kept, and the address is kept
field by field.
"""

from __future__ import annotations

import datetime
from typing import Any

from karrio.mappers.ups import Mapper, Proxy, Settings

from ordergraph.plugin_api import Estimate, Location, Setting
from plugins.carriers.karrio_tracking import (
    CarrierError,
    KarrioCarrier,
    RawEvent,
    RawTracking,
    text,
    utc_offset,
)


def activity_instant(activity: dict[str, Any]) -> datetime.datetime:
    """The UTC instant of an activity, on the local clock of where it happened."""
    try:
        utc = datetime.datetime.strptime(
            f"{activity['gmtDate']} {activity['gmtTime']}", "%Y%m%d %H:%M:%S"
        ).replace(tzinfo=datetime.UTC)
        return utc.astimezone(utc_offset(activity["gmtOffset"]))
    except (KeyError, ValueError) as exc:
        raise CarrierError(f"ups: an activity has no GMT date, time and offset ({exc})") from None


def read_raw(raw: Any) -> dict[str, RawTracking]:
    found = {}
    for _, response in raw or []:
        shipments = (response.get("trackResponse") or {}).get("shipment") or []
        if not shipments or not shipments[0].get("package"):
            continue
        package = shipments[0]["package"][0]
        events = []
        for activity in package.get("activity") or []:
            address = (activity.get("location") or {}).get("address") or {}
            events.append(
                RawEvent(
                    occurred_at=activity_instant(activity),
                    location=Location(
                        city=text(address.get("city")),
                        region=text(address.get("stateProvince")),
                        postal_code=text(address.get("postalCode")),
                        country=text(address.get("countryCode") or address.get("country")),
                    ),
                )
            )
        found[text(package.get("trackingNumber"))] = RawTracking(events, _estimate(package, events))
    return found


def _estimate(package: dict[str, Any], events: list[RawEvent]) -> Estimate | None:
    """UPS's scheduled delivery date (and its time window), on the latest scan's clock."""
    scheduled = next(
        (d["date"] for d in package.get("deliveryDate") or [] if d.get("type") in ("SDD", "RDD")),
        None,
    )
    if scheduled is None:
        return None
    zone = events[0].occurred_at.tzinfo if events else datetime.UTC
    day = datetime.datetime.strptime(scheduled, "%Y%m%d")
    window = package.get("deliveryTime") or {}

    def at(clock: str | None) -> datetime.datetime | None:
        if not clock:
            return None
        moment = datetime.datetime.strptime(clock, "%H%M%S").time()
        return datetime.datetime.combine(day.date(), moment, tzinfo=zone)

    start, end = at(window.get("startTime")), at(window.get("endTime"))
    if start or end:
        return Estimate(window_from=start, window_to=end)
    return Estimate(estimated_delivery=day.replace(tzinfo=zone))


CARRIER = KarrioCarrier(
    name="ups",
    mapper=Mapper,
    proxy=Proxy,
    settings_class=Settings,
    default_server_url="https://onlinetools.ups.com",
    read_raw=read_raw,
    display_name="UPS",
    description="UPS tracking by polling the UPS Track API (through karrio).",
    stand_ins="its test environment, or a recording",
    credentials=(
        Setting("client_id", required=True, secret=True, description="OAuth client id."),
        Setting("client_secret", required=True, secret=True, description="OAuth client secret."),
        Setting("account_number", default="", description="The UPS account number."),
    ),
)
plugin_info, track_shipments = CARRIER.hooks()
