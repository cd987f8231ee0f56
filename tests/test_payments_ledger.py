"""The payment ledger through the real app: idempotent entries, derived balances, SETTLED."""

from __future__ import annotations

import asyncio
from typing import Any

from test_settlement import confirmed, delivered, read, shop

from ordergraph.stages.settlement import payments
from ordergraph.stages.settlement.statements import statement_by_number

RECORD = """
mutation Pay($input: RecordPaymentInput!) {
  recordPayment(input: $input) {
    created
    entry { kind amount method reference idempotencyKey actor }
    statement { number balance { paid outstanding overpaid state } }
    errors { field code message }
  }
}
"""
REFUND = """
mutation($number: String!, $key: String!) {
  refundOverpayment(statementNumber: $number, method: "bank_transfer", idempotencyKey: $key) {
    entry { kind amount } statement { balance { paid overpaid state } }
    errors { field code message }
  }
}
"""
TRANSITION = """
mutation($id: ID!) {
  transitionOrder(id: $id, transition: "settle") { errors { code message } }
}
"""


def pay(number: str, amount: str, key: str, **extra: Any) -> dict[str, Any]:
    values = {"statementNumber": number, "kind": "MATCHED", "amount": amount,
              "method": "bank_transfer", "idempotencyKey": key, "reference": number}  # fmt: skip
    return {"input": {**values, **extra}}


async def test_partial_then_full_payment_settles_the_order_and_overpayment_is_refundable(
    database_url: str,
) -> None:
    async with shop(database_url, shipping_charge="0") as api:
        order_id = await delivered(api, "PAY-1", [{"sku": "MUG", "quantity": 2}])
        number = (await confirmed(api, order_id))["statement"]["number"]  # 25.00 + 19% = 29.75

        first = (await api.data(RECORD, pay(number, "10.00", "bank-1")))["recordPayment"]
        assert first["errors"] == [] and first["created"] is True
        assert first["entry"]["actor"] == "admin:alice"
        assert first["statement"]["balance"] == {
            "paid": "10.00", "outstanding": "19.75", "overpaid": "0.00", "state": "PARTIALLY_PAID"
        }  # fmt: skip
        assert (await read(api, order_id))["status"] == "COMPLETED"
        # Staff cannot settle by hand what is not paid.
        refused = (await api.data(TRANSITION, {"id": str(order_id)}))["transitionOrder"]
        assert refused["errors"][0]["code"] == "VETOED"
        assert "19.75 EUR outstanding" in refused["errors"][0]["message"]

        rest = (await api.data(RECORD, pay(number, "20.00", "bank-2")))["recordPayment"]
        assert rest["statement"]["balance"]["state"] == "OVERPAID"
        order = await read(api, order_id)
        assert order["status"] == "SETTLED"
        assert order["statement"]["balance"]["overpaid"] == "0.25"
        settled = [e for e in order["events"] if e["toStatus"] == "SETTLED"]
        assert settled[0]["data"]["reason"] == f"statement {number} is paid in full"

        refund = await api.data(REFUND, {"number": number, "key": "refund-1"})
        assert refund["refundOverpayment"]["entry"] == {"kind": "REFUNDED", "amount": "0.25"}
        assert refund["refundOverpayment"]["statement"]["balance"] == {
            "paid": "29.75", "overpaid": "0.00", "state": "PAID"
        }  # fmt: skip
        again = await api.data(REFUND, {"number": number, "key": "refund-2"})
        assert again["refundOverpayment"]["errors"][0]["code"] == "NOTHING_TO_REFUND"


async def test_the_same_payment_ten_times_at_once_is_one_entry(database_url: str) -> None:
    async with shop(database_url, shipping_charge="0") as api:
        order_id = await delivered(api, "PAY-10", [{"sku": "MUG", "quantity": 1}])
        number = (await confirmed(api, order_id))["statement"]["number"]  # 14.88
        answers = await asyncio.gather(
            *(api.data(RECORD, pay(number, "14.88", "psp-evt-1")) for _ in range(10))
        )
        payloads = [a["recordPayment"] for a in answers]
        assert all(p["errors"] == [] for p in payloads)
        assert sorted(p["created"] for p in payloads) == [False] * 9 + [True]

        statement = await statement_by_number(number)
        assert statement is not None
        entries = await payments.entries_of(statement.id)
        assert [(e.kind, str(e.amount)) for e in entries] == [("matched", "14.88")]
        order = await read(api, order_id)
        assert order["status"] == "SETTLED"
        assert [e["type"] for e in order["events"]].count("payment_recorded") == 1


async def test_amounts_and_texts_of_a_payment_are_exact_or_refused_alike_on_both_databases(
    database_url: str,
) -> None:
    async with shop(database_url, shipping_charge="0") as api:
        order_id = await delivered(api, "PAY-T", [{"sku": "MUG", "quantity": 1}])
        number = (await confirmed(api, order_id))["statement"]["number"]

        async def refused(amount: str, key: str, **extra: str) -> set[tuple[str, str]]:
            payload = (await api.data(RECORD, pay(number, amount, key, **extra)))["recordPayment"]
            assert payload["entry"] is None
            assert all(len(e["message"]) < 300 for e in payload["errors"])
            return {(e["field"], e["code"]) for e in payload["errors"]}

        amounts = {a: await refused(a, f"a-{a[:9]}") for a in
                   ["NaN", "Infinity", "1.005", "1e30", "9" * 5000, "0"]}  # fmt: skip
        texts = {
            field: [await refused("1.00", f"t-{field}-{i}", **{field: f"a{c}b"})
                    for i, c in enumerate("\x00\x01\x85")]
            for field in ("reference", "method", "idempotencyKey")
        }  # fmt: skip
        long_method = await refused("1.00", "t-long", method="m" * 33)
        balance = (await read(api, order_id))["statement"]["balance"]
    assert all(found == {("amount", "INVALID_VALUE")} for found in amounts.values()), amounts
    assert texts == {
        field: [{(field, "INVALID_CHARACTER")}] * 3
        for field in ("reference", "method", "idempotencyKey")
    }
    assert long_method == {("method", "TOO_LONG")}
    assert balance["paid"] == "0.00"


async def test_a_key_reused_for_another_movement_is_refused_and_bad_input_named(
    database_url: str,
) -> None:
    async with shop(database_url, shipping_charge="0") as api:
        order_id = await delivered(api, "PAY-K", [{"sku": "MUG", "quantity": 1}])
        number = (await confirmed(api, order_id))["statement"]["number"]
        await api.data(RECORD, pay(number, "5.00", "k-1"))
        other = (await api.data(RECORD, pay(number, "6.00", "k-1")))["recordPayment"]
        assert [e["code"] for e in other["errors"]] == ["IDEMPOTENCY_CONFLICT"]
        assert other["errors"][0]["field"] == "idempotencyKey"

        bad = (
            await api.data(RECORD, pay(number, "-1.001", "", reference="x" * 201, method="m" * 33))
        )["recordPayment"]
        assert {(e["field"], e["code"]) for e in bad["errors"]} == {
            ("amount", "INVALID_VALUE"),
            ("idempotencyKey", "REQUIRED"),
            ("reference", "TOO_LONG"),
            ("method", "TOO_LONG"),
        }
        # A method or reference no column holds is refused alike on both databases.
        control = (await api.data(RECORD, pay(number, "1.00", "k-2", reference="a\x01b")))[
            "recordPayment"
        ]
        assert [(e["field"], e["code"]) for e in control["errors"]] == [
            ("reference", "INVALID_CHARACTER")
        ]
        unknown = (await api.data(RECORD, pay("ST-1999-000001", "1.00", "k-9")))["recordPayment"]
        assert unknown["errors"][0] == {
            "field": "statementNumber",
            "code": "NOT_FOUND",
            "message": "There is no statement ST-1999-000001.",
        }
        # Customers read their balance, never record payments or see others' statements.
        denied = await api.gql(RECORD, pay(number, "1.00", "k-10"), as_="ada")
        assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        statement = await statement_by_number(number)
        assert statement is not None
        assert [str(e.amount) for e in await payments.entries_of(statement.id)] == ["5.00"]
        query = "query($n: String!) { statement(number: $n) { total } }"
        assert (await api.data(query, {"n": number}, as_="bob"))["statement"] is None
        assert (await api.data(query, {"n": number}, as_="ada"))["statement"] == {"total": "14.88"}


async def test_eight_refunds_by_hand_at_once_pay_back_the_overpayment_once(
    database_url: str,
) -> None:
    async with shop(database_url, shipping_charge="0") as api:
        order_id = await delivered(api, "PAY-R8", [{"sku": "MUG", "quantity": 1}])
        number = (await confirmed(api, order_id))["statement"]["number"]  # 14.88
        await api.data(RECORD, pay(number, "24.88", "bank-over"))  # overpaid by 10.00
        answers = await asyncio.gather(
            *(api.data(REFUND, {"number": number, "key": f"refund-{i}"}) for i in range(8))
        )
        statement = await statement_by_number(number)
        assert statement is not None
        entries = await payments.entries_of(statement.id)
        balance = await payments.balance_of(statement)

    payloads = [a["refundOverpayment"] for a in answers]
    done = [p for p in payloads if not p["errors"]]
    assert [p["entry"] for p in done] == [{"kind": "REFUNDED", "amount": "10.00"}]
    assert [[e["code"] for e in p["errors"]] for p in payloads if p["errors"]] == [
        ["NOTHING_TO_REFUND"]
    ] * 7
    assert [(e.kind, str(e.amount)) for e in entries] == [
        ("matched", "24.88"),
        ("refunded", "10.00"),
    ]
    assert (str(balance.paid), str(balance.refundable)) == ("14.88", "0.00")


async def test_a_refund_recorded_by_hand_is_judged_against_what_is_refundable(
    database_url: str,
) -> None:
    async with shop(database_url, shipping_charge="0") as api:
        order_id = await delivered(api, "PAY-RH", [{"sku": "MUG", "quantity": 1}])
        number = (await confirmed(api, order_id))["statement"]["number"]  # 14.88
        await api.data(RECORD, pay(number, "15.88", "bank-over"))  # overpaid by 1.00
        too_much = (await api.data(RECORD, pay(number, "1.01", "hand-1", kind="REFUNDED")))[
            "recordPayment"
        ]
        # Eight at once, each of 0.50: two fit in the 1.00 overpaid.
        halves = await asyncio.gather(
            *(api.data(RECORD, pay(number, "0.50", f"half-{i}", kind="REFUNDED"))
              for i in range(8))
        )  # fmt: skip
        statement = await statement_by_number(number)
        assert statement is not None
        balance = await payments.balance_of(statement)

    assert [(e["field"], e["code"]) for e in too_much["errors"]] == [
        ("amount", "NOTHING_TO_REFUND")
    ]
    assert "1.00 EUR" in too_much["errors"][0]["message"]
    codes = sorted(e["code"] for h in halves for e in h["recordPayment"]["errors"])
    assert codes == ["NOTHING_TO_REFUND"] * 6
    assert (str(balance.paid), str(balance.overpaid)) == ("14.88", "0.00")
