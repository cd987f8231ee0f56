"""The customer's /track page in Debian's chromium, on a phone-sized screen.

The app is served over a real socket (uvicorn) in the test's own event loop, so the
test ingests tracking events into the same service the browser watches.
"""

from __future__ import annotations

import contextlib
import datetime
import html
import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from conftest import Api, over_http
from playwright.async_api import Browser, Page, async_playwright, expect
from test_graphiql import BROWSER_TIMEOUT_MS, CHROMIUM, CHROMIUM_ARGS
from test_settlement import delivered, read, sent, shop

from ordergraph.core.limits import LOOKUPS_PER_ORDER
from ordergraph.core.orders import load_order
from ordergraph.stages.settlement import config_of
from ordergraph.stages.settlement.links import confirmation_token
from ordergraph.stages.tracking import updates

PHONE = {"width": 390, "height": 844}
BERLIN = datetime.timezone(datetime.timedelta(hours=1))
LEIPZIG = updates.Location("Leipzig", "SN", "04109", "DE")
# One long word, as carriers write hub names: it must wrap, not widen the page.
HUB = "Paketzentrum Leipzig (LEJRADEFELDNORDUMSCHLAGBASIS04435SCHKEUDITZ)"


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def phone(browser: Browser, *, javascript: bool) -> AsyncIterator[Page]:
    context = await browser.new_context(
        viewport=PHONE, is_mobile=True, has_touch=True, java_script_enabled=javascript
    )
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def scan(api: Api, order_id: int, *events: updates.TrackingEvent) -> None:
    shipment = await updates.find_shipment(f"T-{(await load_order(order_id)).external_id}")
    assert shipment is not None
    await updates.ingest(api.rt, shipment["id"], updates.TrackingUpdate(list(events)))


def at(day: int, hour: int) -> datetime.datetime:
    return datetime.datetime(2024, 5, day, hour, 0, tzinfo=BERLIN)


async def look_up(page: Page, base: str, number: str, **asked: str) -> None:
    """Fill the form and send it, as a customer does."""
    await page.goto(f"{base}/track")
    await page.get_by_label("Order number").fill(number)
    if "email" in asked:
        await page.get_by_label("E-mail").fill(asked["email"])
    if "postal_code" in asked:
        await page.get_by_label("or delivery postal code").fill(asked["postal_code"])
    await page.get_by_role("button", name="Track").click()


async def fits_the_screen(page: Page) -> bool:
    return await page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


async def test_without_javascript_the_customer_tracks_confirms_and_gets_the_statement(
    database_url: str, chromium: Browser
) -> None:
    async with shop(database_url) as api, over_http(api) as base:
        order_id = await sent(api, "PHONE-1", [{"sku": "MUG", "quantity": 1}])
        number = (await load_order(order_id)).number
        await scan(
            api,
            order_id,
            updates.TrackingEvent(at(2, 9), "in_transit", HUB, "AR", None, LEIPZIG),
            updates.TrackingEvent(at(3, 14), "delivered", "Delivered to the door", "DL"),
        )
        assert (await read(api, order_id))["status"] == "DELIVERED"

        async with phone(chromium, javascript=False) as page:
            # By postal code: the status and events, nothing that acts for the customer.
            await look_up(page, base, number, postal_code="10117")
            result = page.locator("#result")
            await expect(result).to_contain_text(f"Order {number}: Delivered")
            await expect(result).to_contain_text(HUB)
            assert await page.get_by_role("button", name="Yes, confirm delivery").count() == 0

            await look_up(page, base, number, email="ada@example.com")
            await expect(result).to_contain_text("Delivered to the door")
            await expect(result).to_contain_text("Leipzig")
            assert "Unter den Linden" not in await page.content()  # no street address
            assert await fits_the_screen(page)
            await expect(page.get_by_role("link", name="Report a problem")).to_be_visible()
            await page.get_by_role("button", name="Yes, confirm delivery").click()
            await expect(page.locator("h1")).to_have_text("Thank you")
            await api.rt.runner.drain()  # the statement is issued by a job
            statement = (await read(api, order_id))["statement"]

            await look_up(page, base, number, email="ada@example.com")
            await expect(result).to_contain_text(f"Order {number}: Completed")
            link = page.get_by_role("link", name="Your statement (PDF)")
            href = await link.get_attribute("href")
            assert await fits_the_screen(page)

    assert statement is not None
    assert href is not None and href.startswith(f"/statements/{statement['number']}.pdf?token=")
    async with api_client(api) as client:
        pdf = await client.get(href)
        bare = await client.get(href.split("?")[0])
    assert (pdf.status_code, pdf.headers["content-type"]) == (200, "application/pdf")
    assert bare.status_code == 401  # the link's token is what authorizes it


@contextlib.asynccontextmanager
async def api_client(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_with_javascript_a_new_tracking_event_shows_without_a_reload(
    database_url: str, chromium: Browser
) -> None:
    async with shop(database_url) as api, over_http(api) as base:
        order_id = await sent(api, "PHONE-2", [{"sku": "MUG", "quantity": 1}])
        number = (await load_order(order_id)).number
        await scan(api, order_id, updates.TrackingEvent(at(2, 9), "picked_up", "Picked up"))

        async with phone(chromium, javascript=True) as page:
            await look_up(page, base, number, email="ada@example.com")
            result = page.locator("#result")
            await expect(result).to_contain_text("Picked up")
            await page.evaluate("window.sameDocument = true")

            await scan(
                api,
                order_id,
                updates.TrackingEvent(at(3, 8), "out_for_delivery", HUB, "OD", None, LEIPZIG),
            )
            await expect(result).to_contain_text(HUB)
            await expect(result.locator(".status")).to_have_text("Out for delivery")
            assert await page.evaluate("window.sameDocument") is True  # no reload
            assert await fits_the_screen(page)

            # Delivered: the page now offers the confirmation, still without a reload.
            await scan(api, order_id, updates.TrackingEvent(at(3, 12), "delivered", "At door"))
            await expect(page.get_by_role("button", name="Yes, confirm delivery")).to_be_visible()
            await expect(page.locator("body")).to_have_attribute("data-status", "DELIVERED")
            assert await page.evaluate("window.sameDocument") is True


async def test_a_view_with_its_live_updates_costs_one_lookup(database_url: str) -> None:
    async with (
        shop(database_url) as api,
        over_http(api) as base,
        httpx.AsyncClient(base_url=base) as browser,
    ):
        order_id = await sent(api, "PHONE-3", [{"sku": "MUG", "quantity": 1}])
        number = (await load_order(order_id)).number
        asked = {"number": number, "email": "ada@example.com"}
        # The customer reloads the page; each view opens its live updates, as the
        # page's script does, and costs one of the order's lookups.
        for _ in range(LOOKUPS_PER_ORDER.count - 1):
            view = await browser.post("/track", data=asked)
            assert f"Order {number}: Shipped" in view.text
            async with browser.stream("POST", "/track/live", data=asked) as live:
                assert live.status_code == 200
                first = json.loads(await anext(live.aiter_lines()))
            assert first["status"] == "SHIPPED"
        last = await browser.post("/track", data=asked)
        limited = await browser.post("/track", data=asked)
        # A guess through the live route is counted, and refused once the order is full.
        guessed = await browser.post("/track/live", data={**asked, "email": "x@example.com"})
    assert f"Order {number}: Shipped" in last.text
    assert "Too many lookups; try again in 10 minutes." in limited.text
    assert guessed.status_code == 429 and guessed.json()["code"] == "RATE_LIMITED"


async def test_the_confirmation_page_leads_back_to_the_order_and_its_statement(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        order_id = await delivered(api, "PHONE-4", [{"sku": "MUG", "quantity": 1}])
        number = (await load_order(order_id)).number
        token = confirmation_token(config_of(api.rt), order_id)
        asking = await api.client.get("/confirm-delivery", params={"token": token})
        thanks = await api.client.post("/confirm-delivery", data={"token": token})
        await api.rt.runner.drain()  # the statement is issued by a job
        statement = (await read(api, order_id))["statement"]
        again = await api.client.get("/confirm-delivery", params={"token": token})
        track_link = re.search(r'href="(/track\?number=[^"]+)"', thanks.text)
        assert track_link is not None
        form = await api.client.get(html.unescape(track_link.group(1)))
        pdf_link = re.search(r'href="([^"]+)">Your statement', again.text)
        assert pdf_link is not None
        pdf = await api.client.get(html.unescape(pdf_link.group(1)))
    assert f'href="/track?number={number}"' in asking.text
    assert thanks.status_code == 200 and "Thank you" in thanks.text
    assert f'name="number" required value="{number}"' in form.text  # the form starts with it
    assert f"/track?number={number}" in again.text
    assert pdf_link.group(1).startswith(f"/statements/{statement['number']}.pdf?token=")
    assert (pdf.status_code, pdf.headers["content-type"]) == (200, "application/pdf")
