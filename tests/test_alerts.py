"""Alerts through the real app: opened by tracking and by scans, one per order and kind,
closing themselves when the condition clears, owned by the order's team."""

from __future__ import annotations

import asyncio
import contextlib
import datetime

from conftest import Api
from test_fulfilment import START, approved, read, shop, task, team
from test_subscriptions import connected_as
from test_tracking import record, scan, shipment_ids, shipped

from ordergraph.core import auth, db
from ordergraph.stages.tracking import alerts

ALERTS = """
query($state: AlertState, $order: ID) {
  alerts(state: $state, orderId: $order) {
    edges { node {
      id kind severity orderNumber team owner state dueAt openedAt
      acknowledgedBy resolvedBy resolution detail
    } }
  }
}
"""
EVENTS = "query($id: ID!) { order(id: $id) { events { type } } }"
ACK = """
mutation($id: ID!) {
  acknowledgeAlert(id: $id) { alert { state acknowledgedBy } errors { field code } }
}
"""
RESOLVE = """
mutation($id: ID!, $note: String!) {
  resolveAlert(id: $id, resolution: $note) {
    alert { state resolvedBy resolution } errors { field code }
  }
}
"""


async def alerts_of(api: Api, order_id: str, state: str | None = None, as_: str = "admin"):
    page = (await api.data(ALERTS, {"state": state, "order": order_id}, as_=as_))["alerts"]
    return [edge["node"] for edge in page["edges"]]


async def test_a_failed_delivery_opens_one_alert_for_the_team_and_delivery_closes_it(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        order_id = await shipped(api, "AL-1")
        [shipment] = await shipment_ids(api, order_id)
        failed = scan("2024-05-02T11:00:00+02:00", "delivery_failed", reason="consignee_not_home")
        await record(api, shipment, failed)
        await record(api, shipment, scan("2024-05-03T11:00:00+02:00", "delivery_failed"))
        [alert] = await alerts_of(api, order_id, "OPEN")
        assert (alert["kind"], alert["severity"], alert["team"], alert["owner"]) == (
            "DELIVERY_FAILED",
            "HIGH",
            "packers",
            "pia",
        )
        assert alert["detail"]["reason"] == "consignee_not_home"
        assert alert["dueAt"] > alert["openedAt"]

        await record(api, shipment, scan("2024-05-04T11:00:00+02:00", "delivered"))
        assert await alerts_of(api, order_id, "OPEN") == []
        [closed] = await alerts_of(api, order_id, "RESOLVED")
        assert closed["resolvedBy"] == "system:ordergraph"
        assert closed["resolution"] == "the carrier reports delivered"
        # Staff see the alert on the timeline; the customer does not.
        staff_view = [e["type"] for e in (await read(api, order_id))["events"]]
        assert "alert_opened" in staff_view and "alert_resolved" in staff_view
        mine = await api.data(EVENTS, {"id": order_id}, as_="ada")
        customer_view = [e["type"] for e in mine["order"]["events"]]
        assert not {"alert_opened", "alert_resolved"} & set(customer_view)


async def test_staff_acknowledge_and_resolve_their_teams_alerts_only(database_url: str) -> None:
    async with shop(database_url) as api:
        order_id = await shipped(api, "AL-2")
        [shipment] = await shipment_ids(api, order_id)
        await record(api, shipment, scan("2024-05-02T11:00:00+02:00", "on_hold", code="HX"))
        [alert] = await alerts_of(api, order_id, "OPEN", as_="pia")
        assert alert["kind"] == "CARRIER_EXCEPTION"
        assert await alerts_of(api, order_id, as_="bo") == []
        other_team = await api.data(ACK, {"id": alert["id"]}, as_="bo")
        assert other_team["acknowledgeAlert"]["errors"][0]["code"] == "NOT_FOUND"

        acked = await api.data(ACK, {"id": alert["id"]}, as_="pia")
        assert acked["acknowledgeAlert"]["alert"] == {
            "state": "ACKNOWLEDGED",
            "acknowledgedBy": "staff:pia",
        }
        again = await api.data(ACK, {"id": alert["id"]}, as_="pia")
        assert again["acknowledgeAlert"]["errors"][0]["code"] == "ALREADY_DONE"
        empty = await api.data(RESOLVE, {"id": alert["id"], "note": "  "}, as_="pia")
        assert empty["resolveAlert"]["errors"] == [{"field": "resolution", "code": "REQUIRED"}]
        done = await api.data(RESOLVE, {"id": alert["id"], "note": "Called the depot"}, as_="pia")
        assert done["resolveAlert"]["alert"] == {
            "state": "RESOLVED",
            "resolvedBy": "staff:pia",
            "resolution": "Called the depot",
        }
        twice = await api.data(RESOLVE, {"id": alert["id"], "note": "x"}, as_="pia")
        assert twice["resolveAlert"]["errors"][0]["code"] == "ALREADY_DONE"
        customer = await api.gql(ALERTS, {}, as_="ada")
        assert customer["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_an_order_sitting_past_its_due_hours_is_stuck_until_it_moves(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 5))
        order = await approved(api, "ST-1")
        urgent = await approved(api, "ST-2", priority="URGENT")
        now = db.now()
        # NORMAL may wait 12 hours for its pick, URGENT 1.
        assert await alerts.scan_stuck(api.rt, now + datetime.timedelta(hours=2)) == 1
        assert [a["kind"] for a in await alerts_of(api, urgent["id"], "OPEN")] == ["STUCK"]
        assert await alerts_of(api, order["id"]) == []
        assert await alerts.scan_stuck(api.rt, now + datetime.timedelta(hours=13)) == 1
        assert await alerts.scan_stuck(api.rt, now + datetime.timedelta(hours=14)) == 0

        await api.data(START, {"id": task(order, "pick")["id"]}, as_="pia")
        await alerts.scan_stuck(api.rt, now + datetime.timedelta(hours=14))
        [closed] = await alerts_of(api, order["id"])
        assert (closed["state"], closed["resolution"]) == ("RESOLVED", "the order moved on")
        assert len(await alerts_of(api, urgent["id"], "OPEN")) == 1


async def test_a_shipment_without_carrier_news_raises_tracking_silent_until_news_comes(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        order_id = await shipped(api, "SIL-1")
        [shipment] = await shipment_ids(api, order_id)
        await record(api, shipment, scan(db.now().isoformat(), "in_transit"))
        later = db.now() + datetime.timedelta(hours=alerts.SILENT_HOURS + 1)
        assert await alerts.scan_silent(api.rt, later) == 1
        assert await alerts.scan_silent(api.rt, later) == 0
        [alert] = await alerts_of(api, order_id, "OPEN")
        assert alert["kind"] == "TRACKING_SILENT"
        await record(api, shipment, scan(later.isoformat(), "out_for_delivery"))
        assert await alerts_of(api, order_id, "OPEN") == []


ALERT_FEED = "subscription { alerts { kind team orderNumber state } }"


async def test_the_alert_feed_reaches_the_owning_teams_staff(database_url: str) -> None:
    async with shop(database_url) as api:
        order_id = await shipped(api, "FEED-1")
        [shipment] = await shipment_ids(api, order_id)
        await record(api, shipment, scan("2024-05-01T09:00:00+02:00", "on_hold"))
        [probe_alert] = await alerts_of(api, order_id, "OPEN")
        api.tokens["pia2"] = await auth.create_token("staff", name="pia2", team="packers")
        feeds = {}
        async with connected_as(api, "pia2") as mine, connected_as(api, "bo") as theirs:
            for ws in (mine, theirs):
                await ws.send_json(
                    {"id": "1", "type": "subscribe", "payload": {"query": ALERT_FEED}}
                )
            # Probe with the open alert's own event until the owning team's feed shows it.
            probe = {
                "id": 0,
                "order_id": int(order_id),
                "customer_id": 0,
                "type": "alert_acknowledged",
                "from_status": None,
                "to_status": None,
                "actor": "test",
                "data": {"alert": int(probe_alert["id"]), "team": "packers"},
                "at": db.now().isoformat(),
            }
            async with asyncio.timeout(10):
                while True:
                    await api.rt.bus.publish(probe)
                    with contextlib.suppress(TimeoutError):
                        if (await mine.receive_json(timeout=0.1))["type"] == "next":
                            break
            await record(api, shipment, scan("2024-05-02T09:00:00+02:00", "delivery_failed"))
            await api.rt.runner.drain()
            async with asyncio.timeout(10):
                while True:
                    message = await mine.receive_json()
                    feeds["pia2"] = message["payload"]["data"]["alerts"]
                    if feeds["pia2"]["kind"] == "DELIVERY_FAILED":
                        break
            with contextlib.suppress(TimeoutError):
                feeds["bo"] = await theirs.receive_json(timeout=0.5)
        assert feeds["pia2"] == {
            "kind": "DELIVERY_FAILED",
            "team": "packers",
            "orderNumber": f"SO-{int(order_id):06d}",
            "state": "OPEN",
        }
        assert "bo" not in feeds


PAGE = """
query($after: String) {
  alerts(first: 2, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { orderNumber kind } }
  }
}
"""


async def test_alerts_are_read_a_page_at_a_time_newest_first(database_url: str) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 5))
        orders = [await approved(api, f"PAGE-{n}") for n in range(3)]
        for order in orders:
            await alerts.open_alert(api.rt, order["databaseId"], "stuck")

        first = (await api.data(PAGE, {}))["alerts"]
        rest = (await api.data(PAGE, {"after": first["pageInfo"]["endCursor"]}))["alerts"]

        newest_first = [f"SO-{order['databaseId']:06d}" for order in reversed(orders)]
        listed = [e["node"]["orderNumber"] for page in (first, rest) for e in page["edges"]]
        assert listed == newest_first
        assert (first["totalCount"], rest["totalCount"]) == (3, 3)
        assert [first["pageInfo"][k] for k in ("hasPreviousPage", "hasNextPage")] == [False, True]
        assert [rest["pageInfo"][k] for k in ("hasPreviousPage", "hasNextPage")] == [True, False]
        assert rest["pageInfo"]["startCursor"] == rest["edges"][0]["cursor"]
        wrong = await api.gql(PAGE, {"after": "b3JkZXI6MQ=="})  # an order cursor
        assert wrong["errors"][0]["extensions"] == {"code": "INVALID_CURSOR", "field": "after"}
