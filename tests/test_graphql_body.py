"""A GraphQL request body is read only up to ``[ordergraph] max_graphql_body_bytes``."""

from __future__ import annotations

import json

from conftest import Streamed, make_settings, serve_api

LIMIT = 4_000
QUERY = "{ me { role } }"


def padded(size: int) -> bytes:
    """A valid GraphQL request of ``size`` bytes: the query, padded with a variable."""
    base = json.dumps({"query": QUERY, "variables": {"pad": ""}})
    return json.dumps({"query": QUERY, "variables": {"pad": "x" * (size - len(base))}}).encode()


async def test_a_body_over_the_cap_is_refused_before_it_is_read_whole(database_url: str) -> None:
    settings = make_settings(database_url, max_graphql_body_bytes=LIMIT)
    async with serve_api(settings) as api:
        headers = {
            "Authorization": f"Bearer {api.tokens['admin']}",
            "Content-Type": "application/json",
        }
        ok = await api.client.post("/graphql", content=padded(LIMIT), headers=headers)
        streamed = Streamed(padded(50 * LIMIT), chunk=1_000)
        refused = await api.client.post("/graphql", content=streamed, headers=headers)
        announced = await api.client.post("/graphql", content=padded(2 * LIMIT), headers=headers)

    assert ok.status_code == 200, ok.text
    assert ok.json() == {"data": {"me": {"role": "ADMIN"}}}
    assert refused.status_code == 413
    assert refused.json()["errors"][0]["extensions"]["code"] == "TOO_LARGE"
    assert streamed.pulled <= LIMIT + 1_000
    assert announced.status_code == 413
