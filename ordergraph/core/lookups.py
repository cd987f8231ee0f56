"""Read queries that review rules need, exported to plugins through ``plugin_api``.

Rules call them before the decision, outside any transaction, so they see what
other orders have committed. They never write.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from ordergraph.core import db
from ordergraph.core.money import from_minor
from ordergraph.core.payments import EFFECT as PAYMENT_EFFECT
from ordergraph.core.tables import Customer, Product

# Orders that no longer commit the customer to pay.
CLOSED_STATUSES = ("CANCELLED", "REJECTED")
SETTLED_STATUS = "SETTLED"


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


async def get_customer(customer_id: int) -> CustomerView | None:
    row = await Customer.select().where(Customer.id == customer_id).first()
    if row is None:
        return None
    return CustomerView(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        credit_limit=from_minor(row["credit_limit_minor"], row["currency"]),
        currency=row["currency"],
        blocked=row["blocked"],
    )


async def customer_exposure(customer_id: int, currency: str, *, excluding_order: int) -> Exposure:
    """The customer's unpaid statements and open orders in ``currency``, one query."""
    paid = " ".join(f"WHEN '{kind}' THEN {sign}" for kind, sign in PAYMENT_EFFECT.items())
    rows = await db.raw(
        "SELECT COALESCE(SUM(CASE WHEN s.id IS NOT NULL AND s.total_minor > COALESCE(p.paid, 0) "
        "THEN s.total_minor - COALESCE(p.paid, 0) ELSE 0 END), 0) AS unpaid, "
        "COALESCE(SUM(CASE WHEN s.id IS NULL AND o.status <> {} THEN o.total_minor ELSE 0 END), "
        '0) AS open FROM orders o LEFT JOIN statements s ON s."order" = o.id '
        f"LEFT JOIN (SELECT statement, SUM(CASE kind {paid} ELSE 0 END * amount_minor) AS paid "
        "FROM ledger_entries GROUP BY statement) p ON p.statement = s.id "
        "WHERE o.customer = {} AND o.currency = {} AND o.id <> {} AND o.status NOT IN ({}, {})",
        SETTLED_STATUS,
        customer_id,
        currency,
        excluding_order,
        *CLOSED_STATUSES,
    )
    return Exposure(
        currency=currency,
        unpaid_statements=from_minor(int(rows[0]["unpaid"]), currency),
        open_orders=from_minor(int(rows[0]["open"]), currency),
    )


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
    if not wanted:
        return {}
    rows = await Product.select().where(Product.sku.is_in(wanted))
    return {
        row["sku"]: ProductView(
            sku=row["sku"],
            name=row["name"],
            list_price=from_minor(row["list_price_minor"], row["currency"]),
            currency=row["currency"],
            available=row["stock_on_hand"] - row["stock_reserved"],
            active=row["active"],
        )
        for row in rows
    }
