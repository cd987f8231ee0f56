"""The webhooks notifier: signed order events posted to a real receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from carrier_server import serve
from conftest import make_settings, serve_api, submit
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from ordergraph.core.assembly import build
from ordergraph.core.orders import event_view
from ordergraph.core.plugins import PluginConfigError
from ordergraph.core.tables import OrderEvent
from ordergraph.stages.tracking.tables import Notification

SECRET = "whsec-test"


class Receiver:
    def __init__(self, failures: int = 0) -> None:
        self.received: list[tuple[dict[str, Any], str, bytes]] = []
        self.failures = failures

    def app(self) -> Starlette:
        async def hook(request: Request) -> PlainTextResponse:
            if self.failures:
                self.failures -= 1
                return PlainTextResponse("busy", status_code=503)
            body = await request.body()
            self.received.append((json.loads(body), request.headers["ordergraph-signature"], body))
            return PlainTextResponse("ok")

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


def verify(header: str, body: bytes) -> bool:
    """What an integrator does: recompute v1 over "t.body", refuse an old t."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(SECRET.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256)
    fresh = abs(time.time() - int(fields["t"])) < 300
    return fresh and hmac.compare_digest(expected.hexdigest(), fields["v1"])


def webhook_settings(database_url: str, url: str, types: str = "submitted"):
    plugins = {
        "webhooks": {
            "enabled": True,
            "signing_secret": SECRET,
            "endpoints": {"erp": f"{url}/hook"},
            "event_types": {"erp": types},
            # The receiver is on this machine, an internal host: allowed by name.
            "allowed_hosts": ["127.0.0.1"],
        }
    }
    return make_settings(database_url, plugins=plugins)


async def test_a_signed_event_reaches_the_integrator_once_after_retries(database_url: str) -> None:
    receiver = Receiver(failures=2)
    async with (
        serve(receiver.app()) as url,
        serve_api(webhook_settings(database_url, url)) as api,
    ):
        order = await submit(api, "WH-1")
        await api.rt.runner.drain()
        [(body, header, raw)] = receiver.received
        assert verify(header, raw)
        assert (body["type"], body["order"]["number"]) == ("submitted", order["number"])
        row = await Notification.select().where(Notification.channel == "webhook:erp").first()
        assert (row["outcome"], row["attempts"]) == ("sent", 3)
        logged = [
            event_view(e).data
            for e in await OrderEvent.select().where(OrderEvent.type == "notification")
        ]
        assert [(d["outcome"], d["attempts"]) for d in logged] == [
            ("failed", 1),
            ("failed", 2),
            ("sent", 3),
        ]


async def test_an_event_can_be_replayed_and_other_types_are_not_sent(database_url: str) -> None:
    receiver = Receiver()
    async with (
        serve(receiver.app()) as url,
        serve_api(webhook_settings(database_url, url)) as api,
    ):
        order = await submit(api, "WH-2")
        await api.rt.runner.drain()
        # Only "submitted" was asked for; the transitions of review were not sent.
        assert [b["type"] for b, _, _ in receiver.received] == ["submitted"]
        event_id = receiver.received[0][0]["id"]
        replay = """
        mutation($o: ID!, $e: ID!) {
          replayWebhook(orderId: $o, eventId: $e, endpoint: "erp") { queued errors { code } }
        }"""
        done = await api.data(replay, {"o": order["id"], "e": str(event_id)})
        assert done["replayWebhook"] == {"queued": True, "errors": []}
        await api.rt.runner.drain()
        assert [b["id"] for b, _, _ in receiver.received] == [event_id, event_id]
        assert all(verify(h, raw) for _, h, raw in receiver.received)
        staff = await api.gql(replay, {"o": order["id"], "e": str(event_id)}, as_="staff")
        assert staff["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        unknown = await api.data(replay, {"o": order["id"], "e": "999999"})
        assert unknown["replayWebhook"]["errors"] == [{"code": "NOT_FOUND"}]


def test_config_endpoints_need_the_signing_secret_at_start_up(database_url: str) -> None:
    plugins = {"webhooks": {"enabled": True, "endpoints": {"erp": "http://127.0.0.1:9/hook"}}}
    with pytest.raises(PluginConfigError, match=r"plugins\.webhooks\.signing_secret is required"):
        build(make_settings(database_url, plugins=plugins))


def test_a_config_endpoint_on_an_internal_host_stops_start_up(database_url: str) -> None:
    webhooks = {
        "enabled": True,
        "signing_secret": SECRET,
        "endpoints": {"metadata": "http://169.254.169.254/latest/meta-data/"},
    }
    with pytest.raises(PluginConfigError, match=r"plugins\.webhooks\.endpoints\.metadata: "):
        build(make_settings(database_url, plugins={"webhooks": webhooks}))
    webhooks["allowed_hosts"] = ["169.254.169.254"]  # named, it is allowed
    build(make_settings(database_url, plugins={"webhooks": webhooks}))
