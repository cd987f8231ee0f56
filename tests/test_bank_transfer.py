"""Bank transfer: instructions with a validated IBAN, reconciliation from camt.053 and
MT940 files, partial and over-payments, unmatched lines matched by hand."""

from __future__ import annotations

import pytest
from conftest import make_settings
from test_settlement import YEAR, confirmed, delivered, read, shop

from ordergraph.app import create_app
from ordergraph.core.plugins import PluginConfigError
from plugins.payments import bank_transfer

BANK = {"bank_transfer": bank_transfer}
IMPORT = """
mutation($format: BankFileFormat!, $content: String!) {
  importBankStatement(format: $format, content: $content) {
    imported alreadyImported matched unmatched errors { field code message }
  }
}
"""
LINES = "{ bankLines { id amount text counterparty state note } }"
MATCH = """
mutation($id: ID!, $number: String!) {
  matchBankLine(id: $id, statementNumber: $number) {
    line { state note } errors { field code message }
  }
}
"""


def camt053(*entries: tuple[str, str, str, str]) -> str:
    """A camt.053 statement of (reference, CRDT/DBIT, amount, remittance text) entries."""
    body = "".join(
        f"""<Ntry><NtryRef>{ref}</NtryRef><Amt Ccy="EUR">{amount}</Amt>
        <CdtDbtInd>{kind}</CdtDbtInd><Sts>BOOK</Sts><BookgDt><Dt>{YEAR}-12-01</Dt></BookgDt>
        <AcctSvcrRef>{ref}</AcctSvcrRef><NtryDtls><TxDtls><RltdPties><Dbtr><Nm>Ada Lovelace</Nm>
        </Dbtr></RltdPties><RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"""
        for ref, kind, amount, text in entries
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
        f"<Stmt><Id>S1</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>{body}"
        "</Stmt></BkToCstmrStmt></Document>"
    )


def mt940_file(*credits: tuple[str, str, str]) -> str:
    """An MT940 statement of (bank reference, amount, purpose) credits."""
    yy = str(YEAR)[2:]
    lines = [":20:STMT1", ":25:DE89370400440532013000", ":28C:00001/001",
             f":60F:C{yy}1201EUR1000,00"]  # fmt: skip
    for ref, amount, purpose in credits:
        lines += [f":61:{yy}12011201CR{amount}NTRFNONREF//{ref}", f":86:166?00CREDIT?20{purpose}"]
    return "\n".join([*lines, f":62F:C{yy}1201EUR1100,00", "-"]) + "\n"


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
            "imported": 3, "alreadyImported": 0, "matched": 2, "unmatched": 1, "errors": []
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

        unmatched = (await api.data(LINES))["bankLines"]
        assert [(u["amount"], u["state"]) for u in unmatched] == [
            ("1.00", "unmatched"),
            ("5.00", "unmatched"),
        ]
        gift = unmatched[1]
        assert gift["counterparty"] == "Ada Lovelace"
        matched = await api.data(MATCH, {"id": gift["id"], "number": a["number"]})
        assert matched["matchBankLine"]["line"] == {
            "state": "matched", "note": "by hand: overpaid by 5.00"
        }  # fmt: skip
        twice = await api.data(MATCH, {"id": gift["id"], "number": b["number"]})
        assert twice["matchBankLine"]["errors"][0]["code"] == "ALREADY_DONE"
        overpaid = await read(api, first)
        bad = await api.data(IMPORT, {"format": "CAMT053", "content": "<not xml"})
    assert overpaid["statement"]["balance"]["overpaid"] == "5.00"
    assert bad["importBankStatement"]["errors"][0]["field"] == "content"
