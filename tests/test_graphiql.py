"""GraphiQL in a real browser, as the README's tour uses it.

``ordergraph serve --demo`` runs in a process of its own; Debian's Chromium, driven by
Playwright, opens /graphql, gets the token typed into the Headers pane, runs queries and a
subscription, and every request it makes is recorded: none may leave this machine.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import Api, make_settings, serve_api
from playwright.async_api import Page, async_playwright, expect
from test_cli import (
    DEMO_START_TIMEOUT,
    ORDERGRAPH,
    clean_env,
    free_port,
    printed_tokens,
    read_until_ready,
)

from ordergraph import demo
from ordergraph.web import graphiql

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Generous for a slow, shared machine; a passing run takes a fraction of it.
BROWSER_TIMEOUT_MS = 30_000

QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
HEADERS_EDITOR = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
RESULT = ".result-window .CodeMirror"

SUBMIT = """
mutation Submit($externalId: String!) {
  submitOrder(input: {
    externalId: $externalId
    customerEmail: "ada@example.com"
    lines: [{sku: "MUG-001", quantity: 1}]
    shippingAddress: {name: "Ada Lovelace", line1: "12 St James's Square",
                      city: "London", postalCode: "SW1Y 4JH", country: "GB"}
  }) {
    order { id }
    errors { code }
  }
}
"""


@dataclass
class DemoServer:
    url: str
    tokens: dict[str, str]


@pytest.fixture
async def demo_server(database_url: str, tmp_path: Path) -> AsyncIterator[DemoServer]:
    """``ordergraph serve --demo`` on a free port, with the tokens it printed."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        ORDERGRAPH,
        *("serve", "--demo", "--port", str(port)),
        cwd=tmp_path,
        env=clean_env(DATABASE_URL=database_url, PYTHONUNBUFFERED="1"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        output = await read_until_ready(proc.stdout, time.monotonic() + DEMO_START_TIMEOUT)
        yield DemoServer(url=f"http://127.0.0.1:{port}", tokens=printed_tokens(output))
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@dataclass
class Browser:
    page: Page
    requested: list[str] = field(default_factory=list)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A page in headless Chromium that records the URL of every request and websocket."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            context = await chromium.new_context(viewport={"width": 1280, "height": 800})
            context.set_default_timeout(BROWSER_TIMEOUT_MS)
            page = await context.new_page()
            recorded = Browser(page)
            context.on("request", lambda request: recorded.requested.append(request.url))
            page.on("websocket", lambda ws: recorded.requested.append(ws.url))
            yield recorded
        finally:
            await chromium.close()


async def open_with_token(page: Page, demo_server: DemoServer, token: str) -> None:
    """Open GraphiQL and type the header into its Headers pane, as the tour says."""
    await page.goto(demo_server.url + "/graphql")
    await page.locator(HEADERS_EDITOR).click()
    await page.keyboard.type(json.dumps({"Authorization": f"Bearer {token}"}))


async def run(page: Page, document: str) -> None:
    await page.locator(QUERY_EDITOR).click()
    await page.keyboard.press("Control+a")
    await page.keyboard.insert_text(document)
    # GraphiQL parses the editor's text shortly after a change (to tell a subscription
    # from a query); run once it has parsed this text, as a person typing always does.
    await page.wait_for_function(
        """selector => {
            const editor = document.querySelector(selector).CodeMirror;
            return editor.documentAST?.loc?.source.body === editor.getValue();
        }""",
        arg=QUERY_EDITOR,
    )
    await page.locator(".graphiql-execute-button").click()


async def shown_result(page: Page) -> dict:
    """What the result pane shows, read from its editor."""
    await expect(page.locator(RESULT)).to_contain_text('"data"')
    text = await page.locator(RESULT).evaluate("editor => editor.CodeMirror.getValue()")
    return json.loads(text)


def assert_all_local(requested: list[str]) -> None:
    assert requested, "the page made no request at all"
    elsewhere = [url for url in requested if urlsplit(url).hostname != "127.0.0.1"]
    assert elsewhere == [], f"the page reached beyond this machine: {elsewhere}"


async def test_graphiql_runs_queries_with_the_token_from_the_headers_pane(
    demo_server: DemoServer, browser: Browser
) -> None:
    page = browser.page
    await open_with_token(page, demo_server, demo_server.tokens["admin"])

    await run(page, "{ me { role } orders(first: 5) { totalCount } }")
    assert await shown_result(page) == {
        "data": {"me": {"role": "admin"}, "orders": {"totalCount": len(demo.ORDERS)}}
    }

    assert_all_local(browser.requested)
    own_files = {urlsplit(url).path for url in browser.requested}
    assert {f"/graphiql/{name}" for name in ("graphiql.min.js", "graphiql.min.css")} <= own_files


async def test_graphiql_streams_a_subscription_over_websockets(
    demo_server: DemoServer, browser: Browser
) -> None:
    page = browser.page
    await open_with_token(page, demo_server, demo_server.tokens["admin"])
    await run(page, "subscription Watch { orderEvents { orderId type } }")

    # The subscription is live once an event arrives; until then, submit another order.
    submitted: list[str] = []
    result = page.locator(RESULT)
    headers = {"Authorization": f"Bearer {demo_server.tokens['admin']}"}
    async with httpx.AsyncClient(base_url=demo_server.url, headers=headers, timeout=30) as client:
        async with asyncio.timeout(BROWSER_TIMEOUT_MS / 1000):
            while True:
                response = await client.post(
                    "/graphql",
                    json={"query": SUBMIT, "variables": {"externalId": f"PAGE-{len(submitted)}"}},
                )
                submitted.append(response.json()["data"]["submitOrder"]["order"]["id"])
                try:
                    await expect(result).to_contain_text('"orderId"', timeout=1_000)
                    break
                except AssertionError:
                    continue

    event = (await shown_result(page))["data"]["orderEvents"]
    assert event["orderId"] in submitted
    assert_all_local(browser.requested)
    assert f"ws://127.0.0.1:{urlsplit(demo_server.url).port}/graphql" in browser.requested


async def test_without_its_files_graphiql_says_how_to_install_them(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graphiql, "NODE_MODULES", tmp_path / "node_modules")
    async with serve_api(make_settings(database_url)) as api:
        page = await api.client.get("/graphql", headers={"Accept": "text/html"})
        asset = await api.client.get("/graphiql/graphiql.min.js")
    assert page.status_code == asset.status_code == 503
    assert "GraphiQL&#x27;s files are not installed" in page.text
    assert "make install" in page.text
    assert "npm ci" in asset.text


async def test_production_serves_no_graphiql(database_url: str) -> None:
    async with serve_api(make_settings(database_url, production=True)) as api:
        page = await api.client.get("/graphql", headers={"Accept": "text/html"})
        asset = await api.client.get("/graphiql/graphiql.min.js")
        query = await api.gql("{ me { role } }")
    assert (page.status_code, asset.status_code) == (404, 404)
    assert query == {"data": {"me": {"role": "admin"}}}


async def test_the_page_loads_only_files_the_service_serves(api: Api) -> None:
    page = await api.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert loaded == [
        "data:,",
        "graphiql/graphiql.min.css",
        "graphiql/react.production.min.js",
        "graphiql/react-dom.production.min.js",
        "graphiql/graphiql.min.js",
    ]
    for path in loaded[1:]:
        response = await api.client.get("/" + path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(("text/css", "text/javascript"))
    assert (await api.client.get("/graphiql/package.json")).status_code == 404
