"""Property-based fuzzing of bank statement imports: no file may crash the import, store
an amount other than the one it states, or pay a line twice.

hypothesis writes camt.053 and MT940 files of random credits (amounts as banks and
attackers write them: NaN, 1e30, 1.005, twenty digits, text; texts with NUL and control
characters; unknown currencies; with and without bank references), some of them then
mutated at random. Each goes through the real app's ``importBankStatement``. The
properties: every answer is data, never a GraphQL error; a refused file stores nothing;
an accepted file stores each new line with exactly the amount it states; and the same
file exported again (pretty-printed XML, CRLF instead of LF, :86: wrapped elsewhere)
imports nothing and pays nothing.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.sax.saxutils import escape

import pytest
from conftest import Api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bank_transfer import BANK, IMPORT
from test_settlement import YEAR, confirmed, delivered, shop

from ordergraph.core.money import to_minor
from ordergraph.stages.settlement.tables import BankLine, LedgerEntry

EXAMPLES_PER_BACKEND = 150


@dataclass(frozen=True)
class Credit:
    reference: str
    kind: str
    amount: str
    """With a decimal point; the MT940 writer turns it into a comma."""
    currency: str
    text: str


@dataclass(repr=False)
class Bank:
    api: Api
    number: str
    """A statement number the credits may quote, to be matched."""


@pytest.fixture
async def bank(database_url: str) -> AsyncIterator[Bank]:
    async with shop(database_url, extra=BANK, shipping_charge="0") as api:
        order_id = await delivered(api, "FUZZ-1", [{"sku": "MUG", "quantity": 2}])
        number = (await confirmed(api, order_id))["statement"]["number"]
        yield Bank(api, number)


# Most credits are good, so that most files are accepted and their re-export tried; a
# few are bad in one of the ways seen in the wild, which refuses their whole file.
GOOD_AMOUNTS = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**6), places=2)
BAD_AMOUNTS = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1.005", "1e30", "-5.00", "", "0.00",
                     "12345678901234567890.00", "123456789012345.67", " 7.5 ", ".5", "3."]),
    st.from_regex(r"[0-9]{1,22}(\.[0-9]{0,4})?", fullmatch=True),
    st.text(max_size=12),
)  # fmt: skip
AMOUNTS = st.one_of(GOOD_AMOUNTS.map(str), GOOD_AMOUNTS.map(str), BAD_AMOUNTS)
GOOD_TEXTS = st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=60)
TEXTS = st.one_of(
    GOOD_TEXTS,
    GOOD_TEXTS,
    st.text(max_size=60),
    st.sampled_from(["a\x00b", "tab\there", "C1 \x85 control", "x" * 300, "Ünïcödé"]),
)
CURRENCIES = st.sampled_from(["EUR"] * 8 + ["JPY", "XYZ", ""])


@st.composite
def credits(draw: st.DrawFn, number: str) -> list[Credit]:
    text = st.one_of(TEXTS, st.just(f"Invoice {number}"), st.just(number.lower()))
    return draw(
        st.lists(
            st.builds(
                Credit,
                reference=st.one_of(st.just(""), st.from_regex(r"[A-Z0-9]{1,16}", fullmatch=True)),
                kind=st.sampled_from(["CRDT", "CRDT", "CRDT", "DBIT"]),
                amount=AMOUNTS,
                currency=CURRENCIES,
                text=text,
            ),
            min_size=1,
            max_size=4,
        )
    )


def camt053(entries: list[Credit]) -> str:
    """One statement per currency, as a bank writes them; the text is XML-escaped, so
    characters XML cannot hold make the file unreadable, which is refused."""
    body = "".join(
        f"<Ntry>{c.reference and f'<NtryRef>{escape(c.reference)}</NtryRef>'}"
        f'<Amt Ccy="{c.currency}">{escape(c.amount)}</Amt><CdtDbtInd>{c.kind}</CdtDbtInd>'
        f"<BookgDt><Dt>{YEAR}-12-01</Dt></BookgDt><NtryDtls><TxDtls><RltdPties><Dbtr>"
        f"<Nm>Ada Lovelace</Nm></Dbtr></RltdPties><RmtInf><Ustrd>{escape(c.text)}</Ustrd>"
        "</RmtInf></TxDtls></NtryDtls></Ntry>"
        for c in entries
    )
    return (
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
        f"<Stmt><Id>S1</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>{body}"
        "</Stmt></BkToCstmrStmt></Document>"
    )


def pretty(content: str) -> str:
    root = ET.fromstring(content)
    ET.indent(root, space="  ")
    for node in root.iter():
        if node.tag.endswith("Ustrd") and node.text:
            node.text = "\n      " + node.text.replace(" ", "\n      ", 1) + "\n    "
    return ET.tostring(root, encoding="unicode")


def mt940(entries: list[Credit], currency: str, *, newline: str, wrap: int) -> str:
    """One statement in ``currency``; the :86: purpose cut into lines of ``wrap``."""
    yy = str(YEAR)[2:]
    lines = [":20:STMT1", ":25:DE89370400440532013000", ":28C:00001/001",
             f":60F:C{yy}1201{currency}0,00"]  # fmt: skip
    for c in entries:
        mark = "C" if c.kind == "CRDT" else "D"
        reference = f"//{c.reference}" if c.reference else ""
        purpose = f":86:166?00GUTSCHRIFT?20{' '.join(c.text.splitlines())}?32Ada Lovelace"
        lines += [f":61:{yy}12011201{mark}{c.amount.replace('.', ',')}NTRFNONREF{reference}"]
        lines += [purpose[i : i + wrap] for i in range(0, len(purpose), wrap)]
    return newline.join([*lines, f":62F:C{yy}1201{currency}0,00", "-"]) + newline


def stated_minor(credit: Credit, currency: str) -> int | None:
    """The amount in minor units the credit states, when it is one to store."""
    try:
        return to_minor(Decimal(credit.amount.strip()), currency)
    except (InvalidOperation, ValueError):
        return None


async def import_file(api: Api, format: str, content: str) -> dict[str, Any]:
    body = await api.gql(IMPORT, {"format": format, "content": content})
    assert "errors" not in body, body["errors"]
    return body["data"]["importBankStatement"]


async def stored() -> tuple[int, int, int]:
    """(bank lines, ledger entries, the last bank line's id)."""
    last = await BankLine.select(BankLine.id).order_by(BankLine.id, ascending=False).first()
    return await BankLine.count(), await LedgerEntry.count(), last["id"] if last else 0


@settings(
    max_examples=EXAMPLES_PER_BACKEND,
    derandomize=bool(os.environ.get("CI")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_no_bank_file_crashes_truncates_or_pays_twice(
    bank: Bank, data: st.DataObject
) -> None:
    entries = data.draw(credits(bank.number), label="credits")
    format = data.draw(st.sampled_from(["CAMT053", "MT940"]), label="format")
    currency = entries[0].currency
    if format == "CAMT053":
        content = camt053(entries)
    else:
        # An MT940 statement has one currency, and its lines hold no line breaks.
        entries = [Credit(c.reference, c.kind, c.amount, currency, c.text) for c in entries]
        entries = [c for c in entries if not any(ch in c.amount for ch in "\r\n:")]
        content = mt940(entries, currency, newline="\n", wrap=data.draw(st.integers(20, 65)))
    mutated = data.draw(st.sampled_from([False, False, True]), label="mutated")
    if mutated:
        start = data.draw(st.integers(0, len(content)), label="start")
        end = data.draw(st.integers(start, min(len(content), start + 20)), label="end")
        content = content[:start] + data.draw(st.text(max_size=10), label="insert") + content[end:]
    before = await stored()

    result = await import_file(bank.api, format, content)

    after = await stored()
    if result["errors"]:
        assert after[:2] == before[:2], "a refused file stored something"
        return
    # An MT940 amount field holding letters may be read as a shorter amount followed by
    # the transaction type, as the file then says: only decimals written as such count.
    if mutated or (format == "MT940" and any(re.search("[A-Z]", c.amount) for c in entries)):
        return
    new = [row["amount_minor"] for row in await BankLine.select().where(BankLine.id > before[2])]
    credited = [c for c in entries if c.kind == "CRDT"]
    stated = Counter(stated_minor(c, c.currency) for c in credited)
    assert not Counter(new) - stated, "a line was stored with another amount than its file's"
    assert result["imported"] + result["alreadyImported"] == sum(
        n for minor, n in stated.items() if minor
    )

    again = (
        pretty(content)
        if format == "CAMT053"
        else mt940(entries, currency, newline="\r\n", wrap=data.draw(st.integers(20, 65)))
    )
    reimport = await import_file(bank.api, format, again)
    assert reimport["errors"] == []
    assert (reimport["imported"], reimport["matched"]) == (0, 0)
    assert await stored() == after
