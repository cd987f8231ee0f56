"""Stage 5 through the real app: delivery confirmed, the final amount, gap-free statements."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from conftest import Api, make_settings, serve_api, submit

from ordergraph.core import db
from ordergraph.core.auth import Principal, Role
from ordergraph.core.plugins import PluginInfo, hookimpl
from ordergraph.core.transitions import transition_order
from ordergraph.stages.fulfilment import work
from ordergraph.stages.fulfilment.tables import Task
from ordergraph.stages.fulfilment.teams import MemberData, upsert_team
from ordergraph.stages.settlement import Adjustment, statements
from plugins.assignment import rules
from plugins.carriers import manual
from plugins.channels import web
from plugins.review_rules import credit_limit, stock

ADMIN = Principal(Role.ADMIN, "alice")
PIA = Principal(Role.STAFF, "pia", team="floor")
YEAR = datetime.datetime.now(datetime.UTC).year
BERLIN = {"name": "Ada", "line1": "Unter den Linden 1", "city": "Berlin",
          "postalCode": "10117", "country": "DE"}  # fmt: skip
SETTLEMENT = {
    "shipping_charge": "4.90",
    "link_secret": "s3cret",
    "seller": {"name": "Mugs & Co", "address": ["1 Main St", "Leeds"], "vat_id": "GB123"},
}
ORDER = """
query($id: ID!) {
  order(id: $id) {
    status
    statement {
      number pdfUrl total subtotal adjustmentTotal net tax currency dueDate notes
      lines { kind lineNo sku quantity unitPrice amount adjustments taxRate net tax total }
      adjustments { code label source reference lineNo target amount capped }
      balance { total paid outstanding overpaid state }
      seller customer
    }
    events { type toStatus data }
  }
}
"""
CONFIRM = """
mutation($id: ID!) {
  confirmDelivery(orderId: $id) { order { status } errors { field code message } }
}
"""


@contextlib.asynccontextmanager
async def shop(
    database_url: str,
    *,
    extra: dict[str, Any] | None = None,
    plugin_settings: dict[str, dict[str, Any]] | None = None,
    **settlement: Any,
) -> AsyncIterator[Api]:
    """The app with stock, credit limit and assignment rules, the manual carrier, a team
    "floor" with pia, the ``extra`` plugins (with ``plugin_settings``), and the settlement
    settings above (overridden by ``settlement``)."""
    installed = {
        "web": web,
        "stock": stock,
        "rules": rules,
        "credit_limit": credit_limit,
        "manual": manual,
        **(extra or {}),
    }
    plugins = {name: {"enabled": True} for name in installed}
    plugins["rules"]["rules"] = ["-> floor"]
    plugins["credit_limit"]["on_no_limit"] = "pass"
    for name, values in (plugin_settings or {}).items():
        plugins[name] |= values
    if "bank_transfer" in plugins:
        plugins["bank_transfer"] |= {
            "iban": "DE89370400440532013000",
            "account_holder": "Mugs & Co",
        }
    settings = make_settings(database_url, plugins=plugins, settlement={**SETTLEMENT, **settlement})
    async with serve_api(settings, installed_plugins=installed) as api:
        await upsert_team("floor", "", [MemberData("pia", 1000)])
        yield api


async def delivered(
    api: Api,
    external_id: str,
    lines: list[dict[str, Any]],
    *,
    found: dict[int, int] | None = None,
    as_: str = "ada",
    **overrides: Any,
) -> int:
    """An order picked (``found`` per line: the rest is cancelled), packed, shipped and
    delivered; returns its id."""
    order_id = await sent(api, external_id, lines, found=found, as_=as_, **overrides)
    await transition_order(api.rt, order_id, "deliver", ADMIN)
    await api.rt.runner.drain()
    return order_id


async def sent(
    api: Api,
    external_id: str,
    lines: list[dict[str, Any]],
    *,
    found: dict[int, int] | None = None,
    as_: str = "ada",
    **overrides: Any,
) -> int:
    """An order picked, packed and shipped with tracking number ``T-external_id``."""
    overrides.setdefault("shippingAddress", BERLIN)
    order = await submit(api, external_id, as_=as_, lines=lines, **overrides)
    order_id = order["databaseId"]
    await api.rt.runner.drain()
    tasks = {t["kind"]: t["id"] for t in await Task.select().where(Task.order == order_id)}
    short = "CANCEL_REST" if found else None
    await work.complete_pick(api.rt, tasks["pick"], found or {}, short, PIA)
    lines_left = await work.fulfilment_lines(order_id)
    packed = {
        n: work.open_quantity(line) for n, line in lines_left.items() if work.open_quantity(line)
    }
    await work.complete_pack(api.rt, tasks["pack"], [work.Parcel(500, 10, 10, 10, packed)], PIA)
    await work.complete_ship(api.rt, tasks["ship"], "manual", "", ["T-" + external_id], PIA)
    await api.rt.runner.drain()
    return order_id


async def read(api: Api, order_id: int, as_: str = "admin") -> dict[str, Any]:
    return (await api.data(ORDER, {"id": str(order_id)}, as_=as_))["order"]


async def confirmed(api: Api, order_id: int, as_: str = "ada") -> dict[str, Any]:
    """Confirm as the customer, let the statement job run, return the order."""
    payload = (await api.data(CONFIRM, {"id": str(order_id)}, as_=as_))["confirmDelivery"]
    assert payload == {"order": {"status": "COMPLETED"}, "errors": []}, payload
    await api.rt.runner.drain()
    return await read(api, order_id, as_=as_)


async def test_the_customer_confirms_and_gets_a_statement_of_what_was_delivered(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        order_id = await delivered(
            api,
            "D-1",
            [{"sku": "MUG", "quantity": 3}, {"sku": "TEE", "quantity": 1}],
            found={1: 2},  # one mug was missing: cancelled, never delivered
        )
        assert (await read(api, order_id))["statement"] is None
        order = await confirmed(api, order_id)

    statement = order["statement"]
    assert statement["number"] == f"ST-{YEAR}-000001"
    assert order["status"] == "COMPLETED"
    # 2 x 12.50 + 1 x 24.90 + shipping 4.90, prices without tax, 19% for Germany per line.
    assert [(li["kind"], li["quantity"], li["amount"], li["tax"], li["total"])
            for li in statement["lines"]] == [
        ("ITEM", 2, "25.00", "4.75", "29.75"),
        ("ITEM", 1, "24.90", "4.73", "29.63"),  # 4.731 rounds down
        ("SHIPPING", 1, "4.90", "0.93", "5.83"),  # 0.931
    ]  # fmt: skip
    assert statement["subtotal"] == "54.80"
    assert statement["tax"] == "10.41"
    assert statement["total"] == "65.21"
    assert statement["lines"][0]["taxRate"] == "19"
    assert statement["balance"] == {
        "total": "65.21", "paid": "0.00", "outstanding": "65.21", "overpaid": "0.00",
        "state": "UNPAID",
    }  # fmt: skip
    assert statement["seller"]["name"] == "Mugs & Co"
    assert statement["customer"]["email"] == "ada@example.com"
    issued = datetime.date.today()
    assert statement["dueDate"] == (issued + datetime.timedelta(days=14)).isoformat()
    timeline = [(e["type"], e["toStatus"]) for e in order["events"]]
    assert timeline[-2:] == [("transition", "COMPLETED"), ("statement_issued", None)]


async def test_channels_whose_prices_include_tax_have_it_taken_out(database_url: str) -> None:
    async with shop(database_url, prices_include_tax=["web"], shipping_charge="0") as api:
        order_id = await delivered(api, "INC-1", [{"sku": "TEE", "quantity": 1}])
        statement = (await confirmed(api, order_id))["statement"]
    line = statement["lines"][0]
    # 24.90 gross: tax = 24.90 x 19 / 119 = 3.9756... -> 3.98, net 20.92.
    assert (line["amount"], line["net"], line["tax"], line["total"]) == (
        "24.90", "20.92", "3.98", "24.90"
    )  # fmt: skip
    assert statement["total"] == "24.90"


class TenPercentOffAndAFreeMug:
    """An adjustment plugin: 10% off the order, 15.00 off line 1 (more than a 12.50 mug)."""

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(category="promotion", description="test adjustments")

    @hookimpl
    def order_adjustments(self, lines: list, shipping: Decimal) -> list[Adjustment]:
        subtotal = sum(line.amount for line in lines)
        return [
            Adjustment("line_off", "15.00 off the mug", Decimal("-15.00"), line_no=1,
                       reference="promo-7"),
            Adjustment("order_off", "10% off", -(subtotal * Decimal("0.10")).quantize(
                Decimal("0.01")), reference="promo-8"),
            Adjustment("free_shipping", "Free shipping", -shipping, target="shipping"),
        ]  # fmt: skip


async def test_adjustments_are_kept_with_their_source_and_shared_exactly(
    database_url: str,
) -> None:
    extra = {"deals": TenPercentOffAndAFreeMug()}
    async with shop(database_url, extra=extra) as api:
        order_id = await delivered(
            api,
            "ADJ-1",
            [{"sku": "MUG", "quantity": 1}, {"sku": "TEE", "quantity": 1},
             {"sku": "LAMP", "quantity": 1}],
        )  # fmt: skip
        statement = (await confirmed(api, order_id))["statement"]
    adjustments = {a["code"]: a for a in statement["adjustments"]}
    # The mug costs 12.50: 15.00 off is capped at 12.50, and the statement says so.
    assert adjustments["line_off"] == {
        "code": "line_off", "label": "15.00 off the mug", "source": "deals",
        "reference": "promo-7", "lineNo": 1, "target": "LINES", "amount": "-12.50",
        "capped": True,
    }  # fmt: skip
    # 10% of 116.40 = 11.64, shared by what is left of each line: 0, 24.90 and 79.00.
    assert adjustments["order_off"]["amount"] == "-11.64"
    assert [(li["kind"], li["adjustments"]) for li in statement["lines"]] == [
        ("ITEM", "-12.50"),
        ("ITEM", "-2.79"),
        ("ITEM", "-8.85"),
        ("SHIPPING", "-4.90"),
    ]
    assert adjustments["free_shipping"]["amount"] == "-4.90"
    # Nets 0 + 22.11 + 70.15 = 92.26; tax 0 + 4.20 (4.2009) + 13.33 (13.3285).
    assert statement["net"] == "92.26"
    assert statement["tax"] == "17.53"
    assert statement["total"] == "109.79"
    assert statement["adjustmentTotal"] == "-29.04"  # 12.50 + 11.64 + 4.90


async def test_a_hundred_concurrent_settlements_number_1_to_100(database_url: str) -> None:
    async with serve_api(make_settings(database_url), run_jobs=False) as api:
        ids = []
        for i in range(100):
            order = await submit(api, f"N-{i}", lines=[{"sku": "MUG", "quantity": 1}])
            ids.append(order["databaseId"])
            for step in ("start_review", "approve", "start_processing", "ship", "deliver",
                         "complete"):  # fmt: skip
                await transition_order(api.rt, ids[-1], step, ADMIN)
        issued = await asyncio.gather(
            *(statements.issue_statement(api.rt, i) for i in ids),
            # The same order issued twice at once is still one statement, one number.
            statements.issue_statement(api.rt, ids[0]),
            statements.issue_statement(api.rt, ids[1]),
        )
    numbers = {s.order_id: s.number for s in issued}
    assert len(numbers) == 100
    assert sorted(s.seq for s in issued[:100]) == list(range(1, 101))
    assert sorted(numbers.values()) == [f"ST-{YEAR}-{n:06d}" for n in range(1, 101)]
    assert issued[100].number == numbers[ids[0]]


async def test_a_statement_is_only_issued_after_confirmation(database_url: str) -> None:
    async with shop(database_url) as api:
        order_id = await delivered(api, "EARLY-1", [{"sku": "MUG", "quantity": 1}])
        try:
            await statements.issue_statement(api.rt, order_id)
        except Exception as error:
            assert "COMPLETED" in str(error)
        else:
            raise AssertionError("a DELIVERED order got a statement")
        assert await statements.statement_of(order_id) is None


async def test_settling_one_order_costs_the_same_for_1_or_6_lines(database_url: str) -> None:
    extra = {"deals": TenPercentOffAndAFreeMug()}
    async with shop(database_url, extra=extra) as api:
        skus = ["MUG", "TEE", "LAMP"]
        ids = [
            await delivered(
                api,
                f"COUNT-{n}",
                [{"sku": skus[i - 1], "quantity": 1} for i in lines],
                as_="admin",
                customerEmail="bob@example.com",
            )
            for n, lines in enumerate(([1], [1, 2, 3, 1, 2, 3]))
        ]
        # The job runner stops, so that only this call issues the statements.
        await api.rt.runner.stop()
        counts = []
        for order_id in ids:
            await transition_order(api.rt, order_id, "complete", ADMIN)
            with db.count_statements() as log:
                await statements.issue_statement(api.rt, order_id)
            counts.append(log.count)
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    assert counts[0] == counts[1] == ISSUE_STATEMENTS[backend]


# Issuing one statement, whatever its lines and adjustments:
#   1  SELECT the order's statement (none yet)
#   2  SELECT the order and its lines
#   1  SELECT the shipped quantity of each line
#   3  SELECT the promotions, the order's coupons, the customer's e-mail (promotions)
#   1  SELECT the customer
#   1  INSERT ... ON CONFLICT the series' next number
#   1  INSERT the statement
#   2  INSERT the "statement_issued" event and its outbox jobs
#   3  the analytics stage's rollups of the event (the order's facts read, its facts
#      and rollups upserted); on PostgreSQL the event, its jobs and the upserts are
#      one WITH, on SQLite the INSERTs go in one trip to the writer's thread
ISSUE_STATEMENTS = {"sqlite": 15, "postgresql": 14}
