"""FedEx tracking through karrio (FedEx Track API, OAuth client credentials).

karrio sends the request and maps FedEx's event codes (``DL`` delivered, ``OD`` out
for delivery, ...) to its statuses and reasons. Its parser drops the offset of FedEx's
times (``2024-04-26T09:26:00-07:00`` would become 09:26 at no zone) and the delivery
window, so they are read from FedEx's ``scanEvents`` and ``estimatedDeliveryTimeWindow``.
"""

from __future__ import annotations

from typing import Any

from karrio.mappers.fedex import Mapper, Proxy, Settings

from ordergraph.plugin_api import Estimate, Location, PluginInfo, Setting, hookimpl
from plugins.carriers.karrio_tracking import (
    POLL_SETTINGS,
    CarrierError,
    KarrioCarrier,
    RawEvent,
    RawTracking,
    iso_time,
    text,
)


def _instant(value: Any, where: str) -> Any:
    instant = iso_time(value)
    if instant is None:
        raise CarrierError(f"fedex: {where} has no time with an offset ({value!r})")
    return instant


def _latest(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The track result karrio reads: the one with the latest scan."""
    return max(
        results,
        key=lambda r: max(
            (_instant(e.get("date"), "a scan").replace(tzinfo=None) for e in r["scanEvents"]),
            default=None,
        ),
    )


def read_raw(raw: Any) -> dict[str, RawTracking]:
    found = {}
    for complete in (raw or {}).get("output", {}).get("completeTrackResults") or []:
        results = [r for r in complete.get("trackResults") or [] if r.get("scanEvents")]
        if not results:
            continue
        result = _latest(results)
        events = []
        for scan in result["scanEvents"]:
            place = scan.get("scanLocation") or {}
            events.append(
                RawEvent(
                    occurred_at=_instant(scan.get("date"), "a scan"),
                    location=Location(
                        city=text(place.get("city")),
                        region=text(place.get("stateOrProvinceCode")),
                        postal_code=text(place.get("postalCode")),
                        country=text(place.get("countryCode")),
                    ),
                )
            )
        window = (
            result.get("estimatedDeliveryTimeWindow")
            or result.get("standardTransitTimeWindow")
            or {}
        ).get("window") or {}
        estimate = None
        if window.get("begins") or window.get("ends"):
            estimate = Estimate(
                window_from=iso_time(window.get("begins")), window_to=iso_time(window.get("ends"))
            )
        found[text(complete.get("trackingNumber"))] = RawTracking(events, estimate)
    return found


CARRIER = KarrioCarrier(
    name="fedex",
    mapper=Mapper,
    proxy=Proxy,
    settings_class=Settings,
    default_server_url="https://apis.fedex.com",
    read_raw=read_raw,
)


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        category="carrier",
        description="FedEx tracking by polling the FedEx Track API (through karrio).",
        settings=(
            Setting(
                "server_url",
                default=CARRIER.default_server_url,
                description="Where requests go: FedEx, its sandbox, or a recording.",
            ),
            Setting("track_api_key", required=True, secret=True, description="Track API key."),
            Setting(
                "track_secret_key", required=True, secret=True, description="Track API secret."
            ),
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
            "track_api_key": settings["track_api_key"],
            "track_secret_key": settings["track_secret_key"],
        },
        [s["tracking_number"] for s in shipments],
    )
