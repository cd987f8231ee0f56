"""Stage 3 through the real app: assignment, pick/pack/ship, partial shipments, refusals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import ADDRESS, Api, make_settings, serve_api, submit
from test_subscriptions import connected_as

import plugins.channels.web
import plugins.review_rules.stock
from ordergraph.app import create_app
from ordergraph.core import auth, db
from ordergraph.core.plugins import PluginConfigError
from ordergraph.plugin_api import (
    AssignmentChoice,
    OrderView,
    PluginInfo,
    TeamView,
    hookimpl,
)

TEAM = """
mutation Team($input: TeamInput!) {
  upsertTeam(input: $input) {
    team { name members { staff capacity available openOrders } queued }
    errors { field code message }
  }
}
"""
ORDER = """
query($id: ID!) {
  order(id: $id) {
    databaseId status total version
    assignment { state team member rule assignedBy dueAt explanation }
    tasks { id kind state assignee dueAt startedBy completedBy completedAt
            pickList { lineNo sku quantity binLocation picked cancelled backordered } }
    shipments { carrier trackingNumber lines { lineNo quantity } }
    events { type actor toStatus data }
  }
}
"""
STOCK = '{ products(search: "MUG") { edges { node { stockOnHand stockReserved } } } }'
PICK = """
mutation Pick($id: ID!, $lines: [PickedLineInput!], $short: ShortPick) {
  completePick(id: $id, lines: $lines, shortPick: $short) {
    order { status total } errors { field code message }
  }
}
"""
PACK = """
mutation Pack($id: ID!, $parcels: [ParcelInput!]!) {
  completePack(id: $id, parcels: $parcels) { order { status } errors { field code message } }
}
"""
SHIP = """
mutation Ship($id: ID!, $numbers: [String!]!) {
  completeShip(id: $id, carrier: "manual", service: "express", trackingNumbers: $numbers) {
    order { status } errors { field code message }
  }
}
"""
SHIP_MORE = """
mutation More($id: ID!, $input: ShipmentInput!) {
  shipOrder(orderId: $id, input: $input) { order { status } errors { field code message } }
}
"""
START = "mutation($id: ID!) { startTask(id: $id) { order { status } errors { field code } } }"


def parcel(*lines: tuple[int, int]) -> dict[str, Any]:
    return {
        "weightGrams": 900,
        "lengthMm": 300,
        "widthMm": 200,
        "heightMm": 100,
        "lines": [{"lineNo": n, "quantity": q} for n, q in lines],
    }


@contextlib.asynccontextmanager
async def shop(
    database_url: str,
    rules: list[str] | None = None,
    more_plugins: dict[str, dict[str, Any]] | None = None,
    **settings: Any,
) -> AsyncIterator[Api]:
    """The app with the stock rule and assignment rules on (and ``more_plugins``), and
    staff of two teams."""
    plugins = {
        "stock": {"enabled": True},
        "rules": {"enabled": True, "rules": rules or ["type=bulk -> bulk", "-> packers"]},
        **(more_plugins or {}),
    }
    async with serve_api(make_settings(database_url, plugins=plugins, **settings)) as api:
        for name, team in [("pia", "packers"), ("pat", "packers"), ("bo", "bulk")]:
            api.tokens[name] = await auth.create_token("staff", name=name, team=team)
        yield api


async def team(api: Api, name: str, *members: tuple[str, int], **extra: Any) -> dict[str, Any]:
    member_input = [{"staff": staff, "capacity": capacity} for staff, capacity in members]
    data = await api.data(TEAM, {"input": {"name": name, "members": member_input, **extra}})
    assert data["upsertTeam"]["errors"] == []
    await api.rt.runner.drain()
    return data["upsertTeam"]["team"]


async def approved(api: Api, external_id: str, **overrides: Any) -> dict[str, Any]:
    """Submit an order, let review and assignment run, return it."""
    order = await submit(api, external_id, **overrides)
    await api.rt.runner.drain()
    return await read(api, order["id"])


async def read(api: Api, order_id: str, as_: str = "admin") -> dict[str, Any]:
    found = (await api.data(ORDER, {"id": order_id}, as_=as_))["order"]
    if found is not None:
        found["id"] = order_id
    return found


def task(order: dict[str, Any], kind: str) -> dict[str, Any]:
    """The order's task of ``kind``: pick, pack or ship."""
    return next(t for t in order["tasks"] if t["kind"] == kind.upper())


async def mug_stock(api: Api) -> tuple[int, int]:
    node = (await api.data(STOCK))["products"]["edges"][0]["node"]
    return node["stockOnHand"], node["stockReserved"]


async def errors(api: Api, query: str, variables: dict[str, Any], as_: str = "pia") -> list:
    data = await api.data(query, variables, as_=as_)
    return next(iter(data.values()))["errors"]


async def test_an_approved_order_goes_to_the_least_loaded_member_with_the_reason(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 5), ("pat", 5))
        first = await approved(api, "A-1", priority="URGENT")
        second = await approved(api, "A-2")

        assert first["assignment"]["state"] == "ASSIGNED"
        assert first["assignment"]["team"] == "packers"
        assert {first["assignment"]["member"], second["assignment"]["member"]} == {"pia", "pat"}
        why = second["assignment"]["explanation"]
        assert why["rule"] == "rule 2: -> packers"
        assert why["strategy"] == "least_loaded"
        # The urgent order weighs 5 on its holder; the other member had nothing.
        assert why["loads"] == {first["assignment"]["member"]: 5, second["assignment"]["member"]: 0}
        assert [c["member"] for c in why["candidates"]] == ["pia", "pat"]
        assert second["assignment"]["rule"] == "rules: rule 2: -> packers"
        assert second["assignment"]["dueAt"] is not None
        assert all(t["assignee"] == second["assignment"]["member"] for t in second["tasks"])
        assigned = [e for e in second["events"] if e["type"] == "assigned"]
        assert assigned[0]["data"]["member"] == second["assignment"]["member"]


async def test_pick_pack_ship_records_who_and_when_and_the_status_follows(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 5))
        binned = await api.data(
            'mutation { upsertProducts(input: [{sku: "MUG", name: "Mug", listPrice: "12.50", '
            'currency: "EUR", stockOnHand: 100, binLocation: "A-01-3"}]) { errors { code } } }'
        )
        assert binned["upsertProducts"]["errors"] == []
        order = await approved(api, "FLOW-1", lines=[{"sku": "MUG", "quantity": 3}])
        assert order["status"] == "APPROVED"
        assert (await mug_stock(api)) == (100, 3)
        pick = task(order, "pick")
        assert pick["pickList"][0] == {
            "lineNo": 1,
            "sku": "MUG",
            "quantity": 3,
            "binLocation": "A-01-3",
            "picked": None,
            "cancelled": 0,
            "backordered": 0,
        }

        started = await api.data(START, {"id": pick["id"]}, as_="pia")
        assert started["startTask"]["order"]["status"] == "PROCESSING"
        assert (await errors(api, PICK, {"id": pick["id"]})) == []
        pack = task(await read(api, order["id"]), "pack")
        assert (await errors(api, PACK, {"id": pack["id"], "parcels": [parcel((1, 3))]})) == []
        ship = task(await read(api, order["id"]), "ship")
        shipped = await api.data(SHIP, {"id": ship["id"], "numbers": ["TRK1"]}, as_="pia")

        assert shipped["completeShip"] == {"order": {"status": "SHIPPED"}, "errors": []}
        done = await read(api, order["id"])
        assert [(t["kind"], t["state"], t["completedBy"]) for t in done["tasks"]] == [
            ("PICK", "DONE", "staff:pia"),
            ("PACK", "DONE", "staff:pia"),
            ("SHIP", "DONE", "staff:pia"),
        ]
        assert task(done, "pick")["startedBy"] == "staff:pia"
        assert done["shipments"] == [
            {"carrier": "manual", "trackingNumber": "TRK1", "lines": [{"lineNo": 1, "quantity": 3}]}
        ]
        assert done["assignment"]["state"] == "DONE"
        assert (await mug_stock(api)) == (97, 0)
        timeline = [(e["type"], e["toStatus"]) for e in done["events"]]
        assert ("task_started", None) in timeline
        assert ("transition", "PROCESSING") in timeline
        assert ("shipment", None) in timeline
        assert timeline[-1] == ("transition", "SHIPPED")


async def test_two_of_three_units_of_one_line_ship_first_and_the_last_one_later(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 5))
        order = await approved(api, "SPLIT-1", lines=[{"sku": "MUG", "quantity": 3}])
        await api.data(PICK, {"id": task(order, "pick")["id"]}, as_="pia")
        await api.data(
            PACK, {"id": task(order, "pack")["id"], "parcels": [parcel((1, 2))]}, as_="pia"
        )
        first = await api.data(
            SHIP, {"id": task(order, "ship")["id"], "numbers": ["T1"]}, as_="pia"
        )

        assert first["completeShip"]["order"]["status"] == "PROCESSING"
        assert (await mug_stock(api)) == (98, 1)
        too_many = {"lines": [{"lineNo": 1, "quantity": 2}], "carrier": "manual"}
        refused = await errors(api, SHIP_MORE, {"id": order["id"], "input": too_many})
        assert [(e["code"], e["message"]) for e in refused] == [
            ("QUANTITY_EXCEEDED", "Line 1: 1 left to ship, 2 requested.")
        ]
        rest = {
            "lines": [{"lineNo": 1, "quantity": 1}],
            "carrier": "manual",
            "trackingNumber": "T2",
        }
        last = await api.data(SHIP_MORE, {"id": order["id"], "input": rest}, as_="pia")

        assert last["shipOrder"] == {"order": {"status": "SHIPPED"}, "errors": []}
        done = await read(api, order["id"])
        assert [s["lines"] for s in done["shipments"]] == [
            [{"lineNo": 1, "quantity": 2}],
            [{"lineNo": 1, "quantity": 1}],
        ]
        assert (await mug_stock(api)) == (97, 0)


async def test_a_short_pick_cancels_the_rest_or_keeps_it_as_a_backorder(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 5))
        lines = [{"sku": "MUG", "quantity": 4}]
        cancel = await approved(api, "SHORT-1", lines=lines)
        pick = {"id": task(cancel, "pick")["id"], "lines": [{"lineNo": 1, "picked": 3}]}
        asked = await errors(api, PICK, pick)
        assert [e["field"] for e in asked] == ["shortPick"]
        assert (await api.data(PICK, {**pick, "short": "CANCEL_REST"}, as_="pia"))[
            "completePick"
        ] == {"order": {"status": "PROCESSING", "total": "37.50"}, "errors": []}
        assert (await mug_stock(api)) == (100, 3)
        picked = task(await read(api, cancel["id"]), "pick")
        assert picked["pickList"][0]["cancelled"] == 1

        backorder = await approved(api, "SHORT-2", lines=lines)
        pick = {"id": task(backorder, "pick")["id"], "lines": [{"lineNo": 1, "picked": 1}]}
        await api.data(PICK, {**pick, "short": "BACKORDER"}, as_="pia")
        await api.data(
            PACK, {"id": task(backorder, "pack")["id"], "parcels": [parcel((1, 1))]}, as_="pia"
        )
        await api.data(SHIP, {"id": task(backorder, "ship")["id"], "numbers": ["B1"]}, as_="pia")
        waiting = await read(api, backorder["id"])
        assert waiting["status"] == "PROCESSING"
        assert task(waiting, "pick")["pickList"][0]["backordered"] == 3
        later = {"lines": [{"lineNo": 1, "quantity": 3}], "carrier": "manual"}
        shipped = await api.data(SHIP_MORE, {"id": backorder["id"], "input": later}, as_="pia")
        assert shipped["shipOrder"]["order"]["status"] == "SHIPPED"


async def test_every_refusal_names_its_field_and_code(database_url: str) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 5))
        await team(api, "bulk", ("bo", 5))
        order = await approved(api, "NO-1", lines=[{"sku": "MUG", "quantity": 2}])

        out_of_order = await errors(
            api, PACK, {"id": task(order, "pack")["id"], "parcels": [parcel((1, 2))]}
        )
        assert [e["code"] for e in out_of_order] == ["OUT_OF_ORDER"]
        other_team = await errors(api, START, {"id": task(order, "pick")["id"]}, as_="bo")
        assert [(e["field"], e["code"]) for e in other_team] == [("id", "NOT_FOUND")]
        beyond = {"id": task(order, "pick")["id"], "lines": [{"lineNo": 1, "picked": 5}]}
        assert [(e["field"], e["code"]) for e in await errors(api, PICK, beyond)] == [
            ("lines[0].picked", "QUANTITY_EXCEEDED")
        ]
        assert await errors(api, PICK, {"id": task(order, "pick")["id"]}) == []
        twice = await errors(api, PICK, {"id": task(order, "pick")["id"]})
        assert [e["code"] for e in twice] == ["ALREADY_DONE"]
        packed_too_much = {"id": task(order, "pack")["id"], "parcels": [parcel((1, 3))]}
        assert [e["code"] for e in await errors(api, PACK, packed_too_much)] == [
            "QUANTITY_EXCEEDED"
        ]
        # Staff of another team do not see the order at all.
        assert await read(api, order["id"], as_="bo") is None
        by_hand = await api.data(
            'mutation($id: ID!) { transitionOrder(id: $id, transition: "ship") '
            "{ errors { code message } } }",
            {"id": order["id"]},
        )
        assert [e["code"] for e in by_hand["transitionOrder"]["errors"]] == ["VETOED"]


async def test_two_people_finishing_one_task_at_once_give_one_success(database_url: str) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 5), ("pat", 5))
        order = await approved(api, "RACE-1")
        pick = {"id": task(order, "pick")["id"]}

        answers = await asyncio.gather(
            *(api.data(PICK, pick, as_=who) for who in ["pia", "pat"] * 5)
        )

        outcomes = sorted(
            (a["completePick"]["errors"] or [{"code": "OK"}])[0]["code"] for a in answers
        )
        assert outcomes == ["ALREADY_DONE"] * 9 + ["OK"]
        done = await read(api, order["id"])
        completions = [e for e in done["events"] if e["type"] == "task_completed"]
        assert len(completions) == 1


async def test_work_waits_in_the_queue_until_someone_frees_up_or_comes_back(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 1))
        first = await approved(api, "Q-1")
        second = await approved(api, "Q-2")
        assert first["assignment"]["member"] == "pia"
        assert second["assignment"]["state"] == "QUEUED"
        assert second["assignment"]["explanation"]["candidates"][0]["skipped"] == (
            "at capacity (1 of 1)"
        )

        cancelled = await api.data(
            "mutation($id: ID!) { cancelOrder(id: $id) { order { status } } }", {"id": first["id"]}
        )
        assert cancelled["cancelOrder"]["order"]["status"] == "CANCELLED"
        await api.rt.runner.drain()
        assert (await read(api, second["id"]))["assignment"]["member"] == "pia"

        away = await api.data(
            'mutation { setMemberAvailability(staff: "pia", available: false) '
            "{ team { queued members { staff available } } errors { code } } }",
            as_="pia",
        )
        assert away["setMemberAvailability"]["team"]["queued"] == 1
        await api.rt.runner.drain()
        handed_back = await read(api, second["id"])
        assert handed_back["assignment"]["state"] == "QUEUED"
        await api.data(
            'mutation { setMemberAvailability(staff: "pia", available: true) { errors { code } } }',
            as_="pia",
        )
        await api.rt.runner.drain()
        assert (await read(api, second["id"]))["assignment"]["member"] == "pia"


async def test_staff_take_release_and_see_their_work_most_urgent_first(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 10), ("pat", 10))
        await team(api, "bulk", ("bo", 10))
        orders = [
            await approved(api, f"W-{i}", priority=priority)
            for i, priority in enumerate(["LOW", "URGENT", "NORMAL", "HIGH"])
        ]
        take = (
            "mutation($id: ID!, $m: String) { assignOrder(id: $id, member: $m) "
            "{ order { assignment { member rule } } errors { field code } } }"
        )
        for order in orders:
            taken = await api.data(take, {"id": order["id"]}, as_="pia")
            assert taken["assignOrder"]["order"]["assignment"]["member"] == "pia"
        to_bo = await api.data(take, {"id": orders[0]["id"], "m": "bo"}, as_="pia")
        assert to_bo["assignOrder"]["errors"] == [{"field": "member", "code": "OTHER_TEAM"}]

        work = await api.data(
            "{ myWork { dueAt order { externalId priority } nextTask { kind } } }", as_="pia"
        )
        assert [w["order"]["priority"] for w in work["myWork"]] == [
            "URGENT",
            "HIGH",
            "NORMAL",
            "LOW",
        ]
        assert all(w["nextTask"]["kind"] == "PICK" and w["dueAt"] for w in work["myWork"])

        released = await api.data(
            "mutation($id: ID!) { releaseOrder(id: $id) { order { assignment { member } } "
            "errors { code } } }",
            {"id": orders[0]["id"]},
            as_="pia",
        )
        assert released["releaseOrder"]["order"]["assignment"]["member"] == "pat"
        seen = await api.data("{ orders { totalCount } }", as_="bo")
        assert seen["orders"]["totalCount"] == 0
        assert (await api.data("{ orders { totalCount } }", as_="pia"))["orders"]["totalCount"] == 4


MY_NEW_WORK = "subscription { myNewWork { number assignment { member } } }"


async def test_a_person_is_told_when_work_is_assigned_to_them(database_url: str) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 5), ("pat", 5))
        earlier = await approved(api, "SUB-0")
        probe_number = f"SO-{earlier['databaseId']:06d}"
        holder = earlier["assignment"]["member"]
        other = "pat" if holder == "pia" else "pia"
        async with connected_as(api, other) as ws:
            await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": MY_NEW_WORK}})
            # A probe, as an assignment event to this person, until one arrives: the
            # subscription is live from then on.
            probe = {
                "id": 0,
                "order_id": earlier["databaseId"],
                "customer_id": 0,
                "type": "assigned",
                "from_status": None,
                "to_status": None,
                "actor": "test",
                "data": {"member": other},
                "at": db.now().isoformat(),
            }
            async with asyncio.timeout(10):
                while True:
                    await api.rt.bus.publish(probe)
                    with contextlib.suppress(TimeoutError):
                        if (await ws.receive_json(timeout=0.1))["type"] == "next":
                            break
            order = await submit(api, "SUB-1")
            await api.rt.runner.drain()
            async with asyncio.timeout(10):
                while True:
                    message = await ws.receive_json()
                    work = message["payload"]["data"]["myNewWork"]
                    if work["number"] != probe_number:
                        break

        assert work == {
            "number": order["number"],
            "assignment": {"member": other},
        }


def assignment_plugin(assign: Any) -> SimpleNamespace:
    @hookimpl
    def plugin_info() -> PluginInfo:
        return PluginInfo(category="assignment", description="for tests", enabled_by_default=True)

    return SimpleNamespace(plugin_info=plugin_info, assign_order=hookimpl(assign))


async def test_a_choice_of_someone_who_cannot_take_it_queues_the_order_with_the_failure(
    database_url: str,
) -> None:
    def always_pat(order: OrderView, teams: list[TeamView]) -> AssignmentChoice:
        return AssignmentChoice(team="packers", member="pat", rule="pat or nobody")

    installed = {
        "web": plugins.channels.web,
        "stock": plugins.review_rules.stock,
        "pat_only": assignment_plugin(always_pat),
    }
    settings = make_settings(database_url, plugins={"stock": {"enabled": True}})
    async with serve_api(settings, installed_plugins=installed) as api:
        await team(api, "packers", ("pia", 5), ("pat", 5))
        await api.data(
            'mutation { setMemberAvailability(staff: "pat", available: false) { errors { code } } }'
        )
        order = await approved(api, "FAIL-1")

    assert order["assignment"]["state"] == "QUEUED"
    assert order["assignment"]["team"] == "packers"
    assert order["assignment"]["explanation"]["failure"] == ("pat_only: pat cannot take it: away")
    failed = [e for e in order["events"] if e["type"] == "plugin_failed"]
    assert failed[0]["data"]["hook"] == "assign_order"


def test_an_async_assign_order_stops_start_up(tmp_path: Any) -> None:
    async def slow(order: OrderView, teams: list[TeamView]) -> None:
        return None

    with pytest.raises(PluginConfigError, match="plugin slow: assign_order must be sync"):
        create_app(
            make_settings(f"sqlite:///{tmp_path}/x.db"),
            installed_plugins={"slow": assignment_plugin(slow)},
        )


async def test_the_first_matching_rule_picks_the_team(database_url: str) -> None:
    rules = [
        "type=bulk -> bulk",
        "priority=URGENT country=IE -> express round_robin",
        "amount>=100 -> bulk",
        "-> packers",
    ]
    async with shop(database_url, rules) as api:
        await team(api, "packers", ("pia", 9))
        await team(api, "bulk", ("bo", 9))
        await team(api, "express", ("eve", 9), ("eli", 9))
        irish = {**ADDRESS, "country": "IE"}
        cases = [
            ({"type": "bulk"}, "bulk"),
            ({"priority": "URGENT", "shippingAddress": irish}, "express"),
            ({"priority": "URGENT"}, "packers"),
            ({"lines": [{"sku": "MUG", "quantity": 8}]}, "bulk"),  # 100.00
            ({"lines": [{"sku": "MUG", "quantity": 7}]}, "packers"),
            ({"priority": "URGENT", "shippingAddress": irish}, "express"),
        ]
        found = [
            (await approved(api, f"R-{i}", **values))["assignment"]
            for i, (values, _) in enumerate(cases)
        ]

    assert [a["team"] for a in found] == [team for _, team in cases]
    # Round robin within express: eve, then the next one, eli.
    assert [a["member"] for a in found if a["team"] == "express"] == ["eve", "eli"]
    assert found[1]["explanation"]["strategy"] == "round_robin"


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            ["-> a", "colour=red -> b"],
            "plugins.rules.rules: rule 2: 'colour=red -> b': 'colour=red'",
        ),
        (["type=bulk"], "plugins.rules.rules: rule 1: 'type=bulk': a rule is 'conditions -> team"),
        (["-> a fastest"], "plugins.rules.rules: rule 1: '-> a fastest': the strategy is one of"),
    ],
)
def test_a_rule_that_cannot_be_read_stops_start_up(
    tmp_path: Any, rules: list[str], message: str
) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path}/x.db", plugins={"rules": {"enabled": True, "rules": rules}}
    )
    with pytest.raises(PluginConfigError) as raised:
        create_app(settings)
    assert str(raised.value).startswith(message)
