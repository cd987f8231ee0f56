"""Promotions through the real app: admin-managed rows of plugin kinds, previewed at
submission, applied at settlement on what was delivered; coupons within their limits."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from conftest import Api, make_settings, serve_api, submit
from test_settlement import confirmed, delivered, shop

from ordergraph.core import db
from ordergraph.core.limits import COUPON_TRIES_PER_CUSTOMER
from plugins.promotions import builtin
from plugins.review_rules import price_policy

CREATE = """
mutation($input: PromotionInput!) {
  createPromotion(input: $input) {
    promotion { id name kind arguments priority combinable couponCode uses }
    errors { field code message }
  }
}
"""
PREVIEW = """
query($id: ID!) {
  order(id: $id) {
    pricePreview {
      subtotal adjustmentTotal total adjustments { code label source reference amount }
    }
  }
}
"""
REDEEM = """
mutation($id: ID!, $code: String!) {
  redeemCoupon(orderId: $id, code: $code) { errors { field code message } }
}
"""
RETIRE = (
    "mutation($id: ID!) { retirePromotion(id: $id) { promotion { retiredAt } errors { code } } }"
)


async def promotion(api: Api, name: str, kind: str, arguments: dict[str, Any], **extra: Any):
    payload = (
        await api.data(
            CREATE, {"input": {"name": name, "kind": kind, "arguments": arguments, **extra}}
        )
    )["createPromotion"]
    assert payload["errors"] == [], payload["errors"]
    return payload["promotion"]


async def preview(api: Api, order_id: int | str, as_: str = "ada") -> dict[str, Any]:
    return (await api.data(PREVIEW, {"id": str(order_id)}, as_=as_))["order"]["pricePreview"]


def promos() -> dict[str, Any]:
    return {"promotions": builtin}


async def test_promotions_are_previewed_then_applied_to_what_was_delivered(
    database_url: str,
) -> None:
    async with shop(database_url, extra=promos()) as api:
        ten = await promotion(api, "Ten off fifty", "order_percentage",
                              {"percent": "10", "minimum": "50"}, priority=10)  # fmt: skip
        mugs = await promotion(api, "Mugs 3 for 2", "buy_x_get_y",
                               {"sku": "MUG", "buy": 2, "get": 1}, priority=20)  # fmt: skip
        free = await promotion(api, "Free shipping", "free_shipping", {"minimum": "20"})
        lines = [{"sku": "MUG", "quantity": 3}, {"sku": "TEE", "quantity": 1}]
        order = await submit(api, "PR-1", as_="ada", lines=lines)

        expected = await preview(api, order["id"])
        # 3 mugs 37.50 + tee 24.90 = 62.40; one mug free (12.50); 10% of 62.40 = 6.24.
        assert [(a["code"], a["amount"], a["reference"]) for a in expected["adjustments"]] == [
            ("buy_x_get_y", "-12.50", f"promotion:{mugs['id']}"),
            ("order_percentage", "-6.24", f"promotion:{ten['id']}"),
            ("free_shipping", "-4.90", f"promotion:{free['id']}"),
        ]
        assert expected["adjustments"][0]["label"] == "Mugs 3 for 2"
        assert expected["adjustments"][0]["source"] == "settlement"
        await api.rt.runner.drain()

        # Only 2 mugs were found and delivered: no free mug, and 49.90 is below 50.
        order_id = await delivered(api, "PR-2", lines, found={1: 2})
        statement = (await confirmed(api, order_id))["statement"]
    assert [(a["code"], a["amount"]) for a in statement["adjustments"]] == [
        ("free_shipping", "-4.90")
    ]
    assert statement["subtotal"] == "54.80"  # 49.90 of goods and 4.90 of shipping


async def test_a_promotion_that_does_not_combine_applies_alone(database_url: str) -> None:
    async with shop(database_url, extra=promos()) as api:
        await promotion(api, "Small", "order_percentage", {"percent": "5"}, priority=1)
        await promotion(api, "Big, alone", "order_fixed", {"amount": "10.00", "currency": "EUR"},
                        priority=5, combinable=False)  # fmt: skip
        order = await submit(api, "ALONE-1", as_="ada")
        expected = await preview(api, order["id"])
    assert [(a["code"], a["amount"]) for a in expected["adjustments"]] == [
        ("order_fixed", "-10.00")
    ]


async def test_arguments_are_typed_and_every_problem_is_named(database_url: str) -> None:
    async with shop(database_url, extra=promos()) as api:
        bad = (
            await api.data(
                CREATE,
                {"input": {"name": "", "kind": "order_percentage",
                           "arguments": {"percent": "150", "colour": "red"},
                           "usageLimit": 3}},
            )
        )["createPromotion"]  # fmt: skip
        unknown = (
            await api.data(CREATE, {"input": {"name": "x", "kind": "bogus", "arguments": {}}})
        )["createPromotion"]
        missing = (
            await api.data(
                CREATE, {"input": {"name": "x", "kind": "buy_x_get_y", "arguments": {"buy": 0}}}
            )
        )["createPromotion"]
        listed = await api.data("{ promotions { id } }")
        kinds = await api.data("{ promotionKinds { name arguments { name type required } } }")
    assert {(e["field"], e["code"]) for e in bad["errors"]} == {
        ("name", "REQUIRED"),
        ("arguments.percent", "INVALID_VALUE"),
        ("arguments.colour", "INVALID_VALUE"),
        ("usageLimit", "INVALID_VALUE"),
    }
    assert "at most 100" in next(
        e["message"] for e in bad["errors"] if e["field"] == "arguments.percent"
    )
    assert unknown["errors"][0]["field"] == "kind"
    assert {(e["field"], e["code"]) for e in missing["errors"]} == {
        ("arguments.sku", "REQUIRED"),
        ("arguments.buy", "INVALID_VALUE"),
        ("arguments.get", "REQUIRED"),
    }
    assert listed == {"promotions": []}
    by_name = {k["name"]: k for k in kinds["promotionKinds"]}
    assert set(by_name) == {"order_percentage", "order_fixed", "sku_percentage", "buy_x_get_y",
                            "free_shipping", "customer_group"}  # fmt: skip
    assert {"name": "percent", "type": "decimal", "required": True} in (
        by_name["order_percentage"]["arguments"]
    )


async def test_scheduled_and_retired_promotions_follow_when_the_order_was_placed(
    database_url: str,
) -> None:
    later = (db.now() + datetime.timedelta(days=1)).isoformat()
    async with shop(database_url, extra=promos()) as api:
        await promotion(api, "Tomorrow", "order_percentage", {"percent": "50"}, startsAt=later)
        running = await promotion(api, "Now", "sku_percentage", {"percent": "20", "skus": ["MUG"]})
        placed = await submit(api, "SCH-1", as_="ada")
        retired = (await api.data(RETIRE, {"id": running["id"]}))["retirePromotion"]
        assert retired["errors"] == [] and retired["promotion"]["retiredAt"]
        after = await submit(api, "SCH-2", as_="ada")
        placed_preview = await preview(api, placed["id"])
        after_preview = await preview(api, after["id"])
    # Placed while "Now" ran: it keeps it; placed after it retired: no promotion at all.
    assert [(a["code"], a["amount"]) for a in placed_preview["adjustments"]] == [
        ("sku_percentage", "-5.00")
    ]
    assert after_preview["adjustments"] == []


SCHEDULE = """
mutation($id: ID!, $startsAt: DateTime, $endsAt: DateTime) {
  schedulePromotion(id: $id, startsAt: $startsAt, endsAt: $endsAt) {
    promotion { startsAt endsAt } errors { field code }
  }
}
"""


async def test_a_schedule_is_kept_in_utc_and_one_no_column_holds_is_refused(
    database_url: str,
) -> None:
    async with shop(database_url, extra=promos()) as api:
        # A time without an offset is UTC; one with an offset is the same instant in UTC.
        schedule = {"startsAt": "2026-12-01T08:00:00", "endsAt": "2026-12-24T18:00:00+02:00"}
        made = await promotion(api, "Winter", "order_percentage", {"percent": "5"}, **schedule)
        moved = (
            await api.data(
                SCHEDULE,
                {"id": made["id"], "startsAt": "2026-12-02T09:30:00-05:00", "endsAt": None},
            )
        )["schedulePromotion"]
        # The last instant of year 9999 at -05:00 is in year 10000 in UTC.
        refused = (
            await api.data(
                SCHEDULE,
                {"id": made["id"], "startsAt": None, "endsAt": "9999-12-31T23:00:00-05:00"},
            )
        )["schedulePromotion"]
        # 01:00 at +02:00 on the 5th is 23:00 UTC on the 4th: before a start at 00:00 UTC.
        backwards = (
            await api.data(
                SCHEDULE,
                {"id": made["id"], "startsAt": "2026-12-05T00:00:00",
                 "endsAt": "2026-12-05T01:00:00+02:00"},
            )
        )["schedulePromotion"]  # fmt: skip
    assert moved["errors"] == []
    assert datetime.datetime.fromisoformat(moved["promotion"]["startsAt"]) == datetime.datetime(
        2026, 12, 2, 14, 30, tzinfo=datetime.UTC
    )
    assert moved["promotion"]["endsAt"] is None
    assert refused == {"promotion": None, "errors": [{"field": "endsAt", "code": "OUT_OF_RANGE"}]}
    assert backwards == {
        "promotion": None,
        "errors": [{"field": "endsAt", "code": "INVALID_VALUE"}],
    }


async def test_a_30_use_coupon_redeemed_100_times_at_once_gives_exactly_30(
    database_url: str,
) -> None:
    async with serve_api(make_settings(database_url), run_jobs=False) as api:
        thirty = {"amount": "2.00", "currency": "EUR"}
        coupon = await promotion(api, "Thirty", "order_fixed", thirty,
                                 couponCode="thirty", usageLimit=30)  # fmt: skip
        ids = [
            (await submit(api, f"C-{i}", lines=[{"sku": "MUG", "quantity": 1}]))["id"]
            for i in range(100)
        ]
        answers = await asyncio.gather(
            *(api.data(REDEEM, {"id": i, "code": "THIRTY"}) for i in ids)
        )
        codes = [[e["code"] for e in a["redeemCoupon"]["errors"]] for a in answers]
        listed = await api.data("{ promotions { uses } }")
        with_coupon = await preview(api, ids[codes.index([])], as_="admin")
        without = await preview(api, ids[codes.index(["COUPON_USED_UP"])], as_="admin")
    assert codes.count([]) == 30
    assert codes.count(["COUPON_USED_UP"]) == 70
    assert listed == {"promotions": [{"uses": 30}]}
    assert [(a["amount"], a["reference"]) for a in with_coupon["adjustments"]] == [
        ("-2.00", f"promotion:{coupon['id']}")
    ]
    assert without["adjustments"] == []


async def test_per_customer_limits_and_customer_groups(database_url: str) -> None:
    async with shop(database_url, extra=promos()) as api:
        await promotion(api, "Welcome", "order_fixed", {"amount": "1.00", "currency": "EUR"},
                        couponCode="WELCOME", perCustomerLimit=1, usageLimit=100)  # fmt: skip
        friends = {"percent": "10", "group": "friends", "emails": ["ada@example.com"]}
        await promotion(api, "Friends", "customer_group", friends)
        first = await submit(api, "G-1", as_="ada")
        second = await submit(api, "G-2", as_="ada")
        bobs = await submit(api, "G-3", as_="bob", customerEmail="bob@example.com")
        ok = await api.data(REDEEM, {"id": first["id"], "code": "welcome"}, as_="ada")
        twice = await api.data(REDEEM, {"id": first["id"], "code": "WELCOME"}, as_="ada")
        again = await api.data(REDEEM, {"id": second["id"], "code": "WELCOME"}, as_="ada")
        foreign = await api.data(REDEEM, {"id": bobs["id"], "code": "WELCOME"}, as_="ada")
        ada_preview = await preview(api, first["id"])
        bob_preview = await preview(api, bobs["id"], as_="bob")
    assert ok["redeemCoupon"]["errors"] == []
    assert twice["redeemCoupon"]["errors"][0]["code"] == "DUPLICATE"
    assert again["redeemCoupon"]["errors"][0]["code"] == "COUPON_LIMIT_REACHED"
    assert foreign["redeemCoupon"]["errors"][0]["code"] == "NOT_FOUND"
    assert sorted(a["code"] for a in ada_preview["adjustments"]) == ["customer_group",
                                                                     "order_fixed"]  # fmt: skip
    assert bob_preview["adjustments"] == []


async def test_price_policy_still_refuses_prices_beyond_policy_with_promotions_running(
    database_url: str,
) -> None:
    extra = {**promos(), "price_policy": price_policy}
    policy = {"price_policy": {"max_discount_percent": "10", "on_violation": "reject"}}
    async with shop(database_url, extra=extra, plugin_settings=policy) as api:
        await promotion(api, "Half off", "order_percentage", {"percent": "50"})
        cheap = await submit(
            api, "POL-1", lines=[{"sku": "MUG", "quantity": 1, "unitPrice": "9.00"}]
        )
        fair = await submit(api, "POL-2", lines=[{"sku": "MUG", "quantity": 1}])
        await api.rt.runner.drain()
        status = "query($id: ID!) { order(id: $id) { status } }"
        refused = (await api.data(status, {"id": cheap["id"]}))["order"]["status"]
        accepted = (await api.data(status, {"id": fair["id"]}))["order"]["status"]
        fair_preview = await preview(api, fair["id"], as_="admin")
    # 9.00 is 28% under the 12.50 list price: refused, whatever the promotions; the
    # promotion itself lowers the statement, not the unit price the policy judges.
    assert (refused, accepted) == ("REJECTED", "APPROVED")
    assert [a["amount"] for a in fair_preview["adjustments"]] == ["-6.25"]


async def test_a_customer_guessing_coupon_codes_is_stopped(database_url: str) -> None:
    async with shop(database_url, extra=promos()) as api:
        await promotion(
            api, "Secret", "order_fixed", {"amount": "5.00", "currency": "EUR"}, couponCode="S3CRET"
        )
        order = await submit(api, "GUESS-1", as_="ada")
        guesses = [
            await api.data(REDEEM, {"id": order["id"], "code": f"GUESS{i}"}, as_="ada")
            for i in range(COUPON_TRIES_PER_CUSTOMER.count)
        ]
        found = await api.data(REDEEM, {"id": order["id"], "code": "S3CRET"}, as_="ada")
        by_staff = await api.data(REDEEM, {"id": order["id"], "code": "S3CRET"})
    assert all(g["redeemCoupon"]["errors"][0]["code"] == "NOT_FOUND" for g in guesses)
    assert found["redeemCoupon"]["errors"] == [
        {
            "field": "code",
            "code": "RATE_LIMITED",
            "message": "Too many coupon codes tried; try again in 10 minutes.",
        }
    ]
    assert by_staff["redeemCoupon"]["errors"] == []  # staff are not limited


async def test_a_fixed_amount_is_money_of_its_currency_and_the_preview_holds(
    database_url: str,
) -> None:
    """Amounts finer than the currency or beyond what an amount holds are refused when the
    promotion is created, not when an order's price is shown."""
    async with shop(database_url, extra=promos()) as api:
        refused = {}
        for amount, currency in [("0.001", "EUR"), ("1e30", "EUR"), ("1.5", "JPY")]:
            arguments = {"amount": amount, "currency": currency}
            payload = (
                await api.data(
                    CREATE, {"input": {"name": "x", "kind": "order_fixed", "arguments": arguments}}
                )
            )["createPromotion"]
            refused[amount] = [(e["field"], e["code"]) for e in payload["errors"]]
        await promotion(api, "Five off", "order_fixed", {"amount": "5.00", "currency": "EUR"})
        await promotion(api, "Yen off", "order_fixed", {"amount": "500", "currency": "JPY"})
        order = await submit(api, "FIXED-1", as_="ada")
        shown = await preview(api, order["id"])
        listed = await api.data("{ promotions { name } }")
    assert refused == {
        "0.001": [("arguments.amount", "INVALID_VALUE")],
        "1e30": [("arguments.amount", "INVALID_VALUE")],
        "1.5": [("arguments.amount", "INVALID_VALUE")],
    }
    assert listed["promotions"] == [{"name": "Five off"}, {"name": "Yen off"}]
    # A EUR order gets the EUR promotion only.
    assert [(a["label"], a["amount"]) for a in shown["adjustments"]] == [("Five off", "-5.00")]


async def test_promotion_text_with_control_characters_is_refused_on_both_backends(
    database_url: str,
) -> None:
    async with shop(database_url, extra=promos()) as api:
        nul = "a\u0000b"
        payload = (
            await api.data(
                CREATE,
                {
                    "input": {
                        "name": nul,
                        "kind": "sku_percentage",
                        "arguments": {"percent": "10", "skus": ["MUG", nul]},
                        "couponCode": "tab\there",
                    }
                },
            )
        )["createPromotion"]
        order = await submit(api, "COUPON-NUL", as_="ada")
        redeemed = await api.data(REDEEM, {"id": order["id"], "code": nul}, as_="ada")
        listed = await api.data("{ promotions { name } }")
    assert {(e["field"], e["code"]) for e in payload["errors"]} == {
        ("name", "INVALID_CHARACTER"),
        ("arguments.skus", "INVALID_CHARACTER"),
        ("couponCode", "INVALID_CHARACTER"),
    }
    assert listed == {"promotions": []}
    assert [(e["field"], e["code"]) for e in redeemed["redeemCoupon"]["errors"]] == [
        ("code", "NOT_FOUND")
    ]
