"""The community's own checks, run with Node against the real app served by uvicorn:
graphql-http's GraphQL over HTTP audit and graphql-ws's client. Their npm packages are
pinned in tests/conformance (package-lock.json); `make test` installs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Api, over_http, submit
from test_subscriptions import TRANSITION, customer_id, probe_event

CONFORMANCE = Path(__file__).resolve().parent / "conformance"
# Generous for a slow, shared machine: the audit takes a few seconds.
NODE_TIMEOUT_SECONDS = 120


@contextlib.asynccontextmanager
async def node(script: str, *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``node`` running one of tests/conformance's scripts; killed if the test ends first."""
    if not (CONFORMANCE / "node_modules" / ".package-lock.json").exists():
        pytest.fail("tests/conformance/node_modules is missing: `make test` installs it (npm ci)")
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(CONFORMANCE / script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_the_graphql_over_http_audit_passes(api: Api) -> None:
    async with over_http(api) as base, node("http-audit.mjs", f"{base}/graphql") as proc:
        out, err = await asyncio.wait_for(proc.communicate(), NODE_TIMEOUT_SECONDS)
    assert proc.returncode == 0, err.decode()

    results = [json.loads(line) for line in out.decode().splitlines()]
    failed = [r for r in results if r["status"] != "ok"]
    report = "\n".join(f"{r['id']} {r['status']} {r['name']}: {r['reason']}" for r in failed)
    print(f"graphql-http audit: {len(results) - len(failed)} of {len(results)} pass\n{report}")
    assert len(results) >= 61, out.decode()
    assert [r for r in failed if r["name"].startswith(("MUST", "SHOULD"))] == [], report


async def read_line(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), NODE_TIMEOUT_SECONDS)
    assert line, (await proc.stderr.read()).decode() if proc.stderr else "node ended"
    return json.loads(line)


async def test_graphql_ws_clients_get_errors_they_can_report_and_live_events(api: Api) -> None:
    order = await submit(api)
    probe = probe_event(order["databaseId"], await customer_id("ada@example.com"))
    async with over_http(api) as base:
        url = base.replace("http", "ws", 1) + "/graphql"
        async with node("graphql-ws-client.mjs", url, api.tokens["ada"], order["id"]) as proc:
            refused = (await read_line(proc))["refused"]
            unauthenticated = (await read_line(proc))["unauthenticated"]
            # Probes until the client's subscription delivers: from then on nothing is missed.
            live = asyncio.ensure_future(read_line(proc))
            async with asyncio.timeout(NODE_TIMEOUT_SECONDS):
                while not live.done():
                    await api.rt.bus.publish(probe)
                    await asyncio.wait({live}, timeout=0.1)
            assert live.result() == {"live": True}
            for transition in ("start_review", "hold", "approve"):
                body = await api.data(TRANSITION, {"id": order["id"], "t": transition}, as_="staff")
                assert body["transitionOrder"]["errors"] == []
            events = (await read_line(proc))["events"]
            await asyncio.wait_for(proc.wait(), NODE_TIMEOUT_SECONDS)

    # The client reports each refusal as an error with its code, not as a normal end.
    assert [(r["ended"], [e["code"] for e in r["errors"]]) for r in refused] == [
        ("error", ["GRAPHQL_PARSE_FAILED"]),
        ("error", ["GRAPHQL_VALIDATION_FAILED"]),
        ("error", ["OPERATION_RESOLUTION_FAILURE"]),
    ]
    # Without a token the connection is acknowledged and the operation told why it fails.
    assert unauthenticated["ended"] == "complete"
    [result] = unauthenticated["results"]
    assert [e["extensions"]["code"] for e in result["errors"]] == ["UNAUTHENTICATED"]
    assert events == [
        {"type": "transition", "fromStatus": "RECEIVED", "toStatus": "IN_REVIEW"},
        {"type": "transition", "fromStatus": "IN_REVIEW", "toStatus": "ON_HOLD"},
        {"type": "transition", "fromStatus": "ON_HOLD", "toStatus": "APPROVED"},
    ]
    assert proc.returncode == 0
