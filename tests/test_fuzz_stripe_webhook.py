"""Property-based fuzzing of Stripe's webhook: correctly signed events whose fields have
any type and any value never get a 5xx, and never write a wrong ledger row.

hypothesis writes events of the types the plugin handles (and others) from Stripe's
shapes, with any field missing or replaced by a value of another type or an absurd one
(strings for amounts, negative or huge numbers, floats, lists, other currencies, other
statements). Each is signed with the endpoint's secret and sent through the real ASGI
app to a shop whose statement of 29.75 EUR was paid 30.00 by card. After each: the
answer is 200 or a 4xx naming a field; a refused event wrote nothing; every entry
written is in the statement's currency, of the amount the event gave for that object,
and the refunds never pay back more than was paid beyond the total.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_stripe import overpaid_by_card, signed

from ordergraph.stages.settlement import payments
from ordergraph.stages.settlement.statements import StatementView
from plugins.payments import stripe_payments

EXAMPLES_PER_BACKEND = 150
TYPES = [*stripe_payments.PAYMENT_EVENTS, *stripe_payments.REFUND_EVENTS]


@dataclass
class Shop:
    api: Any
    statement: StatementView


@pytest.fixture
async def shop(database_url: str) -> AsyncIterator[Shop]:
    async with overpaid_by_card(database_url) as (api, _, statement):
        yield Shop(api, statement)


# Any JSON value: what a field of the wrong type holds.
ANY = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=30),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
AMOUNTS = st.one_of(
    st.integers(1, 5000),
    st.sampled_from([0, -1, 2**63, 2**63 - 1, 10**30, 1e30, 12.5, "100", True]),
    ANY,
)
CURRENCIES = st.one_of(st.sampled_from(["eur", "EUR", "jpy", "kwd", "xyz", "eu", "€ur"]), ANY)
STATUSES = st.one_of(st.sampled_from(["succeeded", "pending", "failed", "canceled"]), ANY)
IDS = st.one_of(st.sampled_from(["pi_1", "pi_2", "re_1", "re_2", "x" * 201]), ANY)


def maybe(draw: st.DrawFn, fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with some left out."""
    return {name: value for name, value in fields.items() if draw(st.integers(0, 5))}


@st.composite
def events(draw: st.DrawFn, number: str) -> Any:
    statements = st.one_of(st.just(number), st.just("ST-1999-000001"), ANY)
    metadata = st.one_of(st.builds(lambda s: {"statement": s}, statements), st.none(), ANY)

    def stripe_object(**extra: st.SearchStrategy[Any]) -> dict[str, Any]:
        fields = {"id": IDS, "currency": CURRENCIES, "metadata": metadata, **extra}
        return maybe(draw, {name: draw(strategy) for name, strategy in fields.items()})

    kind = draw(st.one_of(st.sampled_from(TYPES), ANY))
    if kind in ("refund.updated", "charge.refunded"):
        refund = stripe_object(amount=AMOUNTS, status=STATUSES)
        found: Any = refund
        if kind == "charge.refunded":
            found = stripe_object(refunds=st.one_of(st.just({"data": [refund]}), ANY))
    else:
        found = stripe_object(amount=AMOUNTS, amount_received=AMOUNTS)
    found = draw(st.one_of(st.just(found), ANY)) if not draw(st.integers(0, 9)) else found
    event = maybe(draw, {"id": draw(st.one_of(st.just("evt_1"), ANY)), "type": kind,
                         "data": {"object": found}})  # fmt: skip
    return draw(st.one_of(st.just(event), ANY)) if not draw(st.integers(0, 19)) else event


def objects(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``value``."""
    if isinstance(value, dict):
        yield value
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            yield from objects(item)


@settings(
    max_examples=EXAMPLES_PER_BACKEND,
    derandomize=bool(os.environ.get("CI")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_no_signed_event_fails_or_writes_a_wrong_entry(
    shop: Shop, data: st.DataObject
) -> None:
    statement = shop.statement
    event = data.draw(events(statement.number), label="event")
    before = {e.id for e in await payments.entries_of(statement.id)}

    body, headers = signed(event)
    response = await shop.api.client.post(
        stripe_payments.WEBHOOK_PATH, content=body, headers=headers
    )

    assert response.status_code in (200, 400), response.text
    new = [e for e in await payments.entries_of(statement.id) if e.id not in before]
    if response.status_code == 400:
        [error] = response.json()["errors"]
        assert error["field"] and error["code"]
        assert new == []
    for entry in new:
        assert entry.currency == statement.currency == "EUR"
        given_as = [o for o in objects(event) if o.get("id") == entry.reference]
        assert any(
            str(o.get("currency", "")).upper() == "EUR"
            and Decimal(o["amount" if entry.kind != "captured" else "amount_received"])
            == entry.amount * 100
            for o in given_as
        ), (entry, event)
    balance = await payments.balance_of(statement)
    assert balance.paid >= 0 and balance.refund_pending >= 0
    assert balance.refund_pending <= balance.overpaid
