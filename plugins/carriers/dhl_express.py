"""DHL Express tracking through karrio (DHL XML Services, Known Tracking Request).

karrio sends the request (site id and password in its header) and maps DHL's event
codes (``OK`` delivered, ``WC`` with delivery courier, ...) to its statuses and
reasons. DHL types an event's ``Time`` as ``xsd:time``, and answers with the local
clock of the service area, mostly without its offset (``09:42:00``); karrio's parser
stamps that clock as UTC (a 7-hour error in Los Angeles), so each instant is read from
DHL's own ``Date`` and ``Time``: with the offset when DHL gives one, else with the
offset of the service area's time zone on that date (``SERVICE_AREA_ZONES``, then the
country's, ``COUNTRY_ZONES``). Where neither is known the event is kept at its local
time, marked as such, never dropped. The place is DHL's service area (``LOS ANGELES,
CA-USA``), split into city and region; the estimate is ``EstDlvyDate`` with its
``GMT`` offset.
"""

from __future__ import annotations

import datetime
import zoneinfo
from typing import Any

from karrio.mappers.dhl_express import Mapper, Proxy, Settings

from ordergraph.plugin_api import Estimate, Location, Setting
from plugins.carriers.karrio_tracking import (
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


SERVICE_AREA_ZONES = {
    # Countries of several zones: their service areas that DHL's answers name.
    "ATL": "America/New_York",
    "BOS": "America/New_York",
    "CVG": "America/New_York",
    "JFK": "America/New_York",
    "LGA": "America/New_York",
    "MIA": "America/New_York",
    "CHI": "America/Chicago",
    "ORD": "America/Chicago",
    "DFW": "America/Chicago",
    "MEM": "America/Chicago",
    "DEN": "America/Denver",
    "PHX": "America/Phoenix",
    "LAX": "America/Los_Angeles",
    "SFO": "America/Los_Angeles",
    "SEA": "America/Los_Angeles",
    "YYZ": "America/Toronto",
    "YUL": "America/Toronto",
    "YVR": "America/Vancouver",
    "SYD": "Australia/Sydney",
    "MEL": "Australia/Melbourne",
    "PER": "Australia/Perth",
    "LPA": "Atlantic/Canary",
    "TFS": "Atlantic/Canary",
}
"""DHL service area code -> IANA time zone, where the country alone does not tell."""

COUNTRY_ZONES = {
    country: zone
    for zone, countries in {
        "Europe/Madrid": ("SPAIN", "ESP"),
        "Europe/Rome": ("ITALY", "ITA"),
        "Europe/Berlin": ("GERMANY", "DEU"),
        "Europe/Paris": ("FRANCE", "FRA"),
        "Europe/London": ("UNITED KINGDOM", "GBR"),
        "Europe/Dublin": ("IRELAND", "IRL"),
        "Europe/Amsterdam": ("NETHERLANDS", "NETHERLANDS, THE", "NLD"),
        "Europe/Brussels": ("BELGIUM", "BEL"),
        "Europe/Zurich": ("SWITZERLAND", "CHE"),
        "Europe/Vienna": ("AUSTRIA", "AUT"),
        "Europe/Warsaw": ("POLAND", "POL"),
        "Europe/Prague": ("CZECH REPUBLIC", "CZECHIA", "CZE"),
        "Europe/Copenhagen": ("DENMARK", "DNK"),
        "Europe/Stockholm": ("SWEDEN", "SWE"),
        "Europe/Oslo": ("NORWAY", "NOR"),
        "Europe/Helsinki": ("FINLAND", "FIN"),
        "Europe/Athens": ("GREECE", "GRC"),
        "Europe/Istanbul": ("TURKEY", "TURKIYE", "TUR"),
        "America/Jamaica": ("JAMAICA", "JAM"),
        "America/Bogota": ("COLOMBIA", "COL"),
        "Asia/Hong_Kong": ("HONG KONG", "HONG KONG SAR, CHINA", "HKG"),
        "Asia/Singapore": ("SINGAPORE", "SGP"),
        "Asia/Shanghai": ("CHINA", "CHINA, PEOPLES REPUBLIC", "CHN"),
        "Asia/Tokyo": ("JAPAN", "JPN"),
        "Asia/Seoul": ("KOREA, REPUBLIC OF", "SOUTH KOREA", "KOR"),
        "Asia/Kolkata": ("INDIA", "IND"),
        "Asia/Dubai": ("UNITED ARAB EMIRATES", "ARE"),
        "Africa/Johannesburg": ("SOUTH AFRICA", "ZAF"),
    }.items()
    for country in countries
}
"""The country as DHL writes it after the place (``Milan - Italy``, ``KINGSTON-JAM``)
-> its time zone, for countries of one zone."""


def area_zone(code: str, description: str) -> zoneinfo.ZoneInfo | None:
    """The time zone of a service area, by its code or its country; None if unknown."""
    _place, _, country = description.rpartition("-")
    zone = SERVICE_AREA_ZONES.get(code.strip().upper()) or COUNTRY_ZONES.get(
        " ".join(country.split()).upper()
    )
    return zoneinfo.ZoneInfo(zone) if zone else None


def event_instant(date: str, time: str, zone: zoneinfo.ZoneInfo | None = None) -> datetime.datetime:
    """``2024-04-26`` and ``09:26:00-07:00`` (or ``09:26:00`` in ``zone``): the instant,
    on the local clock it names; naive, the local time, when no offset can be known."""
    try:
        instant = datetime.datetime.fromisoformat(f"{date}T{time.replace('Z', '+00:00')}")
    except ValueError:
        raise CarrierError(f"dhl_express: an event has no readable time ({date} {time})") from None
    if instant.utcoffset() is None and zone is not None:
        return instant.replace(tzinfo=zone)
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
        events = []
        for event in _children(info, "ShipmentEvent"):
            area = _child(event, "ServiceArea")
            place = _text_of(area, "Description")
            zone = area_zone(_text_of(area, "ServiceAreaCode"), place)
            events.append(
                RawEvent(
                    occurred_at=event_instant(
                        _text_of(event, "Date"), _text_of(event, "Time"), zone
                    ),
                    location=service_area(place),
                )
            )
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
    description="DHL Express tracking by polling DHL's XML Services (through karrio).",
    stand_ins="its test endpoint, or a recording",
    credentials=(
        Setting("site_id", required=True, secret=True, description="XML Services site id."),
        Setting("password", required=True, secret=True, description="XML Services password."),
        Setting("account_number", default="", description="The DHL Express account."),
    ),
)
plugin_info, track_shipments = CARRIER.hooks()
