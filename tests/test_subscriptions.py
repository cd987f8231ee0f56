"""GraphQL subscriptions over graphql-transport-ws, through the real ASGI app."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from conftest import Api, over_http, submit
from httpx_ws import AsyncWebSocketSession, aconnect_ws
from httpx_ws.transport import ASGIWebSocketTransport

from ordergraph.core import db
from ordergraph.core.tables import Customer

ORDER_EVENTS = """
subscription Events($orderId: ID) {
  orderEvents(orderId: $orderId) { orderId type fromStatus toStatus actor }
}
"""

TRANSITION = """
mutation Move($id: ID!, $t: String!) {
  transitionOrder(id: $id, transition: $t) { errors { code message } }
}
"""

PROBE = "probe"


@contextlib.asynccontextmanager
async def graphql_ws(api: Api, authorization: str | None) -> AsyncIterator[AsyncWebSocketSession]:
    """A graphql-transport-ws connection to the app ``api`` talks to, ``connection_init`` sent.

    A context manager, not a fixture: the websocket transport's task group must be
    entered and left in the same task.
    """
    app = api.client._transport.app  # type: ignore[attr-defined]
    transport = ASGIWebSocketTransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
        aconnect_ws("/graphql", client, subprotocols=["graphql-transport-ws"]) as ws,
    ):
        assert ws.subprotocol == "graphql-transport-ws"
        payload = {"Authorization": authorization} if authorization else {}
        await ws.send_json({"type": "connection_init", "payload": payload})
        yield ws


@contextlib.asynccontextmanager
async def connected_as(api: Api, who: str) -> AsyncIterator[AsyncWebSocketSession]:
    """A connection that the server acknowledged for ``who``'s token."""
    async with graphql_ws(api, f"Bearer {api.tokens[who]}") as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        yield ws


async def customer_id(email: str) -> int:
    row = await Customer.select(Customer.id).where(Customer.email == email).first()
    return row["id"]


def probe_event(order_id: int, owner: int) -> dict[str, Any]:
    """An event of type ``probe`` on the bus, which passes the subscription's filters for
    ``order_id`` and its owner: subscribers that receive one are live."""
    return {
        "id": 0,
        "order_id": order_id,
        "customer_id": owner,
        "type": PROBE,
        "from_status": None,
        "to_status": None,
        "actor": "test",
        "data": {},
        "at": db.now().isoformat(),
    }


async def subscribe_live(
    ws: AsyncWebSocketSession, api: Api, *, order_id: int, owner: int, variables: dict[str, Any]
) -> None:
    """Subscribe, then publish probe events until one arrives: from then on nothing is missed.

    The probe names ``order_id`` and ``owner`` so that it passes the subscription's filters.
    """
    await ws.send_json(
        {"id": "1", "type": "subscribe", "payload": {"query": ORDER_EVENTS, "variables": variables}}
    )
    probe = probe_event(order_id, owner)
    async with asyncio.timeout(10):
        while True:
            await api.rt.bus.publish(probe)
            with contextlib.suppress(TimeoutError):
                message = await ws.receive_json(timeout=0.1)
                assert message["type"] == "next", message
                if message["payload"]["data"]["orderEvents"]["type"] == PROBE:
                    return


async def next_events(ws: AsyncWebSocketSession, count: int) -> list[dict[str, Any]]:
    """The next ``count`` order events the subscription delivers, probes left out."""
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while len(events) < count:
            message = await ws.receive_json()
            assert message["type"] == "next" and message["id"] == "1", message
            event = message["payload"]["data"]["orderEvents"]
            if event["type"] != PROBE:
                events.append(event)
    return events


async def test_order_events_delivers_an_orders_transitions_live_and_in_order(api: Api):
    order = await submit(api)
    async with connected_as(api, "ada") as ws:
        await subscribe_live(
            ws,
            api,
            order_id=order["databaseId"],
            owner=await customer_id("ada@example.com"),
            variables={"orderId": order["id"]},
        )
        for transition in ("start_review", "hold", "approve"):
            body = await api.data(TRANSITION, {"id": order["id"], "t": transition}, as_="staff")
            assert body["transitionOrder"]["errors"] == []

        events = await next_events(ws, 3)

    # Ada sees that the shop acted, not which member of staff.
    assert events == [
        {"orderId": order["id"], "type": "transition", "fromStatus": "RECEIVED",
         "toStatus": "IN_REVIEW", "actor": "staff"},
        {"orderId": order["id"], "type": "transition", "fromStatus": "IN_REVIEW",
         "toStatus": "ON_HOLD", "actor": "staff"},
        {"orderId": order["id"], "type": "transition", "fromStatus": "ON_HOLD",
         "toStatus": "APPROVED", "actor": "staff"},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("authorization", "advice"),
    [
        (None, 'send {"Authorization": "Bearer <token>"} as the payload of connection_init'),
        ("Bearer og_not-a-token", "the token sent is not one that works"),
        ("Basic YWRhOnNlY3JldA==", "the token sent is not one that works"),
    ],
)
async def test_a_connection_without_a_valid_token_is_told_why_when_it_subscribes(
    api: Api, authorization: str | None, advice: str
):
    """The client gets a GraphQL error it can show, not a closed socket it retries."""
    async with graphql_ws(api, authorization) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": ORDER_EVENTS}})
        result = await ws.receive_json(timeout=5)
        done = await ws.receive_json(timeout=5)

    assert result["type"] == "next", result
    assert result["payload"]["data"] is None
    [error] = result["payload"]["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["message"].startswith("Authentication required: " + advice)
    assert done == {"id": "1", "type": "complete"}


async def test_a_subscription_sent_over_http_is_told_to_use_the_websocket(api: Api):
    response = await api.client.post(
        "/graphql",
        json={"query": ORDER_EVENTS},
        headers={"Authorization": f"Bearer {api.tokens['admin']}"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "USE_WEBSOCKET"
    assert error["message"] == (
        "Subscriptions are not served over HTTP: open a websocket to ws://testserver/graphql "
        "with the graphql-transport-ws protocol, and send the Authorization header in "
        "connection_init's payload."
    )


async def test_a_customer_receives_events_of_their_own_orders_only(api: Api):
    ada = await customer_id("ada@example.com")
    async with connected_as(api, "ada") as ws:
        await subscribe_live(ws, api, order_id=0, owner=ada, variables={})
        bobs = await submit(api, "EXT-BOB", customerEmail="bob@example.com")
        adas = await submit(api, "EXT-ADA")
        await api.data(TRANSITION, {"id": bobs["id"], "t": "start_review"}, as_="staff")
        await api.data(TRANSITION, {"id": adas["id"], "t": "start_review"}, as_="staff")

        # Bob's events were published before each of Ada's: had they leaked, they came first.
        events = await next_events(ws, 2)

    assert [(e["orderId"], e["type"], e["toStatus"]) for e in events] == [
        (adas["id"], "submitted", "RECEIVED"),
        (adas["id"], "transition", "IN_REVIEW"),
    ]


async def test_a_customer_may_not_subscribe_to_another_customers_order(api: Api):
    bobs = await submit(api, "EXT-BOB", customerEmail="bob@example.com")
    async with connected_as(api, "ada") as ws:
        await ws.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": ORDER_EVENTS, "variables": {"orderId": bobs["id"]}},
            }
        )
        result = await ws.receive_json(timeout=5)
        done = await ws.receive_json(timeout=5)

    # A resolver error is a result with errors, then the operation completes (as graphql-ws).
    assert result["type"] == "next", result
    assert result["payload"]["data"] is None
    [error] = result["payload"]["errors"]
    assert error["message"] == f"There is no order {bobs['id']}."
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert done == {"id": "1", "type": "complete"}


# A subscription refused before it runs, with the code of its refusal.
REFUSED_SUBSCRIPTIONS = [
    ({"query": "subscription { orderEvents { type }"}, "GRAPHQL_PARSE_FAILED"),
    ({"query": "subscription { orderEvents { nope } }"}, "GRAPHQL_VALIDATION_FAILED"),
    ({"query": ORDER_EVENTS, "variables": {"orderId": [1]}}, "BAD_USER_INPUT"),
    ({"query": ORDER_EVENTS, "operationName": "Other"}, "OPERATION_RESOLUTION_FAILURE"),
    (
        {"query": ORDER_EVENTS + "subscription Second { orderEvents { type } }"},
        "OPERATION_RESOLUTION_FAILURE",
    ),
]


async def test_a_subscription_refused_before_it_runs_gets_an_error_message_with_its_code(
    api: Api, caplog: pytest.LogCaptureFixture
):
    """graphql-ws's ``error`` message, which a client reports as a failure (a bare
    ``complete`` reads as a normal end); the connection stays open, and the server logs
    no traceback: the mistake is the client's."""
    with caplog.at_level(logging.ERROR):
        async with connected_as(api, "ada") as ws:
            for number, (payload, code) in enumerate(REFUSED_SUBSCRIPTIONS, start=1):
                await ws.send_json({"id": str(number), "type": "subscribe", "payload": payload})
                answer = await ws.receive_json(timeout=5)

                assert answer["type"] == "error" and answer["id"] == str(number), answer
                [error] = answer["payload"]
                assert error["extensions"]["code"] == code, (payload, error)
            await ws.send_json({"type": "ping"})
            assert await ws.receive_json(timeout=5) == {"type": "pong"}

    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_close_reason_fits_in_a_close_frame(api: Api):
    """A reason longer than the 123 bytes a close frame holds (a long operation id
    repeated) used to fail the close itself: the client saw no code at all."""
    long_id = "operation-" + "é" * 200
    subscribe = {"id": long_id, "type": "subscribe", "payload": {"query": ORDER_EVENTS}}
    async with over_http(api) as base:
        url = base.replace("http", "ws", 1) + "/graphql"
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
            init = {"Authorization": f"Bearer {api.tokens['ada']}"}
            await ws.send(json.dumps({"type": "connection_init", "payload": init}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(json.dumps(subscribe))
            await ws.send(json.dumps(subscribe))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(10):
                    while True:
                        await ws.recv()

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4409
    assert closed.value.rcvd.reason.startswith("Subscriber for operation-éé")
    assert len(closed.value.rcvd.reason.encode()) <= 123
