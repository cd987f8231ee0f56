"""Customers see their orders' timelines without the internal events: plugin failures
name plugins and quote their errors, for staff eyes only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import Api, make_settings, serve_api, submit
from test_subscriptions import connected_as, next_events, subscribe_live

from ordergraph.plugin_api import hookimpl
from plugins.channels import web

FRAUD_CHECK_DOWN = "RuntimeError: the fraud service is down"
TIMELINE = "query Order($id: ID!) { order(id: $id) { events { type actor data } } }"
MOVE = """
mutation Move($id: ID!, $t: String!) {
  transitionOrder(id: $id, transition: $t) { errors { code message } }
}
"""


class FraudCheckDown:
    """Fails when an order is about to be reviewed, so the veto lands on the timeline."""

    @hookimpl
    def before_transition(self, transition: Any) -> None:
        if transition.name == "start_review":
            raise RuntimeError("the fraud service is down")


@pytest.fixture
async def shop(database_url: str) -> AsyncIterator[Api]:
    """The app with the web channel and a broken fraud check, running its jobs (events)."""
    settings = make_settings(database_url, plugins={"fraud_check": {"enabled": True}})
    async with serve_api(
        settings, installed_plugins={"web": web, "fraud_check": FraudCheckDown()}
    ) as api:
        yield api


async def vetoed_review(api: Api, order_id: str) -> None:
    """Staff start the review; the fraud check fails and vetoes it."""
    body = await api.data(MOVE, {"id": order_id, "t": "start_review"}, as_="staff")
    assert [e["code"] for e in body["transitionOrder"]["errors"]] == ["VETOED"]


async def test_the_timeline_shows_plugin_failures_to_staff_and_not_to_the_customer(shop: Api):
    order = await submit(shop, "ADA-1", as_="ada")
    await vetoed_review(shop, order["id"])

    timelines = {
        who: [
            (e["type"], e["data"])
            for e in (await shop.data(TIMELINE, {"id": order["id"]}, as_=who))["order"]["events"]
        ]
        for who in ("admin", "staff", "ada")
    }

    failure = ("plugin_failed", {"plugin": "fraud_check", "hook": "before_transition",
                                 "error": FRAUD_CHECK_DOWN})  # fmt: skip
    assert timelines["admin"] == timelines["staff"] == [("submitted", {"channel": "web"}), failure]
    assert timelines["ada"] == [("submitted", {"channel": "web"})]


@pytest.mark.parametrize("one_order", [True, False], ids=["one-order", "all-orders"])
async def test_the_live_feed_leaves_plugin_failures_out_for_the_customer(
    shop: Api, one_order: bool
):
    order = await submit(shop, "ADA-1", as_="ada")
    me = await shop.data("{ me { customerId } }", as_="ada")
    owner = int(me["me"]["customerId"])
    variables = {"orderId": order["id"]} if one_order else {}
    async with connected_as(shop, "staff") as staff, connected_as(shop, "ada") as ada:
        for ws in (staff, ada):
            await subscribe_live(
                ws, shop, order_id=order["databaseId"], owner=owner, variables=variables
            )
        await vetoed_review(shop, order["id"])
        cancelled = await shop.data(MOVE, {"id": order["id"], "t": "cancel"}, as_="staff")
        assert cancelled["transitionOrder"]["errors"] == []

        # The failure is published before the cancellation: had it reached Ada, it came first.
        staff_saw = await next_events(staff, 2)
        ada_saw = await next_events(ada, 1)

    assert [(e["type"], e["toStatus"]) for e in staff_saw] == [
        ("plugin_failed", None),
        ("transition", "CANCELLED"),
    ]
    assert [(e["type"], e["toStatus"]) for e in ada_saw] == [("transition", "CANCELLED")]
