"""GraphiQL in a real browser, as the README's tour uses it.

``ordergraph serve --demo`` runs in a process of its own; Debian's Chromium, driven by
Playwright, opens /graphql, gets the token typed into the Headers pane, runs queries and a
subscription, and every request it makes is recorded: none may leave this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
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


async def run(page: Page, document: str, *, at_once: bool = False) -> None:
    """Paste ``document`` into the query editor and run it; ``at_once``: before GraphiQL
    has parsed the pasted text, as a quick Ctrl-V Ctrl-Enter does."""
    await page.locator(QUERY_EDITOR).click()
    await page.keyboard.press("Control+a")
    await page.keyboard.insert_text(document)
    if not at_once:
        await page.wait_for_function(
            """selector => {
                const editor = document.querySelector(selector).CodeMirror;
                return editor.documentAST?.loc?.source.body === editor.getValue();
            }""",
            arg=QUERY_EDITOR,
        )
    await page.locator(".graphiql-execute-button").click()


async def headers_shown(page: Page) -> str:
    return await page.locator(HEADERS_EDITOR).evaluate("editor => editor.CodeMirror.getValue()")


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
        "data": {"me": {"role": "ADMIN"}, "orders": {"totalCount": len(demo.ORDERS)}}
    }

    assert_all_local(browser.requested)
    own_files = {urlsplit(url).path for url in browser.requested}
    assert {f"/graphiql/{name}" for name in ("graphiql.min.js", "graphiql.min.css")} <= own_files


async def shown_stream(page: Page) -> dict:
    """What the result pane shows of a subscription: how many results arrived, and the
    latest ones, newest first."""
    text = await page.locator(RESULT).evaluate("editor => editor.CodeMirror.getValue()")
    return json.loads(text) if text.strip() else {"received": 0, "newestFirst": []}


def submitted_orders(stream: dict) -> list[str]:
    """The ids of the orders whose ``submitted`` event the stream shows, newest first."""
    events = [result["data"]["orderEvents"] for result in stream["newestFirst"]]
    return [event["orderId"] for event in events if event["type"] == "submitted"]


async def test_graphiql_streams_a_subscription_over_websockets(
    demo_server: DemoServer, browser: Browser
) -> None:
    page = browser.page
    await open_with_token(page, demo_server, demo_server.tokens["admin"])
    await run(page, "subscription Watch { orderEvents { orderId type } }", at_once=True)

    # The subscription is live once an event arrives; submit orders until the pane shows
    # the events of two of them.
    submitted: list[str] = []
    headers = {"Authorization": f"Bearer {demo_server.tokens['admin']}"}
    async with httpx.AsyncClient(base_url=demo_server.url, headers=headers, timeout=30) as client:
        async with asyncio.timeout(BROWSER_TIMEOUT_MS / 1000):
            while len(submitted_orders(await shown_stream(page))) < 2:
                response = await client.post(
                    "/graphql",
                    json={"query": SUBMIT, "variables": {"externalId": f"PAGE-{len(submitted)}"}},
                )
                submitted.append(response.json()["data"]["submitOrder"]["order"]["id"])
                with contextlib.suppress(AssertionError):
                    await expect(page.locator(RESULT)).to_contain_text(
                        f'"{submitted[-1]}"', timeout=1_000
                    )

    stream = await shown_stream(page)
    assert stream["received"] == len(stream["newestFirst"]) >= 2
    shown = submitted_orders(stream)
    assert shown == [order for order in reversed(submitted) if order in shown]
    assert_all_local(browser.requested)
    assert f"ws://127.0.0.1:{urlsplit(demo_server.url).port}/graphql" in browser.requested


async def test_graphiql_says_why_a_subscription_without_a_token_is_refused(
    demo_server: DemoServer, browser: Browser
) -> None:
    page = browser.page
    await page.goto(demo_server.url + "/graphql")
    await run(page, "subscription Watch { orderEvents { orderId type } }")

    # Shown at once, not after the websocket client's retries (half a minute and more).
    await expect(page.locator(RESULT)).to_contain_text("UNAUTHENTICATED", timeout=5_000)
    [result] = (await shown_stream(page))["newestFirst"]
    [error] = result["errors"]
    assert error["message"].startswith('Authentication required: send {"Authorization"')
    assert f"ws://127.0.0.1:{urlsplit(demo_server.url).port}/graphql" in browser.requested


async def test_a_new_tab_keeps_the_headers(demo_server: DemoServer, browser: Browser) -> None:
    page = browser.page
    await open_with_token(page, demo_server, demo_server.tokens["customer"])
    typed = await headers_shown(page)
    assert demo_server.tokens["customer"] in typed

    # A tab of GraphiQL's own...
    await page.get_by_role("button", name="Add tab").click()
    await expect(page.locator(".graphiql-tab")).to_have_count(2)
    assert await headers_shown(page) == typed
    await run(page, "{ me { role } }")
    assert await shown_result(page) == {"data": {"me": {"role": "CUSTOMER"}}}

    # ...and a new browser tab, once GraphiQL has stored what was typed.
    await page.wait_for_function(
        "token => (localStorage.getItem('graphiql:tabState') ?? '').includes(token)",
        arg=demo_server.tokens["customer"],
    )
    second = await page.context.new_page()
    await second.goto(demo_server.url + "/graphql")
    await expect(second.locator(HEADERS_EDITOR)).to_contain_text(demo_server.tokens["customer"])
    await run(second, "{ me { role } }")
    assert await shown_result(second) == {"data": {"me": {"role": "CUSTOMER"}}}


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
    assert query == {"data": {"me": {"role": "ADMIN"}}}


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
