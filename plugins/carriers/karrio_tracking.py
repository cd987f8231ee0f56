"""What the karrio-based carrier plugins share: asking karrio for tracking, and the
times and places its parsers lose put back from the carrier's own response; and
booking a shipment through karrio's shipping API for the carriers that buy labels.

karrio sends the request (with its OAuth), and maps the carrier's event codes to its
statuses and incident reasons; that is kept. Its parsers flatten the location to a
string, and some drop the UTC offset (FedEx: ``2024-04-26T09:26:00-07:00`` becomes
09:26 with no zone), so each carrier module reads the instants, places and delivery
window from the raw response itself, event for event in karrio's order. Not a plugin
itself: the carrier plugins import it.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import karrio.core.models as karrio_models

from ordergraph.plugin_api import (
    Estimate,
    Location,
    PluginInfo,
    Setting,
    TrackingEvent,
    TrackingUpdate,
    hookimpl,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawEvent:
    """What karrio loses of one event, read from the carrier's response. A naive
    ``occurred_at`` is a local time whose offset nobody could tell: kept as such."""

    occurred_at: datetime.datetime
    location: Location


@dataclass(frozen=True)
class RawTracking:
    events: list[RawEvent]
    estimate: Estimate | None = None


class CarrierError(RuntimeError):
    """The carrier answered with an error, or an answer this plugin cannot read."""


POLL_SETTINGS = (
    Setting(
        "poll_interval_minutes",
        int,
        default=120,
        description="How often a shipment in transit is asked about.",
    ),
    Setting("poll_batch_size", int, default=10, description="Shipments per request round."),
    Setting(
        "stop_after_days",
        int,
        default=90,
        description="Stop asking about a shipment this many days after it shipped.",
    ),
)


@dataclass(frozen=True)
class KarrioCarrier:
    """One carrier as karrio knows it, and how to read its raw response."""

    name: str
    mapper: Any
    proxy: Any
    settings_class: type
    default_server_url: str
    read_raw: Callable[[Any], dict[str, RawTracking]]
    display_name: str
    description: str
    # What can stand in for the carrier's API: "its sandbox, or a recording".
    stand_ins: str
    # The settings karrio's tracking needs, passed to it by name (empty ones as None).
    credentials: tuple[Setting, ...]
    # The plugin's settings after the polling ones (a carrier that buys labels).
    more_settings: tuple[Setting, ...] = ()

    def hooks(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """The carrier plugin's ``plugin_info`` and ``track_shipments``, for its module:
        ``plugin_info, track_shipments = CARRIER.hooks()``."""

        @hookimpl
        def plugin_info() -> PluginInfo:
            server_url = Setting(
                "server_url",
                default=self.default_server_url,
                description=f"Where requests go: {self.display_name}, {self.stand_ins}.",
            )
            settings = (server_url, *self.credentials, *POLL_SETTINGS, *self.more_settings)
            return PluginInfo(category="carrier", description=self.description, settings=settings)

        @hookimpl
        async def track_shipments(
            shipments: list[dict[str, Any]], settings: dict[str, Any]
        ) -> dict[str, TrackingUpdate]:
            fields = {s.name: settings[s.name] or None for s in self.credentials}
            return await self.track(settings, fields, [s["tracking_number"] for s in shipments])

        return plugin_info, track_shipments

    def karrio_settings(self, settings: dict[str, Any], fields: dict[str, Any]) -> Any:
        """karrio's settings object, sending requests to ``settings['server_url']``."""
        server_url = settings["server_url"].rstrip("/")
        cls = type(
            f"{self.settings_class.__name__}At",
            (self.settings_class,),
            {"server_url": property(lambda _self: server_url)},
        )
        return cls(**fields)

    async def track(
        self, settings: dict[str, Any], fields: dict[str, Any], numbers: list[str]
    ) -> dict[str, TrackingUpdate]:
        """Every tracking number karrio found, with its events and estimate."""
        karrio_settings = self.karrio_settings(settings, fields)
        details, messages, raw = await asyncio.to_thread(self._fetch, karrio_settings, numbers)
        by_number = self.read_raw(raw)
        updates = {}
        for detail in details:
            found = by_number.get(detail.tracking_number)
            if found is None or len(found.events) != len(detail.events):
                raise CarrierError(
                    f"{self.name}: the response for {detail.tracking_number} does not list its "
                    "events as karrio read them"
                )
            updates[detail.tracking_number] = TrackingUpdate(
                events=[_event(e, r) for e, r in zip(detail.events, found.events, strict=True)],
                estimate=found.estimate,
                source=self.name,
            )
        if not updates and messages:
            raise CarrierError("; ".join(f"{m.code}: {m.message}" for m in messages))
        for message in messages:
            log.info("%s: %s %s", self.name, message.code, message.message)
        return updates

    async def ship(
        self, settings: dict[str, Any], fields: dict[str, Any], request: Any
    ) -> tuple[Any, Any]:
        """karrio's ``ShipmentDetails`` for a ``ShipmentRequest``, and the raw answer."""
        karrio_settings = self.karrio_settings(settings, fields)
        details, messages, raw = await asyncio.to_thread(self._ship, karrio_settings, request)
        if details is None or not details.docs or not details.docs.label:
            reasons = "; ".join(f"{m.code}: {m.message}" for m in messages)
            raise CarrierError(f"{self.name}: no label booked ({reasons or 'no shipment'})")
        return details, raw

    def _ship(self, karrio_settings: Any, request: Any) -> tuple[Any, Any, Any]:
        mapper = self.mapper(karrio_settings)
        response = self.proxy(karrio_settings).create_shipment(
            mapper.create_shipment_request(request)
        )
        details, messages = mapper.parse_shipment_response(response)
        return details, messages, response.deserialize()

    def _fetch(self, karrio_settings: Any, numbers: list[str]) -> tuple[Any, Any, Any]:
        mapper = self.mapper(karrio_settings)
        proxy = self.proxy(karrio_settings)
        request = mapper.create_tracking_request(
            karrio_models.TrackingRequest(tracking_numbers=numbers)
        )
        response = proxy.get_tracking(request)
        details, messages = mapper.parse_tracking_response(response)
        return details, messages, response.deserialize()


def _event(event: Any, raw: RawEvent) -> TrackingEvent:
    # Carriers wrap their texts (DHL's XML has line breaks in a description): one line.
    return TrackingEvent(
        occurred_at=raw.occurred_at,
        status=event.status or "unknown",
        description=" ".join((event.description or "").split())[:500],
        code=" ".join((event.code or "").split())[:64],
        reason=event.reason if event.reason and event.reason != "unknown" else None,
        location=raw.location,
        offset_unknown=raw.occurred_at.utcoffset() is None,
    )


def text(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def iso_time(value: Any) -> datetime.datetime | None:
    """An ISO 8601 time with its offset, or None when it has none."""
    if not value:
        return None
    parsed = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.utcoffset() is not None else None


def utc_offset(value: str) -> datetime.timezone:
    """The zone of an offset written ``-07:00`` (or ``+0530``)."""
    sign = -1 if value.strip().startswith("-") else 1
    digits = value.strip().lstrip("+-").replace(":", "")
    if not digits.isdigit() or len(digits) not in (2, 4):
        raise ValueError(f"not a UTC offset: {value!r}")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    return datetime.timezone(sign * datetime.timedelta(hours=hours, minutes=minutes))


def karrio_address(address: dict[str, Any]) -> Any:
    """karrio's ``Address`` from ours (``name``, ``company``, ``line1``, ``line2``,
    ``city``, ``region``, ``postalCode``, ``country``, ``phone``)."""
    return karrio_models.Address(
        person_name=text(address.get("name")) or None,
        company_name=text(address.get("company")) or None,
        address_line1=text(address.get("line1")),
        address_line2=text(address.get("line2")) or None,
        city=text(address.get("city")),
        state_code=text(address.get("region")) or None,
        postal_code=text(address.get("postalCode")),
        country_code=text(address.get("country")).upper(),
        phone_number=text(address.get("phone")) or None,
    )


GRAMS_PER_POUND = 453.59237
MM_PER_INCH = 25.4


def karrio_parcel(parcel: dict[str, Any]) -> Any:
    """karrio's ``Parcel`` in pounds and inches, the units karrio sends for US shippers."""
    return karrio_models.Parcel(
        weight=round(parcel["weightGrams"] / GRAMS_PER_POUND, 2),
        weight_unit="LB",
        length=round(parcel["lengthMm"] / MM_PER_INCH, 1),
        width=round(parcel["widthMm"] / MM_PER_INCH, 1),
        height=round(parcel["heightMm"] / MM_PER_INCH, 1),
        dimension_unit="IN",
    )
