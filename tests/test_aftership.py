"""AfterShip's signed tracking webhook through the real app."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

from conftest import Api, make_settings, serve_api
from test_fulfilment import read, team
from test_tracking import TRACKING, shipped

from ordergraph.core import auth
from ordergraph.stages.entry.tables import ImportError_
from ordergraph.stages.tracking.tables import TrackingEventRow

SECRET = "aftership-secret"


@contextlib.asynccontextmanager
async def aftership_shop(database_url: str) -> AsyncIterator[Api]:
    plugins = {
        "stock": {"enabled": True},
        "rules": {"enabled": True, "rules": ["-> packers"]},
        "aftership": {"enabled": True, "webhook_secret": SECRET},
    }
    async with serve_api(make_settings(database_url, plugins=plugins)) as api:
        api.tokens["pia"] = await auth.create_token("staff", name="pia", team="packers")
        await team(api, "packers", ("pia", 50))
        yield api


def checkpoint(when: str, tag: str, subtag: str, message: str, **more: Any) -> dict[str, Any]:
    return {
        "slug": "fedex",
        "city": "Reno",
        "state": "NV",
        "zip": "89501",
        "country_iso3": "USA",
        "country_name": "United States",
        "coordinates": [39.5296, -119.8138],
        "message": message,
        "tag": tag,
        "subtag": subtag,
        "checkpoint_time": when,
        **more,
    }


def delivery(number: str, *checkpoints: dict[str, Any], event_id: str = "ev-1", **msg: Any):
    body = {
        "event": "tracking_update",
        "event_id": event_id,
        "is_tracking_first_tag": False,
        "msg": {
            "id": "trk-1",
            "tracking_number": number,
            "slug": "fedex",
            "tag": checkpoints[-1]["tag"] if checkpoints else "Pending",
            "checkpoints": list(checkpoints),
            **msg,
        },
        "ts": 1714150000,
    }
    return json.dumps(body).encode()


async def post(api: Api, body: bytes, secret: str = SECRET) -> Any:
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return await api.client.post(
        "/plugins/aftership/webhook",
        content=body,
        headers={"aftership-hmac-sha256": signature.decode(), "content-type": "application/json"},
    )


async def test_a_signed_update_is_ingested_once_and_delivers_the_order(database_url: str) -> None:
    async with aftership_shop(database_url) as api:
        order_id = await shipped(api, "AS-1", carrier="fedex")
        body = delivery(
            "AS-1-T",
            checkpoint("2024-04-26T08:10:00-07:00", "OutForDelivery", "OutForDelivery_001", "Out"),
            checkpoint("2024-04-26T14:29:00-07:00", "Delivered", "Delivered_001", "Delivered"),
            aftership_estimated_delivery_date={
                "estimated_delivery_date": "2024-04-26",
                "estimated_delivery_date_min": "2024-04-26T08:00:00-07:00",
                "estimated_delivery_date_max": "2024-04-26T20:00:00-07:00",
            },
            order_promised_delivery_date="2024-04-27",
        )
        # Two copies at once and one later: one ingestion.
        first, second = await asyncio.gather(post(api, body), post(api, body))
        third = await post(api, body)
        assert {first.status_code, second.status_code, third.status_code} == {200}
        assert third.json() == {"status": "duplicate"}
        assert await TrackingEventRow.count() == 2
        [tracked] = (await api.data(TRACKING, {"id": order_id}))["shipmentTracking"]
        assert tracked["status"] == "DELIVERED"
        assert tracked["deliveredAt"] == "2024-04-26T21:29:00+00:00"
        assert tracked["events"][0]["location"] == {
            "city": "Reno",
            "region": "NV",
            "postalCode": "89501",
            "country": "US",
            "latitude": "39.5296",
            "longitude": "-119.8138",
        }
        assert tracked["estimate"]["windowTo"] == "2024-04-27T03:00:00+00:00"
        assert (tracked["promisedDate"], tracked["onTimeStatus"]) == ("2024-04-27", "ON_TIME")
        assert (await read(api, order_id))["status"] == "DELIVERED"


async def test_a_refused_parcel_is_a_failed_delivery_with_its_reason(database_url: str) -> None:
    async with aftership_shop(database_url) as api:
        order_id = await shipped(api, "AS-2", carrier="fedex")
        body = delivery(
            "AS-2-T",
            checkpoint("2024-04-26T10:00:00+02:00", "Exception", "Exception_003", "Refused"),
        )
        assert (await post(api, body)).json()["tracking"] == "delivery_failed"
        [tracked] = (await api.data(TRACKING, {"id": order_id}))["shipmentTracking"]
        assert (tracked["reason"], tracked["events"][0]["code"]) == (
            "CONSIGNEE_REFUSED",
            "Exception_003",
        )


async def test_a_wrong_signature_is_refused_and_nothing_is_stored(database_url: str) -> None:
    async with aftership_shop(database_url) as api:
        await shipped(api, "AS-3", carrier="fedex")
        body = delivery("AS-3-T", checkpoint("2024-04-26T10:00:00Z", "InTransit", "", "Moving"))
        refused = await post(api, body, secret="not-the-secret")
        assert refused.status_code == 401
        assert "aftership-hmac-sha256" in refused.json()["error"]
        assert await TrackingEventRow.count() == 0
        # Refused deliveries are not remembered: the signed retry is ingested.
        assert (await post(api, body)).json()["newEvents"] == 1


async def test_an_unreadable_update_goes_to_the_inbox_and_an_unknown_number_is_ignored(
    database_url: str,
) -> None:
    async with aftership_shop(database_url) as api:
        await shipped(api, "AS-4", carrier="fedex")
        no_offset = delivery(
            "AS-4-T", checkpoint("2024-04-26T10:00:00", "InTransit", "", "Moving"), event_id="e2"
        )
        answer = await post(api, no_offset)
        assert answer.status_code == 200 and answer.json()["status"] == "rejected"
        [entry] = await ImportError_.select().where(ImportError_.channel == "aftership")
        reasons = entry["reasons"]
        reasons = json.loads(reasons) if isinstance(reasons, str) else reasons
        assert reasons[0]["field"] == "msg.checkpoints[0].checkpoint_time"
        unknown = delivery(
            "NOPE", checkpoint("2024-04-26T10:00:00Z", "InTransit", "", "x"), event_id="e3"
        )
        assert (await post(api, unknown)).json()["status"] == "ignored"
        assert await TrackingEventRow.count() == 0


def signed_body(data: Any) -> bytes:
    return json.dumps(data).encode()


HUGE = "a number beyond a float"


async def test_signed_updates_with_fields_of_the_wrong_type_are_kept_for_a_person(
    database_url: str,
) -> None:
    """A signed delivery answered 5xx is retried for days: every field of the wrong type or
    with a value no event can hold is answered 200 and kept in the inbox, naming it."""
    async with aftership_shop(database_url) as api:
        await shipped(api, "AS-5", carrier="fedex")
        good = checkpoint("2024-04-26T10:00:00Z", "InTransit", "", "Moving")
        cases = {
            "msg.checkpoints": {"checkpoints": "InTransit"},
            "msg.checkpoints[0]": {"checkpoints": [["not", "an", "object"]]},
            "msg.checkpoints[0].message": {"checkpoints": [good | {"message": {"a": 1}}]},
            "msg.checkpoints[0].coordinates": {"checkpoints": [good | {"coordinates": ["x", 1]}]},
            "events[0].location.latitude": {"checkpoints": [good | {"coordinates": [HUGE, 1]}]},
            "events[0].location.city": {"checkpoints": [good | {"city": "Re\u001bno"}]},
            "events[0].occurredAt": {
                "checkpoints": [good | {"checkpoint_time": "0001-01-01T00:00:00+14:00"}]
            },
            "msg.aftership_estimated_delivery_date": {"aftership_estimated_delivery_date": [1]},
            "msg.expected_delivery": {"expected_delivery": 20240426},
            "msg.order_promised_delivery_date": {"order_promised_delivery_date": ["2024-04-27"]},
        }
        answers = {}
        for i, (field, msg) in enumerate(cases.items()):
            body = json.loads(delivery("AS-5-T", event_id=f"typed-{i}"))
            body["msg"] |= msg
            answer = await post(api, json.dumps(body).replace(f'"{HUGE}"', "1e400").encode())
            answers[field] = answer.status_code, answer.json()["status"]
        wrong_number = json.loads(delivery("AS-5-T", good, event_id="typed-number"))
        wrong_number["msg"]["tracking_number"] = {"number": "AS-5-T"}
        number_answer = await post(api, signed_body(wrong_number))
        entries = await ImportError_.select().where(ImportError_.channel == "aftership")
        stored = await TrackingEventRow.count()
    assert answers == {field: (200, "rejected") for field in cases}
    assert (number_answer.status_code, number_answer.json()["status"]) == (200, "rejected")
    fields = set()
    for entry in entries:
        reasons = entry["reasons"]
        reasons = json.loads(reasons) if isinstance(reasons, str) else reasons
        fields |= {reason["field"] for reason in reasons}
    assert set(cases) | {"msg.tracking_number"} <= fields
    assert stored == 0
