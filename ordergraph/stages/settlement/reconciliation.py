"""Bank reconciliation: credits from imported bank statements, matched to settlement
statements by the statement number in their reference, recorded in the ledger.

A line whose reference names a statement of the same currency is recorded as a
``matched`` entry of its amount, whatever that is: the ledger then shows the statement
partially paid, paid or overpaid, and the line's note says which. A line that names no
statement is kept ``unmatched`` for an operator to match by hand (``match_line``).

Every line of a file is checked before any is stored (``checked_lines``): a file with a
bad amount, currency, date or text is refused whole, each problem named by its line.

A bank line's identity survives re-exports of its file: it is derived from the account,
booking date, amount, currency, counterparty and remittance text, normalized (``identity``),
not from the file's bytes nor from a bank reference a re-export may drop. The n-th line of
one identity in a file is the same line as the n-th of an earlier import of that day, so
importing a file again, pretty-printed or re-wrapped, changes nothing. A line beyond those
seen before looks like a line already recorded: it is kept ``unmatched`` for a person,
never paid automatically.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from piccolo.custom_types import Combinable

from ordergraph.core import db, scope
from ordergraph.core.auth import Principal
from ordergraph.core.errors import DomainError, ErrorCode, Problem
from ordergraph.core.limits import TextLimit, shown
from ordergraph.core.money import from_minor, is_iso_currency, to_minor
from ordergraph.core.tables import Order
from ordergraph.stages.settlement.limits import BANK_ACCOUNT, BANK_COUNTERPARTY, BANK_TEXT
from ordergraph.stages.settlement.payments import balance_of, record_entry
from ordergraph.stages.settlement.statements import StatementView, statement_by_number
from ordergraph.stages.settlement.tables import BankLine, Statement

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime

METHOD = "bank_transfer"
_NUMBER = re.compile(r"\b([A-Z0-9]{1,12})[- ]?(\d{4})[- ]?(\d{6})\b")
# The problems of a refused file listed at most (a corrupt file may have one per line).
MAX_PROBLEMS = 100
# Line breaks, tabs and runs of spaces in a bank text are layout (wrapping, indentation).
_LAYOUT = re.compile(r"[ \t\r\n]+")


@dataclass(frozen=True)
class BankCredit:
    """One incoming payment as a bank statement file writes it. The core checks every
    field; the format's parser only finds them."""

    where: str
    """How a person finds the line in the file: "entry 3", "line 17"."""
    field: str
    """The prefix of its errors' fields: "entries[3]", "lines[17]"."""
    source: str
    account: str
    booked_on: str
    """YYYY-MM-DD."""
    amount: str
    """As written, unsigned, with ``decimal_mark``: "12.50" (camt.053), "12,50" (MT940)."""
    currency: str
    text: str
    counterparty: str = ""
    decimal_mark: str = "."


@dataclass(frozen=True)
class CheckedLine:
    """A credit whose fields passed the checks, in the form it is stored."""

    source: str
    booked_on: str
    amount_minor: int
    currency: str
    text: str
    counterparty: str
    identity: str


@dataclass(frozen=True)
class ImportSummary:
    imported: int
    already_imported: int
    matched: int
    unmatched: int
    look_alike: int
    """New lines that look the same as another one, left unmatched for a person."""


def _flat(value: str) -> str:
    return _LAYOUT.sub(" ", value).strip()


def _comparable(value: str) -> str:
    """``value`` as two exports of the same line agree on it: NFC, case folded, and
    without any whitespace (a re-wrap may split a word or join two)."""
    return "".join(unicodedata.normalize("NFC", value.casefold()).split())


def identity(
    account: str, booked_on: str, amount_minor: int, currency: str, counterparty: str, text: str
) -> str:
    """What makes two bank lines the same line, whatever file or layout they came in."""
    parts = [_comparable(account), booked_on, amount_minor, currency,
             _comparable(counterparty), _comparable(text)]  # fmt: skip
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _amount_minor(credit: BankCredit, problems: list[Problem]) -> int | None:
    field = f"{credit.field}.amount"
    mark = re.escape(credit.decimal_mark)
    written = credit.amount.strip()
    if not re.fullmatch(rf"[0-9]+({mark}[0-9]*)?|{mark}[0-9]+", written):
        problems.append(
            Problem(
                ErrorCode.INVALID_VALUE,
                f"{credit.where}: the amount {shown(written)!r} is not a decimal amount.",
                field,
            )
        )
        return None
    try:
        return to_minor(Decimal(written.replace(credit.decimal_mark, ".")), credit.currency)
    except ValueError as exc:
        problems.append(Problem(ErrorCode.INVALID_VALUE, f"{credit.where}: {exc}.", field))
        return None


def _text(
    credit: BankCredit, value: str, limit: TextLimit, name: str, problems: list[Problem]
) -> str:
    flat = _flat(value)
    problem = limit.problem(flat, f"{credit.field}.{name}")
    if problem is not None:
        problems.append(Problem(problem.code, f"{credit.where}: {problem.message}", problem.field))
    return flat


def _checked(credit: BankCredit, problems: list[Problem]) -> CheckedLine | None:
    """The line as stored, or None (with ``problems`` appended)."""
    before = len(problems)
    if not credit.amount.strip():
        problems.append(
            Problem(
                ErrorCode.REQUIRED,
                f"{credit.where}: the amount is missing.",
                f"{credit.field}.amount",
            )
        )
    elif not credit.currency:
        problems.append(
            Problem(
                ErrorCode.REQUIRED,
                f"{credit.where}: the currency is missing.",
                f"{credit.field}.currency",
            )
        )
    elif not is_iso_currency(credit.currency):
        problems.append(
            Problem(
                ErrorCode.INVALID_CURRENCY,
                f"{credit.where}: {shown(credit.currency)!r} is not an ISO 4217 currency code.",
                f"{credit.field}.currency",
            )
        )
    amount_minor = _amount_minor(credit, problems) if len(problems) == before else None
    try:
        if len(credit.booked_on) != 10:
            raise ValueError
        datetime.date.fromisoformat(credit.booked_on)
    except ValueError:
        problems.append(
            Problem(
                ErrorCode.INVALID_VALUE if credit.booked_on else ErrorCode.REQUIRED,
                f"{credit.where}: the booking date {shown(credit.booked_on)!r} is not a date.",
                f"{credit.field}.bookingDate",
            )
        )
    account = _text(credit, credit.account, BANK_ACCOUNT, "account", problems)
    text = _text(credit, credit.text, BANK_TEXT, "text", problems)
    counterparty = _text(credit, credit.counterparty, BANK_COUNTERPARTY, "counterparty", problems)
    if len(problems) > before or amount_minor is None:
        return None
    key = identity(account, credit.booked_on, amount_minor, credit.currency, counterparty, text)
    return CheckedLine(credit.source, credit.booked_on, amount_minor, credit.currency, text,
                       counterparty, key)  # fmt: skip


def checked_lines(
    credits: list[BankCredit], unreadable: Sequence[Problem] = ()
) -> list[CheckedLine]:
    """The credits of a file as stored (zero amounts left out); any problem, or a line
    the parser could not read (``unreadable``), refuses the file with every problem."""
    problems = list(unreadable)
    lines = [line for credit in credits if (line := _checked(credit, problems)) is not None]
    if len(problems) > MAX_PROBLEMS:
        more = len(problems) - MAX_PROBLEMS
        problems[MAX_PROBLEMS:] = [
            Problem(ErrorCode.INVALID_VALUE, f"And {more} more problems.", "content")
        ]
    if problems:
        raise DomainError(*problems)
    return [line for line in lines if line.amount_minor > 0]


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
    rt: Runtime,
    credits: list[BankCredit],
    principal: Principal,
    unreadable: Sequence[Problem] = (),
) -> ImportSummary:
    """Store the new lines of a file and match them; nothing is stored when a line is bad.

    Each line is stored under the key ``IDENTITY:N``, N counting its identity's lines in
    this file: a re-import finds every key taken. Only a first occurrence is matched; a
    later one looks like it and waits for a person.
    """
    lines = checked_lines(credits, unreadable)
    imported = already = matched = look_alike = 0
    occurrences: Counter[str] = Counter()
    for line in lines:
        occurrences[line.identity] += 1
        occurrence = occurrences[line.identity]
        note = ""
        if occurrence > 1:
            first = (
                await BankLine.select(BankLine.id)
                .where(BankLine.line_key == f"{line.identity}:1")
                .first()
            )
            assert first is not None  # stored by this import or an earlier one
            note = (
                f"looks the same as bank line {first['id']} (account, date, amount, "
                "counterparty and text): match it by hand if it is another payment"
            )
        rows = await db.raw(
            "INSERT INTO bank_lines (line_key, source, booked_on, amount_minor, currency, text, "
            "counterparty, state, note, imported_at) "
            "VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}) "
            "ON CONFLICT (line_key) DO NOTHING RETURNING *",
            f"{line.identity}:{occurrence}",
            line.source,
            line.booked_on,
            line.amount_minor,
            line.currency,
            line.text,
            line.counterparty,
            "unmatched",
            note,
            db.now(),
        )
        if not rows:
            already += 1
            continue
        imported += 1
        if occurrence > 1:
            look_alike += 1
            continue
        row = rows[0]
        statement = await _statement_for(line.text, line.currency)
        if statement is None:
            continue
        note = await _record(rt, row, statement, principal)
        await BankLine.update(
            {BankLine.state: "matched", BankLine.statement: statement.id, BankLine.note: note}
        ).where(BankLine.id == row["id"])
        matched += 1
    return ImportSummary(imported, already, matched, imported - matched, look_alike)


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
    if (
        statement is None
        or statement.currency != line["currency"]
        or not await scope.may_access_order(principal, statement.order_id)
    ):
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


def bank_line_filters(state: str | None, principal: Principal) -> list[Combinable]:
    """Where-clauses on bank lines that keep those in ``state`` (all when None) that
    ``principal`` may see: a line matched to a statement only when its order is in
    their scope."""
    clauses: list[Combinable] = []
    if state is not None:
        clauses.append(BankLine.state == state)
    visible = scope.visible_orders(principal)
    if visible:
        statements = Statement.select(Statement.id).where(
            Statement.order.is_in(Order.select(Order.id).where(*visible))
        )
        clauses.append(BankLine.statement.is_null() | BankLine.statement.is_in(statements))
    return clauses
