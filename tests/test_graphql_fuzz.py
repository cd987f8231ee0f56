"""Property-based fuzzing of the whole GraphQL API: no request may fail unexpectedly.

hypothesis-graphql writes queries and mutations from the real schema, valid ones and
ones with a single mistake, with any arguments (NUL characters, huge numbers, long
strings, odd decimals and dates). Each goes through the real ASGI app in production
mode, where an unexpected failure is masked and carries a reference: the property is
that no answer has one, and that every answer is HTTP 200 with GraphQL errors at most.
The number of examples is kept small enough for CI on both backends.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator

import hypothesis_graphql
import pytest
from conftest import Api, make_settings, serve_api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, nodes

from ordergraph.graphql.schema import build_schema

EXAMPLES_PER_BACKEND = 150

# Decimals as clients send them: strings, including the ones a Decimal parses but no
# amount can be (NaN, sNaN, Infinity, 1e999999999) and ones finer than a cent.
DECIMALS = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["NaN", "sNaN", "-Infinity", "1e999999999", "-1e-999999999", "12.345"]),
    st.text(max_size=20),
).map(nodes.String)
DATETIMES = st.one_of(
    st.datetimes(timezones=st.sampled_from([datetime.UTC, None])).map(lambda d: d.isoformat()),
    st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]),
).map(nodes.String)
JSON = st.one_of(st.none(), st.integers(), st.text(max_size=20)).map(
    lambda value: nodes.String(str(value))
)
CUSTOM_SCALARS = {"Decimal": DECIMALS, "DateTime": DATETIMES, "JSON": JSON}
ROLES = ["admin", "staff", "ada", "integrator"]


@pytest.fixture
async def production_api(database_url: str) -> AsyncIterator[Api]:
    async with serve_api(make_settings(database_url, production=True)) as served:
        yield served


@settings(
    max_examples=EXAMPLES_PER_BACKEND,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_no_request_fails_unexpectedly(production_api: Api, data: st.DataObject) -> None:
    api = production_api
    sdl = str(build_schema(api.rt))
    mode = data.draw(st.sampled_from([Mode.POSITIVE, Mode.POSITIVE, Mode.NEGATIVE]))
    query = data.draw(
        hypothesis_graphql.from_schema(sdl, custom_scalars=CUSTOM_SCALARS, mode=mode),
        label="query",
    )
    role = data.draw(st.sampled_from(ROLES), label="role")

    response = await api.client.post(
        "/graphql",
        json={"query": query},
        headers={"Authorization": f"Bearer {api.tokens[role]}"},
    )

    assert response.status_code == 200, response.text
    unexpected = [
        error
        for error in response.json().get("errors", [])
        if "reference" in (error.get("extensions") or {})
        or error["message"].startswith("Unexpected error")
    ]
    assert unexpected == []
