"""Bank reconciliation: credits from imported bank statements, matched to settlement
statements by the statement number in their reference, recorded in the ledger.

A line whose reference names a statement of the same currency is recorded as a
``matched`` entry of its amount, whatever that is: the ledger then shows the statement
partially paid, paid or overpaid, and the line's note says which. A line that names no
statement is kept ``unmatched`` for an operator to match by hand (``match_line``).
Importing the same file again changes nothing: each line has a unique key, and its
ledger entry the idempotency key ``bank:KEY``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ordergraph.core import db
from ordergraph.core.auth import Principal
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.money import from_minor, to_minor
from ordergraph.stages.settlement.payments import balance_of, record_entry
from ordergraph.stages.settlement.statements import StatementView, statement_by_number
from ordergraph.stages.settlement.tables import BankLine

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime

METHOD = "bank_transfer"
_NUMBER = re.compile(r"\b([A-Z0-9]{1,12})[- ]?(\d{4})[- ]?(\d{6})\b")


@dataclass(frozen=True)
class BankCredit:
    """One incoming payment as a bank statement reports it."""

    key: str
    source: str
    booked_on: str
    amount: Decimal
    currency: str
    text: str
    counterparty: str = ""


@dataclass(frozen=True)
class ImportSummary:
    imported: int
    already_imported: int
    matched: int
    unmatched: int


def statement_numbers_in(text: str) -> list[str]:
    """Statement numbers quoted in a payment's reference, tolerating lost dashes."""
    return [f"{p}-{y}-{n}" for p, y, n in _NUMBER.findall(text.upper())]


async def _statement_for(text: str, currency: str) -> StatementView | None:
    for number in statement_numbers_in(text):
        found = await statement_by_number(number)
        if found is not None and found.currency == currency:
            return found
    return None


async def _record(
    rt: Runtime, line: dict[str, Any], statement: StatementView, principal: Principal
) -> str:
    """Record the line on the statement; return what it did to it (the line's note)."""
    paid = from_minor(line["amount_minor"], line["currency"])
    await record_entry(
        rt,
        statement,
        "matched",
        paid,
        idempotency_key=f"bank:{line['line_key']}",
        method=METHOD,
        principal=principal,
        reference=line["text"][:200],
        data={"bank_line": line["id"], "booked_on": line["booked_on"]},
    )
    balance = await balance_of(statement)
    note = {"paid": "paid in full", "overpaid": f"overpaid by {balance.overpaid}",
            "partially_paid": f"partial: {balance.outstanding} outstanding"}  # fmt: skip
    return note.get(balance.state, balance.state)


async def import_credits(
    rt: Runtime, credits: list[BankCredit], principal: Principal
) -> ImportSummary:
    imported = already = matched = 0
    for credit in credits:
        if credit.amount <= 0:
            continue
        rows = await db.raw(
            "INSERT INTO bank_lines (line_key, source, booked_on, amount_minor, currency, text, "
            "counterparty, state, note, imported_at) "
            "VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}) "
            "ON CONFLICT (line_key) DO NOTHING RETURNING *",
            credit.key[:200],
            credit.source,
            credit.booked_on,
            to_minor(credit.amount, credit.currency),
            credit.currency,
            credit.text,
            credit.counterparty[:200],
            "unmatched",
            "",
            db.now(),
        )
        if not rows:
            already += 1
            continue
        imported += 1
        line = rows[0]
        statement = await _statement_for(credit.text, credit.currency)
        if statement is None:
            continue
        note = await _record(rt, line, statement, principal)
        await BankLine.update(
            {BankLine.state: "matched", BankLine.statement: statement.id, BankLine.note: note}
        ).where(BankLine.id == line["id"])
        matched += 1
    return ImportSummary(imported, already, matched, imported - matched)


async def match_line(
    rt: Runtime, line_id: int, statement_number: str, principal: Principal
) -> dict[str, Any]:
    """An operator matches an unmatched line to a statement by hand."""
    line = await BankLine.select().where(BankLine.id == line_id).first()
    if line is None:
        raise DomainError.of(ErrorCode.NOT_FOUND, f"There is no bank line {line_id}.", "id")
    if line["state"] != "unmatched":
        raise DomainError.of(ErrorCode.ALREADY_DONE, f"Bank line {line_id} is matched.", "id")
    statement = await statement_by_number(statement_number)
    if statement is None or statement.currency != line["currency"]:
        raise DomainError.of(
            ErrorCode.NOT_FOUND,
            f"There is no {line['currency']} statement {statement_number}.",
            "statementNumber",
        )
    # The entry's key is the line's: matching it twice at once to two statements records
    # one and refuses the other (IDEMPOTENCY_CONFLICT).
    note = await _record(rt, line, statement, principal)
    rows = await (
        BankLine.update(
            {
                BankLine.state: "matched",
                BankLine.statement: statement.id,
                BankLine.note: f"by hand: {note}",
            }
        )
        .where(BankLine.id == line_id)
        .returning(*BankLine.all_columns())
    )
    return line_view(rows[0])


def line_view(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "amount": from_minor(row["amount_minor"], row["currency"])}


async def bank_lines(state: str | None, limit: int = 200) -> list[dict[str, Any]]:
    """Imported lines in ``state`` (all when None), newest first."""
    query = BankLine.select().order_by(BankLine.id, ascending=False).limit(limit)
    if state is not None:
        query = query.where(BankLine.state == state)
    return [line_view(row) for row in await query]
