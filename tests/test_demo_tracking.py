"""The demo tells one true story: a shop's last fortnight, dated from the day it is loaded."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

from conftest import Api
from test_docs import demo_api  # noqa: F401  (the fixture)

from ordergraph import demo

STORY = """
{
  orders(first: 50) {
    edges { node {
      number status createdAt customer { email } shippingAddress { name city }
      shipments { carrier }
      statement { balance { state } }
      reviewFindings { rule outcome }
      assignment { state member }
    } }
  }
}
"""


async def test_the_demo_is_a_fortnight_that_ends_today(demo_api: Api) -> None:  # noqa: F811
    now = datetime.datetime.now(datetime.UTC)
    orders = [e["node"] for e in (await demo_api.data(STORY))["orders"]["edges"]]
    placed = [datetime.datetime.fromisoformat(o["createdAt"]) for o in orders]
    assert len(orders) == len(demo.ORDERS)
    assert all(now - datetime.timedelta(days=14) < at < now for at in placed)
    assert now - min(placed) > datetime.timedelta(days=10)  # a fortnight, not one moment
    for order in orders:  # each ships to its own customer
        name = {c.email: c.name for c in demo.CUSTOMERS}[order["customer"]["email"]]
        assert order["shippingAddress"]["name"] == name
        assert {s["carrier"] for s in order["shipments"]} <= {"manual"}

    outcomes = {
        (o["status"], (o["statement"] or {}).get("balance", {}).get("state")) for o in orders
    }
    assert {("SETTLED", "PAID"), ("COMPLETED", "UNPAID"), ("SHIPPED", None)} <= outcomes
    assert {"APPROVED", "ON_HOLD", "REJECTED", "PROCESSING"} <= {o["status"] for o in orders}
    failed = {
        (f["rule"], o["customer"]["email"])
        for o in orders
        if o["status"] == "REJECTED"
        for f in o["reviewFindings"]
        if f["outcome"] == "FAIL"
    }
    assert {
        ("stock", "ada@example.com"),
        ("credit_limit", "grace@example.com"),  # rejected for credit, and still so
        ("credit_limit", "mallory@example.com"),  # blocked
    } <= failed
    assignments = {(o["assignment"] or {}).get("state") for o in orders}
    assert {"ASSIGNED", "QUEUED", "DONE"} <= assignments


async def test_the_demo_parcels_were_scanned_after_they_shipped_on_london_time(
    demo_api: Api,  # noqa: F811
) -> None:
    london = ZoneInfo("Europe/London")
    settled = await demo_api.data('{ order(id: "1") { status } }')
    assert settled["order"]["status"] == "SETTLED"
    delivered = await demo_api.data('{ shipmentTracking(orderId: "1") { status } }')
    assert delivered["shipmentTracking"][0]["status"] == "DELIVERED"  # not "Label created"

    tracked = await demo_api.data(
        '{ shipmentTracking(orderId: "6") {'
        " status reason events { localTime status description } } }"
    )
    [shipment] = tracked["shipmentTracking"]
    assert (shipment["status"], shipment["reason"]) == ("DELIVERY_FAILED", "CONSIGNEE_NOT_HOME")
    placed = await demo_api.data('{ order(id: "6") { createdAt } }')
    ordered = datetime.datetime.fromisoformat(placed["order"]["createdAt"])
    for event in shipment["events"]:
        local = datetime.datetime.fromisoformat(event["localTime"])
        assert local.utcoffset() == local.astimezone(london).utcoffset()
        assert ordered < local < datetime.datetime.now(datetime.UTC)
        assert event["description"]
    open_alerts = await demo_api.data(
        "{ alerts(state: OPEN) { edges { node { kind orderNumber team } } } }"
    )
    assert open_alerts["alerts"]["edges"] == [
        {"node": {"kind": "DELIVERY_FAILED", "orderNumber": "SO-000006", "team": "packers"}}
    ]


def test_the_demo_orders_come_in_the_order_the_docs_number_them_at_any_hour() -> None:
    """The README names orders by id: loaded at any hour of any day (summer or winter
    time), the orders are placed in the order of ``demo.ORDERS``."""
    london = ZoneInfo("Europe/London")
    for day in (datetime.date(2026, 1, 15), datetime.date(2026, 7, 15)):
        for hour in range(24):
            loaded = datetime.datetime.combine(day, datetime.time(hour, 5), london)
            placed = [order.placed(loaded) for order in demo.ORDERS]
            assert placed == sorted(placed) and placed[-1] < demo.PAT_LEAVES(loaded) < loaded
