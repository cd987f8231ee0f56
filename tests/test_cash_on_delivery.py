"""Cash on delivery: what the courier collected, recorded from a mutation or a remittance
file, once per courier reference."""

from __future__ import annotations

from test_settlement import confirmed, delivered, read, shop

from plugins.payments import cash_on_delivery

ONE = """
mutation($order: String!, $amount: Decimal!, $ref: String!) {
  recordCashCollected(order: $order, amount: $amount, courierReference: $ref) {
    recorded alreadyRecorded errors { field code message }
  }
}
"""
FILE = """
mutation($content: String!) {
  importCourierRemittance(content: $content) {
    recorded alreadyRecorded errors { field code message }
  }
}
"""


async def test_the_couriers_remittance_settles_the_orders_it_pays(database_url: str) -> None:
    extra = {"cash_on_delivery": cash_on_delivery}
    async with shop(database_url, extra=extra, shipping_charge="0") as api:
        first = await delivered(api, "COD-1", [{"sku": "MUG", "quantity": 1}])
        second = await delivered(api, "COD-2", [{"sku": "MUG", "quantity": 2}])
        a = await confirmed(api, first)
        b = await confirmed(api, second)
        number_a = f"SO-{first:06d}"
        instructions = "query($n: String!) { statement(number: $n) { paymentInstructions } }"
        shown = await api.data(instructions, {"n": a["statement"]["number"]})
        assert shown["statement"]["paymentInstructions"] == "Pay the courier in cash on delivery."

        one = {"order": number_a, "amount": "14.88", "ref": "DHL-77"}
        assert (await api.data(ONE, one))["recordCashCollected"] == {
            "recorded": 1, "alreadyRecorded": 0, "errors": []
        }  # fmt: skip
        assert (await api.data(ONE, one))["recordCashCollected"]["alreadyRecorded"] == 1
        assert (await read(api, first))["status"] == "SETTLED"

        csv = (
            "order,amount,courier_reference\n"
            f"{second},29.75,DHL-78\n"
            "SO-999999,5.00,DHL-79\n"
            f"{number_a},14.88,DHL-77\n"
        )
        result = (await api.data(FILE, {"content": csv}))["importCourierRemittance"]
        bad_file = (await api.data(FILE, {"content": "a,b\n1,2\n"}))["importCourierRemittance"]
        denied = await api.gql(ONE, one, as_="ada")
        settled = await read(api, second)
    assert (result["recorded"], result["alreadyRecorded"]) == (1, 1)
    assert result["errors"] == [
        {
            "field": "rows[3]",
            "code": "NOT_FOUND",
            "message": "Row 3: There is no statement for SO-999999 yet.",
        }
    ]
    assert settled["status"] == "SETTLED"
    assert b["statement"]["total"] == "29.75"
    assert bad_file["errors"][0]["field"] == "content"
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
