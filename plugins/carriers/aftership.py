"""Tracking pushed by AfterShip: its tracking webhook, signed with the webhook secret.

``POST /plugins/aftership/webhook`` checks ``aftership-hmac-sha256`` (base64 of the raw
body's HMAC-SHA256) and handles each delivery once, by its ``event_id``. The tracking's
checkpoints become tracking events of the shipment with that tracking number: AfterShip's
tags and subtags mapped to karrio's statuses and reasons, the checkpoint time with its
offset, the place field by field, the estimate with its window and the promised date. A
delivery that cannot be read is answered 200, so AfterShip stops retrying, and kept in the
import inbox with its reasons; one for a tracking number no shipment has is ignored.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ordergraph.plugin_api import (
    BodyTooLarge,
    DomainError,
    ErrorCode,
    Estimate,
    Location,
    PluginInfo,
    Problem,
    Setting,
    TrackingEvent,
    TrackingUpdate,
    find_shipment,
    hookimpl,
    ingest_tracking,
    load_json,
    read_webhook_body,
    record_import_error,
    remember_delivery,
    runtime_of,
    seen_delivery,
    set_promised_date,
)

CHANNEL = "aftership"
WEBHOOK_PATH = "/plugins/aftership/webhook"
TAGS = {
    "Pending": "pending",
    "InfoReceived": "pending",
    "InTransit": "in_transit",
    "OutForDelivery": "out_for_delivery",
    "AttemptFail": "delivery_failed",
    "Delivered": "delivered",
    "AvailableForPickup": "ready_for_pickup",
    "Exception": "on_hold",
    "Expired": "unknown",
}
"""AfterShip's tags in karrio's statuses."""
SUBTAGS = {
    "AttemptFail_001": ("delivery_failed", "consignee_not_home"),
    "AttemptFail_002": ("delivery_failed", "consignee_business_closed"),
    "Exception_003": ("delivery_failed", "consignee_refused"),
    "Exception_004": ("delivery_delayed", "carrier_not_enough_time"),
    "Exception_005": ("on_hold", "consignee_incorrect_address"),
    "Exception_007": ("on_hold", "carrier_damaged_parcel"),
    "Exception_008": ("cancelled", "retailer_cancelled"),
    "Exception_010": ("on_hold", "customs_delay"),
    "Exception_011": ("return_to_sender", None),
    "Exception_013": ("on_hold", "carrier_parcel_lost"),
}
"""Subtags that say more than their tag: the status and karrio's reason."""
COUNTRIES = {
    "USA": "US",
    "CAN": "CA",
    "MEX": "MX",
    "GBR": "GB",
    "DEU": "DE",
    "FRA": "FR",
    "NLD": "NL",
    "BEL": "BE",
    "ESP": "ES",
    "ITA": "IT",
    "AUT": "AT",
    "CHE": "CH",
    "POL": "PL",
    "IRL": "IE",
    "CHN": "CN",
    "HKG": "HK",
    "JPN": "JP",
    "AUS": "AU",
}
"""AfterShip names countries by ISO alpha-3; these are the ones given as alpha-2."""


def signature_is_valid(secret: str, body: bytes, signature: str | None) -> bool:
    if not signature:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, signature.strip().encode("latin-1", "replace"))


def _text(value: Any, where: str, problems: list[Problem]) -> str:
    """A text field: absent or null is empty; anything but a string is a problem."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    problems.append(Problem(ErrorCode.INVALID_VALUE, "Expected text.", where))
    return ""


def _object(value: Any, where: str, problems: list[Problem]) -> dict[str, Any]:
    """An object field: absent or null is empty; anything but an object is a problem."""
    if value is None or isinstance(value, dict):
        return value or {}
    problems.append(Problem(ErrorCode.INVALID_VALUE, "Expected an object.", where))
    return {}


def _time(value: Any, where: str, problems: list[Problem]) -> datetime.datetime | None:
    try:
        parsed = datetime.datetime.fromisoformat(_text(value, where, []).replace("Z", "+00:00"))
    except ValueError:
        problems.append(Problem(ErrorCode.INVALID_VALUE, f"Not a time: {value!r}.", where))
        return None
    if parsed.utcoffset() is None:
        problems.append(
            Problem(ErrorCode.INVALID_VALUE, f"The time {value!r} has no UTC offset.", where)
        )
        return None
    return parsed


def _date_or_time(value: Any, where: str, problems: list[Problem]) -> datetime.datetime | None:
    """An AfterShip estimate: a date (the day, at UTC midnight) or a time with offset."""
    text = _text(value, where, problems)
    if not text:
        return None
    try:
        if len(text) == 10:
            return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        problems.append(Problem(ErrorCode.INVALID_VALUE, "Not a date or time.", where))
        return None
    return parsed if parsed.utcoffset() is not None else parsed.replace(tzinfo=datetime.UTC)


def _coordinates(value: Any, where: str, problems: list[Problem]) -> tuple[Decimal | None, ...]:
    """``[latitude, longitude]`` as numbers, or none at all."""
    if not value:
        return None, None
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(n, int | Decimal) and not isinstance(n, bool) for n in value)
    ):
        return Decimal(value[0]), Decimal(value[1])
    problems.append(
        Problem(ErrorCode.INVALID_VALUE, "Coordinates are [latitude, longitude].", where)
    )
    return None, None


def _checkpoint(checkpoint: Any, where: str, problems: list[Problem]) -> TrackingEvent | None:
    """The tracking event of one checkpoint, or None with its problems appended."""
    if not isinstance(checkpoint, dict):
        problems.append(Problem(ErrorCode.INVALID_VALUE, "A checkpoint is an object.", where))
        return None
    found: list[Problem] = []

    def field(name: str) -> str:
        return _text(checkpoint.get(name), f"{where}.{name}", found)

    when = _time(checkpoint.get("checkpoint_time"), f"{where}.checkpoint_time", found)
    tag, subtag = field("tag"), field("subtag")
    status, reason = SUBTAGS.get(subtag, (TAGS.get(tag), None))
    if status is None:
        found.append(Problem(ErrorCode.INVALID_VALUE, f"Unknown tag {tag!r}.", where))
    latitude, longitude = _coordinates(checkpoint.get("coordinates"), f"{where}.coordinates", found)
    location = Location(
        city=field("city"),
        region=field("state"),
        postal_code=field("zip"),
        country=COUNTRIES.get(field("country_iso3"), ""),
        latitude=latitude,
        longitude=longitude,
    )
    description = field("message")[:500]
    problems += found
    if when is None or status is None or found:
        return None
    return TrackingEvent(
        occurred_at=when,
        status=status,
        reason=reason,
        code=subtag[:64],
        description=description,
        location=location,
    )


def update_from_tracking(tracking: dict[str, Any]) -> TrackingUpdate:
    """The ``TrackingUpdate`` of an AfterShip tracking (a webhook's ``msg``); any field
    of the wrong type or with a value no event can hold raises ``DomainError`` naming it."""
    problems: list[Problem] = []
    checkpoints = tracking.get("checkpoints") or []
    if not isinstance(checkpoints, list):
        problems.append(Problem(ErrorCode.INVALID_VALUE, "Expected a list.", "msg.checkpoints"))
        checkpoints = []
    events = [
        event
        for i, checkpoint in enumerate(checkpoints)
        if (event := _checkpoint(checkpoint, f"msg.checkpoints[{i}]", problems))
    ]
    where = "msg.aftership_estimated_delivery_date"
    window = _object(tracking.get("aftership_estimated_delivery_date"), where, problems)
    single = _date_or_time(
        window.get("estimated_delivery_date"), f"{where}.estimated_delivery_date", problems
    ) or _date_or_time(tracking.get("expected_delivery"), "msg.expected_delivery", problems)
    start = _date_or_time(
        window.get("estimated_delivery_date_min"), f"{where}.estimated_delivery_date_min", problems
    )
    end = _date_or_time(
        window.get("estimated_delivery_date_max"), f"{where}.estimated_delivery_date_max", problems
    )
    if problems:
        raise DomainError(*problems)
    estimate = None
    if single or start or end:
        estimate = Estimate(estimated_delivery=single, window_from=start, window_to=end)
    return TrackingUpdate(events=events, estimate=estimate, source=CHANNEL)


def _promised(tracking: dict[str, Any]) -> datetime.date | None:
    """The delivery date the order promised (``order_promised_delivery_date``)."""
    where = "msg.order_promised_delivery_date"
    raw = tracking.get("order_promised_delivery_date")
    problems: list[Problem] = []
    value = _text(raw, where, problems)
    if not value and not problems:
        return None
    try:
        return datetime.date.fromisoformat(value[:10])
    except ValueError:
        raise DomainError.of(ErrorCode.INVALID_VALUE, f"Not a date: {raw!r}.", where) from None


def _webhook_route(secret: str) -> Route:
    async def webhook(request: Request) -> JSONResponse:
        """Receive a tracking update."""
        try:
            body = await read_webhook_body(request)  # at most max_webhook_body_bytes
        except BodyTooLarge as exc:
            return exc.response()
        if not signature_is_valid(secret, body, request.headers.get("aftership-hmac-sha256")):
            return JSONResponse(
                {"error": "The aftership-hmac-sha256 signature is missing or wrong."}, 401
            )
        payload = body.decode("utf-8", "replace")
        try:
            data = load_json(payload)
        except DomainError:
            data = None
        event_id = data.get("event_id") if isinstance(data, dict) else None
        delivery = event_id.strip() if isinstance(event_id, str) else ""
        delivery = delivery or hashlib.sha256(body).hexdigest()
        if await seen_delivery(CHANNEL, delivery, payload):
            return JSONResponse({"status": "duplicate"})
        rt = runtime_of(request)
        try:
            if not isinstance(data, dict) or not isinstance(data.get("msg"), dict):
                raise DomainError.of(ErrorCode.INVALID_VALUE, "The body has no tracking (msg).")
            tracking = data["msg"]
            problems: list[Problem] = []
            number = _text(tracking.get("tracking_number"), "msg.tracking_number", problems)
            if problems:
                raise DomainError(*problems)
            shipment = await find_shipment(number)
            if shipment is None:
                await remember_delivery(CHANNEL, delivery, payload)
                return JSONResponse({"status": "ignored", "reason": "no such tracking number"})
            update = update_from_tracking(tracking)
            promised = _promised(tracking)
            # What the checks let through but the shipment cannot take is kept too.
            result = await ingest_tracking(rt, shipment["id"], update, shipment=shipment)
        except DomainError as error:
            entry = await record_import_error(CHANNEL, delivery, payload, list(error.problems))
            await remember_delivery(CHANNEL, delivery, payload)
            return JSONResponse({"status": "rejected", "inboxId": entry})
        if promised is not None:
            await set_promised_date(shipment["id"], promised)
        await remember_delivery(CHANNEL, delivery, payload)
        return JSONResponse(
            {"status": "ingested", "newEvents": result.new_events, "tracking": result.status}
        )

    return Route(WEBHOOK_PATH, webhook, methods=["POST"])


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        category="carrier",
        tracks_any_carrier=True,
        description=f"Tracking pushed by AfterShip's signed webhook (POST {WEBHOOK_PATH}).",
        settings=(
            Setting(
                "webhook_secret",
                required=True,
                secret=True,
                description="The webhook secret shown in AfterShip's notification settings.",
            ),
        ),
    )


@hookimpl
def http_routes(settings: dict[str, Any]) -> list[Route]:
    if not settings["webhook_secret"].strip():
        raise ValueError("plugins.aftership.webhook_secret: must not be empty")
    return [_webhook_route(settings["webhook_secret"])]
