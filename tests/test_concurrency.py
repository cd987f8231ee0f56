"""Real concurrent requests through the ASGI app: one winner, the others told why."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from conftest import SUBMIT, Api, order_input, submit

from ordergraph.core import db
from ordergraph.core.orders import order_number

REQUESTS = 20

TRANSITION = """
mutation Move($id: ID!, $v: Int) {
  transitionOrder(id: $id, transition: "start_review", expectedVersion: $v) {
    order { status version }
    errors { field code }
  }
}
"""

ORDER = """
query($id: ID!) { order(id: $id) { status version events { type toStatus } } }
"""

ORDERS = "{ orders { totalCount edges { node { id } } } }"
OWNER = "query($id: ID!) { order(id: $id) { customer { email } lines { sku unitPrice } } }"


async def start_review_at_once(api: Api, order_id: str, version: int | None) -> list[dict]:
    """Fire ``start_review`` ``REQUESTS`` times concurrently; the payloads, in any order."""
    bodies = await asyncio.gather(
        *(
            api.data(TRANSITION, {"id": order_id, "v": version}, as_="staff")
            for _ in range(REQUESTS)
        )
    )
    return [body["transitionOrder"] for body in bodies]


def split(payloads: list[dict[str, Any]]) -> tuple[list[dict], Counter[str]]:
    """(the successful payloads, how often each error code came back)."""
    wins = [p for p in payloads if not p["errors"]]
    codes = Counter(e["code"] for p in payloads for e in p["errors"])
    assert all(len(p["errors"]) == 1 and p["order"] is None for p in payloads if p["errors"])
    return wins, codes


async def assert_moved_once(api: Api, order_id: str) -> None:
    order = (await api.data(ORDER, {"id": order_id}))["order"]
    assert (order["status"], order["version"]) == ("IN_REVIEW", 2)
    assert [(e["type"], e["toStatus"]) for e in order["events"]] == [
        ("submitted", "RECEIVED"),
        ("transition", "IN_REVIEW"),
    ]


async def test_one_of_twenty_transitions_with_the_same_version_wins(api: Api) -> None:
    order = await submit(api)

    wins, codes = split(await start_review_at_once(api, order["id"], version=1))

    assert [w["order"] for w in wins] == [{"status": "IN_REVIEW", "version": 2}]
    assert codes == {"VERSION_CONFLICT": REQUESTS - 1}
    await assert_moved_once(api, order["id"])


async def test_one_of_twenty_transitions_without_a_version_wins(api: Api) -> None:
    order = await submit(api)

    wins, codes = split(await start_review_at_once(api, order["id"], version=None))

    assert [w["order"] for w in wins] == [{"status": "IN_REVIEW", "version": 2}]
    # A loser either read the order before the winner committed (its conditional update
    # then matched nothing) or after (the order is no longer RECEIVED).
    assert set(codes) <= {"VERSION_CONFLICT", "INVALID_TRANSITION"}
    assert codes.total() == REQUESTS - 1
    await assert_moved_once(api, order["id"])


async def test_twenty_deliveries_of_one_external_id_make_one_order(api: Api) -> None:
    bodies = await asyncio.gather(
        *(api.data(SUBMIT, {"input": order_input("EXT-RACE")}) for _ in range(REQUESTS))
    )
    payloads = [body["submitOrder"] for body in bodies]

    assert all(p["errors"] == [] for p in payloads), [p["errors"] for p in payloads]
    assert len({p["order"]["id"] for p in payloads}) == 1
    assert sorted(p["created"] for p in payloads) == [False] * (REQUESTS - 1) + [True]
    listed = (await api.data(ORDERS))["orders"]
    assert listed["totalCount"] == 1
    assert listed["edges"][0]["node"]["id"] == payloads[0]["order"]["id"]


async def test_concurrent_orders_for_one_new_customer_create_that_customer_once(api: Api) -> None:
    new_customer = {
        "customerEmail": "newcomer@example.com",
        "customerName": "Newcomer",
        "currency": "EUR",
    }
    bodies = await asyncio.gather(
        *(api.data(SUBMIT, {"input": order_input(f"NEW-{i}", **new_customer)}) for i in range(10))
    )
    payloads = [body["submitOrder"] for body in bodies]
    assert [p["errors"] for p in payloads] == [[]] * 10
    assert all(p["created"] for p in payloads)
    customers = await api.data('{ customers(search: "newcomer") { totalCount } }')
    assert customers["customers"]["totalCount"] == 1


async def test_concurrent_submissions_share_their_reads_and_each_gets_its_own(api: Api) -> None:
    """The customer and product reads (and on PostgreSQL the ids) of submissions that
    arrive together go in shared statements; each order still gets its own customer,
    prices and number."""
    who = ["ada@example.com", "bob@example.com"]
    what = [("MUG", "12.50"), ("TEE", "24.90"), ("LAMP", "79.00")]
    inputs = [
        order_input(
            f"SHARED-{i}",
            customerEmail=who[i % 2],
            lines=[{"sku": what[i % 3][0], "quantity": 1}],
        )
        for i in range(REQUESTS)
    ]
    with db.count_statements() as log:
        bodies = await asyncio.gather(*(api.data(SUBMIT, {"input": i}) for i in inputs))

    payloads = [body["submitOrder"] for body in bodies]
    assert [p["errors"] for p in payloads] == [[]] * REQUESTS
    for n, payload in enumerate(payloads):
        order = (await api.data(OWNER, {"id": payload["order"]["id"]}))["order"]
        assert order["customer"]["email"] == who[n % 2]
        assert [(line["sku"], line["unitPrice"]) for line in order["lines"]] == [what[n % 3]]
    numbers = [p["order"]["number"] for p in payloads]
    assert len(set(numbers)) == REQUESTS
    assert all(order_number(p["order"]["databaseId"]) == p["order"]["number"] for p in payloads)
    reads = Counter(
        table
        for statement in log.statements
        for table in ("customers", "products", "nextval")
        if statement.startswith("SELECT") and table in statement
    )
    assert 0 < reads["customers"] <= REQUESTS // 2, log.statements
    assert 0 < reads["products"] <= REQUESTS // 2, log.statements
    assert reads["nextval"] <= REQUESTS // 2, log.statements
