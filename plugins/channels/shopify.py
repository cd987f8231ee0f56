"""The Shopify channel: the ``orders/create`` webhook, signed with the shop's secret.

``POST /channels/shopify/webhook`` checks ``X-Shopify-Hmac-Sha256`` on the raw body,
then imports the order once however often Shopify delivers it (by
``X-Shopify-Webhook-Id`` and by the order's id). A payload that cannot be imported is
answered 200, so Shopify stops retrying, and kept in the import inbox with its reasons.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ordergraph.plugin_api import (
    LineDraft,
    OrderDraft,
    PluginInfo,
    Principal,
    Role,
    Setting,
    hookimpl,
)
from plugins.channels.signed_webhook import joined, read_payload, receive_signed, text

CHANNEL = "shopify"
WEBHOOK_PATH = "/channels/shopify/webhook"
PRINCIPAL = Principal(role=Role.INTEGRATOR, name="shopify-webhook")
TOPIC = "orders/create"


def draft_from_order(data: dict[str, Any]) -> OrderDraft:
    """The ``OrderDraft`` of a Shopify order (``orders/create`` payload)."""
    customer = data.get("customer") if isinstance(data.get("customer"), dict) else {}
    shipping = data.get("shipping_address")
    shipping = shipping if isinstance(shipping, dict) else {}
    address = {
        "name": text(shipping.get("name"))
        or joined(shipping.get("first_name"), shipping.get("last_name")),
        "line1": text(shipping.get("address1")),
        "line2": text(shipping.get("address2")),
        "city": text(shipping.get("city")),
        "postalCode": text(shipping.get("zip")),
        "country": text(shipping.get("country_code")),
        "phone": text(shipping.get("phone")),
    }
    items = data.get("line_items")
    lines = [
        LineDraft(
            sku=text(item.get("sku")),
            quantity=item.get("quantity"),
            unit_price=None if item.get("price") is None else text(item.get("price")),
        )
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict)
    ]
    name, customer_note = text(data.get("name")), text(data.get("note"))
    note = "\n".join(part for part in (name and f"Shopify order {name}", customer_note) if part)
    return OrderDraft(
        channel=CHANNEL,
        external_id=text(data.get("id")),
        lines=lines,
        customer_email=text(data.get("email")) or text(customer.get("email")),
        customer_name=joined(customer.get("first_name"), customer.get("last_name")),
        shipping_address={key: value for key, value in address.items() if value},
        currency=text(data.get("currency")),
        note=note,
    )


def _webhook_route(secret: str) -> Route:
    async def webhook(request: Request) -> JSONResponse:
        """Receive an ``orders/create`` delivery."""
        return await receive_signed(
            request,
            secret=secret,
            signature_header="X-Shopify-Hmac-Sha256",
            channel=CHANNEL,
            principal=PRINCIPAL,
            topic=TOPIC,
            topic_header="x-shopify-topic",
            delivery_header="x-shopify-webhook-id",
        )

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
