"""Stock reservations that cannot oversell.

Each function runs inside the caller's write transaction. A reservation is one
conditional UPDATE per SKU (``available >= quantity``), in SKU order so that two
transactions on PostgreSQL lock rows in the same order and cannot deadlock; on
SQLite the IMMEDIATE transaction already serializes writers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from ordergraph.core import db
from ordergraph.core.errors import ErrorCode, Problem
from ordergraph.core.orders import LineView
from ordergraph.core.tables import Product


def quantities(lines: Iterable[LineView]) -> dict[str, int]:
    """Total quantity per SKU, in SKU order."""
    totals: Counter[str] = Counter()
    for line in lines:
        totals[line.sku] += line.quantity
    return dict(sorted(totals.items()))


async def available(skus: Iterable[str]) -> dict[str, int]:
    rows = await Product.select(Product.sku, Product.stock_on_hand, Product.stock_reserved).where(
        Product.sku.is_in(sorted(set(skus)) or [""])
    )
    return {r["sku"]: r["stock_on_hand"] - r["stock_reserved"] for r in rows}


def shortage(sku: str, wanted: int, left: int) -> Problem:
    return Problem(
        ErrorCode.INSUFFICIENT_STOCK,
        f"SKU {sku}: {wanted} requested, {max(left, 0)} available.",
        "lines",
    )


async def reserve(lines: Iterable[LineView]) -> list[Problem]:
    """Reserve every line or report each SKU that is short; the caller rolls back on problems."""
    problems = []
    for sku, quantity in quantities(lines).items():
        reserved = await db.raw(
            "UPDATE products SET stock_reserved = stock_reserved + {} "
            "WHERE sku = {} AND stock_on_hand - stock_reserved >= {} RETURNING id",
            quantity,
            sku,
            quantity,
        )
        if not reserved:
            left = (await available([sku])).get(sku, 0)
            problems.append(shortage(sku, quantity, left))
    return problems


async def release(lines: Iterable[LineView]) -> None:
    """Give back what ``reserve`` took (cancel, reject)."""
    await release_quantities(quantities(lines))


async def release_quantities(counts: Mapping[str, int]) -> None:
    """Give back part of a reservation, ``{sku: quantity}`` (a cancelled remainder)."""
    for sku, quantity in sorted(counts.items()):
        await db.raw(
            "UPDATE products SET stock_reserved = stock_reserved - {} WHERE sku = {}",
            quantity,
            sku,
        )


async def consume(lines: Iterable[LineView]) -> None:
    """Turn a reservation into a shipment: the goods leave the warehouse."""
    await consume_quantities(quantities(lines))


async def consume_quantities(counts: Mapping[str, int]) -> None:
    """Turn part of a reservation, ``{sku: quantity}``, into goods shipped."""
    for sku, quantity in sorted(counts.items()):
        await db.raw(
            "UPDATE products SET stock_reserved = stock_reserved - {}, "
            "stock_on_hand = stock_on_hand - {} WHERE sku = {}",
            quantity,
            quantity,
            sku,
        )
