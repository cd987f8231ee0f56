"""Who may do what: every role against the real ASGI app, and tokens made by the CLI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from conftest import ADDRESS, SUBMIT, Api, make_settings, order_input, submit

import plugins.channels.web
from ordergraph import cli
from ordergraph.app import create_app
from ordergraph.core import auth, db
from ordergraph.core.auth import hash_token
from ordergraph.plugin_api import PluginInfo, Setting, hookimpl

ME = "{ me { role name customerId } }"
ORDERS = "{ orders { totalCount edges { node { id customer { email } } } } }"
ORDER = "query($id: ID!) { order(id: $id) { id status version events { type } } }"
ORDER_BY_NUMBER = "query($n: String!) { orderByNumber(number: $n) { id } }"
PRODUCTS = "{ products { totalCount } }"
CUSTOMERS = "{ customers { totalCount } }"
STATUS_GRAPH = "{ statusGraph { states { name count } } }"
PLUGINS = "{ plugins { name category enabled settings schema { name secret default } } }"
UPSERT_PRODUCTS = """
mutation { upsertProducts(input: [{sku: "PEN", name: "Pen", listPrice: "1.00", currency: "EUR"}])
  { products { sku } errors { code } } }
"""
TRANSITION = """
mutation Move($id: ID!, $t: String!) {
  transitionOrder(id: $id, transition: $t) { order { status } errors { field code } }
}
"""
CANCEL = """
mutation Cancel($id: ID!) { cancelOrder(id: $id) { order { status } errors { field code } } }
"""
AMEND = """
mutation Amend($id: ID!, $input: SubmitOrderInput!) {
  amendOrder(id: $id, input: $input) { order { note } }
}
"""
DECIDE = "mutation Decide($id: ID!) { $decision { order { note } } }"
UPSERT_CUSTOMER = """
mutation Upsert($input: CustomerInput!) { upsertCustomer(input: $input) { customer { id } } }
"""


def refused_with(body: dict[str, Any], code: str) -> bool:
    """The request got no data (null, or a null field), only an error with ``code``."""
    codes = [e.get("extensions", {}).get("code") for e in body.get("errors", [])]
    return not any((body.get("data") or {}).values()) and codes == [code]


def codes(payload: dict[str, Any]) -> list[str]:
    return [e["code"] for e in payload["errors"]]


async def move(api: Api, order_id: str, transition: str, *, as_: str) -> dict[str, Any]:
    return (await api.data(TRANSITION, {"id": order_id, "t": transition}, as_=as_))[
        "transitionOrder"
    ]


async def order_as_admin(api: Api, order_id: str) -> dict[str, Any]:
    return (await api.data(ORDER, {"id": order_id}))["order"]


# -- Nobody --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "variables"),
    [(ME, {}), (ORDERS, {}), (SUBMIT, {"input": order_input()})],
    ids=["me", "orders", "submitOrder"],
)
async def test_without_a_token_nothing_is_answered(
    api: Api, query: str, variables: dict[str, Any]
) -> None:
    assert refused_with(await api.gql(query, variables, as_=None), "UNAUTHENTICATED")

    forged = await api.client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": "Bearer og_not-a-real-token"},
    )
    assert refused_with(forged.json(), "UNAUTHENTICATED")
    assert (await api.data(ORDERS))["orders"]["totalCount"] == 0


# -- Customer ----------------------------------------------------------------------------------


class TestCustomer:
    async def test_sees_only_their_own_orders(self, api: Api) -> None:
        ada_orders = [await submit(api, f"ADA-{i}", as_="ada") for i in range(2)]
        bob_orders = [
            await submit(api, f"BOB-{i}", customerEmail="bob@example.com") for i in range(2)
        ]

        listed = (await api.data(ORDERS, as_="ada"))["orders"]
        assert listed["totalCount"] == 2
        assert {e["node"]["id"] for e in listed["edges"]} == {o["id"] for o in ada_orders}
        assert {e["node"]["customer"]["email"] for e in listed["edges"]} == {"ada@example.com"}

        # Guess every id and number around the real ones: only ada's own come back.
        highest = max(o["databaseId"] for o in ada_orders + bob_orders)
        by_id, by_number = set(), set()
        for guess in range(1, highest + 3):
            found = (await api.data(ORDER, {"id": str(guess)}, as_="ada"))["order"]
            if found:
                by_id.add(found["id"])
            number = f"SO-{guess:06d}"
            found = (await api.data(ORDER_BY_NUMBER, {"n": number}, as_="ada"))["orderByNumber"]
            if found:
                by_number.add(found["id"])
        assert by_id == by_number == {o["id"] for o in ada_orders}

    async def test_orders_always_go_on_their_own_account(self, api: Api) -> None:
        bob_id = (await api.data(ME, as_="bob"))["me"]["customerId"]
        placed = await submit(
            api, "ADA-FOR-BOB", as_="ada", customerEmail="bob@example.com", customerId=bob_id
        )
        mine = (await api.data(ORDERS, as_="ada"))["orders"]["edges"]
        assert [e["node"]["id"] for e in mine] == [placed["id"]]
        assert (await api.data(ORDERS, as_="bob"))["orders"]["totalCount"] == 0

    async def test_cannot_read_another_order_through_its_external_id(self, api: Api) -> None:
        bob_order = await submit(api, "BOB-SECRET", customerEmail="bob@example.com")

        payload = (await api.data(SUBMIT, {"input": order_input("BOB-SECRET")}, as_="ada"))[
            "submitOrder"
        ]
        assert payload["order"] is None
        assert [(e["field"], e["code"]) for e in payload["errors"]] == [("externalId", "DUPLICATE")]
        assert bob_order["id"] not in str(payload)
        assert (await api.data(ORDERS, as_="ada"))["orders"]["totalCount"] == 0

    async def test_cannot_move_another_customers_order(self, api: Api) -> None:
        bob_order = await submit(api, "BOB-1", customerEmail="bob@example.com")

        cancelled = (await api.data(CANCEL, {"id": bob_order["id"]}, as_="ada"))["cancelOrder"]
        assert cancelled["order"] is None
        # The same answer as for an order that does not exist: nothing leaks.
        assert codes(cancelled) == ["NOT_FOUND"]
        assert codes(await move(api, bob_order["id"], "complete", as_="ada")) == ["NOT_FOUND"]

        unchanged = await order_as_admin(api, bob_order["id"])
        assert (unchanged["status"], unchanged["version"]) == ("RECEIVED", 1)
        assert [e["type"] for e in unchanged["events"]] == ["submitted"]

    async def test_cannot_fire_staff_transitions_but_can_cancel(self, api: Api) -> None:
        order = await submit(api, "ADA-1", as_="ada")

        refused = await move(api, order["id"], "start_review", as_="ada")
        assert refused["order"] is None
        assert codes(refused) == ["FORBIDDEN"]
        assert (await order_as_admin(api, order["id"]))["status"] == "RECEIVED"

        cancelled = (await api.data(CANCEL, {"id": order["id"]}, as_="ada"))["cancelOrder"]
        assert cancelled == {"order": {"status": "CANCELLED"}, "errors": []}

    @pytest.mark.parametrize("query", [PRODUCTS, CUSTOMERS, PLUGINS, UPSERT_PRODUCTS])
    async def test_cannot_read_or_change_master_data(self, api: Api, query: str) -> None:
        assert refused_with(await api.gql(query, as_="ada"), "FORBIDDEN")
        assert (await api.data(PRODUCTS))["products"]["totalCount"] == 3


# -- Staff -------------------------------------------------------------------------------------


async def test_staff_operate_orders_but_not_plugins(api: Api) -> None:
    order = await submit(api, "STAFF-1", as_="staff")
    assert (await move(api, order["id"], "start_review", as_="staff"))["order"] == {
        "status": "IN_REVIEW"
    }
    assert (await api.data(ORDERS, as_="staff"))["orders"]["totalCount"] == 1
    assert (await api.data(PRODUCTS, as_="staff"))["products"]["totalCount"] == 3
    assert (await api.data(CUSTOMERS, as_="staff"))["customers"]["totalCount"] == 2
    assert (await api.data(UPSERT_PRODUCTS, as_="staff"))["upsertProducts"]["errors"] == []

    assert refused_with(await api.gql(PLUGINS, as_="staff"), "FORBIDDEN")


# -- Integrator --------------------------------------------------------------------------------


async def test_integrators_submit_orders_but_read_nothing_else(api: Api) -> None:
    order = await submit(api, "SYNC-1", as_="integrator")
    assert order["status"] == "RECEIVED"

    for query, variables in [
        (ORDERS, {}),
        (ORDER, {"id": order["id"]}),
        (STATUS_GRAPH, {}),
        (PRODUCTS, {}),
        (CUSTOMERS, {}),
        (UPSERT_PRODUCTS, {}),
        (TRANSITION, {"id": order["id"], "t": "start_review"}),
        # Every other field that answers with an order.
        (ORDER_BY_NUMBER, {"n": order["number"]}),
        ("{ reviewQueue { totalCount } }", {}),
        ("{ importErrors { totalCount } }", {}),
        (AMEND, {"id": order["id"], "input": order_input("SYNC-1")}),
        (DECIDE.replace("$decision", "approveOrder(id: $id)"), {"id": order["id"]}),
        (DECIDE.replace("$decision", 'rejectOrder(id: $id, reason: "no")'), {"id": order["id"]}),
        ('mutation { replayImport(id: "1") { order { id } } }', {}),
    ]:
        assert refused_with(await api.gql(query, variables, as_="integrator"), "FORBIDDEN"), query
    assert (await order_as_admin(api, order["id"]))["status"] == "RECEIVED"


SUBMIT_AGAIN = """
mutation Submit($input: SubmitOrderInput!) {
  submitOrder(input: $input) {
    created
    order { id status total note shippingAddress { line1 phone } lines { sku }
            customer { email } events { actor } reviewFindings { code } }
    existing { id number status }
    errors { field code message }
  }
}
"""


async def test_integrators_resubmitting_an_external_id_learn_only_its_number_and_status(
    api: Api,
) -> None:
    placed = await submit(
        api, "ADA-1", as_="ada", note="ring twice", shippingAddress={**ADDRESS, "phone": "+44 1"}
    )

    # The same external id again: it is taken, and by which order, but not whose it is.
    body = await api.data(SUBMIT_AGAIN, {"input": order_input("ADA-1")}, as_="integrator")
    assert body["submitOrder"] == {
        "created": False,
        "order": None,
        "existing": {"id": placed["id"], "number": placed["number"], "status": "RECEIVED"},
        "errors": [],
    }


@pytest.mark.parametrize("role", ["admin", "staff", "ada"])
async def test_readers_resubmitting_an_external_id_get_the_stored_order(
    api: Api, role: str
) -> None:
    placed = await submit(api, "ADA-1", as_="ada", note="ring twice")

    payload = (await api.data(SUBMIT_AGAIN, {"input": order_input("ADA-1")}, as_=role))[
        "submitOrder"
    ]
    assert payload["created"] is False
    assert payload["existing"] == {
        "id": placed["id"],
        "number": placed["number"],
        "status": "RECEIVED",
    }
    assert payload["order"]["note"] == "ring twice"
    assert payload["order"]["customer"] == {"email": "ada@example.com"}


# -- Admin -------------------------------------------------------------------------------------


async def test_admins_do_everything(api: Api) -> None:
    order = await submit(api, "ADMIN-1")
    assert (await move(api, order["id"], "start_review", as_="admin"))["errors"] == []
    assert (await api.data(ORDERS))["orders"]["totalCount"] == 1
    assert (await api.data(PRODUCTS))["products"]["totalCount"] == 3
    assert (await api.data(CUSTOMERS))["customers"]["totalCount"] == 2
    assert (await api.data(UPSERT_PRODUCTS))["upsertProducts"]["errors"] == []

    listed = {p["name"]: p for p in (await api.data(PLUGINS))["plugins"]}
    assert listed["web"]["enabled"] is True
    assert listed["web"]["category"] == "CHANNEL"


class VaultPlugin:
    """A payment plugin with a secret setting, to see what the API reveals of it."""

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(
            category="payment",
            description="Test payments.",
            settings=(
                Setting("api_key", secret=True, required=True, description="The API key."),
                Setting("region", default="eu", description="Where payments are taken."),
            ),
        )


SECRET = "sk_live_do-not-show-me"


@pytest.fixture
async def vault_api(database_url: str) -> AsyncIterator[Api]:
    settings = make_settings(database_url, plugins={"vault": {"enabled": True, "api_key": SECRET}})
    installed = {"web": plugins.channels.web, "vault": VaultPlugin()}
    app = create_app(settings, installed_plugins=installed)
    async with LifespanManager(app) as manager:
        tokens = {"admin": await auth.create_token("admin", name="alice")}
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client=client, rt=app.state.rt, tokens=tokens)


async def test_plugin_secrets_are_masked(vault_api: Api) -> None:
    body = await vault_api.gql(PLUGINS)
    assert SECRET not in str(body)
    listed = {p["name"]: p for p in body["data"]["plugins"]}
    assert listed["vault"]["enabled"] is True
    assert listed["vault"]["settings"] == {"api_key": "********", "region": "eu"}
    assert {s["name"]: s["secret"] for s in listed["vault"]["schema"]} == {
        "api_key": True,
        "region": False,
    }
    assert listed["web"]["enabled"] is True


# -- Tokens from the CLI -----------------------------------------------------------------------


async def run_cli(*argv: str) -> int:
    """``ordergraph ARGV`` as a user runs it: its own event loop and database connection."""
    return await asyncio.to_thread(cli.main, list(argv))


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The environment of ``ordergraph``: this test's database and an empty config file."""
    config = tmp_path / "ordergraph.toml"
    config.write_text("")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ORDERGRAPH_CONFIG", str(config))
    monkeypatch.delenv("REDIS_URL", raising=False)
    return database_url


async def test_cli_tokens_authenticate_and_are_stored_hashed(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run_cli("token", "create", "--role", "staff", "--name", "cli-sam") == 0
    staff_token = capsys.readouterr().out.strip()
    assert staff_token.startswith("og_")

    assert await run_cli("token", "create", "--role", "customer", "--name", "ada") == 2
    assert "needs --customer" in capsys.readouterr().err
    assert await run_cli("token", "create", "--role", "customer", "--customer", "999") == 2
    assert "no customer with id 999" in capsys.readouterr().err

    # The CLI holds the database only while it runs, so the app starts after it.
    app = create_app(make_settings(cli_env))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            api = Api(client=client, rt=app.state.rt, tokens={"staff": staff_token})
            me = (await api.data(ME, as_="staff"))["me"]
            assert me == {"role": "STAFF", "name": "cli-sam", "customerId": None}
            created = await api.data(
                UPSERT_CUSTOMER, {"input": {"email": "ada@example.com", "name": "Ada"}}, as_="staff"
            )
            ada_id = created["upsertCustomer"]["customer"]["id"]

    assert await run_cli("token", "create", "--role", "customer", "--customer", ada_id) == 0
    customer_token = capsys.readouterr().out.strip()

    app = create_app(make_settings(cli_env))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            api = Api(client=client, rt=app.state.rt, tokens={"ada": customer_token})
            me = (await api.data(ME, as_="ada"))["me"]
            assert (me["role"], me["customerId"]) == ("CUSTOMER", ada_id)

        stored = await db.raw("SELECT * FROM api_tokens")
        assert len(stored) == 2
        assert {row["token_hash"] for row in stored} == {
            hash_token(staff_token),
            hash_token(customer_token),
        }
        for row in stored:
            for value in row.values():
                assert staff_token not in str(value)
                assert customer_token not in str(value)
