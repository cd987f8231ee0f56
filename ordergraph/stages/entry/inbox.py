"""The import inbox: what a channel received but could not turn into an order.

Channels that cannot answer the sender with errors (webhooks, files) call
``ingest``; a rejected payload is kept with its reasons, one entry per (channel,
reference), until an operator fixes the cause and replays it. Nothing a channel
delivered is silently dropped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ordergraph.core import db
from ordergraph.core.auth import Principal
from ordergraph.core.errors import DomainError, ErrorCode, Problem, is_unique_violation
from ordergraph.core.orders import OrderDraft, OrderView, load_order, submit_order
from ordergraph.core.tables import Order
from ordergraph.stages.entry.tables import ImportError_, WebhookDelivery

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime


@dataclass(frozen=True)
class IngestResult:
    order: OrderView | None
    created: bool
    import_error_id: int | None
    problems: tuple[Problem, ...] = ()

    @property
    def status(self) -> str:
        """``created``, ``duplicate`` (the order existed already) or ``rejected`` (in the inbox)."""
        if self.created:
            return "created"
        return "duplicate" if self.order is not None else "rejected"

    def summary(self) -> dict[str, Any]:
        """What a channel answers the sender, as JSON."""
        return {
            "status": self.status,
            "order": self.order.number if self.order else None,
            "import_error_id": self.import_error_id,
            "problems": json.loads(_reasons(list(self.problems))),
        }


def _reasons(problems: list[Problem]) -> str:
    return json.dumps(
        [{"field": p.field, "code": p.code.value, "message": p.message} for p in problems]
    )


async def parse(rt: Runtime, channel: str, payload: str) -> OrderDraft:
    """The channel plugin's ``parse_order`` for ``payload``; raises DomainError when unreadable."""
    result = await rt.plugins.call(
        "parse_order", payload=payload, only=[channel], first_result=True
    )
    for failure in result.failures:
        if isinstance(failure.exception, DomainError):
            raise failure.exception
        raise DomainError.of(
            ErrorCode.PLUGIN_FAILED, f"{channel} could not read it: {failure.error}"
        )
    if not result.results:
        raise DomainError.of(
            ErrorCode.INVALID_VALUE, f"No enabled channel named {channel} reads it."
        )
    return result.values[0]


# import_errors.reference and webhook_deliveries.delivery_id hold this many characters.
KEY_LENGTH = 200


def storable_key(value: str) -> str:
    """``value`` when a key column holds it on both databases, else a fixed-length digest.

    A reference or delivery id only has to identify its input again, and the digest of a
    longer one (or of one with control characters, which PostgreSQL may refuse) does that
    as well: a platform that sends such an id still gets the same answer on every retry.
    """
    if len(value) <= KEY_LENGTH and value.isprintable():
        return value
    return "sha256:" + _digest(value)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def storable_payload(payload: str) -> str:
    """The payload as both databases keep it: PostgreSQL text cannot hold NUL, which no
    readable payload contains, so it becomes U+FFFD like the body's invalid UTF-8 did."""
    return payload.replace("\x00", "\ufffd")


async def record(channel: str, reference: str, payload: str, problems: list[Problem]) -> int:
    """Keep a rejected payload (or refresh the open entry with the same reference)."""
    reference, payload = storable_key(reference), storable_payload(payload)
    try:
        return await _record_once(channel, reference, payload, problems)
    except Exception as exc:
        # A concurrent delivery inserted the entry first (PostgreSQL): refresh it.
        if not is_unique_violation(exc):
            raise
        return await _record_once(channel, reference, payload, problems)


async def _record_once(channel: str, reference: str, payload: str, problems: list[Problem]) -> int:
    async with db.write_transaction():
        existing = (
            await ImportError_.select(ImportError_.id)
            .where((ImportError_.channel == channel) & (ImportError_.reference == reference))
            .first()
        )
        if existing is not None:
            await ImportError_.update(
                {
                    ImportError_.status: "open",
                    ImportError_.reasons: _reasons(problems),
                    ImportError_.payload: payload,
                    ImportError_.attempts: ImportError_.attempts + 1,
                    ImportError_.updated_at: db.now(),
                }
            ).where(ImportError_.id == existing["id"])
            return existing["id"]
        inserted = await ImportError_.insert(
            ImportError_(
                channel=channel, reference=reference, payload=payload, reasons=_reasons(problems)
            )
        )
        return inserted[0]["id"]


async def ingest(
    rt: Runtime, channel: str, reference: str, payload: str, principal: Principal
) -> IngestResult:
    """Parse, validate and submit a payload; keep it in the inbox when it is rejected."""
    reference = storable_key(reference)
    try:
        result = await submit_order(rt, await parse(rt, channel, payload), principal)
    except DomainError as error:
        entry = await record(channel, reference, payload, error.problems)
        return IngestResult(None, False, entry, tuple(error.problems))
    await ImportError_.update(
        {ImportError_.status: "imported", ImportError_.order: result.order.id}
    ).where((ImportError_.channel == channel) & (ImportError_.reference == reference))
    return IngestResult(result.order, result.created, None)


async def replay(rt: Runtime, entry_id: int, principal: Principal) -> IngestResult:
    """Try an inbox entry again, after its cause was fixed."""
    entry = await ImportError_.select().where(ImportError_.id == entry_id).first()
    if entry is None:
        raise DomainError.of(ErrorCode.NOT_FOUND, f"There is no import error {entry_id}.", "id")
    return await ingest(rt, entry["channel"], entry["reference"], entry["payload"], principal)


# -- Webhook channels: one order per delivery, however often it is delivered ------------------


async def find_order(channel: str, external_id: str) -> OrderView | None:
    """The order a channel already imported under ``external_id``, if any."""
    external_id = external_id.strip()
    if "\x00" in external_id:
        return None  # no order has one (and PostgreSQL refuses to compare it)
    row = (
        await Order.select(Order.id)
        .where((Order.channel == channel) & (Order.external_id == external_id))
        .first()
    )
    return await load_order(row["id"]) if row else None


def _delivery(channel: str, delivery_id: str, payload: str) -> Any:
    return (
        (WebhookDelivery.channel == channel)
        & (WebhookDelivery.delivery_id == storable_key(delivery_id))
        & (WebhookDelivery.body_sha256 == _digest(payload))
    )


async def seen_delivery(channel: str, delivery_id: str, payload: str) -> bool:
    """Whether this delivery (its id and its body) was handled before."""
    return await WebhookDelivery.exists().where(_delivery(channel, delivery_id, payload))


async def remember_delivery(channel: str, delivery_id: str, payload: str) -> bool:
    """Note a handled delivery (its id and its body); False when it was noted already."""
    try:
        await WebhookDelivery.insert(
            WebhookDelivery(
                channel=channel,
                delivery_id=storable_key(delivery_id),
                body_sha256=_digest(payload),
            )
        )
    except Exception as exc:
        if not is_unique_violation(exc):
            raise
        return False
    return True


async def receive(
    rt: Runtime,
    channel: str,
    payload: str,
    principal: Principal,
    *,
    external_id: str | None,
    delivery_id: str | None,
) -> IngestResult:
    """Ingest one delivery of a webhook channel exactly once.

    An order already imported under ``external_id`` answers ``duplicate``, and a
    delivery handled before (the same delivery id with the same body) answers with its
    inbox entry, without work; concurrent identical deliveries meet at the unique
    (channel, external id) of orders. A delivery id used before with another body is a
    new delivery: it is imported, or kept in the inbox, like any other. The inbox
    reference is the external id (or the digest of the payload, when the payload has
    none); a reference or delivery id longer than a key column is kept as its digest.
    The delivery is remembered only after the payload was stored (as an order or in the
    inbox), so a crash in between makes the platform's retry do the work rather than
    lose the delivery.
    """
    reference = storable_key(external_id or "sha256:" + _digest(payload))
    # Delivery first, then order: a delivery is remembered only after its order (or
    # inbox entry) committed, so an order stored by a concurrent copy is seen here.
    seen = bool(delivery_id) and await seen_delivery(channel, delivery_id, payload)
    existing = await find_order(channel, external_id) if external_id else None
    if seen and existing is None:
        entry = (
            await ImportError_.select(ImportError_.id)
            .where((ImportError_.channel == channel) & (ImportError_.reference == reference))
            .first()
        )
        return IngestResult(None, False, entry["id"] if entry else None)
    if existing is not None:
        result = IngestResult(existing, False, None)
    else:
        result = await ingest(rt, channel, reference, payload, principal)
    if delivery_id:
        await remember_delivery(channel, delivery_id, payload)
    return result


def reasons_of(row: dict[str, Any]) -> list[dict[str, Any]]:
    value = row["reasons"]
    return json.loads(value) if isinstance(value, str) else value
