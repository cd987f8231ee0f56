"""Stock reservations that cannot oversell.

Each function runs inside the caller's write transaction and changes every SKU of
the order in one statement. A reservation is conditional per SKU (``available >=
quantity``). On PostgreSQL the statement first locks the products in SKU order, so
two transactions cannot deadlock on them; on SQLite the IMMEDIATE transaction already
serializes writers.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping

from ordergraph.core import db
from ordergraph.core.errors import ErrorCode, Problem
from ordergraph.core.lookups import get_products
from ordergraph.core.orders import LineView


def quantities(lines: Iterable[LineView]) -> dict[str, int]:
    """Total quantity per SKU, in SKU order."""
    totals: Counter[str] = Counter()
    for line in lines:
        totals[line.sku] += line.quantity
    return dict(sorted(totals.items()))


async def available(skus: Iterable[str]) -> dict[str, int]:
    """The stock not yet reserved, by SKU (known SKUs only)."""
    return {sku: product.available for sku, product in (await get_products(skus)).items()}


def shortage(sku: str, wanted: int, left: int) -> Problem:
    return Problem(
        ErrorCode.INSUFFICIENT_STOCK,
        f"SKU {sku}: {wanted} requested, {max(left, 0)} available.",
        "lines",
    )


async def _adjust(
    wanted: dict[str, int], *, reserved: int, on_hand: int, if_available: bool = False
) -> set[str]:
    """Add ``reserved`` and ``on_hand`` times each SKU's quantity to its stock, in one
    statement; with ``if_available`` only where the unreserved stock covers the
    quantity. Returns the SKUs changed."""
    if not wanted:
        return set()
    if db.current().is_sqlite:
        rows = await db.raw(
            f"UPDATE products SET stock_reserved = stock_reserved + {reserved} * w.value, "
            f"stock_on_hand = stock_on_hand + {on_hand} * w.value "
            "FROM json_each({}) AS w WHERE products.sku = w.key"
            + (
                " AND products.stock_on_hand - products.stock_reserved >= w.value"
                if if_available
                else ""
            )
            + " RETURNING products.sku",
            json.dumps(wanted),
        )
    else:
        rows = await db.raw(
            "WITH w(sku, quantity) AS (SELECT * FROM unnest({}::text[], {}::int[])), "
            "locked AS MATERIALIZED (SELECT p.id FROM products p JOIN w ON p.sku = w.sku "
            "ORDER BY p.sku FOR UPDATE OF p) "
            f"UPDATE products p SET stock_reserved = p.stock_reserved + {reserved} * w.quantity, "
            f"stock_on_hand = p.stock_on_hand + {on_hand} * w.quantity "
            "FROM w WHERE p.sku = w.sku AND p.id IN (SELECT id FROM locked)"
            + (" AND p.stock_on_hand - p.stock_reserved >= w.quantity" if if_available else "")
            + " RETURNING p.sku",
            list(wanted),
            list(wanted.values()),
        )
    return {row["sku"] for row in rows}


async def reserve(lines: Iterable[LineView]) -> list[Problem]:
    """Reserve every line or report each SKU that is short; the caller rolls back on problems."""
    wanted = quantities(lines)
    reserved = await _adjust(wanted, reserved=1, on_hand=0, if_available=True)
    short = {sku: quantity for sku, quantity in wanted.items() if sku not in reserved}
    if not short:
        return []
    left = await available(short)
    return [shortage(sku, quantity, left.get(sku, 0)) for sku, quantity in short.items()]


async def release(lines: Iterable[LineView]) -> None:
    """Give back what ``reserve`` took (cancel, reject)."""
    await release_quantities(quantities(lines))


async def release_quantities(counts: Mapping[str, int]) -> None:
    """Give back part of a reservation, ``{sku: quantity}`` (a cancelled remainder)."""
    await _adjust(dict(sorted(counts.items())), reserved=-1, on_hand=0)


async def consume(lines: Iterable[LineView]) -> None:
    """Turn a reservation into a shipment: the goods leave the warehouse."""
    await consume_quantities(quantities(lines))


async def consume_quantities(counts: Mapping[str, int]) -> None:
    """Turn part of a reservation, ``{sku: quantity}``, into goods shipped."""
    await _adjust(dict(sorted(counts.items())), reserved=-1, on_hand=-1)
