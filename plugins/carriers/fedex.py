"""FedEx tracking and labels through karrio (FedEx Track and Ship APIs, OAuth client
credentials).

karrio sends the request and maps FedEx's event codes (``DL`` delivered, ``OD`` out
for delivery, ...) to its statuses and reasons. Its parser drops the offset of FedEx's
times (``2024-04-26T09:26:00-07:00`` would become 09:26 at no zone) and the delivery
window, so they are read from FedEx's ``scanEvents`` and ``estimatedDeliveryTimeWindow``.

With ``buy_labels`` the plugin books a shipment through the Ship API when staff ship
without tracking numbers: karrio sends it and decodes the label; the piece tracking
numbers and the delivery date, which karrio does not keep, come from FedEx's answer.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

import karrio.core.models as karrio_models
from karrio.mappers.fedex import Mapper, Proxy, Settings

from ordergraph.plugin_api import (
    Booking,
    Estimate,
    Location,
    OrderView,
    Setting,
    hookimpl,
)
from plugins.carriers.karrio_tracking import (
    CarrierError,
    KarrioCarrier,
    RawEvent,
    RawTracking,
    iso_time,
    karrio_address,
    karrio_parcel,
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
    display_name="FedEx",
    description="FedEx tracking by polling the FedEx Track API (through karrio).",
    stand_ins="its sandbox, or a recording",
    credentials=(
        Setting("track_api_key", required=True, secret=True, description="Track API key."),
        Setting("track_secret_key", required=True, secret=True, description="Track API secret."),
    ),
    more_settings=(
        Setting(
            "buy_labels",
            bool,
            default=False,
            description="Buy the label through the Ship API when staff ship without "
            "tracking numbers.",
        ),
        Setting("api_key", default="", secret=True, description="Ship API key."),
        Setting("secret_key", default="", secret=True, description="Ship API secret."),
        Setting("account_number", default="", description="The FedEx account billed."),
        Setting("service", default="FEDEX_GROUND", description="The service when staff name none."),
        Setting(
            "shipper",
            dict,
            default={},
            description="The sender: name, company, phone, line1, city, region, "
            "postalCode, country.",
        ),
    ),
)
plugin_info, track_shipments = CARRIER.hooks()


def _delivery_day(shipment: dict[str, Any]) -> Estimate | None:
    """The day FedEx commits to, at noon UTC so that it reads as that day in every zone."""
    detail = (shipment.get("completedShipmentDetail") or {}).get("operationalDetail") or {}
    pieces = shipment.get("pieceResponses") or [{}]
    day = text(detail.get("deliveryDate") or pieces[0].get("deliveryDatestamp"))[:10]
    try:
        date = datetime.date.fromisoformat(day)
    except ValueError:
        return None
    return Estimate(
        estimated_delivery=datetime.datetime.combine(date, datetime.time(12), datetime.UTC)
    )


@hookimpl
async def create_shipment(
    order: OrderView, shipment: dict[str, Any], settings: dict[str, Any]
) -> Booking:
    missing = [n for n in ("api_key", "secret_key", "account_number") if not settings[n]]
    if missing:
        raise CarrierError(f"fedex: buying labels needs the settings {', '.join(missing)}")
    request = karrio_models.ShipmentRequest(
        service=shipment["service"] or settings["service"],
        shipper=karrio_address(settings["shipper"]),
        recipient=karrio_address(shipment["address"]),
        parcels=[karrio_parcel(p) for p in shipment["parcels"]],
        payment=karrio_models.Payment(paid_by="sender", account_number=settings["account_number"]),
        label_type="PDF_4x6",
        reference=shipment["reference"],
    )
    details, raw = await CARRIER.ship(
        settings,
        {
            "api_key": settings["api_key"],
            "secret_key": settings["secret_key"],
            "account_number": settings["account_number"],
        },
        request,
    )
    booked = raw["output"]["transactionShipments"][0]
    pieces = tuple(text(p.get("trackingNumber")) for p in booked.get("pieceResponses") or [])
    # One label is kept as FedEx sent it; karrio merges several into one PDF.
    labels = [
        d["encodedLabel"]
        for p in booked.get("pieceResponses") or []
        for d in p.get("packageDocuments") or []
        if "LABEL" in text(d.get("contentType")) and d.get("encodedLabel")
    ]
    return Booking(
        tracking_number=details.tracking_number,
        label=base64.b64decode(labels[0] if len(labels) == 1 else details.docs.label),
        label_format=details.label_type or "PDF",
        parcel_tracking_numbers=pieces if len(pieces) == len(shipment["parcels"]) else (),
        estimate=_delivery_day(booked),
    )
