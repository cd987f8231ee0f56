"""Webhook endpoints registered through GraphQL, each with its own secret, posting to a
real receiver on 127.0.0.1: signed deliveries, logged and replayable, none after deletion."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import socket
import time
from typing import Any

from carrier_server import serve
from conftest import Api, make_settings, serve_api, submit
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from test_webhooks_notifier import Receiver

REGISTER = """
mutation($input: RegisterWebhookEndpointInput!) {
  registerWebhookEndpoint(input: $input) {
    endpoint { id url eventTypes description createdBy createdAt secretRotatedAt }
    secret
    errors { field code message }
  }
}
"""
ENDPOINTS = "{ webhookEndpoints { id url eventTypes } }"
DELIVERIES = """
query($e: ID!) {
  webhookDeliveries(endpointId: $e) {
    edges { node { id endpointId orderId eventId eventType outcome attempts } }
  }
}
"""


async def deliveries_of(api: Api, query: str, endpoint_id: str) -> list[dict[str, Any]]:
    page = (await api.data(query, {"e": endpoint_id}))["webhookDeliveries"]
    return [edge["node"] for edge in page["edges"]]


REPLAY = "mutation($id: ID!) { replayWebhookDelivery(id: $id) { queued errors { field code } } }"
DELETE = "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { deleted errors { field code } } }"
ROTATE = """
mutation($id: ID!) {
  rotateWebhookEndpointSecret(id: $id) { endpoint { secretRotatedAt } secret errors { code } }
}
"""


def fields_of(header: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in header.split(","))


def verify(header: str, body: bytes, secret: str) -> bool:
    """What an integrator does with the secret it was given: recompute v1 over "t.body"
    and refuse an old t."""
    fields = fields_of(header)
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256)
    fresh = abs(time.time() - int(fields["t"])) < 300
    return fresh and hmac.compare_digest(expected.hexdigest(), fields["v1"])


def settings_for(database_url: str) -> Any:
    # No endpoint in the config file: only those registered through the API.
    # The receiver is on this machine, an internal host: allowed by name.
    webhooks = {"enabled": True, "allowed_hosts": ["127.0.0.1"]}
    return make_settings(database_url, plugins={"webhooks": webhooks})


async def test_a_registered_endpoint_gets_signed_events_until_it_is_deleted(
    database_url: str,
) -> None:
    receiver = Receiver()
    async with serve(receiver.app()) as url, serve_api(settings_for(database_url)) as api:
        erp = {"url": f"{url}/hook", "eventTypes": ["submitted"], "description": "ERP"}
        registered = (await api.data(REGISTER, {"input": erp}))["registerWebhookEndpoint"]
        endpoint, secret = registered["endpoint"], registered["secret"]
        listed = (await api.data(ENDPOINTS))["webhookEndpoints"]
        never_shown = await api.gql("{ webhookEndpoints { secret } }")

        order = await submit(api, "WHE-1")
        await api.rt.runner.drain()
        [(body, header, raw)] = receiver.received
        [delivery] = await deliveries_of(api, DELIVERIES, endpoint["id"])

        replayed = await api.data(REPLAY, {"id": delivery["id"]})
        await api.rt.runner.drain()
        logged = await deliveries_of(api, DELIVERIES, endpoint["id"])

        deleted = await api.data(DELETE, {"id": endpoint["id"]})
        await submit(api, "WHE-2")
        await api.rt.runner.drain()
        after_delete = await api.data(REPLAY, {"id": delivery["id"]})
        await api.rt.runner.drain()
        listed_after = (await api.data(ENDPOINTS))["webhookEndpoints"]

    assert registered["errors"] == []
    assert endpoint["eventTypes"] == ["submitted"] and endpoint["createdBy"] == "admin:alice"
    assert secret.startswith("whsec_") and len(secret) > 40
    created = datetime.datetime.fromisoformat(endpoint["createdAt"])
    assert created.tzinfo is not None and endpoint["secretRotatedAt"] is None
    assert listed == [{"id": endpoint["id"], "url": f"{url}/hook", "eventTypes": ["submitted"]}]
    assert "secret" in never_shown["errors"][0]["message"]
    # The first delivery verifies with the secret the registration answered.
    assert verify(header, raw, secret)
    assert not verify(header, raw, "whsec_someone_else")
    assert (body["type"], body["order"]["number"]) == ("submitted", order["number"])
    assert delivery["outcome"] == "SENT" and delivery["attempts"] == 1
    assert (delivery["orderId"], delivery["eventId"]) == (order["id"], str(body["id"]))
    # The replay is the same event, signed again at the time it was sent.
    assert replayed["replayWebhookDelivery"] == {"queued": True, "errors": []}
    assert len(receiver.received) == 2
    (again, again_header, again_raw) = receiver.received[1]
    assert again["id"] == body["id"] and verify(again_header, again_raw, secret)
    assert int(fields_of(again_header)["t"]) >= int(fields_of(header)["t"])
    assert [(d["id"], d["attempts"], d["outcome"]) for d in logged] == [(delivery["id"], 2, "SENT")]
    # Deleted: the next order's event and a replay send nothing.
    assert deleted["deleteWebhookEndpoint"] == {"deleted": True, "errors": []}
    assert after_delete["replayWebhookDelivery"] == {
        "queued": False,
        "errors": [{"field": "id", "code": "NOT_FOUND"}],
    }
    assert len(receiver.received) == 2
    assert listed_after == []


async def test_only_an_admin_registers_and_a_bad_endpoint_is_refused_by_field(
    database_url: str,
) -> None:
    receiver = Receiver()
    async with serve(receiver.app()) as url, serve_api(settings_for(database_url)) as api:
        good = {"url": f"{url}/hook", "eventTypes": ["*"]}
        refused_roles = [
            (await api.gql(REGISTER, {"input": good}, as_=role))["errors"][0]["extensions"]["code"]
            for role in ("staff", "integrator", "ada")
        ]
        staff_list = await api.gql(ENDPOINTS, as_="staff")
        bad = [
            (await api.data(REGISTER, {"input": input}))["registerWebhookEndpoint"]["errors"]
            for input in (
                {"url": "ftp://example.com/hook", "eventTypes": ["submitted"]},
                {"url": "not a url", "eventTypes": ["submitted"]},
                {"url": "https://" + "a" * 1000 + ".example", "eventTypes": ["submitted"]},
                {"url": f"{url}/hook", "eventTypes": []},
                {"url": f"{url}/hook", "eventTypes": ["submitted", "Not A Type"]},
            )
        ]
        nothing_stored = (await api.data(ENDPOINTS))["webhookEndpoints"]

        # A rotated secret signs the next delivery; the old one verifies nothing more.
        registered = (await api.data(REGISTER, {"input": good}))["registerWebhookEndpoint"]
        rotated = await api.data(ROTATE, {"id": registered["endpoint"]["id"]})
        await submit(api, "WHE-3")
        await api.rt.runner.drain()

    assert refused_roles == ["FORBIDDEN"] * 3
    assert staff_list["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert [[(e["field"], e["code"]) for e in errors] for errors in bad] == [
        [("url", "INVALID_VALUE")],
        [("url", "INVALID_VALUE")],
        [("url", "TOO_LONG")],
        [("eventTypes", "REQUIRED")],
        [("eventTypes[1]", "INVALID_VALUE")],
    ]
    assert nothing_stored == []
    new_secret = rotated["rotateWebhookEndpointSecret"]["secret"]
    assert new_secret and new_secret != registered["secret"]
    rotated_at = rotated["rotateWebhookEndpointSecret"]["endpoint"]["secretRotatedAt"]
    assert datetime.datetime.fromisoformat(rotated_at).tzinfo is not None
    assert receiver.received, "the event of WHE-3 was delivered"
    assert all(verify(h, raw, new_secret) for _, h, raw in receiver.received)
    assert not any(verify(h, raw, registered["secret"]) for _, h, raw in receiver.received)


async def test_a_retry_queued_before_the_endpoint_was_deleted_is_not_sent(
    database_url: str,
) -> None:
    calls: list[bytes] = []
    async with serve_api(settings_for(database_url)) as api:

        async def deleting_while_busy(request: Request) -> PlainTextResponse:
            # The integrator deletes the endpoint while its first delivery fails.
            calls.append(await request.body())
            await api.data(DELETE, {"id": endpoint_id})
            return PlainTextResponse("busy", status_code=503)

        receiver = Starlette(routes=[Route("/hook", deleting_while_busy, methods=["POST"])])
        async with serve(receiver) as url:
            hook = {"url": url + "/hook", "eventTypes": ["submitted"]}
            registered = await api.data(REGISTER, {"input": hook})
            endpoint_id = registered["registerWebhookEndpoint"]["endpoint"]["id"]
            await submit(api, "WHE-4")
            await api.rt.runner.drain()
            [delivery] = await deliveries_of(api, DELIVERIES, endpoint_id)

    assert len(calls) == 1
    assert (delivery["outcome"], delivery["attempts"]) == ("FAILED", 1)


LAST_ERRORS = (
    "query($e: ID!) { webhookDeliveries(endpointId: $e) { edges { node { outcome lastError } } } }"
)


def with_allowed(database_url: str, *hosts: str) -> Any:
    return make_settings(
        database_url, plugins={"webhooks": {"enabled": True, "allowed_hosts": list(hosts)}}
    )


async def test_internal_targets_and_credentials_are_refused_at_registration(
    database_url: str,
) -> None:
    internal = [
        "http://127.0.0.1/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://192.168.1.20:8080/hook",
        "http://2130706433/hook",  # 127.0.0.1 as one decimal number
        "http://0x7f.0.0.1/hook",
        "http://0177.0.0.1/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:a9fe:a9fe]/hook",  # 169.254.169.254, IPv4-mapped
        "http://0.0.0.0/hook",
        "http://localhost:8000/hook",
        "http://api.localhost/hook",
        "https://user:pass@hooks.example.com/hook",
    ]
    async with serve_api(with_allowed(database_url)) as api:
        answers = [
            (await api.data(REGISTER, {"input": {"url": url, "eventTypes": ["*"]}}))[
                "registerWebhookEndpoint"
            ]
            for url in internal
        ]
        public = await api.data(
            REGISTER, {"input": {"url": "https://hooks.example.com/hook", "eventTypes": ["*"]}}
        )
        listed = (await api.data(ENDPOINTS))["webhookEndpoints"]
    for url, answer in zip(internal, answers, strict=True):
        assert answer["endpoint"] is None, url
        assert [(e["field"], e["code"]) for e in answer["errors"]] == [("url", "INVALID_VALUE")]
    assert "internal address" in answers[0]["errors"][0]["message"]
    assert "credentials" in answers[-1]["errors"][0]["message"]
    assert public["registerWebhookEndpoint"]["errors"] == []
    assert [e["url"] for e in listed] == ["https://hooks.example.com/hook"]


async def test_a_name_that_resolves_to_an_internal_address_is_refused_before_connecting(
    database_url: str,
) -> None:
    receiver = Receiver()
    async with serve(receiver.app()) as url:
        hook = {"url": url.replace("127.0.0.1", "localhost") + "/hook", "eventTypes": ["*"]}
        async with serve_api(with_allowed(database_url, "localhost")) as api:
            registered = await api.data(REGISTER, {"input": hook})
        endpoint_id = registered["registerWebhookEndpoint"]["endpoint"]["id"]
        # The same endpoint once localhost is no longer allowed: its name still resolves
        # to loopback, which each delivery checks before it connects.
        async with serve_api(with_allowed(database_url)) as api:
            await submit(api, "WHE-9")
            await api.rt.runner.drain()
            deliveries = await deliveries_of(api, LAST_ERRORS, endpoint_id)
    assert receiver.received == []
    assert deliveries == [
        {"outcome": "FAILED", "lastError": "refused: the host is not a public address"}
    ]


async def test_delivery_errors_tell_nothing_of_the_network(database_url: str) -> None:
    with socket.socket() as closed:  # a port on this machine where nothing listens
        closed.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
    busy = Receiver(failures=100)
    async with (
        serve(busy.app()) as url,
        serve_api(with_allowed(database_url, "127.0.0.1")) as api,
    ):
        ids = [
            (await api.data(REGISTER, {"input": {"url": to, "eventTypes": ["submitted"]}}))[
                "registerWebhookEndpoint"
            ]["endpoint"]["id"]
            for to in (nobody, f"{url}/hook")
        ]
        await submit(api, "WHE-10")
        await api.rt.runner.drain()
        errors = [(await deliveries_of(api, LAST_ERRORS, i))[0]["lastError"] for i in ids]
    assert errors == ["connection failed", "HTTP 503"]


async def test_an_allowed_name_is_reached_at_the_address_checked_and_keeps_its_host(
    database_url: str,
) -> None:
    hosts: list[str] = []

    async def hook(request: Request) -> PlainTextResponse:
        hosts.append(request.headers["host"])
        return PlainTextResponse("ok")

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve(receiver) as url, serve_api(with_allowed(database_url, "localhost")) as api:
        port = url.rsplit(":", 1)[1]
        hook_url = f"http://localhost:{port}/hook"
        registered = await api.data(REGISTER, {"input": {"url": hook_url, "eventTypes": ["*"]}})
        endpoint_id = registered["registerWebhookEndpoint"]["endpoint"]["id"]
        await submit(api, "WHE-11")
        await api.rt.runner.drain()
        deliveries = await deliveries_of(api, LAST_ERRORS, endpoint_id)
    assert deliveries == [{"outcome": "SENT", "lastError": ""}]
    assert hosts == [f"localhost:{port}"]  # the name, though the connection went to 127.0.0.1
