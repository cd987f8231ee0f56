"""The plugin system end to end.

The example plugin in ``tests/plugin_pkg`` is a real distribution that ``make test``
installs into ``build/test-plugins`` (on the tests' path, see conftest.py), so it is found
through the ``ordergraph.plugins`` entry point as any third-party package is. Other tests
use small plugin objects defined here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import textwrap
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import ordergraph_example_plugin  # installed by `make test` into build/test-plugins
import pytest
import strawberry
from conftest import SUBMIT, Api, make_settings, order_input, serve_api, submit

from ordergraph import cli
from ordergraph.app import create_app
from ordergraph.core.plugins import PluginConfigError
from ordergraph.core.settings import Settings
from ordergraph.core.statusgraph import StatusGraphError
from ordergraph.graphql.schema import SchemaConflict
from ordergraph.plugin_api import (
    ErrorCode,
    OrderDraft,
    Problem,
    SchemaExtension,
    StatusGraph,
    hookimpl,
)
from plugins.channels import web

LOYALTY_CONFIG = """
[plugins.example_loyalty]
enabled = true
api_key = "s3cret"
max_order_total = "100.00"
label = "Bonus points"
require_cancel_reason = true
"""

PLUGINS = """
{ plugins { name category description enabled settings
            schema { name type required secret default } } }
"""
STATUS_GRAPH = """
{ statusGraph { states { name count } transitions { name from to roles } } }
"""
LOYALTY_POINTS = "query Points($id: ID!) { loyaltyPoints(orderId: $id) { label points } }"
TRANSITION = """
mutation Move($id: ID!, $t: String!, $reason: String) {
  transitionOrder(id: $id, transition: $t, reason: $reason) {
    order { status version availableTransitions { name } }
    errors { field code message }
  }
}
"""
ORDER = "query Order($id: ID!) { order(id: $id) { status version events { type data } } }"
ORDER_COUNT = "{ orders { totalCount } }"


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ordergraph.toml"
    path.write_text(textwrap.dedent(text))
    return path


def settings_from_file(path: Path, database_url: str) -> Settings:
    """Settings exactly as `ordergraph serve` reads them: the environment and the config file."""
    return Settings.from_env(env={"ORDERGRAPH_CONFIG": str(path), "DATABASE_URL": database_url})


@contextlib.asynccontextmanager
async def serve(
    settings: Settings, installed_plugins: Mapping[str, Any] | None = None
) -> AsyncIterator[Api]:
    """The app as conftest's ``api`` fixture serves it, with these settings and plugins.

    No job runner: these tests move orders by hand, and an enabled review rule would
    move them too.
    """
    async with serve_api(settings, installed_plugins=installed_plugins, run_jobs=False) as api:
        yield api


@pytest.fixture
async def loyalty(database_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    """The app with the example plugin enabled by an ``ordergraph.toml`` file."""
    settings = settings_from_file(write_config(tmp_path, LOYALTY_CONFIG), database_url)
    async with serve(settings) as api:
        yield api


async def move(api: Api, order_id: str, transition: str, *, as_: str = "admin", reason=None):
    data = await api.data(TRANSITION, {"id": order_id, "t": transition, "reason": reason}, as_=as_)
    return data["transitionOrder"]


def priced(*lines: tuple[str, int, str]) -> list[dict[str, Any]]:
    return [
        {"sku": sku, "quantity": quantity, "unitPrice": price} for sku, quantity, price in lines
    ]


# -- Installed, not enabled ---------------------------------------------------------------


async def test_an_installed_plugin_is_listed_but_does_nothing_until_enabled(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    listed = {p["name"]: p for p in (await api.data(PLUGINS))["plugins"]}
    assert listed["web"]["enabled"] is True
    plugin = listed["example_loyalty"]
    assert plugin["enabled"] is False
    assert plugin["category"] == "OTHER"
    assert plugin["settings"] == {}
    assert {s["name"]: (s["type"], s["required"], s["secret"]) for s in plugin["schema"]} == {
        "api_key": ("str", True, True),
        "max_order_total": ("decimal", False, False),
        "label": ("str", False, False),
        "require_cancel_reason": ("bool", False, False),
    }

    body = await api.gql(LOYALTY_POINTS, {"id": "1"})
    assert "Cannot query field 'loyaltyPoints' on type 'Query'" in body["errors"][0]["message"]
    states = {s["name"] for s in (await api.data(STATUS_GRAPH))["statusGraph"]["states"]}
    assert "AWAITING_PICKUP" not in states

    monkeypatch.setenv("ORDERGRAPH_CONFIG", str(write_config(tmp_path, "[plugins.web]\n")))
    assert cli.main(["plugins"]) == 0
    rows = {line.split()[0]: line.split()[1:3] for line in capsys.readouterr().out.splitlines()}
    assert rows["example_loyalty"] == ["disabled", "other"]
    assert rows["web"] == ["enabled", "channel"]


# -- Enabled by ordergraph.toml -----------------------------------------------------------


async def test_an_enabled_plugin_is_listed_with_its_secret_masked(loyalty: Api) -> None:
    body = await loyalty.gql(PLUGINS)
    assert "s3cret" not in json.dumps(body)
    plugin = next(p for p in body["data"]["plugins"] if p["name"] == "example_loyalty")
    assert plugin["enabled"] is True
    assert plugin["settings"] == {
        "api_key": "********",
        "max_order_total": "100.00",
        "label": "Bonus points",
        "require_cancel_reason": True,
    }
    schema = {s["name"]: s for s in plugin["schema"]}
    assert schema["api_key"]["default"] is None
    assert schema["label"]["default"] == "Loyalty points"

    denied = await loyalty.gql(PLUGINS, as_="staff")
    assert denied["data"] is None
    assert denied["errors"][0]["message"] == "The staff role may not read or change plugins."


async def test_an_enabled_plugin_rejects_orders_alongside_the_cores_problems(loyalty: Api) -> None:
    too_big = order_input("BIG-1", lines=priced(("LAMP", 2, "79.00"), ("NOPE", 1, "30.00")))
    payload = (await loyalty.data(SUBMIT, {"input": too_big}))["submitOrder"]
    assert payload["order"] is None
    assert payload["errors"] == [
        {"field": "lines[1].sku", "code": "UNKNOWN_SKU", "message": "We do not sell SKU NOPE."},
        {
            "field": "lines",
            "code": "INVALID_VALUE",
            "message": "Orders over 100.00 need a phone call to the loyalty desk.",
        },
    ]
    assert (await loyalty.data(ORDER_COUNT))["orders"]["totalCount"] == 0

    at_the_limit = await submit(loyalty, "EXACT-1", lines=priced(("MUG", 8, "12.50")))
    assert at_the_limit["total"] == "100.00"


async def test_an_enabled_plugin_answers_its_graphql_field(loyalty: Api) -> None:
    order = await submit(loyalty, "PTS-1", lines=priced(("TEE", 2, "24.90")))
    points = {"label": "Bonus points", "points": 49}
    assert (await loyalty.data(LOYALTY_POINTS, {"id": order["id"]}))["loyaltyPoints"] == points
    mine = await loyalty.data(LOYALTY_POINTS, {"id": order["id"]}, as_="ada")
    assert mine["loyaltyPoints"] == points
    theirs = await loyalty.data(LOYALTY_POINTS, {"id": order["id"]}, as_="bob")
    assert theirs["loyaltyPoints"] is None
    assert (await loyalty.data(LOYALTY_POINTS, {"id": "999999"}))["loyaltyPoints"] is None
    anonymous = await loyalty.gql(LOYALTY_POINTS, {"id": order["id"]}, as_=None)
    assert anonymous["data"] == {"loyaltyPoints": None}
    assert "Authentication required" in anonymous["errors"][0]["message"]


async def test_an_enabled_plugin_adds_a_state_that_orders_can_pass_through(loyalty: Api) -> None:
    graph = (await loyalty.data(STATUS_GRAPH))["statusGraph"]
    assert "AWAITING_PICKUP" in {s["name"] for s in graph["states"]}
    transitions = {t["name"]: t for t in graph["transitions"]}
    assert transitions["ready_for_pickup"] == {
        "name": "ready_for_pickup",
        "from": ["SHIPPED"],
        "to": "AWAITING_PICKUP",
        "roles": ["STAFF"],
    }
    assert transitions["deliver"]["from"] == ["SHIPPED", "AWAITING_PICKUP"]

    order = await submit(loyalty, "PICKUP-1")
    for step in ("start_review", "approve", "start_processing", "ship"):
        assert (await move(loyalty, order["id"], step))["errors"] == []
    forbidden = await move(loyalty, order["id"], "ready_for_pickup", as_="ada")
    assert [e["code"] for e in forbidden["errors"]] == ["FORBIDDEN"]
    waiting = await move(loyalty, order["id"], "ready_for_pickup", as_="staff")
    assert waiting["order"]["status"] == "AWAITING_PICKUP"
    assert waiting["order"]["availableTransitions"] == [{"name": "deliver"}]
    delivered = await move(loyalty, order["id"], "deliver", as_="staff")
    assert delivered["order"]["status"] == "DELIVERED"

    states = (await loyalty.data(STATUS_GRAPH))["statusGraph"]["states"]
    counts = {s["name"]: s["count"] for s in states}
    assert counts["DELIVERED"] == 1 and counts["AWAITING_PICKUP"] == 0


async def test_an_enabled_plugin_vetoes_a_cancellation_without_a_reason(loyalty: Api) -> None:
    order = await submit(loyalty, "CANCEL-1")
    vetoed = await move(loyalty, order["id"], "cancel", reason="  ")
    assert vetoed["errors"] == [
        {
            "field": "transition",
            "code": "VETOED",
            "message": "example_loyalty: alice must give a reason to cancel an order",
        }
    ]
    unchanged = (await loyalty.data(ORDER, {"id": order["id"]}))["order"]
    assert (unchanged["status"], unchanged["version"]) == ("RECEIVED", 1)
    cancelled = await move(loyalty, order["id"], "cancel", reason="The customer called.")
    assert cancelled["errors"] == []
    assert cancelled["order"]["status"] == "CANCELLED"


def test_the_cli_lists_the_enabled_plugin_and_draws_its_states(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("ORDERGRAPH_CONFIG", str(write_config(tmp_path, LOYALTY_CONFIG)))
    assert cli.main(["plugins"]) == 0
    rows = {line.split()[0]: line.split()[1:3] for line in capsys.readouterr().out.splitlines()}
    assert rows["example_loyalty"] == ["enabled", "other"]

    assert cli.main(["graph", "--format", "mermaid"]) == 0
    mermaid = capsys.readouterr().out.splitlines()
    assert "    SHIPPED --> AWAITING_PICKUP: ready_for_pickup" in mermaid
    assert "    AWAITING_PICKUP --> DELIVERED: deliver" in mermaid
    assert "    SHIPPED --> DELIVERED: deliver" in mermaid


# -- Invalid configuration stops start-up -------------------------------------------------

ENABLED = '[plugins.example_loyalty]\nenabled = true\napi_key = "s3cret"\n'


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            ENABLED + 'max_order_total = "abc"\n',
            "plugins.example_loyalty.max_order_total: 'abc' is not a number (got 'abc')",
        ),
        (ENABLED + "label = 5\n", "plugins.example_loyalty.label: expected a string (got 5)"),
        (
            "[plugins.example_loyalty]\nenabled = true\n",
            "plugins.example_loyalty.api_key: required setting is missing",
        ),
        (
            ENABLED + 'colour = "red"\n',
            "plugins.example_loyalty.colour: unknown setting (known: api_key, max_order_total, "
            "label, require_cancel_reason)",
        ),
        (
            '[plugins.example_loyalty]\nenabled = "yes"\napi_key = "s3cret"\n',
            "plugins.example_loyalty.enabled: expected true or false",
        ),
        (
            # A misspelt "enabled" must not leave the plugin silently off.
            '[plugins.example_loyalty]\nenable = true\napi_key = "s3cret"\n',
            "plugins.example_loyalty.enable: unknown setting",
        ),
        (
            "[plugins.loyalty]\nenabled = true\n",
            "plugins.loyalty: no installed plugin has this name (installed: ",
        ),
    ],
    ids=["wrong-type", "not-a-string", "missing-required", "unknown-key", "enabled-not-bool",
         "misspelt-enabled", "unknown-plugin"],
)  # fmt: skip
def test_invalid_plugin_settings_stop_start_up_naming_plugin_and_field(
    config: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    path = write_config(tmp_path, config)
    settings = settings_from_file(path, f"sqlite:///{tmp_path}/ordergraph.db")
    with pytest.raises(PluginConfigError) as caught:
        create_app(settings)
    assert str(caught.value).startswith(message)

    monkeypatch.setenv("ORDERGRAPH_CONFIG", str(path))
    assert cli.main(["plugins"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {message}")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[ordergraph]\nreview_rule = ['stock']\n", "ordergraph.review_rule: unknown setting"),
        ("[ordergraph]\nreview_rules = 'stock'\n", "ordergraph.review_rules: expected a list"),
        ("[ordergraph]\nplugin_timeout_seconds = '10'\n", "ordergraph.plugin_timeout_seconds: "),
    ],
    ids=["misspelt-key", "rules-not-a-list", "timeout-not-a-number"],
)
def test_invalid_ordergraph_settings_stop_start_up_naming_the_field(
    config: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setenv("ORDERGRAPH_CONFIG", str(write_config(tmp_path, config)))
    assert cli.main(["plugins"]) == 2
    assert f"ordergraph.toml: {message}" in capsys.readouterr().err


# -- Plugins defined here ----------------------------------------------------------------


class HangingVeto:
    """A before_transition that never answers."""

    @hookimpl
    async def before_transition(self) -> None:
        await asyncio.Event().wait()


class BrokenVeto:
    @hookimpl
    def before_transition(self) -> None:
        raise RuntimeError("the fraud service is down")


class BrokenCheck:
    @hookimpl
    def validate_order(self) -> None:
        raise RuntimeError("the blocklist is unreachable")


class NoCashCheck:
    @hookimpl
    def validate_order(self, draft: OrderDraft) -> list[Problem]:
        if "cash" not in draft.note:
            return []
        return [Problem(ErrorCode.INVALID_VALUE, "We do not take cash on delivery.", "note")]


class NoGiftWrapCheck:
    """An async implementation: the core must await it to see its problems."""

    @hookimpl
    async def validate_order(self, draft: OrderDraft) -> list[Problem]:
        if "gift" not in draft.note:
            return []
        return [Problem(ErrorCode.INVALID_VALUE, "We cannot gift-wrap.", "note")]


def enabled(*names: str) -> dict[str, dict[str, Any]]:
    return {name: {"enabled": True} for name in names}


# -- Isolation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plugin", "error"),
    [
        (HangingVeto(), "timed out after 0.2s"),
        (BrokenVeto(), "RuntimeError: the fraud service is down"),
    ],
    ids=["hangs", "raises"],
)
async def test_a_failing_before_transition_vetoes_and_is_recorded_on_the_order(
    plugin: object, error: str, database_url: str
) -> None:
    settings = make_settings(database_url, plugins=enabled("slowpoke"), plugin_timeout_seconds=0.2)
    async with serve(settings, {"web": web, "slowpoke": plugin}) as api:
        order = await submit(api, "VETO-1")
        vetoed = await move(api, order["id"], "start_review")
        assert vetoed["order"] is None
        assert vetoed["errors"] == [
            {
                "field": None,
                "code": "VETOED",
                "message": f"slowpoke failed ({error}); nothing was changed.",
            }
        ]
        after = (await api.data(ORDER, {"id": order["id"]}))["order"]
        assert (after["status"], after["version"]) == ("RECEIVED", 1)
        assert [(e["type"], e["data"]) for e in after["events"]] == [
            ("submitted", {"channel": "web"}),
            ("plugin_failed", {"plugin": "slowpoke", "hook": "before_transition", "error": error}),
        ]


async def test_a_failing_validate_order_rejects_nothing_and_is_logged(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """As hookspecs.validate_order says: the order goes on to review, which can still stop it."""
    settings = make_settings(database_url, plugins=enabled("broken", "no_cash"))
    plugins = {"web": web, "broken": BrokenCheck(), "no_cash": NoCashCheck()}
    async with serve(settings, plugins) as api:
        with caplog.at_level(logging.ERROR, logger="ordergraph.core.plugins"):
            accepted = await submit(api, "OK-1")
        assert accepted["status"] == "RECEIVED"
        [record] = [r for r in caplog.records if r.name == "ordergraph.core.plugins"]
        assert record.getMessage() == "plugin broken failed in validate_order"
        assert "the blocklist is unreachable" in str(record.exc_info[1])

        cash = order_input("CASH-1", note="cash on delivery please")
        payload = (await api.data(SUBMIT, {"input": cash}))["submitOrder"]
        assert payload["order"] is None
        assert [e["message"] for e in payload["errors"]] == ["We do not take cash on delivery."]


async def test_sync_and_async_validate_order_are_both_heard_in_plugin_order(
    database_url: str,
) -> None:
    settings = make_settings(database_url, plugins=enabled("no_cash", "no_gift_wrap"))
    plugins = {"web": web, "no_cash": NoCashCheck(), "no_gift_wrap": NoGiftWrapCheck()}
    async with serve(settings, plugins) as api:
        lines = [{"sku": "NOPE", "quantity": 1}]
        draft = order_input("GIFT-1", note="gift, paid in cash", lines=lines)
        payload = (await api.data(SUBMIT, {"input": draft}))["submitOrder"]
        assert [(e["field"], e["message"]) for e in payload["errors"]] == [
            ("lines[0].sku", "We do not sell SKU NOPE."),
            ("note", "We do not take cash on delivery."),
            ("note", "We cannot gift-wrap."),
        ]
        gift = await api.data(SUBMIT, {"input": order_input("GIFT-2", note="gift")})
        assert [e["message"] for e in gift["submitOrder"]["errors"]] == ["We cannot gift-wrap."]
        assert (await submit(api, "PLAIN-1", note="leave at the door"))["status"] == "RECEIVED"


# -- Start-up conflicts ----------------------------------------------------------------


@strawberry.type
class SamePythonName:
    @strawberry.field
    def loyalty_points(self, order_id: strawberry.ID) -> int:
        return 0


@strawberry.type
class SameGraphQLName:
    @strawberry.field(name="loyaltyPoints")
    def points(self, order_id: strawberry.ID) -> int:
        return 0


@strawberry.type
class OrdersQuery:
    @strawberry.field
    def orders(self) -> int:
        return 0


@strawberry.type
class SubmitMutation:
    @strawberry.field(name="submitOrder")
    def submit(self) -> int:
        return 0


class Contributes:
    """A plugin contributing one strawberry type through ``graphql_schema``."""

    def __init__(self, **extension: tuple[type, ...]) -> None:
        self.extension = SchemaExtension(**extension)

    @hookimpl
    def graphql_schema(self) -> SchemaExtension:
        return self.extension


@pytest.mark.parametrize("copycat", [SamePythonName, SameGraphQLName])
def test_two_plugins_defining_the_same_field_stop_start_up(copycat: type, tmp_path: Path) -> None:
    config = {"example_loyalty": {"enabled": True, "api_key": "k"}, "copycat": {"enabled": True}}
    plugins = {
        "web": web,
        "example_loyalty": ordergraph_example_plugin,
        "copycat": Contributes(query=(copycat,)),
    }
    settings = make_settings(f"sqlite:///{tmp_path}/og.db", plugins=config)
    with pytest.raises(SchemaConflict) as caught:
        create_app(settings, installed_plugins=plugins)
    assert str(caught.value) == (
        "Query.loyaltyPoints is defined by both example_loyalty and copycat"
    )


@pytest.mark.parametrize(
    ("extension", "message"),
    [
        ({"query": (OrdersQuery,)}, "Query.orders is defined by both core and greedy"),
        ({"mutation": (SubmitMutation,)}, "Mutation.submitOrder is defined by both web and greedy"),
    ],
    ids=["core-field", "built-in-plugin-field"],
)
def test_a_plugin_cannot_replace_a_field_it_does_not_own(
    extension: dict[str, tuple[type, ...]], message: str, tmp_path: Path
) -> None:
    settings = make_settings(f"sqlite:///{tmp_path}/og.db", plugins=enabled("greedy"))
    with pytest.raises(SchemaConflict) as caught:
        create_app(settings, installed_plugins={"web": web, "greedy": Contributes(**extension)})
    assert str(caught.value) == message


class RedeclaresShipped:
    @hookimpl
    def extend_status_graph(self, graph: StatusGraph) -> None:
        graph.add_state("SHIPPED", "Again.")


class AddsAnIsland:
    @hookimpl
    def extend_status_graph(self, graph: StatusGraph) -> None:
        graph.add_state("LOST", "Nothing leads here.")
        graph.add_transition("find", "LOST", "RECEIVED")


def test_a_plugin_that_breaks_the_status_graph_stops_start_up(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path}/og.db", plugins=enabled("clumsy"))
    with pytest.raises(PluginConfigError) as caught:
        create_app(settings, installed_plugins={"web": web, "clumsy": RedeclaresShipped()})
    assert str(caught.value) == (
        "plugin clumsy: extend_status_graph failed: state SHIPPED is declared twice"
    )
    with pytest.raises(StatusGraphError, match="states not reachable from RECEIVED: LOST"):
        create_app(settings, installed_plugins={"web": web, "clumsy": AddsAnIsland()})
