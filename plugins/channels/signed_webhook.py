"""What the Shopify and WooCommerce channels share: both platforms sign the raw body with
base64 HMAC-SHA256, send one JSON order per delivery, and name the topic and the
delivery id in headers. Not a plugin itself: the two channel plugins import it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from ordergraph.plugin_api import (
    BodyTooLarge,
    DomainError,
    ErrorCode,
    Principal,
    load_json,
    read_webhook_body,
    receive_delivery,
    runtime_of,
)

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
    data = load_json(payload)
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


def unsigned(signature_header: str) -> JSONResponse:
    """401; the connection is closed, since the body may not have been read."""
    return JSONResponse(
        {"error": f"The {signature_header} signature is missing or wrong."},
        status_code=401,
        headers={"Connection": "close"},
    )


async def receive_signed(
    request: Request,
    *,
    secret: str,
    signature_header: str,
    channel: str,
    principal: Principal,
    topic: str,
    topic_header: str,
    delivery_header: str,
) -> JSONResponse:
    """Import a signed delivery: once, however often it comes.

    Without a signature nothing is read (401); a body over ``max_webhook_body_bytes`` is
    refused (413) before more than that is read; a wrong signature is 401. Nothing is
    stored or remembered for any of them.
    """
    signature = request.headers.get(signature_header)
    if not signature:
        return unsigned(signature_header)
    try:
        body = await read_webhook_body(request)
    except BodyTooLarge as exc:
        return exc.response()
    if not signature_is_valid(secret, body, signature):
        return unsigned(signature_header)
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
