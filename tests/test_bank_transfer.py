"""Bank transfer: instructions with a validated IBAN, reconciliation from camt.053 and
MT940 files, partial and over-payments, unmatched lines matched by hand."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from conftest import Api, make_settings, serve_api
from test_settlement import YEAR, confirmed, delivered, read, shop

from ordergraph.app import create_app
from ordergraph.core.plugins import PluginConfigError
from ordergraph.stages.settlement.tables import LedgerEntry
from plugins.payments import bank_transfer

BANK = {"bank_transfer": bank_transfer}
IMPORT = """
mutation($format: BankFileFormat!, $content: String!) {
  importBankStatement(format: $format, content: $content) {
    imported alreadyImported matched unmatched lookAlike errors { field code message }
  }
}
"""
LINES = "{ bankLines { edges { node { id amount text counterparty state note } } } }"
ALL_LINES = """
{ bankLines(state: null) { edges { node { id amount currency text counterparty state note } } } }
"""


async def lines_of(api: Api, query: str) -> list[dict[str, Any]]:
    return [edge["node"] for edge in (await api.data(query))["bankLines"]["edges"]]


MATCH = """
mutation($id: ID!, $number: String!) {
  matchBankLine(id: $id, statementNumber: $number) {
    line { state note } errors { field code message }
  }
}
"""


def camt053(*entries: tuple[str, str, str, str], currency: str = "EUR") -> str:
    """A camt.053 statement of (reference, CRDT/DBIT, amount, remittance text) entries;
    an empty reference leaves the bank's references out, as some banks do, and an amount
    written as XML replaces the ``Amt`` element."""

    def amount_element(amount: str) -> str:
        return amount if amount.startswith("<") else f'<Amt Ccy="{currency}">{amount}</Amt>'

    body = "".join(
        f"""<Ntry>{ref and f"<NtryRef>{ref}</NtryRef>"}{amount_element(amount)}
        <CdtDbtInd>{kind}</CdtDbtInd><Sts>BOOK</Sts><BookgDt><Dt>{YEAR}-12-01</Dt></BookgDt>
        {ref and f"<AcctSvcrRef>{ref}</AcctSvcrRef>"}<NtryDtls><TxDtls><RltdPties><Dbtr>
        <Nm>Ada Lovelace</Nm></Dbtr></RltdPties><RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls>
        </NtryDtls></Ntry>"""
        for ref, kind, amount, text in entries
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
        f"<Stmt><Id>S1</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>{body}"
        "</Stmt></BkToCstmrStmt></Document>"
    )


def mt940_file(*credits: tuple[str, str, str], newline: str = "\n", wrap: int = 0) -> str:
    """An MT940 statement of (bank reference, amount, purpose) credits; an empty bank
    reference leaves it out. ``wrap`` cuts each :86: into lines of that many characters."""
    yy = str(YEAR)[2:]
    lines = [":20:STMT1", ":25:DE89370400440532013000", ":28C:00001/001",
             f":60F:C{yy}1201EUR1000,00"]  # fmt: skip
    for ref, amount, purpose in credits:
        details = f":86:166?00GUTSCHRIFT?20{purpose}?32Ada Lovelace"
        cut = [details[i : i + wrap] for i in range(0, len(details), wrap)] if wrap else [details]
        lines += [f":61:{yy}12011201CR{amount}NTRFNONREF" + (f"//{ref}" if ref else ""), *cut]
    return newline.join([*lines, f":62F:C{yy}1201EUR1100,00", "-"]) + newline


def test_an_invalid_iban_stops_start_up(tmp_path) -> None:
    plugins = {"bank_transfer": {"enabled": True, "iban": "DE00123", "account_holder": "Me"}}
    settings = make_settings(f"sqlite:///{tmp_path}/x.db", plugins=plugins)
    with pytest.raises(PluginConfigError, match=r"plugins\.bank_transfer\.iban: .DE00123. is not"):
        create_app(settings, installed_plugins=BANK)


async def test_bank_statements_settle_what_they_pay_and_keep_the_rest_for_an_operator(
    database_url: str,
) -> None:
    async with shop(database_url, extra=BANK, shipping_charge="0") as api:
        first = await delivered(api, "BT-1", [{"sku": "MUG", "quantity": 2}])  # 29.75
        second = await delivered(api, "BT-2", [{"sku": "MUG", "quantity": 1}])  # 14.88
        a = (await confirmed(api, first))["statement"]
        b = (await confirmed(api, second))["statement"]
        assert "IBAN DE89 3704 0044 0532 0130 00 (BIC COBADEFFXXX)" in (
            (await api.data("query($n: String!) { statement(number: $n) { paymentInstructions } }",
                            {"n": a["number"]}))["statement"]["paymentInstructions"]
        )  # fmt: skip

        file = camt053(
            ("E1", "CRDT", "29.75", f"Invoice {a['number']}"),
            ("E2", "CRDT", "10.00", b["number"].replace("-", " ").lower()),
            ("E3", "CRDT", "5.00", "Birthday present"),
            ("E4", "DBIT", "99.00", f"Refund {a['number']}"),
        )
        result = await api.data(IMPORT, {"format": "CAMT053", "content": file})
        assert result["importBankStatement"] == {
            "imported": 3, "alreadyImported": 0, "matched": 2, "unmatched": 1, "lookAlike": 0,
            "errors": [],
        }  # fmt: skip
        again = await api.data(IMPORT, {"format": "CAMT053", "content": file})
        assert again["importBankStatement"]["alreadyImported"] == 3
        assert (await read(api, first))["status"] == "SETTLED"
        partly = await read(api, second)
        assert partly["status"] == "COMPLETED"
        assert partly["statement"]["balance"]["outstanding"] == "4.88"

        rest = mt940_file(("BANKREF9", "4,88", b["number"]), ("BANKREF10", "1,00", "no idea"))
        imported = await api.data(IMPORT, {"format": "MT940", "content": rest})
        assert imported["importBankStatement"]["matched"] == 1
        assert (await read(api, second))["status"] == "SETTLED"

        unmatched = await lines_of(api, LINES)
        assert [(u["amount"], u["state"]) for u in unmatched] == [
            ("1.00", "UNMATCHED"),
            ("5.00", "UNMATCHED"),
        ]
        gift = unmatched[1]
        assert gift["counterparty"] == "Ada Lovelace"
        matched = await api.data(MATCH, {"id": gift["id"], "number": a["number"]})
        assert matched["matchBankLine"]["line"] == {
            "state": "MATCHED", "note": "by hand: overpaid by 5.00"
        }  # fmt: skip
        twice = await api.data(MATCH, {"id": gift["id"], "number": b["number"]})
        assert twice["matchBankLine"]["errors"][0]["code"] == "ALREADY_DONE"
        overpaid = await read(api, first)
        bad = await api.data(IMPORT, {"format": "CAMT053", "content": "<not xml"})
    assert overpaid["statement"]["balance"]["overpaid"] == "5.00"
    assert bad["importBankStatement"]["errors"][0]["field"] == "content"


async def import_file(api: Api, format: str, content: str) -> dict[str, Any]:
    return (await api.data(IMPORT, {"format": format, "content": content}))["importBankStatement"]


async def ledger_entries() -> int:
    return await LedgerEntry.count()


def pretty(xml: str) -> str:
    """The same camt.053 file as another export writes it: indented, and the remittance
    text wrapped onto an indented line of its own."""
    root = ET.fromstring(xml)
    ET.indent(root, space="    ")
    for node in root.iter():
        if node.tag.endswith("Ustrd") and node.text:
            node.text = (
                "\n            " + node.text.replace(" ", "\n            ", 1) + "\n        "
            )
    return ET.tostring(root, encoding="unicode")


async def test_a_file_imported_again_in_another_layout_pays_nothing_again(
    database_url: str,
) -> None:
    async with shop(database_url, extra=BANK, shipping_charge="0") as api:
        first = await delivered(api, "RE-1", [{"sku": "MUG", "quantity": 2}])  # 29.75
        number = (await confirmed(api, first))["statement"]["number"]
        camt = camt053(("", "CRDT", "10.00", f"Invoice {number}"))
        mt940 = mt940_file(("", "5,00", f"Invoice {number} second part"))

        assert (await import_file(api, "CAMT053", camt))["matched"] == 1
        assert (await import_file(api, "MT940", mt940))["matched"] == 1
        entries = await ledger_entries()
        again = [
            await import_file(api, "CAMT053", pretty(camt)),
            await import_file(api, "MT940", mt940.replace("\n", "\r\n")),
            await import_file(api, "MT940", mt940.replace("\n", "\r")),
            await import_file(api, "MT940", mt940_file(("", "5,00", f"Invoice {number} second "
                                                        "part"), newline="\r\n", wrap=21)),
        ]  # fmt: skip
        balance = (await read(api, first))["statement"]["balance"]
        assert await ledger_entries() == entries
    assert [(a["imported"], a["alreadyImported"], a["matched"]) for a in again] == [
        (0, 1, 0),
        (0, 1, 0),
        (0, 1, 0),
        (0, 1, 0),
    ]
    assert balance["paid"] == "15.00"


async def test_a_new_line_that_looks_like_another_waits_for_a_person(database_url: str) -> None:
    async with shop(database_url, extra=BANK, shipping_charge="0") as api:
        first = await delivered(api, "LA-1", [{"sku": "MUG", "quantity": 2}])  # 29.75
        number = (await confirmed(api, first))["statement"]["number"]
        twice = ("", "CRDT", "10.00", f"Invoice {number}")
        # Two identical payments in one file: the second may be a bank's duplicate.
        both = await import_file(api, "CAMT053", camt053(twice, twice))
        # The next export of the day has a third one: only it is new.
        later = await import_file(api, "CAMT053", pretty(camt053(twice, twice, twice)))
        paid = (await read(api, first))["statement"]["balance"]["paid"]
        lines = await lines_of(api, ALL_LINES)
        # A person who knows they are separate payments matches them by hand.
        by_hand = await api.data(MATCH, {"id": lines[0]["id"], "number": number})
    assert (both["imported"], both["matched"], both["lookAlike"]) == (2, 1, 1)
    assert (later["imported"], later["alreadyImported"], later["lookAlike"]) == (1, 2, 1)
    assert paid == "10.00"
    assert [line["state"] for line in lines] == ["UNMATCHED", "UNMATCHED", "MATCHED"]
    assert all(f"looks the same as bank line {lines[2]['id']}" in li["note"] for li in lines[:2])
    assert by_hand["matchBankLine"]["errors"] == []


async def test_the_same_file_imported_twice_at_once_pays_once(database_url: str) -> None:
    async with shop(database_url, extra=BANK, shipping_charge="0") as api:
        first = await delivered(api, "CC-1", [{"sku": "MUG", "quantity": 2}])  # 29.75
        number = (await confirmed(api, first))["statement"]["number"]
        camt = camt053(("", "CRDT", "29.75", f"Invoice {number}"))
        answers = await asyncio.gather(
            *(import_file(api, "CAMT053", pretty(camt) if i % 2 else camt) for i in range(6))
        )
        statement = (await read(api, first))["statement"]
    assert sorted(a["imported"] for a in answers) == [0, 0, 0, 0, 0, 1]
    assert sum(a["matched"] for a in answers) == 1
    assert statement["balance"]["paid"] == "29.75"


def problems(payload: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["field"], e["code"]) for e in payload["errors"]}


async def test_amounts_are_exact_or_the_file_is_refused_with_each_line_at_fault(
    database_url: str,
) -> None:
    async with shop(database_url, extra=BANK, shipping_charge="0") as api:
        first = await delivered(api, "AM-1", [{"sku": "MUG", "quantity": 2}])
        number = (await confirmed(api, first))["statement"]["number"]
        paying = ("E0", "CRDT", "29.75", f"Invoice {number}")
        bad_camt = camt053(
            paying,
            *[(f"E{i}", "CRDT", amount, "x") for i, amount in
              enumerate(["NaN", "Infinity", "1.005", "1e30", "<Ccy>EUR</Ccy>", "-5.00"], 1)],
        )  # fmt: skip
        camt = await import_file(api, "CAMT053", bad_camt)
        twenty_digits = await import_file(
            api, "MT940", mt940_file(("R1", "1,00", number), ("R2", "12345678901234567890,00", ""))
        )
        exact = await import_file(api, "MT940", mt940_file(("R3", "123456789012345,67", "big")))
        amounts = [(li["amount"], li["currency"]) for li in (await lines_of(api, ALL_LINES))]
        paid = (await read(api, first))["statement"]["balance"]["paid"]
    assert problems(camt) == {
        (f"entries[{n}].amount", code)
        for n, code in [(2, "INVALID_VALUE"), (3, "INVALID_VALUE"), (4, "INVALID_VALUE"),
                        (5, "INVALID_VALUE"), (6, "REQUIRED"), (7, "INVALID_VALUE")]
    }  # fmt: skip
    assert "Entry 4: 1.005 has more than 2 decimal places for EUR" in str(camt["errors"])
    assert camt["imported"] == 0
    assert problems(twenty_digits) == {("lines[7].amount", "INVALID_VALUE")}
    assert "Line 7: 12345678901234567890.00 EUR is too large" in str(twenty_digits["errors"])
    assert exact["imported"] == 1
    # Nothing of a refused file was stored: the statement is unpaid, one line is there.
    assert amounts == [("123456789012345.67", "EUR")]
    assert paid == "0.00"


async def test_currencies_and_texts_are_checked_alike_on_both_databases(
    database_url: str,
) -> None:
    async with shop(database_url, extra=BANK) as api:
        unknown = await import_file(api, "CAMT053", camt053(("E1", "CRDT", "1.00", "x"),
                                                            currency="XYZ"))  # fmt: skip
        yen = await import_file(api, "CAMT053", camt053(("E1", "CRDT", "1.5", "x"),
                                                        currency="JPY"))  # fmt: skip
        # XML 1.0 allows C1 controls; a text file allows anything.
        c1 = await import_file(api, "CAMT053", camt053(("E1", "CRDT", "1.00", "a\x85b")))
        nul = await import_file(api, "MT940", mt940_file(("R1", "1,00", "a\x00b")))
        # Every problem of the file at once: a line that cannot be read and a bad text.
        both = mt940_file(("R1", "1,00", "a\x01b"), ("R2", "2,00", "fine"))
        both = await import_file(api, "MT940", both.replace("CR2,00NTRFNONREF//R2", "CR2,00"))
        lines = await lines_of(api, ALL_LINES)
    assert problems(unknown) == {("entries[1].currency", "INVALID_CURRENCY")}
    assert problems(yen) == {("entries[1].amount", "INVALID_VALUE")}
    assert problems(c1) == {("entries[1].text", "INVALID_CHARACTER")}
    assert problems(nul) == {("lines[5].text", "INVALID_CHARACTER")}
    assert problems(both) == {("lines[5].text", "INVALID_CHARACTER"), ("lines[7]", "INVALID_VALUE")}
    assert lines == []


@pytest.mark.parametrize("line_id", ["\u00b2", "\u0661", "9" * 5000, "-1", "0", "2147483648"])
async def test_a_bank_line_id_that_cannot_exist_is_not_found(
    database_url: str, line_id: str
) -> None:
    plugins = {"bank_transfer": {"enabled": True, "iban": "DE89370400440532013000",
                                 "account_holder": "Mugs & Co"}}  # fmt: skip
    settings = make_settings(database_url, production=True, plugins=plugins)
    async with serve_api(settings, installed_plugins=BANK) as api:
        body = await api.gql(MATCH, {"id": line_id, "number": f"ST-{YEAR}-000001"})
    assert "errors" not in body, body
    assert problems(body["data"]["matchBankLine"]) == {("id", "NOT_FOUND")}
