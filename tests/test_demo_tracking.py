"""The demo has tracked shipments: a failed delivery with its open alert, a delivered parcel."""

from __future__ import annotations

from conftest import Api
from test_docs import demo_api  # noqa: F401  (the fixture)


async def test_the_demo_shows_a_failed_delivery_with_an_open_alert(demo_api: Api) -> None:  # noqa: F811
    await demo_api.rt.runner.drain()
    tracked = await demo_api.data(
        '{ shipmentTracking(orderId: "3") { status reason events { localTime status } } }'
    )
    [shipment] = tracked["shipmentTracking"]
    assert (shipment["status"], shipment["reason"]) == ("delivery_failed", "consignee_not_home")
    assert shipment["events"][0]["localTime"] == "2024-05-04T13:30:00+02:00"
    open_alerts = await demo_api.data("{ alerts(state: OPEN) { kind orderNumber team } }")
    assert open_alerts["alerts"] == [
        {"kind": "delivery_failed", "orderNumber": "SO-000003", "team": "packers"}
    ]
    delivered = await demo_api.data('{ shipmentTracking(orderId: "4") { status } }')
    assert delivered["shipmentTracking"][0]["status"] == "delivered"
