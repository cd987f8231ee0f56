"""Customers look for themselves: trackOrder and the /track page, without a token."""

from __future__ import annotations

import asyncio

import pytest
from conftest import make_settings, serve_api
from test_fulfilment import shop
from test_tracking import record, scan, shipment_ids, shipped

from ordergraph.core import db
from ordergraph.core.limits import LOOKUPS_PER_CLIENT, LOOKUPS_PER_ORDER
from ordergraph.stages.tracking import lookup

TRACK = """
query($number: String!, $email: String, $postalCode: String) {
  trackOrder(number: $number, email: $email, postalCode: $postalCode) {
    number status
    shipments { carrier status deliveredAt estimate { estimatedDelivery }
                events { occurredAt localTime status description
                         location { city region country } } }
  }
}
"""
EVERYTHING = """
query($number: String!) {
  trackOrder(number: $number, email: "ada@example.com") {
    shipments { events { location { postalCode } } }
  }
}
"""


def number_of(order_id: str) -> str:
    return f"SO-{int(order_id):06d}"


async def test_the_customer_sees_status_events_and_city_and_nothing_else(database_url: str) -> None:
    async with shop(database_url) as api:
        order_id = await shipped(api, "PUB-1")
        [shipment] = await shipment_ids(api, order_id)
        await record(
            api,
            shipment,
            scan("2024-05-02T08:10:00+02:00", "out_for_delivery", "Berlin"),
            estimate={"estimatedDelivery": "2024-05-02T18:00:00+02:00"},
        )
        variables = {"number": number_of(order_id), "email": "ADA@example.com"}
        found = (await api.data(TRACK, variables, as_=None))["trackOrder"]
        assert found == {
            "number": number_of(order_id),
            "status": "SHIPPED",
            "shipments": [
                {
                    "carrier": "manual",
                    "status": "OUT_FOR_DELIVERY",
                    "deliveredAt": None,
                    "estimate": {"estimatedDelivery": "2024-05-02T16:00:00+00:00"},
                    "events": [
                        {
                            "occurredAt": "2024-05-02T06:10:00+00:00",
                            "localTime": "2024-05-02T08:10:00+02:00",
                            "status": "OUT_FOR_DELIVERY",
                            "description": "out for delivery",
                            "location": {"city": "Berlin", "region": "TN", "country": "US"},
                        }
                    ],
                }
            ],
        }
        by_postcode = {"number": number_of(order_id), "postalCode": "sw1y4jh"}
        assert (await api.data(TRACK, by_postcode, as_=None))["trackOrder"]["status"] == "SHIPPED"
        # The postal code of an event is not part of the public answer.
        refused = await api.gql(EVERYTHING, {"number": number_of(order_id)}, as_=None)
        assert "postalCode" in refused["errors"][0]["message"]


async def test_a_wrong_email_gets_the_same_answer_as_an_unknown_number(database_url: str) -> None:
    async with shop(database_url) as api:
        order_id = await shipped(api, "PUB-2")
        answers = [
            await api.gql(TRACK, variables, as_=None)
            for variables in (
                {"number": number_of(order_id), "email": "bob@example.com"},
                {"number": "SO-999999", "email": "ada@example.com"},
                {"number": "not a number", "email": "ada@example.com"},
                {"number": number_of(order_id), "postalCode": "00000"},
                {"number": number_of(order_id)},
            )
        ]
        assert all(answer == {"data": {"trackOrder": None}} for answer in answers)


async def test_lookups_are_limited_per_order_number_and_per_client(database_url: str) -> None:
    async with shop(database_url) as api:
        order_id = await shipped(api, "PUB-3")
        guesses = [
            api.gql(TRACK, {"number": number_of(order_id), "email": f"x{i}@example.com"}, as_=None)
            for i in range(LOOKUPS_PER_ORDER.count + 2)
        ]
        answers = await asyncio.gather(*guesses)
        limited = [a for a in answers if "errors" in a]
        assert len(limited) == 2
        assert limited[0]["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        # The right e-mail is limited too now: guessing bought nothing.
        late = await api.gql(
            TRACK, {"number": number_of(order_id), "email": "ada@example.com"}, as_=None
        )
        assert late["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        # Other orders, from the same client, until the client's own limit.
        others = await asyncio.gather(
            *(
                api.gql(TRACK, {"number": f"SO-{900000 + i}", "email": "a@b.c"}, as_=None)
                for i in range(LOOKUPS_PER_CLIENT.count)
            )
        )
        assert (
            sum("errors" in a for a in others)
            == (LOOKUPS_PER_ORDER.count + 2 + 1 + LOOKUPS_PER_CLIENT.count)
            - LOOKUPS_PER_CLIENT.count
        )


async def test_two_api_processes_sharing_redis_refuse_together_after_the_limit(
    database_url: str, redis_url: str
) -> None:
    settings = make_settings(database_url, redis_url=redis_url)
    async with serve_api(settings) as first, serve_api(settings) as second:
        assert first.rt is not second.rt
        guesses = [
            api.gql(TRACK, {"number": "SO-900001", "email": f"x{i}@example.com"}, as_=None)
            for i in range(LOOKUPS_PER_ORDER.count)
            for api in (first, second)
        ]
        answers = await asyncio.gather(*guesses)
        # Counted apart, each process would have allowed its own 10.
        codes = [a["errors"][0]["extensions"]["code"] for a in answers if "errors" in a]
        assert codes == ["RATE_LIMITED"] * LOOKUPS_PER_ORDER.count
        # The client's 20 lookups are spent on both processes as well.
        elsewhere = [
            await api.gql(TRACK, {"number": "SO-900002", "email": "a@b.c"}, as_=None)
            for api in (first, second)
        ]
        assert all(a["errors"][0]["extensions"]["code"] == "RATE_LIMITED" for a in elsewhere)


async def test_the_track_page_works_without_javascript(database_url: str) -> None:
    async with shop(database_url) as api:
        order_id = await shipped(api, "PAGE-1")
        [shipment] = await shipment_ids(api, order_id)
        await record(api, shipment, scan("2024-05-02T08:10:00+02:00", "delivery_failed", "Köln"))
        form = await api.client.get("/track")
        assert form.status_code == 200
        assert '<form method="post" action="/track">' in form.text
        assert 'name="viewport"' in form.text
        page = await api.client.post(
            "/track", data={"number": number_of(order_id), "email": "ada@example.com"}
        )
        assert page.status_code == 200
        assert f"Order {number_of(order_id)}: Shipped" in page.text
        assert "Delivery attempt failed" in page.text
        assert "02 May 2024 08:10 local" in page.text  # the year, too
        assert "Köln" in page.text
        assert "St James" not in page.text  # no address
        assert 'fetch("/track/live"' in page.text  # live where JavaScript is on
        wrong = await api.client.post(
            "/track", data={"number": number_of(order_id), "email": "bob@example.com"}
        )
        assert "We found no order" in wrong.text and "Delivery attempt" not in wrong.text


async def test_track_order_reads_a_fixed_number_of_statements(database_url: str) -> None:
    async with shop(database_url) as api:
        order_id = await shipped(api, "PUB-4")
        [shipment] = await shipment_ids(api, order_id)
        await record(
            api,
            shipment,
            *(scan(f"2024-05-0{d}T08:10:00+02:00", "in_transit") for d in range(1, 9)),
        )
        with db.count_statements() as log:
            found = await lookup.look_up(number_of(order_id), email="ada@example.com")
        assert found is not None and len(found.shipments[0].events) == 8
        print(f"\ntrackOrder: {log.count} statements")
        assert log.count <= 7


@pytest.mark.parametrize("shared", [False, True], ids=["one-process", "redis"])
async def test_an_order_number_counts_as_one_order_however_it_is_written(
    database_url: str, redis_url: str, shared: bool
) -> None:
    settings = make_settings(database_url, redis_url=redis_url if shared else None)
    async with serve_api(settings) as api:
        spellings = ["900011", "so-900011", " SO-0000900011 ", "So-900011"]
        answers = [
            await api.gql(TRACK, {"number": spellings[i % 4], "email": "a@b.c"}, as_=None)
            for i in range(LOOKUPS_PER_ORDER.count)
        ]
        assert all(a == {"data": {"trackOrder": None}} for a in answers)
        refused = await api.gql(TRACK, {"number": "SO-00900011", "email": "a@b.c"}, as_=None)
    [error] = refused["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["message"] == "Too many lookups; try again in 10 minutes."


async def test_a_number_that_names_no_order_is_counted_by_its_normalized_text(
    database_url: str,
) -> None:
    async with serve_api(make_settings(database_url)) as api:
        spellings = ["no such  order", "NO SUCH ORDER", " No such order "]
        answers = [
            await api.gql(TRACK, {"number": spellings[i % 3], "email": "a@b.c"}, as_=None)
            for i in range(LOOKUPS_PER_ORDER.count)
        ]
        refused = await api.gql(TRACK, {"number": "no Such order", "email": "a@b.c"}, as_=None)
        other = await api.gql(TRACK, {"number": "no such order 2", "email": "a@b.c"}, as_=None)
    assert all(a == {"data": {"trackOrder": None}} for a in answers)
    assert refused["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert other == {"data": {"trackOrder": None}}


async def test_the_site_root_leads_to_graphiql_and_the_browser_gets_an_icon(
    database_url: str,
) -> None:
    async with serve_api(make_settings(database_url)) as api:
        home = await api.client.get("/", follow_redirects=False)
        graphiql = await api.client.get("/", headers={"Accept": "text/html"}, follow_redirects=True)
        icon = await api.client.get("/favicon.ico")
    assert home.status_code in (302, 307) and home.headers["location"].endswith("/graphql")
    assert graphiql.status_code == 200 and "graphiql" in graphiql.text.lower()
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/svg+xml"
    assert icon.text.startswith("<svg")
