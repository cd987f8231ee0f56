"""Demo data for ``ordergraph serve --demo``: a small shop with orders in several states.

With the review rules on (``DEMO_CONFIG``, which ``serve --demo`` writes to
``ordergraph.toml`` when there is none), the demo orders go through review and show every
outcome: approved, rejected (credit, blocked customer, stock), on hold (amount, price) and
a rejected order amended by its customer and approved in a second round. With the
``rules`` assignment plugin on as well, two teams fulfil the approved orders, which are
left in every state of the work: assigned and not started, partly shipped, shipped,
and waiting in a team's queue. Two of Ada's orders were delivered and confirmed: one
statement is paid (SETTLED), the other is not (COMPLETED, unpaid).
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

from ordergraph.core import auth
from ordergraph.core.auth import Principal, Role
from ordergraph.core.orders import LineDraft, OrderDraft, load_order, submit_order
from ordergraph.core.runtime import Runtime
from ordergraph.core.tables import Customer, Order
from ordergraph.core.transitions import transition_order
from ordergraph.demo.tracking import seed_tracking
from ordergraph.stages.entry.masterdata import (
    CustomerData,
    ProductData,
    upsert_customer,
    upsert_products,
)
from ordergraph.stages.fulfilment import teams, work
from ordergraph.stages.fulfilment.tables import Task
from ordergraph.stages.review import pipeline
from ordergraph.stages.settlement import payments, statements

# The demo's configuration: the review rules it runs, in order, and their settings, the
# assignment rules of its two teams, bank transfers and the seller on its statements. It
# is a file rather than settings of the ``serve`` process so that every process of the
# demo (``import csv``, ``worker``, ``plugins``) runs and shows the same rules.
DEMO_CONFIG = """\
# Written by `ordergraph serve --demo`: the demo's review and assignment rules, payments
# and settlement. Every ordergraph command run in this directory reads this file
# (ordergraph.toml.example lists every setting). Without it, `ordergraph serve` runs no
# review rules and `serve --demo` writes it again.

[ordergraph.settlement]
shipping_charge = "4.90"
link_secret = "demo-only-secret"

[ordergraph.settlement.seller]
name = "ordergraph demo shop"
address = ["1 Market Street", "Leeds LS1 6DT", "United Kingdom"]
vat_id = "GB999999973"
email = "billing@example.com"

[plugins.credit_limit]
enabled = true
on_exceed = "reject"

[plugins.stock]
enabled = true

[plugins.price_policy]
enabled = true
max_discount_percent = "10"
on_violation = "hold"

[plugins.manual_review]
enabled = true
amount_over = "500"
types = ["wholesale"]

[plugins.rules]
enabled = true
rules = ["type=wholesale -> bulk", "-> packers"]

[plugins.bank_transfer]
enabled = true
iban = "DE89370400440532013000"
account_holder = "ordergraph demo shop"
"""
_DEMO = tomllib.loads(DEMO_CONFIG)
DEMO_PLUGINS: dict[str, dict[str, Any]] = _DEMO["plugins"]
DEMO_SETTLEMENT: dict[str, Any] = _DEMO["ordergraph"]["settlement"]
# (team, [(member, capacity)]): packers fill up, so the amended order waits in their queue.
TEAMS = [("packers", [("pia", 2), ("pat", 2)]), ("bulk", [("bo", 3)])]
CUSTOMERS = [
    CustomerData("ada@example.com", "Ada Lovelace", Decimal("5000"), "EUR"),
    # Near her limit once DEMO-1003 is approved (249.00 of 300.00).
    CustomerData("grace@example.com", "Grace Hopper", Decimal("300"), "EUR"),
    CustomerData("mallory@example.com", "Mallory Blocked", Decimal("1000"), "EUR", blocked=True),
]
PRODUCTS = [
    ProductData("MUG-001", "Enamel mug", Decimal("12.50"), "EUR", 120, bin_location="A-01-1"),
    ProductData("TEE-BLK-M", "T-shirt black M", Decimal("24.90"), "EUR", 40, bin_location="B-03-2"),
    # Nearly out.
    ProductData("BAG-TOTE", "Canvas tote bag", Decimal("18.00"), "EUR", 2, bin_location="B-07-1"),
    ProductData("LAMP-DESK", "Desk lamp", Decimal("79.00"), "EUR", 15, bin_location="C-02-4"),
    ProductData("PEN-SET", "Fountain pen set", Decimal("45.00"), "EUR", 30, bin_location="A-04-3"),
]
ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postalCode": "SW1Y 4JH",
    "country": "GB",
}
# (external id, customer e-mail, lines as (sku, quantity[, unit price]), the steps of
# its work once approved). Reviewed in this order; the comment says what review decides.
ORDERS = [
    ("DEMO-1001", "ada@example.com", [("MUG-001", 2), ("PEN-SET", 1)], []),  # approved
    ("DEMO-1002", "ada@example.com", [("LAMP-DESK", 1)], ["pick", "pack", "ship"]),
    # Approved (249 of 300), 6 of the 10 shipped.
    ("DEMO-1003", "grace@example.com", [("TEE-BLK-M", 10)], ["pick", "pack 6", "ship"]),
    ("DEMO-1004", "ada@example.com", [("BAG-TOTE", 1)], ["pick", "pack", "ship"]),
    ("DEMO-1005", "ada@example.com", [("BAG-TOTE", 3)], []),  # rejected: 1 tote left
    ("DEMO-1006", "grace@example.com", [("LAMP-DESK", 1)], []),  # rejected: over her credit
    ("DEMO-1007", "mallory@example.com", [("MUG-001", 1)], []),  # rejected: blocked
    ("DEMO-1008", "ada@example.com", [("LAMP-DESK", 8)], []),  # on hold: over 500.00
    ("DEMO-1009", "ada@example.com", [("PEN-SET", 2, "35.00")], []),  # on hold: 22% off
]
# Shipped orders that were delivered and confirmed, and whether their statement is paid.
SETTLED = {"DEMO-1002": True, "DEMO-1004": False}
# Rejected orders their customer corrects; reviewed again, they are approved.
AMENDMENTS = {"DEMO-1006": [("MUG-001", 2)]}
STAFF = Principal(Role.STAFF, "demo")


def _draft(external_id: str, email: str | None, lines: list[tuple[Any, ...]]) -> OrderDraft:
    return OrderDraft(
        channel="web",
        external_id=external_id,
        customer_email=email,
        lines=[LineDraft(*line) for line in lines],
        shipping_address=ADDRESS,
    )


async def _decide(rt: Runtime, order_id: int) -> None:
    """Let review decide: the job runner does, or this process when no runner runs."""
    if rt.runner is not None:
        await rt.runner.drain()
    else:
        await pipeline.review_order(rt, order_id)


async def seed(rt: Runtime) -> bool:
    """Load the demo shop into an empty database; return False when orders already exist.

    Without review rules the orders wait in RECEIVED, except those with staff steps,
    which staff approve by hand first.
    """
    if await Order.count() > 0:
        return False
    for customer in CUSTOMERS:
        await upsert_customer(customer)
    await upsert_products(PRODUCTS)
    for name, members in TEAMS:
        await teams.upsert_team(name, "", [teams.MemberData(m, c) for m, c in members])
    ids = {}
    for external_id, email, lines, _ in ORDERS:
        submitted = await submit_order(rt, _draft(external_id, email, lines), STAFF)
        ids[external_id] = submitted.order.id
        if rt.review_rules:
            # One at a time, as orders arrive: an order waiting for review uses credit too.
            await _decide(rt, submitted.order.id)
    for external_id, lines in AMENDMENTS.items():
        order = await load_order(ids[external_id])
        if order is not None and order.status == "REJECTED":
            customer = Principal(Role.CUSTOMER, "demo", customer_id=order.customer_id)
            await pipeline.amend_order(rt, order.id, _draft(external_id, None, lines), customer)
            await _decide(rt, order.id)
    for external_id, _, _, steps in ORDERS:
        order = await load_order(ids[external_id])
        if not steps or order is None:
            continue
        if not rt.review_rules:
            for step in ("start_review", "approve"):
                await transition_order(rt, order.id, step, STAFF)
        elif order.status != "APPROVED":
            continue
        await _work(rt, order.id, steps)
    await seed_tracking(rt, ids)
    for external_id, paid in SETTLED.items():
        await _settle(rt, ids[external_id], paid)
    if await Task.count() > 0:
        # pat goes off shift: the work not started goes back to the packers' queue.
        await teams.set_availability(rt, "pat", False, Principal(Role.STAFF, "pat", team="packers"))
        await _drain(rt)
    return True


def write_config(path: Path) -> bool:
    """Write ``DEMO_CONFIG`` to ``path`` unless it exists; return whether it was written."""
    try:
        with path.open("x") as file:
            file.write(DEMO_CONFIG)
    except FileExistsError:
        return False
    return True


async def _settle(rt: Runtime, order_id: int, paid: bool) -> None:
    """Deliver (unless its tracking did) and confirm a shipped order; pay its statement by
    bank transfer if ``paid``."""
    order = await load_order(order_id)
    if order is None or order.status not in ("SHIPPED", "DELIVERED"):
        return
    if order.status == "SHIPPED":  # no carrier said it was delivered: staff do
        await transition_order(rt, order_id, "deliver", STAFF)
    customer = Principal(Role.CUSTOMER, "demo", customer_id=order.customer_id)
    await transition_order(rt, order_id, "complete", customer, reason="delivery confirmed")
    statement = await statements.issue_statement(rt, order_id)
    if paid:
        await payments.record_entry(
            rt,
            statement,
            "matched",
            statement.total,
            idempotency_key=f"demo-bank-{statement.number}",
            method="bank_transfer",
            reference=statement.number,
        )
    await _drain(rt)


async def _drain(rt: Runtime) -> None:
    if rt.runner is not None:
        await rt.runner.drain()


async def _work(rt: Runtime, order_id: int, steps: list[str]) -> None:
    """Do the steps of an order's work as its assignee; without an assignment plugin
    (no tasks), staff fire the transitions the steps stand for."""
    await _drain(rt)
    tasks = {t["kind"]: t for t in await Task.select().where(Task.order == order_id)}
    if not tasks:
        await transition_order(rt, order_id, "start_processing", STAFF)
        if "ship" in steps and "pack" in steps:
            await transition_order(rt, order_id, "ship", STAFF)
        return
    worker = Principal(Role.STAFF, tasks["pick"]["assignee"] or "demo", team="packers")
    order = await load_order(order_id)
    assert order is not None
    for step in steps:
        kind, _, quantity = step.partition(" ")
        task = tasks[kind]["id"]
        if kind == "pick":
            await work.complete_pick(rt, task, {}, None, worker)
        elif kind == "pack":
            lines = {line.line_no: int(quantity or line.quantity) for line in order.lines}
            await work.complete_pack(rt, task, [work.Parcel(1200, 400, 300, 200, lines)], worker)
        else:
            await work.complete_ship(rt, task, "dhl", "express", [f"DEMO{task:05d}"], worker)


async def demo_tokens() -> dict[str, str]:
    """A fresh admin token, one for the demo customer Ada and one for pia of the packers."""
    ada = await Customer.select(Customer.id).where(Customer.email == "ada@example.com").first()
    return {
        "admin": await auth.create_token(Role.ADMIN, name="demo-admin"),
        "customer (Ada)": await auth.create_token(
            Role.CUSTOMER, name="demo-ada", customer_id=ada["id"]
        ),
        "staff (pia)": await auth.create_token(Role.STAFF, name="pia", team="packers"),
    }
