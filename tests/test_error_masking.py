"""Production hides the service's failures, never the client's mistakes.

A mistake in a request (an unknown field, a wrong argument type, too many aliases)
comes back with its real message in production. An unexpected failure comes back as
"Unexpected error" with a short reference, which the server log shows beside the
traceback; in development the reference is there too, with the real message.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import strawberry
from conftest import Api, make_settings, serve_api

import plugins.channels.web
from ordergraph.graphql.schema import MAX_ALIASES
from ordergraph.plugin_api import PluginInfo, SchemaExtension, hookimpl

SECRET = "connection to 10.0.0.7 refused"


class DriverError(Exception):
    """Like some database drivers' errors: a ``message`` attribute that is None."""

    message = None


@strawberry.type
class FaultyQuery:
    @strawberry.field
    def explode(self) -> int | None:
        raise RuntimeError(SECRET)

    @strawberry.field
    def driver_failure(self) -> int | None:
        raise DriverError(SECRET)


class FaultyPlugin:
    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(category="other", description="Fails.", enabled_by_default=True)

    @hookimpl
    def graphql_schema(self) -> SchemaExtension:
        return SchemaExtension(query=(FaultyQuery,))


@pytest.fixture(params=[True, False], ids=["production", "development"])
async def faulty_api(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Api]:
    settings = make_settings(database_url, production=request.param)
    installed = {"web": plugins.channels.web, "faulty": FaultyPlugin()}
    async with serve_api(settings, installed_plugins=installed) as served:
        yield served


def _aliases(count: int) -> str:
    return "{ " + " ".join(f"a{i}: me {{ role }}" for i in range(count)) + " }"


CLIENT_MISTAKES = [
    ("{ nope }", None, "Cannot query field 'nope' on type 'Query'."),
    ('{ orders(first: "ten") { totalCount } }', None, "Int cannot represent non-integer value"),
    ("{ orders(first: 2147483648) { totalCount } }", None, "non 32-bit signed integer"),
    (
        "query($n: Int) { orders(first: $n) { totalCount } }",
        {"n": "ten"},
        "Variable '$n' has invalid value",
    ),
    (
        "query($p: Decimal!) { __typename } ",
        {"p": "twelve"},
        "Variable '$p'",
    ),
    (_aliases(MAX_ALIASES + 1), None, "aliases found"),
    (
        "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
        None,
        "Cannot spread fragment 'A' within itself via 'B'.",
    ),
    ("{ " + "me { role } " * 700 + "}", None, "more than 2000 tokens"),
]


async def test_client_mistakes_keep_their_message_in_production(database_url: str) -> None:
    async with serve_api(make_settings(database_url, production=True)) as api:
        for query, variables, message in CLIENT_MISTAKES:
            body = await api.gql(query, variables)

            messages = [e["message"] for e in body["errors"]]
            assert any(message in m for m in messages), (query[:60], messages)
            assert not any("reference" in e.get("extensions", {}) for e in body["errors"])


async def test_an_unexpected_failure_has_a_reference_the_log_shows(
    faulty_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    production = faulty_api.rt.settings.production
    for field, cause in [("explode", "RuntimeError"), ("driverFailure", "DriverError")]:
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="ordergraph.graphql.schema"):
            body = await faulty_api.gql(f"{{ me {{ role }} {field} }}")

        [error] = body["errors"]
        reference = error["extensions"]["reference"]
        assert error["extensions"]["code"] == "INTERNAL_ERROR"
        assert body["data"] == {"me": {"role": "ADMIN"}, field: None}
        if production:
            assert error["message"] == f"Unexpected error (reference {reference})."
            assert SECRET not in str(body)
        else:
            assert error["message"] == f"{cause}: {SECRET}"
        [record] = [r for r in caplog.records if reference in r.getMessage()]
        assert record.exc_info is not None
        assert record.exc_info[0].__name__ == cause
        assert SECRET in record.getMessage()


async def test_two_failures_get_two_references(faulty_api: Api) -> None:
    body: dict[str, Any] = await faulty_api.gql("{ a: explode b: explode }")
    references = {e["extensions"]["reference"] for e in body["errors"]}
    assert len(references) == 2


RECORD_PAYMENT = """
mutation Pay($input: RecordPaymentInput!) {
  recordPayment(input: $input) { created errors { code } }
}
"""


async def test_a_value_only_the_database_refuses_is_an_answer_not_a_fault(
    database_url: str,
) -> None:
    """The checks before the database are the first line; a value one of them misses
    (here a NUL in a payment's reference, which PostgreSQL cannot store) is still the
    client's mistake: answered with its code, not masked, and nothing is stored."""
    settings = make_settings(database_url, production=True)
    async with serve_api(settings) as api:
        body = await api.gql(
            RECORD_PAYMENT,
            {
                "input": {
                    "statementNumber": "ST-2026-000001\u0000",
                    "kind": "CAPTURED",
                    "amount": "1.00",
                    "method": "bank_transfer",
                    "idempotencyKey": "k\u0000",
                    "reference": "r\u0000",
                }
            },
        )
    payload = (body.get("data") or {}).get("recordPayment") or {}
    codes = [e["extensions"]["code"] for e in body.get("errors", [])]
    codes += [e["code"] for e in payload.get("errors", [])]
    assert "INTERNAL_ERROR" not in codes, body
