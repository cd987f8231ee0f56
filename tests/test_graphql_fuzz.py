"""Property-based fuzzing of the whole GraphQL API: no request may fail unexpectedly.

hypothesis-graphql writes queries and mutations from the real schema, valid ones and
ones with a single mistake, with any arguments (NUL characters, huge numbers, long
strings, odd decimals and dates). Each goes through the real ASGI app in production
mode, where an unexpected failure is masked and carries a reference: the property is
that no answer has one, and that every answer is HTTP 200 with GraphQL errors at most.
The number of examples is kept small enough for CI on both backends.
"""

from __future__ import annotations

import base64
import datetime
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import graphql
import hypothesis_graphql
import pytest
from conftest import Api, make_settings, serve_api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, nodes

from ordergraph.graphql.schema import build_schema

EXAMPLES_PER_BACKEND = 200
NUL = "\u0000"

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
# Days as clients send them, the edges of the calendar and text that is no day included.
DATES = st.one_of(
    st.dates().map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01", "9999-12-31", "2026-02-30", "2026-W49", ""]),
    st.text(max_size=12),
).map(nodes.String)
JSON = st.one_of(st.none(), st.integers(), st.text(max_size=20)).map(
    lambda value: nodes.String(str(value))
)


def _cursor(kind: str, key: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode()


# Strings: any text, and the kinds that reached the database as queries it refused
# (NUL, more than a column holds, numbers beyond an id, cursors of impossible ids).
STRINGS = st.one_of(
    st.text(),
    st.sampled_from(["", NUL, f"a{NUL}b", "x" * 300, "9" * 4400, "SO-2147483648"]),
    st.from_regex(r"(SO-)?[0-9]{1,15}", fullmatch=True),
    st.builds(
        _cursor,
        st.sampled_from(["order", "product", "customer", "import", "queue"]),
        st.integers(-(2**70), 2**70),
    ),
).map(nodes.String)
# Ids in other scripts' digits pass str.isdigit() but not always int() ("\u00b2").
IDS = st.one_of(
    st.integers(-(2**40), 2**40).map(str),
    st.sampled_from(["1", "2", "abc", "9" * 50, "9" * 5000, "\u00b2", "\u0661"]),
).map(nodes.String)
CUSTOM_SCALARS = {
    "String": STRINGS,
    "ID": IDS,
    "Decimal": DECIMALS,
    "DateTime": DATETIMES,
    "Date": DATES,
    "JSON": JSON,
}
# Admins reach every field; the other roles see the role checks answer.
ROLES = ["admin", "admin", "admin", "staff", "ada", "integrator"]


@dataclass(repr=False)
class Target:
    api: Api
    schema: str
    root_fields: list[str]
    # Fields with arguments: only those can be sent with a mistake in them.
    with_arguments: set[str]


@pytest.fixture
async def target(database_url: str) -> AsyncIterator[Target]:
    """The app in production mode, with its schema as SDL and its root fields."""
    async with serve_api(make_settings(database_url, production=True)) as api:
        schema = graphql.build_schema(str(build_schema(api.rt)))
        assert schema.query_type is not None and schema.mutation_type is not None
        fields = {**schema.query_type.fields, **schema.mutation_type.fields}
        with_arguments = {name for name, field in fields.items() if field.args}
        yield Target(api, str(build_schema(api.rt)), list(fields), with_arguments)


@settings(
    max_examples=EXAMPLES_PER_BACKEND,
    # CI replays the same examples on every run, so that a run fails for a change, not
    # for the luck of the draw; elsewhere each run explores new ones.
    derandomize=bool(os.environ.get("CI")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_no_request_fails_unexpectedly(target: Target, data: st.DataObject) -> None:
    # One root field per request, each as likely as the others.
    field = data.draw(st.sampled_from(target.root_fields), label="field")
    modes = [Mode.POSITIVE, Mode.POSITIVE, Mode.NEGATIVE]
    mode = data.draw(st.sampled_from(modes if field in target.with_arguments else modes[:1]))
    query = data.draw(
        hypothesis_graphql.from_schema(
            target.schema, fields=[field], custom_scalars=CUSTOM_SCALARS, mode=mode
        ),
        label="query",
    )
    role = data.draw(st.sampled_from(ROLES), label="role")

    response = await target.api.client.post(
        "/graphql",
        json={"query": query},
        headers={"Authorization": f"Bearer {target.api.tokens[role]}"},
    )

    assert response.status_code == 200, response.text
    unexpected = [
        error
        for error in response.json().get("errors", [])
        if "reference" in (error.get("extensions") or {})
        or error["message"].startswith("Unexpected error")
    ]
    assert unexpected == []
