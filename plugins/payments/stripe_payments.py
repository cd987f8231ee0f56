"""Stripe: a PaymentIntent per statement, and the webhook that records what Stripe reports.

The PaymentIntent is created with the official ``stripe`` library under the idempotency
key ``statement-NUMBER``, so a retried job gets the same PaymentIntent back. The webhook
(``POST /plugins/stripe/webhook``) verifies ``Stripe-Signature`` (``t=...,v1=...``:
HMAC-SHA256 of ``t.body`` with the endpoint secret, 300 s tolerance) before it reads
anything, then records ``payment_intent.succeeded`` as a ``captured`` ledger entry and
``payment_intent.payment_failed`` as ``failed``, under keys derived from the
PaymentIntent: the same event delivered ten times is one entry.

Refunds (``refund_payment``): ``refundOverpayment`` with method ``stripe`` creates a
Stripe Refund on the statement's PaymentIntent under the key the core derives from the
ledger; the webhook's ``refund.updated`` and ``charge.refunded`` record its outcome
(``refunded`` or ``refund_failed``) under the same ledger key the core uses, so the
refund is one entry however often and in whatever order Stripe reports it.
"""

from __future__ import annotations

from typing import Any

import stripe
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ordergraph.plugin_api import (
    BodyTooLarge,
    DomainError,
    ErrorCode,
    OrderView,
    PluginInfo,
    Setting,
    StatementView,
    hookimpl,
    load_json,
    money_from_minor,
    money_to_minor,
    read_webhook_body,
    record_ledger_entry,
    refund_ledger_key,
    runtime_of,
    statement_by_number,
)

WEBHOOK_PATH = "/plugins/stripe/webhook"
TOLERANCE_SECONDS = 300
PAYMENT_EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed")
REFUND_EVENTS = ("refund.updated", "charge.refunded")
# A Refund's status -> the ledger entry its outcome makes (pending ones wait).
REFUND_OUTCOMES = {"succeeded": "refunded", "failed": "refund_failed", "canceled": "refund_failed"}


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        category="payment",
        description="Card payments through Stripe PaymentIntents, refunds, and their webhook.",
        settings=(
            Setting(
                "api_key", str, required=True, secret=True, description="sk_live_... or sk_test_..."
            ),
            Setting("webhook_secret", str, required=True, secret=True, description="whsec_..."),
            Setting("api_base", str, default="https://api.stripe.com", description="Stripe's API."),
            Setting(
                "channels", list, default=[], description="Channels paid by card (empty: all)."
            ),
        ),
    )


def _client(settings: dict[str, Any]) -> stripe.StripeClient:
    return stripe.StripeClient(
        settings["api_key"],
        base_addresses={"api": settings["api_base"]},
        http_client=stripe.HTTPXClient(),
        max_network_retries=2,
    )


@hookimpl
async def collect_payment(
    order: OrderView, statement: StatementView, settings: dict[str, Any]
) -> dict[str, Any] | None:
    if settings["channels"] and order.channel not in settings["channels"]:
        return None
    intent = await _client(settings).v1.payment_intents.create_async(
        params={
            "amount": money_to_minor(statement.total, statement.currency),
            "currency": statement.currency.lower(),
            "description": f"Statement {statement.number}",
            "metadata": {"statement": statement.number, "order": order.number},
            "automatic_payment_methods": {"enabled": True},
        },
        options={"idempotency_key": f"statement-{statement.number}"},
    )
    return {"reference": intent.id, "status": intent.status}


@hookimpl
async def refund_payment(
    statement: StatementView,
    amount: Any,
    method: str,
    entries: list[Any],
    idempotency_key: str,
    settings: dict[str, Any],
) -> dict[str, Any] | None:
    if method != "stripe":
        return None
    intents = [e.reference for e in entries if e.method == "stripe" and e.kind == "captured"]
    if not intents:
        raise DomainError.of(
            ErrorCode.REFUND_FAILED,
            f"statement {statement.number} has no payment captured through Stripe",
            "method",
        )
    try:
        refund = await _client(settings).v1.refunds.create_async(
            params={
                "payment_intent": intents[-1],
                "amount": money_to_minor(amount, statement.currency),
                "reason": "requested_by_customer",
                "metadata": {"statement": statement.number, "reason": "overpayment"},
            },
            options={"idempotency_key": idempotency_key},
        )
    except stripe.StripeError as exc:
        reason = exc.user_message or str(exc)
        raise DomainError.of(
            ErrorCode.REFUND_FAILED,
            f"Stripe refused the refund ({exc.code or type(exc).__name__}): {reason}",
            "statementNumber",
        ) from None
    return {"reference": refund.id, "status": refund.status}


async def _record_refund(
    request: Request, event: dict[str, Any], refund: dict[str, Any], fallback: str
) -> str:
    kind = REFUND_OUTCOMES.get(refund.get("status", ""))
    number = (refund.get("metadata") or {}).get("statement") or fallback
    statement = await statement_by_number(number) if number else None
    if kind is None or statement is None:
        return "ignored"
    await record_ledger_entry(
        runtime_of(request),
        statement,
        kind,
        money_from_minor(refund["amount"], refund["currency"].upper()),
        idempotency_key=refund_ledger_key("stripe", refund["id"], kind),
        method="stripe",
        reference=refund["id"],
        data={"event": event["id"], "status": refund["status"]},
    )
    return kind


async def _record_refunds(request: Request, event: dict[str, Any]) -> str:
    """``refund.updated`` carries a Refund; ``charge.refunded`` a Charge listing its
    refunds (when Stripe includes the list)."""
    found = event["data"]["object"]
    if found["object"] == "refund":
        return await _record_refund(request, event, found, "")
    number = (found.get("metadata") or {}).get("statement", "")
    handled = [
        await _record_refund(request, event, refund, number)
        for refund in (found.get("refunds") or {}).get("data", [])
    ]
    return ",".join(handled) or "ignored"


async def _record(request: Request, event: dict[str, Any]) -> str:
    intent = event["data"]["object"]
    number = (intent.get("metadata") or {}).get("statement", "")
    statement = await statement_by_number(number) if number else None
    if statement is None:
        return "ignored: no statement"
    currency = intent["currency"].upper()
    if event["type"] == "payment_intent.succeeded":
        kind, key, minor = "captured", f"stripe:{intent['id']}:captured", intent["amount_received"]
    else:
        kind, key, minor = "failed", f"stripe:{intent['id']}:failed:{event['id']}", intent["amount"]
    await record_ledger_entry(
        runtime_of(request),
        statement,
        kind,
        money_from_minor(minor, currency),
        idempotency_key=key,
        method="stripe",
        reference=intent["id"],
        data={"event": event["id"]},
    )
    return kind


def webhook(settings: dict[str, Any]):
    async def receive(request: Request) -> JSONResponse:
        try:
            body = await read_webhook_body(request)  # at most max_webhook_body_bytes
        except BodyTooLarge as exc:
            return exc.response()
        try:
            stripe.WebhookSignature.verify_header(
                body.decode(),
                request.headers.get("stripe-signature", ""),
                settings["webhook_secret"],
                TOLERANCE_SECONDS,
            )
        except (stripe.SignatureVerificationError, UnicodeDecodeError):
            return JSONResponse({"error": "invalid signature"}, status_code=400)
        try:
            event = load_json(body.decode())
            if event["type"] in PAYMENT_EVENTS:
                handled = await _record(request, event)
            elif event["type"] in REFUND_EVENTS:
                handled = await _record_refunds(request, event)
            else:
                handled = "ignored"
        except (DomainError, KeyError, TypeError) as exc:
            return JSONResponse({"error": f"unreadable event: {exc}"}, status_code=400)
        return JSONResponse({"received": True, "handled": handled})

    return receive


@hookimpl
def http_routes(settings: dict[str, Any]) -> list[Route]:
    return [Route(WEBHOOK_PATH, webhook(settings), methods=["POST"])]
