"""Products and customers: validated upserts by natural key (SKU, e-mail)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ordergraph.core import db
from ordergraph.core.errors import DomainError, ErrorCode, Problem, translate
from ordergraph.core.limits import (
    BIN_LOCATION,
    CUSTOMER_NAME,
    EMAIL,
    MAX_STOCK,
    PRODUCT_NAME,
    SKU,
    is_email,
)
from ordergraph.core.money import is_iso_currency, to_minor
from ordergraph.core.tables import Customer, Product

MAX_PRODUCTS_PER_CALL = 1000


@dataclass
class ProductData:
    sku: str
    name: str
    list_price: Decimal
    currency: str
    stock_on_hand: int = 0
    active: bool = True
    # Where pickers find it (pick lists); empty: not said.
    bin_location: str = ""


@dataclass
class CustomerData:
    email: str
    name: str
    credit_limit: Decimal = Decimal(0)
    currency: str = "EUR"
    blocked: bool = False


def _money(amount: Decimal, currency: str, field: str, problems: list[Problem]) -> int | None:
    if not is_iso_currency(currency):
        problems.append(
            Problem(ErrorCode.INVALID_CURRENCY, f"{currency!r} is not an ISO 4217 code.", field)
        )
        return None
    try:
        minor = to_minor(amount, currency)
    except ValueError as exc:
        problems.append(Problem(ErrorCode.INVALID_PRICE, f"{exc}.", field))
        return None
    if minor < 0:
        problems.append(Problem(ErrorCode.INVALID_PRICE, "An amount cannot be negative.", field))
        return None
    return minor


async def upsert_products(items: list[ProductData]) -> list[dict[str, Any]]:
    """Insert or update every product by SKU in one transaction; any problem stores nothing."""
    problems: list[Problem] = []
    if len(items) > MAX_PRODUCTS_PER_CALL:
        problems.append(
            Problem(
                ErrorCode.INVALID_VALUE,
                f"At most {MAX_PRODUCTS_PER_CALL} products per call.",
                "input",
            )
        )
    seen: set[str] = set()
    rows = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        sku = item.sku.strip()
        if not sku:
            problems.append(Problem(ErrorCode.REQUIRED, "Give the SKU.", f"{where}.sku"))
        elif SKU.check(sku, f"{where}.sku", problems) and sku in seen:
            problems.append(
                Problem(ErrorCode.DUPLICATE, f"SKU {sku} appears twice.", f"{where}.sku")
            )
        seen.add(sku)
        if not item.name.strip():
            problems.append(Problem(ErrorCode.REQUIRED, "Give the name.", f"{where}.name"))
        PRODUCT_NAME.check(item.name.strip(), f"{where}.name", problems)
        if item.stock_on_hand < 0:
            problems.append(
                Problem(
                    ErrorCode.INVALID_QUANTITY,
                    "Stock on hand cannot be negative.",
                    f"{where}.stockOnHand",
                )
            )
        elif item.stock_on_hand > MAX_STOCK:
            problems.append(
                Problem(
                    ErrorCode.OUT_OF_RANGE,
                    f"Stock on hand is at most {MAX_STOCK}.",
                    f"{where}.stockOnHand",
                )
            )
        BIN_LOCATION.check(item.bin_location.strip(), f"{where}.binLocation", problems)
        currency = item.currency.strip().upper()
        price = _money(item.list_price, currency, f"{where}.listPrice", problems)
        if price is not None:
            rows.append(
                Product(
                    sku=sku,
                    name=item.name.strip(),
                    list_price_minor=price,
                    currency=currency,
                    stock_on_hand=item.stock_on_hand,
                    active=item.active,
                    bin_location=item.bin_location.strip(),
                    updated_at=db.now(),
                )
            )
    if problems:
        raise DomainError(*problems)
    if not rows:
        return []
    async with db.write_transaction():
        await Product.insert(*rows).on_conflict(
            target=Product.sku,
            action="DO UPDATE",
            values=[
                Product.name,
                Product.list_price_minor,
                Product.currency,
                Product.stock_on_hand,
                Product.active,
                Product.bin_location,
                Product.updated_at,
            ],
        )
        stored = await Product.select().where(Product.sku.is_in(sorted(seen)))
        short = [p for p in stored if p["stock_on_hand"] < p["stock_reserved"]]
        if short:
            raise DomainError(
                *(
                    Problem(
                        ErrorCode.INVALID_QUANTITY,
                        f"SKU {p['sku']} has {p['stock_reserved']} reserved; stock on hand "
                        "cannot be lower.",
                        "input",
                    )
                    for p in short
                )
            )
    by_sku = {p["sku"]: p for p in stored}
    return [by_sku[row.sku] for row in rows]


async def upsert_customer(data: CustomerData) -> dict[str, Any]:
    problems: list[Problem] = []
    email = data.email.strip().lower()
    if EMAIL.check(email, "email", problems) and not is_email(email):
        problems.append(
            Problem(ErrorCode.INVALID_VALUE, f"{data.email!r} is not an e-mail address.", "email")
        )
    if not data.name.strip():
        problems.append(Problem(ErrorCode.REQUIRED, "Give the customer's name.", "name"))
    CUSTOMER_NAME.check(data.name.strip(), "name", problems)
    currency = data.currency.strip().upper()
    limit = _money(data.credit_limit, currency, "creditLimit", problems)
    if problems or limit is None:
        raise DomainError(*problems)
    try:
        async with db.write_transaction():
            await Customer.insert(
                Customer(
                    email=email,
                    name=data.name.strip(),
                    credit_limit_minor=limit,
                    currency=currency,
                    blocked=data.blocked,
                )
            ).on_conflict(
                target=Customer.email,
                action="DO UPDATE",
                values=[
                    Customer.name,
                    Customer.credit_limit_minor,
                    Customer.currency,
                    Customer.blocked,
                ],
            )
            row = await Customer.select().where(Customer.email == email).first()
    except Exception as exc:
        translated = translate(exc)
        if translated is None:
            raise
        raise translated from exc
    return row
