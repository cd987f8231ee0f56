"""GraphQL over HTTP as a client library meets it: every answer is a GraphQL response in
JSON with a stable code, in the media type the client asked for, with the spec's status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from conftest import SUBMIT, Api, free_port, make_settings, order_input, over_http, serve_api
from playwright.async_api import async_playwright
from test_graphiql import BROWSER_TIMEOUT_MS, CHROMIUM, CHROMIUM_ARGS

JSON = "application/json"
GRAPHQL_JSON = "application/graphql-response+json"
SHOP = "https://shop.example.com"


@dataclass
class Malformed:
    """A request that is not one this service runs, and how it must be answered."""

    name: str
    method: str
    code: str
    status: int
    content: bytes | None = None
    params: dict[str, str] = field(default_factory=dict)
    content_type: str | None = JSON
    allow: str | None = None


MALFORMED = [
    Malformed("not JSON", "POST", "BAD_REQUEST", 400, b'{"query": '),
    Malformed("a JSON string", "POST", "BAD_REQUEST", 400, b'"{ me { role } }"'),
    Malformed("no query", "POST", "BAD_REQUEST", 400, b'{"variables": {}}'),
    Malformed("an empty query", "POST", "BAD_REQUEST", 400, b'{"query": ""}'),
    Malformed("a query that is a number", "POST", "BAD_REQUEST", 400, b'{"query": 1}'),
    Malformed("variables in a list", "POST", "BAD_REQUEST", 400,
              b'{"query": "{ me { role } }", "variables": []}'),
    Malformed("an operationName that is a number", "POST", "BAD_REQUEST", 400,
              b'{"query": "{ me { role } }", "operationName": 1}'),
    Malformed("variables in a GET that are not JSON", "GET", "BAD_REQUEST", 400,
              params={"query": "{ me { role } }", "variables": "{"}),
    Malformed("a GET without a query", "GET", "BAD_REQUEST", 400),
    Malformed("a batch", "POST", "BATCHING_NOT_SUPPORTED", 400,
              b'[{"query": "{ me { role } }"}, {"query": "{ __typename }"}]'),
    Malformed("an application/graphql body", "POST", "UNSUPPORTED_MEDIA_TYPE", 415,
              b"{ me { role } }", content_type="application/graphql"),
    Malformed("a form", "POST", "UNSUPPORTED_MEDIA_TYPE", 415, b"query=%7B%7D",
              content_type="application/x-www-form-urlencoded"),
    Malformed("no content type", "POST", "UNSUPPORTED_MEDIA_TYPE", 415,
              b'{"query": "{ me { role } }"}', content_type=None),
    Malformed("a mutation over GET", "GET", "METHOD_NOT_ALLOWED", 405,
              params={"query": "mutation { cancelOrder(id: 1) { errors { code } } }"},
              allow="POST"),
    Malformed("PUT", "PUT", "METHOD_NOT_ALLOWED", 405, b'{"query": "{ me { role } }"}',
              allow="GET, POST"),
    Malformed("DELETE", "DELETE", "METHOD_NOT_ALLOWED", 405, allow="GET, POST"),
]  # fmt: skip


async def send(api: Api, case: Malformed, accept: str) -> httpx.Response:
    headers = {"Accept": accept, "Authorization": f"Bearer {api.tokens['admin']}"}
    if case.content_type:
        headers["Content-Type"] = case.content_type
    return await api.client.request(
        case.method, "/graphql", content=case.content, params=case.params, headers=headers
    )


async def test_a_malformed_request_is_answered_with_a_graphql_error_and_its_code(api: Api):
    for accept in (JSON, GRAPHQL_JSON):
        for case in MALFORMED:
            response = await send(api, case, accept)

            seen = (case.name, accept, response.status_code, response.text)
            assert response.status_code == case.status, seen
            assert response.headers["content-type"] == accept, seen
            body = response.json()
            assert list(body) == ["errors"], seen
            [error] = body["errors"]
            assert error["extensions"]["code"] == case.code, seen
            assert error["message"], seen
            assert response.headers.get("allow") == case.allow, seen


async def test_a_mutation_sent_with_get_does_not_run(api: Api):
    refused = await api.client.get(
        "/graphql",
        params={"query": SUBMIT, "variables": json.dumps({"input": order_input()})},
        headers={"Authorization": f"Bearer {api.tokens['admin']}"},
    )
    assert refused.status_code == 405
    assert await api.data("{ orders { totalCount } }") == {"orders": {"totalCount": 0}}


TWO_OPERATIONS = """
mutation Submit($input: SubmitOrderInput!) {
  submitOrder(input: $input) { order { number } errors { code } }
}
query Count { orders { totalCount } }
"""


async def test_a_document_of_two_operations_runs_the_one_named_and_refuses_to_guess(api: Api):
    async def post(**request: Any) -> dict[str, Any]:
        response = await api.client.post(
            "/graphql",
            json={"query": TWO_OPERATIONS, "variables": {"input": order_input()}, **request},
            headers={"Authorization": f"Bearer {api.tokens['admin']}"},
        )
        assert response.status_code == 200, response.text
        return response.json()

    unnamed = await post()
    count = await post(operationName="Count")
    unknown = await post(operationName="Cancel")

    # Without a name the first operation, a mutation, used to run.
    assert list(unnamed) == ["errors"]
    [error] = unnamed["errors"]
    assert error["extensions"]["code"] == "OPERATION_RESOLUTION_FAILURE"
    assert "send operationName" in error["message"] and "(Submit, Count)" in error["message"]
    assert count == {"data": {"orders": {"totalCount": 0}}}
    assert unknown == {
        "errors": [
            {
                "message": 'Unknown operation named "Cancel".',
                "extensions": {"code": "OPERATION_RESOLUTION_FAILURE"},
            }
        ]
    }


# A document or variables refused before any field runs, with its code and message.
REQUEST_ERRORS = [
    ("{ me { role }", None, "GRAPHQL_PARSE_FAILED", "Syntax Error"),
    ("{ " + "me { role } " * 700 + "}", None, "GRAPHQL_PARSE_FAILED", "more than 2000 tokens"),
    ("{ nope }", None, "GRAPHQL_VALIDATION_FAILED", "Cannot query field 'nope'"),
    ("{ " + " ".join(f"a{i}: me {{ role }}" for i in range(31)) + " }", None,
     "GRAPHQL_VALIDATION_FAILED", "aliases found"),
    ("query($n: Int) { orders(first: $n) { totalCount } }", {"n": "ten"}, "BAD_USER_INPUT",
     "Variable '$n' has invalid value"),
    (SUBMIT, {"input": {"externalId": "EXT-1"}}, "BAD_USER_INPUT",
     "Variable '$input' has invalid value"),
    ("query($n: Int!) { orders(first: $n) { totalCount } }", {}, "BAD_USER_INPUT",
     "Variable '$n' has invalid value"),
]  # fmt: skip


@pytest.fixture(params=[False, True], ids=["development", "production"])
async def any_env_api(request: pytest.FixtureRequest, database_url: str):
    async with serve_api(make_settings(database_url, production=request.param)) as served:
        yield served


async def test_request_errors_have_a_code_no_data_and_the_status_of_the_media_type_asked_for(
    any_env_api: Api,
):
    api = any_env_api
    for query, variables, code, message in REQUEST_ERRORS:
        for accept, status in [(JSON, 200), (GRAPHQL_JSON, 400), (None, 200), ("*/*", 200)]:
            headers = {"Authorization": f"Bearer {api.tokens['admin']}"}
            if accept:
                headers["Accept"] = accept
            response = await api.client.post(
                "/graphql", json={"query": query, "variables": variables}, headers=headers
            )

            seen = (query[:40], accept, response.status_code, response.text[:300])
            assert response.status_code == status, seen
            assert response.headers["content-type"] == (accept if accept == GRAPHQL_JSON else JSON)
            body = response.json()
            assert list(body) == ["errors"], seen
            assert {e["extensions"]["code"] for e in body["errors"]} == {code}, seen
            assert any(message in e["message"] for e in body["errors"]), seen


async def test_a_field_error_keeps_data_and_status_200_in_either_media_type(api: Api):
    for accept in (JSON, GRAPHQL_JSON):
        response = await api.client.post(
            "/graphql",
            json={"query": "{ me { role } orders { totalCount } }"},
            headers={"Accept": accept},
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == accept
        body = response.json()
        assert body["data"] is None
        assert {e["extensions"]["code"] for e in body["errors"]} == {"UNAUTHENTICATED"}


@pytest.mark.parametrize(
    ("accept", "answered"),
    [
        ("application/graphql-response+json, application/json;q=0.9", GRAPHQL_JSON),
        ("application/json, application/graphql-response+json", GRAPHQL_JSON),
        ("application/json, application/graphql-response+json;q=0.5", JSON),
        ("application/graphql-response+json;q=0", JSON),
        ("text/html, */*;q=0.8", JSON),
        ("application/*", JSON),
    ],
)
async def test_the_answer_is_in_the_media_type_the_client_ranks_highest(
    api: Api, accept: str, answered: str
):
    response = await api.client.post(
        "/graphql",
        json={"query": "{ me { role } }"},
        headers={"Accept": accept, "Authorization": f"Bearer {api.tokens['staff']}"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == answered
    assert response.json() == {"data": {"me": {"role": "STAFF"}}}


# -- CORS -------------------------------------------------------------------------------------


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


@pytest.fixture
async def storefront_api(database_url: str):
    """The app with a storefront on another site among its allowed browser origins."""
    settings = make_settings(database_url, allowed_origins=(SHOP,))
    async with serve_api(settings) as served:
        yield served


async def test_a_storefront_on_an_allowed_origin_passes_the_preflight_and_reads_the_answer(
    storefront_api: Api,
):
    api = storefront_api
    preflight = await api.client.options(
        "/graphql",
        headers={
            "Origin": SHOP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, accept",
        },
    )
    answer = await api.client.post(
        "/graphql",
        json={"query": "{ me { role } }"},
        headers={"Origin": SHOP, "Authorization": f"Bearer {api.tokens['ada']}"},
    )

    assert preflight.status_code == 200
    allowed = cors_headers(preflight)
    assert allowed["access-control-allow-origin"] == SHOP
    assert set(allowed["access-control-allow-methods"].split(", ")) == {"GET", "POST"}
    assert {"authorization", "content-type", "accept"} <= {
        h.strip().lower() for h in allowed["access-control-allow-headers"].split(",")
    }
    # The API takes a bearer token, never a cookie: browsers send none.
    assert "access-control-allow-credentials" not in allowed
    assert answer.json() == {"data": {"me": {"role": "CUSTOMER"}}}
    assert cors_headers(answer) == {"access-control-allow-origin": SHOP}
    assert "Origin" in answer.headers["vary"]


async def test_another_origin_gets_no_cors_header_and_other_routes_none_at_all(
    storefront_api: Api,
):
    api = storefront_api
    elsewhere = "https://evil.example.com"
    preflight = await api.client.options(
        "/graphql",
        headers={"Origin": elsewhere, "Access-Control-Request-Method": "POST"},
    )
    answer = await api.client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Origin": elsewhere}
    )
    health = await api.client.get("/health", headers={"Origin": SHOP})
    health_preflight = await api.client.options(
        "/health", headers={"Origin": SHOP, "Access-Control-Request-Method": "GET"}
    )

    assert preflight.status_code == 400
    assert cors_headers(preflight) == {}
    assert cors_headers(answer) == {}
    assert cors_headers(health) == {}
    assert cors_headers(health_preflight) == {}


async def test_any_origin_when_the_list_is_a_star(database_url: str):
    async with serve_api(make_settings(database_url, allowed_origins=("*",))) as api:
        preflight = await api.client.options(
            "/graphql",
            headers={"Origin": "https://anywhere.example", "Access-Control-Request-Method": "POST"},
        )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in preflight.headers


# What a storefront's script does: fetch with the customer's token, read the answer.
STOREFRONT_FETCH = """
async ([url, token]) => {
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: {"Content-Type": "application/json", "Authorization": `Bearer ${token}`},
      body: JSON.stringify({query: "{ me { role } }"}),
    });
    return await response.json();
  } catch (error) {
    return {blocked: String(error)};
  }
}
"""


async def test_a_storefront_page_in_a_browser_calls_the_api_only_from_an_allowed_origin(
    database_url: str,
):
    """Chromium enforces CORS: a page at http://localhost:PORT is another origin than the
    API at http://127.0.0.1:PORT (the same server), and only the listed one may read."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    port = free_port()
    storefront = f"http://localhost:{port}"
    settings = make_settings(database_url, allowed_origins=(storefront,))
    async with serve_api(settings) as api, over_http(api, port), async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await chromium.new_page()
            page.set_default_timeout(BROWSER_TIMEOUT_MS)
            token = api.tokens["ada"]
            await page.goto(f"{storefront}/health")
            allowed = await page.evaluate(
                STOREFRONT_FETCH, [f"http://127.0.0.1:{port}/graphql", token]
            )
            await page.goto(f"http://127.0.0.1:{port}/health")
            elsewhere = await page.evaluate(STOREFRONT_FETCH, [f"{storefront}/graphql", token])
        finally:
            await chromium.close()

    assert allowed == {"data": {"me": {"role": "CUSTOMER"}}}
    assert "Failed to fetch" in elsewhere["blocked"]
