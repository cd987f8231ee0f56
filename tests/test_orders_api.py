"""The order core as a client sees it: GraphQL over the real ASGI app, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import strawberry
from asgi_lifespan import LifespanManager
from conftest import ADDRESS, SUBMIT, Api, make_settings, order_input, submit

import plugins.channels.web
from ordergraph.app import create_app
from ordergraph.core import auth
from ordergraph.core.auth import Principal, Role
from ordergraph.core.limits import MAX_PAGE
from ordergraph.core.orders import LineDraft, OrderDraft, submit_order
from ordergraph.graphql.schema import MAX_ALIASES, MAX_DEPTH
from ordergraph.graphql.types import order_global_id
from ordergraph.plugin_api import PluginInfo, SchemaExtension, hookimpl

ADMIN = Principal(Role.ADMIN, "seeder")

ORDER = """
query Order($id: ID!) {
  order(id: $id) {
    id number status version externalId channel total
    customer { email name }
    availableTransitions { name }
    events { type fromStatus toStatus actor data }
  }
}
"""

ORDER_BY_NUMBER = """
query ByNumber($number: String!) { orderByNumber(number: $number) { id number } }
"""

ORDERS = """
query Orders($filter: OrderFilter, $first: Int, $after: String) {
  orders(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id number externalId status createdAt customer { email } } }
  }
}
"""

TRANSITION = """
mutation Move($id: ID!, $t: String!, $v: Int, $reason: String) {
  transitionOrder(id: $id, transition: $t, expectedVersion: $v, reason: $reason) {
    order { id status version }
    errors { field code message }
  }
}
"""

CANCEL = """
mutation Cancel($id: ID!, $reason: String) {
  cancelOrder(id: $id, reason: $reason) {
    order { id status version }
    errors { field code message }
  }
}
"""

CUSTOMERS = """
query Customers($search: String) {
  customers(search: $search) { totalCount edges { node { id email name creditLimit } } }
}
"""

PRODUCTS = """
query Products($search: String, $first: Int, $after: String) {
  products(search: $search, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { sku name listPrice currency stockOnHand active } }
  }
}
"""

UPSERT_PRODUCTS = """
mutation Upsert($input: [ProductInput!]!) {
  upsertProducts(input: $input) {
    products { id sku listPrice stockOnHand active }
    errors { field code message }
  }
}
"""

UPSERT_CUSTOMER = """
mutation Upsert($input: CustomerInput!) {
  upsertCustomer(input: $input) {
    customer { id email name creditLimit currency }
    errors { field code message }
  }
}
"""


# -- Helpers ---------------------------------------------------------------------------


async def try_submit(api: Api, order: dict[str, Any], *, as_: str = "admin") -> dict[str, Any]:
    """The submitOrder payload, whatever it holds."""
    return (await api.data(SUBMIT, {"input": order}, as_=as_))["submitOrder"]


async def move(
    api: Api,
    order_id: str,
    transition: str,
    *,
    version: int | None = None,
    reason: str | None = None,
    as_: str = "admin",
) -> dict[str, Any]:
    """The transitionOrder payload."""
    variables = {"id": order_id, "t": transition, "v": version, "reason": reason}
    return (await api.data(TRANSITION, variables, as_=as_))["transitionOrder"]


async def moved(api: Api, order_id: str, *transitions: str, as_: str = "admin") -> dict[str, Any]:
    """Fire transitions that must succeed; return the order after the last one."""
    order: dict[str, Any] = {}
    for transition in transitions:
        payload = await move(api, order_id, transition, as_=as_)
        assert payload["errors"] == [], payload["errors"]
        order = payload["order"]
    return order


async def orders(api: Api, *, as_: str = "admin", **variables: Any) -> dict[str, Any]:
    return (await api.data(ORDERS, variables, as_=as_))["orders"]


async def order_count(api: Api) -> int:
    return (await orders(api))["totalCount"]


async def customer_count(api: Api) -> int:
    return (await api.data(CUSTOMERS))["customers"]["totalCount"]


async def customer_id(api: Api, email: str) -> str:
    edges = (await api.data(CUSTOMERS, {"search": email}))["customers"]["edges"]
    [match] = [e["node"]["id"] for e in edges if e["node"]["email"] == email]
    return match


def problems(payload: dict[str, Any]) -> set[tuple[str | None, str]]:
    return {(e["field"], e["code"]) for e in payload["errors"]}


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors", [])]


async def submit_many(api: Api, count: int, prefix: str = "BULK") -> None:
    """Store ``count`` orders straight through the core, without an HTTP round trip each."""
    for i in range(count):
        draft = OrderDraft(
            channel="web",
            external_id=f"{prefix}-{i}",
            lines=[LineDraft("MUG", 1)],
            customer_email="ada@example.com",
            shipping_address=dict(ADDRESS),
        )
        assert (await submit_order(api.rt, draft, ADMIN)).created


# -- submitOrder -------------------------------------------------------------------------


async def test_a_valid_order_is_received_with_exact_totals(api: Api) -> None:
    lines = [
        {"sku": "MUG", "quantity": 3},  # list price 12.50
        {"sku": "TEE", "quantity": 2, "unitPrice": "19.99"},  # the channel's own price
        {"sku": "LAMP", "quantity": 1, "unitPrice": "0.10"},
    ]
    order = await submit(api, "EXT-VALID", lines=lines)

    assert order["status"] == "RECEIVED"
    assert order["version"] == 1
    assert order["number"] == f"SO-{order['databaseId']:06d}"
    assert order["currency"] == "EUR"
    assert [(line["sku"], line["unitPrice"], line["total"]) for line in order["lines"]] == [
        ("MUG", "12.50", "37.50"),
        ("TEE", "19.99", "39.98"),
        ("LAMP", "0.10", "0.10"),
    ]
    assert order["total"] == "77.58"  # exact: 0.10 + 39.98 + 37.50 in floats is not


async def test_an_invalid_order_returns_every_problem_and_stores_nothing(api: Api) -> None:
    before = (await order_count(api), await customer_count(api))
    invalid = {
        "externalId": "EXT-BAD",
        "currency": "EURO",
        "lines": [
            {"sku": "NOPE", "quantity": 1},
            {"sku": "MUG", "quantity": 0},
            {"sku": "TEE", "quantity": -3},
            {"sku": "LAMP", "quantity": 1, "unitPrice": "-1.00"},
        ],
        "shippingAddress": {"name": "Ada Lovelace"},
    }
    payload = await try_submit(api, invalid)

    assert payload["order"] is None
    assert problems(payload) == {
        ("customerEmail", "REQUIRED"),
        ("currency", "INVALID_CURRENCY"),
        ("lines[0].sku", "UNKNOWN_SKU"),
        ("lines[1].quantity", "INVALID_QUANTITY"),
        ("lines[2].quantity", "INVALID_QUANTITY"),
        ("lines[3].unitPrice", "INVALID_PRICE"),
        ("shippingAddress.line1", "REQUIRED"),
        ("shippingAddress.city", "REQUIRED"),
        ("shippingAddress.postalCode", "REQUIRED"),
        ("shippingAddress.country", "REQUIRED"),
    }
    assert all(e["message"] for e in payload["errors"])
    assert (await order_count(api), await customer_count(api)) == before


async def test_a_price_finer_than_the_currency_is_refused_and_no_customer_is_created(
    api: Api,
) -> None:
    before = (await order_count(api), await customer_count(api))
    payload = await try_submit(
        api,
        order_input(
            "EXT-FINE",
            customerEmail="newcomer@example.com",
            customerName="New Comer",
            currency="EUR",
            lines=[{"sku": "MUG", "quantity": 1, "unitPrice": "1.001"}],
        ),
    )
    assert problems(payload) == {("lines[0].unitPrice", "INVALID_PRICE")}
    assert "decimal places" in payload["errors"][0]["message"]
    assert (await order_count(api), await customer_count(api)) == before


@pytest.mark.parametrize("currency", ["XYZ", "XAU"])
async def test_a_currency_that_is_not_iso_4217_is_refused(api: Api, currency: str) -> None:
    # Three letters are not enough: an unknown code would be stored with a guessed minor unit.
    payload = await try_submit(
        api,
        order_input(
            "EXT-XYZ",
            customerEmail="newcomer@example.com",
            customerName="New Comer",
            currency=currency,
        ),
    )
    assert problems(payload) == {("currency", "INVALID_CURRENCY")}
    assert await order_count(api) == 0


async def test_amounts_too_large_to_store_are_problems_not_crashes(api: Api) -> None:
    too_large = "100000000000000000"  # 10^19 cents: more than a 64-bit column holds
    huge_price = await try_submit(
        api, order_input("EXT-HUGE", lines=[{"sku": "MUG", "quantity": 1, "unitPrice": too_large}])
    )
    # Each price fits, the total of a million of them does not.
    huge_total = await try_submit(
        api,
        order_input(
            "EXT-MANY", lines=[{"sku": "MUG", "quantity": 1_000_000, "unitPrice": "100000000000"}]
        ),
    )

    assert problems(huge_price) == {("lines[0].unitPrice", "INVALID_PRICE")}
    assert "too large" in huge_price["errors"][0]["message"]
    assert problems(huge_total) == {("lines", "INVALID_PRICE")}
    assert await order_count(api) == 0


async def test_the_same_external_id_twice_is_one_order(api: Api) -> None:
    first = await try_submit(api, order_input("EXT-TWICE"))
    # A redelivery, even with different content, returns the stored order untouched.
    again = await try_submit(api, order_input("EXT-TWICE", lines=[{"sku": "TEE", "quantity": 9}]))

    assert first["created"] is True
    assert again["created"] is False
    assert again["errors"] == []
    assert again["order"]["id"] == first["order"]["id"]
    assert again["order"]["lines"] == first["order"]["lines"]
    assert await order_count(api) == 1


async def test_a_new_email_with_a_name_creates_the_customer_once(api: Api) -> None:
    before = await customer_count(api)
    # A new customer has no currency yet, so the order names it.
    new = {"customerEmail": "Grace@Example.com", "customerName": "Grace Hopper", "currency": "EUR"}
    first = await submit(api, "EXT-GRACE-1", **new)
    second = await submit(api, "EXT-GRACE-2", **new)

    assert await customer_count(api) == before + 1
    data = await api.data(ORDER, {"id": first["id"]})
    assert data["order"]["customer"] == {"email": "grace@example.com", "name": "Grace Hopper"}
    grace = await customer_id(api, "grace@example.com")
    mine = await orders(api, filter={"customerId": grace})
    assert {e["node"]["id"] for e in mine["edges"]} == {first["id"], second["id"]}


async def test_a_new_email_without_a_name_is_refused(api: Api) -> None:
    before = await customer_count(api)
    payload = await try_submit(
        api,
        order_input(
            "EXT-NONAME",
            customerEmail="nobody@example.com",
            shippingAddress={**ADDRESS, "name": ""},
        ),
    )
    assert ("customerName", "UNKNOWN_CUSTOMER") in problems(payload)
    assert await customer_count(api) == before


# -- Reading orders --------------------------------------------------------------------------


async def test_an_order_is_found_by_id_and_by_number_with_or_without_prefix(api: Api) -> None:
    order = await submit(api, "EXT-FIND")
    number = order["number"]

    assert (await api.data(ORDER, {"id": order["id"]}))["order"]["number"] == number
    for spelling in (number, number.removeprefix("SO-"), number.lower(), str(order["databaseId"])):
        found = (await api.data(ORDER_BY_NUMBER, {"number": spelling}))["orderByNumber"]
        assert found == {"id": order["id"], "number": number}, spelling

    missing = order["databaseId"] + 1000
    assert (await api.data(ORDER, {"id": str(missing)}))["order"] is None
    assert (await api.data(ORDER, {"id": "not-a-number"}))["order"] is None
    assert (await api.data(ORDER_BY_NUMBER, {"number": f"SO-{missing}"}))["orderByNumber"] is None
    assert (await api.data(ORDER_BY_NUMBER, {"number": "XX-1"}))["orderByNumber"] is None


async def test_orders_filter_by_status_channel_customer_and_time(api: Api) -> None:
    ada_first = await submit(api, "EXT-ADA-1")
    bob = await submit(api, "EXT-BOB-1", customerEmail="bob@example.com")
    ada_second = await submit(api, "EXT-ADA-2")
    file_order = await submit_order(
        api.rt,
        OrderDraft(
            channel="csv",
            external_id="ROW-7",
            lines=[LineDraft("TEE", 1)],
            customer_email="bob@example.com",
            shipping_address=dict(ADDRESS),
        ),
        ADMIN,
    )
    file_id = order_global_id(file_order.order.id)
    await moved(api, bob["id"], "start_review")

    async def ids(**filter: Any) -> list[str]:
        page = await orders(api, filter=filter)
        assert page["totalCount"] == len(page["edges"])
        return [edge["node"]["id"] for edge in page["edges"]]

    everything = await ids()
    assert everything == [file_id, ada_second["id"], bob["id"], ada_first["id"]]
    assert await ids(status=["IN_REVIEW"]) == [bob["id"]]
    assert set(await ids(status=["RECEIVED", "IN_REVIEW"])) == set(everything)
    assert await ids(channel="csv") == [file_id]
    assert set(await ids(channel="web")) == {ada_first["id"], bob["id"], ada_second["id"]}
    bob_id = await customer_id(api, "bob@example.com")
    assert await ids(customerId=bob_id) == [file_id, bob["id"]]
    assert await ids(customerId=bob_id, channel="web") == [bob["id"]]

    created = {e["node"]["id"]: e["node"]["createdAt"] for e in (await orders(api))["edges"]}
    middle = created[bob["id"]]
    assert await ids(createdAfter=middle) == [file_id, ada_second["id"], bob["id"]]
    assert await ids(createdBefore=middle) == [ada_first["id"]]
    last = created[file_id]
    assert await ids(createdAfter=created[ada_second["id"]], createdBefore=last) == [
        ada_second["id"]
    ]


async def test_orders_search_matches_number_external_id_and_customer(api: Api) -> None:
    ada = await submit(api, "SHOP-ALPHA")
    bob = await submit(api, "SHOP_BETA", customerEmail="bob@example.com")
    grace = await submit(
        api,
        "MARKET-1",
        customerEmail="grace_h@example.com",
        customerName="Grace Hopper",
        currency="EUR",
    )

    async def found(text: str) -> set[str]:
        page = await orders(api, filter={"search": text})
        assert page["totalCount"] == len(page["edges"])
        return {edge["node"]["id"] for edge in page["edges"]}

    assert await found(bob["number"]) == {bob["id"]}
    assert await found(bob["number"].removeprefix("SO-")) == {bob["id"]}
    assert await found("beta") == {bob["id"]}  # part of the external id, any case
    assert await found("shop") == {ada["id"], bob["id"]}
    assert await found("ada@example") == {ada["id"]}  # customer e-mail
    assert await found("hopper") == {grace["id"]}  # customer name
    assert await found("nothing-like-this") == set()
    # LIKE wildcards are plain text: "_" is one underscore, "%" is a percent sign.
    assert await found("shop_") == {bob["id"]}
    assert await found("grace_h@") == {grace["id"]}
    assert await found("%") == set()


async def test_keyset_pages_walk_every_order_once(api: Api) -> None:
    submitted = [(await submit(api, f"EXT-PAGE-{i}"))["id"] for i in range(5)]

    seen: list[str] = []
    pages: list[tuple[bool, bool]] = []
    after = None
    while True:
        page = await orders(api, first=2, after=after)
        assert page["totalCount"] == 5
        seen += [edge["node"]["id"] for edge in page["edges"]]
        info = page["pageInfo"]
        pages.append((info["hasPreviousPage"], info["hasNextPage"]))
        assert info["startCursor"] == page["edges"][0]["cursor"]
        assert info["endCursor"] == page["edges"][-1]["cursor"]
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]

    assert pages == [(False, True), (True, True), (True, False)]
    assert seen == list(reversed(submitted))  # newest first, no duplicate, no gap


async def test_a_page_holds_at_most_one_hundred_orders(api: Api) -> None:
    await submit_many(api, MAX_PAGE + 1)

    page = await orders(api, first=MAX_PAGE)
    assert len(page["edges"]) == MAX_PAGE
    assert page["pageInfo"]["hasNextPage"] is True
    assert page["totalCount"] == MAX_PAGE + 1

    rest = await orders(api, first=MAX_PAGE, after=page["pageInfo"]["endCursor"])
    assert len(rest["edges"]) == 1
    assert rest["pageInfo"]["hasNextPage"] is False
    assert rest["pageInfo"]["hasPreviousPage"] is True


async def test_an_empty_list_has_no_cursors(api: Api) -> None:
    page = await orders(api)
    assert page["edges"] == []
    assert page["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": False,
        "startCursor": None,
        "endCursor": None,
    }


@pytest.mark.parametrize(
    ("list_field", "first"),
    [("orders", 0), ("orders", -1), ("orders", MAX_PAGE + 1), ("products", 0),
     ("customers", 500), ("reviewQueue", 0), ("importErrors", -5), ("myWork", 0),
     ("alerts", 101)],
)  # fmt: skip
async def test_a_page_size_outside_1_to_100_is_refused(
    api: Api, list_field: str, first: int
) -> None:
    # Once the answer to 0 was 20 items and to -1 one item: a guess, not what was asked.
    await submit(api)
    selection = "__typename" if list_field in ("myWork", "alerts") else "totalCount"
    body = await api.gql(
        f"{{ {list_field}(first: {first}) {{ {selection} }} }}",
        as_="staff" if list_field == "myWork" else "admin",
    )
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "OUT_OF_RANGE", "field": "first"}
    assert error["message"] == f"first must be from 1 to {MAX_PAGE} (got {first})."


@pytest.mark.parametrize("cursor", ["garbage!", "cHJvZHVjdDox", "b3JkZXI6eA=="])
async def test_a_malformed_cursor_is_a_clear_error(api: Api, cursor: str) -> None:
    # Not base64; a product cursor ("product:1"); an order cursor without a number.
    await submit(api)
    body = await api.gql(ORDERS, {"after": cursor})
    assert body["data"] is None
    assert error_codes(body) == ["INVALID_CURSOR"]
    assert "is not a cursor of this list" in body["errors"][0]["message"]


# -- Global ids and node(id:) -------------------------------------------------------------------

NODE = """
query Node($id: ID!) {
  node(id: $id) { __typename id ... on Order { databaseId number status } }
}
"""
NODES = "query Nodes($ids: [ID!]!) { nodes(ids: $ids) { ... on Order { number } } }"


def global_id(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_relay_refetches_an_order_by_its_global_id(api: Api) -> None:
    order = await submit(api, "EXT-NODE")
    assert order["id"] == global_id(f"Order:{order['databaseId']}")

    found = (await api.data(NODE, {"id": order["id"]}))["node"]
    assert found == {
        "__typename": "Order",
        "id": order["id"],
        "databaseId": order["databaseId"],
        "number": order["number"],
        "status": "RECEIVED",
    }
    # Arguments that name an order take its global id and, as before, its number.
    by_global = (await api.data(ORDER, {"id": order["id"]}))["order"]
    assert by_global == (await api.data(ORDER, {"id": str(order["databaseId"])}))["order"]
    assert by_global["id"] == order["id"]

    not_an_order = [
        str(order["databaseId"]),  # a number is not a global id
        global_id(f"Task:{order['databaseId']}"),
        global_id("Order:0"),
        global_id("Order:99999999999"),
        "garbage!",
    ]
    for other in not_an_order:
        assert (await api.data(NODE, {"id": other}))["node"] is None, other
    listed = await api.data(NODES, {"ids": [order["id"], "garbage!", order["id"]]})
    number = {"number": order["number"]}
    assert listed["nodes"] == [number, None, number]


async def test_node_answers_another_customers_order_as_one_that_does_not_exist(api: Api) -> None:
    bobs = await submit(api, "EXT-BOB", customerEmail="bob@example.com")
    adas = await submit(api, "EXT-ADA", as_="ada")

    assert (await api.data(NODE, {"id": bobs["id"]}, as_="ada"))["node"] is None
    assert (await api.data(NODE, {"id": adas["id"]}, as_="ada"))["node"]["number"] == adas["number"]
    assert (await api.data(NODES, {"ids": [bobs["id"], adas["id"]]}, as_="ada"))["nodes"] == [
        None,
        {"number": adas["number"]},
    ]
    refused = await api.gql(NODE, {"id": adas["id"]}, as_="integrator")
    assert error_codes(refused) == ["FORBIDDEN"]


async def test_nodes_takes_at_most_fifty_ids(api: Api) -> None:
    order = await submit(api)
    assert len((await api.data(NODES, {"ids": [order["id"]] * 50}))["nodes"]) == 50
    body = await api.gql(NODES, {"ids": [order["id"]] * 51})
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "OUT_OF_RANGE", "field": "ids"}


# -- Transitions -------------------------------------------------------------------------------


async def test_an_unknown_or_impossible_transition_is_refused(api: Api) -> None:
    order = await submit(api)

    unknown = await move(api, order["id"], "teleport")
    assert problems(unknown) == {("transition", "INVALID_TRANSITION")}
    assert "teleport" in unknown["errors"][0]["message"]

    from_wrong_status = await move(api, order["id"], "ship")
    assert problems(from_wrong_status) == {("transition", "INVALID_TRANSITION")}
    assert "RECEIVED" in from_wrong_status["errors"][0]["message"]

    current = (await api.data(ORDER, {"id": order["id"]}))["order"]
    assert (current["status"], current["version"]) == ("RECEIVED", 1)
    assert [e["type"] for e in current["events"]] == ["submitted"]


async def test_a_stale_expected_version_is_a_conflict(api: Api) -> None:
    order = await submit(api)
    assert (await move(api, order["id"], "start_review", version=1))["order"]["version"] == 2

    stale = await move(api, order["id"], "approve", version=1)
    assert problems(stale) == {("expectedVersion", "VERSION_CONFLICT")}
    assert stale["order"] is None
    # A stale caller is told to reload, not judged on a status it has not seen yet.
    repeated = await move(api, order["id"], "start_review", version=1)
    assert problems(repeated) == {("expectedVersion", "VERSION_CONFLICT")}

    current = (await api.data(ORDER, {"id": order["id"]}))["order"]
    assert (current["status"], current["version"]) == ("IN_REVIEW", 2)
    fresh = await move(api, order["id"], "approve", version=2)
    assert fresh["order"] == {"id": order["id"], "status": "APPROVED", "version": 3}


async def test_cancel_a_received_order_records_the_reason(api: Api) -> None:
    order = await submit(api)
    payload = (await api.data(CANCEL, {"id": order["id"], "reason": "ordered twice"}, as_="staff"))[
        "cancelOrder"
    ]
    assert payload["errors"] == []
    assert payload["order"]["status"] == "CANCELLED"

    events = (await api.data(ORDER, {"id": order["id"]}))["order"]["events"]
    assert events[-1]["type"] == "transition"
    assert (events[-1]["fromStatus"], events[-1]["toStatus"]) == ("RECEIVED", "CANCELLED")
    assert events[-1]["actor"] == "staff:sam"
    assert events[-1]["data"]["transition"] == "cancel"
    assert events[-1]["data"]["reason"] == "ordered twice"


async def test_a_shipped_order_cannot_be_cancelled(api: Api) -> None:
    order = await submit(api)
    shipped = await moved(api, order["id"], "start_review", "approve", "start_processing", "ship")
    assert shipped["status"] == "SHIPPED"

    payload = (await api.data(CANCEL, {"id": order["id"]}))["cancelOrder"]
    assert problems(payload) == {("transition", "INVALID_TRANSITION")}
    assert (await api.data(ORDER, {"id": order["id"]}))["order"]["status"] == "SHIPPED"


async def test_available_transitions_depend_on_the_role(api: Api) -> None:
    order = await submit(api)

    async def available(as_: str) -> set[str]:
        data = await api.data(ORDER, {"id": order["id"]}, as_=as_)
        return {t["name"] for t in data["order"]["availableTransitions"]}

    assert await available("ada") == {"cancel"}
    assert await available("staff") == {"start_review", "cancel"}
    assert await available("admin") == {"start_review", "cancel"}

    await moved(api, order["id"], "start_review")
    assert await available("ada") == {"cancel"}
    assert await available("staff") == {"approve", "hold", "reject", "cancel"}


async def test_the_timeline_shows_who_did_what_and_why(api: Api) -> None:
    order = await submit(api)
    await move(api, order["id"], "start_review", as_="staff")
    await move(api, order["id"], "hold", reason="address looks odd", as_="staff")
    await move(api, order["id"], "reject", reason="fraud suspected", as_="admin")

    events = (await api.data(ORDER, {"id": order["id"]}))["order"]["events"]
    assert [
        (e["type"], e["fromStatus"], e["toStatus"], e["actor"], e["data"].get("reason"))
        for e in events
    ] == [
        ("submitted", None, "RECEIVED", "admin:alice", None),
        ("transition", "RECEIVED", "IN_REVIEW", "staff:sam", None),
        ("transition", "IN_REVIEW", "ON_HOLD", "staff:sam", "address looks odd"),
        ("transition", "ON_HOLD", "REJECTED", "admin:alice", "fraud suspected"),
    ]
    assert events[0]["data"] == {"channel": "web"}


# -- Status graph ----------------------------------------------------------------------------

STATUS_GRAPH = """
{ statusGraph { initial states { name count } transitions { name from to roles } } }
"""


def state_counts(graph: dict[str, Any]) -> dict[str, int]:
    return {state["name"]: state["count"] for state in graph["states"]}


async def test_the_status_graph_counts_live_orders(api: Api) -> None:
    ada_orders = [await submit(api, f"EXT-ADA-{i}") for i in range(2)]
    bob_order = await submit(api, "EXT-BOB", customerEmail="bob@example.com")
    await moved(api, bob_order["id"], "start_review")

    graph = (await api.data(STATUS_GRAPH))["statusGraph"]
    counts = state_counts(graph)
    assert graph["initial"] == "RECEIVED"
    assert counts["RECEIVED"] == 2
    assert counts["IN_REVIEW"] == 1
    assert sum(counts.values()) == 3
    assert {"APPROVED", "SHIPPED", "SETTLED", "CANCELLED"} <= counts.keys()

    transitions = {t["name"]: t for t in graph["transitions"]}
    assert (transitions["start_review"]["from"], transitions["start_review"]["to"]) == (
        ["RECEIVED"],
        "IN_REVIEW",
    )
    assert set(transitions["cancel"]["from"]) == {
        "RECEIVED",
        "IN_REVIEW",
        "ON_HOLD",
        "APPROVED",
        "PROCESSING",
    }
    assert "CUSTOMER" in transitions["cancel"]["roles"]
    assert "CUSTOMER" not in transitions["start_review"]["roles"]

    as_bob = state_counts((await api.data(STATUS_GRAPH, as_="bob"))["statusGraph"])
    assert (as_bob["RECEIVED"], as_bob["IN_REVIEW"], sum(as_bob.values())) == (0, 1, 1)
    as_ada = state_counts((await api.data(STATUS_GRAPH, as_="ada"))["statusGraph"])
    assert (as_ada["RECEIVED"], as_ada["IN_REVIEW"]) == (len(ada_orders), 0)


# -- Master data -------------------------------------------------------------------------------


def product(sku: str, price: str = "5.00", **overrides: Any) -> dict[str, Any]:
    values = {"sku": sku, "name": f"Product {sku}", "listPrice": price, "currency": "EUR"}
    values.update(overrides)
    return values


async def find_product(api: Api, sku: str) -> dict[str, Any] | None:
    edges = (await api.data(PRODUCTS, {"search": sku}))["products"]["edges"]
    matches = [e["node"] for e in edges if e["node"]["sku"] == sku]
    return matches[0] if matches else None


async def test_upsert_products_creates_then_updates_by_sku(api: Api) -> None:
    created = (await api.data(UPSERT_PRODUCTS, {"input": [product("PEN", "2.40", stockOnHand=7)]}))[
        "upsertProducts"
    ]
    assert created["errors"] == []
    [pen] = created["products"]
    assert (pen["sku"], pen["listPrice"], pen["stockOnHand"], pen["active"]) == (
        "PEN",
        "2.40",
        7,
        True,
    )

    updated = (
        await api.data(
            UPSERT_PRODUCTS,
            {"input": [product("PEN", "2.90", stockOnHand=3, active=False)]},
            as_="staff",
        )
    )["upsertProducts"]
    assert updated["errors"] == []
    assert updated["products"][0]["id"] == pen["id"]
    stored = await find_product(api, "PEN")
    assert stored is not None
    assert (stored["listPrice"], stored["stockOnHand"], stored["active"]) == ("2.90", 3, False)
    assert (await api.data(PRODUCTS, {"search": "PEN"}))["products"]["totalCount"] == 1


async def test_upsert_products_is_all_or_none(api: Api) -> None:
    batch = [
        product("MUG", "99.00"),  # a valid update of a seeded product
        product("CUP", "-1.00"),
        product("BOWL", "3.001"),
        product("PLATE", "4.00", name=" ", stockOnHand=-2),
    ]
    payload = (await api.data(UPSERT_PRODUCTS, {"input": batch}))["upsertProducts"]

    assert payload["products"] == []
    assert problems(payload) == {
        ("input[1].listPrice", "INVALID_PRICE"),
        ("input[2].listPrice", "INVALID_PRICE"),
        ("input[3].name", "REQUIRED"),
        ("input[3].stockOnHand", "INVALID_QUANTITY"),
    }
    mug = await find_product(api, "MUG")
    assert mug is not None and mug["listPrice"] == "12.50"
    for sku in ("CUP", "BOWL", "PLATE"):
        assert await find_product(api, sku) is None


async def test_products_search_and_pagination(api: Api) -> None:
    cards = [product(f"CARD-{i}", name=f"Greeting card {i}") for i in range(3)]
    await api.data(UPSERT_PRODUCTS, {"input": cards})

    first = (await api.data(PRODUCTS, {"first": 4}))["products"]
    assert first["totalCount"] == 6
    assert first["pageInfo"]["hasNextPage"] is True
    rest = (await api.data(PRODUCTS, {"first": 4, "after": first["pageInfo"]["endCursor"]}))[
        "products"
    ]
    assert rest["pageInfo"]["hasNextPage"] is False
    skus = [e["node"]["sku"] for e in first["edges"] + rest["edges"]]
    assert sorted(skus) == sorted(["MUG", "TEE", "LAMP", "CARD-0", "CARD-1", "CARD-2"])
    assert len(skus) == len(set(skus))

    by_name = (await api.data(PRODUCTS, {"search": "greeting"}))["products"]
    assert {e["node"]["sku"] for e in by_name["edges"]} == {"CARD-0", "CARD-1", "CARD-2"}
    by_sku = (await api.data(PRODUCTS, {"search": "lamp"}))["products"]
    assert [e["node"]["sku"] for e in by_sku["edges"]] == ["LAMP"]


async def test_upsert_customer_by_email_ignores_case(api: Api) -> None:
    before = await customer_count(api)
    created = (
        await api.data(
            UPSERT_CUSTOMER,
            {"input": {"email": "Grace@Example.com", "name": "Grace", "creditLimit": "500.00"}},
        )
    )["upsertCustomer"]
    assert created["errors"] == []
    assert created["customer"]["email"] == "grace@example.com"

    updated = (
        await api.data(
            UPSERT_CUSTOMER,
            {"input": {"email": "GRACE@example.COM", "name": "Grace Hopper", "creditLimit": "750"}},
            as_="staff",
        )
    )["upsertCustomer"]
    assert updated["errors"] == []
    assert updated["customer"]["id"] == created["customer"]["id"]
    assert (updated["customer"]["name"], updated["customer"]["creditLimit"]) == (
        "Grace Hopper",
        "750.00",
    )
    assert await customer_count(api) == before + 1

    found = (await api.data(CUSTOMERS, {"search": "hopper"}))["customers"]
    assert [e["node"]["email"] for e in found["edges"]] == ["grace@example.com"]
    assert (await api.data(CUSTOMERS, {"search": "example.com"}))["customers"]["totalCount"] == 3

    invalid = (await api.data(UPSERT_CUSTOMER, {"input": {"email": "not-an-email", "name": ""}}))[
        "upsertCustomer"
    ]
    assert problems(invalid) == {("email", "INVALID_VALUE"), ("name", "REQUIRED")}
    assert await customer_count(api) == before + 1


async def test_an_inactive_product_cannot_be_ordered(api: Api) -> None:
    payload = (await api.data(UPSERT_PRODUCTS, {"input": [product("MUG", "12.50", active=False)]}))[
        "upsertProducts"
    ]
    assert payload["errors"] == []

    refused = await try_submit(api, order_input(lines=[{"sku": "MUG", "quantity": 1}]))
    assert problems(refused) == {("lines[0].sku", "INACTIVE_SKU")}
    assert await order_count(api) == 0


# -- Query limits --------------------------------------------------------------------------------


@strawberry.type
class Nesting:
    """A type that contains itself, so a valid query can be as deep as a client likes."""

    level: int

    @strawberry.field
    def inner(self) -> Nesting:
        return Nesting(level=self.level + 1)


@strawberry.type
class NestingQuery:
    @strawberry.field
    def nesting(self) -> Nesting:
        return Nesting(level=1)


class NestingPlugin:
    """A plugin contributing a recursive type, as a third-party plugin might."""

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(
            category="other", description="A recursive test type.", enabled_by_default=True
        )

    @hookimpl
    def graphql_schema(self) -> SchemaExtension:
        return SchemaExtension(query=(NestingQuery,))


@pytest.fixture
async def nesting_api(database_url: str) -> AsyncIterator[Api]:
    app = create_app(
        make_settings(database_url),
        installed_plugins={"web": plugins.channels.web, "nesting": NestingPlugin()},
    )
    async with LifespanManager(app) as manager:
        tokens = {"admin": await auth.create_token("admin", name="alice")}
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client=client, rt=app.state.rt, tokens=tokens)


def nested_query(levels: int) -> str:
    """``{ nesting { inner { ... { level } } } }`` with ``levels`` object fields."""
    return "{ nesting " + "{ inner " * (levels - 1) + "{ level }" + " }" * (levels - 1) + " }"


async def test_a_query_deeper_than_the_limit_is_refused(nesting_api: Api) -> None:
    allowed = await nesting_api.data(nested_query(MAX_DEPTH))
    inner = allowed["nesting"]
    for _ in range(MAX_DEPTH - 1):
        inner = inner["inner"]
    assert inner == {"level": MAX_DEPTH}

    body = await nesting_api.gql(nested_query(MAX_DEPTH + 1))
    assert body.get("data") is None
    assert any("exceeds maximum operation depth" in e["message"] for e in body["errors"])


async def test_a_query_with_too_many_aliases_is_refused(api: Api) -> None:
    def aliased(count: int) -> str:
        return "{ " + " ".join(f"a{i}: me {{ role }}" for i in range(count)) + " }"

    allowed = await api.data(aliased(MAX_ALIASES))
    assert len(allowed) == MAX_ALIASES

    body = await api.gql(aliased(MAX_ALIASES + 1))
    assert body.get("data") is None
    assert any("aliases" in e["message"] for e in body["errors"])
