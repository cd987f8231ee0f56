"""What the karrio-based carrier plugins share: asking karrio for tracking, and the
times and places its parsers lose put back from the carrier's own response.

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

from ordergraph.plugin_api import Estimate, Location, Setting, TrackingEvent, TrackingUpdate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawEvent:
    """What karrio loses of one event, read from the carrier's response."""

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
    return TrackingEvent(
        occurred_at=raw.occurred_at,
        status=event.status or "unknown",
        description=(event.description or "").strip()[:500],
        code=(event.code or "")[:64],
        reason=event.reason if event.reason and event.reason != "unknown" else None,
        location=raw.location,
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
