"""Staff of one team see and touch only their team's orders.

The schema is walked, not sampled: every root field it serves is either called here as
staff of team "dock" against the records of an order of team "floor" (and must answer as
if they did not exist, writing nothing), or listed with the reason it is bound to no
order. A field added later that this file does not know fails the walk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import Api, submit
from test_settlement import ADMIN, BERLIN, PIA, confirmed, shop
from test_subscriptions import connected_as, next_events, subscribe_live

from ordergraph.core import auth, db
from ordergraph.core.tables import Order
from ordergraph.core.transitions import transition_order
from ordergraph.graphql.schema import build_schema
from ordergraph.graphql.types import order_global_id
from ordergraph.stages.fulfilment import work
from ordergraph.stages.fulfilment.tables import Shipment, Task
from ordergraph.stages.fulfilment.teams import MemberData, upsert_team
from ordergraph.stages.settlement.reconciliation import BankCredit, import_credits, match_line
from ordergraph.stages.settlement.tables import BankLine
from ordergraph.stages.tracking import alerts
from plugins.carriers import manual
from plugins.payments import bank_transfer, cash_on_delivery

LEEDS = {
    "name": "Bob",
    "line1": "1 Briggate",
    "city": "Leeds",
    "postalCode": "LS1 6HD",
    "country": "GB",
}


@dataclass
class Floor:
    """The records of team floor's orders, each named by what it is used for."""

    done: int  # delivered, confirmed: a statement, a manual shipment, an alert
    problem: int  # delivered, with an open delivery problem
    delivered: int  # delivered, nothing reported
    working: int  # approved, its tasks open
    number: str
    statement: str
    shipment: int
    alert: int
    delivery_problem: int
    tasks: dict[str, int]
    bank_line: int
    markers: tuple[str, ...]


async def _shipped(api: Api, external_id: str, carrier: str = "manual") -> int:
    """An order of Ada's (team floor) picked, packed and shipped with ``carrier``."""
    order = await submit(
        api, external_id, as_="ada", lines=[{"sku": "MUG", "quantity": 1}], shippingAddress=BERLIN
    )
    order_id = order["databaseId"]
    await api.rt.runner.drain()
    tasks = {t["kind"]: t["id"] for t in await Task.select().where(Task.order == order_id)}
    await work.complete_pick(api.rt, tasks["pick"], {}, None, PIA)
    await work.complete_pack(api.rt, tasks["pack"], [work.Parcel(500, 10, 10, 10, {1: 1})], PIA)
    await work.complete_ship(api.rt, tasks["ship"], carrier, "", ["T-" + external_id], PIA)
    await api.rt.runner.drain()
    return order_id


async def _delivered(api: Api, external_id: str) -> int:
    order_id = await _shipped(api, external_id)
    await transition_order(api.rt, order_id, "deliver", ADMIN)
    await api.rt.runner.drain()
    return order_id


@contextlib.asynccontextmanager
async def two_teams(database_url: str) -> AsyncIterator[tuple[Api, Floor]]:
    """Team floor (pia) fulfils Ada's orders, team dock (dan) Bob's bulk orders."""
    async with shop(
        database_url,
        extra={"manual": manual, "bank_transfer": bank_transfer, "cash": cash_on_delivery},
        plugin_settings={"rules": {"rules": ["type=bulk -> dock", "-> floor"]}},
    ) as api:
        await upsert_team("dock", "", [MemberData("dan", 1000)])
        api.tokens["pia"] = await auth.create_token("staff", name="pia", team="floor")
        api.tokens["dan"] = await auth.create_token("staff", name="dan", team="dock")
        done = await _delivered(api, "A-DONE")
        order = await confirmed(api, done)
        problem = await _delivered(api, "A-PROBLEM")
        reported = await api.data(
            "mutation($id: ID!) { reportDeliveryProblem(orderId: $id, description: "
            '"The mug arrived broken") { problem { id } errors { code } } }',
            {"id": str(problem)},
            as_="ada",
        )
        delivered = await _delivered(api, "A-DELIVERED")
        working = await submit(api, "A-WORKING", as_="ada", lines=[{"sku": "MUG", "quantity": 1}])
        await api.rt.runner.drain()
        alert = await alerts.open_alert(api.rt, done, "stuck")
        await import_credits(
            api.rt,
            [
                BankCredit(
                    "line 1", "lines[1]", "test", "DE1", "2026-01-05", "1.00", "EUR", "no ref"
                ),
                BankCredit(
                    "line 2", "lines[2]", "test", "DE1", "2026-01-05", "2.00", "EUR", "for A-DONE"
                ),
            ],
            ADMIN,
        )
        paid = await BankLine.select(BankLine.id).where(BankLine.text == "for A-DONE").first()
        await match_line(api.rt, paid["id"], order["statement"]["number"], ADMIN)
        shipment = await Shipment.select(Shipment.id).where(Shipment.order == done).first()
        tasks = await Task.select().where(Task.order == working["databaseId"])
        line = await BankLine.select(BankLine.id).where(BankLine.text == "no ref").first()
        number = (
            await api.data("query($id: ID!) { order(id: $id) { number } }", {"id": str(done)})
        )["order"]["number"]
        statement = order["statement"]["number"]
        assert alert is not None
        floor = Floor(
            done=done,
            problem=problem,
            delivered=delivered,
            working=working["databaseId"],
            number=number,
            statement=statement,
            shipment=shipment["id"],
            alert=alert,
            delivery_problem=int(reported["reportDeliveryProblem"]["problem"]["id"]),
            tasks={t["kind"]: t["id"] for t in tasks},
            bank_line=line["id"],
            markers=(
                "ada@example.com",
                "Unter den Linden",
                "A-DONE",
                "A-PROBLEM",
                "A-DELIVERED",
                "A-WORKING",
                "T-A-DONE",
                statement,
                number,
            ),
        )
        yield api, floor


# -- The walk ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """How to call a field against floor's records: the document, its variables, and for a
    mutation the argument its refusal names (``None``: a read, which answers nothing)."""

    document: str
    variables: Callable[[Floor], dict[str, Any]]
    refused_field: str | None = None


def _read(document: str, variables: Callable[[Floor], dict[str, Any]]) -> Call:
    return Call(document, variables)


def _write(
    document: str, variables: Callable[[Floor], dict[str, Any]], refused_field: str = "id"
) -> Call:
    return Call(document, variables, refused_field)


ERRORS = "errors { field code }"
PARCEL = {
    "weightGrams": 900,
    "lengthMm": 300,
    "widthMm": 200,
    "heightMm": 100,
    "lines": [{"lineNo": 1, "quantity": 1}],
}
STATEMENT_FIELDS = "number customer seller total lines { sku } balance { paid }"

CALLS: dict[str, Call] = {
    "Query.order": _read(
        "query($id: ID!) { order(id: $id) { externalId customer { email } } }",
        lambda f: {"id": str(f.done)},
    ),
    "Query.node": _read(
        "query($id: ID!) { node(id: $id) { ... on Order { externalId customer { email } } } }",
        lambda f: {"id": order_global_id(f.done)},
    ),
    "Query.nodes": _read(
        "query($ids: [ID!]!) { nodes(ids: $ids) { ... on Order { externalId } } }",
        lambda f: {"ids": [order_global_id(f.done), order_global_id(f.working)]},
    ),
    "Query.orderByNumber": _read(
        "query($n: String!) { orderByNumber(number: $n) { externalId } }",
        lambda f: {"n": f.number},
    ),
    "Query.orders": _read(
        "{ orders { totalCount edges { node { externalId customer { email } } } } }",
        lambda f: {},
    ),
    "Query.statusGraph": _read("{ statusGraph { states { name count } } }", lambda f: {}),
    "Query.myWork": _read("{ myWork { order { externalId } } }", lambda f: {}),
    "Query.statement": _read(
        f"query($n: String!) {{ statement(number: $n) {{ {STATEMENT_FIELDS} }} }}",
        lambda f: {"n": f.statement},
    ),
    "Query.shipmentTracking": _read(
        "query($id: ID!) { shipmentTracking(orderId: $id) { trackingNumber } }",
        lambda f: {"id": str(f.done)},
    ),
    "Query.alerts": _read(
        "query($id: ID) { alerts(orderId: $id) { edges { node { orderNumber } } } "
        "every: alerts { edges { node { orderNumber } } } }",
        lambda f: {"id": str(f.done)},
    ),
    "Query.bankLines": _read(
        "{ bankLines(state: MATCHED) { edges { node { text } } } }", lambda f: {}
    ),
    "Mutation.transitionOrder": _write(
        f'mutation($id: ID!) {{ transitionOrder(id: $id, transition: "cancel") {{ {ERRORS} }} }}',
        lambda f: {"id": str(f.working)},
    ),
    "Mutation.cancelOrder": _write(
        f"mutation($id: ID!) {{ cancelOrder(id: $id) {{ {ERRORS} }} }}",
        lambda f: {"id": str(f.working)},
    ),
    "Mutation.approveOrder": _write(
        f"mutation($id: ID!) {{ approveOrder(id: $id) {{ {ERRORS} }} }}",
        lambda f: {"id": str(f.working)},
    ),
    "Mutation.rejectOrder": _write(
        f'mutation($id: ID!) {{ rejectOrder(id: $id, reason: "no") {{ {ERRORS} }} }}',
        lambda f: {"id": str(f.working)},
    ),
    "Mutation.amendOrder": _write(
        "mutation($id: ID!, $input: SubmitOrderInput!) "
        f"{{ amendOrder(id: $id, input: $input) {{ {ERRORS} }} }}",
        lambda f: {
            "id": str(f.working),
            "input": {
                "externalId": "A-WORKING",
                "customerEmail": "ada@example.com",
                "lines": [{"sku": "MUG", "quantity": 3}],
                "shippingAddress": BERLIN,
            },
        },
    ),
    "Mutation.assignOrder": _write(
        f"mutation($id: ID!) {{ assignOrder(id: $id) {{ {ERRORS} }} }}",
        lambda f: {"id": str(f.working)},
    ),
    "Mutation.releaseOrder": _write(
        f"mutation($id: ID!) {{ releaseOrder(id: $id) {{ {ERRORS} }} }}",
        lambda f: {"id": str(f.working)},
    ),
    "Mutation.startTask": _write(
        f"mutation($id: ID!) {{ startTask(id: $id) {{ {ERRORS} }} }}",
        lambda f: {"id": str(f.tasks["pick"])},
    ),
    "Mutation.completePick": _write(
        f"mutation($id: ID!) {{ completePick(id: $id) {{ {ERRORS} }} }}",
        lambda f: {"id": str(f.tasks["pick"])},
    ),
    "Mutation.completePack": _write(
        "mutation($id: ID!, $p: [ParcelInput!]!) "
        f"{{ completePack(id: $id, parcels: $p) {{ {ERRORS} }} }}",
        lambda f: {"id": str(f.tasks["pack"]), "p": [PARCEL]},
    ),
    "Mutation.completeShip": _write(
        'mutation($id: ID!) { completeShip(id: $id, carrier: "manual", trackingNumbers: '
        f'["X-1"]) {{ {ERRORS} }} }}',
        lambda f: {"id": str(f.tasks["ship"])},
    ),
    "Mutation.shipOrder": _write(
        "mutation($id: ID!, $input: ShipmentInput!) "
        f"{{ shipOrder(orderId: $id, input: $input) {{ {ERRORS} }} }}",
        lambda f: {
            "id": str(f.working),
            "input": {"lines": [{"lineNo": 1, "quantity": 1}], "carrier": "manual"},
        },
        "orderId",
    ),
    "Mutation.confirmDelivery": _write(
        f"mutation($id: ID!) {{ confirmDelivery(orderId: $id) {{ {ERRORS} }} }}",
        lambda f: {"id": str(f.delivered)},
        "orderId",
    ),
    "Mutation.reportDeliveryProblem": _write(
        'mutation($id: ID!) { reportDeliveryProblem(orderId: $id, description: "lost") '
        f"{{ {ERRORS} }} }}",
        lambda f: {"id": str(f.delivered)},
        "orderId",
    ),
    "Mutation.resolveDeliveryProblem": _write(
        'mutation($id: ID!) { resolveDeliveryProblem(id: $id, resolution: "refunded") '
        f"{{ {ERRORS} }} }}",
        lambda f: {"id": str(f.delivery_problem)},
    ),
    "Mutation.recordPayment": _write(
        f"mutation($input: RecordPaymentInput!) {{ recordPayment(input: $input) {{ {ERRORS} }} }}",
        lambda f: {
            "input": {
                "statementNumber": f.statement,
                "kind": "COLLECTED",
                "amount": "1.00",
                "method": "cash_on_delivery",
                "idempotencyKey": "dock-cash-1",
            }
        },
        "statementNumber",
    ),
    "Mutation.recordCashCollected": _write(
        'mutation($o: String!) { recordCashCollected(order: $o, amount: "1.00", '
        f'courierReference: "dock-1") {{ {ERRORS} }} }}',
        lambda f: {"o": f.statement},
        "order",
    ),
    "Mutation.importCourierRemittance": _write(
        f"mutation($c: String!) {{ importCourierRemittance(content: $c) {{ {ERRORS} }} }}",
        lambda f: {"c": f"order,amount,courier_reference\n{f.statement},1.00,dock-2\n"},
        "rows[2]",
    ),
    "Mutation.refundOverpayment": _write(
        'mutation($n: String!) { refundOverpayment(statementNumber: $n, method: "bank_transfer"'
        f', idempotencyKey: "dock-refund-1") {{ {ERRORS} }} }}',
        lambda f: {"n": f.statement},
        "statementNumber",
    ),
    "Mutation.redeemCoupon": _write(
        f'mutation($id: ID!) {{ redeemCoupon(orderId: $id, code: "SPRING") {{ {ERRORS} }} }}',
        lambda f: {"id": str(f.working)},
        "orderId",
    ),
    "Mutation.setPromisedDate": _write(
        'mutation($id: ID!) { setPromisedDate(shipmentId: $id, promisedDate: "2030-01-02") '
        f"{{ {ERRORS} }} }}",
        lambda f: {"id": str(f.shipment)},
        "shipmentId",
    ),
    "Mutation.acknowledgeAlert": _write(
        f"mutation($id: ID!) {{ acknowledgeAlert(id: $id) {{ {ERRORS} }} }}",
        lambda f: {"id": str(f.alert)},
    ),
    "Mutation.resolveAlert": _write(
        f'mutation($id: ID!) {{ resolveAlert(id: $id, resolution: "ok") {{ {ERRORS} }} }}',
        lambda f: {"id": str(f.alert)},
    ),
    "Mutation.recordTrackingEvents": _write(
        "mutation($id: ID!, $e: [TrackingEventInput!]!) "
        f"{{ recordTrackingEvents(shipmentId: $id, events: $e) {{ {ERRORS} }} }}",
        lambda f: {
            "id": str(f.shipment),
            "e": [{"occurredAt": "2026-01-05T09:00:00+01:00", "status": "DELIVERED"}],
        },
        "shipmentId",
    ),
    "Mutation.matchBankLine": _write(
        f"mutation($id: ID!, $n: String!) {{ matchBankLine(id: $id, statementNumber: $n) "
        f"{{ {ERRORS} }} }}",
        lambda f: {"id": str(f.bank_line), "n": f.statement},
        "statementNumber",
    ),
}

# Root fields that take no id bound to an order, and why they are not walked.
NOT_ORDER_BOUND = {
    "Query.me": "the caller itself",
    "Query.plugins": "admins only; no order",
    "Query.products": "master data",
    "Query.customers": "master data of stage 1, served to every operator",
    "Query.reviewQueue": "held orders, which no team holds before they are approved",
    "Query.importErrors": "inputs that never became orders",
    "Query.teams": "teams, each team's staff see their own",
    "Query.promotionKinds": "plugin metadata",
    "Query.promotions": "shop-wide rules, not orders",
    "Query.trackOrder": "public: answers whoever knows the customer's e-mail or postal code",
    "Mutation.upsertProducts": "master data",
    "Mutation.upsertCustomer": "master data",
    "Mutation.replayImport": "an import error, not an order",
    "Mutation.upsertTeam": "admins only; teams",
    "Mutation.setMemberAvailability": "a member, not an order (staff: their own only)",
    "Mutation.createPromotion": "admins only",
    "Mutation.schedulePromotion": "admins only",
    "Mutation.retirePromotion": "admins only",
    "Mutation.submitOrder": "a new order, on the caller's account",
    "Mutation.importBankStatement": "a bank file: its credits go to the statements they name",
    "Query.analytics": "figures, not orders; staff of a team get their team's (test_analytics)",
    "Query.processMap": "counts, not orders; staff of a team get their team's (test_analytics)",
    "Subscription.processMapChanged": "counts, not orders; staff of a team get their team's",
}

# Subscriptions are walked by the tests below (a websocket each).
SUBSCRIPTIONS = {"orderEvents", "myNewWork", "alerts"}


def _root_fields(api: Api) -> set[str]:
    """Every root field of the schema the service builds, as Type.field."""
    schema = build_schema(api.rt)._schema
    return {
        f"{kind}.{name}"
        for kind in ("Query", "Mutation", "Subscription")
        for name in schema.get_type(kind).fields
    }


async def _snapshot() -> dict[str, list[str]]:
    """Every row of every table, to tell that nothing was written."""
    if db.current().is_sqlite:
        tables = await db.raw("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        tables = await db.raw("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'")
    snapshot = {}
    for table in sorted(t["name"] for t in tables):
        rows = await db.raw(f'SELECT * FROM "{table}"')
        snapshot[table] = sorted(json.dumps(r, default=str, sort_keys=True) for r in rows)
    return snapshot


def _leaks(data: Any, floor: Floor) -> list[str]:
    text = json.dumps(data)
    return [marker for marker in floor.markers if marker in text]


def _codes(body: dict[str, Any]) -> list[tuple[str | None, str]]:
    """The refusals of a call: top-level errors and payload errors, (field, code)."""
    found = [
        (e.get("extensions", {}).get("field"), e.get("extensions", {}).get("code"))
        for e in body.get("errors", [])
    ]
    for payload in (body.get("data") or {}).values():
        if isinstance(payload, dict):
            found += [(e["field"], e["code"]) for e in payload.get("errors") or []]
    return found


async def test_every_root_field_is_walked_or_bound_to_no_order(database_url: str) -> None:
    async with two_teams(database_url) as (api, _):
        fields = _root_fields(api)
    subscriptions = {f"Subscription.{name}" for name in SUBSCRIPTIONS}
    unknown = fields - set(CALLS) - set(NOT_ORDER_BOUND) - subscriptions
    assert not unknown, f"call these as another team's staff in CALLS, or say why not: {unknown}"
    assert not (set(CALLS) | set(NOT_ORDER_BOUND) | subscriptions) - fields


async def test_another_teams_staff_get_nothing_and_change_nothing(database_url: str) -> None:
    async with two_teams(database_url) as (api, floor):
        wrong: dict[str, str] = {}
        answered: dict[str, Any] = {}
        for name, call in CALLS.items():
            before = await _snapshot()
            body = answered[name] = await api.gql(call.document, call.variables(floor), as_="dan")
            changed = [t for t, rows in (await _snapshot()).items() if before.get(t) != rows]
            expected = [(call.refused_field, "NOT_FOUND")] if call.refused_field else []
            if changed:
                wrong[name] = f"wrote {changed}: {body}"
            elif leaks := _leaks(body.get("data"), floor):
                wrong[name] = f"answered {leaks}: {body}"
            elif _codes(body) not in (expected, [(None, "NOT_FOUND")]):
                wrong[name] = f"answered {body}"
        assert not wrong, "\n".join(f"{name} {what}" for name, what in wrong.items())
        states = answered["Query.statusGraph"]["data"]["statusGraph"]["states"]
        assert sum(s["count"] for s in states) == 0

        # Read as floor's own staff, the same reads do answer floor's data.
        for name, call in CALLS.items():
            if call.refused_field is None and name != "Query.statusGraph":
                body = await api.data(call.document, call.variables(floor), as_="pia")
                assert _leaks(body, floor), f"{name} answers nothing even to floor: {body}"


async def test_a_token_of_a_team_that_does_not_exist_has_no_work(database_url: str) -> None:
    """pia's name with a team that does not exist: ``orders`` and ``myWork`` agree."""
    async with two_teams(database_url) as (api, _floor):
        api.tokens["ghost"] = await auth.create_token("staff", name="pia", team="nowhere")
        work_of = await api.data("{ myWork { order { externalId } } }", as_="ghost")
        orders = await api.data("{ orders { totalCount } }", as_="ghost")
        assert (work_of["myWork"], orders["orders"]["totalCount"]) == ([], 0)
        own = await api.data("{ myWork { order { externalId } } }", as_="pia")
        assert [w["order"]["externalId"] for w in own["myWork"]] == ["A-WORKING"]


async def test_the_statement_pdf_is_not_served_to_another_team(database_url: str) -> None:
    async with two_teams(database_url) as (api, floor):
        path = f"/statements/{floor.statement}.pdf"
        headers = {"Authorization": f"Bearer {api.tokens['dan']}"}
        refused = await api.client.get(path, headers=headers)
        assert refused.status_code == 404
        assert floor.statement not in refused.text.replace(f"statement {floor.statement}", "")
        headers = {"Authorization": f"Bearer {api.tokens['pia']}"}
        served = await api.client.get(path, headers=headers)
        assert (served.status_code, served.headers["content-type"]) == (200, "application/pdf")


async def test_order_events_carry_only_the_teams_own_orders(database_url: str) -> None:
    async with two_teams(database_url) as (api, floor):
        bulk, bob = await _bulk_order(api)
        async with connected_as(api, "dan") as ws:
            await subscribe_live(ws, api, order_id=bulk, owner=bob, variables={})
            # Floor's order moves first: had its event leaked, it would come first.
            await transition_order(api.rt, floor.working, "cancel", ADMIN)
            await transition_order(api.rt, bulk, "cancel", ADMIN)
            events = await next_events(ws, 1)
        assert [(e["orderId"], e["toStatus"]) for e in events] == [
            (order_global_id(bulk), "CANCELLED")
        ]

        async with connected_as(api, "dan") as ws:
            await ws.send_json(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {
                        "query": "subscription($id: ID) { orderEvents(orderId: $id) { type } }",
                        "variables": {"id": str(floor.done)},
                    },
                }
            )
            result = await ws.receive_json(timeout=5)
        assert result["payload"]["data"] is None
        assert [e["extensions"]["code"] for e in result["payload"]["errors"]] == ["NOT_FOUND"]


def _message(order_id: int, customer_id: int, type: str, data: dict[str, Any]) -> dict[str, Any]:
    """An order event as the bus carries it."""
    return {
        "id": 0,
        "order_id": order_id,
        "customer_id": customer_id,
        "type": type,
        "from_status": None,
        "to_status": None,
        "actor": "test",
        "data": data,
        "at": db.now().isoformat(),
    }


async def _first_pushed(
    api: Api, who: str, document: str, field: str, key: str, messages: list[dict[str, Any]]
) -> str:
    """Subscribe as ``who``; publish ``messages[-1]`` until it is pushed (the subscription is
    live from then on), then all of them in order; the ``key`` of the first pushed after."""
    async with connected_as(api, who) as ws:
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": document}})
        async with asyncio.timeout(10):
            while True:
                await api.rt.bus.publish(messages[-1])
                with contextlib.suppress(TimeoutError):
                    await ws.receive_json(timeout=0.1)
                    break
            for message in messages:
                await api.rt.bus.publish(message)
            while True:
                pushed = (await ws.receive_json())["payload"]["data"][field]
                return pushed[key]


async def _bulk_order(api: Api) -> tuple[int, int]:
    """An order of Bob's that team dock holds: its id and Bob's customer id."""
    order = await submit(
        api, "B-BULK", customerEmail="bob@example.com", type="bulk", shippingAddress=LEEDS
    )
    await api.rt.runner.drain()
    read = "query($id: ID!) { order(id: $id) { customer { id } assignment { team } } }"
    found = (await api.data(read, {"id": order["id"]}))["order"]
    assert found["assignment"]["team"] == "dock"
    return order["databaseId"], int(found["customer"]["id"])


async def test_alerts_are_pushed_to_the_orders_team_only(database_url: str) -> None:
    async with two_teams(database_url) as (api, floor):
        bulk, bob = await _bulk_order(api)
        dock_alert = await alerts.open_alert(api.rt, bulk, "stuck")
        ada = (await Order.select(Order.customer).where(Order.id == floor.done).first())["customer"]
        first = await _first_pushed(
            api,
            "dan",
            "subscription { alerts { id orderId } }",
            "alerts",
            "orderId",
            [
                _message(
                    floor.done, ada, "alert_acknowledged", {"alert": floor.alert, "team": "floor"}
                ),
                _message(bulk, bob, "alert_acknowledged", {"alert": dock_alert, "team": "dock"}),
            ],
        )
        assert first == order_global_id(bulk)


async def test_new_work_is_pushed_only_within_the_tokens_team(database_url: str) -> None:
    """A token named like floor's pia but of team dock is not pushed floor's orders."""
    async with two_teams(database_url) as (api, floor):
        bulk, bob = await _bulk_order(api)
        api.tokens["pia@dock"] = await auth.create_token("staff", name="pia", team="dock")
        ada = (await Order.select(Order.customer).where(Order.id == floor.done).first())["customer"]
        first = await _first_pushed(
            api,
            "pia@dock",
            "subscription { myNewWork { externalId } }",
            "myNewWork",
            "externalId",
            [
                _message(floor.working, ada, "assigned", {"member": "pia"}),
                _message(bulk, bob, "assigned", {"member": "pia"}),
            ],
        )
        assert first == "B-BULK"


@pytest.mark.parametrize("who", ["ada", "bob"])
async def test_customers_do_not_see_who_in_the_shop_did_what(database_url: str, who: str) -> None:
    async with two_teams(database_url) as (api, floor):
        timeline = "query($id: ID!) { order(id: $id) { events { type actor } } }"
        body = await api.gql(timeline, {"id": str(floor.done)}, as_=who)
        if who == "bob":
            assert body["data"]["order"] is None
            return
        events = body["data"]["order"]["events"]
        staff_only = {"assigned", "queued", "task_started", "task_completed", "alert_opened"}
        assert not [e for e in events if e["type"] in staff_only]
        assert {e["actor"] for e in events} <= {"customer:ada", "staff", "system:ordergraph"}
        assert "shipment" in {e["type"] for e in events}
        staff_view = await api.data(timeline, {"id": str(floor.done)}, as_="pia")
        assert {"assigned", "task_completed"} <= {e["type"] for e in staff_view["order"]["events"]}
        assert "staff:pia" in {e["actor"] for e in staff_view["order"]["events"]}
