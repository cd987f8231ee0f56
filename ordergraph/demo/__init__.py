"""Demo data for ``ordergraph serve --demo``: a small shop's last fortnight.

With the review rules on (``DEMO_CONFIG``, which ``serve --demo`` writes to
``ordergraph.toml`` when there is none), the demo's orders were placed over the last
two weeks, each to its customer's own address, and went through review: approved,
rejected for stock, for credit and for a blocked customer, on hold for its amount and
for its price. With the ``rules`` assignment plugin on as well, two teams fulfil the
approved orders, which are in every state of their work: delivered and settled,
delivered and unpaid, shipped and on its way, 6 of 10 shipped with a failed delivery
(and its open alert), assigned and not started, and waiting in the packers' queue
because pat went off shift and pia is full. The parcels go by the ``manual`` carrier
(a local courier whose scans staff record), so the demo never calls a carrier's API.

Every record is written as it would have happened: ``db.set_clock`` sets the service's
clock to each moment of the story, in order, and back to the real time at the end.
"""

from __future__ import annotations

import datetime
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ordergraph.core import auth, db
from ordergraph.core.auth import Principal, Role
from ordergraph.core.orders import LineDraft, OrderDraft, load_order, submit_order
from ordergraph.core.runtime import Runtime
from ordergraph.core.tables import Customer, Order
from ordergraph.core.transitions import transition_order
from ordergraph.demo import tracking as courier
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
from ordergraph.stages.tracking import updates

# The demo's configuration: the review rules it runs, in order, and their settings, the
# assignment rules of its two teams, bank transfers and the seller on its statements. It
# is a file rather than settings of the ``serve`` process so that every process of the
# demo (``import csv``, ``worker``, ``plugins``) runs and shows the same rules.
DEMO_CONFIG = """\
# Written by `ordergraph serve --demo`: the demo's review and assignment rules, payments
# and settlement. Every ordergraph command run in this directory reads this file
# (ordergraph.toml.example lists every setting). Without it, `ordergraph serve` runs no
# review rules and `serve --demo` writes it again.

[ordergraph.due_hours]
ship = {NORMAL = 72}  # the shop ships within three days

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
# (team, [(member, capacity)]): packers fill up, so the last order waits in their queue.
TEAMS = [("packers", [("pia", 2), ("pat", 2)]), ("bulk", [("bo", 3)])]
CUSTOMERS = [
    CustomerData("ada@example.com", "Ada Lovelace", Decimal("5000"), "EUR"),
    # Near her limit once her T-shirts are approved (249.00 of 300.00).
    CustomerData("grace@example.com", "Grace Hopper", Decimal("300"), "EUR"),
    CustomerData("mallory@example.com", "Mallory Blocked", Decimal("1000"), "EUR", blocked=True),
    CustomerData("alan@example.com", "Alan Turing", Decimal("2000"), "EUR"),
]
ADDRESSES = {
    "ada@example.com": {
        "name": "Ada Lovelace",
        "line1": "12 St James's Square",
        "city": "London",
        "postalCode": "SW1Y 4JH",
        "country": "GB",
    },
    "grace@example.com": {
        "name": "Grace Hopper",
        "line1": "Flat 2, 7 Queen Street",
        "city": "Edinburgh",
        "postalCode": "EH2 1JE",
        "country": "GB",
    },
    "mallory@example.com": {
        "name": "Mallory Blocked",
        "line1": "3 Canal Street",
        "city": "Manchester",
        "postalCode": "M1 3HE",
        "country": "GB",
    },
    "alan@example.com": {
        "name": "Alan Turing",
        "line1": "43 Adlington Road",
        "city": "Wilmslow",
        "postalCode": "SK9 2BJ",
        "country": "GB",
    },
}
PRODUCTS = [
    ProductData("MUG-001", "Enamel mug", Decimal("12.50"), "EUR", 120, bin_location="A-01-1"),
    ProductData("TEE-BLK-M", "T-shirt black M", Decimal("24.90"), "EUR", 40, bin_location="B-03-2"),
    # Nearly out.
    ProductData("BAG-TOTE", "Canvas tote bag", Decimal("18.00"), "EUR", 2, bin_location="B-07-1"),
    ProductData("LAMP-DESK", "Desk lamp", Decimal("79.00"), "EUR", 15, bin_location="C-02-4"),
    ProductData("PEN-SET", "Fountain pen set", Decimal("45.00"), "EUR", 30, bin_location="A-04-3"),
]
STAFF = Principal(Role.STAFF, "demo")
# How long the tokens a start prints work: a day of trying the demo.
DEMO_TOKEN_LIFETIME = datetime.timedelta(hours=24)


@dataclass(frozen=True)
class DemoOrder:
    """One order of the story: when it was placed, and what happened to it after."""

    external_id: str
    email: str
    lines: list[tuple[Any, ...]]  # (sku, quantity[, unit price])
    placed: Callable[[datetime.datetime], datetime.datetime]  # from the time of loading
    # Hours after it was placed: picked (and packed), shipped; the units packed if not all.
    work: tuple[float, float] | None = None
    packed: int | None = None
    # The courier's scans, from the moment it shipped, and its estimate with the last.
    scans: Callable[[datetime.datetime, dict[str, str]], list[courier.Scan]] | None = None
    estimate: Callable[[datetime.datetime], updates.Estimate] | None = None
    # Hours after the delivery the customer confirmed it; hours after that it was paid.
    confirmed: float | None = None
    paid: float | None = None


def days(n: int, hour: int, minute: int = 0) -> Callable[[datetime.datetime], datetime.datetime]:
    return lambda now: courier.on_day(now, n, hour, minute)


def ago(hours: float) -> Callable[[datetime.datetime], datetime.datetime]:
    return lambda now: courier.hours_ago(now, hours)


def _delivered_next_day(shipped: datetime.datetime, to: dict[str, str]) -> list[courier.Scan]:
    dest = courier.place(to)
    return [
        courier.collected(shipped + datetime.timedelta(hours=5, minutes=20)),
        courier.at_depot(shipped + datetime.timedelta(hours=10, minutes=45), courier.LEEDS),
        courier.out_for_delivery(courier.on_day(shipped, -1, 7, 55), dest),
        courier.delivered(courier.on_day(shipped, -1, 12, 20), dest, "Delivered, signed for"),
    ]


def _on_its_way(shipped: datetime.datetime, to: dict[str, str]) -> list[courier.Scan]:
    manchester = updates.Location("Manchester", "", "M17 1SN", "GB")
    return [
        courier.collected(shipped + datetime.timedelta(hours=5, minutes=50)),
        courier.at_depot(shipped + datetime.timedelta(hours=11, minutes=25), courier.LEEDS),
        courier.at_depot(shipped + datetime.timedelta(hours=20, minutes=10), manchester),
    ]


def _nobody_home(shipped: datetime.datetime, to: dict[str, str]) -> list[courier.Scan]:
    dest = courier.place(to)
    edinburgh = updates.Location("Edinburgh", "", "EH12 9DQ", "GB")
    return [
        courier.collected(shipped + datetime.timedelta(hours=1, minutes=15)),
        courier.at_depot(courier.on_day(shipped, -1, 5, 10), edinburgh),
        courier.out_for_delivery(courier.on_day(shipped, -1, 8, 5), dest),
        courier.nobody_home(courier.on_day(shipped, -1, 13, 30), dest),
    ]


def _tomorrow_morning(now: datetime.datetime) -> updates.Estimate:
    """The courier's next attempt: tomorrow between 9:00 and 13:00."""
    morning = courier.on_day(now, -1, 9), courier.on_day(now, -1, 13)
    return updates.Estimate(window_from=morning[0], window_to=morning[1])


# The fortnight, in the order the orders came in (their ids and numbers follow it, at
# whatever hour the demo is loaded: the orders of the last hours come after yesterday's).
ORDERS = [
    # Approved, shipped, delivered, confirmed and paid by bank transfer: SETTLED.
    DemoOrder(
        "DEMO-1001", "ada@example.com", [("LAMP-DESK", 1)], days(13, 10, 12),
        work=(23, 25), scans=_delivered_next_day, confirmed=21, paid=70,
    ),
    # Approved, shipped, delivered and confirmed; its statement unpaid: COMPLETED.
    DemoOrder(
        "DEMO-1002", "ada@example.com", [("BAG-TOTE", 1)], days(11, 15, 40),
        work=(18, 19), scans=_delivered_next_day, confirmed=31,
    ),
    # Rejected: the customer is blocked.
    DemoOrder(
        "DEMO-1003", "mallory@example.com", [("MUG-001", 1)], days(8, 14, 3),
    ),
    # Rejected for stock: one tote bag is left.
    DemoOrder(
        "DEMO-1004", "ada@example.com", [("BAG-TOTE", 3)], days(5, 20, 17),
    ),
    # Approved and shipped, on its way: SHIPPED.
    DemoOrder(
        "DEMO-1005", "alan@example.com", [("PEN-SET", 1), ("MUG-001", 2)], days(3, 11, 26),
        work=(22, 23), scans=_on_its_way, estimate=_tomorrow_morning,
    ),
    # Approved (249.00 of her 300.00 credit); 6 of the 10 shipped, nobody home at delivery.
    DemoOrder(
        "DEMO-1006", "grace@example.com", [("TEE-BLK-M", 10)], days(2, 9, 40),
        work=(4.3, 6.8), packed=6, scans=_nobody_home, estimate=_tomorrow_morning,
    ),
    # Rejected for credit: 328.00 is over her 300.00.
    DemoOrder(
        "DEMO-1007", "grace@example.com", [("LAMP-DESK", 1)], days(1, 17, 5),
    ),
    # On hold: over 500.00, a person decides.
    DemoOrder(
        "DEMO-1008", "ada@example.com", [("LAMP-DESK", 8)], ago(6),
    ),
    # Approved and assigned, not started.
    DemoOrder(
        "DEMO-1009", "ada@example.com", [("MUG-001", 2), ("PEN-SET", 1)], ago(4),
    ),
    # On hold: 22% below the list price.
    DemoOrder(
        "DEMO-1010", "ada@example.com", [("PEN-SET", 2, "35.00")], ago(3),
    ),
    # Approved and assigned, not started.
    DemoOrder(
        "DEMO-1011", "alan@example.com", [("TEE-BLK-M", 2)], ago(2),
    ),
    # Approved (a mug instead of the lamp); waits in the packers' queue.
    DemoOrder(
        "DEMO-1012", "grace@example.com", [("MUG-001", 1)], ago(1.5),
    ),
]  # fmt: skip
# pat goes off shift an hour before the demo is loaded.
PAT_LEAVES = ago(1)


def _draft(order: DemoOrder) -> OrderDraft:
    return OrderDraft(
        channel="web",
        external_id=order.external_id,
        customer_email=order.email,
        lines=[LineDraft(*line) for line in order.lines],
        shipping_address=ADDRESSES[order.email],
    )


Step = tuple[datetime.datetime, Callable[[], Awaitable[None]]]


class _Story:
    """The steps of the fortnight, each run at its moment on the service's clock."""

    def __init__(self, rt: Runtime, now: datetime.datetime) -> None:
        self.rt, self.now = rt, now
        self.steps: list[Step] = []

    def at(self, when: datetime.datetime, step: Callable[[], Awaitable[None]]) -> None:
        self.steps.append((when, step))

    async def run(self) -> None:
        """Run the steps in the order they happened (a step may add later ones)."""
        while self.steps:
            self.steps.sort(key=lambda s: s[0])
            when, step = self.steps.pop(0)
            db.set_clock(when)
            await step()
            await _drain(self.rt)

    def plan(self, order: DemoOrder) -> None:
        placed = order.placed(self.now)
        self.at(placed, lambda: self._submit(order, placed))

    async def _submit(self, order: DemoOrder, placed: datetime.datetime) -> None:
        submitted = await submit_order(self.rt, _draft(order), STAFF)
        order_id = submitted.order.id
        # One at a time, as orders arrive: an order waiting for review uses credit too.
        await _decide(self.rt, order_id)
        if order.work is None:
            return
        if not self.rt.review_rules:  # nobody reviews: staff approve it by hand
            for step in ("start_review", "approve"):
                await transition_order(self.rt, order_id, step, STAFF)
        picked, shipped = (placed + datetime.timedelta(hours=h) for h in order.work)
        self.at(picked, lambda: self._pick_and_pack(order_id, order.packed))
        self.at(shipped, lambda: self._ship(order, order_id, shipped))

    async def _pick_and_pack(self, order_id: int, packed: int | None) -> None:
        tasks = await _tasks(order_id)
        if not tasks:  # no assignment plugin: staff fire the transitions
            await transition_order(self.rt, order_id, "start_processing", STAFF)
            return
        worker = _worker(tasks)
        await work.complete_pick(self.rt, tasks["pick"]["id"], {}, None, worker)
        db.set_clock(db.now() + datetime.timedelta(minutes=12))  # then packs it
        order = await load_order(order_id)
        assert order is not None
        lines = {line.line_no: packed or line.quantity for line in order.lines}
        parcel = work.Parcel(1200, 400, 300, 200, lines)
        await work.complete_pack(self.rt, tasks["pack"]["id"], [parcel], worker)

    async def _ship(self, order: DemoOrder, order_id: int, shipped: datetime.datetime) -> None:
        tasks = await _tasks(order_id)
        if not tasks:
            await transition_order(self.rt, order_id, "ship", STAFF)
            return
        task = tasks["ship"]["id"]
        number = f"LC{order_id:04d}{task:04d}"
        shipment = await work.complete_ship(
            self.rt, task, courier.CARRIER, "next day", [number], _worker(tasks)
        )
        if order.scans is None:
            return
        scans = order.scans(shipped, ADDRESSES[order.email])
        for scan in scans:
            estimate = order.estimate(self.now) if order.estimate and scan is scans[-1] else None
            update = scan.update(estimate)
            # Staff record each scan a few minutes after the courier made it.
            recorded = scan.at + datetime.timedelta(minutes=4)
            self.at(recorded, lambda u=update: self._record(shipment, u))
        if order.confirmed is not None:
            confirmed = scans[-1].at + datetime.timedelta(hours=order.confirmed)
            self.at(confirmed, lambda: self._confirm(order_id))
            if order.paid is not None:
                paid = confirmed + datetime.timedelta(hours=order.paid)
                self.at(paid, lambda: self._pay(order_id))

    async def _record(self, shipment: int, update: updates.TrackingUpdate) -> None:
        await updates.ingest(self.rt, shipment, update)

    async def _confirm(self, order_id: int) -> None:
        order = await load_order(order_id)
        if order is None or order.status != "DELIVERED":
            return
        customer = Principal(Role.CUSTOMER, "demo", customer_id=order.customer_id)
        await transition_order(self.rt, order_id, "complete", customer, reason="delivery confirmed")
        await statements.issue_statement(self.rt, order_id)

    async def _pay(self, order_id: int) -> None:
        statement = await statements.statement_of(order_id)
        if statement is None:
            return
        await payments.record_entry(
            self.rt,
            statement,
            "matched",
            statement.total,
            idempotency_key=f"demo-bank-{statement.number}",
            method="bank_transfer",
            reference=statement.number,
        )

    async def pat_goes_off_shift(self) -> None:
        """pat's work not started goes back to the packers' queue; pia is full."""
        if await Task.count() > 0:
            pat = Principal(Role.STAFF, "pat", team="packers")
            await teams.set_availability(self.rt, "pat", False, pat)


async def seed(rt: Runtime) -> bool:
    """Load the demo shop into an empty database; return False when orders already exist.

    Without review rules the orders wait in RECEIVED, except those with staff steps,
    which staff approve by hand first. Periodic work (the alert scans) waits until the
    story is written, and then runs at the real time.
    """
    if await Order.count() > 0:
        return False
    now = db.now()
    story = _Story(rt, now)
    if rt.periodic is not None:
        await rt.periodic.stop()
    try:
        db.set_clock(now - datetime.timedelta(days=15))
        for customer in CUSTOMERS:
            await upsert_customer(customer)
        await upsert_products(PRODUCTS)
        for name, members in TEAMS:
            await teams.upsert_team(name, "", [teams.MemberData(m, c) for m, c in members])
        for order in ORDERS:
            story.plan(order)
        story.at(PAT_LEAVES(now), story.pat_goes_off_shift)
        await story.run()
    finally:
        db.set_clock(None)
        if rt.periodic is not None:
            await rt.periodic.start()
    return True


def write_config(path: Path) -> bool:
    """Write ``DEMO_CONFIG`` to ``path`` unless it exists; return whether it was written."""
    try:
        with path.open("x") as file:
            file.write(DEMO_CONFIG)
    except FileExistsError:
        return False
    return True


async def _decide(rt: Runtime, order_id: int) -> None:
    """Let review decide: the job runner does, or this process when no runner runs."""
    if rt.runner is not None:
        await rt.runner.drain()
    elif rt.review_rules:
        await pipeline.review_order(rt, order_id)


async def _drain(rt: Runtime) -> None:
    if rt.runner is not None:
        await rt.runner.drain()


async def _tasks(order_id: int) -> dict[str, dict[str, Any]]:
    return {t["kind"]: t for t in await Task.select().where(Task.order == order_id)}


def _worker(tasks: dict[str, dict[str, Any]]) -> Principal:
    """The member the order's work was assigned to."""
    return Principal(Role.STAFF, tasks["pick"]["assignee"] or "demo", team="packers")


async def demo_tokens() -> dict[str, str]:
    """A fresh admin token, one for the demo customer Ada and one for pia of the packers.

    They expire after ``DEMO_TOKEN_LIFETIME``: every start prints new ones, and the
    earlier ones stop working by themselves, whether or not the demo starts again.
    """
    ada = await Customer.select(Customer.id).where(Customer.email == "ada@example.com").first()
    expires_at = db.now() + DEMO_TOKEN_LIFETIME
    return {
        "admin": await auth.create_token(Role.ADMIN, name="demo-admin", expires_at=expires_at),
        "customer (Ada)": await auth.create_token(
            Role.CUSTOMER, name="demo-ada", customer_id=ada["id"], expires_at=expires_at
        ),
        "staff (pia)": await auth.create_token(
            Role.STAFF, name="pia", team="packers", expires_at=expires_at
        ),
    }
