"""The WooCommerce channel: a second webhook channel through the same inbox and dedupe.

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

from ordergraph.core.settings import Settings

SECRET = "wc-secret-8d2f0a"
WEBHOOK = "/channels/woocommerce/webhook"
ORDER_ID = 727

ORDERS = """
{
  orders(filter: {channel: "woocommerce"}) {
    edges { node {
      number externalId total currency note
      customer { email name }
      shippingAddress { name line1 line2 city postalCode country phone }
      lines { sku quantity unitPrice total }
    } }
  }
}
"""
IMPORT_ERRORS = """
{
  importErrors(channel: "woocommerce", status: null) {
    edges { node { id reference status reasons { field code } } }
  }
}
"""
REPLAY = """
mutation Replay($id: ID!) {
  replayImport(id: $id) {
    importError { status }
    order { number externalId }
    errors { code }
  }
}
"""


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url, plugins={"woocommerce": {"enabled": True, "webhook_secret": SECRET}}
    )


def woo_order(order_id: int = ORDER_ID, *, sku: str = "MUG", price: Any = 12.5) -> dict[str, Any]:
    """An order.created payload as WooCommerce sends it: prices are JSON numbers."""
    return {
        "id": order_id,
        "number": str(order_id),
        "status": "processing",
        "currency": "EUR",
        "total": "49.90",
        "customer_note": "",
        "billing": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
            "phone": "+44 20 7946 0000",
            "country": "GB",
        },
        "shipping": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "company": "",
            "address_1": "12 St James's Square",
            "address_2": "",
            "city": "London",
            "state": "",
            "postcode": "SW1Y 4JH",
            "country": "GB",
            "phone": "",
        },
        "line_items": [
            {
                "id": 315,
                "name": "Mug",
                "sku": sku,
                "quantity": 2,
                "price": price,
                "subtotal": "25.00",
                "total": "25.00",
            },
            {
                "id": 316,
                "name": "T-shirt",
                "sku": "TEE",
                "quantity": 1,
                "price": 24.9,
                "subtotal": "24.90",
                "total": "24.90",
            },
        ],
    }


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


async def deliver(
    api: Api, body: bytes | Streamed, *, delivery_id: str, signature: str | None = "sign"
) -> httpx.Response:
    raw = body.body if isinstance(body, Streamed) else body
    headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Source": "https://shop.example.com/",
        "X-WC-Webhook-Topic": "order.created",
        "X-WC-Webhook-Resource": "order",
        "X-WC-Webhook-Event": "created",
        "X-WC-Webhook-ID": "12",
        "X-WC-Webhook-Delivery-ID": delivery_id,
    }
    if signature is not None:
        headers["X-WC-Webhook-Signature"] = sign(raw) if signature == "sign" else signature
    return await api.client.post(WEBHOOK, content=body, headers=headers)


async def woo_orders(api: Api) -> list[dict[str, Any]]:
    return [edge["node"] for edge in (await api.data(ORDERS))["orders"]["edges"]]


async def inbox(api: Api) -> list[dict[str, Any]]:
    return [edge["node"] for edge in (await api.data(IMPORT_ERRORS))["importErrors"]["edges"]]


async def test_the_ping_of_a_new_webhook_is_answered_and_stores_nothing(api: Api) -> None:
    response = await api.client.post(
        WEBHOOK,
        content=b"webhook_id=12",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 200
    assert await woo_orders(api) == []
    assert await inbox(api) == []


async def test_a_missing_or_wrong_signature_is_401_and_stores_nothing(api: Api) -> None:
    body = json.dumps(woo_order()).encode()

    missing = await deliver(api, body, delivery_id="1", signature=None)
    wrong = await deliver(api, body, delivery_id="2", signature=sign(body, "not-the-secret"))
    signed_ping = await deliver(api, b"webhook_id=12", delivery_id="3", signature="bad")

    assert [r.status_code for r in (missing, wrong, signed_ping)] == [401, 401, 401]
    assert await woo_orders(api) == []
    assert await inbox(api) == []


async def test_an_order_is_created_with_json_number_prices_kept_exact(api: Api) -> None:
    response = await deliver(api, json.dumps(woo_order()).encode(), delivery_id="1")

    assert response.status_code == 201, response.text
    [order] = await woo_orders(api)
    assert response.json() == {
        "status": "created",
        "order": order["number"],
        "import_error_id": None,
        "problems": [],
    }
    assert order["externalId"] == str(ORDER_ID)
    assert order["customer"] == {"email": "ada@example.com", "name": "Ada"}
    assert order["shippingAddress"] == {
        "name": "Ada Lovelace",
        "line1": "12 St James's Square",
        "line2": None,
        "city": "London",
        "postalCode": "SW1Y 4JH",
        "country": "GB",
        "phone": None,
    }
    assert [(line["sku"], line["quantity"], line["unitPrice"]) for line in order["lines"]] == [
        ("MUG", 2, "12.50"),
        ("TEE", 1, "24.90"),
    ]
    assert (order["total"], order["note"]) == ("49.90", "WooCommerce order #727")


async def test_ten_identical_deliveries_at_once_make_one_order(api: Api) -> None:
    body = json.dumps(woo_order()).encode()

    responses = await asyncio.gather(*(deliver(api, body, delivery_id="42") for _ in range(10)))

    assert sorted(r.json()["status"] for r in responses) == ["created"] + ["duplicate"] * 9
    [order] = await woo_orders(api)
    assert {r.json()["order"] for r in responses} == {order["number"]}
    assert await inbox(api) == []
    again = await deliver(api, body, delivery_id="43")
    assert (again.json()["status"], len(await woo_orders(api))) == ("duplicate", 1)


async def test_an_invalid_order_goes_to_the_inbox_and_is_replayed_after_the_fix(
    api: Api,
) -> None:
    body = json.dumps(woo_order(sku="DESK", price=150)).encode()

    response = await deliver(api, body, delivery_id="1")

    assert (response.status_code, response.json()["status"]) == (200, "rejected")
    [entry] = await inbox(api)
    assert (entry["reference"], entry["status"]) == (str(ORDER_ID), "OPEN")
    assert entry["reasons"] == [{"field": "lines[0].sku", "code": "UNKNOWN_SKU"}]

    await api.data(
        'mutation { upsertProducts(input: [{sku: "DESK", name: "Desk", listPrice: "150.00", '
        'currency: "EUR"}]) { errors { message } } }'
    )
    replayed = (await api.data(REPLAY, {"id": entry["id"]}))["replayImport"]

    assert replayed["errors"] == []
    assert replayed["importError"]["status"] == "IMPORTED"
    assert [order["externalId"] for order in await woo_orders(api)] == [str(ORDER_ID)]


@pytest.mark.parametrize(
    "shipping",
    [{}, {key: "" for key in ("first_name", "last_name", "address_1", "city", "country")}],
    ids=["no-shipping-fields", "blank-shipping-fields"],
)
async def test_an_order_without_a_shipping_address_ships_to_the_billing_address(
    api: Api, shipping: dict[str, str]
) -> None:
    """Digital goods, or a shop that ships to the billing address, as WooCommerce sends them."""
    order = woo_order()
    order["billing"] |= {
        "address_1": "1 Navy Yard",
        "address_2": "Building 5",
        "city": "Arlington",
        "postcode": "22202",
        "country": "US",
    }
    order["shipping"] = shipping

    response = await deliver(api, json.dumps(order).encode(), delivery_id="1")

    assert response.status_code == 201, response.text
    [created] = await woo_orders(api)
    assert created["shippingAddress"] == {
        "name": "Ada Lovelace",
        "line1": "1 Navy Yard",
        "line2": "Building 5",
        "city": "Arlington",
        "postalCode": "22202",
        "country": "US",
        "phone": "+44 20 7946 0000",
    }


async def test_an_unsigned_body_that_is_no_ping_is_refused_after_a_few_bytes(api: Api) -> None:
    streamed = Streamed(b"webhook_id=12" + b"0" * 5_000_000)

    refused = await deliver(api, streamed, delivery_id="1", signature=None)

    assert refused.status_code == 401
    assert streamed.pulled <= streamed.chunk
    assert await inbox(api) == []


async def test_a_signed_body_over_the_cap_is_refused_and_nothing_is_stored(api: Api) -> None:
    body = json.dumps(woo_order()).encode()
    streamed = Streamed(body + b" " * 2_000_000)

    refused = await deliver(api, streamed, delivery_id="1")
    accepted = await deliver(api, body, delivery_id="1")

    assert refused.status_code == 413
    assert streamed.pulled <= 1_000_000 + streamed.chunk
    assert accepted.status_code == 201, accepted.text
    assert len(await woo_orders(api)) == 1


async def test_a_long_delivery_id_and_a_reused_one_are_answered_right(api: Api) -> None:
    long_id = "9" * 250
    first, second = json.dumps(woo_order()).encode(), json.dumps(woo_order(728)).encode()

    answers = [
        await deliver(api, first, delivery_id=long_id),
        await deliver(api, first, delivery_id=long_id),
        await deliver(api, second, delivery_id=long_id),
        await deliver(api, second, delivery_id=long_id),
    ]

    assert [(r.status_code, r.json()["status"]) for r in answers] == [
        (201, "created"),
        (200, "duplicate"),
        (201, "created"),
        (200, "duplicate"),
    ]
    assert sorted(order["externalId"] for order in await woo_orders(api)) == ["727", "728"]
    assert await inbox(api) == []
