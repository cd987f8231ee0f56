"""The built-in review rules, each through the real app and job runner, on both backends.

Every test enables only the rules it is about (in ``ordergraph.toml`` terms), submits
orders over GraphQL, lets the embedded job runner review them, and checks what staff
and customers see: the status, the findings, and the stock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from conftest import Api, make_settings, serve_api, submit

from ordergraph.app import create_app
from ordergraph.core import db
from ordergraph.core.plugins import PluginConfigError
from ordergraph.core.tables import Customer
from ordergraph.stages.review.lookups import customer_exposure, lookups_together
from ordergraph.stages.settlement.payments import record_entry
from ordergraph.stages.settlement.statements import statement_of

ORDER = """
query Order($id: ID!) {
  order(id: $id) {
    id databaseId status total
    reviewFindings { round rule outcome code message data }
  }
}
"""
PRODUCTS = "{ products(first: 100) { edges { node { sku stockOnHand stockReserved } } } }"
TRANSITION = """
mutation Move($id: ID!, $transition: String!) {
  transitionOrder(id: $id, transition: $transition) { order { status } errors { code message } }
}
"""
QUEUE = "{ reviewQueue { totalCount edges { node { id status } } } }"


def rules(**settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``[plugins.NAME]`` tables that enable each named rule with its settings, in order."""
    return {name: {"enabled": True, **values} for name, values in settings.items()}


@contextlib.asynccontextmanager
async def shop(database_url: str, plugins: dict[str, dict[str, Any]]) -> AsyncIterator[Api]:
    """conftest's ``api`` with these plugin settings: the real app, its job runner, the
    seeded shop (Ada and Bob with 1000 EUR credit; MUG 12.50 x100, TEE 24.90 x50,
    LAMP 79.00 x5) and a token per role."""
    async with serve_api(make_settings(database_url, plugins=plugins)) as api:
        yield api


async def reviewed(api: Api, external_id: str, *, as_: str = "admin", **overrides: Any):
    """Submit an order, let the job runner review it, and return it as ``as_`` sees it."""
    submitted = await submit(api, external_id, as_=as_, **overrides)
    assert submitted["status"] == "RECEIVED"  # review runs after the request, not in it
    await api.rt.runner.drain()
    return await order(api, submitted["id"], as_=as_)


async def order(api: Api, order_id: str, *, as_: str = "admin") -> dict[str, Any]:
    return (await api.data(ORDER, {"id": order_id}, as_=as_))["order"]


async def move(api: Api, order_id: str, *transitions: str) -> None:
    for transition in transitions:
        payload = (await api.data(TRANSITION, {"id": order_id, "transition": transition}))[
            "transitionOrder"
        ]
        assert payload["errors"] == [], payload["errors"]
    await api.rt.runner.drain()


async def stock(api: Api, sku: str) -> tuple[int, int]:
    """(on hand, reserved) of a SKU."""
    edges = (await api.data(PRODUCTS))["products"]["edges"]
    node = next(e["node"] for e in edges if e["node"]["sku"] == sku)
    return node["stockOnHand"], node["stockReserved"]


def priced(sku: str, price: str, quantity: int = 1) -> dict[str, Any]:
    return {"lines": [{"sku": sku, "quantity": quantity, "unitPrice": price}]}


def verdicts(found: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(f["rule"], f["outcome"], f["code"]) for f in found["reviewFindings"]]


# -- Every rule ---------------------------------------------------------------------------


async def test_an_order_every_rule_passes_is_approved_with_one_finding_per_rule(
    database_url: str,
) -> None:
    enabled = rules(credit_limit={}, stock={}, price_policy={}, manual_review={})
    async with shop(database_url, enabled) as api:
        found = await reviewed(api, "ALL-PASS", as_="ada", lines=[{"sku": "MUG", "quantity": 2}])

        assert found["status"] == "APPROVED"
        assert verdicts(found) == [
            ("credit_limit", "PASS", "WITHIN_CREDIT_LIMIT"),
            ("stock", "PASS", "IN_STOCK"),
            ("price_policy", "PASS", "PRICES_WITHIN_POLICY"),
            ("manual_review", "PASS", "NO_MANUAL_REVIEW"),
        ]
        assert {f["round"] for f in found["reviewFindings"]} == {1}
        assert all(f["data"] is None for f in found["reviewFindings"])  # Ada is a customer
        assert [f["message"] for f in found["reviewFindings"]] == [
            "Your order is within your credit with us.",
            "Everything you ordered is in stock.",
            "Your prices are ones we accept.",
            "Your order needs no manual check.",
        ]
        staff_view = await order(api, found["id"], as_="staff")
        assert staff_view["reviewFindings"][0]["data"]["exposure"] == "25.00"
        assert staff_view["reviewFindings"][0]["message"] == (
            "Exposure 25.00 EUR is within the credit limit of 1000.00."
        )
        assert await stock(api, "MUG") == (100, 2)


# -- credit_limit -------------------------------------------------------------------------


async def test_credit_limit_counts_unpaid_statements_and_open_orders_and_rejects_beyond_it(
    database_url: str,
) -> None:
    async with shop(database_url, rules(credit_limit={})) as api:
        settled = await reviewed(api, "C-SETTLED", **priced("MUG", "500.00"))
        assert settled["status"] == "APPROVED"
        await move(api, settled["id"], "start_processing", "ship", "deliver", "complete")
        # Its statement: 500.00 + 20% VAT for GB = 600.00, of which 100.00 is paid.
        statement = await statement_of(settled["databaseId"])
        assert statement is not None and statement.total == Decimal("600.00")
        await record_entry(
            api.rt, statement, "matched", "100.00", idempotency_key="bank-1", method="bank"
        )
        open_order = await reviewed(api, "C-OPEN", **priced("MUG", "400.00"))
        assert open_order["status"] == "APPROVED"
        # Bob's orders are his own: they do not use Ada's credit.
        bobs = await reviewed(api, "C-BOB", customerEmail="bob@example.com", **priced("MUG", "900"))
        assert bobs["status"] == "APPROVED"

        over = await reviewed(api, "C-OVER", **priced("MUG", "100.01"))
        assert over["status"] == "REJECTED"
        [finding] = over["reviewFindings"]
        assert (finding["outcome"], finding["code"]) == ("FAIL", "CREDIT_LIMIT_EXCEEDED")
        assert finding["data"] == {
            "currency": "EUR",
            "credit_limit": "1000.00",
            "unpaid_statements": "500.00",
            "open_orders": "400.00",
            "this_order": "100.01",
            "exposure": "1000.01",
            "available": "100.00",
        }
        ada_view = await order(api, over["id"], as_="ada")
        assert ada_view["reviewFindings"] == [
            {
                "round": 1,
                "rule": "credit_limit",
                "outcome": "FAIL",
                "code": "CREDIT_LIMIT_EXCEEDED",
                "message": "Your order of 100.01 EUR exceeds your available credit of 100.00 EUR.",
                "data": None,
            }
        ]

        # Exactly at the limit passes; the rejected order above does not count.
        assert (await reviewed(api, "C-EXACT", **priced("MUG", "100.00")))["status"] == "APPROVED"
        # A cancelled order frees its credit.
        assert (await reviewed(api, "C-MORE", **priced("MUG", "1.00")))["status"] == "REJECTED"
        await move(api, open_order["id"], "cancel")
        assert (await reviewed(api, "C-AFTER", **priced("MUG", "400.00")))["status"] == "APPROVED"


async def test_exposures_asked_together_are_each_what_it_is_alone(database_url: str) -> None:
    """The review of orders that came in together asks their exposures in one query."""
    async with shop(database_url, rules(credit_limit={})) as api:
        settled = await reviewed(api, "T-SETTLED", **priced("MUG", "500.00"))
        await move(api, settled["id"], "start_processing", "ship", "deliver", "complete")
        statement = await statement_of(settled["databaseId"])
        assert statement is not None
        await record_entry(
            api.rt, statement, "matched", "100.00", idempotency_key="bank-t", method="bank"
        )
        ada_orders = [settled] + [
            await reviewed(api, f"T-OPEN-{i}", **priced("MUG", f"{10 * (i + 1)}.00"))
            for i in range(2)
        ]
        bobs = await reviewed(api, "T-BOB", customerEmail="bob@example.com", **priced("MUG", "7"))
        ada, bob = [
            (await Customer.select(Customer.id).where(Customer.email == email).first())["id"]
            for email in ("ada@example.com", "bob@example.com")
        ]
        questions = [(ada, "EUR", o["databaseId"]) for o in ada_orders]
        questions += [(bob, "EUR", bobs["databaseId"]), (ada, "USD", settled["databaseId"])]

        alone = [await customer_exposure(c, cur, excluding_order=o) for c, cur, o in questions]
        with db.count_statements() as log, lookups_together():
            together = await asyncio.gather(
                *(customer_exposure(c, cur, excluding_order=o) for c, cur, o in questions)
            )

        assert together == alone
        assert log.count == 1
        # Leaving out the settled order leaves its unpaid 500 out; leaving out an open one
        # leaves out its own total only.
        assert [(e.unpaid_statements, e.open_orders) for e in alone] == [
            (Decimal("0.00"), Decimal("30.00")),
            (Decimal("500.00"), Decimal("20.00")),
            (Decimal("500.00"), Decimal("10.00")),
            (Decimal("0.00"), Decimal("0.00")),
            (Decimal("0.00"), Decimal("0.00")),
        ]


async def test_a_blocked_customer_always_fails(database_url: str) -> None:
    async with shop(database_url, rules(credit_limit={"on_exceed": "hold"})) as api:
        blocked = await api.data(
            """mutation { upsertCustomer(input: {email: "bob@example.com", name: "Bob",
                 creditLimit: "1000", blocked: true}) { errors { code } } }"""
        )
        assert blocked["upsertCustomer"]["errors"] == []

        found = await reviewed(api, "BLOCKED-1", as_="bob", lines=[{"sku": "MUG", "quantity": 1}])

        assert found["status"] == "REJECTED"
        assert found["reviewFindings"] == [
            {
                "round": 1,
                "rule": "credit_limit",
                "outcome": "FAIL",
                "code": "CUSTOMER_BLOCKED",
                "message": "We cannot accept orders on your account at the moment; please contact "
                "us.",
                "data": None,
            }
        ]


async def test_credit_limit_holds_when_told_and_when_it_cannot_judge(database_url: str) -> None:
    async with shop(database_url, rules(credit_limit={"on_exceed": "hold"})) as api:
        over = await reviewed(api, "H-OVER", **priced("MUG", "1000.01"))
        other_currency = await reviewed(api, "H-USD", currency="USD", **priced("MUG", "5.00"))
        # A customer created by their first order has no credit limit (0) yet.
        new_customer = await reviewed(
            api, "H-NEW", customerEmail="carol@example.com", customerName="Carol", currency="EUR"
        )

        assert verdicts(over) == [("credit_limit", "HOLD", "CREDIT_LIMIT_EXCEEDED")]
        assert verdicts(other_currency) == [("credit_limit", "HOLD", "CREDIT_CURRENCY_MISMATCH")]
        assert verdicts(new_customer) == [("credit_limit", "HOLD", "NO_CREDIT_LIMIT")]
        queue = (await api.data(QUEUE, as_="staff"))["reviewQueue"]
        assert [e["node"]["id"] for e in queue["edges"]] == [
            over["id"],
            other_currency["id"],
            new_customer["id"],
        ]


async def test_credit_limit_approves_customers_without_a_limit_when_told_to_pass(
    database_url: str,
) -> None:
    async with shop(database_url, rules(credit_limit={"on_no_limit": "pass"})) as api:
        new_customer = await reviewed(
            api, "P-NEW", customerEmail="carol@example.com", customerName="Carol", currency="EUR"
        )

        assert new_customer["status"] == "APPROVED"
        assert verdicts(new_customer) == [("credit_limit", "PASS", "NO_CREDIT_LIMIT")]


# -- stock ----------------------------------------------------------------------------------


async def test_stock_rejects_short_lines_naming_the_sku_and_what_is_available(
    database_url: str,
) -> None:
    async with shop(database_url, rules(stock={})) as api:
        lines = [{"sku": "LAMP", "quantity": 6}, {"sku": "MUG", "quantity": 1}]
        found = await reviewed(api, "SHORT-1", lines=lines)

        assert found["status"] == "REJECTED"
        assert found["reviewFindings"] == [
            {
                "round": 1,
                "rule": "stock",
                "outcome": "FAIL",
                "code": "INSUFFICIENT_STOCK",
                "message": "SKU LAMP: 6 requested, 5 available.",
                "data": {"sku": "LAMP", "requested": 6, "available": 5},
            }
        ]
        ada_view = await order(api, found["id"], as_="ada")
        assert ada_view["reviewFindings"][0]["message"] == (
            "Only 5 of Lamp (LAMP) can be delivered; you ordered 6."
        )
        assert await stock(api, "LAMP") == (5, 0)
        assert await stock(api, "MUG") == (100, 0)


async def test_stock_is_reserved_on_approval_released_on_cancel_and_consumed_on_ship(
    database_url: str,
) -> None:
    async with shop(database_url, rules(stock={})) as api:
        three = {"lines": [{"sku": "LAMP", "quantity": 3}]}
        two = {"lines": [{"sku": "LAMP", "quantity": 2}]}
        first = await reviewed(api, "LAMP-1", **three)
        assert first["status"] == "APPROVED"
        assert await stock(api, "LAMP") == (5, 3)

        second = await reviewed(api, "LAMP-2", **three)
        assert second["status"] == "REJECTED"
        assert second["reviewFindings"][0]["message"] == "SKU LAMP: 3 requested, 2 available."

        await move(api, first["id"], "cancel")  # from APPROVED
        assert await stock(api, "LAMP") == (5, 0)

        shipped = await reviewed(api, "LAMP-3", **two)
        await move(api, shipped["id"], "start_processing")
        assert await stock(api, "LAMP") == (5, 2)
        await move(api, shipped["id"], "ship")
        assert await stock(api, "LAMP") == (3, 0)

        dropped = await reviewed(api, "LAMP-4", **two)
        await move(api, dropped["id"], "start_processing", "cancel")  # from PROCESSING
        assert await stock(api, "LAMP") == (3, 0)
        assert (await reviewed(api, "LAMP-5", **three))["status"] == "APPROVED"
        assert await stock(api, "LAMP") == (3, 3)


# -- price_policy ---------------------------------------------------------------------------


async def test_price_policy_holds_discounts_beyond_the_allowed_percent(database_url: str) -> None:
    policy = {"max_discount_percent": "10", "max_discount_percent_by_sku": {"TEE": "30"}}
    async with shop(database_url, rules(price_policy=policy)) as api:
        at_limit = await reviewed(api, "P-MUG-10", **priced("MUG", "11.25"))
        beyond = await reviewed(api, "P-MUG-11", **priced("MUG", "11.24"))
        tee_at_limit = await reviewed(api, "P-TEE-30", **priced("TEE", "17.43"))
        tee_beyond = await reviewed(api, "P-TEE-31", **priced("TEE", "17.42"))
        above_list = await reviewed(api, "P-LAMP", **priced("LAMP", "99.00"))

        assert [o["status"] for o in (at_limit, tee_at_limit, above_list)] == ["APPROVED"] * 3
        assert beyond["status"] == tee_beyond["status"] == "ON_HOLD"
        [finding] = beyond["reviewFindings"]
        assert (finding["outcome"], finding["code"]) == ("HOLD", "DISCOUNT_TOO_HIGH")
        assert finding["message"] == (
            "Line 1, SKU MUG: unit price 11.24 EUR is 10.08% below the list price of "
            "12.50 EUR; at most 10% is allowed."
        )
        assert tee_beyond["reviewFindings"][0]["data"]["max_discount_percent"] == "30"
        ada_view = await order(api, beyond["id"], as_="ada")
        assert ada_view["reviewFindings"][0]["message"] == (
            "The price of Mug (11.24 EUR) is a larger discount than we can accept."
        )


async def test_price_policy_rejects_prices_below_a_floor_when_told(database_url: str) -> None:
    policy = {
        "max_discount_percent": "50",
        "min_unit_price": "1.00",
        "min_unit_price_by_sku": {"LAMP": "60.00"},
        "on_violation": "reject",
    }
    async with shop(database_url, rules(price_policy=policy)) as api:
        lamp = await reviewed(api, "F-LAMP", **priced("LAMP", "59.99"))
        mug = await reviewed(api, "F-MUG", **priced("MUG", "0.99"))
        fine = await reviewed(api, "F-OK", **priced("MUG", "7.00"))

        assert verdicts(lamp) == [("price_policy", "FAIL", "PRICE_BELOW_FLOOR")]
        assert lamp["status"] == mug["status"] == "REJECTED"
        assert mug["reviewFindings"][0]["message"] == (
            "Line 1, SKU MUG: unit price 0.99 EUR is below the floor of 1.00 EUR."
        )
        assert fine["status"] == "APPROVED"
        listed = await api.data("{ plugins { name schema { name type } settings } }")
        [plugin] = [p for p in listed["plugins"] if p["name"] == "price_policy"]
        assert {"name": "min_unit_price_by_sku", "type": "table of decimal"} in plugin["schema"]
        assert plugin["settings"]["min_unit_price_by_sku"] == {"LAMP": "60.00"}


def test_price_policy_settings_are_checked_at_start_up() -> None:
    not_a_number = rules(price_policy={"max_discount_percent_by_sku": {"MUG": "ten"}})
    where = r"plugins\.price_policy\.max_discount_percent_by_sku\.MUG"
    with pytest.raises(PluginConfigError, match=where + ": 'ten' is not a number"):
        create_app(make_settings("sqlite:///unused.db", plugins=not_a_number))
    unknown_choice = rules(price_policy={"on_violation": "ignore"})
    with pytest.raises(PluginConfigError, match="on_violation: must be one of hold, reject"):
        create_app(make_settings("sqlite:///unused.db", plugins=unknown_choice))


# -- manual_review --------------------------------------------------------------------------


async def test_manual_review_holds_large_orders_and_chosen_types(database_url: str) -> None:
    policy = {"amount_over": "100", "types": ["wholesale"]}
    async with shop(database_url, rules(manual_review=policy)) as api:
        at_limit = await reviewed(api, "M-100", as_="ada", lines=[{"sku": "MUG", "quantity": 8}])
        over = await reviewed(api, "M-112", as_="ada", lines=[{"sku": "MUG", "quantity": 9}])
        wholesale = await reviewed(api, "M-WS", type="wholesale")

        assert at_limit["status"] == "APPROVED"
        assert over["status"] == wholesale["status"] == "ON_HOLD"
        assert over["reviewFindings"] == [
            {
                "round": 1,
                "rule": "manual_review",
                "outcome": "HOLD",
                "code": "AMOUNT_OVER",
                "message": "Your order is being checked by our team; we will confirm it shortly.",
                "data": None,
            }
        ]
        assert verdicts(wholesale) == [("manual_review", "HOLD", "ORDER_TYPE")]
        staff_view = await order(api, over["id"], as_="staff")
        assert staff_view["reviewFindings"][0]["message"] == "The total 112.50 EUR is over 100."


async def test_manual_review_holds_first_time_customers_until_an_order_is_approved(
    database_url: str,
) -> None:
    async with shop(database_url, rules(manual_review={"first_time_customers": True})) as api:
        first = await reviewed(api, "FT-1", as_="ada")
        # Still first-time: the earlier order is waiting, not approved.
        second = await reviewed(api, "FT-2", as_="ada")
        assert (
            verdicts(first)
            == verdicts(second)
            == [("manual_review", "HOLD", "FIRST_TIME_CUSTOMER")]
        )

        approved = await api.data(
            'mutation($id: ID!) { approveOrder(id: $id, note: "known") { order { status } } }',
            {"id": first["id"]},
            as_="staff",
        )
        assert approved["approveOrder"]["order"]["status"] == "APPROVED"

        assert (await reviewed(api, "FT-3", as_="ada"))["status"] == "APPROVED"
        assert (await reviewed(api, "FT-BOB", as_="bob"))["status"] == "ON_HOLD"
