"""Property-based fuzzing of stages 3 to 5: no input, however hostile, fails unexpectedly.

Three doors: the GraphQL mutations of fulfilment, tracking, alerts, settlement and
promotions (hypothesis-graphql, as in ``test_graphql_fuzz.py``, against a shop with
teams, tasks and shipments whose ids the examples name); AfterShip's webhook, correctly
signed, with fields of any type and value (a signed delivery answered 5xx is retried by
the provider for days); and the HTTP routes of these stages with any path segment. The
app runs in production mode, where an unexpected failure is masked and carries a
reference: no answer may have one, and none may be a 5xx.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import graphql
import hypothesis_graphql
import pytest
from conftest import Api, make_settings, serve_api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, nodes
from test_aftership import SECRET, post
from test_fulfilment import team
from test_graphql_fuzz import CUSTOM_SCALARS, STRINGS
from test_tracking import shipped

from ordergraph.core import auth
from ordergraph.graphql.schema import build_schema

EXAMPLES_PER_BACKEND = 150
STAGES_1_AND_2 = {
    "submitOrder",
    "amendOrder",
    "cancelOrder",
    "transitionOrder",
    "approveOrder",
    "rejectOrder",
    "replayImport",
    "upsertCustomer",
    "upsertProducts",
}
# Ids of rows the shop has (orders, tasks, shipments, events), and ids no row can have:
# other scripts' digits (which str.isdigit() takes), more digits than int() reads.
IDS = st.one_of(
    st.integers(1, 12).map(str),
    st.sampled_from(["0", "-1", "2147483648", "\u00b2", "\u0661", "\uff11", "9" * 5000]),
    st.text(max_size=12),
).map(nodes.String)
# Tracking numbers and carriers the shop knows, and any other text.
TEXT = st.one_of(st.sampled_from(["manual", "fedex", "FZ-1-T", "FZ-2-T", "EUR"]), STRINGS)
ROLES = ["admin", "admin", "pia", "staff", "ada"]
PRODUCTION_ERROR_STATUSES = range(500, 600)


def _settings(database_url: str) -> Any:
    plugins = {
        "stock": {"enabled": True},
        "rules": {"enabled": True, "rules": ["-> packers"]},
        "aftership": {"enabled": True, "webhook_secret": SECRET},
    }
    return make_settings(database_url, production=True, plugins=plugins)


@dataclass(repr=False)
class Shop:
    api: Api
    schema: str
    mutations: list[str]


@pytest.fixture
async def shop(database_url: str) -> AsyncIterator[Shop]:
    """The app in production mode with two orders shipped by hand and one by FedEx
    (tracked through AfterShip), so that small ids name real tasks and shipments."""
    async with serve_api(_settings(database_url)) as api:
        api.tokens["pia"] = await auth.create_token("staff", name="pia", team="packers")
        await team(api, "packers", ("pia", 50))
        for external_id, carrier in [("FZ-1", "manual"), ("FZ-2", "fedex"), ("FZ-3", "manual")]:
            await shipped(api, external_id, carrier=carrier)
        sdl = str(build_schema(api.rt))
        mutation_type = graphql.build_schema(sdl).mutation_type
        assert mutation_type is not None
        stages = sorted(set(mutation_type.fields) - STAGES_1_AND_2)
        yield Shop(api, sdl, stages)


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_BACKEND,
    derandomize=bool(os.environ.get("CI")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def unexpected(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        error
        for error in body.get("errors", [])
        if "reference" in (error.get("extensions") or {})
        or error["message"].startswith("Unexpected error")
    ]


@FUZZ_SETTINGS
@given(data=st.data())
async def test_no_stage_mutation_fails_unexpectedly(shop: Shop, data: st.DataObject) -> None:
    field = data.draw(st.sampled_from(shop.mutations), label="field")
    mode = data.draw(st.sampled_from([Mode.POSITIVE, Mode.POSITIVE, Mode.NEGATIVE]))
    scalars = {**CUSTOM_SCALARS, "ID": IDS, "String": TEXT.map(nodes.String)}
    query = data.draw(
        hypothesis_graphql.from_schema(
            shop.schema, fields=[field], custom_scalars=scalars, mode=mode
        ),
        label="query",
    )
    role = data.draw(st.sampled_from(ROLES), label="role")

    response = await shop.api.client.post(
        "/graphql",
        json={"query": query},
        headers={"Authorization": f"Bearer {shop.api.tokens[role]}"},
    )

    assert response.status_code == 200, response.text
    assert unexpected(response.json()) == []


# Any JSON value: what a field of the wrong type may hold.
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
TIMES = st.sampled_from(
    ["2024-04-26T10:00:00Z", "2024-04-26T10:00:00", "0001-01-01T00:00:00+14:00", "9999-12-31"]
)
CHECKPOINT = st.fixed_dictionaries(
    {},
    optional={
        "checkpoint_time": TIMES | JSON_VALUES,
        "tag": st.sampled_from(["InTransit", "Delivered", "Exception", "Bogus"]) | JSON_VALUES,
        "subtag": st.sampled_from(["Exception_003", "Delivered_001", ""]) | JSON_VALUES,
        "message": st.text() | JSON_VALUES,
        "city": st.text() | JSON_VALUES,
        "state": st.text() | JSON_VALUES,
        "zip": st.text() | JSON_VALUES,
        "country_iso3": st.sampled_from(["USA", "DEU", "XXX"]) | JSON_VALUES,
        "coordinates": st.lists(st.sampled_from(["HUGE", 39.5, -200, 0]), max_size=3) | JSON_VALUES,
    },
)
MSG = st.fixed_dictionaries(
    {"tracking_number": st.sampled_from(["FZ-2-T", "FZ-2-T", "NOPE"]) | JSON_VALUES},
    optional={
        "checkpoints": st.lists(CHECKPOINT | JSON_VALUES, max_size=3) | JSON_VALUES,
        "expected_delivery": TIMES | JSON_VALUES,
        "aftership_estimated_delivery_date": st.fixed_dictionaries(
            {}, optional={"estimated_delivery_date_min": TIMES | JSON_VALUES}
        )
        | JSON_VALUES,
        "order_promised_delivery_date": TIMES | JSON_VALUES,
    },
)
WEBHOOK_BODIES = st.fixed_dictionaries(
    {"msg": MSG | JSON_VALUES}, optional={"event_id": st.text(max_size=10) | JSON_VALUES}
)


@FUZZ_SETTINGS
@given(body=WEBHOOK_BODIES)
async def test_no_signed_aftership_delivery_fails(shop: Shop, body: dict[str, Any]) -> None:
    # A number beyond what a float holds, as a JSON text may carry it.
    raw = json.dumps(body).replace('"HUGE"', "1e400").encode()

    answer = await post(shop.api, raw)

    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] in {"ingested", "rejected", "ignored", "duplicate"}


SEGMENTS = st.one_of(
    st.text(min_size=1, max_size=30),
    st.sampled_from(["\u0000", "\u00b2", "9" * 5000, "1", "ST-2026-000001", ".."]),
)


@FUZZ_SETTINGS
@given(
    segment=SEGMENTS,
    route=st.sampled_from(
        ["/shipments/{}/label", "/statements/{}.pdf", "/statements/{}.pdf?token={}"]
    ),
    role=st.sampled_from(ROLES),
)
async def test_no_stage_route_fails_on_a_hostile_path(
    shop: Shop, segment: str, route: str, role: str
) -> None:
    quoted = quote(segment, safe="")
    answer = await shop.api.client.get(
        route.format(quoted, quoted),
        headers={"Authorization": f"Bearer {shop.api.tokens[role]}"},
    )
    confirm = await shop.api.client.post("/confirm-delivery", data={"token": segment})

    assert answer.status_code not in PRODUCTION_ERROR_STATUSES, answer.text
    assert confirm.status_code not in PRODUCTION_ERROR_STATUSES, confirm.text
