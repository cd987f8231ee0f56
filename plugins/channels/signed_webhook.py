"""What the Shopify and WooCommerce channels share: both platforms sign the raw body with
base64 HMAC-SHA256, send one JSON order per delivery, and name the topic and the
delivery id in headers. Not a plugin itself: the two channel plugins import it.
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

from ordergraph.plugin_api import DomainError, ErrorCode, Principal, receive_delivery, runtime_of

log = logging.getLogger(__name__)


def signature_is_valid(secret: str, body: bytes, signature: str | None) -> bool:
    """The signature is base64 of the raw body's HMAC-SHA256 with the secret."""
    if not signature:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, signature.strip().encode("latin-1", "replace"))


def text(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def joined(*parts: Any) -> str:
    return " ".join(part for part in map(text, parts) if part)


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
    """The platform's order id in a body, or None when the body has none."""
    try:
        order_id = text(read_payload(payload).get("id"))
    except DomainError:
        return None
    return order_id or None


async def receive_signed(
    request: Request,
    body: bytes,
    *,
    channel: str,
    principal: Principal,
    topic: str,
    topic_header: str,
    delivery_header: str,
) -> JSONResponse:
    """Import a delivery whose signature was checked: once, however often it comes."""
    received = request.headers.get(topic_header, topic)
    if received != topic:
        log.warning("%s: ignored a %s delivery; subscribe only to %s", channel, received, topic)
        return JSONResponse({"status": "ignored", "reason": f"{received} is not handled"})
    payload = body.decode("utf-8", "replace")
    result = await receive_delivery(
        runtime_of(request),
        channel,
        payload,
        principal,
        external_id=order_id_of(payload),
        delivery_id=request.headers.get(delivery_header),
    )
    return JSONResponse(result.summary(), status_code=201 if result.created else 200)
