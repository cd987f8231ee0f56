"""The payment ledger: every movement of money on a statement, append-only.

An entry is written once per idempotency key: the same key again with the same
parameters returns the first entry (a webhook delivered ten times at once is one
entry), with different parameters it is refused. Paid and outstanding amounts are
derived from the entries, never stored; an order whose statement is paid in full is
moved to SETTLED through ``transition_order``.

Every entry is judged inside the transaction that writes it, under a lock on its
statement (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's IMMEDIATE write
transaction already holds the only write lock): its currency must be the statement's,
and a refund may not pay back more than is refundable, whatever the method and however
many requests come at once. A movement a provider reports as done that the ledger
refuses (``record_reported``) is kept for a person instead: a ``payment_held`` event on
the order's timeline and a ``payment_held`` alert, never a ledger row.

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
from ordergraph.core.limits import shown
from ordergraph.core.money import LEDGER_EFFECT, from_minor, parse_amount, to_minor
from ordergraph.core.orders import OrderView, Timeline, load_order, recording
from ordergraph.core.tables import OrderEvent
from ordergraph.core.transitions import transition_order
from ordergraph.stages.settlement.limits import IDEMPOTENCY_KEY, PAYMENT_METHOD, PAYMENT_REFERENCE
from ordergraph.stages.settlement.tables import LedgerEntry
from ordergraph.stages.tracking import alerts

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime
    from ordergraph.stages.settlement.statements import StatementView

# A provider's refund status -> the ledger entry it makes; any other status is a failure.
REFUND_KINDS = {
    "succeeded": "refunded",
    "pending": "refund_pending",
    "requires_action": "refund_pending",
}
# Refunds: judged against what is refundable before they are written.
REFUNDS = ("refunded", "refund_pending")
HELD = "payment_held"
"""The timeline event and the alert of a reported movement the ledger refused."""


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


@dataclass(frozen=True)
class Held:
    """A reported movement the ledger refused, kept for a person (``record_reported``)."""

    problems: tuple[Problem, ...]


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


def _check(
    kind: str, amount: Any, currency: str, key: str, reference: str, method: str
) -> tuple[int, list[Problem]]:
    """The amount in minor units, and what is wrong with the movement's values."""
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
            Problem(
                ErrorCode.INVALID_VALUE,
                f"The amount {shown(str(amount))} is not valid: {exc}.",
                "amount",
            )
        )
    if not key.strip():
        problems.append(Problem(ErrorCode.REQUIRED, "Give an idempotency key.", "idempotencyKey"))
    else:
        IDEMPOTENCY_KEY.check(key, "idempotencyKey", problems)
    PAYMENT_REFERENCE.check(reference, "reference", problems)
    PAYMENT_METHOD.check(method, "method", problems)
    return amount_minor, problems


def _judged(
    statement: StatementView,
    rows: list[dict[str, Any]],
    kind: str,
    amount_minor: int,
    currency: str,
    reference: str,
) -> list[Problem]:
    """What the ledger's ``rows`` (read under the statement's lock) say against writing
    the movement: another currency than the statement's, or a refund beyond what is
    refundable (the outcome of a pending refund may take the amount it held; a provider's
    webhook may report the outcome before the refund's answer is recorded)."""
    if currency != statement.currency:
        return [
            Problem(
                ErrorCode.CURRENCY_MISMATCH,
                f"Statement {statement.number} is in {statement.currency}, not {currency}.",
                "currency",
            )
        ]
    same_refund = [r for r in rows if reference and r["reference"] == reference]
    ended = any(r["kind"] in ("refunded", "refund_failed") for r in same_refund)
    if kind not in REFUNDS or (kind == "refund_pending" and ended):
        return []  # a pending refund whose outcome came first holds nothing
    refundable = to_minor(_balance(statement, rows).refundable, statement.currency)
    if kind == "refunded":
        refundable += refund_pending_minor(same_refund)
    if amount_minor <= refundable:
        return []
    if refundable <= 0:
        return [
            Problem(
                ErrorCode.NOTHING_TO_REFUND,
                f"Statement {statement.number} is not overpaid, or its refund is under way.",
                "statementNumber",
            )
        ]
    return [
        Problem(
            ErrorCode.NOTHING_TO_REFUND,
            f"Statement {statement.number} has {from_minor(refundable, statement.currency)} "
            f"{statement.currency} to refund, less than "
            f"{from_minor(amount_minor, statement.currency)}.",
            "amount",
        )
    ]


async def _lock(statement: StatementView) -> list[dict[str, Any]]:
    """Lock the statement until the transaction ends; its ledger rows, read after."""
    if not db.current().is_sqlite:
        await db.raw("SELECT id FROM statements WHERE id = {} FOR UPDATE", statement.id)
    return await db.raw(
        "SELECT kind, amount_minor, reference FROM ledger_entries WHERE statement = {}",
        statement.id,
    )


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
    currency: str | None = None,
) -> RecordResult:
    """Append one entry (or return the one already written under ``idempotency_key``),
    judged under the statement's lock. ``currency`` is the amount's (default: the
    statement's).

    Raises ``DomainError``: INVALID_VALUE or REQUIRED for bad input, IDEMPOTENCY_CONFLICT
    when the key was used for a different movement, CURRENCY_MISMATCH for another
    currency than the statement's, NOTHING_TO_REFUND for a refund beyond what is
    refundable.
    """
    written = await _write(
        rt, statement, kind, amount, currency or statement.currency, idempotency_key, method,
        principal, reference, data or {}, hold=False,
    )  # fmt: skip
    assert isinstance(written, RecordResult)
    return written


async def record_reported(
    rt: Runtime,
    statement: StatementView,
    kind: str,
    amount: Any,
    *,
    currency: str,
    idempotency_key: str,
    method: str,
    reference: str,
    principal: Principal = SYSTEM,
    data: dict[str, Any] | None = None,
) -> RecordResult | Held:
    """Record a movement a provider reports as done (a webhook, a refund's answer) as
    ``record_entry`` does; one the ledger refuses (another currency, an amount the
    currency cannot hold, a refund beyond what is refundable, a key used for another
    movement) is kept for a person: a ``payment_held`` event on the order's timeline
    (once per key) and a ``payment_held`` alert, in the same transaction. A provider
    is answered either way, so it does not send the event again for days."""
    return await _write(
        rt, statement, kind, amount, currency, idempotency_key, method, principal, reference,
        data or {}, hold=True,
    )  # fmt: skip


async def _write(
    rt: Runtime,
    statement: StatementView,
    kind: str,
    amount: Any,
    currency: str,
    idempotency_key: str,
    method: str,
    principal: Principal,
    reference: str,
    data: dict[str, Any],
    *,
    hold: bool,
) -> RecordResult | Held:
    """The one place ledger rows are written: checked, then judged under the lock."""
    amount_minor, problems = _check(
        kind, amount, statement.currency, idempotency_key, reference, method
    )
    if problems and not hold:
        raise DomainError(*problems)
    fingerprint = _fingerprint(statement.id, kind, amount_minor, method, reference)
    async with recording(rt) as timeline:
        rows = await _lock(statement)
        first = await _entry_by_key(idempotency_key)
        if first is not None and first["fingerprint"] == fingerprint:
            return RecordResult(entry_view(first), created=False)
        if first is not None:
            problems.append(_conflict(idempotency_key))
        if not problems:
            problems = _judged(statement, rows, kind, amount_minor, currency, reference)
        if problems and not hold:
            raise DomainError(*problems)
        order = await load_order(statement.order_id)
        assert order is not None  # orders are never deleted
        movement = {
            "statement": statement.number, "kind": kind, "amount": str(amount),
            "currency": currency, "method": method, "reference": reference,
        }  # fmt: skip
        if problems:
            await _hold(rt, timeline, order, movement, idempotency_key, problems)
            return Held(tuple(problems))
        inserted = await db.raw(
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
            json.dumps(data, default=str),
            db.now(),
        )
        if not inserted:
            # The key was taken meanwhile by a movement on another statement.
            raise DomainError(_conflict(idempotency_key))
        movement["amount"] = str(from_minor(amount_minor, statement.currency))
        await timeline.record(
            order, "payment_recorded", principal, data=movement | {"entry": inserted[0]["id"]}
        )
    await derive_settled(rt, statement)
    return RecordResult(entry_view(inserted[0]), created=True)


async def _entry_by_key(idempotency_key: str) -> dict[str, Any] | None:
    rows = await db.raw("SELECT * FROM ledger_entries WHERE idempotency_key = {}", idempotency_key)
    return rows[0] if rows else None


def _conflict(idempotency_key: str) -> Problem:
    return Problem(
        ErrorCode.IDEMPOTENCY_CONFLICT,
        f"The idempotency key {idempotency_key!r} was already used for another payment movement.",
        "idempotencyKey",
    )


async def _hold(
    rt: Runtime,
    timeline: Timeline,
    order: OrderView,
    movement: dict[str, Any],
    idempotency_key: str,
    problems: list[Problem],
) -> None:
    """Keep a refused movement on the timeline once per key, and open the alert (one
    open per order); the caller holds the statement's lock, so copies queue here."""
    held = await OrderEvent.select(OrderEvent.data).where(
        (OrderEvent.order == order.id) & (OrderEvent.type == HELD)
    )
    keys = {(json.loads(e["data"]) if isinstance(e["data"], str) else e["data"]).get("key")
            for e in held}  # fmt: skip
    if idempotency_key in keys:
        return
    reasons = [{"field": p.field, "code": p.code.value, "message": p.message} for p in problems]
    detail = movement | {"key": idempotency_key, "problems": reasons}
    await timeline.record(order, HELD, SYSTEM, data=detail)
    await alerts.open_alert(rt, order.id, HELD, detail=detail)


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
    result = await record_reported(
        rt,
        statement,
        kind,
        refundable,
        currency=statement.currency,
        idempotency_key=refund_key(method, reference, kind),
        method=method,
        reference=reference,
        principal=principal,
        data=data | {"request": idempotency_key, "status": status},
    )
    if isinstance(result, Held):
        # Another refund took the overpayment while the provider was asked.
        raise DomainError(
            *(
                Problem(
                    p.code,
                    f"{plugin} refunded {refundable} {statement.currency} as {reference}, "
                    f"but the ledger refused it: {p.message} It is kept for a person "
                    f"(alert {HELD}).",
                    "statementNumber",
                )
                for p in result.problems
            )
        )
    return result


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
