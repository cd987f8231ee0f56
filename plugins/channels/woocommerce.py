"""The WooCommerce channel: the ``order.created`` webhook, signed with the webhook's secret.

``POST /channels/woocommerce/webhook`` checks ``X-WC-Webhook-Signature`` on the raw
body, then imports the order once however often WooCommerce delivers it (by
``X-WC-Webhook-Delivery-ID`` and by the order's id). A payload that cannot be imported
is answered 200 and kept in the import inbox with its reasons. The unsigned ping
WooCommerce sends when the webhook is created (``webhook_id=N``) is answered 200.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ordergraph.plugin_api import (
    BodyTooLarge,
    LineDraft,
    OrderDraft,
    PluginInfo,
    Principal,
    Role,
    Setting,
    hookimpl,
    read_body,
)
from plugins.channels.signed_webhook import joined, read_payload, receive_signed, text

CHANNEL = "woocommerce"
WEBHOOK_PATH = "/channels/woocommerce/webhook"
PRINCIPAL = Principal(role=Role.INTEGRATOR, name="woocommerce-webhook")
TOPIC = "order.created"
PING = re.compile(rb"webhook_id=\d+")
# The ping is tiny; an unsigned body longer than this is not one, and is not read further.
PING_BYTES = 64
ADDRESS_FIELDS = (
    "first_name",
    "last_name",
    "address_1",
    "address_2",
    "city",
    "postcode",
    "country",
)


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def draft_from_order(data: dict[str, Any]) -> OrderDraft:
    """The ``OrderDraft`` of a WooCommerce order (REST API v3 order, as webhooks send it).

    Orders of digital goods, and shops that ship to the billing address, send an empty
    ``shipping`` object: the billing address is the address then, as in WooCommerce.
    """
    billing, shipping = _object(data, "billing"), _object(data, "shipping")
    if not any(text(shipping.get(key)) for key in ADDRESS_FIELDS):
        shipping = billing
    address = {
        "name": joined(shipping.get("first_name"), shipping.get("last_name")),
        "line1": text(shipping.get("address_1")),
        "line2": text(shipping.get("address_2")),
        "city": text(shipping.get("city")),
        "postalCode": text(shipping.get("postcode")),
        "country": text(shipping.get("country")),
        "phone": text(shipping.get("phone")),
    }
    items = data.get("line_items")
    lines = [
        LineDraft(
            sku=text(item.get("sku")),
            quantity=item.get("quantity"),
            unit_price=None if item.get("price") is None else str(item["price"]),
        )
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict)
    ]
    number, customer_note = text(data.get("number")), text(data.get("customer_note"))
    note = "\n".join(
        part for part in (number and f"WooCommerce order #{number}", customer_note) if part
    )
    return OrderDraft(
        channel=CHANNEL,
        external_id=text(data.get("id")),
        lines=lines,
        customer_email=text(billing.get("email")),
        customer_name=joined(billing.get("first_name"), billing.get("last_name")),
        shipping_address={key: value for key, value in address.items() if value},
        currency=text(data.get("currency")),
        note=note,
    )


def _webhook_route(secret: str) -> Route:
    async def webhook(request: Request) -> JSONResponse:
        """Receive an ``order.created`` delivery, or the ping of a new webhook."""
        if "x-wc-webhook-signature" not in request.headers:
            try:
                body = await read_body(request, PING_BYTES)
            except BodyTooLarge:
                body = b""
            if PING.fullmatch(body.strip()):
                return JSONResponse({"status": "ok"})
        return await receive_signed(
            request,
            secret=secret,
            signature_header="X-WC-Webhook-Signature",
            channel=CHANNEL,
            principal=PRINCIPAL,
            topic=TOPIC,
            topic_header="x-wc-webhook-topic",
            delivery_header="x-wc-webhook-delivery-id",
        )

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
