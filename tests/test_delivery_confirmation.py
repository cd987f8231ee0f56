"""Delivery confirmation: by the customer, by a signed link, or automatically; a reported
problem pauses it until staff resolve it."""

from __future__ import annotations

import datetime
import re

from test_alerts import alerts_of
from test_settlement import ADMIN, CONFIRM, delivered, read, shop

from ordergraph.core import db, periodic
from ordergraph.core.limits import PROBLEM_REPORTS_PER_ORDER
from ordergraph.core.transitions import transition_order
from ordergraph.stages.settlement import config_of, confirmation_link
from ordergraph.stages.settlement.confirmation import confirm_due_deliveries
from ordergraph.stages.settlement.links import confirmation_token

REPORT = """
mutation($id: ID!, $text: String!) {
  reportDeliveryProblem(orderId: $id, description: $text) {
    problem { id reportedBy description resolvedAt } errors { field code message }
  }
}
"""
RESOLVE = """
mutation($id: ID!) {
  resolveDeliveryProblem(id: $id, resolution: "Replacement sent") {
    problem { resolvedBy resolution } errors { field code message }
  }
}
"""
DAY = datetime.timedelta(days=1)


async def confirm(api, order_id: int, as_: str = "ada") -> dict:
    return (await api.data(CONFIRM, {"id": str(order_id)}, as_=as_))["confirmDelivery"]


async def test_a_reported_problem_pauses_confirmation_until_staff_resolve_it(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        order_id = await delivered(api, "P-1", [{"sku": "MUG", "quantity": 1}])
        reported = await api.data(
            REPORT, {"id": str(order_id), "text": "The mug arrived broken"}, as_="ada"
        )
        problem = reported["reportDeliveryProblem"]["problem"]
        assert problem["reportedBy"] == "customer:ada"
        assert problem["resolvedAt"] is None

        refused = await confirm(api, order_id)
        assert refused["errors"][0]["code"] == "VETOED"
        assert "a delivery problem is open" in refused["errors"][0]["message"]
        config = config_of(api.rt)
        assert await confirm_due_deliveries(api.rt, config, db.now() + 30 * DAY) == []
        assert (await read(api, order_id))["status"] == "DELIVERED"

        as_customer = await api.gql(RESOLVE, {"id": problem["id"]}, as_="ada")
        assert as_customer["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        resolved = await api.data(RESOLVE, {"id": problem["id"]}, as_="staff")
        assert resolved["resolveDeliveryProblem"]["problem"] == {
            "resolvedBy": "staff:sam",
            "resolution": "Replacement sent",
        }
        assert await confirm_due_deliveries(api.rt, config, db.now() + 30 * DAY) == [order_id]
        await api.rt.runner.drain()
        order = await read(api, order_id)
    assert order["status"] == "COMPLETED"
    assert order["statement"] is not None
    completed = next(e for e in order["events"] if e["toStatus"] == "COMPLETED")
    assert completed["data"]["reason"] == (
        "delivery confirmed automatically: no problem reported within 7 days"
    )
    types = [e["type"] for e in order["events"]]
    assert types.index("delivery_problem_reported") < types.index("delivery_problem_resolved")


async def test_a_reported_problem_opens_an_alert_for_the_team_until_every_problem_is_resolved(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        order_id = await delivered(api, "PA-1", [{"sku": "MUG", "quantity": 2}])
        problems = [
            (await api.data(REPORT, {"id": str(order_id), "text": text}, as_="ada"))[
                "reportDeliveryProblem"
            ]["problem"]
            for text in ("One mug arrived broken", "The other one is missing")
        ]
        [alert] = await alerts_of(api, str(order_id), "OPEN")
        assert (alert["kind"], alert["severity"], alert["team"]) == (
            "DELIVERY_PROBLEM",
            "HIGH",
            "floor",
        )
        assert alert["detail"]["description"] == "One mug arrived broken"

        await api.data(RESOLVE, {"id": problems[0]["id"]}, as_="staff")
        assert [a["kind"] for a in await alerts_of(api, str(order_id), "OPEN")] == [
            "DELIVERY_PROBLEM"
        ]
        await api.data(RESOLVE, {"id": problems[1]["id"]}, as_="staff")
        assert await alerts_of(api, str(order_id), "OPEN") == []
        [closed] = await alerts_of(api, str(order_id), "RESOLVED")
        assert (closed["resolvedBy"], closed["resolution"]) == ("staff:sam", "Replacement sent")


async def test_deliveries_are_confirmed_automatically_only_after_the_window(
    database_url: str,
) -> None:
    async with shop(database_url, confirm_after_days=3) as api:
        order_id = await delivered(api, "AUTO-1", [{"sku": "MUG", "quantity": 1}])
        config = config_of(api.rt)
        assert await confirm_due_deliveries(api.rt, config, db.now() + 2 * DAY) == []
        assert await confirm_due_deliveries(api.rt, config, db.now() + 3 * DAY) == [order_id]
        assert (await read(api, order_id))["status"] == "COMPLETED"


async def test_the_periodic_work_confirms_what_is_due(database_url: str) -> None:
    async with shop(database_url, confirm_after_days=0) as api:
        order_id = await delivered(api, "JOB-1", [{"sku": "MUG", "quantity": 1}])
        work = periodic.collect(api.rt)
        ran = await periodic.run_due(api.rt, {"c": work["settlement.confirm_deliveries"]})
        await api.rt.runner.drain()  # the statement is issued by a job
        order = await read(api, order_id)
    assert ran == ["c"]
    assert order["status"] == "COMPLETED"
    assert order["statement"]["number"].endswith("-000001")


async def test_the_signed_link_shows_a_button_and_only_its_post_confirms(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        order_id = await delivered(api, "LINK-1", [{"sku": "MUG", "quantity": 1}])
        config = config_of(api.rt)
        link = confirmation_link(config, order_id)
        assert link is not None and link.startswith("http://localhost:8000/confirm-delivery?")
        path = link.removeprefix("http://localhost:8000")

        page = await api.client.get(path)
        assert page.status_code == 200
        assert "Yes, confirm delivery" in page.text
        assert (await read(api, order_id))["status"] == "DELIVERED"
        token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)

        forged = token.replace(f"{order_id}.", f"{order_id + 1}.", 1)
        bad = await api.client.post("/confirm-delivery", data={"token": forged})
        assert bad.status_code == 400 and "not valid" in bad.text
        expired_link = confirmation_link(config, order_id, db.now() - 31 * DAY)
        assert expired_link is not None
        expired = await api.client.get(expired_link.removeprefix("http://localhost:8000"))
        assert expired.status_code == 400 and "expired" in expired.text

        done = await api.client.post("/confirm-delivery", data={"token": token})
        assert done.status_code == 200 and "is confirmed" in done.text
        again = await api.client.get(path)
        assert "confirmed already" in again.text
        order = await read(api, order_id)
    assert order["status"] == "COMPLETED"
    completed = next(e for e in order["events"] if e["toStatus"] == "COMPLETED")
    assert completed["data"]["reason"] == "delivery confirmed through the signed link"


async def test_a_description_too_long_is_too_long_and_an_empty_one_is_required(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        order_id = await delivered(api, "P-LONG", [{"sku": "MUG", "quantity": 1}])
        answers = [
            (await api.data(REPORT, {"id": str(order_id), "text": text}, as_="ada"))[
                "reportDeliveryProblem"
            ]
            for text in ("x" * 2001, "   ")
        ]
    assert [(e["field"], e["code"]) for a in answers for e in a["errors"]] == [
        ("description", "TOO_LONG"),
        ("description", "REQUIRED"),
    ]


async def test_a_link_written_in_other_scripts_is_not_valid_rather_than_an_error(
    database_url: str,
) -> None:
    """A signature or an expiry in characters a signature never has (an accented letter,
    a superscript digit) is a link that is not valid, not a failure of the service."""
    async with shop(database_url) as api:
        order_id = await delivered(api, "LINK-2", [{"sku": "MUG", "quantity": 1}])
        link = confirmation_link(config_of(api.rt), order_id)
        assert link is not None
        token = link.split("token=", 1)[1]
        subject, expires, _ = token.split(".")
        answers = [
            await api.client.post("/confirm-delivery", data={"token": forged})
            for forged in (f"{subject}.{expires}.\u00e9", f"{subject}.\u00b2.{_}")
        ]
        order = await read(api, order_id)
    assert [(a.status_code, "not valid" in a.text) for a in answers] == [(400, True)] * 2
    assert order["status"] == "DELIVERED"


async def test_only_the_customer_of_a_delivered_order_confirms_it(database_url: str) -> None:
    async with shop(database_url, link_secret="") as api:
        order_id = await delivered(api, "WHO-1", [{"sku": "MUG", "quantity": 1}])
        assert confirmation_link(config_of(api.rt), order_id) is None
        assert (await confirm(api, order_id, as_="bob"))["errors"][0]["code"] == "NOT_FOUND"
        empty = await api.data(REPORT, {"id": str(order_id), "text": " "}, as_="ada")
        assert empty["reportDeliveryProblem"]["errors"][0]["field"] == "description"
        await transition_order(api.rt, order_id, "complete", ADMIN)
        twice = await confirm(api, order_id)
        assert twice["errors"][0]["code"] == "INVALID_TRANSITION"
        late = await api.data(REPORT, {"id": str(order_id), "text": "late"}, as_="ada")
        assert late["reportDeliveryProblem"]["errors"][0]["code"] == "OUT_OF_ORDER"


async def test_problem_reports_through_one_link_are_limited(database_url: str) -> None:
    async with shop(database_url) as api:
        order_id = await delivered(api, "SPAM-1", [{"sku": "MUG", "quantity": 1}])
        token = confirmation_token(config_of(api.rt), order_id)
        reports = [
            await api.client.post(
                "/confirm-delivery/problem", data={"token": token, "description": f"Broken {i}"}
            )
            for i in range(PROBLEM_REPORTS_PER_ORDER.count + 1)
        ]
        by_api = await api.data(REPORT, {"id": str(order_id), "text": "Still broken"}, as_="ada")
        order = await read(api, order_id)
    assert [r.status_code for r in reports] == [200] * PROBLEM_REPORTS_PER_ORDER.count + [429]
    assert "Too many problem reports; try again in 60 minutes." in reports[-1].text
    assert by_api["reportDeliveryProblem"]["errors"] == [
        {
            "field": "description",
            "code": "RATE_LIMITED",
            "message": "Too many problem reports; try again in 60 minutes.",
        }
    ]
    reported = [e for e in order["events"] if e["type"] == "delivery_problem_reported"]
    assert len(reported) == PROBLEM_REPORTS_PER_ORDER.count
