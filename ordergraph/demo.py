"""Demo data for ``ordergraph serve --demo``: a small shop with orders in several states."""

from __future__ import annotations

from decimal import Decimal

from ordergraph.core import auth
from ordergraph.core.auth import Principal, Role
from ordergraph.core.masterdata import CustomerData, ProductData, upsert_customer, upsert_products
from ordergraph.core.orders import LineDraft, OrderDraft, submit_order
from ordergraph.core.runtime import Runtime
from ordergraph.core.tables import Customer, Order
from ordergraph.core.transitions import transition_order

CUSTOMERS = [
    CustomerData("ada@example.com", "Ada Lovelace", Decimal("5000"), "EUR"),
    CustomerData("grace@example.com", "Grace Hopper", Decimal("300"), "EUR"),
    CustomerData("mallory@example.com", "Mallory Blocked", Decimal("1000"), "EUR", blocked=True),
]
PRODUCTS = [
    ProductData("MUG-001", "Enamel mug", Decimal("12.50"), "EUR", 120),
    ProductData("TEE-BLK-M", "T-shirt black M", Decimal("24.90"), "EUR", 40),
    ProductData("BAG-TOTE", "Canvas tote bag", Decimal("18.00"), "EUR", 2),
    ProductData("LAMP-DESK", "Desk lamp", Decimal("79.00"), "EUR", 15),
    ProductData("PEN-SET", "Fountain pen set", Decimal("45.00"), "EUR", 30),
]
ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postalCode": "SW1Y 4JH",
    "country": "GB",
}
# (external id, customer e-mail, lines, transitions to fire after submission)
ORDERS = [
    ("DEMO-1001", "ada@example.com", [("MUG-001", 2), ("PEN-SET", 1)], []),
    ("DEMO-1002", "ada@example.com", [("LAMP-DESK", 1)], ["start_review", "approve"]),
    ("DEMO-1003", "grace@example.com", [("TEE-BLK-M", 3)], ["start_review", "hold"]),
    ("DEMO-1004", "ada@example.com", [("BAG-TOTE", 1)], ["start_review", "approve",
                                                      "start_processing", "ship"]),
]  # fmt: skip


async def seed(rt: Runtime) -> bool:
    """Load the demo shop into an empty database; return False when orders already exist."""
    if await Order.count() > 0:
        return False
    for customer in CUSTOMERS:
        await upsert_customer(customer)
    await upsert_products(PRODUCTS)
    staff = Principal(Role.STAFF, "demo")
    for external_id, email, lines, transitions in ORDERS:
        result = await submit_order(
            rt,
            OrderDraft(
                channel="web",
                external_id=external_id,
                customer_email=email,
                lines=[LineDraft(sku, qty) for sku, qty in lines],
                shipping_address=ADDRESS,
            ),
            staff,
        )
        for transition in transitions:
            await transition_order(rt, result.order.id, transition, staff)
    return True


async def demo_tokens() -> dict[str, str]:
    """A fresh admin token and a token for the demo customer Ada."""
    ada = await Customer.select(Customer.id).where(Customer.email == "ada@example.com").first()
    return {
        "admin": await auth.create_token(Role.ADMIN, name="demo-admin"),
        "customer (Ada)": await auth.create_token(
            Role.CUSTOMER, name="demo-ada", customer_id=ada["id"]
        ),
    }
