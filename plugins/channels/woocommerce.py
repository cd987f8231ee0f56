"""The WooCommerce channel: the ``order.created`` webhook, signed with the webhook's secret.

``POST /channels/woocommerce/webhook`` checks ``X-WC-Webhook-Signature`` on the raw
body, then imports the order once however often WooCommerce delivers it (by
``X-WC-Webhook-Delivery-ID`` and by the order's id). A payload that cannot be imported
is answered 200 and kept in the import inbox with its reasons. The unsigned ping
WooCommerce sends when the webhook is created (``webhook_id=N``) is answered 200.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ordergraph.plugin_api import (
    DomainError,
    ErrorCode,
    LineDraft,
    OrderDraft,
    PluginInfo,
    Principal,
    Role,
    Setting,
    hookimpl,
    receive_delivery,
    runtime_of,
)

CHANNEL = "woocommerce"
WEBHOOK_PATH = "/channels/woocommerce/webhook"
PRINCIPAL = Principal(role=Role.INTEGRATOR, name="woocommerce-webhook")
TOPIC = "order.created"
PING = re.compile(rb"webhook_id=\d+")
log = logging.getLogger(__name__)


def signature_is_valid(secret: str, body: bytes, signature: str | None) -> bool:
    """WooCommerce signs the raw body: base64 of its HMAC-SHA256 with the webhook's secret."""
    if not signature:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, signature.strip().encode("latin-1", "replace"))


def _text(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def _joined(*parts: Any) -> str:
    return " ".join(text for text in map(_text, parts) if text)


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def read_payload(payload: str) -> dict[str, Any]:
    """The JSON object of a webhook body; prices (JSON numbers) stay exact as ``Decimal``."""
    try:
        data = json.loads(payload, parse_float=Decimal)
    except ValueError:
        raise DomainError.of(ErrorCode.INVALID_VALUE, "The body is not JSON.") from None
    if not isinstance(data, dict):
        raise DomainError.of(ErrorCode.INVALID_VALUE, "The body is not a JSON object.")
    return data


def order_id_of(payload: str) -> str | None:
    try:
        order_id = _text(read_payload(payload).get("id"))
    except DomainError:
        return None
    return order_id or None


def draft_from_order(data: dict[str, Any]) -> OrderDraft:
    """The ``OrderDraft`` of a WooCommerce order (REST API v3 order, as webhooks send it)."""
    billing, shipping = _object(data, "billing"), _object(data, "shipping")
    address = {
        "name": _joined(shipping.get("first_name"), shipping.get("last_name")),
        "line1": _text(shipping.get("address_1")),
        "line2": _text(shipping.get("address_2")),
        "city": _text(shipping.get("city")),
        "postalCode": _text(shipping.get("postcode")),
        "country": _text(shipping.get("country")),
        "phone": _text(shipping.get("phone")),
    }
    items = data.get("line_items")
    lines = [
        LineDraft(
            sku=_text(item.get("sku")),
            quantity=item.get("quantity"),
            unit_price=None if item.get("price") is None else str(item["price"]),
        )
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict)
    ]
    number, customer_note = _text(data.get("number")), _text(data.get("customer_note"))
    note = "\n".join(
        text for text in (number and f"WooCommerce order #{number}", customer_note) if text
    )
    return OrderDraft(
        channel=CHANNEL,
        external_id=_text(data.get("id")),
        lines=lines,
        customer_email=_text(billing.get("email")),
        customer_name=_joined(billing.get("first_name"), billing.get("last_name")),
        shipping_address={key: value for key, value in address.items() if value},
        currency=_text(data.get("currency")),
        note=note,
    )


def _webhook_route(secret: str) -> Route:
    async def webhook(request: Request) -> JSONResponse:
        """Receive an ``order.created`` delivery, or the ping of a new webhook."""
        body = await request.body()
        signature = request.headers.get("x-wc-webhook-signature")
        if signature is None and PING.fullmatch(body.strip()):
            return JSONResponse({"status": "ok"})
        if not signature_is_valid(secret, body, signature):
            return JSONResponse(
                {"error": "The X-WC-Webhook-Signature signature is missing or wrong."},
                status_code=401,
            )
        topic = request.headers.get("x-wc-webhook-topic", TOPIC)
        if topic != TOPIC:
            log.warning("woocommerce: ignored a %s delivery; subscribe only to %s", topic, TOPIC)
            return JSONResponse({"status": "ignored", "reason": f"{topic} is not handled"})
        payload = body.decode("utf-8", "replace")
        result = await receive_delivery(
            runtime_of(request),
            CHANNEL,
            payload,
            PRINCIPAL,
            external_id=order_id_of(payload),
            delivery_id=request.headers.get("x-wc-webhook-delivery-id"),
        )
        return JSONResponse(result.summary(), status_code=201 if result.created else 200)

    return Route(WEBHOOK_PATH, webhook, methods=["POST"])


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        category="channel",
        description="WooCommerce orders from the signed order.created webhook "
        f"(POST {WEBHOOK_PATH}).",
        settings=(
            Setting(
                "webhook_secret",
                str,
                required=True,
                secret=True,
                description="The secret of the WooCommerce webhook "
                "(WooCommerce > Settings > Advanced > Webhooks).",
            ),
        ),
    )


@hookimpl
def http_routes(settings: dict[str, Any]) -> list[Route]:
    if not settings["webhook_secret"].strip():
        raise ValueError("plugins.woocommerce.webhook_secret: must not be empty")
    return [_webhook_route(settings["webhook_secret"])]


@hookimpl
def parse_order(payload: str) -> OrderDraft:
    return draft_from_order(read_payload(payload))
