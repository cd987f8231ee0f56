"""USPS tracking through karrio (USPS Tracking API v3, OAuth client credentials).

karrio sends the requests (one per tracking number) and maps USPS's event types to its
statuses and its exception codes to reasons. Its parser reads ``eventTimestamp``, the
local clock, as if it were UTC, and flattens the place, so the instant is taken from
USPS's ``GMTTimestamp`` with the local ``GMTOffset`` kept, and the place field by field.
"""

from __future__ import annotations

import datetime
from typing import Any

from karrio.mappers.usps import Mapper, Proxy, Settings

from ordergraph.plugin_api import Estimate, Location, Setting
from plugins.carriers.karrio_tracking import (
    CarrierError,
    KarrioCarrier,
    RawEvent,
    RawTracking,
    iso_time,
    text,
    utc_offset,
)


def event_instant(event: dict[str, Any]) -> datetime.datetime:
    try:
        utc = datetime.datetime.fromisoformat(event["GMTTimestamp"].replace("Z", "+00:00"))
        if utc.utcoffset() is None:
            utc = utc.replace(tzinfo=datetime.UTC)
        return utc.astimezone(utc_offset(event["GMTOffset"]))
    except (KeyError, ValueError, AttributeError) as exc:
        raise CarrierError(f"usps: an event has no GMT time and offset ({exc})") from None


def read_raw(raw: Any) -> dict[str, RawTracking]:
    found = {}
    for _, response in raw or []:
        if "error" in response or not response.get("trackingNumber"):
            continue
        events = [
            RawEvent(
                occurred_at=event_instant(event),
                location=Location(
                    city=text(event.get("eventCity")),
                    region=text(event.get("eventState")),
                    postal_code=text(event.get("eventZIP")),
                    country=text(event.get("eventCountry")) or "US",
                ),
            )
            for event in response.get("trackingEvents") or []
        ]
        expected = iso_time(response.get("expectedDeliveryTimeStamp"))
        found[text(response["trackingNumber"])] = RawTracking(
            events, Estimate(estimated_delivery=expected) if expected else None
        )
    return found


CARRIER = KarrioCarrier(
    name="usps",
    mapper=Mapper,
    proxy=Proxy,
    settings_class=Settings,
    default_server_url="https://apis.usps.com",
    read_raw=read_raw,
    display_name="USPS",
    description="USPS tracking by polling the USPS Tracking API v3 (through karrio).",
    stand_ins="its test environment, or a recording",
    credentials=(
        Setting("client_id", required=True, secret=True, description="OAuth client id."),
        Setting("client_secret", required=True, secret=True, description="OAuth client secret."),
    ),
)
plugin_info, track_shipments = CARRIER.hooks()
