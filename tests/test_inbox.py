"""The import inbox: what channels could not import, kept once, shown to operators, replayed.

Fed here through the CSV upload (on by default); the webhook channels' tests replay
their own payloads. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from conftest import Api, make_settings, seed_shop

from ordergraph.app import create_app
from ordergraph.core import auth

CHANNELS_DOC = Path(__file__).resolve().parent.parent / "docs" / "channels.md"

HEADER = (
    "external_id,customer_email,sku,quantity,currency,"
    "ship_name,ship_line1,ship_city,ship_postal_code,ship_country\n"
)
UNKNOWN_SKU_CSV = HEADER + (
    "I-1,ada@example.com,MUG,1,EUR,Ada,1 Road,Leeds,LS1 1AA,GB\nI-1,,DESK,2,,,,,,\n"
)
IMPORT_ERRORS = """
query Inbox($status: ImportStatus, $channel: String) {
  importErrors(status: $status, channel: $channel) {
    totalCount
    edges { node {
      id channel reference status attempts orderId payload
      reasons { field code message }
    } }
  }
}
"""
REPLAY = """
mutation Replay($id: ID!) {
  replayImport(id: $id) {
    importError { id status attempts orderId reasons { field code message } }
    order { number channel externalId lines { sku quantity } }
    errors { field code message }
  }
}
"""
ADD_DESK = """
mutation {
  upsertProducts(input: [{sku: "DESK", name: "Desk", listPrice: "150.00", currency: "EUR"}]) {
    errors { message }
  }
}
"""


async def upload(api: Api, text: str, **params: str) -> httpx.Response:
    return await api.client.post(
        "/channels/csv/upload",
        content=text.encode(),
        headers={"Authorization": f"Bearer {api.tokens['integrator']}"},
        params=params,
    )


async def entries(api: Api, status: str | None = "OPEN", *, as_: str = "admin") -> list[dict]:
    data = await api.data(IMPORT_ERRORS, {"status": status}, as_=as_)
    return [edge["node"] for edge in data["importErrors"]["edges"]]


async def order_count(api: Api) -> int:
    return (await api.data("{ orders { totalCount } }"))["orders"]["totalCount"]


async def test_a_rejected_csv_order_is_replayed_from_its_rows_under_its_channel(
    api: Api,
) -> None:
    summary = (await upload(api, UNKNOWN_SKU_CSV, channel="marketplace")).json()
    assert summary["rejected"] == 1
    [entry] = await entries(api)
    assert (entry["channel"], entry["reference"]) == ("csv", "marketplace:I-1")
    assert [(r["field"], r["code"]) for r in entry["reasons"]] == [("lines[1].sku", "UNKNOWN_SKU")]
    kept = json.loads(entry["payload"])
    assert (kept["channel"], [row["row"] for row in kept["rows"]]) == ("marketplace", [2, 3])

    assert (await api.data(ADD_DESK))["upsertProducts"]["errors"] == []
    replayed = (await api.data(REPLAY, {"id": entry["id"]}, as_="staff"))["replayImport"]

    assert replayed["errors"] == []
    assert (replayed["order"]["channel"], replayed["order"]["externalId"]) == ("marketplace", "I-1")
    assert replayed["order"]["lines"] == [
        {"sku": "MUG", "quantity": 1},
        {"sku": "DESK", "quantity": 2},
    ]
    assert replayed["importError"]["status"] == "IMPORTED"
    assert await entries(api) == []
    again = (await upload(api, UNKNOWN_SKU_CSV, channel="marketplace")).json()
    assert (again["created"], again["duplicate"], again["rejected"]) == (0, 1, 0)


async def test_a_replay_that_still_fails_refreshes_the_entry_and_creates_nothing(
    api: Api,
) -> None:
    await upload(api, UNKNOWN_SKU_CSV)
    [entry] = await entries(api)

    replayed = (await api.data(REPLAY, {"id": entry["id"]}))["replayImport"]

    assert replayed["order"] is None
    assert [(e["field"], e["code"]) for e in replayed["errors"]] == [
        ("lines[1].sku", "UNKNOWN_SKU")
    ]
    assert (replayed["importError"]["status"], replayed["importError"]["attempts"]) == ("OPEN", 2)
    assert await order_count(api) == 0
    [still_open] = await entries(api)
    assert still_open["id"] == entry["id"]


async def test_rows_that_disagree_are_kept_with_their_row_and_stay_rejected_on_replay(
    api: Api,
) -> None:
    text = HEADER + (
        "D-1,ada@example.com,MUG,1,EUR,Ada,1 Road,Leeds,LS1 1AA,GB\n"
        "D-1,bob@example.com,TEE,1,,,,,,\n"
    )
    await upload(api, text)
    [entry] = await entries(api)
    expected = [
        (
            "customer_email",
            "INVALID_VALUE",
            "Row 3: customer_email is 'bob@example.com' here but 'ada@example.com' in row 2; "
            "the rows of order D-1 must agree (or leave the cell blank).",
        )
    ]
    assert [(r["field"], r["code"], r["message"]) for r in entry["reasons"]] == expected

    replayed = (await api.data(REPLAY, {"id": entry["id"]}))["replayImport"]

    assert [(e["field"], e["code"], e["message"]) for e in replayed["errors"]] == expected
    assert await order_count(api) == 0


async def test_only_operators_see_the_inbox_and_only_admins_its_payloads(api: Api) -> None:
    await upload(api, UNKNOWN_SKU_CSV)

    [for_admin] = await entries(api, as_="admin")
    [for_staff] = await entries(api, as_="staff")

    assert "DESK" in for_admin["payload"]
    assert for_staff["payload"] is None
    assert for_staff["reasons"] == for_admin["reasons"]
    for role in ("integrator", "ada"):
        listed = await api.gql(IMPORT_ERRORS, {"status": "OPEN"}, as_=role)
        assert listed["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        replay = await api.gql(REPLAY, {"id": for_admin["id"]}, as_=role)
        assert replay["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    anonymous = await api.gql(IMPORT_ERRORS, {"status": "OPEN"}, as_=None)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_replaying_an_unknown_entry_says_so(api: Api) -> None:
    replayed = (await api.data(REPLAY, {"id": "999999"}))["replayImport"]

    assert replayed["importError"] is None
    assert [(e["field"], e["code"]) for e in replayed["errors"]] == [("id", "NOT_FOUND")]


async def test_an_external_id_longer_than_the_reference_column_is_kept_under_its_digest(
    api: Api,
) -> None:
    """PostgreSQL enforces Varchar(200), SQLite does not: both keep the same entry."""
    long_id = "L" * 250
    text = HEADER + f"{long_id},ada@example.com,MUG,1,EUR,Ada,1 Road,Leeds,LS1 1AA,GB\n"

    answers = [(await upload(api, text)).json() for _ in range(2)]

    assert [a["rejected"] for a in answers] == [1, 1]
    [entry] = await entries(api)
    assert entry["reference"] == "sha256:" + hashlib.sha256(long_id.encode()).hexdigest()
    assert [r["field"] for r in entry["reasons"]] == ["externalId"]  # longer than 128
    assert entry["attempts"] == 2
    assert {a["orders"][0]["import_error_id"] for a in answers} == {int(entry["id"])}


async def test_ten_concurrent_uploads_of_a_rejected_order_keep_one_entry(api: Api) -> None:
    responses = await asyncio.gather(*(upload(api, UNKNOWN_SKU_CSV) for _ in range(10)))

    assert [r.status_code for r in responses] == [200] * 10, [r.text for r in responses]
    [entry] = await entries(api)
    assert {r.json()["orders"][0]["import_error_id"] for r in responses} == {int(entry["id"])}
    assert entry["attempts"] == 10


async def test_ten_concurrent_uploads_of_a_valid_order_create_it_once(api: Api) -> None:
    text = HEADER + "V-1,ada@example.com,MUG,1,EUR,Ada,1 Road,Leeds,LS1 1AA,GB\n"

    responses = await asyncio.gather(*(upload(api, text) for _ in range(10)))

    summaries: list[dict[str, Any]] = [r.json() for r in responses]
    assert sorted((s["created"], s["duplicate"]) for s in summaries) == [(0, 1)] * 9 + [(1, 0)]
    assert await order_count(api) == 1
    assert await entries(api, status=None) == []


# -- The channel example of docs/channels.md, run as written ------------------------------------

ACME_SECRET = "acme-signing-key"


def documented_channel() -> types.ModuleType:
    text = CHANNELS_DOC.read_text()
    block = re.search(
        r"<!-- channel-example:start -->\n```python\n(.*?)```\n<!-- channel-example:end -->",
        text,
        re.DOTALL,
    )
    assert block is not None, "docs/channels.md has no channel example between the markers"
    module = types.ModuleType("acme")
    exec(compile(block.group(1), "docs/channels.md", "exec"), module.__dict__)
    return module


@pytest.fixture
async def acme(database_url: str) -> AsyncIterator[Api]:
    """The app with only the documented plugin installed, enabled with its secret."""
    settings = make_settings(
        database_url, plugins={"acme": {"enabled": True, "secret": ACME_SECRET}}
    )
    app = create_app(settings, installed_plugins={"acme": documented_channel()})
    async with LifespanManager(app) as manager:
        await seed_shop()
        tokens = {"admin": await auth.create_token("admin", name="alice")}
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client=client, rt=app.state.rt, tokens=tokens)


def acme_order(sku: str) -> bytes:
    return json.dumps(
        {
            "order_ref": "AC-1",
            "buyer": {"email": "ada@example.com", "name": "Ada"},
            "ship_to": {"name": "Ada", "line1": "1 Road", "city": "Leeds",
                        "postalCode": "LS1 1AA", "country": "GB"},
            "currency": "EUR",
            "items": [{"sku": sku, "qty": 2, "unit_price": "12.50"}],
        }
    ).encode()  # fmt: skip


async def acme_delivery(api: Api, body: bytes, delivery_id: str, secret: str = ACME_SECRET):
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Acme-Signature": signature, "X-Acme-Delivery-Id": delivery_id}
    return await api.client.post("/channels/acme/webhook", content=body, headers=headers)


async def test_the_channel_example_of_the_docs_imports_dedupes_and_replays(acme: Api) -> None:
    forged = await acme_delivery(acme, acme_order("MUG"), "1", secret="guess")
    rejected = await acme_delivery(acme, acme_order("DESK"), "2")

    assert forged.status_code == 401
    assert (rejected.status_code, rejected.json()["status"]) == (200, "rejected")
    [entry] = await entries(acme)
    assert (entry["channel"], entry["reference"]) == ("acme", "AC-1")

    assert (await acme.data(ADD_DESK))["upsertProducts"]["errors"] == []
    replayed = (await acme.data(REPLAY, {"id": entry["id"]}))["replayImport"]
    redelivered = await acme_delivery(acme, acme_order("DESK"), "3")

    assert replayed["order"]["lines"] == [{"sku": "DESK", "quantity": 2}]
    assert (redelivered.status_code, redelivered.json()["status"]) == (200, "duplicate")
    assert redelivered.json()["order"] == replayed["order"]["number"]
    assert await order_count(acme) == 1


async def test_the_channel_example_bounds_what_it_reads(acme: Api) -> None:
    too_large = json.dumps({"order_ref": "AC-2", "pad": "x" * 1_000_000}).encode()
    deep = b"[" * 100_000

    refused = await acme_delivery(acme, too_large, "4")
    kept = await acme_delivery(acme, deep, "5")

    assert refused.status_code == 413
    assert (kept.status_code, kept.json()["status"]) == (200, "rejected")
    [entry] = await entries(acme)
    assert entry["reference"] == "sha256:" + hashlib.sha256(deep).hexdigest()
    assert [r["message"] for r in entry["reasons"]] == [
        "The body nests arrays and objects deeper than 64 levels."
    ]
