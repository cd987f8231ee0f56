"""Every input is bounded before the database, and both backends refuse the same inputs.

Each class of bad input that once crashed a request: strings longer than their column
(SQLite stored them, PostgreSQL refused them), NUL characters (PostgreSQL cannot store
them), integers beyond a column, decimals that are not amounts, dates outside what a
timestamp holds, huge searches, cursors no list made. Each is answered with a code and
the field at fault, and nothing is stored.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from conftest import ADDRESS, SUBMIT, Api, order_input, submit
from test_alerts import RESOLVE as RESOLVE_ALERT
from test_alerts import alerts_of
from test_fulfilment import PACK, PICK, SHIP_MORE, TEAM, approved, parcel, read, task, team
from test_fulfilment import shop as fulfilment_shop
from test_tracking import SHIP_BY, TRACKING, scan, shipment_ids
from test_tracking import record as record_scans
from test_tracking import shipped as shipped_by_hand

from ordergraph.core import auth, limits
from ordergraph.core.auth import SYSTEM
from ordergraph.core.errors import DomainError
from ordergraph.core.orders import MAX_LINES, MAX_QUANTITY, LineDraft, OrderDraft, submit_order

NUL = "\u0000"
COUNTS = "{ orders { totalCount } customers { totalCount } products { totalCount } }"
UPSERT_CUSTOMER = """
mutation Upsert($input: CustomerInput!) {
  upsertCustomer(input: $input) { customer { name email } errors { field code message } }
}
"""
UPSERT_PRODUCTS = """
mutation Upsert($input: [ProductInput!]!) {
  upsertProducts(input: $input) { products { sku name } errors { field code message } }
}
"""


def customer(**overrides: Any) -> dict[str, Any]:
    return {"email": "grace@example.com", "name": "Grace", **overrides}


def product(**overrides: Any) -> dict[str, Any]:
    return {"sku": "PEN", "name": "Pen", "listPrice": "1.00", "currency": "EUR", **overrides}


async def counts(api: Api) -> dict[str, int]:
    data = await api.data(COUNTS)
    return {name: value["totalCount"] for name, value in data.items()}


def problems(payload: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in payload["errors"]]


def graphql_error(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(code, field) of the one GraphQL error of a query that has no payload."""
    [error] = body["errors"]
    return error["extensions"].get("code"), error["extensions"].get("field")


# -- Text: lengths from the columns, no control characters -------------------------------------

TOO_LONG_OR_NUL_ORDERS = [
    ({"externalId": "E" * 129}, "externalId", "TOO_LONG"),
    ({"externalId": f"E{NUL}1"}, "externalId", "INVALID_CHARACTER"),
    ({"note": "n" * 2001}, "note", "TOO_LONG"),
    ({"note": f"ring{NUL}twice"}, "note", "INVALID_CHARACTER"),
    (
        {"customerEmail": f"ada{NUL}@example.com", "currency": "EUR"},
        "customerEmail",
        "INVALID_CHARACTER",
    ),
    ({"customerEmail": "a" * 243 + "@example.com", "currency": "EUR"}, "customerEmail", "TOO_LONG"),
    (
        {"customerEmail": "new@example.com", "customerName": "G" * 201, "currency": "EUR"},
        "customerName",
        "TOO_LONG",
    ),
    (
        {"customerEmail": "new@example.com", "customerName": f"G{NUL}", "currency": "EUR"},
        "customerName",
        "INVALID_CHARACTER",
    ),
    ({"lines": [{"sku": f"MUG{NUL}", "quantity": 1}]}, "lines[0].sku", "INVALID_CHARACTER"),
    ({"lines": [{"sku": "M" * 65, "quantity": 1}]}, "lines[0].sku", "TOO_LONG"),
    (
        {"shippingAddress": {**ADDRESS, "line1": f"12{NUL}"}},
        "shippingAddress.line1",
        "INVALID_CHARACTER",
    ),
    ({"shippingAddress": {**ADDRESS, "city": "L" * 201}}, "shippingAddress.city", "TOO_LONG"),
    (
        {"customerEmail": "new@example.com", "currency": "EUR", "shippingAddress": {
            **ADDRESS, "name": "N" * 201}},
        "shippingAddress.name",
        "TOO_LONG",
    ),
]  # fmt: skip


async def test_an_order_with_text_no_column_holds_is_refused_and_nothing_is_stored(
    api: Api,
) -> None:
    before = await counts(api)

    for overrides, field, code in TOO_LONG_OR_NUL_ORDERS:
        body = await api.data(SUBMIT, {"input": order_input("EXT-1", **overrides)})

        payload = body["submitOrder"]
        assert payload["order"] is None
        assert problems(payload) == [(field, code)], overrides
    assert await counts(api) == before


async def test_text_as_long_as_its_column_is_stored_on_both_backends(api: Api) -> None:
    order = await submit(
        api,
        "E" * 128,
        customerEmail="a" * 242 + "@example.com",
        customerName="G" * 200,
        currency="EUR",
        note="n\n" * 1000,
        shippingAddress={**ADDRESS, "line1": "L" * 200},
    )
    stored = await api.data(
        "query($id: ID!) { order(id: $id) { externalId customer { name email } } }",
        {"id": order["id"]},
    )
    assert stored["order"] == {
        "externalId": "E" * 128,
        "customer": {"name": "G" * 200, "email": "a" * 242 + "@example.com"},
    }


async def test_a_customer_with_text_no_column_holds_is_refused(api: Api) -> None:
    before = await counts(api)

    for overrides, field, code in [
        ({"name": "G" * 201}, "name", "TOO_LONG"),
        ({"name": f"Gr{NUL}ce"}, "name", "INVALID_CHARACTER"),
        ({"email": "g" * 243 + "@example.com"}, "email", "TOO_LONG"),
        ({"email": f"grace{NUL}@example.com"}, "email", "INVALID_CHARACTER"),
    ]:
        body = await api.data(UPSERT_CUSTOMER, {"input": customer(**overrides)})

        payload = body["upsertCustomer"]
        assert payload["customer"] is None
        assert problems(payload) == [(field, code)], overrides
    assert await counts(api) == before


async def test_products_with_text_no_column_holds_are_refused_all_or_none(api: Api) -> None:
    before = await counts(api)

    for overrides, field, code in [
        ({"name": "P" * 201}, "input[1].name", "TOO_LONG"),
        ({"name": f"P{NUL}"}, "input[1].name", "INVALID_CHARACTER"),
        ({"sku": "P" * 65}, "input[1].sku", "TOO_LONG"),
        ({"sku": f"PEN{NUL}"}, "input[1].sku", "INVALID_CHARACTER"),
        ({"stockOnHand": -1}, "input[1].stockOnHand", "INVALID_QUANTITY"),
    ]:
        batch = [product(sku="GOOD"), product(**overrides)]

        payload = (await api.data(UPSERT_PRODUCTS, {"input": batch}))["upsertProducts"]

        assert payload["products"] == []
        assert problems(payload) == [(field, code)], overrides
    assert await counts(api) == before


async def test_drafts_from_any_channel_are_checked_by_the_core(api: Api) -> None:
    """The CSV, Shopify and WooCommerce channels build drafts and call the core directly."""
    before = await counts(api)
    draft = OrderDraft(
        channel="csv",
        external_id="C" * 129,
        lines=[LineDraft("MUG", "99999999999999999999"), LineDraft(f"MUG{NUL}", "1")],
        customer_email="ada@example.com",
        customer_id=2**40,
        currency="EUR",
        shipping_address={**ADDRESS, "phone": NUL},
        note="x" * 2001,
    )

    with pytest.raises(DomainError) as refused:
        await submit_order(api.rt, draft, SYSTEM)

    assert [(p.field, p.code) for p in refused.value.problems] == [
        ("externalId", "TOO_LONG"),
        ("customerId", "UNKNOWN_CUSTOMER"),
        ("note", "TOO_LONG"),
        ("shippingAddress.phone", "INVALID_CHARACTER"),
        ("lines[0].quantity", "INVALID_QUANTITY"),
        ("lines[1].sku", "INVALID_CHARACTER"),
    ]
    assert await counts(api) == before


# -- Numbers beyond a column -------------------------------------------------------------------


async def test_searching_for_a_number_no_order_can_have_finds_nothing(api: Api) -> None:
    order = await submit(api, "123456789012")  # a Shopify order number as external id
    query = "query($s: String) { orders(filter: {search: $s}) { edges { node { id } } } }"

    for search in ["123456789012", "SO-2147483648", "9" * 150]:
        found = (await api.data(query, {"s": search}))["orders"]["edges"]
        assert found == ([{"node": {"id": order["id"]}}] if search == "123456789012" else [])
    assert (await api.data(query, {"s": order["number"]}))["orders"]["edges"] == [
        {"node": {"id": order["id"]}}
    ]


async def test_an_order_number_no_order_can_have_is_no_order(api: Api) -> None:
    await submit(api)
    query = "query($n: String!) { orderByNumber(number: $n) { id } }"
    for number in ["SO-2147483648", "2147483648", "SO-" + "9" * 5000, "SO-0", "SO-٣"]:
        assert await api.gql(query, {"n": number}) == {"data": {"orderByNumber": None}}, number


async def test_a_json_number_python_cannot_read_is_a_bad_request(api: Api) -> None:
    body = b'{"query": "query($n: Int) { orders(first: $n) { totalCount } }", "variables": {"n": '
    response = await api.client.post(
        "/graphql",
        content=body + b"9" * 5000 + b"}}",
        headers={
            "Authorization": f"Bearer {api.tokens['admin']}",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 400
    assert "JSON" in response.text


async def test_json_nested_deeper_than_python_reads_is_a_bad_request(api: Api) -> None:
    response = await api.client.post(
        "/graphql",
        content=b'{"query": "{ me { role } }", "variables": ' + b"[" * 100_000,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400


# -- Cursors -----------------------------------------------------------------------------------


def cursor(kind: str, key: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode()


LISTS = {
    "orders": "order",
    "products": "product",
    "customers": "customer",
    "importErrors": "import",
    "reviewQueue": "queue",
}


async def test_a_cursor_no_list_made_is_an_invalid_cursor(api: Api) -> None:
    await submit(api)
    for field, kind in LISTS.items():
        query = f"query($after: String) {{ {field}(after: $after) {{ totalCount }} }}"
        for key in ["1000000000000000", "-5", "0", "9" * 5000, "1e3", "٣"]:
            body = await api.gql(query, {"after": cursor(kind, key)})

            assert body["data"] is None, (field, key)
            assert graphql_error(body) == ("INVALID_CURSOR", "after")
            assert "is not a cursor of this list" in body["errors"][0]["message"]


async def test_the_review_queue_refuses_a_cursor_beyond_an_order_id(api: Api) -> None:
    body = await api.gql(
        "query($a: String) { reviewQueue(after: $a) { totalCount } }",
        {"a": cursor("queue", str(2 * 10**12 + 2**31))},
    )
    assert graphql_error(body) == ("INVALID_CURSOR", "after")


# -- Decimals that are not amounts -------------------------------------------------------------

NOT_AMOUNTS = ["NaN", "sNaN", "-NaN", "Infinity", "-Infinity", "1e999999999", "1e-999999999"]


async def test_decimals_that_are_not_amounts_are_invalid_prices(api: Api) -> None:
    before = await counts(api)

    for amount in NOT_AMOUNTS:
        line = [{"sku": "MUG", "quantity": 1, "unitPrice": amount}]
        order = await api.data(SUBMIT, {"input": order_input("EXT-1", lines=line)})
        price = await api.data(UPSERT_PRODUCTS, {"input": [product(listPrice=amount)]})
        credit = await api.data(UPSERT_CUSTOMER, {"input": customer(creditLimit=amount)})

        assert problems(order["submitOrder"]) == [("lines[0].unitPrice", "INVALID_PRICE")]
        assert problems(price["upsertProducts"]) == [("input[0].listPrice", "INVALID_PRICE")]
        assert problems(credit["upsertCustomer"]) == [("creditLimit", "INVALID_PRICE")]
    assert await counts(api) == before


async def test_an_amount_with_more_digits_than_decimal_arithmetic_keeps_is_not_rounded(
    api: Api,
) -> None:
    # 30 significant digits: rounded to 28, "1.00...01" would become 1.00 EUR.
    line = [{"sku": "MUG", "quantity": 1, "unitPrice": "1." + "0" * 28 + "1"}]
    order = (await api.data(SUBMIT, {"input": order_input("EXT-1", lines=line)}))["submitOrder"]
    assert problems(order) == [("lines[0].unitPrice", "INVALID_PRICE")]
    assert "more than 2 decimal places" in order["errors"][0]["message"]


# -- Searches, filters and dates ---------------------------------------------------------------

SEARCHES = {
    "orders": "query($s: String) { orders(filter: {search: $s}) { totalCount } }",
    "products": "query($s: String) { products(search: $s) { totalCount } }",
    "customers": "query($s: String) { customers(search: $s) { totalCount } }",
}


async def test_a_search_no_column_can_match_is_refused(api: Api) -> None:
    for field, query in SEARCHES.items():
        # A million characters is refused before it is read (the body cap, 413); this
        # search fits in a request and is still far longer than any column.
        for search, code in [("x" * 100_000, "TOO_LONG"), (f"a{NUL}b", "INVALID_CHARACTER")]:
            body = await api.gql(query, {"s": search})

            assert body["data"] is None, field
            expected_field = "filter.search" if field == "orders" else "search"
            assert graphql_error(body) == (code, expected_field)


async def test_an_order_filter_no_order_can_match_is_refused(api: Api) -> None:
    query = "query($f: OrderFilter) { orders(filter: $f) { totalCount } }"
    for filter_, field, code in [
        ({"channel": f"web{NUL}"}, "filter.channel", "INVALID_CHARACTER"),
        ({"channel": "w" * 33}, "filter.channel", "TOO_LONG"),
        ({"status": [f"RECEIVED{NUL}"]}, "filter.status", "INVALID_CHARACTER"),
        ({"status": ["RECEIVED"] * 40_000}, "filter.status", "OUT_OF_RANGE"),
        ({"createdAfter": "9999-12-31T23:59:59-14:00"}, "filter.createdAfter", "OUT_OF_RANGE"),
        ({"createdBefore": "0001-01-01T00:00:00+14:00"}, "filter.createdBefore", "OUT_OF_RANGE"),
    ]:
        body = await api.gql(query, {"f": filter_})

        assert body["data"] is None, filter_
        assert graphql_error(body) == (code, field)


async def test_an_import_error_filter_no_entry_can_match_is_refused(api: Api) -> None:
    query = "query($c: String) { importErrors(channel: $c) { totalCount } }"
    for variables, field, code in [
        ({"c": f"csv{NUL}"}, "channel", "INVALID_CHARACTER"),
        ({"c": "c" * 33}, "channel", "TOO_LONG"),
    ]:
        body = await api.gql(query, variables)

        assert body["data"] is None, variables
        assert graphql_error(body) == (code, field)


async def test_dates_at_the_ends_of_the_calendar_filter_alike_on_both_backends(api: Api) -> None:
    await submit(api)
    query = "query($f: OrderFilter) { orders(filter: $f) { totalCount } }"
    for filter_, total in [
        ({"createdAfter": "0001-01-01T00:00:00Z"}, 1),
        ({"createdBefore": "9999-12-31T23:59:59Z"}, 1),
        ({"createdAfter": "9999-12-31T09:59:59-14:00"}, 0),
        ({"createdBefore": "2000-01-01T00:00:00"}, 0),  # no offset: UTC
    ]:
        assert (await api.data(query, {"f": filter_}))["orders"]["totalCount"] == total, filter_


# -- Subscriptions over HTTP -------------------------------------------------------------------


async def test_a_subscription_over_http_is_a_bad_request(api: Api) -> None:
    query = "subscription { orderEvents { type } }"
    headers = {"Authorization": f"Bearer {api.tokens['admin']}", "Accept": "application/json"}

    posted = await api.client.post("/graphql", json={"query": query}, headers=headers)
    got = await api.client.get("/graphql", params={"query": query}, headers=headers)

    for response in (posted, got):
        assert response.status_code == 400
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == "USE_WEBSOCKET"


# -- Tokens ------------------------------------------------------------------------------------


async def test_a_token_name_fits_the_actor_of_the_events_it_causes(api: Api) -> None:
    with pytest.raises(ValueError, match="longer than 189 characters"):
        await auth.create_token("integrator", name="n" * 190)
    with pytest.raises(ValueError, match="control character"):
        await auth.create_token("staff", name="sam", team=f"east{NUL}")
    with pytest.raises(ValueError, match="no customer with id"):
        await auth.create_token("customer", customer_id=2**40)

    api.tokens["longest"] = await auth.create_token("integrator", name="n" * 189)
    order = await submit(api, "LONG-1", as_="longest")

    events = await api.data(
        "query($id: ID!) { order(id: $id) { events { actor } } }", {"id": order["id"]}
    )
    assert events["order"]["events"][0] == {"actor": "integrator:" + "n" * 189}


def test_the_readme_states_the_limits_the_code_enforces() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = readme.split("### Limits", 1)[1].split("\n\n", 3)[2]
    rows = {
        line.split("|")[1].strip(): line.split("|")[2].strip() for line in table.splitlines()[2:]
    }
    assert rows["external id"] == f"{limits.EXTERNAL_ID.max_length} characters"
    assert rows["customer name, product name, each shipping address field"] == (
        f"{limits.CUSTOMER_NAME.max_length} characters"
    )
    assert limits.PRODUCT_NAME.max_length == limits.ADDRESS_FIELD.max_length == 200
    assert rows["e-mail address"] == f"{limits.EMAIL.max_length} characters"
    assert rows["SKU"] == f"{limits.SKU.max_length} characters"
    assert rows["note; a transition's reason or a reviewer's note"] == (
        f"{limits.NOTE.max_length:,} characters"
    )
    assert limits.REASON.max_length == limits.NOTE.max_length
    assert rows["search (`orders`, `products`, `customers`)"] == (
        f"{limits.SEARCH.max_length} characters"
    )
    assert rows["channel and status filters"].startswith(
        f"{limits.CHANNEL.max_length} characters; at most {limits.MAX_FILTER_VALUES} statuses"
    )
    assert limits.STATUS.max_length == limits.CHANNEL.max_length
    assert rows["quantities"] == f"whole numbers from 1 to {MAX_QUANTITY:,}"
    assert rows["lines per order"] == f"1 to {MAX_LINES}"
    assert rows["stock on hand"] == f"0 to {limits.MAX_STOCK:,}"
    assert rows["ids, order numbers"].startswith(f"1 to {limits.MAX_ID:,}")


CANCEL = """
mutation Cancel($id: ID!, $reason: String) {
  transitionOrder(id: $id, transition: "cancel", reason: $reason) {
    order { status } errors { field code }
  }
}
"""


@pytest.mark.parametrize(
    ("reason", "code"), [("x" * 2001, "TOO_LONG"), (f"no{NUL}thanks", "INVALID_CHARACTER")]
)
async def test_a_transition_reason_is_bounded_and_the_order_stays(
    api: Api, reason: str, code: str
) -> None:
    order = await submit(api, "REASON-1")

    refused = await api.data(CANCEL, {"id": order["id"], "reason": reason})
    fine = await api.data(CANCEL, {"id": order["id"], "reason": "changed\nmy mind"})

    assert refused["transitionOrder"] == {
        "order": None,
        "errors": [{"field": "reason", "code": code}],
    }
    assert fine["transitionOrder"] == {"order": {"status": "CANCELLED"}, "errors": []}


SHIP_WITH = """
mutation Ship($id: ID!, $carrier: String!, $service: String!, $numbers: [String!]!) {
  completeShip(id: $id, carrier: $carrier, service: $service, trackingNumbers: $numbers) {
    errors { field code }
  }
}
"""
SET_AVAILABILITY = """
mutation($staff: String!) {
  setMemberAvailability(staff: $staff, available: false) { errors { field code } }
}
"""


async def test_team_text_with_control_characters_is_refused_on_both_backends(
    database_url: str,
) -> None:
    async with fulfilment_shop(database_url) as api:
        members = [
            {"staff": f"pia{NUL}", "capacity": 5},
            {"staff": "pat", "capacity": 5, "orderTypes": ["bulk\x1b"]},
        ]
        refused = await api.data(
            TEAM, {"input": {"name": f"pack{NUL}ers", "description": "\x07", "members": members}}
        )
        availability = await api.data(SET_AVAILABILITY, {"staff": f"pia{NUL}"})
        teams = await api.data("{ teams { name } }")
    assert {(e["field"], e["code"]) for e in refused["upsertTeam"]["errors"]} == {
        ("name", "INVALID_CHARACTER"),
        ("description", "INVALID_CHARACTER"),
        ("members[0].staff", "INVALID_CHARACTER"),
        ("members[1].orderTypes[0]", "INVALID_CHARACTER"),
    }
    assert availability["setMemberAvailability"]["errors"] == [
        {"field": "staff", "code": "NOT_FOUND"}
    ]
    assert teams == {"teams": []}


async def test_shipping_text_no_column_holds_is_refused_and_nothing_ships(
    database_url: str,
) -> None:
    async with fulfilment_shop(database_url) as api:
        await team(api, "packers", ("pia", 50))
        order = await approved(api, "TEXT-1", lines=[{"sku": "MUG", "quantity": 2}])
        await api.data(PICK, {"id": task(order, "pick")["id"]}, as_="pia")
        await api.data(
            PACK, {"id": task(order, "pack")["id"], "parcels": [parcel((1, 1))]}, as_="pia"
        )
        ship = await api.data(
            SHIP_WITH,
            {
                "id": task(order, "ship")["id"],
                "carrier": f"man{NUL}ual",
                "service": "\x1b[31m",
                "numbers": [f"T{NUL}1"],
            },
            as_="pia",
        )
        shipped = await api.data(
            SHIP_BY,
            {"id": task(order, "ship")["id"], "carrier": "manual", "numbers": ["T-1"]},
            as_="pia",
        )
        more = await api.data(
            SHIP_MORE,
            {
                "id": order["id"],
                "input": {
                    "lines": [{"lineNo": 1, "quantity": 1}],
                    "carrier": "manual",
                    "trackingNumber": "T" * 129,
                },
            },
            as_="pia",
        )
        shipments = (await read(api, order["id"]))["shipments"]
    assert {(e["field"], e["code"]) for e in ship["completeShip"]["errors"]} == {
        ("carrier", "INVALID_CHARACTER"),
        ("service", "INVALID_CHARACTER"),
        ("trackingNumbers[0]", "INVALID_CHARACTER"),
    }
    assert shipped["completeShip"]["errors"] == []
    assert [(e["field"], e["code"]) for e in more["shipOrder"]["errors"]] == [
        ("trackingNumber", "TOO_LONG")
    ]
    assert [s["trackingNumber"] for s in shipments] == ["T-1"]


async def test_tracking_events_no_column_holds_are_refused_by_field(database_url: str) -> None:
    async with fulfilment_shop(database_url) as api:
        order_id = await shipped_by_hand(api, "SCAN-1")
        [shipment] = await shipment_ids(api, order_id)
        place = {"city": f"Mem{NUL}phis", "postalCode": "3" * 33, "latitude": "1e400"}
        refused = await record_scans(
            api,
            shipment,
            scan("2024-04-26T09:00:00-05:00", "in_transit", description=f"a{NUL}b")
            | {"location": place},
            scan("2024-04-26T10:00:00-05:00", "in_transit", code="\x00")
            | {"location": {"latitude": "NaN", "longitude": "-Infinity"}},
            scan("0001-01-01T00:00:00+14:00", "in_transit"),
        )
        kept = (await api.data(TRACKING, {"id": order_id}))["shipmentTracking"]
    assert {(e["field"], e["code"]) for e in refused["errors"]} == {
        ("events[0].description", "INVALID_CHARACTER"),
        ("events[0].location.city", "INVALID_CHARACTER"),
        ("events[0].location.postalCode", "TOO_LONG"),
        ("events[0].location.latitude", "INVALID_VALUE"),
        ("events[1].code", "INVALID_CHARACTER"),
        ("events[1].location.latitude", "INVALID_VALUE"),
        ("events[1].location.longitude", "INVALID_VALUE"),
        ("events[2].occurredAt", "OUT_OF_RANGE"),
    }
    assert kept[0]["events"] == []


async def test_a_statement_number_no_statement_can_have_is_not_found(api: Api) -> None:
    headers = {"Authorization": f"Bearer {api.tokens['admin']}"}
    for number in ["%00", "ST-2026-%00", "S" * 300, "%E2%80%AE"]:
        answer = await api.client.get(f"/statements/{number}.pdf", headers=headers)
        assert (answer.status_code, answer.json()["code"]) == (404, "NOT_FOUND"), number
    signed = await api.client.get("/statements/%00.pdf?token=x")
    assert signed.status_code == 403


async def test_an_alert_resolution_with_a_nul_is_refused_and_the_alert_stays_open(
    database_url: str,
) -> None:
    async with fulfilment_shop(database_url) as api:
        order_id = await shipped_by_hand(api, "ALERT-1")
        [shipment] = await shipment_ids(api, order_id)
        await record_scans(api, shipment, scan("2024-05-02T11:00:00+02:00", "on_hold", code="H"))
        [alert] = await alerts_of(api, order_id, "OPEN")
        refused = await api.data(RESOLVE_ALERT, {"id": alert["id"], "note": f"Called{NUL}"})
        still = await alerts_of(api, order_id, "OPEN")
    assert refused["resolveAlert"]["errors"] == [
        {"field": "resolution", "code": "INVALID_CHARACTER"}
    ]
    assert [a["id"] for a in still] == [alert["id"]]
