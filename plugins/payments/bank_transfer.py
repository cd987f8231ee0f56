"""Bank transfer: the IBAN on the statement, the statement number as the reference, and
reconciliation from imported bank statements (ISO 20022 camt.053 and SWIFT MT940).

Credits whose reference quotes a statement number are recorded in the ledger as
``matched`` (partial and over-payments included); the others are kept for an operator
to match by hand (``bankLines``, ``matchBankLine``).
"""

from __future__ import annotations

import hashlib
import io
import re
import xml.etree.ElementTree as ET
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

import mt940
import strawberry
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from ordergraph.plugin_api import (
    OPERATORS,
    BankCredit,
    DomainError,
    ErrorCode,
    Info,
    PluginInfo,
    SchemaExtension,
    Setting,
    UserError,
    bank_lines,
    hookimpl,
    import_bank_credits,
    match_bank_line,
    require,
    user_errors,
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


def parse_camt053(content: str) -> list[BankCredit]:
    """The credits (CRDT entries) of an ISO 20022 camt.053 bank-to-customer statement."""
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        raise DomainError.of(
            ErrorCode.INVALID_VALUE, f"Not a camt.053 XML file: {exc}.", "content"
        ) from None
    credits = []
    for entry in (e for e in root.iter() if _local(e.tag) == "Ntry"):
        if _text_of(entry, "CdtDbtInd") != "CRDT":
            continue
        amount_node = next(c for c in entry if _local(c.tag) == "Amt")
        texts = [(t.text or "").strip() for t in entry.iter() if _local(t.tag) in ("Ustrd", "Ref")]
        reference = _text_of(entry, "AcctSvcrRef") or _text_of(entry, "NtryRef")
        booked = _text_of(entry, "BookgDt", "Dt") or _text_of(entry, "BookgDt", "DtTm")[:10]
        key = reference or hashlib.sha256(ET.tostring(entry)).hexdigest()
        credits.append(
            BankCredit(
                key=f"camt053:{key}",
                source="camt053",
                booked_on=booked,
                amount=Decimal(amount_node.text.strip()),
                currency=amount_node.get("Ccy", ""),
                text=" ".join(t for t in texts if t),
                counterparty=_text_of(entry, "Dbtr", "Nm"),
            )
        )
    return credits


def parse_mt940(content: str) -> list[BankCredit]:
    """The credits of a SWIFT MT940 customer statement."""
    try:
        statements = mt940.MT940(io.StringIO(content)).statements
    except (AttributeError, ValueError, InvalidOperation, IndexError) as exc:
        raise DomainError.of(
            ErrorCode.INVALID_VALUE, f"Not an MT940 file: {exc}.", "content"
        ) from None
    credits = []
    for statement in statements:
        currency = statement.start_balance.currency if statement.start_balance else ""
        for t in statement.transactions:
            if t.amount <= 0:
                continue
            details = (t.description or "") + (t.additional_data or "")
            unique = (
                t.institution_reference
                or hashlib.sha256(
                    f"{statement.account}|{t.date}|{t.amount}|{details}".encode()
                ).hexdigest()
            )
            credits.append(
                BankCredit(
                    key=f"mt940:{statement.account.strip()}:{unique}",
                    source="mt940",
                    booked_on=(t.booking or t.date).isoformat(),
                    amount=t.amount,
                    currency=currency,
                    # Structured :86: purposes separate their subfields with ?NN.
                    text=" ".join(re.sub(r"\?\d{2}", " ", details).split()),
                )
            )
    return credits


# -- GraphQL -------------------------------------------------------------------------------


@strawberry.enum
class BankFileFormat(Enum):
    CAMT053 = "camt053"
    MT940 = "mt940"


@strawberry.type
class BankLine:
    id: strawberry.ID
    source: str
    booked_on: str
    amount: Decimal
    currency: str
    text: str
    counterparty: str
    state: str = strawberry.field(description="matched or unmatched.")
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
        state=row["state"],
        note=row["note"],
    )


@strawberry.type
class BankImportPayload:
    imported: int = 0
    already_imported: int = strawberry.field(default=0, description="Seen in an earlier import.")
    matched: int = 0
    unmatched: int = 0
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class BankLinePayload:
    line: BankLine | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class BankQuery:
    @strawberry.field(description="Imported bank lines, newest first (staff).")
    async def bank_lines(self, info: Info, state: str | None = "unmatched") -> list[BankLine]:
        principal = require(info, *OPERATORS)
        return [_line(row) for row in await bank_lines(state, principal)]


@strawberry.type
class BankMutation:
    @strawberry.mutation(description="Import a bank statement file and match its credits.")
    async def import_bank_statement(
        self, info: Info, format: BankFileFormat, content: str
    ) -> BankImportPayload:
        principal = require(info, *OPERATORS)
        try:
            if len(content) > MAX_FILE:
                raise DomainError.of(
                    ErrorCode.INVALID_VALUE, f"A file has at most {MAX_FILE} characters.", "content"
                )
            parse = parse_camt053 if format == BankFileFormat.CAMT053 else parse_mt940
            summary = await import_bank_credits(info.context.rt, parse(content), principal)
        except DomainError as error:
            return BankImportPayload(errors=user_errors(error))
        return BankImportPayload(
            imported=summary.imported,
            already_imported=summary.already_imported,
            matched=summary.matched,
            unmatched=summary.unmatched,
        )

    @strawberry.mutation(description="Match an unmatched bank line to a statement by hand.")
    async def match_bank_line(
        self, info: Info, id: strawberry.ID, statement_number: str
    ) -> BankLinePayload:
        principal = require(info, *OPERATORS)
        try:
            if not id.isdigit():
                raise DomainError.of(ErrorCode.NOT_FOUND, f"There is no bank line {id}.", "id")
            row = await match_bank_line(info.context.rt, int(id), statement_number, principal)
        except DomainError as error:
            return BankLinePayload(errors=user_errors(error))
        return BankLinePayload(line=_line(row))


@hookimpl
def graphql_schema() -> SchemaExtension:
    return SchemaExtension(query=(BankQuery,), mutation=(BankMutation,))
