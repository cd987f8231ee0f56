"""Stage 4's tracking model through the real app: events kept once, in the carrier's local
time, late scans, the ETA's history against the promise, and DELIVERED derived."""

from __future__ import annotations

from typing import Any

from conftest import Api
from test_fulfilment import PACK, PICK, approved, parcel, read, shop, task, team

from ordergraph.core import db
from ordergraph.stages.tracking import updates

SHIP_BY = """
mutation Ship($id: ID!, $carrier: String!, $numbers: [String!]!) {
  completeShip(id: $id, carrier: $carrier, service: "", trackingNumbers: $numbers) {
    order { status } errors { field code message }
  }
}
"""
SHIP_MORE = """
mutation More($id: ID!, $input: ShipmentInput!) {
  shipOrder(orderId: $id, input: $input) { order { status } errors { field code message } }
}
"""
TRACKING_FIELDS = """
  shipmentId carrier trackingNumber status reason lastEventAt deliveredAt
  estimate { estimatedDelivery windowFrom windowTo }
  etaHistory { estimatedDelivery windowTo source }
  promisedDate onTimeStatus
  events { occurredAt localTime utcOffsetMinutes status reason code description
           location { city region postalCode country latitude longitude } source }
"""
TRACKING = f"query($id: ID!) {{ shipmentTracking(orderId: $id) {{ {TRACKING_FIELDS} }} }}"
RECORD = f"""
mutation Record($id: ID!, $events: [TrackingEventInput!]!, $estimate: EstimateInput) {{
  recordTrackingEvents(shipmentId: $id, events: $events, estimate: $estimate) {{
    newEvents tracking {{ {TRACKING_FIELDS} }} errors {{ field code message }}
  }}
}}
"""
PROMISE = """
mutation($id: ID!, $date: Date) {
  setPromisedDate(shipmentId: $id, promisedDate: $date) {
    tracking { promisedDate onTimeStatus } errors { field code }
  }
}
"""


async def shipped(api: Api, external_id: str, carrier: str = "manual", quantity: int = 1) -> str:
    """An order picked, packed in one parcel and handed to ``carrier``; its databaseId,
    which arguments take as they take its global id."""
    await team(api, "packers", ("pia", 50))
    order = await approved(api, external_id, lines=[{"sku": "MUG", "quantity": quantity}])
    await api.data(PICK, {"id": task(order, "pick")["id"]}, as_="pia")
    await api.data(
        PACK, {"id": task(order, "pack")["id"], "parcels": [parcel((1, quantity))]}, as_="pia"
    )
    result = await api.data(
        SHIP_BY,
        {"id": task(order, "ship")["id"], "carrier": carrier, "numbers": [f"{external_id}-T"]},
        as_="pia",
    )
    assert result["completeShip"]["errors"] == []
    return str(order["databaseId"])


async def shipment_ids(api: Api, order_id: str) -> list[str]:
    return [
        s["shipmentId"] for s in (await api.data(TRACKING, {"id": order_id}))["shipmentTracking"]
    ]


def scan(when: str, status: str, city: str = "Memphis", **extra: Any) -> dict[str, Any]:
    """A courier's scan as recordTrackingEvents takes it; ``status`` in karrio's words."""
    if "reason" in extra:
        extra["reason"] = extra["reason"].upper()
    return {
        "occurredAt": when,
        "status": status.upper(),
        "description": extra.pop("description", status.replace("_", " ")),
        "location": {"city": city, "region": "TN", "postalCode": "38118", "country": "US"},
        **extra,
    }


async def record(api: Api, shipment_id: str, *events: dict[str, Any], **more: Any) -> dict:
    data = await api.data(RECORD, {"id": shipment_id, "events": list(events), **more}, as_="pia")
    return data["recordTrackingEvents"]


async def test_an_event_keeps_its_utc_instant_and_the_carriers_local_offset(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        order_id = await shipped(api, "TZ-1")
        [shipment] = await shipment_ids(api, order_id)
        result = await record(
            api,
            shipment,
            scan("2024-04-26T09:26:00-07:00", "picked_up", "Reno", code="PU"),
        )
        assert result["errors"] == [] and result["newEvents"] == 1
        [event] = result["tracking"]["events"]
        assert event["occurredAt"] == "2024-04-26T16:26:00+00:00"
        assert event["localTime"] == "2024-04-26T09:26:00-07:00"
        assert event["utcOffsetMinutes"] == -420
        assert event["location"] == {
            "city": "Reno",
            "region": "TN",
            "postalCode": "38118",
            "country": "US",
            "latitude": None,
            "longitude": None,
        }
        assert event["source"] == "manual:staff:pia"
        assert result["tracking"]["status"] == "PICKED_UP"


async def test_repeated_and_late_events_are_kept_once_and_the_newest_instant_decides(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        order_id = await shipped(api, "DUP-1")
        [shipment] = await shipment_ids(api, order_id)
        out = scan("2024-05-02T08:10:00+02:00", "out_for_delivery", "Berlin")
        assert (await record(api, shipment, out))["newEvents"] == 1
        # The same scan again, and a scan of the day before that arrives after it.
        late = scan("2024-05-01T18:00:00+02:00", "in_transit", "Leipzig")
        again = await record(api, shipment, out, late)
        assert again["newEvents"] == 1
        tracked = again["tracking"]
        assert [e["location"]["city"] for e in tracked["events"]] == ["Berlin", "Leipzig"]
        assert tracked["status"] == "OUT_FOR_DELIVERY"
        assert tracked["lastEventAt"] == "2024-05-02T06:10:00+00:00"
        order = await read(api, order_id)
        assert order["status"] == "SHIPPED"
        tracking_events = [e for e in order["events"] if e["type"] == "tracking"]
        assert [e["data"]["newEvents"] for e in tracking_events] == [1, 1]


async def test_a_failed_delivery_carries_its_reason_and_delivery_after_all_delivers_the_order(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        order_id = await shipped(api, "FAIL-1")
        [shipment] = await shipment_ids(api, order_id)
        failed = await record(
            api,
            shipment,
            scan(
                "2024-05-02T11:00:00+02:00",
                "delivery_failed",
                reason="consignee_not_home",
                code="DE",
            ),
        )
        assert failed["tracking"]["status"] == "DELIVERY_FAILED"
        assert failed["tracking"]["reason"] == "CONSIGNEE_NOT_HOME"
        assert (await read(api, order_id))["status"] == "SHIPPED"

        delivered = await record(api, shipment, scan("2024-05-03T10:00:00+02:00", "delivered"))
        assert delivered["tracking"]["status"] == "DELIVERED"
        assert delivered["tracking"]["reason"] is None
        assert delivered["tracking"]["deliveredAt"] == "2024-05-03T08:00:00+00:00"
        order = await read(api, order_id)
        assert order["status"] == "DELIVERED"
        last = order["events"][-1]
        assert (last["type"], last["toStatus"], last["actor"]) == (
            "transition",
            "DELIVERED",
            "system:ordergraph",
        )


async def test_an_order_in_two_shipments_is_delivered_when_the_second_arrives(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 50))
        order = await approved(api, "TWO-1", lines=[{"sku": "MUG", "quantity": 2}])
        await api.data(PICK, {"id": task(order, "pick")["id"]}, as_="pia")
        await api.data(
            PACK, {"id": task(order, "pack")["id"], "parcels": [parcel((1, 1))]}, as_="pia"
        )
        await api.data(
            SHIP_BY,
            {"id": task(order, "ship")["id"], "carrier": "manual", "numbers": ["A"]},
            as_="pia",
        )
        first, *_ = await shipment_ids(api, order["id"])
        await record(api, first, scan("2024-05-03T10:00:00+02:00", "delivered"))
        assert (await read(api, order["id"]))["status"] == "PROCESSING"
        more = await api.data(
            SHIP_MORE,
            {
                "id": order["id"],
                "input": {
                    "carrier": "manual",
                    "trackingNumber": "B",
                    "lines": [{"lineNo": 1, "quantity": 1}],
                },
            },
            as_="pia",
        )
        assert more["shipOrder"]["order"]["status"] == "SHIPPED"
        _, second = await shipment_ids(api, order["id"])
        await record(api, second, scan("2024-05-04T10:00:00+02:00", "in_transit"))
        assert (await read(api, order["id"]))["status"] == "SHIPPED"
        await record(api, second, scan("2024-05-05T10:00:00+02:00", "delivered"))
        assert (await read(api, order["id"]))["status"] == "DELIVERED"


async def test_the_eta_keeps_its_history_and_is_judged_against_the_promise(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        order_id = await shipped(api, "ETA-1")
        [shipment] = await shipment_ids(api, order_id)
        promised = await api.data(PROMISE, {"id": shipment, "date": "2024-05-04"})
        assert promised["setPromisedDate"] == {
            "tracking": {"promisedDate": "2024-05-04", "onTimeStatus": "UNKNOWN"},
            "errors": [],
        }
        first = {"windowFrom": "2024-05-03T09:00:00+02:00", "windowTo": "2024-05-03T18:00:00+02:00"}
        result = await record(
            api, shipment, scan("2024-05-01T09:00:00+02:00", "in_transit"), estimate=first
        )
        assert result["tracking"]["onTimeStatus"] == "ON_TIME"
        # The same estimate again is no new history; a later one is, and it breaks the promise.
        await record(api, shipment, estimate=first)
        later = {"estimatedDelivery": "2024-05-06T12:00:00+02:00"}
        result = await record(api, shipment, estimate=later)
        tracked = result["tracking"]
        assert [h["windowTo"] or h["estimatedDelivery"] for h in tracked["etaHistory"]] == [
            "2024-05-03T16:00:00+00:00",
            "2024-05-06T10:00:00+00:00",
        ]
        assert tracked["estimate"]["estimatedDelivery"] == "2024-05-06T10:00:00+00:00"
        assert tracked["onTimeStatus"] == "LATE"
        result = await record(api, shipment, scan("2024-05-04T17:00:00+02:00", "delivered"))
        assert result["tracking"]["onTimeStatus"] == "ON_TIME"


async def test_bad_events_are_refused_by_field_and_nothing_is_stored(database_url: str) -> None:
    async with shop(database_url) as api:
        order_id = await shipped(api, "BAD-1")
        [shipment] = await shipment_ids(api, order_id)
        result = await record(
            api,
            shipment,
            scan("2024-05-01T09:00:00+02:00", "in_transit"),
            scan("2024-05-01T10:00:00", "in_transit"),
            {
                "occurredAt": "2024-05-01T11:00:00+00:00",
                "status": "IN_TRANSIT",
                "location": {"country": "USA", "latitude": "91"},
            },
        )
        assert {(e["field"], e["code"]) for e in result["errors"]} == {
            ("events[1].occurredAt", "INVALID_VALUE"),
            ("events[2].location.country", "INVALID_VALUE"),
            ("events[2].location.latitude", "INVALID_VALUE"),
        }
        # A status or reason outside karrio's lists is not one of the enums' values.
        unknown_status = await api.gql(
            RECORD,
            {"id": shipment, "events": [scan("2024-05-01T10:00:00Z", "lost_in_space")]},
            as_="pia",
        )
        assert "LOST_IN_SPACE" in unknown_status["errors"][0]["message"]
        assert "TrackingStatus" in unknown_status["errors"][0]["message"]
        assert (await api.data(TRACKING, {"id": order_id}))["shipmentTracking"][0]["events"] == []
        unknown = await record(api, "999999", scan("2024-05-01T09:00:00+02:00", "in_transit"))
        assert unknown["errors"][0]["code"] == "NOT_FOUND"


async def test_the_manual_carrier_records_only_its_own_shipments_and_customers_only_read(
    database_url: str,
) -> None:
    # AfterShip tracks every courier's parcels: a shipment may name "dhl".
    aftership = {"aftership": {"enabled": True, "webhook_secret": "secret"}}
    async with shop(database_url, more_plugins=aftership) as api:
        order_id = await shipped(api, "DHL-1", carrier="dhl")
        [shipment] = await shipment_ids(api, order_id)
        refused = await record(api, shipment, scan("2024-05-01T09:00:00+02:00", "in_transit"))
        assert refused["errors"][0]["field"] == "shipmentId"
        as_customer = await api.gql(RECORD, {"id": shipment, "events": []}, as_="ada")
        assert as_customer["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        mine = await api.data(TRACKING, {"id": order_id}, as_="ada")
        assert mine["shipmentTracking"][0]["carrier"] == "dhl"
        theirs = await api.gql(TRACKING, {"id": order_id}, as_="bob")
        assert theirs["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_ingesting_one_carrier_response_takes_a_fixed_number_of_statements(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        order_id = await shipped(api, "COUNT-1")
        [shipment] = await shipment_ids(api, order_id)
        row = await updates.shipment_row(int(shipment))

        def update(n: int) -> updates.TrackingUpdate:
            import datetime

            start = datetime.datetime(
                2024, 5, 1, 9, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
            )
            return updates.TrackingUpdate(
                events=[
                    updates.TrackingEvent(
                        start + datetime.timedelta(hours=i), "in_transit", f"scan {i}"
                    )
                    for i in range(n)
                ],
                estimate=updates.Estimate(start + datetime.timedelta(days=n)),
                source="count",
            )

        with db.count_statements() as one:
            await updates.ingest(api.rt, int(shipment), update(1), shipment=row)
        with db.count_statements() as twenty:
            await updates.ingest(api.rt, int(shipment), update(20), shipment=row)
        assert one.count == twenty.count
        print(f"\ningest one carrier response: {twenty.count} statements")
