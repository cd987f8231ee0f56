"""Stripe against a local HTTP server that answers as Stripe's API does for the calls used:
one PaymentIntent per statement, and a signed webhook recorded once."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from test_settlement import confirmed, delivered, read, shop

from ordergraph.core import payments
from ordergraph.core.settlement.statements import statement_by_number
from plugins.payments import stripe_payments

SECRET = "whsec_test_secret"


class FakeStripe:
    """``POST /v1/payment_intents``: the first request under an Idempotency-Key creates
    a PaymentIntent; later ones replay the first response, as Stripe does."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.replies: dict[str, dict[str, Any]] = {}
        self.app = Starlette(routes=[Route("/v1/payment_intents", self.create, methods=["POST"])])

    async def create(self, request: Request) -> JSONResponse:
        assert request.headers["authorization"] == "Bearer sk_test_123"
        key = request.headers["idempotency-key"]
        form = dict(parse_qsl((await request.body()).decode()))
        self.requests.append((key, form))
        if key not in self.replies:
            n = len(self.replies) + 1
            self.replies[key] = {
                "id": f"pi_{n}", "object": "payment_intent", "amount": int(form["amount"]),
                "currency": form["currency"], "status": "requires_payment_method",
                "client_secret": f"pi_{n}_secret", "metadata": {
                    k[len("metadata["):-1]: v for k, v in form.items() if k.startswith("metadata[")
                },
            }  # fmt: skip
        return JSONResponse(self.replies[key], headers={"Idempotent-Replayed": "true"})


@contextlib.asynccontextmanager
async def fake_stripe() -> AsyncIterator[tuple[FakeStripe, str]]:
    fake = FakeStripe()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(fake.app, port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def signed(event: dict[str, Any], *, at: int | None = None, secret: str = SECRET):
    body = json.dumps(event)
    t = at if at is not None else int(time.time())
    v1 = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return body, {"Stripe-Signature": f"t={t},v1={v1}", "Content-Type": "application/json"}


async def test_a_payment_intent_per_statement_and_a_webhook_recorded_once(
    database_url: str,
) -> None:
    async with fake_stripe() as (fake, api_base):
        settings = {"api_key": "sk_test_123", "webhook_secret": SECRET, "api_base": api_base}
        async with shop(
            database_url,
            extra={"stripe": stripe_payments},
            plugin_settings={"stripe": settings},
            shipping_charge="0",
        ) as api:
            order_id = await delivered(api, "STRIPE-1", [{"sku": "MUG", "quantity": 2}])
            order = await confirmed(api, order_id)
            number = order["statement"]["number"]
            statement = await statement_by_number(number)
            assert statement is not None
            # A retried job asks again under the same key and gets the same PaymentIntent.
            await payments.request_payment(api.rt, statement)
            requested = [e for e in (await read(api, order_id))["events"]
                         if e["type"] == "payment_requested"]  # fmt: skip

            succeeded = {
                "id": "evt_1", "type": "payment_intent.succeeded",
                "data": {"object": {"id": "pi_1", "object": "payment_intent", "amount": 2975,
                                    "amount_received": 2975, "currency": "eur",
                                    "metadata": {"statement": number}}},
            }  # fmt: skip
            forged_body, forged = signed(succeeded, secret="whsec_other")
            stale_body, stale = signed(succeeded, at=int(time.time()) - 301)
            body, headers = signed(succeeded)
            refused = [
                await api.client.post(stripe_payments.WEBHOOK_PATH, content=b, headers=h)
                for b, h in ((forged_body, forged), (stale_body, stale))
            ]
            answers = await asyncio.gather(
                *(
                    api.client.post(stripe_payments.WEBHOOK_PATH, content=body, headers=headers)
                    for _ in range(10)
                )
            )
            entries = await payments.entries_of(statement.id)
            settled = await read(api, order_id)

    assert [key for key, _ in fake.requests] == [f"statement-{number}"] * 2
    assert fake.requests[0][1]["amount"] == "2975"
    assert fake.requests[0][1]["currency"] == "eur"
    assert fake.requests[0][1]["metadata[statement]"] == number
    assert len(fake.replies) == 1
    assert [e["data"]["reference"] for e in requested] == ["pi_1", "pi_1"]
    assert [r.status_code for r in refused] == [400, 400]
    assert all(a.status_code == 200 for a in answers)
    assert [(e.kind, str(e.amount), e.method) for e in entries] == [("captured", "29.75", "stripe")]
    assert settled["status"] == "SETTLED"
