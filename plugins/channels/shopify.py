"""The Shopify channel: the ``orders/create`` webhook, signed with the shop's secret.

``POST /channels/shopify/webhook`` checks ``X-Shopify-Hmac-Sha256`` on the raw body,
then imports the order once however often Shopify delivers it (by
``X-Shopify-Webhook-Id`` and by the order's id). A payload that cannot be imported is
answered 200, so Shopify stops retrying, and kept in the import inbox with its reasons.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
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

CHANNEL = "shopify"
WEBHOOK_PATH = "/channels/shopify/webhook"
PRINCIPAL = Principal(role=Role.INTEGRATOR, name="shopify-webhook")
TOPIC = "orders/create"
log = logging.getLogger(__name__)


def signature_is_valid(secret: str, body: bytes, signature: str | None) -> bool:
    """Shopify signs the raw body: base64 of its HMAC-SHA256 with the app's secret."""
    if not signature:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, signature.strip().encode("latin-1", "replace"))


def _text(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def _joined(*parts: Any) -> str:
    return " ".join(text for text in map(_text, parts) if text)


def read_payload(payload: str) -> dict[str, Any]:
    """The JSON object of a webhook body; amounts stay exact (``Decimal``, never float)."""
    try:
        data = json.loads(payload, parse_float=Decimal)
    except ValueError:
        raise DomainError.of(ErrorCode.INVALID_VALUE, "The body is not JSON.") from None
    if not isinstance(data, dict):
        raise DomainError.of(ErrorCode.INVALID_VALUE, "The body is not a JSON object.")
    return data


def order_id_of(payload: str) -> str | None:
    """The Shopify order id of a body, or None when the body has none."""
    try:
        order_id = _text(read_payload(payload).get("id"))
    except DomainError:
        return None
    return order_id or None


def draft_from_order(data: dict[str, Any]) -> OrderDraft:
    """The ``OrderDraft`` of a Shopify order (``orders/create`` payload)."""
    customer = data.get("customer") if isinstance(data.get("customer"), dict) else {}
    shipping = data.get("shipping_address")
    shipping = shipping if isinstance(shipping, dict) else {}
    address = {
        "name": _text(shipping.get("name"))
        or _joined(shipping.get("first_name"), shipping.get("last_name")),
        "line1": _text(shipping.get("address1")),
        "line2": _text(shipping.get("address2")),
        "city": _text(shipping.get("city")),
        "postalCode": _text(shipping.get("zip")),
        "country": _text(shipping.get("country_code")),
        "phone": _text(shipping.get("phone")),
    }
    items = data.get("line_items")
    lines = [
        LineDraft(
            sku=_text(item.get("sku")),
            quantity=item.get("quantity"),
            unit_price=None if item.get("price") is None else _text(item.get("price")),
        )
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict)
    ]
    name, customer_note = _text(data.get("name")), _text(data.get("note"))
    note = "\n".join(text for text in (name and f"Shopify order {name}", customer_note) if text)
    return OrderDraft(
        channel=CHANNEL,
        external_id=_text(data.get("id")),
        lines=lines,
        customer_email=_text(data.get("email")) or _text(customer.get("email")),
        customer_name=_joined(customer.get("first_name"), customer.get("last_name")),
        shipping_address={key: value for key, value in address.items() if value},
        currency=_text(data.get("currency")),
        note=note,
    )


def _webhook_route(secret: str) -> Route:
    async def webhook(request: Request) -> JSONResponse:
        """Receive an ``orders/create`` delivery."""
        body = await request.body()
        if not signature_is_valid(secret, body, request.headers.get("x-shopify-hmac-sha256")):
            return JSONResponse(
                {"error": "The X-Shopify-Hmac-Sha256 signature is missing or wrong."},
                status_code=401,
            )
        topic = request.headers.get("x-shopify-topic", TOPIC)
        if topic != TOPIC:
            log.warning("shopify: ignored a %s delivery; subscribe only to %s", topic, TOPIC)
            return JSONResponse({"status": "ignored", "reason": f"{topic} is not handled"})
        payload = body.decode("utf-8", "replace")
        result = await receive_delivery(
            runtime_of(request),
            CHANNEL,
            payload,
            PRINCIPAL,
            external_id=order_id_of(payload),
            delivery_id=request.headers.get("x-shopify-webhook-id"),
        )
        return JSONResponse(result.summary(), status_code=201 if result.created else 200)

    return Route(WEBHOOK_PATH, webhook, methods=["POST"])


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        category="channel",
        description=f"Shopify orders from the signed orders/create webhook (POST {WEBHOOK_PATH}).",
        settings=(
            Setting(
                "webhook_secret",
                str,
                required=True,
                secret=True,
                description="The secret Shopify signs webhooks with (the app's client secret, "
                "or the key shown under Settings > Notifications > Webhooks).",
            ),
        ),
    )


@hookimpl
def http_routes(settings: dict[str, Any]) -> list[Route]:
    if not settings["webhook_secret"].strip():
        raise ValueError("plugins.shopify.webhook_secret: must not be empty")
    return [_webhook_route(settings["webhook_secret"])]


@hookimpl
def parse_order(payload: str) -> OrderDraft:
    return draft_from_order(read_payload(payload))
