"""The review pipeline: the manual queue, staff decisions, resubmission, rule order, and
rules that crash or time out. Through the real app and job runner, on both backends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import Api, make_settings, serve_api, submit

import plugins.channels.web
import plugins.review_rules.stock
from ordergraph.app import create_app
from ordergraph.core.auth import Principal, Role
from ordergraph.core.plugins import PluginConfigError
from ordergraph.core.runtime import Runtime
from ordergraph.core.tables import OutboxJob
from ordergraph.core.transitions import transition_order
from ordergraph.plugin_api import (
    Finding,
    OrderEventView,
    OrderView,
    PluginInfo,
    Transition,
    hookimpl,
)

ORDER = """
query Order($id: ID!) {
  order(id: $id) {
    id status
    reviewFindings { round rule outcome code message data }
    events { type fromStatus toStatus actor data }
  }
}
"""
QUEUE = """
query Queue($after: String) {
  reviewQueue(first: 2, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { externalId priority status } }
  }
}
"""
APPROVE = """
mutation Approve($id: ID!, $note: String) {
  approveOrder(id: $id, note: $note) { order { status } errors { code message } }
}
"""
REJECT = """
mutation Reject($id: ID!, $reason: String!) {
  rejectOrder(id: $id, reason: $reason) { order { status } errors { code message } }
}
"""
AMEND = """
mutation Amend($id: ID!, $input: SubmitOrderInput!) {
  amendOrder(id: $id, input: $input) { order { status } errors { code message } }
}
"""
STOCK = "{ products(first: 10) { edges { node { sku stockReserved } } } }"


def rules(**settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: {"enabled": True, **values} for name, values in settings.items()}


@contextlib.asynccontextmanager
async def shop(
    database_url: str,
    plugins: dict[str, dict[str, Any]],
    *,
    installed: dict[str, Any] | None = None,
    **overrides: Any,
) -> AsyncIterator[Api]:
    """conftest's ``api`` with these plugin settings (and, when given, only these installed
    plugins): the real app, its job runner, the seeded shop and a token per role."""
    settings = make_settings(database_url, plugins=plugins, **overrides)
    async with serve_api(settings, installed_plugins=installed) as api:
        yield api


def rule_plugin(name: str, review: Callable[[OrderView], Any], **hooks: Any) -> SimpleNamespace:
    """A review rule plugin, as pluggy sees one: an object with hookimpl functions."""

    @hookimpl
    def plugin_info() -> PluginInfo:
        return PluginInfo(category="review_rule", description=f"{name}, for tests")

    @hookimpl
    def review_order(order: OrderView) -> Any:
        return review(order)

    return SimpleNamespace(plugin_info=plugin_info, review_order=review_order, **hooks)


def passes(code: str) -> Callable[[OrderView], Finding]:
    return lambda order: Finding(outcome="pass", code=code, message=f"{code} is fine.")


def with_web(**rule_plugins: Any) -> dict[str, Any]:
    """The installed plugins: the web channel to submit through, and these rules."""
    return {"web": plugins.channels.web, **rule_plugins}


async def reviewed(api: Api, external_id: str, *, as_: str = "admin", **overrides: Any):
    submitted = await submit(api, external_id, as_=as_, **overrides)
    await api.rt.runner.drain()
    return await order(api, submitted["id"], as_=as_)


async def order(api: Api, order_id: str, *, as_: str = "admin") -> dict[str, Any]:
    return (await api.data(ORDER, {"id": order_id}, as_=as_))["order"]


async def reserved(api: Api, sku: str) -> int:
    edges = (await api.data(STOCK))["products"]["edges"]
    return next(e["node"]["stockReserved"] for e in edges if e["node"]["sku"] == sku)


def verdicts(found: dict[str, Any]) -> list[tuple[int, str, str, str]]:
    return [(f["round"], f["rule"], f["outcome"], f["code"]) for f in found["reviewFindings"]]


# -- When review runs ---------------------------------------------------------------------


async def test_with_no_rule_enabled_orders_wait_in_received(database_url: str) -> None:
    """A fresh install reviews nothing automatically: the manual tour moves orders itself."""
    async with shop(database_url, {}) as api:
        found = await reviewed(api, "MANUAL-1")

        assert found["status"] == "RECEIVED"
        assert found["reviewFindings"] == []


async def test_a_cancellation_while_the_rules_run_wins_and_the_review_writes_nothing(
    database_url: str,
) -> None:
    """The review decides the order as it read it: start_review and the decision are
    written together, only if nobody changed the order in between."""
    running: dict[str, Runtime] = {}

    async def cancel_meanwhile(order: OrderView) -> Finding:
        await transition_order(running["rt"], order.id, "cancel", Principal(Role.STAFF, "sam"))
        return Finding(outcome="pass", code="SLOW", message="Took its time.")

    installed = with_web(slow=rule_plugin("slow", cancel_meanwhile))
    async with shop(database_url, rules(slow={}), installed=installed) as api:
        running["rt"] = api.rt
        found = await reviewed(api, "CANCELLED-1")

        assert found["status"] == "CANCELLED"
        assert found["reviewFindings"] == []
        assert [(e["fromStatus"], e["toStatus"]) for e in found["events"]] == [
            (None, "RECEIVED"),
            ("RECEIVED", "CANCELLED"),
        ]


class Notifier:
    """A plugin that records every event ``notify`` is called with."""

    def __init__(self) -> None:
        self.events: list[OrderEventView] = []

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(category="other", description="records notifications")

    @hookimpl
    def notify(self, order: OrderView, event: OrderEventView) -> None:
        assert order.id == event.order_id
        self.events.append(event)


async def test_events_get_outbox_jobs_only_when_a_plugin_handles_them(database_url: str) -> None:
    async with shop(
        database_url, rules(stock={}), installed=with_web(stock=plugins.review_rules.stock)
    ) as api:
        found = await reviewed(api, "QUIET-1")
        jobs = await OutboxJob.select(OutboxJob.name, OutboxJob.status)

        assert found["status"] == "APPROVED"
        assert jobs == [{"name": "review_order", "status": "done"}]

    notifier = Notifier()
    installed = with_web(stock=plugins.review_rules.stock, notifier=notifier)
    async with shop(database_url, rules(stock={}, notifier={}), installed=installed) as api:
        found = await reviewed(api, "TOLD-1")
        jobs = await OutboxJob.select(OutboxJob.name).where(OutboxJob.status == "done")

        assert sorted(job["name"] for job in jobs).count("run_order_event_hooks") == 3
        # Each job carried its event: what the plugin was told is the timeline.
        assert [(e.type, e.from_status, e.to_status) for e in notifier.events] == [
            (e["type"], e["fromStatus"], e["toStatus"]) for e in found["events"]
        ]


# -- The manual review queue ----------------------------------------------------------------


async def test_review_queue_lists_held_orders_most_urgent_then_oldest_first_for_staff(
    database_url: str,
) -> None:
    async with shop(database_url, rules(manual_review={"amount_over": "0"})) as api:
        for external_id, priority in [
            ("Q-1", "NORMAL"),
            ("Q-2", "URGENT"),
            ("Q-3", "LOW"),
            ("Q-4", "URGENT"),
            ("Q-5", "HIGH"),
        ]:
            await submit(api, external_id, priority=priority)
        await api.rt.runner.drain()

        seen, after, previous = [], None, []
        while True:
            page = (await api.data(QUEUE, {"after": after}, as_="staff"))["reviewQueue"]
            assert page["totalCount"] == 5
            seen += [(e["node"]["externalId"], e["node"]["status"]) for e in page["edges"]]
            previous.append(page["pageInfo"]["hasPreviousPage"])
            assert page["pageInfo"]["startCursor"] == page["edges"][0]["cursor"]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]

        assert seen == [(ext, "ON_HOLD") for ext in ("Q-2", "Q-4", "Q-5", "Q-1", "Q-3")]
        assert previous == [False, True, True]
        refused = await api.gql(QUEUE, as_="ada")
        assert [e["extensions"]["code"] for e in refused["errors"]] == ["FORBIDDEN"]


async def test_staff_approve_and_reject_held_orders_and_approval_reserves_stock(
    database_url: str,
) -> None:
    enabled = rules(stock={}, manual_review={"amount_over": "100"})
    async with shop(database_url, enabled) as api:
        lamps = {"lines": [{"sku": "LAMP", "quantity": 2}]}  # 158.00 of 5 in stock
        first, second, third = [
            await reviewed(api, external_id, as_="ada", **lamps)
            for external_id in ("L-1", "L-2", "L-3")
        ]
        assert {o["status"] for o in (first, second, third)} == {"ON_HOLD"}
        assert await reserved(api, "LAMP") == 0

        refused = await api.gql(APPROVE, {"id": first["id"]}, as_="ada")
        assert [e["extensions"]["code"] for e in refused["errors"]] == ["FORBIDDEN"]

        for held in (first, second):
            decided = await api.data(APPROVE, {"id": held["id"], "note": "called"}, as_="staff")
            assert decided["approveOrder"] == {"order": {"status": "APPROVED"}, "errors": []}
        assert await reserved(api, "LAMP") == 4

        # Only one lamp is left: staff cannot approve the third order.
        short = (await api.data(APPROVE, {"id": third["id"]}, as_="staff"))["approveOrder"]
        assert short["order"] is None
        assert short["errors"] == [
            {"code": "INSUFFICIENT_STOCK", "message": "SKU LAMP: 2 requested, 1 available."}
        ]
        assert (await order(api, third["id"]))["status"] == "ON_HOLD"

        reason = "We are out of lamps until June."
        rejected = await api.data(REJECT, {"id": third["id"], "reason": reason}, as_="staff")
        assert rejected["rejectOrder"] == {"order": {"status": "REJECTED"}, "errors": []}
        assert await reserved(api, "LAMP") == 4  # it held no stock

        timeline = (await order(api, third["id"], as_="ada"))["events"]
        # Ada learns that the shop rejected it, not which member of staff.
        assert (timeline[-1]["toStatus"], timeline[-1]["actor"]) == ("REJECTED", "staff")
        assert timeline[-1]["data"]["reason"] == reason
        approval = (await order(api, first["id"]))["events"][-1]
        assert (approval["toStatus"], approval["data"]["reason"]) == ("APPROVED", "called")
        queue = (await api.data(QUEUE, as_="staff"))["reviewQueue"]
        assert queue["totalCount"] == 0


async def test_a_failing_rule_rejects_even_when_another_holds(database_url: str) -> None:
    enabled = rules(credit_limit={}, manual_review={"amount_over": "0"})
    async with shop(database_url, enabled) as api:
        found = await reviewed(api, "FAIL-HOLD", lines=[{"sku": "MUG", "quantity": 81}])

        assert found["status"] == "REJECTED"
        assert verdicts(found) == [
            (1, "credit_limit", "FAIL", "CREDIT_LIMIT_EXCEEDED"),
            (1, "manual_review", "HOLD", "AMOUNT_OVER"),
        ]
        decision = found["events"][-1]
        assert decision["data"]["reason"] == (
            "Your order of 1012.50 EUR exceeds your available credit of 1000.00 EUR."
        )


# -- Resubmission ---------------------------------------------------------------------------


async def test_a_rejected_order_amended_by_the_customer_is_reviewed_again(
    database_url: str,
) -> None:
    async with shop(database_url, rules(credit_limit={}, stock={})) as api:
        too_much = await reviewed(api, "AMEND-1", as_="ada", lines=[{"sku": "MUG", "quantity": 81}])
        assert too_much["status"] == "REJECTED"
        assert too_much["reviewFindings"][0]["message"] == (
            "Your order of 1012.50 EUR exceeds your available credit of 1000.00 EUR."
        )

        corrected = {
            "externalId": "AMEND-1",
            "lines": [{"sku": "MUG", "quantity": 2}],
            "shippingAddress": {
                "name": "Ada",
                "line1": "1 Road",
                "city": "London",
                "postalCode": "N1",
                "country": "GB",
            },
        }
        not_hers = await api.data(AMEND, {"id": too_much["id"], "input": corrected}, as_="bob")
        assert [e["code"] for e in not_hers["amendOrder"]["errors"]] == ["NOT_FOUND"]
        amended = await api.data(AMEND, {"id": too_much["id"], "input": corrected}, as_="ada")
        assert amended["amendOrder"] == {"order": {"status": "RECEIVED"}, "errors": []}
        await api.rt.runner.drain()

        found = await order(api, too_much["id"])
        assert found["status"] == "APPROVED"
        assert verdicts(found) == [
            (1, "credit_limit", "FAIL", "CREDIT_LIMIT_EXCEEDED"),
            (1, "stock", "PASS", "IN_STOCK"),
            (2, "credit_limit", "PASS", "WITHIN_CREDIT_LIMIT"),
            (2, "stock", "PASS", "IN_STOCK"),
        ]
        assert [(e["fromStatus"], e["toStatus"], e["actor"]) for e in found["events"]] == [
            (None, "RECEIVED", "customer:ada"),
            ("RECEIVED", "IN_REVIEW", "system:ordergraph"),
            ("IN_REVIEW", "REJECTED", "system:ordergraph"),
            ("REJECTED", "RECEIVED", "customer:ada"),
            ("RECEIVED", "IN_REVIEW", "system:ordergraph"),
            ("IN_REVIEW", "APPROVED", "system:ordergraph"),
        ]
        assert [e["data"].get("round") for e in found["events"]] == [None, None, 1, None, None, 2]
        assert await reserved(api, "MUG") == 2

        again = await api.data(AMEND, {"id": too_much["id"], "input": corrected}, as_="ada")
        assert [e["code"] for e in again["amendOrder"]["errors"]] == ["INVALID_TRANSITION"]


# -- Rules that misbehave -------------------------------------------------------------------


def crash(order: OrderView) -> Finding:
    raise RuntimeError("the scoring service is down")


async def test_a_customer_never_reads_the_staff_message_of_a_rule_without_customer_wording(
    database_url: str,
) -> None:
    """A third-party rule that words its findings for staff only: the customer reads a
    plain sentence for each outcome instead of the numbers meant for staff."""
    passing = rule_plugin("limits", passes("UNDER_LIMIT"))
    failing = rule_plugin(
        "vat", lambda order: Finding(outcome="fail", code="VAT", message="VAT id GB1 is void.")
    )
    installed = with_web(limits=passing, vat=failing)
    async with shop(database_url, rules(limits={}, vat={}), installed=installed) as api:
        found = await reviewed(api, "WORDS-1", as_="ada")
        staff = await order(api, found["id"])

    assert found["status"] == "REJECTED"
    assert [f["message"] for f in found["reviewFindings"]] == [
        "This check passed.",
        "We cannot accept this order as it is; please contact us.",
    ]
    assert [f["message"] for f in staff["reviewFindings"]] == [
        "UNDER_LIMIT is fine.",
        "VAT id GB1 is void.",
    ]


async def test_a_rule_that_crashes_holds_the_order_with_the_error(database_url: str) -> None:
    installed = with_web(
        scoring=rule_plugin("scoring", crash),
        sloppy=rule_plugin("sloppy", lambda order: "looks fine"),
        fine=rule_plugin("fine", passes("FINE")),
    )
    enabled = rules(scoring={}, sloppy={}, fine={})
    async with shop(database_url, enabled, installed=installed) as api:
        found = await reviewed(api, "CRASH-1", as_="ada")

        assert found["status"] == "ON_HOLD"
        assert found["reviewFindings"][:2] == [
            {
                "round": 1,
                "rule": "sloppy",
                "outcome": "HOLD",
                "code": "RULE_FAILED",
                "message": "Your order needs a manual check by our team.",
                "data": None,
            },
            {
                "round": 1,
                "rule": "fine",
                "outcome": "PASS",
                "code": "FINE",
                "message": "This check passed.",  # the rule has no customer wording
                "data": None,
            },
        ]
        staff_view = await order(api, found["id"], as_="staff")
        assert [(f["rule"], f["message"]) for f in staff_view["reviewFindings"]] == [
            ("sloppy", "The rule failed: it returned 'looks fine', not Findings"),
            ("fine", "FINE is fine."),
            ("scoring", "The rule failed: RuntimeError: the scoring service is down"),
        ]


async def test_a_rule_that_times_out_holds_the_order(database_url: str) -> None:
    never = asyncio.Event()

    async def stuck(order: OrderView) -> Finding:
        await never.wait()
        raise AssertionError("the event is never set")

    installed = with_web(slow=rule_plugin("slow", stuck))
    async with shop(
        database_url, rules(slow={}), installed=installed, plugin_timeout_seconds=0.2
    ) as api:
        found = await reviewed(api, "SLOW-1")

        assert found["status"] == "ON_HOLD"
        assert verdicts(found) == [(1, "slow", "HOLD", "RULE_FAILED")]
        assert found["reviewFindings"][0]["message"] == "The rule failed: timed out after 0.2s"


async def test_a_crash_while_writing_the_approval_holds_the_order(database_url: str) -> None:
    @hookimpl
    def apply_transition(order: OrderView, transition: Transition) -> None:
        if transition.name == "approve":
            raise RuntimeError("the ledger is down")

    installed = with_web(
        stock=plugins.review_rules.stock,
        ledger=rule_plugin("ledger", passes("LEDGER"), apply_transition=apply_transition),
    )
    async with shop(database_url, rules(stock={}, ledger={}), installed=installed) as api:
        found = await reviewed(api, "LEDGER-1")

        assert found["status"] == "ON_HOLD"
        assert verdicts(found) == [
            (1, "stock", "PASS", "IN_STOCK"),
            (1, "ledger", "PASS", "LEDGER"),
            (1, "core", "HOLD", "PLUGIN_FAILED"),
        ]
        assert (
            "ledger failed (RuntimeError: the ledger is down)"
            in (found["reviewFindings"][2]["message"])
        )
        assert await reserved(api, "MUG") == 0  # the approval was rolled back with its stock


# -- Which rules run, in which order --------------------------------------------------------


async def test_rules_run_in_config_order_or_as_review_rules_says(database_url: str) -> None:
    calls: list[str] = []

    def recording(name: str) -> SimpleNamespace:
        def review(order: OrderView) -> Finding:
            calls.append(name)
            return Finding(outcome="pass", code=name.upper(), message=f"{name} ran.")

        return rule_plugin(name, review)

    installed = with_web(alpha=recording("alpha"), beta=recording("beta"))
    by_config = rules(beta={}, alpha={})
    async with shop(database_url, by_config, installed=installed) as api:
        found = await reviewed(api, "ORDER-1")
        assert [f["rule"] for f in found["reviewFindings"]] == ["beta", "alpha"]
    assert calls == ["beta", "alpha"]

    calls.clear()
    async with shop(database_url, by_config, installed=installed, review_rules=("alpha",)) as api:
        found = await reviewed(api, "ORDER-2")
        assert [f["rule"] for f in found["reviewFindings"]] == ["alpha"]
        assert found["status"] == "APPROVED"
    assert calls == ["alpha"]


def test_review_rules_may_only_name_enabled_rules() -> None:
    settings = make_settings(
        "sqlite:///unused.db", plugins=rules(stock={}), review_rules=("stock", "credit_limit")
    )
    with pytest.raises(PluginConfigError, match="credit_limit is not an enabled review rule"):
        create_app(settings)
