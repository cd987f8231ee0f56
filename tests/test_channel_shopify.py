"""The Shopify channel: signed orders/create webhooks through the running app.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest
from conftest import Api, Streamed, make_settings

from ordergraph.core import assembly
from ordergraph.core.plugins import PluginConfigError
from ordergraph.core.settings import Settings

SECRET = "shpss_test_4f1c2b"
WEBHOOK = "/channels/shopify/webhook"
ORDER_ID = 5880412995832
BODY_LIMIT = Settings().max_webhook_body_bytes

ORDERS = """
query Orders {
  orders(filter: {channel: "shopify"}) {
    totalCount
    edges { node {
      number channel externalId status total currency note
      customer { email name }
      shippingAddress { name line1 line2 city postalCode country phone }
      lines { sku quantity unitPrice total }
    } }
  }
}
"""
IMPORT_ERRORS = """
query Inbox($status: ImportStatus) {
  importErrors(channel: "shopify", status: $status) {
    totalCount
    edges { node {
      id channel reference status attempts orderId payload receivedAt
      reasons { field code message }
    } }
  }
}
"""
REPLAY = """
mutation Replay($id: ID!) {
  replayImport(id: $id) {
    importError { status orderId attempts reasons { code } }
    order { number externalId lines { sku quantity } }
    errors { field code message }
  }
}
"""
UPSERT_PRODUCTS = """
mutation Add($input: [ProductInput!]!) {
  upsertProducts(input: $input) { errors { message } }
}
"""


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url, plugins={"shopify": {"enabled": True, "webhook_secret": SECRET}}
    )


def shopify_order(
    order_id: int = ORDER_ID,
    *,
    email: str = "ada@example.com",
    first_name: str = "Ada",
    last_name: str = "Lovelace",
    line_items: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An orders/create payload as Shopify sends it (the fields ordergraph reads, and more)."""
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": "#1001",
        "order_number": 1001,
        "email": email,
        "currency": "EUR",
        "financial_status": "paid",
        "total_price": "48.90",
        "note": "Please gift wrap",
        "customer": {
            "id": 207119551,
            "email": email,
            "first_name": first_name,
            "last_name": last_name,
        },
        "shipping_address": {
            "first_name": first_name,
            "last_name": last_name,
            "name": f"{first_name} {last_name}",
            "address1": "12 St James's Square",
            "address2": "Flat 3",
            "city": "London",
            "zip": "SW1Y 4JH",
            "country": "United Kingdom",
            "country_code": "GB",
            "phone": "+44 20 7946 0000",
        },
        "line_items": line_items
        or [
            {"id": 1, "sku": "MUG", "title": "Mug", "quantity": 2, "price": "11.90"},
            {"id": 2, "sku": "TEE", "title": "T-shirt", "quantity": 1, "price": "25.10"},
        ],
    }


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


async def deliver(
    api: Api,
    body: bytes | Streamed,
    *,
    delivery_id: str,
    signature: str | None = "sign",
    topic: str = "orders/create",
    **extra_headers: str,
) -> httpx.Response:
    raw = body.body if isinstance(body, Streamed) else body
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": delivery_id,
        "X-Shopify-Shop-Domain": "ordergraph-test.myshopify.com",
        **extra_headers,
    }
    if signature is not None:
        headers["X-Shopify-Hmac-Sha256"] = sign(raw) if signature == "sign" else signature
    return await api.client.post(WEBHOOK, content=body, headers=headers)


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


async def shopify_orders(api: Api) -> list[dict[str, Any]]:
    data = await api.data(ORDERS)
    return [edge["node"] for edge in data["orders"]["edges"]]


async def inbox(api: Api, *, as_: str = "admin", status: str | None = "OPEN") -> list[dict]:
    data = await api.data(IMPORT_ERRORS, {"status": status}, as_=as_)
    return [edge["node"] for edge in data["importErrors"]["edges"]]


async def test_a_missing_or_wrong_signature_is_401_and_stores_nothing(api: Api) -> None:
    body = body_of(shopify_order())

    missing = await deliver(api, body, delivery_id="d-1", signature=None)
    wrong_secret = await deliver(api, body, delivery_id="d-2", signature=sign(body, "other"))
    tampered = await deliver(
        api, body.replace(b'"11.90"', b'"0.01"'), delivery_id="d-3", signature=sign(body)
    )
    garbage = await deliver(api, body, delivery_id="d-4", signature="not base64 at all")

    assert [r.status_code for r in (missing, wrong_secret, tampered, garbage)] == [401] * 4
    assert await shopify_orders(api) == []
    assert await inbox(api, status=None) == []
    # Rejected deliveries are not remembered: the genuine one with the same id still counts.
    assert (await deliver(api, body, delivery_id="d-1")).status_code == 201


async def test_an_order_is_created_from_the_shopify_payload_with_exact_money(api: Api) -> None:
    response = await deliver(api, body_of(shopify_order()), delivery_id="d-1")

    assert response.status_code == 201, response.text
    answer = response.json()
    assert (answer["status"], answer["import_error_id"]) == ("created", None)
    [order] = await shopify_orders(api)
    assert answer["order"] == order["number"]
    assert (order["externalId"], order["channel"], order["status"]) == (
        str(ORDER_ID),
        "shopify",
        "RECEIVED",
    )
    assert order["customer"] == {"email": "ada@example.com", "name": "Ada"}
    assert order["shippingAddress"] == {
        "name": "Ada Lovelace",
        "line1": "12 St James's Square",
        "line2": "Flat 3",
        "city": "London",
        "postalCode": "SW1Y 4JH",
        "country": "GB",
        "phone": "+44 20 7946 0000",
    }
    assert [(line["sku"], line["quantity"], line["unitPrice"]) for line in order["lines"]] == [
        ("MUG", 2, "11.90"),
        ("TEE", 1, "25.10"),
    ]
    assert (order["total"], order["currency"]) == ("48.90", "EUR")
    assert order["note"] == "Shopify order #1001\nPlease gift wrap"


async def test_ten_identical_deliveries_at_once_make_one_order(api: Api) -> None:
    """A new customer too: ten concurrent submissions may not create two of anything."""
    body = body_of(shopify_order(email="grace@example.com", first_name="Grace", last_name="Hopper"))

    responses = await asyncio.gather(
        *(deliver(api, body, delivery_id="same-delivery") for _ in range(10))
    )

    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses == ["created"] + ["duplicate"] * 9
    [order] = await shopify_orders(api)
    assert {r.json()["order"] for r in responses} == {order["number"]}
    assert order["customer"] == {"email": "grace@example.com", "name": "Grace Hopper"}
    assert await inbox(api, status=None) == []


async def test_the_same_order_in_a_new_delivery_is_a_duplicate(api: Api) -> None:
    body = body_of(shopify_order())
    first = await deliver(api, body, delivery_id="d-1")

    again = await deliver(api, body, delivery_id="d-2")
    redelivered = await deliver(api, body, delivery_id="d-1")

    assert first.status_code == 201
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert (redelivered.status_code, redelivered.json()["status"]) == (200, "duplicate")
    assert again.json()["order"] == redelivered.json()["order"] == first.json()["order"]
    assert len(await shopify_orders(api)) == 1


async def test_an_invalid_order_is_kept_in_the_inbox_and_replayed_once_the_sku_exists(
    api: Api,
) -> None:
    lines = [{"id": 1, "sku": "DESK", "title": "Desk", "quantity": 1, "price": "150.00"}]
    body = body_of(shopify_order(line_items=lines))

    response = await deliver(api, body, delivery_id="d-1")

    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["status"], answer["order"]) == ("rejected", None)
    assert answer["problems"] == [
        {"field": "lines[0].sku", "code": "UNKNOWN_SKU", "message": "We do not sell SKU DESK."}
    ]
    assert await shopify_orders(api) == []
    [entry] = await inbox(api)
    assert entry["id"] == str(answer["import_error_id"])
    assert (entry["channel"], entry["reference"], entry["status"]) == (
        "shopify",
        str(ORDER_ID),
        "OPEN",
    )
    assert [(r["field"], r["code"]) for r in entry["reasons"]] == [("lines[0].sku", "UNKNOWN_SKU")]
    assert entry["payload"] == body.decode()
    [seen_by_staff] = await inbox(api, as_="staff")
    assert seen_by_staff["payload"] is None
    for role in ("ada", "integrator"):
        denied = await api.gql(IMPORT_ERRORS, {"status": "OPEN"}, as_=role)
        assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    # Shopify retries nothing (it got a 200); a redelivery changes nothing either.
    assert (await deliver(api, body, delivery_id="d-1")).json()["import_error_id"] == int(
        entry["id"]
    )
    still_failing = (await api.data(REPLAY, {"id": entry["id"]}))["replayImport"]
    assert still_failing["order"] is None
    assert [e["code"] for e in still_failing["errors"]] == ["UNKNOWN_SKU"]
    assert still_failing["importError"]["status"] == "OPEN"

    added = await api.data(
        UPSERT_PRODUCTS,
        {"input": [{"sku": "DESK", "name": "Desk", "listPrice": "150.00", "currency": "EUR"}]},
    )
    assert added["upsertProducts"]["errors"] == []
    replayed = (await api.data(REPLAY, {"id": entry["id"]}))["replayImport"]

    assert replayed["errors"] == []
    assert replayed["order"]["externalId"] == str(ORDER_ID)
    assert replayed["order"]["lines"] == [{"sku": "DESK", "quantity": 1}]
    [order] = await shopify_orders(api)
    assert replayed["importError"]["status"] == "IMPORTED"
    assert replayed["importError"]["orderId"] is not None
    assert await inbox(api) == []
    [imported] = await inbox(api, status="IMPORTED")
    assert imported["orderId"] == replayed["importError"]["orderId"]
    duplicate = await deliver(api, body, delivery_id="d-3")
    assert (duplicate.json()["status"], duplicate.json()["order"]) == ("duplicate", order["number"])


async def test_concurrent_invalid_deliveries_of_one_order_keep_one_inbox_entry(api: Api) -> None:
    lines = [{"id": 1, "sku": "DESK", "title": "Desk", "quantity": 1, "price": "150.00"}]
    body = body_of(shopify_order(line_items=lines))

    responses = await asyncio.gather(*(deliver(api, body, delivery_id=f"d-{n}") for n in range(10)))

    assert [r.status_code for r in responses] == [200] * 10, [r.text for r in responses]
    [entry] = await inbox(api)
    assert {r.json()["import_error_id"] for r in responses} == {int(entry["id"])}
    assert entry["attempts"] == 10


async def test_a_signed_body_that_is_not_an_order_is_kept_in_the_inbox(api: Api) -> None:
    body = b"{not json"

    response = await deliver(api, body, delivery_id="broken-1")

    assert (response.status_code, response.json()["status"]) == (200, "rejected")
    [entry] = await inbox(api)
    # Without an order id the reference is the body's digest: another body is another entry.
    assert entry["reference"] == "sha256:" + hashlib.sha256(body).hexdigest()
    assert entry["payload"] == "{not json"
    assert [(r["code"], r["message"]) for r in entry["reasons"]] == [
        (
            "INVALID_VALUE",
            "The body is not JSON (Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)).",
        )
    ]
    other = await deliver(api, b"[1, 2", delivery_id="broken-1")
    assert (other.status_code, other.json()["status"]) == (200, "rejected")
    assert len(await inbox(api)) == 2


async def test_other_topics_are_answered_but_not_imported(api: Api) -> None:
    body = body_of(shopify_order())

    response = await deliver(api, body, delivery_id="d-1", topic="orders/cancelled")

    assert (response.status_code, response.json()["status"]) == (200, "ignored")
    assert await shopify_orders(api) == []
    assert await inbox(api, status=None) == []


async def test_the_secret_is_required_masked_and_the_plugin_is_off_by_default(api: Api) -> None:
    assert not assembly.load_plugins(Settings()).plugins["shopify"].enabled
    with pytest.raises(PluginConfigError, match=r"plugins\.shopify\.webhook_secret"):
        assembly.load_plugins(Settings(plugins={"shopify": {"enabled": True}}))
    plugins = await api.data("{ plugins { name enabled settings } }")
    [shopify] = [p for p in plugins["plugins"] if p["name"] == "shopify"]
    assert shopify["enabled"] is True
    assert shopify["settings"] == {"webhook_secret": "********"}


# -- Bounded input: size, depth, ids, NUL; every answer is 2xx or 4xx -----------------------------


def padded(payload: dict[str, Any], size: int) -> bytes:
    """The order as JSON, padded with trailing spaces to exactly ``size`` bytes."""
    body = body_of(payload)
    return body + b" " * (size - len(body))


async def test_a_deeply_nested_body_is_kept_in_the_inbox_with_the_reason(api: Api) -> None:
    body = b"[" * 100_000

    first = await deliver(api, body, delivery_id="deep-1")
    retried = await deliver(api, body, delivery_id="deep-1")

    assert (first.status_code, first.json()["status"]) == (200, "rejected")
    [entry] = await inbox(api)
    assert [(r["code"], r["message"]) for r in entry["reasons"]] == [
        ("INVALID_VALUE", "The body nests arrays and objects deeper than 64 levels.")
    ]
    assert len(entry["payload"]) == 100_000
    assert (retried.status_code, retried.json()["import_error_id"]) == (200, int(entry["id"]))
    assert (await inbox(api))[0]["attempts"] == 1  # the retry was answered without work
    assert await shopify_orders(api) == []


async def test_a_number_of_5000_digits_is_kept_in_the_inbox_with_the_reason(api: Api) -> None:
    body = body_of(shopify_order()).replace(str(ORDER_ID).encode(), b"9" * 5000, 1)

    response = await deliver(api, body, delivery_id="digits-1")

    assert (response.status_code, response.json()["status"]) == (200, "rejected")
    [entry] = await inbox(api)
    assert [r["message"] for r in entry["reasons"]] == [
        "The body is not JSON (an integer of 5000 digits; at most 100 are read)."
    ]


async def test_nesting_up_to_the_bound_is_read(api: Api) -> None:
    order = shopify_order()
    nested: Any = "deep"
    for _ in range(60):
        nested = [nested]
    order["note_attributes"] = nested  # 61 levels inside the order object: 62 in all

    response = await deliver(api, body_of(order), delivery_id="d-1")

    assert response.status_code == 201, response.text


async def test_a_body_over_the_cap_is_refused_before_it_is_read_past_the_cap(api: Api) -> None:
    assert BODY_LIMIT == 1_000_000  # the default
    streamed = Streamed(padded(shopify_order(), 10 * BODY_LIMIT))

    refused = await deliver(api, streamed, delivery_id="big-1")

    assert refused.status_code == 413
    assert refused.json() == {"error": f"The body is larger than {BODY_LIMIT} bytes."}
    assert refused.headers["connection"] == "close"
    assert streamed.pulled <= BODY_LIMIT + streamed.chunk
    assert await shopify_orders(api) == []
    assert await inbox(api, status=None) == []
    # Nothing was remembered: the same delivery id with a body within the cap is imported.
    at_the_cap = await deliver(api, padded(shopify_order(), BODY_LIMIT), delivery_id="big-1")
    assert at_the_cap.status_code == 201, at_the_cap.text


async def test_a_content_length_over_the_cap_is_refused_without_reading(api: Api) -> None:
    streamed = Streamed(padded(shopify_order(), BODY_LIMIT + 1))

    refused = await deliver(
        api, streamed, delivery_id="big-1", **{"Content-Length": str(BODY_LIMIT + 1)}
    )

    assert (refused.status_code, streamed.pulled) == (413, 0)
    assert await inbox(api, status=None) == []


async def test_an_unsigned_body_is_refused_without_reading_it(api: Api) -> None:
    streamed = Streamed(padded(shopify_order(), 10 * BODY_LIMIT))

    refused = await deliver(api, streamed, delivery_id="d-1", signature=None)

    assert (refused.status_code, streamed.pulled) == (401, 0)
    assert await inbox(api, status=None) == []


async def test_a_long_delivery_id_is_answered_right_at_once_and_on_every_retry(api: Api) -> None:
    long_id = "d" * 300
    body = body_of(shopify_order())

    first = await deliver(api, body, delivery_id=long_id)
    retries = [await deliver(api, body, delivery_id=long_id) for _ in range(2)]

    assert first.status_code == 201, first.text
    assert [(r.status_code, r.json()["status"]) for r in retries] == [(200, "duplicate")] * 2
    assert {r.json()["order"] for r in retries} == {first.json()["order"]}
    assert len(await shopify_orders(api)) == 1

    lines = [{"id": 1, "sku": "DESK", "title": "Desk", "quantity": 1, "price": "150.00"}]
    invalid = body_of(shopify_order(ORDER_ID + 1, line_items=lines))
    rejected = [await deliver(api, invalid, delivery_id=long_id + "x") for _ in range(2)]
    assert [(r.status_code, r.json()["status"]) for r in rejected] == [(200, "rejected")] * 2
    [entry] = await inbox(api)
    assert {r.json()["import_error_id"] for r in rejected} == {int(entry["id"])}
    assert entry["attempts"] == 1


async def test_an_order_id_longer_than_any_column_is_kept_in_the_inbox(api: Api) -> None:
    order = shopify_order()
    order["id"] = "7" * 300
    body = body_of(order)

    first = await deliver(api, body, delivery_id="d-1")
    again = await deliver(api, body, delivery_id="d-2")

    assert [(r.status_code, r.json()["status"]) for r in (first, again)] == [(200, "rejected")] * 2
    [entry] = await inbox(api)
    assert entry["reference"] == "sha256:" + hashlib.sha256(b"7" * 300).hexdigest()
    assert [r["field"] for r in entry["reasons"]] == ["externalId"]  # longer than 128
    assert (entry["payload"], entry["attempts"]) == (body.decode(), 2)
    assert await shopify_orders(api) == []


async def test_a_new_order_under_a_used_delivery_id_is_imported_not_dropped(api: Api) -> None:
    first_order, second_order = body_of(shopify_order()), body_of(shopify_order(ORDER_ID + 1))
    lines = [{"id": 1, "sku": "DESK", "title": "Desk", "quantity": 1, "price": "150.00"}]
    invalid_order = body_of(shopify_order(ORDER_ID + 2, line_items=lines))

    first = await deliver(api, first_order, delivery_id="reused")
    second = await deliver(api, second_order, delivery_id="reused")
    invalid = await deliver(api, invalid_order, delivery_id="reused")

    assert [(r.status_code, r.json()["status"]) for r in (first, second, invalid)] == [
        (201, "created"),
        (201, "created"),
        (200, "rejected"),
    ]
    [entry] = await inbox(api)
    assert entry["reference"] == str(ORDER_ID + 2)
    assert invalid.json()["import_error_id"] == int(entry["id"])
    orders = {order["externalId"]: order["number"] for order in await shopify_orders(api)}
    assert set(orders) == {str(ORDER_ID), str(ORDER_ID + 1)}
    # True redeliveries of each are still recognised.
    for body, external_id in ((first_order, ORDER_ID), (second_order, ORDER_ID + 1)):
        again = await deliver(api, body, delivery_id="reused")
        assert (again.status_code, again.json()["status"]) == (200, "duplicate")
        assert again.json()["order"] == orders[str(external_id)]
    assert (await deliver(api, invalid_order, delivery_id="reused")).json()[
        "import_error_id"
    ] == int(entry["id"])
    assert len(await shopify_orders(api)) == 2


async def test_nul_characters_in_a_body_are_answered_not_crashed_on(api: Api) -> None:
    """PostgreSQL text holds no NUL: both databases keep and refuse the same."""
    raw_nul = body_of(shopify_order()).replace(b'"Please gift wrap"', b'"gift\x00wrap"')
    order = shopify_order(ORDER_ID + 1)
    order["note"] = "gift\u0000wrap"
    escaped_nul = body_of(order)

    answers = [
        await deliver(api, raw_nul, delivery_id="nul-1"),
        await deliver(api, escaped_nul, delivery_id="nul-2"),
    ]

    assert [(r.status_code, r.json()["status"]) for r in answers] == [(200, "rejected")] * 2
    kept = {entry["reference"]: entry for entry in await inbox(api)}
    raw_entry = kept["sha256:" + hashlib.sha256(raw_nul).hexdigest()]
    assert raw_entry["payload"] == raw_nul.decode().replace("\x00", "\ufffd")
    assert raw_entry["reasons"][0]["code"] == "INVALID_VALUE"
    escaped_entry = kept["sha256:" + hashlib.sha256(escaped_nul).hexdigest()]
    assert escaped_entry["payload"] == escaped_nul.decode()
    assert [r["message"] for r in escaped_entry["reasons"]] == [
        "The body has a NUL character (\\u0000) in note."
    ]
    assert await shopify_orders(api) == []
