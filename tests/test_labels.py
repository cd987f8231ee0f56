"""Buying labels: shipping without a tracking number books the shipment with FedEx (a
Ship API served on 127.0.0.1) in the job runner, once, and the label is staff's to
download."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from carrier_server import CarrierState, fedex_app, serve
from conftest import Api, make_settings, serve_api
from test_alerts import alerts_of
from test_carriers import CREDENTIALS, IN_TRANSIT
from test_fulfilment import PACK, PICK, approved, parcel, task, team
from test_tracking import SHIP_BY, TRACKING

from ordergraph.core import auth, db
from ordergraph.stages.fulfilment.labels import BOOK_JOB, BookingInProgress
from ordergraph.stages.tracking import polling

RENO = {
    "name": "Ada Lovelace",
    "line1": "100 N Virginia St",
    "city": "Reno",
    "postalCode": "89501",
    "country": "US",
    "phone": "7755550100",
}
SHIPPER = {
    "company": "The Mug Shop",
    "name": "Shipping desk",
    "phone": "9015550100",
    "line1": "3875 Airways Blvd",
    "city": "Memphis",
    "region": "TN",
    "postalCode": "38118",
    "country": "US",
}
SHIPMENTS = """
query($id: ID!) {
  order(id: $id) {
    status
    shipments { id trackingNumber parcels label { state attempts error format url } }
  }
}
"""


@contextlib.asynccontextmanager
async def label_shop(
    database_url: str, *, retry_seconds: float = 0.0, timeout: float = 10.0, **more: Any
) -> AsyncIterator[tuple[Api, CarrierState]]:
    """The app with FedEx pointed at 127.0.0.1 and buying labels."""
    state = CarrierState()
    async with serve(fedex_app(state)) as url:
        fedex = {
            "enabled": True,
            "server_url": url,
            **CREDENTIALS["fedex"],
            "buy_labels": True,
            "api_key": "ship-key",
            "secret_key": "ship-secret",
            "account_number": "510087020",
            "shipper": SHIPPER,
            **more,
        }
        plugins = {
            "stock": {"enabled": True},
            "rules": {"enabled": True, "rules": ["-> packers"]},
            "fedex": fedex,
        }
        settings = make_settings(
            database_url,
            plugins=plugins,
            job_retry_base_seconds=retry_seconds,
            plugin_timeout_seconds=timeout,
        )
        async with serve_api(settings) as api:
            api.tokens["pia"] = await auth.create_token("staff", name="pia", team="packers")
            api.tokens["otto"] = await auth.create_token("staff", name="otto", team="others")
            await team(api, "packers", ("pia", 50))
            yield api, state


async def ship_without_number(api: Api, external_id: str) -> str:
    order = await approved(
        api, external_id, lines=[{"sku": "MUG", "quantity": 1}], shippingAddress=RENO
    )
    await api.data(PICK, {"id": task(order, "pick")["id"]}, as_="pia")
    await api.data(PACK, {"id": task(order, "pack")["id"], "parcels": [parcel((1, 1))]}, as_="pia")
    shipped = await api.data(
        SHIP_BY, {"id": task(order, "ship")["id"], "carrier": "fedex", "numbers": []}, as_="pia"
    )
    assert shipped["completeShip"]["errors"] == []
    return str(order["databaseId"])


async def shipment_of(api: Api, order_id: str) -> dict[str, Any]:
    [shipment] = (await api.data(SHIPMENTS, {"id": order_id}, as_="pia"))["order"]["shipments"]
    return shipment


async def test_shipping_without_a_number_buys_the_label_once_and_polling_tracks_it(
    database_url: str,
) -> None:
    async with label_shop(database_url) as (api, fedex):
        order_id = await ship_without_number(api, "LBL-1")
        await api.rt.runner.drain()

        shipment = await shipment_of(api, order_id)
        number = shipment["trackingNumber"]
        assert number == "794900000010"
        assert shipment["parcels"][0]["trackingNumber"] == number
        assert shipment["label"] == {
            "state": "BOOKED",
            "attempts": 1,
            "error": "",
            "format": "PDF",
            "url": f"/shipments/{shipment['id']}/label",
        }
        [booked] = fedex.bookings
        recipient = booked["requestedShipment"]["recipients"][0]["address"]
        assert (recipient["postalCode"], recipient["countryCode"]) == ("89501", "US")
        assert booked["requestedShipment"]["shipper"]["address"]["city"] == "Memphis"

        url = shipment["label"]["url"]
        label = await api.client.get(url, headers={"authorization": f"Bearer {api.tokens['pia']}"})
        assert label.status_code == 200
        assert label.headers["content-type"] == "application/pdf"
        assert label.content == fedex.labels[number] and label.content.startswith(b"%PDF")
        assert (await api.client.get(url)).status_code == 401
        for stranger in ("ada", "otto"):
            refused = await api.client.get(
                url, headers={"authorization": f"Bearer {api.tokens[stranger]}"}
            )
            assert refused.status_code == 404

        # The job run again, and twice at once: FedEx is not asked again.
        book = api.rt.job_handlers[BOOK_JOB]
        payload = {"order_id": int(order_id), "shipment_id": int(shipment["id"])}
        await asyncio.gather(book(payload), book(payload))
        assert len(fedex.bookings) == 1

        # The ETA FedEx gave is the shipment's, and the poll asks about the number.
        fedex.results[number] = IN_TRANSIT
        assert (await polling.poll_carriers(api.rt))["fedex"].asked == 1
        assert fedex.requests == [[number]]
        [tracked] = (await api.data(TRACKING, {"id": order_id}))["shipmentTracking"]
        assert tracked["estimate"]["estimatedDelivery"] == "2024-04-29T12:00:00+00:00"
        assert tracked["status"] == "IN_TRANSIT"


async def test_a_refused_booking_opens_an_alert_and_the_retry_books_once_and_closes_it(
    database_url: str,
) -> None:
    async with label_shop(database_url, retry_seconds=3600) as (api, fedex):
        fedex.booking_failures_left = 1
        order_id = await ship_without_number(api, "LBL-2")
        await api.rt.runner.drain()

        shipment = await shipment_of(api, order_id)
        assert shipment["trackingNumber"] == ""
        assert shipment["label"]["state"] == "FAILED"
        assert "SHIPPER.POSTALSTATE.MISMATCH" in shipment["label"]["error"]
        [alert] = await alerts_of(api, order_id, "OPEN")
        assert alert["kind"] == "LABEL_FAILED" and alert["detail"]["plugin"] == "fedex"
        assert fedex.bookings == []

        # The retry comes (here: two at once); one asks FedEx, the other finds it asked.
        book = api.rt.job_handlers[BOOK_JOB]
        payload = {"order_id": int(order_id), "shipment_id": int(shipment["id"])}
        outcomes = await asyncio.gather(book(payload), book(payload), return_exceptions=True)
        assert all(o is None or isinstance(o, BookingInProgress) for o in outcomes)
        assert len(fedex.bookings) == 1
        shipment = await shipment_of(api, order_id)
        assert shipment["label"]["state"] == "BOOKED" and shipment["label"]["attempts"] == 2
        assert shipment["trackingNumber"] == "794900000010"
        assert await alerts_of(api, order_id, "OPEN") == []
        [closed] = await alerts_of(api, order_id, "RESOLVED")
        assert closed["resolution"] == "the label was bought"
        # The retry the runner scheduled finds the booking done.
        await book(payload)
        assert len(fedex.bookings) == 1


async def test_without_buy_labels_a_ship_needs_its_tracking_numbers(database_url: str) -> None:
    async with label_shop(database_url, buy_labels=False) as (api, fedex):
        order = await approved(
            api, "LBL-3", lines=[{"sku": "MUG", "quantity": 2}], shippingAddress=RENO
        )
        await api.data(PICK, {"id": task(order, "pick")["id"]}, as_="pia")
        await api.data(
            PACK, {"id": task(order, "pack")["id"], "parcels": [parcel((1, 1))]}, as_="pia"
        )
        refused = await api.data(
            SHIP_BY, {"id": task(order, "ship")["id"], "carrier": "fedex", "numbers": []}, as_="pia"
        )
        [error] = refused["completeShip"]["errors"]
        assert (error["field"], error["code"]) == ("trackingNumbers", "INVALID_VALUE")
        assert fedex.bookings == []


async def test_a_booking_without_an_answer_in_time_is_never_asked_again(database_url: str) -> None:
    async with label_shop(database_url, timeout=0.5) as (api, fedex):
        fedex.booking_delay = 2.0
        order_id = await ship_without_number(api, "LBL-4")
        await api.rt.runner.drain()

        # FedEx booked, but too late to say so: a person must check before anyone asks again.
        assert len(fedex.bookings) == 1
        shipment = await shipment_of(api, order_id)
        assert shipment["label"]["state"] == "UNKNOWN" and shipment["trackingNumber"] == ""
        assert "check before shipping again" in shipment["label"]["error"]
        [alert] = await alerts_of(api, order_id, "OPEN")
        assert alert["kind"] == "LABEL_FAILED" and alert["detail"]["state"] == "unknown"
        await api.rt.job_handlers[BOOK_JOB](
            {"order_id": int(order_id), "shipment_id": int(shipment["id"])}
        )
        assert len(fedex.bookings) == 1


LABELS_OF_ORDERS = (
    "{ orders(first: 50) { edges { node { shipments { trackingNumber label { state url } } } } } }"
)


async def labels_read(api: Api) -> tuple[int, list[dict[str, Any]]]:
    with db.count_statements() as log:
        data = await api.data(LABELS_OF_ORDERS, as_="staff")
    shipments = [s for e in data["orders"]["edges"] for s in e["node"]["shipments"]]
    return log.count, shipments


async def test_the_labels_of_many_orders_cost_the_same_statements_as_of_one(
    database_url: str,
) -> None:
    async with label_shop(database_url) as (api, _):
        await ship_without_number(api, "LBL-5")
        await api.rt.runner.drain()
        one, shipments = await labels_read(api)
        assert [s["label"]["state"] for s in shipments] == ["BOOKED"]
        for n in range(6, 9):
            await ship_without_number(api, f"LBL-{n}")
        await api.rt.runner.drain()
        four, shipments = await labels_read(api)
        assert [s["label"]["state"] for s in shipments] == ["BOOKED"] * 4
        assert four == one
