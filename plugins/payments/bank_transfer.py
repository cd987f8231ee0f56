"""Bank transfer: the IBAN on the statement, the statement number as the reference, and
reconciliation from imported bank statements (ISO 20022 camt.053 and SWIFT MT940).

Credits whose reference quotes a statement number are recorded in the ledger as
``matched`` (partial and over-payments included); the others are kept for an operator
to match by hand (``bankLines``, ``matchBankLine``).
"""

from __future__ import annotations

import contextlib
import datetime
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

import strawberry
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from ordergraph.plugin_api import (
    OPERATORS,
    PAYLOAD_ERRORS,
    BankCredit,
    Connection,
    DomainError,
    ErrorCode,
    Info,
    PluginInfo,
    Problem,
    SchemaExtension,
    Setting,
    UserError,
    bank_lines_page,
    hookimpl,
    import_bank_credits,
    match_bank_line,
    payload_errors,
    require,
    row_id,
    shown,
)

MAX_FILE = 5_000_000


def _iban(value: str) -> IBAN:
    try:
        return IBAN(value)
    except SchwiftyException as exc:
        raise ValueError(f"{value!r} is not a valid IBAN: {exc}") from None


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        category="payment",
        description="Bank transfer to an IBAN; reconciliation from camt.053 and MT940 files.",
        settings=(
            Setting("iban", str, required=True, parse=_iban, description="Where to pay."),
            Setting("account_holder", str, required=True, description="The account's name."),
            Setting("bic", str, default="", description="Shown when given."),
        ),
    )


@hookimpl
def payment_instructions(settings: dict[str, Any]) -> str:
    iban: IBAN = settings["iban"]
    bic = settings["bic"] or (str(iban.bic) if iban.bic else "")
    return (
        f"Pay by bank transfer to {settings['account_holder']}, IBAN {iban.formatted}"
        + (f" (BIC {bic})" if bic else "")
        + ", quoting the statement number as reference."
    )


# -- Parsing -------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(node: ET.Element, *path: str) -> ET.Element | None:
    """The first descendant along ``path`` of local names, whatever the namespace."""
    current: ET.Element | None = node
    for name in path:
        if current is None:
            return None
        current = next(
            (c for c in current.iter() if _local(c.tag) == name and c is not current), None
        )
    return current


def _text_of(node: ET.Element, *path: str) -> str:
    found = _find(node, *path)
    return (found.text or "").strip() if found is not None else ""


def _account(statement: ET.Element) -> str:
    return _text_of(statement, "Acct", "Id", "IBAN") or _text_of(
        statement, "Acct", "Id", "Othr", "Id"
    )


def parse_camt053(content: str) -> tuple[list[BankCredit], list[Problem]]:
    """The credits (CRDT entries) of an ISO 20022 camt.053 bank-to-customer statement,
    numbered in the file's order ("entry 3"); an entry's missing fields are the core's
    to refuse, so no entry is unreadable."""
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        raise DomainError.of(
            ErrorCode.INVALID_VALUE, f"Not a camt.053 XML file: {exc}.", "content"
        ) from None
    statements = [s for s in root.iter() if _local(s.tag) == "Stmt"]
    if not statements:
        raise DomainError.of(
            ErrorCode.INVALID_VALUE, "Not a camt.053 file: it has no Stmt statement.", "content"
        )
    credits = []
    number = 0
    for statement in statements:
        account = _account(statement)
        for entry in (e for e in statement.iter() if _local(e.tag) == "Ntry"):
            number += 1
            if _text_of(entry, "CdtDbtInd") != "CRDT":
                continue
            amount = next((c for c in entry if _local(c.tag) == "Amt"), None)
            texts = [(t.text or "") for t in entry.iter() if _local(t.tag) in ("Ustrd", "Ref")]
            booked = _text_of(entry, "BookgDt", "Dt") or _text_of(entry, "BookgDt", "DtTm")[:10]
            credits.append(
                BankCredit(
                    where=f"Entry {number}",
                    field=f"entries[{number}]",
                    source="camt053",
                    account=account,
                    booked_on=booked,
                    amount=(amount.text or "") if amount is not None else "",
                    currency=amount.get("Ccy", "") if amount is not None else "",
                    text=" ".join(texts),
                    counterparty=_text_of(entry, "Dbtr", "Nm"),
                )
            )
    return credits, []


_TAG = re.compile(r":(\d{2}[A-Z]?):(.*)", re.DOTALL)
# :61: value date, entry date, credit/debit mark (R: reversal), funds code, amount, and
# the transaction type (S, N or F and three more): the amount is what lies between,
# however it is written, so that the core can refuse it rather than read a part of it.
_STATEMENT_LINE = re.compile(
    r"(?P<value>\d{6})(?P<entry>\d{4})?(?P<mark>RC|RD|C|D)(?P<funds>[A-Z](?=[^A-Z]))?"
    r"(?P<amount>[^A-Z]*)[SNF][A-Z0-9]{3}(?P<rest>.*)",
    re.DOTALL,
)
# Structured :86: (German DFUe format): a transaction code, then ?NN subfields.
_STRUCTURED = re.compile(r"\d{3}\?")
_REMITTANCE = {f"{n:02}" for n in (*range(20, 30), *range(60, 64))}


@dataclass
class _Field:
    tag: str
    line: int
    lines: list[str]


def _mt940_fields(content: str) -> list[_Field]:
    """The tagged fields of the file, with their continuation lines; LF, CRLF and CR end
    a line alike, and anything outside a message (an envelope, blank lines) is skipped."""
    fields: list[_Field] = []
    inside = False
    for number, line in enumerate(re.split(r"\r\n|\r|\n", content), start=1):
        tag = _TAG.match(line)
        if tag:
            fields.append(_Field(tag[1], number, [tag[2]]))
            inside = True
        elif line.rstrip() in ("-", "-}"):
            inside = False
        elif inside and fields:
            fields[-1].lines.append(line)
    return fields


def _mt940_date(value: str, entry: str | None) -> str:
    """The booking date (the entry date, in the year nearest the value date), or the
    text as written when it is not a date (the core refuses it)."""
    try:
        valued = datetime.date(2000 + int(value[:2]), int(value[2:4]), int(value[4:6]))
        if not entry:
            return valued.isoformat()
        month, day = int(entry[:2]), int(entry[2:])
        candidates = []
        for year in (valued.year - 1, valued.year, valued.year + 1):
            with contextlib.suppress(ValueError):
                candidates.append(datetime.date(year, month, day))
        if not candidates:
            raise ValueError
        return min(candidates, key=lambda d: abs(d - valued)).isoformat()
    except ValueError:
        return value + (entry or "")


def _details(lines: list[str]) -> tuple[str, str]:
    """(remittance text, counterparty) of a :86: field."""
    joined = "".join(lines)
    if not _STRUCTURED.match(joined):
        return " ".join(lines), ""
    # Subfields may be wrapped anywhere: the lines are joined before they are split.
    parts = re.split(r"\?(\d{2})", joined)
    subfields = list(zip(parts[1::2], parts[2::2], strict=True))
    text = " ".join(v for k, v in subfields if k in _REMITTANCE)
    return text, "".join(v for k, v in subfields if k in ("32", "33"))


def parse_mt940(content: str) -> tuple[list[BankCredit], list[Problem]]:
    """The credits of a SWIFT MT940 customer statement, named by their :61: line, and
    the :61: lines that cannot be read."""
    fields = _mt940_fields(content)
    if not any(f.tag == "20" for f in fields):
        raise DomainError.of(
            ErrorCode.INVALID_VALUE, "Not an MT940 file: it has no :20: statement.", "content"
        )
    credits: list[BankCredit] = []
    problems: list[Problem] = []
    account = currency = ""
    for i, field in enumerate(fields):
        if field.tag == "20":
            account = currency = ""
        elif field.tag == "25":
            account = field.lines[0]
        elif field.tag in ("60F", "60M"):
            currency = field.lines[0][7:10]
        elif field.tag == "61":
            line = _STATEMENT_LINE.fullmatch(field.lines[0])
            if line is None:
                problems.append(
                    Problem(
                        ErrorCode.INVALID_VALUE,
                        f"Line {field.line}: {shown(field.lines[0])!r} is not a :61: statement "
                        "line (value date, C or D, amount, transaction type).",
                        f"lines[{field.line}]",
                    )
                )
                continue
            if line["mark"] not in ("C", "RD"):
                continue
            following = fields[i + 1] if i + 1 < len(fields) else None
            text, counterparty = _details(
                following.lines if following and following.tag == "86" else []
            )
            credits.append(
                BankCredit(
                    where=f"Line {field.line}",
                    field=f"lines[{field.line}]",
                    source="mt940",
                    account=account,
                    booked_on=_mt940_date(line["value"], line["entry"]),
                    amount=line["amount"],
                    currency=currency,
                    text=" ".join([text, *field.lines[1:]]),
                    counterparty=counterparty,
                    decimal_mark=",",
                )
            )
    return credits, problems


# -- GraphQL -------------------------------------------------------------------------------


@strawberry.enum(description="The format of a bank statement file.")
class BankFileFormat(Enum):
    CAMT053 = strawberry.enum_value("camt053", description="ISO 20022 camt.053 (XML).")
    MT940 = strawberry.enum_value("mt940", description="SWIFT MT940 (text).")


@strawberry.enum(description="Whether an imported bank line paid a statement.")
class BankLineState(Enum):
    MATCHED = strawberry.enum_value(
        "matched", description="Recorded on a statement's ledger as matched."
    )
    UNMATCHED = strawberry.enum_value(
        "unmatched", description="Its reference named no statement: match it by hand."
    )


@strawberry.type(description="A credit line of an imported bank statement (staff).")
class BankLine:
    id: strawberry.ID = strawberry.field(description="The line's id; matchBankLine takes it.")
    source: str = strawberry.field(description="The file it came from.")
    booked_on: str = strawberry.field(
        description="The booking date, YYYY-MM-DD, as the bank gave it."
    )
    amount: Decimal = strawberry.field(description="The amount credited.")
    currency: str = strawberry.field(description="ISO 4217 currency code.")
    text: str = strawberry.field(
        description="The remittance text, where the statement number should be."
    )
    counterparty: str = strawberry.field(description="Who paid, as the bank named them.")
    state: BankLineState = strawberry.field(description="Whether it paid a statement.")
    note: str = strawberry.field(description="What it did: paid in full, partial, overpaid.")


def _line(row: dict[str, Any]) -> BankLine:
    return BankLine(
        id=strawberry.ID(str(row["id"])),
        source=row["source"],
        booked_on=row["booked_on"],
        amount=row["amount"],
        currency=row["currency"],
        text=row["text"],
        counterparty=row["counterparty"],
        state=BankLineState(row["state"]),
        note=row["note"],
    )


@strawberry.type(description="The answer to importBankStatement.")
class BankImportPayload:
    imported: int = strawberry.field(default=0, description="New credit lines.")
    already_imported: int = strawberry.field(default=0, description="Seen in an earlier import.")
    matched: int = strawberry.field(default=0, description="New lines matched to a statement.")
    unmatched: int = strawberry.field(
        default=0, description="New lines left for a person to match."
    )
    look_alike: int = strawberry.field(
        default=0,
        description="New lines that look the same as another one (account, date, amount, "
        "counterparty, text): left unmatched for a person, never paid automatically.",
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description=PAYLOAD_ERRORS,
    )


@strawberry.type(description="The answer to matchBankLine.")
class BankLinePayload:
    line: BankLine | None = strawberry.field(
        default=None, description="The line after the match; null when errors is not empty."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description=PAYLOAD_ERRORS,
    )


@strawberry.type
class BankQuery:
    @strawberry.field(description="Imported bank lines, newest first (staff).")
    async def bank_lines(
        self,
        info: Info,
        state: Annotated[
            BankLineState | None,
            strawberry.argument(description="Only lines in this state; null: every line."),
        ] = BankLineState.UNMATCHED,
        first: Annotated[
            int | None,
            strawberry.argument(
                description="How many lines the page holds: 1 to 100 (default 20); another "
                "number is refused with OUT_OF_RANGE."
            ),
        ] = None,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="The cursor after which the page starts: a cursor this list "
                "handed out (endCursor), else INVALID_CURSOR."
            ),
        ] = None,
    ) -> Connection[BankLine]:
        principal = require(info, *OPERATORS)
        return await bank_lines_page(state.value if state else None, principal, first, after, _line)


@strawberry.type
class BankMutation:
    @strawberry.mutation(description="Import a bank statement file and match its credits.")
    @payload_errors
    async def import_bank_statement(
        self,
        info: Info,
        format: Annotated[BankFileFormat, strawberry.argument(description="The file's format.")],
        content: Annotated[
            str, strawberry.argument(description="The file's text, at most 5,000,000 characters.")
        ],
    ) -> BankImportPayload:
        principal = require(info, *OPERATORS)
        if len(content) > MAX_FILE:
            raise DomainError.of(
                ErrorCode.INVALID_VALUE, f"A file has at most {MAX_FILE} characters.", "content"
            )
        parse = parse_camt053 if format == BankFileFormat.CAMT053 else parse_mt940
        credits, unreadable = parse(content)
        summary = await import_bank_credits(info.context.rt, credits, principal, unreadable)
        return BankImportPayload(
            imported=summary.imported,
            already_imported=summary.already_imported,
            matched=summary.matched,
            unmatched=summary.unmatched,
            look_alike=summary.look_alike,
        )

    @strawberry.mutation(description="Match an unmatched bank line to a statement by hand.")
    @payload_errors
    async def match_bank_line(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID, strawberry.argument(description="The line's id (BankLine.id).")
        ],
        statement_number: Annotated[str, strawberry.argument(description="The statement it pays.")],
    ) -> BankLinePayload:
        principal = require(info, *OPERATORS)
        line_id = row_id(id, "bank line")
        row = await match_bank_line(info.context.rt, line_id, statement_number, principal)
        return BankLinePayload(line=_line(row))


@hookimpl
def graphql_schema() -> SchemaExtension:
    return SchemaExtension(query=(BankQuery,), mutation=(BankMutation,))
