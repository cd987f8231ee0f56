"""DHL Express tracking through karrio (DHL XML Services, Known Tracking Request).

karrio sends the request (site id and password in its header) and maps DHL's event
codes (``OK`` delivered, ``WC`` with delivery courier, ...) to its statuses and
reasons. DHL types an event's ``Time`` as ``xsd:time``, the local clock with its UTC
offset (``09:26:00-07:00``); karrio's parser drops the offset and stamps the local
clock as UTC (09:26Z, a 7-hour error), so each instant is read from DHL's own
``Date`` and ``Time``. An event without an offset is refused rather than stored at a
guessed instant. The place is DHL's service area (``LOS ANGELES, CA-USA``), split
into city and region; the estimate is ``EstDlvyDate`` with its ``GMT`` offset.
"""

from __future__ import annotations

import datetime
from typing import Any

from karrio.mappers.dhl_express import Mapper, Proxy, Settings

from ordergraph.plugin_api import Estimate, Location, PluginInfo, Setting, hookimpl
from plugins.carriers.karrio_tracking import (
    POLL_SETTINGS,
    CarrierError,
    KarrioCarrier,
    RawEvent,
    RawTracking,
    text,
)


def _child(node: Any, name: str) -> Any:
    """The first descendant named ``name``, whatever its namespace prefix."""
    found = node.xpath(f".//*[local-name() = '{name}']")
    return found[0] if found else None


def _children(node: Any, name: str) -> list[Any]:
    return list(node.xpath(f"./*[local-name() = '{name}']"))


def _text_of(node: Any, name: str) -> str:
    child = _child(node, name) if node is not None else None
    return text(child.text) if child is not None else ""


def event_instant(date: str, time: str) -> datetime.datetime:
    """``2024-04-26`` and ``09:26:00-07:00``: the instant, on the local clock it names."""
    try:
        instant = datetime.datetime.fromisoformat(f"{date}T{time.replace('Z', '+00:00')}")
    except ValueError:
        instant = None
    if instant is None or instant.utcoffset() is None:
        raise CarrierError(f"dhl_express: an event has no time with an offset ({date} {time})")
    return instant


def service_area(description: str) -> Location:
    """``LOS ANGELES, CA-USA`` or ``Milan - Italy``: the city (and region) before the
    country DHL names in words."""
    place, _, _country = description.rpartition("-")
    place = (place or description).strip()
    city, _, region = place.partition(",")
    return Location(city=city.strip()[:128], region=region.strip()[:128])


def _estimate(info: Any) -> Estimate | None:
    """``EstDlvyDate``: ``2021-05-07 23:59:00 GMT-04:00``."""
    value = _text_of(info, "EstDlvyDate")
    if not value:
        return None
    try:
        when = datetime.datetime.strptime(value.replace("GMT", ""), "%Y-%m-%d %H:%M:%S %z")
    except ValueError:
        return None
    return Estimate(estimated_delivery=when)


ANSWERS = ("TrackingResponse", "ShipmentTrackingErrorResponse")
"""What DHL answers a tracking request with; anything else (a gateway's error page)
is a failure, not an answer without news."""


def read_raw(raw: Any) -> dict[str, RawTracking]:
    found: dict[str, RawTracking] = {}
    answer = raw.xpath("local-name()") if raw is not None else ""
    if answer not in ANSWERS:
        content = text(raw.xpath("string()"))[:200] if raw is not None else ""
        raise CarrierError(f"dhl_express: DHL did not answer with tracking ({content!r})")
    for awb in raw.xpath(".//*[local-name() = 'AWBInfo']"):
        info = _child(awb, "ShipmentInfo")
        if info is None:
            continue
        events = [
            RawEvent(
                occurred_at=event_instant(_text_of(event, "Date"), _text_of(event, "Time")),
                location=service_area(_text_of(_child(event, "ServiceArea"), "Description")),
            )
            for event in _children(info, "ShipmentEvent")
        ]
        # karrio lists the events newest first.
        found[_text_of(awb, "AWBNumber")] = RawTracking(events[::-1], _estimate(info))
    return found


CARRIER = KarrioCarrier(
    name="dhl_express",
    mapper=Mapper,
    proxy=Proxy,
    settings_class=Settings,
    default_server_url="https://xmlpi-ea.dhl.com",
    read_raw=read_raw,
    display_name="DHL",
)


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        category="carrier",
        description="DHL Express tracking by polling DHL's XML Services (through karrio).",
        settings=(
            CARRIER.server_url_setting("its test endpoint, or a recording"),
            Setting("site_id", required=True, secret=True, description="XML Services site id."),
            Setting("password", required=True, secret=True, description="XML Services password."),
            Setting("account_number", default="", description="The DHL Express account."),
            *POLL_SETTINGS,
        ),
    )


@hookimpl
async def track_shipments(
    shipments: list[dict[str, Any]], settings: dict[str, Any]
) -> dict[str, Any]:
    return await CARRIER.track(
        settings,
        {
            "site_id": settings["site_id"],
            "password": settings["password"],
            "account_number": settings["account_number"] or None,
        },
        [s["tracking_number"] for s in shipments],
    )
