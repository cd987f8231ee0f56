"""Stripe against a local HTTP server that answers as Stripe's API does for the calls used:
one PaymentIntent per statement, a signed webhook recorded once, and overpayments paid
back as Stripe Refunds."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from test_settlement import confirmed, delivered, read, shop

from ordergraph.stages.entry.masterdata import (
    CustomerData,
    ProductData,
    upsert_customer,
    upsert_products,
)
from ordergraph.stages.settlement import payments
from ordergraph.stages.settlement.statements import statement_by_number
from plugins.payments import stripe_payments

SECRET = "whsec_test_secret"


class FakeStripe:
    """``POST /v1/payment_intents``: the first request under an Idempotency-Key creates
    a PaymentIntent; later ones replay the first response, as Stripe does.

    ``POST /v1/refunds`` likewise: a Refund of a PaymentIntent in ``status`` (Stripe's
    answer to the next refund), refused as Stripe refuses it when the amount is more than
    what is left of ``captured[payment_intent]``; the first answer (even a refusal) is
    replayed under its key, a different request under the same key is an error."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.replies: dict[str, dict[str, Any]] = {}
        self.refund_requests: list[tuple[str, dict[str, str]]] = []
        self.refund_replies: dict[str, tuple[dict[str, str], int, dict[str, Any]]] = {}
        self.captured: dict[str, int] = {}
        self.status = "succeeded"
        self.app = Starlette(
            routes=[
                Route("/v1/payment_intents", self.create, methods=["POST"]),
                Route("/v1/refunds", self.refund, methods=["POST"]),
            ]
        )

    async def refund(self, request: Request) -> JSONResponse:
        assert request.headers["authorization"] == "Bearer sk_test_123"
        key = request.headers["idempotency-key"]
        form = dict(parse_qsl((await request.body()).decode()))
        self.refund_requests.append((key, form))
        if key in self.refund_replies:
            first, status, reply = self.refund_replies[key]
            if first != form:
                status, reply = 400, stripe_error(
                    "idempotency_error", "Keys for idempotent requests can only be used with "
                    "the same parameters they were first used with.",
                )  # fmt: skip
            return JSONResponse(reply, status_code=status, headers={"Idempotent-Replayed": "true"})
        intent, amount = form["payment_intent"], int(form["amount"])
        left = self.captured.get(intent, 0) - sum(
            r["amount"] for _, code, r in self.refund_replies.values()
            if code == 200 and r["payment_intent"] == intent
        )  # fmt: skip
        if amount > left:
            status, reply = 400, stripe_error(
                "amount_too_large", f"Refund amount ({amount}) is greater than unrefunded "
                f"amount on charge ({left})", "invalid_request_error",
            )  # fmt: skip
        else:
            status, reply = 200, {
                "id": f"re_{len(self.refund_replies) + 1}", "object": "refund",
                "amount": amount, "currency": "eur", "payment_intent": intent,
                "status": self.status, "metadata": {
                    k[len("metadata["):-1]: v for k, v in form.items() if k.startswith("metadata[")
                },
            }  # fmt: skip
        self.refund_replies[key] = (form, status, reply)
        return JSONResponse(reply, status_code=status)

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


def stripe_error(code: str, message: str, kind: str = "idempotency_error") -> dict[str, Any]:
    return {"error": {"type": kind, "code": code, "message": message}}


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


REFUND = """
mutation($number: String!, $key: String!) {
  refundOverpayment(statementNumber: $number, method: "stripe", idempotencyKey: $key) {
    created
    entry { kind amount method reference }
    statement { balance { paid overpaid refundPending refundable state } }
    errors { field code message }
  }
}
"""


def succeeded(number: str, received: int) -> dict[str, Any]:
    return {
        "id": "evt_paid", "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_1", "object": "payment_intent", "amount": 2975,
                            "amount_received": received, "currency": "eur",
                            "metadata": {"statement": number}}},
    }  # fmt: skip


@contextlib.asynccontextmanager
async def overpaid_by_card(database_url: str, received: int = 3000):
    """A statement of 29.75 paid with ``received`` cents through Stripe."""
    async with fake_stripe() as (fake, api_base):
        settings = {"api_key": "sk_test_123", "webhook_secret": SECRET, "api_base": api_base}
        async with shop(
            database_url,
            extra={"stripe": stripe_payments},
            plugin_settings={"stripe": settings},
            shipping_charge="0",
        ) as api:
            order_id = await delivered(api, "REFUND-1", [{"sku": "MUG", "quantity": 2}])
            number = (await confirmed(api, order_id))["statement"]["number"]
            body, headers = signed(succeeded(number, received))
            paid = await api.client.post(
                stripe_payments.WEBHOOK_PATH, content=body, headers=headers
            )
            assert paid.status_code == 200
            fake.captured["pi_1"] = received
            statement = await statement_by_number(number)
            assert statement is not None
            yield api, fake, statement


async def post_ten_times(api: Any, event: dict[str, Any]) -> list[Any]:
    body, headers = signed(event)
    return await asyncio.gather(
        *(
            api.client.post(stripe_payments.WEBHOOK_PATH, content=body, headers=headers)
            for _ in range(10)
        )
    )


def ledger(entries: list[payments.EntryView]) -> list[tuple[str, str, str]]:
    return [(e.kind, str(e.amount), e.reference) for e in entries]


async def test_an_overpayment_is_paid_back_as_a_stripe_refund_recorded_once(
    database_url: str,
) -> None:
    async with overpaid_by_card(database_url) as (api, fake, statement):
        before = await payments.entries_of(statement.id)
        done = await api.data(REFUND, {"number": statement.number, "key": "r-1"})
        again = await api.data(REFUND, {"number": statement.number, "key": "r-1"})
        refund = {"id": "re_1", "object": "refund", "amount": 25, "currency": "eur",
                  "payment_intent": "pi_1", "status": "succeeded",
                  "metadata": {"statement": statement.number}}  # fmt: skip
        answers = await post_ten_times(
            api, {"id": "evt_r", "type": "refund.updated", "data": {"object": refund}}
        )
        entries = await payments.entries_of(statement.id)

    assert done["refundOverpayment"] == {
        "created": True,
        "entry": {"kind": "REFUNDED", "amount": "0.25", "method": "stripe", "reference": "re_1"},
        "statement": {"balance": {"paid": "29.75", "overpaid": "0.00", "refundPending": "0.00",
                                  "refundable": "0.00", "state": "PAID"}},
        "errors": [],
    }  # fmt: skip
    assert again["refundOverpayment"]["created"] is False
    assert again["refundOverpayment"]["entry"] == done["refundOverpayment"]["entry"]
    [(key, form)] = fake.refund_requests  # the repeated request did not ask Stripe again
    assert key == f"refund-{statement.number}-after-{before[-1].id}"
    assert (form["payment_intent"], form["amount"]) == ("pi_1", "25")
    assert form["metadata[statement]"] == statement.number
    assert all(a.status_code == 200 for a in answers)
    assert ledger(entries) == [("captured", "30.00", "pi_1"), ("refunded", "0.25", "re_1")]


async def test_a_pending_refund_is_not_repeated_and_its_webhook_completes_it_once(
    database_url: str,
) -> None:
    async with overpaid_by_card(database_url, received=3100) as (api, fake, statement):
        fake.status = "pending"
        pending = await api.data(REFUND, {"number": statement.number, "key": "r-1"})
        other_key = await api.data(REFUND, {"number": statement.number, "key": "r-2"})
        refund = {"id": "re_1", "object": "refund", "amount": 125, "currency": "eur",
                  "payment_intent": "pi_1", "status": "succeeded", "metadata": {}}  # fmt: skip
        charge = {"id": "ch_1", "object": "charge", "payment_intent": "pi_1",
                  "amount_refunded": 125, "metadata": {"statement": statement.number},
                  "refunds": {"object": "list", "data": [refund]}}  # fmt: skip
        answers = await post_ten_times(
            api, {"id": "evt_c", "type": "charge.refunded", "data": {"object": charge}}
        )
        entries = await payments.entries_of(statement.id)
        balance = await payments.balance_of(statement)

    assert pending["refundOverpayment"]["entry"] == {
        "kind": "REFUND_PENDING", "amount": "1.25", "method": "stripe", "reference": "re_1"
    }  # fmt: skip
    assert pending["refundOverpayment"]["statement"]["balance"] == {
        "paid": "31.00", "overpaid": "1.25", "refundPending": "1.25", "refundable": "0.00",
        "state": "OVERPAID",
    }  # fmt: skip
    assert other_key["refundOverpayment"]["errors"][0]["code"] == "NOTHING_TO_REFUND"
    assert len(fake.refund_requests) == 1
    assert [a.json()["handled"] for a in answers] == ["refunded"] * 10
    assert ledger(entries) == [
        ("captured", "31.00", "pi_1"),
        ("refund_pending", "1.25", "re_1"),
        ("refunded", "1.25", "re_1"),
    ]
    assert [str(balance.paid), str(balance.overpaid), str(balance.refund_pending)] == [
        "29.75",
        "0.00",
        "0.00",
    ]


async def test_a_refund_stripe_refuses_names_the_cause_and_records_nothing(
    database_url: str,
) -> None:
    async with overpaid_by_card(database_url) as (api, fake, statement):
        fake.captured["pi_1"] = 10  # most of the payment was refunded in Stripe already
        refused = await api.data(REFUND, {"number": statement.number, "key": "r-1"})
        entries = await payments.entries_of(statement.id)

    [error] = refused["refundOverpayment"]["errors"]
    assert (error["field"], error["code"]) == ("statementNumber", "REFUND_FAILED")
    assert "amount_too_large" in error["message"]
    assert "greater than unrefunded amount on charge (10)" in error["message"]
    assert refused["refundOverpayment"]["entry"] is None
    assert ledger(entries) == [("captured", "30.00", "pi_1")]


async def test_two_refund_requests_at_once_make_one_stripe_refund(database_url: str) -> None:
    async with overpaid_by_card(database_url) as (api, fake, statement):
        answers = await asyncio.gather(
            *(api.data(REFUND, {"number": statement.number, "key": key}) for key in ("a", "b"))
        )
        entries = await payments.entries_of(statement.id)

    refunds = [a["refundOverpayment"] for a in answers]
    assert [r["errors"] for r in refunds] == [[], []]
    assert sorted(r["created"] for r in refunds) == [False, True]
    assert {r["entry"]["reference"] for r in refunds} == {"re_1"}
    assert len(fake.refund_replies) == 1  # Stripe made one refund
    assert ledger(entries) == [("captured", "30.00", "pi_1"), ("refunded", "0.25", "re_1")]


async def test_a_pending_refund_that_fails_later_can_be_asked_for_again(database_url: str) -> None:
    async with overpaid_by_card(database_url) as (api, fake, statement):
        fake.status = "pending"
        await api.data(REFUND, {"number": statement.number, "key": "r-1"})
        failed = {"id": "re_1", "object": "refund", "amount": 25, "currency": "eur",
                  "payment_intent": "pi_1", "status": "failed",
                  "metadata": {"statement": statement.number}}  # fmt: skip
        answers = await post_ten_times(
            api, {"id": "evt_f", "type": "refund.updated", "data": {"object": failed}}
        )
        balance = await payments.balance_of(statement)
        fake.status = "succeeded"
        fake.captured["pi_1"] += 25  # Stripe gave the failed refund's amount back
        retried = await api.data(REFUND, {"number": statement.number, "key": "r-2"})
        entries = await payments.entries_of(statement.id)

    assert [a.json()["handled"] for a in answers] == ["refund_failed"] * 10
    assert (str(balance.refund_pending), str(balance.refundable)) == ("0.00", "0.25")
    assert retried["refundOverpayment"]["entry"]["reference"] == "re_2"
    assert len({key for key, _ in fake.refund_requests}) == 2  # asked under a new key
    assert ledger(entries) == [
        ("captured", "30.00", "pi_1"),
        ("refund_pending", "0.25", "re_1"),
        ("refund_failed", "0.25", "re_1"),
        ("refunded", "0.25", "re_2"),
    ]


ALERTS = """
query($id: ID!) { alerts(orderId: $id) { edges { node { kind state detail } } } }
"""


async def held(api: Any, statement: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The payment_held events on the statement's order, and its alerts."""
    order_id = str(statement.order_id)
    events = [e for e in (await read(api, statement.order_id))["events"]
              if e["type"] == "payment_held"]  # fmt: skip
    page = (await api.data(ALERTS, {"id": order_id}))["alerts"]
    return events, [edge["node"] for edge in page["edges"]]


async def test_a_payment_in_another_currency_is_kept_for_a_person_and_answered_200(
    database_url: str,
) -> None:
    async with overpaid_by_card(database_url) as (api, _, statement):
        yen = succeeded(statement.number, 2748)
        yen["data"]["object"] |= {"id": "pi_yen", "currency": "jpy"}
        unknown = succeeded(statement.number, 500)
        unknown["data"]["object"] |= {"id": "pi_xyz", "currency": "xyz"}
        answers = [*await post_ten_times(api, yen), *await post_ten_times(api, unknown)]
        entries = await payments.entries_of(statement.id)
        events, alerts = await held(api, statement)
        customer_sees = [e["type"] for e in (await read(api, statement.order_id, "ada"))["events"]]

    assert {(a.status_code, a.json()["handled"]) for a in answers} == {(200, "held")}
    assert ledger(entries) == [("captured", "30.00", "pi_1")]
    assert [(e["data"]["amount"], e["data"]["currency"], e["data"]["problems"][0]["code"])
            for e in events] == [("2748", "JPY", "CURRENCY_MISMATCH"),
                                 ("5.00", "XYZ", "CURRENCY_MISMATCH")]  # fmt: skip
    assert "is in EUR, not JPY" in events[0]["data"]["problems"][0]["message"]
    [alert] = alerts  # one open alert per order; every held movement is on the timeline
    assert (alert["kind"], alert["state"], alert["detail"]["reference"]) == (
        "PAYMENT_HELD", "OPEN", "pi_yen"
    )  # fmt: skip
    assert "payment_held" not in customer_sees


async def test_a_signed_refund_beyond_what_was_paid_is_kept_for_a_person(
    database_url: str,
) -> None:
    async with overpaid_by_card(database_url) as (api, _, statement):
        refund = {"id": "re_big", "object": "refund", "amount": 5000, "currency": "eur",
                  "payment_intent": "pi_1", "status": "succeeded",
                  "metadata": {"statement": statement.number}}  # fmt: skip
        answers = await post_ten_times(
            api, {"id": "evt_big", "type": "refund.updated", "data": {"object": refund}}
        )
        entries = await payments.entries_of(statement.id)
        balance = await payments.balance_of(statement)
        events, alerts = await held(api, statement)

    assert {(a.status_code, a.json()["handled"]) for a in answers} == {(200, "held")}
    assert ledger(entries) == [("captured", "30.00", "pi_1")]
    assert str(balance.paid) == "30.00"
    [event] = events
    assert event["data"]["problems"][0]["code"] == "NOTHING_TO_REFUND"
    assert "has 0.25 EUR to refund, less than 50.00" in event["data"]["problems"][0]["message"]
    assert [a["kind"] for a in alerts] == ["PAYMENT_HELD"]


@pytest.mark.parametrize(
    ("currency", "charged"),
    [("JPY", "1785"), ("ISK", "178500")],  # ISK keeps two decimals in Stripe's API
)
async def test_a_statement_is_charged_and_recorded_in_stripes_minor_units(
    database_url: str, currency: str, charged: str
) -> None:
    """1500 + 19 % tax is 1785 yen or krónur, neither of which has a minor unit."""
    async with fake_stripe() as (fake, api_base):
        settings = {"api_key": "sk_test_123", "webhook_secret": SECRET, "api_base": api_base}
        async with shop(
            database_url,
            extra={"stripe": stripe_payments},
            plugin_settings={"stripe": settings},
            shipping_charge="0",
        ) as api:
            await upsert_products([ProductData("CUP", "Cup", Decimal(1500), currency, 10)])
            await upsert_customer(CustomerData("yu@example.com", "Yu", Decimal(10**6), currency))
            order_id = await delivered(api, "YEN-1", [{"sku": "CUP", "quantity": 1}],
                                       as_="admin", customerEmail="yu@example.com")  # fmt: skip
            number = (await confirmed(api, order_id, as_="admin"))["statement"]["number"]
            event = succeeded(number, int(charged))
            event["data"]["object"]["currency"] = currency.lower()
            answers = await post_ten_times(api, event)
            statement = await statement_by_number(number)
            assert statement is not None
            entries = await payments.entries_of(statement.id)
            order = await read(api, order_id)

    [(_, form)] = fake.requests
    assert (form["amount"], form["currency"]) == (charged, currency.lower())
    assert {a.json()["handled"] for a in answers} == {"captured"}
    assert [(e.kind, str(e.amount), e.currency) for e in entries] == [
        ("captured", "1785", currency)
    ]
    assert order["status"] == "SETTLED"


async def test_a_signed_event_with_a_malformed_field_is_refused_naming_it(
    database_url: str,
) -> None:
    async with overpaid_by_card(database_url) as (api, _, statement):

        def paid(**fields: Any) -> dict[str, Any]:
            event = succeeded(statement.number, 100)
            event["data"]["object"] |= {"id": "pi_2"} | fields
            return event

        cases = {
            "data.object.amount_received": [paid(amount_received="100"),
                                            paid(amount_received=-5), paid(amount_received=1e30),
                                            paid(amount_received=None), paid(amount_received=1.5),
                                            paid(amount_received=True)],
            "data.object.id": [paid(id=7), paid(id=["pi"]), paid(id="p" * 201)],
            "data.object.metadata": [paid(metadata="ST-1"), paid(metadata=[])],
            "data.object.metadata.statement": [paid(metadata={"statement": 12})],
            "data.object.currency": [paid(currency="euro"), paid(currency=3),
                                     paid(currency="€ur")],
            "data.object": [{"id": "evt_x", "type": "payment_intent.succeeded",
                             "data": {"object": "pi_2"}}],
            "type": [{"id": "evt_x", "type": 5}],
            "event": [[1, 2]],
        }  # fmt: skip
        answers = {
            field: [
                await api.client.post(stripe_payments.WEBHOOK_PATH, content=b, headers=h)
                for b, h in map(signed, events)
            ]
            for field, events in cases.items()
        }
        entries = await payments.entries_of(statement.id)

    for field, responses in answers.items():
        for response in responses:
            assert response.status_code == 400, (field, response.text)
            [error] = response.json()["errors"]
            assert error["field"] == field, (field, error)
    assert ledger(entries) == [("captured", "30.00", "pi_1")]


async def test_refunds_reported_at_once_pay_back_no_more_than_the_overpayment(
    database_url: str,
) -> None:
    async with overpaid_by_card(database_url) as (api, _, statement):  # overpaid by 0.25

        def refunded(n: int) -> tuple[str, dict[str, str]]:
            refund = {"id": f"re_{n}", "object": "refund", "amount": 25, "currency": "eur",
                      "payment_intent": "pi_1", "status": "succeeded",
                      "metadata": {"statement": statement.number}}  # fmt: skip
            return signed({"id": f"evt_{n}", "type": "refund.updated", "data": {"object": refund}})

        answers = await asyncio.gather(
            *(
                api.client.post(stripe_payments.WEBHOOK_PATH, content=body, headers=headers)
                for body, headers in map(refunded, range(8))
            )
        )
        entries = await payments.entries_of(statement.id)
        balance = await payments.balance_of(statement)
        events, alerts = await held(api, statement)

    assert sorted(a.json()["handled"] for a in answers) == ["held"] * 7 + ["refunded"]
    assert [e.kind for e in entries] == ["captured", "refunded"]
    assert (str(balance.paid), str(balance.overpaid)) == ("29.75", "0.00")
    assert len(events) == 7 and [a["kind"] for a in alerts] == ["PAYMENT_HELD"]
