"""Carrier plugins built on karrio, polled against a carrier API served on 127.0.0.1."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import AsyncIterator
from typing import Any

from carrier_server import (
    DHL_PASSWORD,
    DHL_SITE_ID,
    CarrierState,
    dhl_app,
    fedex_app,
    recorded_dhl_shipments,
    serve,
    ups_app,
    usps_app,
)
from conftest import Api, make_settings, serve_api
from test_alerts import alerts_of
from test_fulfilment import PACK, PICK, approved, parcel, read, task, team
from test_tracking import SHIP_BY, TRACKING

from ordergraph.core import auth, db
from ordergraph.stages.tracking import polling
from ordergraph.stages.tracking.tables import ShipmentTracking


def fedex_scan(when: str, code: str, description: str, city: str, region: str, postal: str):
    return {
        "date": when,
        "eventType": code,
        "eventDescription": description,
        "exceptionCode": "",
        "exceptionDescription": "",
        "scanLocation": {
            "streetLines": [""],
            "city": city,
            "stateOrProvinceCode": region,
            "postalCode": postal,
            "countryCode": "US",
            "residential": False,
        },
    }


DELIVERED = {
    "latestStatusDetail": {"code": "DL", "derivedCode": "DL", "description": "Delivered"},
    "estimatedDeliveryTimeWindow": {
        "window": {"begins": "2024-04-26T08:00:00-07:00", "ends": "2024-04-26T20:00:00-07:00"}
    },
    "scanEvents": [
        fedex_scan("2024-04-26T14:29:00-07:00", "DL", "Delivered", "RENO", "NV", "89501"),
        fedex_scan(
            "2024-04-26T09:26:00-07:00",
            "OD",
            "On FedEx vehicle for delivery",
            "RENO",
            "NV",
            "89502",
        ),
        fedex_scan(
            "2024-04-25T22:10:00-05:00", "DP", "Departed FedEx hub", "MEMPHIS", "TN", "38118"
        ),
    ],
}
IN_TRANSIT = {
    "latestStatusDetail": {"code": "IT", "description": "In transit"},
    "scanEvents": [
        fedex_scan(
            "2024-04-25T22:10:00-05:00", "DP", "Departed FedEx hub", "MEMPHIS", "TN", "38118"
        )
    ],
}


CREDENTIALS = {
    "fedex": {"track_api_key": "key", "track_secret_key": "secret"},
    "ups": {"client_id": "id", "client_secret": "secret"},
    "usps": {"client_id": "id", "client_secret": "secret"},
    "dhl_express": {"site_id": DHL_SITE_ID, "password": DHL_PASSWORD},
}
APPS = {"fedex": fedex_app, "ups": ups_app, "usps": usps_app, "dhl_express": dhl_app}


@contextlib.asynccontextmanager
async def fedex_shop(
    database_url: str, carrier: str = "fedex", **more: Any
) -> AsyncIterator[tuple[Api, CarrierState]]:
    """The app with ``carrier``'s plugin pointed at that carrier's API on 127.0.0.1."""
    state = CarrierState()
    async with serve(APPS[carrier](state)) as url:
        plugins = {
            "stock": {"enabled": True},
            "rules": {"enabled": True, "rules": ["-> packers"]},
            carrier: {"enabled": True, "server_url": url, **CREDENTIALS[carrier], **more},
        }
        async with serve_api(make_settings(database_url, plugins=plugins)) as api:
            api.tokens["pia"] = await auth.create_token("staff", name="pia", team="packers")
            await team(api, "packers", ("pia", 50))
            yield api, state


async def ship_fedex(api: Api, external_id: str, number: str, carrier: str = "fedex") -> str:
    order = await approved(api, external_id, lines=[{"sku": "MUG", "quantity": 1}])
    await api.data(PICK, {"id": task(order, "pick")["id"]}, as_="pia")
    await api.data(PACK, {"id": task(order, "pack")["id"], "parcels": [parcel((1, 1))]}, as_="pia")
    shipped = await api.data(
        SHIP_BY,
        {"id": task(order, "ship")["id"], "carrier": carrier, "numbers": [number]},
        as_="pia",
    )
    assert shipped["completeShip"]["errors"] == []
    return order["id"]


async def test_a_fedex_poll_keeps_the_offset_karrio_drops_and_delivers_the_order(
    database_url: str,
) -> None:
    async with fedex_shop(database_url) as (api, fedex):
        order_id = await ship_fedex(api, "FX-1", "794843185271")
        fedex.results["794843185271"] = DELIVERED

        result = await polling.poll_carriers(api.rt)

        assert result["fedex"].asked == 1 and result["fedex"].new_events == 3
        [tracked] = (await api.data(TRACKING, {"id": order_id}))["shipmentTracking"]
        assert tracked["status"] == "DELIVERED"
        # 14:29 at -07:00 is 21:29 UTC; karrio alone would say 14:29.
        assert tracked["deliveredAt"] == "2024-04-26T21:29:00+00:00"
        assert [(e["code"], e["status"], e["localTime"]) for e in tracked["events"]] == [
            ("DL", "DELIVERED", "2024-04-26T14:29:00-07:00"),
            ("OD", "OUT_FOR_DELIVERY", "2024-04-26T09:26:00-07:00"),
            ("DP", "IN_TRANSIT", "2024-04-25T22:10:00-05:00"),
        ]
        assert tracked["events"][1]["location"]["postalCode"] == "89502"
        assert tracked["estimate"]["windowTo"] == "2024-04-27T03:00:00+00:00"
        assert (await read(api, order_id))["status"] == "DELIVERED"
        # Delivered: not asked again.
        later = db.now() + datetime.timedelta(days=1)
        assert (await polling.poll_carriers(api.rt, later))["fedex"].asked == 0
        assert fedex.requests == [["794843185271"]]


async def test_shipping_with_a_carrier_nobody_tracks_is_refused_naming_the_carriers(
    database_url: str,
) -> None:
    async with fedex_shop(database_url) as (api, _fedex):
        order = await approved(api, "NOBODY-1", lines=[{"sku": "MUG", "quantity": 1}])
        await api.data(PICK, {"id": task(order, "pick")["id"]}, as_="pia")
        packed = {"id": task(order, "pack")["id"], "parcels": [parcel((1, 1))]}
        await api.data(PACK, packed, as_="pia")
        ship = {"id": task(order, "ship")["id"], "carrier": "dhl", "numbers": ["JD0001"]}
        refused = (await api.data(SHIP_BY, ship, as_="pia"))["completeShip"]
        assert [(e["field"], e["code"]) for e in refused["errors"]] == [
            ("carrier", "UNKNOWN_CARRIER")
        ]
        assert refused["errors"][0]["message"].endswith("the enabled carriers are: fedex, manual.")
        assert (await read(api, order["id"]))["shipments"] == []
        shipped = await api.data(SHIP_BY, {**ship, "carrier": "manual"}, as_="pia")
        assert shipped["completeShip"]["errors"] == []
        assert (await read(api, order["id"]))["status"] == "SHIPPED"


async def test_fedex_is_asked_in_batches_and_again_after_the_interval(database_url: str) -> None:
    async with fedex_shop(database_url, poll_batch_size=2, poll_interval_minutes=60) as (
        api,
        fedex,
    ):
        for n in range(3):
            await ship_fedex(api, f"FXB-{n}", f"7000{n}")
            fedex.results[f"7000{n}"] = IN_TRANSIT
        now = db.now()
        first = await polling.poll_carriers(api.rt, now)
        assert first["fedex"].asked == 3
        assert sorted(len(r) for r in fedex.requests) == [1, 2]
        assert (await polling.poll_carriers(api.rt, now + datetime.timedelta(minutes=30)))[
            "fedex"
        ].asked == 0
        again = await polling.poll_carriers(api.rt, now + datetime.timedelta(minutes=61))
        # Asked again, and the same scan is not stored twice.
        assert (again["fedex"].asked, again["fedex"].new_events) == (3, 0)


async def test_a_failing_carrier_is_asked_again_later_backing_off(database_url: str) -> None:
    async with fedex_shop(database_url, poll_interval_minutes=60) as (api, fedex):
        order_id = await ship_fedex(api, "FXF-1", "7111")
        fedex.results["7111"] = IN_TRANSIT
        fedex.failures_left = 2
        now = db.now()
        assert (await polling.poll_carriers(api.rt, now))["fedex"].failed_batches == 1
        row = await ShipmentTracking.select().first()
        assert row["poll_failures"] == 1 and row["poll_error"]
        # Twice the interval after one failure, then four times.
        assert (await polling.poll_carriers(api.rt, now + datetime.timedelta(minutes=90)))[
            "fedex"
        ].asked == 0
        second = now + datetime.timedelta(minutes=121)
        assert (await polling.poll_carriers(api.rt, second))["fedex"].failed_batches == 1
        assert (await polling.poll_carriers(api.rt, second + datetime.timedelta(minutes=200)))[
            "fedex"
        ].asked == 0
        third = await polling.poll_carriers(api.rt, second + datetime.timedelta(minutes=241))
        assert (third["fedex"].failed_batches, third["fedex"].new_events) == (0, 1)
        [tracked] = (await api.data(TRACKING, {"id": order_id}))["shipmentTracking"]
        assert tracked["status"] == "IN_TRANSIT"
        assert (await ShipmentTracking.select().first())["poll_failures"] == 0


async def test_polling_stops_after_the_configured_days(database_url: str) -> None:
    async with fedex_shop(database_url, stop_after_days=3) as (api, fedex):
        await ship_fedex(api, "FXS-1", "7222")
        fedex.results["7222"] = IN_TRANSIT
        late = db.now() + datetime.timedelta(days=3, minutes=1)
        assert (await polling.poll_carriers(api.rt, late))["fedex"].asked == 0
        assert fedex.requests == []


def ups_activity(gmt: str, offset: str, kind: str, code: str, description: str, city: str):
    """A UPS activity: the local date and time, and the same instant in GMT with the offset."""
    utc = datetime.datetime.strptime(gmt, "%Y%m%d %H:%M:%S")
    local = utc + datetime.timedelta(hours=int(offset[:3]))
    return {
        "location": {
            "address": {
                "city": city,
                "stateProvince": "KY",
                "postalCode": "40213",
                "countryCode": "US",
                "country": "US",
            }
        },
        "status": {"type": kind, "description": description, "code": code, "statusCode": "005"},
        "date": local.strftime("%Y%m%d"),
        "time": local.strftime("%H%M%S"),
        "gmtDate": gmt[:8],
        "gmtTime": gmt[9:],
        "gmtOffset": offset,
    }


async def test_a_ups_poll_rebuilds_the_instant_from_gmt_and_keeps_the_window(
    database_url: str,
) -> None:
    async with fedex_shop(database_url, "ups") as (api, ups):
        order_id = await ship_fedex(api, "UPS-1", "1Z999AA10123456784", carrier="ups")
        ups.results["1Z999AA10123456784"] = {
            "deliveryDate": [{"type": "SDD", "date": "20240428"}],
            "deliveryTime": {"type": "EOD", "startTime": "090000", "endTime": "190000"},
            "activity": [
                ups_activity("20240427 13:05:00", "-04:00", "X", "UE", "Exception", "LOUISVILLE"),
                ups_activity("20240426 23:40:00", "-04:00", "I", "DP", "Departed", "LOUISVILLE"),
            ],
        }
        result = await polling.poll_carriers(api.rt)
        assert (result["ups"].asked, result["ups"].new_events) == (1, 2)
        [tracked] = (await api.data(TRACKING, {"id": order_id}))["shipmentTracking"]
        assert [(e["occurredAt"], e["localTime"], e["status"]) for e in tracked["events"]] == [
            ("2024-04-27T13:05:00+00:00", "2024-04-27T09:05:00-04:00", "ON_HOLD"),
            ("2024-04-26T23:40:00+00:00", "2024-04-26T19:40:00-04:00", "IN_TRANSIT"),
        ]
        assert tracked["events"][0]["location"]["region"] == "KY"
        assert tracked["estimate"]["windowFrom"] == "2024-04-28T13:00:00+00:00"
        assert tracked["status"] == "ON_HOLD"
        assert (await read(api, order_id))["status"] == "SHIPPED"


def usps_event(local: str, gmt: str, offset: str, kind: str, code: str, city: str, **more: Any):
    return {
        "eventType": kind,
        "eventTimestamp": local,
        "GMTTimestamp": gmt,
        "GMTOffset": offset,
        "eventCountry": None,
        "eventCity": city,
        "eventState": "IL",
        "eventZIP": "60601",
        "firm": None,
        "name": None,
        "authorizedAgent": False,
        "eventCode": code,
        **more,
    }


async def test_a_usps_poll_takes_the_instant_from_gmt_not_the_local_clock(
    database_url: str,
) -> None:
    async with fedex_shop(database_url, "usps") as (api, usps):
        order_id = await ship_fedex(api, "USPS-1", "9400100000000000000000", carrier="usps")
        usps.results["9400100000000000000000"] = {
            "status": "Delivered, In/At Mailbox",
            "statusCategory": "Delivered",
            "expectedDeliveryTimeStamp": "2024-04-27T20:00:00Z",
            "trackingEvents": [
                usps_event(
                    "2024-04-27T10:23:00",
                    "2024-04-27T15:23:00Z",
                    "-05:00",
                    "Delivered, In/At Mailbox",
                    "01",
                    "CHICAGO",
                ),
                usps_event(
                    "2024-04-27T07:01:00",
                    "2024-04-27T12:01:00Z",
                    "-05:00",
                    "Out for Delivery",
                    "OF",
                    "CHICAGO",
                ),
            ],
        }
        result = await polling.poll_carriers(api.rt)
        assert (result["usps"].asked, result["usps"].new_events) == (1, 2)
        [tracked] = (await api.data(TRACKING, {"id": order_id}))["shipmentTracking"]
        assert [(e["occurredAt"], e["localTime"], e["status"]) for e in tracked["events"]] == [
            ("2024-04-27T15:23:00+00:00", "2024-04-27T10:23:00-05:00", "DELIVERED"),
            ("2024-04-27T12:01:00+00:00", "2024-04-27T07:01:00-05:00", "OUT_FOR_DELIVERY"),
        ]
        assert tracked["estimate"]["estimatedDelivery"] == "2024-04-27T20:00:00+00:00"
        assert (await read(api, order_id))["status"] == "DELIVERED"


def dhl_event(date: str, time: str, code: str, description: str, area: str, place: str) -> str:
    """A ``ShipmentEvent`` of DHL's tracking response: the local date and time (with its
    offset), the event code and the service area."""
    return (
        f"<ShipmentEvent><Date>{date}</Date><Time>{time}</Time><ServiceEvent>"
        f"<EventCode>{code}</EventCode><Description>{description}</Description>"
        f"</ServiceEvent><Signatory/><ServiceArea><ServiceAreaCode>{area}</ServiceAreaCode>"
        f"<Description>{place}</Description></ServiceArea></ShipmentEvent>"
    )


def dhl_shipment(*events: str, estimate: str = "") -> str:
    """A ``ShipmentInfo``, its events oldest first as DHL lists them."""
    return (
        "<ShipmentInfo><OriginServiceArea><ServiceAreaCode>MEM</ServiceAreaCode>"
        "<Description>MEMPHIS, TN-USA</Description></OriginServiceArea>"
        "<DestinationServiceArea><ServiceAreaCode>LAX</ServiceAreaCode>"
        "<Description>LOS ANGELES, CA-USA</Description></DestinationServiceArea>"
        "<ShipperName>SHOP</ShipperName><ConsigneeName>ADA</ConsigneeName>"
        "<ShipmentDate>2024-04-25T18:00:00</ShipmentDate><Pieces>1</Pieces>"
        "<Weight>0.5</Weight><WeightUnit>K</WeightUnit>"
        f"{estimate}{''.join(events)}</ShipmentInfo>"
    )


async def test_a_dhl_poll_keeps_the_offset_karrio_drops_and_delivers_the_order(
    database_url: str,
) -> None:
    async with fedex_shop(database_url, "dhl_express") as (api, dhl):
        order_id = await ship_fedex(api, "DHL-1", "1234567890", carrier="dhl_express")
        dhl.results["1234567890"] = dhl_shipment(
            dhl_event("2024-04-25", "20:10:00-05:00", "AF", "Arrived", "MEM", "MEMPHIS, TN-USA"),
            dhl_event(
                "2024-04-26", "09:26:00-07:00", "WC", "With courier", "LAX", "LOS ANGELES, CA-USA"
            ),
            dhl_event(
                "2024-04-26", "14:29:00-07:00", "OK", "Delivered", "LAX", "LOS ANGELES, CA-USA"
            ),
            estimate="<EstDlvyDate>2024-04-26 23:59:00 GMT-07:00</EstDlvyDate>"
            "<EstDlvyDateUTC>2024-04-27 06:59:00</EstDlvyDateUTC>",
        )

        result = await polling.poll_carriers(api.rt)

        assert (result["dhl_express"].asked, result["dhl_express"].new_events) == (1, 3)
        [tracked] = (await api.data(TRACKING, {"id": order_id}))["shipmentTracking"]
        # 09:26 at -07:00 is 16:26 UTC; karrio alone says 09:26 UTC.
        assert [
            (e["code"], e["status"], e["occurredAt"], e["localTime"]) for e in tracked["events"]
        ] == [
            ("OK", "DELIVERED", "2024-04-26T21:29:00+00:00", "2024-04-26T14:29:00-07:00"),
            ("WC", "OUT_FOR_DELIVERY", "2024-04-26T16:26:00+00:00", "2024-04-26T09:26:00-07:00"),
            ("AF", "IN_TRANSIT", "2024-04-26T01:10:00+00:00", "2024-04-25T20:10:00-05:00"),
        ]
        assert tracked["events"][1]["location"]["city"] == "LOS ANGELES"
        assert tracked["events"][1]["location"]["region"] == "CA"
        assert tracked["estimate"]["estimatedDelivery"] == "2024-04-27T06:59:00+00:00"
        assert tracked["status"] == "DELIVERED"
        assert (await read(api, order_id))["status"] == "DELIVERED"
        later = db.now() + datetime.timedelta(days=1)
        assert (await polling.poll_carriers(api.rt, later))["dhl_express"].asked == 0
        assert dhl.requests == [["1234567890"]]


async def test_a_dhl_failed_delivery_maps_to_karrios_status_and_opens_an_alert(
    database_url: str,
) -> None:
    async with fedex_shop(database_url, "dhl_express") as (api, dhl):
        order_id = await ship_fedex(api, "DHL-2", "2234567890", carrier="dhl_express")
        dhl.results["2234567890"] = dhl_shipment(
            dhl_event("2024-04-26", "11:02:00+02:00", "NH", "Not home", "MUC", "MUNICH-GERMANY")
        )
        await polling.poll_carriers(api.rt)
        [tracked] = (await api.data(TRACKING, {"id": order_id}))["shipmentTracking"]
        assert (tracked["status"], tracked["reason"]) == ("DELIVERY_FAILED", "CONSIGNEE_NOT_HOME")
        assert tracked["events"][0]["location"]["city"] == "MUNICH"
        [alert] = await alerts_of(api, order_id, "OPEN")
        assert alert["kind"] == "DELIVERY_FAILED"


EVENT_TIMES = """
query($id: ID!) {
  shipmentTracking(orderId: $id) {
    status deliveredAt estimate { estimatedDelivery }
    events { code status occurredAt localTime utcOffsetMinutes offsetKnown location { city } }
  }
}
"""


async def test_dhls_recorded_answers_in_local_time_take_the_offset_of_their_service_area(
    database_url: str,
) -> None:
    """karrio's recorded DHL answers give every time without an offset: Barcelona,
    Leipzig, Bergamo and Milan in August 2009 are at +02:00, Kingston at -05:00."""
    async with fedex_shop(database_url, "dhl_express") as (api, dhl):
        delivered = await ship_fedex(api, "DHL-R1", "3180831640", carrier="dhl_express")
        picked_up = await ship_fedex(api, "DHL-R2", "9053283201", carrier="dhl_express")
        dhl.results.update(recorded_dhl_shipments("dhl_express_tracking_delivered"))
        dhl.results.update(recorded_dhl_shipments("dhl_express_tracking_in_transit"))

        result = await polling.poll_carriers(api.rt)

        assert (result["dhl_express"].asked, result["dhl_express"].new_events) == (2, 17)
        [tracked] = (await api.data(EVENT_TIMES, {"id": delivered}))["shipmentTracking"]
        assert len(tracked["events"]) == 16
        assert all(e["offsetKnown"] and e["utcOffsetMinutes"] == 120 for e in tracked["events"])
        newest, oldest = tracked["events"][0], tracked["events"][-1]
        assert (newest["code"], newest["status"], newest["location"]["city"]) == (
            "OK",
            "DELIVERED",
            "Milan",
        )
        assert (newest["occurredAt"], newest["localTime"]) == (
            "2009-08-31T08:09:00+00:00",
            "2009-08-31T10:09:00+02:00",
        )
        assert (oldest["code"], oldest["occurredAt"]) == ("PU", "2009-08-28T11:26:00+00:00")
        assert tracked["deliveredAt"] == "2009-08-31T08:09:00+00:00"
        assert (await read(api, delivered))["status"] == "DELIVERED"

        [moving] = (await api.data(EVENT_TIMES, {"id": picked_up}))["shipmentTracking"]
        [event] = moving["events"]
        assert (event["occurredAt"], event["localTime"], event["location"]["city"]) == (
            "2021-05-05T14:42:00+00:00",
            "2021-05-05T09:42:00-05:00",
            "KINGSTON",
        )
        assert moving["estimate"]["estimatedDelivery"] == "2021-05-08T03:59:00+00:00"
        assert (await read(api, picked_up))["status"] == "SHIPPED"


async def test_dhl_errors_back_off_and_an_event_of_unknown_zone_is_kept_at_its_local_time(
    database_url: str,
) -> None:
    async with fedex_shop(database_url, "dhl_express", poll_interval_minutes=60) as (api, dhl):
        order_id = await ship_fedex(api, "DHL-3", "3234567890", carrier="dhl_express")
        # Bentonville's service area is in none of the zone tables, and the USA has several.
        dhl.results["3234567890"] = dhl_shipment(
            dhl_event("2024-04-26", "09:26:00", "AF", "Arrived", "XNA", "BENTONVILLE, AR-USA"),
            dhl_event("2024-04-26", "15:02:00", "OK", "Delivered", "XNA", "BENTONVILLE, AR-USA"),
        )
        dhl.failures_left = 1
        now = db.now()
        assert (await polling.poll_carriers(api.rt, now))["dhl_express"].failed_batches == 1
        assert (await ShipmentTracking.select().first())["poll_failures"] == 1
        # Backing off: twice the interval.
        soon = now + datetime.timedelta(minutes=90)
        assert (await polling.poll_carriers(api.rt, soon))["dhl_express"].asked == 0
        second = await polling.poll_carriers(api.rt, now + datetime.timedelta(minutes=121))
        assert (second["dhl_express"].failed_batches, second["dhl_express"].new_events) == (0, 2)
        assert (await ShipmentTracking.select().first())["poll_failures"] == 0
        [tracked] = (await api.data(EVENT_TIMES, {"id": order_id}))["shipmentTracking"]
        assert [
            (e["code"], e["localTime"], e["utcOffsetMinutes"], e["offsetKnown"])
            for e in tracked["events"]
        ] == [
            ("OK", "2024-04-26T15:02:00", None, False),
            ("AF", "2024-04-26T09:26:00", None, False),
        ]
        assert tracked["status"] == "DELIVERED"
        assert (await read(api, order_id))["status"] == "DELIVERED"
