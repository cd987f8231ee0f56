"""The payment ledger: every movement of money on a statement, append-only.

An entry is written once per idempotency key: the same key again with the same
parameters returns the first entry (a webhook delivered ten times at once is one
entry), with different parameters it is refused. Paid and outstanding amounts are
derived from the entries, never stored; an order whose statement is paid in full is
moved to SETTLED through ``transition_order``.

A refund through a payment provider (``refund_payment``) is recorded as the provider
answers: ``refunded`` when done, ``refund_pending`` while it is under way (it moves no
money, but is not refunded twice), ``refund_failed`` when it failed later. Those entries
are keyed ``METHOD:REFUND-ID:KIND``, so the provider's webhook about the same refund
finds the same entry.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ordergraph.core import db
from ordergraph.core.auth import SYSTEM, Principal
from ordergraph.core.errors import DomainError, ErrorCode, Problem
from ordergraph.core.money import LEDGER_EFFECT, from_minor, parse_amount, to_minor
from ordergraph.core.orders import load_order, recording
from ordergraph.core.transitions import transition_order
from ordergraph.stages.settlement.tables import LedgerEntry

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime
    from ordergraph.stages.settlement.statements import StatementView

# A provider's refund status -> the ledger entry it makes; any other status is a failure.
REFUND_KINDS = {
    "succeeded": "refunded",
    "pending": "refund_pending",
    "requires_action": "refund_pending",
}
MAX_KEY = 255
MAX_REFERENCE = 200


@dataclass(frozen=True)
class EntryView:
    id: int
    statement_id: int
    kind: str
    amount: Decimal
    currency: str
    method: str
    reference: str
    idempotency_key: str
    actor: str
    data: dict[str, Any]
    at: datetime.datetime


@dataclass(frozen=True)
class Balance:
    total: Decimal
    paid: Decimal
    refund_pending: Decimal = Decimal(0)
    """Refunds a provider has accepted but not yet paid back."""

    @property
    def outstanding(self) -> Decimal:
        # 0 * total keeps the currency's decimal places (0.00).
        return max(self.total - self.paid, 0 * self.total)

    @property
    def overpaid(self) -> Decimal:
        return max(self.paid - self.total, 0 * self.total)

    @property
    def refundable(self) -> Decimal:
        """The overpayment that no refund, done or under way, covers yet."""
        return max(self.overpaid - self.refund_pending, 0 * self.total)

    @property
    def state(self) -> str:
        """unpaid, partially_paid, paid or overpaid."""
        if self.paid > self.total:
            return "overpaid"
        if self.paid == self.total:
            return "paid"
        return "partially_paid" if self.paid > 0 else "unpaid"


@dataclass(frozen=True)
class RecordResult:
    entry: EntryView
    created: bool


def entry_view(row: dict[str, Any]) -> EntryView:
    data = row["data"]
    return EntryView(
        id=row["id"],
        statement_id=row["statement"],
        kind=row["kind"],
        amount=from_minor(row["amount_minor"], row["currency"]),
        currency=row["currency"],
        method=row["method"],
        reference=row["reference"],
        idempotency_key=row["idempotency_key"],
        actor=row["actor"],
        data=json.loads(data) if isinstance(data, str) else data,
        # RETURNING on SQLite gives the stored text, a SELECT gives a datetime.
        at=datetime.datetime.fromisoformat(row["at"]) if isinstance(row["at"], str) else row["at"],
    )


def paid_minor(entries: list[dict[str, Any]]) -> int:
    return sum(LEDGER_EFFECT[e["kind"]] * e["amount_minor"] for e in entries)


def refund_pending_minor(entries: list[dict[str, Any]]) -> int:
    """Pending refunds whose refund has no outcome (refunded or failed) in the ledger yet."""
    ended = {e["reference"] for e in entries if e["kind"] in ("refunded", "refund_failed")}
    return sum(
        e["amount_minor"]
        for e in entries
        if e["kind"] == "refund_pending" and e["reference"] not in ended
    )


def _balance(statement: StatementView, rows: list[dict[str, Any]]) -> Balance:
    currency = statement.currency
    return Balance(
        statement.total,
        from_minor(paid_minor(rows), currency),
        from_minor(refund_pending_minor(rows), currency),
    )


async def entries_of(statement_id: int) -> list[EntryView]:
    rows = (
        await LedgerEntry.select()
        .where(LedgerEntry.statement == statement_id)
        .order_by(LedgerEntry.id)
    )
    return [entry_view(row) for row in rows]


async def balance_of(statement: StatementView) -> Balance:
    rows = await LedgerEntry.select(
        LedgerEntry.kind, LedgerEntry.amount_minor, LedgerEntry.reference
    ).where(LedgerEntry.statement == statement.id)
    return _balance(statement, rows)


def _fingerprint(statement_id: int, kind: str, amount_minor: int, method: str, ref: str) -> str:
    body = json.dumps([statement_id, kind, amount_minor, method, ref])
    return hashlib.sha256(body.encode()).hexdigest()


def _check(kind: str, amount: Any, currency: str, key: str, reference: str) -> int:
    problems = []
    if kind not in LEDGER_EFFECT:
        problems.append(
            Problem(
                ErrorCode.INVALID_VALUE,
                f"The kind must be one of {', '.join(LEDGER_EFFECT)}.",
                "kind",
            )
        )
    amount_minor = 0
    try:
        parsed = parse_amount(amount)
        if parsed <= 0:
            raise ValueError("an amount must be positive")
        amount_minor = to_minor(parsed, currency)
    except ValueError as exc:
        problems.append(
            Problem(ErrorCode.INVALID_VALUE, f"The amount {amount} is not valid: {exc}.", "amount")
        )
    if not key.strip() or len(key) > MAX_KEY:
        problems.append(
            Problem(
                ErrorCode.REQUIRED,
                f"Give an idempotency key of 1 to {MAX_KEY} characters.",
                "idempotencyKey",
            )
        )
    if len(reference) > MAX_REFERENCE:
        problems.append(
            Problem(
                ErrorCode.INVALID_VALUE,
                f"A reference has at most {MAX_REFERENCE} characters.",
                "reference",
            )
        )
    if problems:
        raise DomainError(*problems)
    return amount_minor


async def record_entry(
    rt: Runtime,
    statement: StatementView,
    kind: str,
    amount: Any,
    *,
    idempotency_key: str,
    method: str,
    principal: Principal = SYSTEM,
    reference: str = "",
    data: dict[str, Any] | None = None,
) -> RecordResult:
    """Append one entry (or return the one already written under ``idempotency_key``).

    Raises ``DomainError``: INVALID_VALUE or REQUIRED for bad input, IDEMPOTENCY_CONFLICT
    when the key was used for a different movement.
    """
    amount_minor = _check(kind, amount, statement.currency, idempotency_key, reference)
    fingerprint = _fingerprint(statement.id, kind, amount_minor, method, reference)
    async with recording(rt) as timeline:
        rows = await db.raw(
            "INSERT INTO ledger_entries (statement, kind, amount_minor, currency, method, "
            "reference, idempotency_key, fingerprint, actor, data, at) "
            "VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}) "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING *",
            statement.id,
            kind,
            amount_minor,
            statement.currency,
            method,
            reference,
            idempotency_key,
            fingerprint,
            principal.actor,
            json.dumps(data or {}, default=str),
            db.now(),
        )
        if rows:
            order = await load_order(statement.order_id)
            assert order is not None  # orders are never deleted
            await timeline.record(
                order,
                "payment_recorded",
                principal,
                data={
                    "statement": statement.number,
                    "kind": kind,
                    "amount": str(from_minor(amount_minor, statement.currency)),
                    "method": method,
                    "reference": reference,
                    "entry": rows[0]["id"],
                },
            )
    if not rows:
        first = (
            await LedgerEntry.select().where(LedgerEntry.idempotency_key == idempotency_key).first()
        )
        if first is None or first["fingerprint"] != fingerprint:
            raise DomainError.of(
                ErrorCode.IDEMPOTENCY_CONFLICT,
                f"The idempotency key {idempotency_key!r} was already used for another "
                "payment movement.",
                "idempotencyKey",
            )
        return RecordResult(entry_view(first), created=False)
    await derive_settled(rt, statement)
    return RecordResult(entry_view(rows[0]), created=True)


async def refund_overpayment(
    rt: Runtime, statement: StatementView, method: str, idempotency_key: str, principal: Principal
) -> RecordResult:
    """Refund what was paid beyond the total (NOTHING_TO_REFUND otherwise).

    A payment plugin that handles ``method`` pays it back (``refund_payment``) and the
    ledger records its answer; with none it is recorded as refunded by hand (a bank
    transfer or cash given back). The request's ``idempotency_key`` asked again returns
    the entry it made. The provider is asked under a key derived from the ledger (the
    statement and its last entry), so two requests for the same overpayment make one
    refund. A refund the provider refuses raises REFUND_FAILED and changes nothing.
    """
    rows = (
        await LedgerEntry.select()
        .where(LedgerEntry.statement == statement.id)
        .order_by(LedgerEntry.id)
    )
    entries = [entry_view(row) for row in rows]
    for entry in entries:
        if idempotency_key in (entry.idempotency_key, entry.data.get("request")):
            return RecordResult(entry, created=False)
    refundable = _balance(statement, rows).refundable
    if refundable <= 0:
        raise DomainError.of(
            ErrorCode.NOTHING_TO_REFUND,
            f"Statement {statement.number} is not overpaid, or its refund is under way.",
            "statementNumber",
        )
    answer = await rt.plugins.call(
        "refund_payment",
        first_result=True,
        statement=statement,
        amount=refundable,
        method=method,
        entries=entries,
        idempotency_key=f"refund-{statement.number}-after-{entries[-1].id}",
    )
    if answer.failures:
        failure = answer.failures[0]
        raise DomainError.of(
            ErrorCode.REFUND_FAILED,
            f"{failure.plugin} could not refund {refundable} {statement.currency} on "
            f"statement {statement.number}: {failure.error}",
            "statementNumber",
        )
    data: dict[str, Any] = {"reason": "overpayment"}
    if not answer.results:
        return await record_entry(
            rt,
            statement,
            "refunded",
            refundable,
            idempotency_key=idempotency_key,
            method=method,
            principal=principal,
            data=data,
        )
    plugin, refund = answer.results[0]
    reference, status = str(refund["reference"]), str(refund["status"])
    kind = REFUND_KINDS.get(status)
    if kind is None:
        raise DomainError.of(
            ErrorCode.REFUND_FAILED,
            f"{plugin} answered that refund {reference} is {status}.",
            "statementNumber",
        )
    return await record_entry(
        rt,
        statement,
        kind,
        refundable,
        idempotency_key=refund_key(method, reference, kind),
        method=method,
        reference=reference,
        principal=principal,
        data=data | {"request": idempotency_key, "status": status},
    )


def refund_key(method: str, refund_reference: str, kind: str) -> str:
    """The idempotency key of a provider's refund in the ledger (also for its webhooks)."""
    return f"{method}:{refund_reference}:{kind}"


async def derive_settled(rt: Runtime, statement: StatementView) -> None:
    """SETTLED once the statement is paid in full (an overpayment also settles it)."""
    for _ in range(3):
        order = await load_order(statement.order_id)
        if order is None or order.status != "COMPLETED":
            return
        if (await balance_of(statement)).outstanding > 0:
            return
        try:
            await transition_order(
                rt,
                order.id,
                "settle",
                SYSTEM,
                expected_version=order.version,
                reason=f"statement {statement.number} is paid in full",
            )
            return
        except DomainError as error:
            if error.code != ErrorCode.VERSION_CONFLICT:
                raise


async def request_payment(rt: Runtime, statement: StatementView) -> None:
    """Ask the payment plugins to collect what is outstanding (``collect_payment``, first
    result), outside any transaction; the answer goes on the order's timeline. A plugin
    that fails raises, so the job that called this retries (its idempotency key makes the
    retry safe)."""
    if (await balance_of(statement)).outstanding <= 0:
        return
    order = await load_order(statement.order_id)
    answer = await rt.plugins.call(
        "collect_payment", first_result=True, order=order, statement=statement
    )
    if answer.failures:
        failure = answer.failures[0]
        raise DomainError.of(
            ErrorCode.PLUGIN_FAILED, f"{failure.plugin} could not request payment: {failure.error}"
        )
    if not answer.results:
        return
    plugin, result = answer.results[0]
    assert order is not None  # orders are never deleted
    async with recording(rt) as timeline:
        await timeline.record(
            order,
            "payment_requested",
            SYSTEM,
            data={"statement": statement.number, "method": plugin, **result},
        )
