"""Stripe: a PaymentIntent per statement, and the webhook that records what Stripe reports.

The PaymentIntent is created with the official ``stripe`` library under the idempotency
key ``statement-NUMBER``, so a retried job gets the same PaymentIntent back. The webhook
(``POST /plugins/stripe/webhook``) verifies ``Stripe-Signature`` (``t=...,v1=...``:
HMAC-SHA256 of ``t.body`` with the endpoint secret, 300 s tolerance) before it reads
anything, then reads every field it uses at the door: a field of the wrong type or
beyond its limits is answered 400 naming it (``data.object.amount_received``), and
nothing is written. It records ``payment_intent.succeeded`` as a ``captured`` ledger
entry and ``payment_intent.payment_failed`` as ``failed``, under keys derived from the
PaymentIntent: the same event delivered ten times is one entry. Amounts are in Stripe's
minor units (``STRIPE_EXPONENTS``: JPY has none, KWD three); a movement in another
currency than the statement's, or a refund beyond what is refundable, is kept for a
person (``payment_held``) and answered 200, so Stripe does not send it again for days.

Refunds (``refund_payment``): ``refundOverpayment`` with method ``stripe`` creates a
Stripe Refund on the statement's PaymentIntent under the key the core derives from the
ledger; the webhook's ``refund.updated`` and ``charge.refunded`` record its outcome
(``refunded`` or ``refund_failed``) under the same ledger key the core uses, so the
refund is one entry however often and in whatever order Stripe reports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import stripe
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ordergraph.plugin_api import (
    MAX_MINOR,
    PAYMENT_REFERENCE,
    STATEMENT_NUMBER,
    BodyTooLarge,
    DomainError,
    ErrorCode,
    HeldMovement,
    OrderView,
    PluginInfo,
    Problem,
    Setting,
    StatementView,
    TextLimit,
    hookimpl,
    load_json,
    read_webhook_body,
    record_reported_movement,
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
# Stripe's minor units where they are not hundredths (stripe.com/docs/currencies); ISK,
# HUF and TWD stay two-decimal in its API although ISK has no minor unit.
STRIPE_EXPONENTS = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND",
         "VUV", "XAF", "XOF", "XPF"), 0,
    ),
    **dict.fromkeys(("BHD", "JOD", "KWD", "OMR", "TND"), 3),
}  # fmt: skip
TYPE_OR_STATUS = TextLimit("A type or status", 100)
MAX_REFUNDS_LISTED = 100
"""The most refunds a ``charge.refunded`` event may list (Stripe includes up to 10)."""


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


def to_stripe(amount: Decimal, currency: str) -> int:
    """``amount`` in Stripe's minor units of ``currency``; one Stripe cannot express (10.50
    MGA, which it counts in whole ariary) is refused."""
    scaled = amount.scaleb(STRIPE_EXPONENTS.get(currency, 2))
    if scaled != scaled.to_integral_value():
        raise DomainError.of(
            ErrorCode.INVALID_VALUE, f"Stripe cannot charge {amount} {currency}.", "amount"
        )
    return int(scaled)


def from_stripe(minor: int, currency: str) -> Decimal:
    """Stripe's ``minor`` units of ``currency`` as an amount."""
    return Decimal(minor).scaleb(-STRIPE_EXPONENTS.get(currency, 2))


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
            "amount": to_stripe(statement.total, statement.currency),
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
                "amount": to_stripe(amount, statement.currency),
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


@dataclass(frozen=True)
class Movement:
    """A movement of money an event reports, read at the door."""

    statement: str
    kind: str
    minor: int
    currency: str
    key: str
    reference: str


def _bad(field: str, message: str, code: ErrorCode = ErrorCode.INVALID_VALUE) -> DomainError:
    return DomainError.of(code, f"{field}: {message}", field)


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(field, "must be an object")
    return value


def _text(parent: dict[str, Any], name: str, field: str, limit: TextLimit) -> str:
    value = parent.get(name)
    if value is None or value == "":
        raise _bad(field, "is missing", ErrorCode.REQUIRED)
    if not isinstance(value, str) or not value.strip():
        raise _bad(field, "must be a non-empty string")
    problem = limit.problem(value, field)
    if problem is not None:
        raise DomainError(problem)
    return value


def _minor(parent: dict[str, Any], name: str, field: str) -> int:
    value = parent.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(field, "must be a whole number of minor units")
    if not 0 < value <= MAX_MINOR:
        raise _bad(field, f"must be from 1 to {MAX_MINOR}", ErrorCode.OUT_OF_RANGE)
    return value


def _currency(parent: dict[str, Any], field: str) -> str:
    value = parent.get("currency")
    # Any three letters pass the door: a currency the statement is not in, known or not,
    # is the ledger's to judge (kept for a person), not Stripe's to send again for days.
    if not isinstance(value, str) or not (len(value) == 3 and value.isascii() and value.isalpha()):
        raise _bad(field, "must be a three-letter currency code", ErrorCode.INVALID_CURRENCY)
    return value.upper()


def _statement_number(found: dict[str, Any], field: str, fallback: str = "") -> str:
    """The statement number in the object's metadata ("": none)."""
    metadata = found.get("metadata")
    if metadata is None:
        return fallback
    metadata = _object(metadata, f"{field}.metadata")
    if metadata.get("statement") is None:
        return fallback
    return _text(metadata, "statement", f"{field}.metadata.statement", STATEMENT_NUMBER)


def _refund(found: Any, field: str, fallback: str) -> Movement | None:
    """A Refund's outcome (None while it is under way)."""
    refund = _object(found, field)
    status = _text(refund, "status", f"{field}.status", TYPE_OR_STATUS)
    kind = REFUND_OUTCOMES.get(status)
    reference = _text(refund, "id", f"{field}.id", PAYMENT_REFERENCE)
    minor = _minor(refund, "amount", f"{field}.amount")
    currency = _currency(refund, f"{field}.currency")
    number = _statement_number(refund, field, fallback)
    if kind is None:
        return None
    key = refund_ledger_key("stripe", reference, kind)
    return Movement(number, kind, minor, currency, key, reference)


def read_event(event: Any) -> tuple[str, str, list[Movement]]:
    """The event's id, its type and the movements it reports; ``DomainError`` naming the
    first field of the wrong type or beyond its limits."""
    event = _object(event, "event")
    event_id = _text(event, "id", "id", PAYMENT_REFERENCE)
    kind = _text(event, "type", "type", TYPE_OR_STATUS)
    if kind not in PAYMENT_EVENTS + REFUND_EVENTS:
        return event_id, kind, []
    found = _object(_object(event.get("data"), "data").get("object"), "data.object")
    field = "data.object"
    if kind == "refund.updated":
        return event_id, kind, [m for m in [_refund(found, field, "")] if m]
    if kind == "charge.refunded":
        number = _statement_number(found, field)
        listed = found.get("refunds")
        refunds = [] if listed is None else _object(listed, f"{field}.refunds").get("data", [])
        if not isinstance(refunds, list) or len(refunds) > MAX_REFUNDS_LISTED:
            raise _bad(f"{field}.refunds.data", f"must be a list of at most {MAX_REFUNDS_LISTED}")
        movements = [
            _refund(r, f"{field}.refunds.data[{i}]", number) for i, r in enumerate(refunds)
        ]
        return event_id, kind, [m for m in movements if m]
    intent = _text(found, "id", f"{field}.id", PAYMENT_REFERENCE)
    number = _statement_number(found, field)
    currency = _currency(found, f"{field}.currency")
    if kind == "payment_intent.succeeded":
        minor = _minor(found, "amount_received", f"{field}.amount_received")
        movement = Movement(
            number, "captured", minor, currency, f"stripe:{intent}:captured", intent
        )
    else:
        minor = _minor(found, "amount", f"{field}.amount")
        key = f"stripe:{intent}:failed:{event_id}"
        movement = Movement(number, "failed", minor, currency, key, intent)
    return event_id, kind, [movement]


async def _apply(request: Request, event_id: str, movement: Movement) -> str:
    """Record one movement; what became of it (``captured``, ``held``, ``ignored``...)."""
    statement = await statement_by_number(movement.statement) if movement.statement else None
    if statement is None:
        return "ignored: no statement"
    result = await record_reported_movement(
        runtime_of(request),
        statement,
        movement.kind,
        from_stripe(movement.minor, movement.currency),
        currency=movement.currency,
        idempotency_key=movement.key,
        method="stripe",
        reference=movement.reference,
        data={"event": event_id},
    )
    return "held" if isinstance(result, HeldMovement) else movement.kind


def _refused(problems: list[Problem], status: int = 400) -> JSONResponse:
    """The problems as JSON; one of the body as a whole (not JSON) is the field ``body``."""
    errors = [
        {"field": p.field or "body", "code": p.code.value, "message": p.message} for p in problems
    ]
    return JSONResponse({"errors": errors}, status_code=status)


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
            event_id, _, movements = read_event(load_json(body.decode()))
        except DomainError as error:
            return _refused(error.problems)
        try:
            handled = [await _apply(request, event_id, movement) for movement in movements]
        except DomainError as error:
            if error.code == ErrorCode.BUSY:
                return _refused(error.problems, 503)
            raise
        return JSONResponse({"received": True, "handled": ",".join(handled) or "ignored"})

    return receive


@hookimpl
def http_routes(settings: dict[str, Any]) -> list[Route]:
    return [Route(WEBHOOK_PATH, webhook(settings), methods=["POST"])]
