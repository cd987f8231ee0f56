"""Read queries that review rules need, exported to plugins through ``plugin_api``.

Rules call them before the decision, outside any transaction, so they see what
other orders have committed. They never write. Within ``shared_lookups()`` (one
review) each question is asked of the database once and its answer shared by every
rule that asks it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

from ordergraph.core import db
from ordergraph.core.money import LEDGER_EFFECT, from_minor
from ordergraph.core.tables import Customer, Product

# Orders that no longer commit the customer to pay.
CLOSED_STATUSES = ("CANCELLED", "REJECTED")
SETTLED_STATUS = "SETTLED"

P = ParamSpec("P")
R = TypeVar("R")
_answers: contextvars.ContextVar[dict[Hashable, Any] | None] = contextvars.ContextVar(
    "ordergraph_shared_lookups", default=None
)


@contextlib.contextmanager
def shared_lookups(
    *, customers: Iterable[dict[str, Any]] = (), products: Iterable[dict[str, Any]] = ()
) -> Iterator[None]:
    """Answer each lookup once in this block (one review's rules ask the same questions).

    ``customers`` and ``products`` are rows the caller has already read: they answer
    ``get_customer`` and ``get_products`` for those customers and SKUs without a query.
    """
    answers: dict[Hashable, Any] = {}
    for row in customers:
        answers[_key(get_customer, (row["id"],), {})] = _customer_view(row)
    for row in products:
        answers[("product", row["sku"])] = _product_view(row)
    token = _answers.set(answers)
    try:
        yield
    finally:
        _answers.reset(token)


def _key(lookup: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable:
    return (lookup.__name__, args, tuple(sorted(kwargs.items())))


def _shared(lookup: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Inside ``shared_lookups()``, run ``lookup`` once per distinct (hashable) arguments."""

    @functools.wraps(lookup)
    async def shared(*args: P.args, **kwargs: P.kwargs) -> R:
        answers = _answers.get()
        if answers is None:
            return await lookup(*args, **kwargs)
        key = _key(lookup, args, kwargs)
        if key not in answers:
            answers[key] = await lookup(*args, **kwargs)
        return answers[key]

    return shared


@dataclass(frozen=True)
class CustomerView:
    id: int
    email: str
    name: str
    credit_limit: Decimal
    currency: str
    blocked: bool


@dataclass(frozen=True)
class Exposure:
    """What a customer owes or has on order in one currency, without the order under review.

    ``unpaid_statements`` is what is outstanding on the customer's issued statements
    (their total less what the ledger shows paid). ``open_orders`` is the total of
    every order with no statement yet that is neither closed (cancelled, rejected) nor
    SETTLED.
    """

    currency: str
    unpaid_statements: Decimal
    open_orders: Decimal

    @property
    def total(self) -> Decimal:
        return self.unpaid_statements + self.open_orders


@dataclass(frozen=True)
class ProductView:
    sku: str
    name: str
    list_price: Decimal
    currency: str
    available: int
    active: bool


@_shared
async def get_customer(customer_id: int) -> CustomerView | None:
    row = await Customer.select().where(Customer.id == customer_id).first()
    return None if row is None else _customer_view(row)


def _customer_view(row: dict[str, Any]) -> CustomerView:
    return CustomerView(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        credit_limit=from_minor(row["credit_limit_minor"], row["currency"]),
        currency=row["currency"],
        blocked=bool(row["blocked"]),
    )


@_shared
async def customer_exposure(customer_id: int, currency: str, *, excluding_order: int) -> Exposure:
    """The customer's unpaid statements and open orders in ``currency``, one query.

    Inside ``lookups_together()``, the questions that tasks ask at the same moment go to
    the database as one query."""
    question = (customer_id, currency, excluding_order)
    together = _together.get()
    if together is None:
        return (await _exposures([question]))[question]
    if not together.asked:
        asyncio.get_running_loop().call_soon(together.answer)
    future = asyncio.get_running_loop().create_future()
    together.asked.append((question, future))
    return await future


_Question = tuple[int, str, int]  # customer, currency, the order left out


@dataclass
class _Together:
    """The exposure questions asked since the event loop last came round."""

    asked: list[tuple[_Question, asyncio.Future[Exposure]]] = field(default_factory=list)
    answering: set[asyncio.Task[None]] = field(default_factory=set)

    def answer(self) -> None:
        asked, self.asked = self.asked, []
        task = asyncio.get_running_loop().create_task(self._answer(asked))
        self.answering.add(task)
        task.add_done_callback(self.answering.discard)

    async def _answer(self, asked: list[tuple[_Question, asyncio.Future[Exposure]]]) -> None:
        try:
            answers = await _exposures([question for question, _ in asked])
        except Exception as exc:
            for _, future in asked:
                if not future.done():
                    future.set_exception(exc)
            return
        for question, future in asked:
            if not future.done():
                future.set_result(answers[question])


_together: contextvars.ContextVar[_Together | None] = contextvars.ContextVar(
    "ordergraph_lookups_together", default=None
)


@contextlib.contextmanager
def lookups_together() -> Iterator[None]:
    """Send the lookups that tasks started in this block ask at once as one query (the
    review of orders that came in together: each order's rules run in a task)."""
    token = _together.set(_Together())
    try:
        yield
    finally:
        _together.reset(token)


async def _exposures(questions: list[_Question]) -> dict[_Question, Exposure]:
    """Every question's exposure from one query, which sums each customer's orders once
    per currency, and apart the orders to leave out, each then taken off its customer's
    sum."""
    paid = " ".join(f"WHEN '{kind}' THEN {sign}" for kind, sign in LEDGER_EFFECT.items())
    left_out, left_out_ids = db.one_of("o.id", [order for _, _, order in questions])
    of_customers, customer_ids = db.one_of("o.customer", sorted({c for c, _, _ in questions}))
    rows = await db.raw(
        "SELECT o.customer AS customer, o.currency AS currency, "
        f"CASE WHEN {left_out} THEN o.id END AS left_out, "
        "COALESCE(SUM(CASE WHEN s.id IS NOT NULL AND s.total_minor > COALESCE(p.paid, 0) "
        "THEN s.total_minor - COALESCE(p.paid, 0) ELSE 0 END), 0) AS unpaid, "
        "COALESCE(SUM(CASE WHEN s.id IS NULL AND o.status <> {} THEN o.total_minor ELSE 0 END), "
        '0) AS open FROM orders o LEFT JOIN statements s ON s."order" = o.id '
        f"LEFT JOIN (SELECT statement, SUM(CASE kind {paid} ELSE 0 END * amount_minor) AS paid "
        "FROM ledger_entries GROUP BY statement) p ON p.statement = s.id "
        f"WHERE {of_customers} AND o.status NOT IN ({{}}, {{}}) "
        "GROUP BY o.customer, o.currency, 3",
        left_out_ids,
        SETTLED_STATUS,
        customer_ids,
        *CLOSED_STATUSES,
    )
    sums: dict[tuple[int, str], tuple[int, int]] = {}
    own: dict[tuple[int, str, int], tuple[int, int]] = {}
    for row in rows:
        key = (row["customer"], row["currency"])
        unpaid, open_ = int(row["unpaid"]), int(row["open"])
        before = sums.get(key, (0, 0))
        sums[key] = (before[0] + unpaid, before[1] + open_)
        if row["left_out"] is not None:
            own[(*key, row["left_out"])] = (unpaid, open_)
    answers = {}
    for question in questions:
        customer, currency, _ = question
        unpaid, open_ = sums.get((customer, currency), (0, 0))
        left_unpaid, left_open = own.get(question, (0, 0))
        answers[question] = Exposure(
            currency=currency,
            unpaid_statements=from_minor(unpaid - left_unpaid, currency),
            open_orders=from_minor(open_ - left_open, currency),
        )
    return answers


@_shared
async def approved_order_count(customer_id: int, *, excluding_order: int) -> int:
    """How many of the customer's other orders were approved at some point (a returning
    customer has at least one), whatever became of them afterwards."""
    rows = await db.raw(
        'SELECT COUNT(DISTINCT o.id) AS n FROM orders o JOIN order_events e ON e."order" = o.id '
        "WHERE o.customer = {} AND o.id <> {} AND e.to_status = {}",
        customer_id,
        excluding_order,
        "APPROVED",
    )
    return int(rows[0]["n"])


async def get_products(skus: Iterable[str]) -> dict[str, ProductView]:
    """Products by SKU, with list price and the stock not yet reserved."""
    wanted = sorted(set(skus))
    answers = _answers.get()
    if answers is None:
        return await _products(wanted)
    missing = [sku for sku in wanted if ("product", sku) not in answers]
    if missing:
        found = await _products(missing)
        answers.update({("product", sku): found.get(sku) for sku in missing})
    known = {sku: answers[("product", sku)] for sku in wanted}
    return {sku: product for sku, product in known.items() if product is not None}


async def _products(skus: list[str]) -> dict[str, ProductView]:
    if not skus:
        return {}
    rows = await Product.select().where(Product.sku.is_in(skus))
    return {row["sku"]: _product_view(row) for row in rows}


def _product_view(row: dict[str, Any]) -> ProductView:
    return ProductView(
        sku=row["sku"],
        name=row["name"],
        list_price=from_minor(row["list_price_minor"], row["currency"]),
        currency=row["currency"],
        available=row["stock_on_hand"] - row["stock_reserved"],
        active=bool(row["active"]),
    )
