"""ID arguments that no row can have get the answer an unknown id gets, never "Unexpected error".

An ``ID`` is a string: "abc", "-1" or a number beyond what PostgreSQL's SERIAL ids hold
(which SQLite would take) must not reach the database as a query it cannot run.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import SUBMIT, Api, make_settings, order_input, serve_api, submit
from test_subscriptions import ORDER_EVENTS, connected_as

# Ids that cannot exist, and one that could but does not: all must be answered alike.
IMPOSSIBLE_IDS = ["abc", "12abc", "1.5", "-1", "0", "2147483648", "99999999999999999999"]
UNKNOWN_ID = "999999"

ORDER_PAYLOAD = "order { id } errors { field code message }"
MUTATIONS = {
    "transitionOrder": (
        f'mutation M($id: ID!) {{ transitionOrder(id: $id, transition: "cancel") '
        f"{{ {ORDER_PAYLOAD} }} }}"
    ),
    "cancelOrder": f"mutation M($id: ID!) {{ cancelOrder(id: $id) {{ {ORDER_PAYLOAD} }} }}",
    "approveOrder": f"mutation M($id: ID!) {{ approveOrder(id: $id) {{ {ORDER_PAYLOAD} }} }}",
    "rejectOrder": (
        f'mutation M($id: ID!) {{ rejectOrder(id: $id, reason: "no") {{ {ORDER_PAYLOAD} }} }}'
    ),
    "amendOrder": (
        "mutation M($id: ID!, $input: SubmitOrderInput!) "
        f"{{ amendOrder(id: $id, input: $input) {{ {ORDER_PAYLOAD} }} }}"
    ),
    "replayImport": (
        "mutation M($id: ID!) { replayImport(id: $id) "
        "{ importError { id } order { id } errors { field code message } } }"
    ),
}
ORDER = "query Order($id: ID!) { order(id: $id) { id } }"
ORDERS_OF = """
query Orders($customerId: ID) {
  orders(filter: {customerId: $customerId}) { totalCount edges { node { externalId } } }
}
"""


def not_found(mutation: str, value: str) -> dict[str, Any]:
    what = "import error" if mutation == "replayImport" else "order"
    return {"field": "id", "code": "NOT_FOUND", "message": f"There is no {what} {value}."}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
async def test_a_mutation_answers_an_impossible_id_as_an_unknown_one(api: Api, mutation: str):
    await submit(api)  # a real order, so that "no such order" is not about an empty shop
    for value in [UNKNOWN_ID, *IMPOSSIBLE_IDS]:
        variables: dict[str, Any] = {"id": value}
        if mutation == "amendOrder":
            variables["input"] = order_input("AMENDED")
        payload = (await api.data(MUTATIONS[mutation], variables))[mutation]
        assert payload["errors"] == [not_found(mutation, value)], value
        assert payload.get("order") is None


@pytest.mark.parametrize("value", ["abc", "2147483648"])
async def test_submit_order_reports_an_impossible_customer_id_as_an_unknown_customer(
    api: Api, value: str
):
    """The code and wording of an unknown customer id; the input is not validated further."""
    variables = {"input": order_input("EXT-1", customerId=value)}

    payload = (await api.data(SUBMIT, variables))["submitOrder"]

    assert payload["order"] is None
    assert payload["errors"] == [
        {
            "field": "customerId",
            "code": "UNKNOWN_CUSTOMER",
            "message": f"There is no customer with id {value}.",
        }
    ]
    unknown = await api.data(SUBMIT, {"input": order_input("EXT-2", customerId=UNKNOWN_ID)})
    assert payload["errors"][0] | {"message": ""} == (
        unknown["submitOrder"]["errors"][0] | {"message": ""}
    )


async def test_order_by_an_impossible_id_is_null(api: Api):
    order = await submit(api)

    for value in IMPOSSIBLE_IDS:
        assert (await api.data(ORDER, {"id": value}))["order"] is None, value
    assert (await api.data(ORDER, {"id": order["id"]}))["order"] == {"id": order["id"]}


async def test_filtering_orders_by_an_impossible_customer_id_finds_none(api: Api):
    await submit(api, "ADA-1")
    me = await api.data("{ me { customerId } }", as_="ada")
    ada = me["me"]["customerId"]

    found = await api.data(ORDERS_OF, {"customerId": ada})
    assert [e["node"]["externalId"] for e in found["orders"]["edges"]] == ["ADA-1"]
    for value in IMPOSSIBLE_IDS:
        empty = await api.data(ORDERS_OF, {"customerId": value})
        assert empty["orders"] == {"totalCount": 0, "edges": []}, value


@pytest.mark.parametrize("value", ["x", "2147483648"])
async def test_subscribing_to_an_impossible_order_id_ends_with_not_found(api: Api, value: str):
    async with connected_as(api, "ada") as ws:
        await ws.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": ORDER_EVENTS, "variables": {"orderId": value}},
            }
        )
        result = await ws.receive_json(timeout=5)
        done = await ws.receive_json(timeout=5)

    assert result["type"] == "next", result
    assert result["payload"]["data"] is None
    [error] = result["payload"]["errors"]
    assert error["message"] == f"There is no order {value}."
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert done == {"id": "1", "type": "complete"}


# Digits of other scripts, which str.isdigit() accepts and int() does not always read
# (superscript two is a digit to isdigit, not to int), and more digits than int() reads at all.
FOREIGN_DIGIT_IDS = ["\u00b2", "\u0661\u0662", "\uff11", "9" * 5000]
RECORD_EVENTS = """
mutation M($id: ID!) {
  recordTrackingEvents(shipmentId: $id, events: []) { newEvents errors { field code } }
}
"""
REPLAY_WEBHOOK = """
mutation M($o: ID!, $e: ID!) {
  replayWebhook(orderId: $o, eventId: $e, endpoint: "erp") { queued errors { field code } }
}
"""


async def test_stage_ids_in_other_scripts_digits_are_unknown_ids(database_url: str) -> None:
    """An id is ASCII digits for every mutation and route alike: anything else is the
    answer an unknown id gets, never an unexpected error or an HTTP 500."""
    plugins = {
        "webhooks": {
            "enabled": True,
            "signing_secret": "replay-secret",
            "endpoints": {"erp": "http://127.0.0.1:9/hook"},
            "allowed_hosts": ["127.0.0.1"],
        }
    }
    settings = make_settings(database_url, production=True, plugins=plugins)
    async with serve_api(settings) as api:
        order = await submit(api)
        for value in FOREIGN_DIGIT_IDS:
            recorded = await api.data(RECORD_EVENTS, {"id": value}, as_="staff")
            assert recorded["recordTrackingEvents"] == {
                "newEvents": 0,
                "errors": [{"field": "shipmentId", "code": "NOT_FOUND"}],
            }
            replayed = await api.data(REPLAY_WEBHOOK, {"o": value, "e": "1"})
            assert replayed["replayWebhook"]["errors"] == [
                {"field": "orderId", "code": "NOT_FOUND"}
            ]
            event = await api.data(REPLAY_WEBHOOK, {"o": order["id"], "e": value})
            assert event["replayWebhook"]["errors"] == [{"field": "eventId", "code": "NOT_FOUND"}]
            label = await api.client.get(
                f"/shipments/{value}/label",
                headers={"Authorization": f"Bearer {api.tokens['staff']}"},
            )
            assert label.status_code == 404 and label.json()["code"] == "NOT_FOUND"
