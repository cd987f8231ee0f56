"""Stock reservations that cannot oversell.

Each function runs inside the caller's write transaction and changes every SKU of
the order in one statement (within ``adjusted_together``, of every order the
transaction moves). A reservation is conditional per SKU (``available >=
quantity``). On PostgreSQL the statement first locks the products in SKU order, so
two transactions cannot deadlock on them; on SQLite the IMMEDIATE transaction already
serializes writers.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field

from ordergraph.core import db
from ordergraph.core.errors import DomainError, ErrorCode, Problem
from ordergraph.core.orders import LineView


def quantities(lines: Iterable[LineView]) -> dict[str, int]:
    """Total quantity per SKU, in SKU order."""
    totals: Counter[str] = Counter()
    for line in lines:
        totals[line.sku] += line.quantity
    return dict(sorted(totals.items()))


async def available(skus: Iterable[str]) -> dict[str, int]:
    """The stock not yet reserved, by SKU (known SKUs only)."""
    # Imported here: lookups reach payments, which move orders (core.transitions), and
    # core.transitions sums the stock of the orders it moves together here.
    from ordergraph.stages.review.lookups import get_products

    return {sku: product.available for sku, product in (await get_products(skus)).items()}


def shortage(sku: str, wanted: int, left: int) -> Problem:
    return Problem(
        ErrorCode.INSUFFICIENT_STOCK,
        f"SKU {sku}: {wanted} requested, {max(left, 0)} available.",
        "lines",
    )


@dataclass
class _Together:
    """The adjustments summed by ``adjusted_together``, by SKU."""

    reserved: Counter[str] = field(default_factory=Counter)
    on_hand: Counter[str] = field(default_factory=Counter)
    needed: Counter[str] = field(default_factory=Counter)


_together: ContextVar[_Together | None] = ContextVar("stock_adjusted_together", default=None)


@contextlib.asynccontextmanager
async def adjusted_together() -> AsyncIterator[None]:
    """Sum the stock adjustments made within (inside a write transaction) per SKU, and
    write them in one statement as the block ends.

    A reservation made within reports no shortage: it is judged when the block ends,
    on the total of the reservations of its SKU, and a shortage raises ``DomainError``
    (INSUFFICIENT_STOCK), on which the caller's transaction must roll back. Stock read
    within does not show the adjustments yet. ``transition_orders`` moves several
    orders so: one statement for every order's stock, instead of one per order.
    """
    pending = _Together()
    token = _together.set(pending)
    try:
        yield
    finally:
        _together.reset(token)
    skus = sorted(pending.reserved.keys() | pending.on_hand.keys())
    changed = await _write(
        {sku: (pending.reserved[sku], pending.on_hand[sku], pending.needed[sku]) for sku in skus}
    )
    short = {sku: n for sku, n in pending.needed.items() if n and sku not in changed}
    if short:
        left = await available(short)
        raise DomainError(*(shortage(sku, n, left.get(sku, 0)) for sku, n in short.items()))


async def _adjust(
    wanted: dict[str, int], *, reserved: int, on_hand: int, if_available: bool = False
) -> set[str]:
    """Add ``reserved`` and ``on_hand`` times each SKU's quantity to its stock, in one
    statement; with ``if_available`` only where the unreserved stock covers the
    quantity. Returns the SKUs changed (within ``adjusted_together``: all of them, for
    now)."""
    pending = _together.get()
    if pending is not None:
        for sku, quantity in wanted.items():
            pending.reserved[sku] += reserved * quantity
            pending.on_hand[sku] += on_hand * quantity
            pending.needed[sku] += quantity if if_available else 0
        return set(wanted)
    return await _write(
        {
            sku: (reserved * quantity, on_hand * quantity, quantity if if_available else 0)
            for sku, quantity in wanted.items()
        }
    )


async def _write(changes: dict[str, tuple[int, int, int]]) -> set[str]:
    """Add to each SKU's reserved and on-hand stock, ``{sku: (reserved, on_hand,
    needed)}``, where its unreserved stock is at least ``needed`` (0: unconditionally),
    in one statement. Returns the SKUs changed."""
    if not changes:
        return set()
    if db.current().is_sqlite:
        rows = await db.raw(
            "UPDATE products SET stock_reserved = stock_reserved + (w.value ->> 0), "
            "stock_on_hand = stock_on_hand + (w.value ->> 1) "
            "FROM json_each({}) AS w WHERE products.sku = w.key AND ((w.value ->> 2) = 0 "
            "OR products.stock_on_hand - products.stock_reserved >= (w.value ->> 2)) "
            "RETURNING products.sku",
            json.dumps(changes),
        )
    else:
        rows = await db.raw(
            "WITH w(sku, reserved, on_hand, needed) AS "
            "(SELECT * FROM unnest({}::text[], {}::int[], {}::int[], {}::int[])), "
            "locked AS MATERIALIZED (SELECT p.id FROM products p JOIN w ON p.sku = w.sku "
            "ORDER BY p.sku FOR UPDATE OF p) "
            "UPDATE products p SET stock_reserved = p.stock_reserved + w.reserved, "
            "stock_on_hand = p.stock_on_hand + w.on_hand "
            "FROM w WHERE p.sku = w.sku AND p.id IN (SELECT id FROM locked) "
            "AND (w.needed = 0 OR p.stock_on_hand - p.stock_reserved >= w.needed) "
            "RETURNING p.sku",
            list(changes),
            [change[0] for change in changes.values()],
            [change[1] for change in changes.values()],
            [change[2] for change in changes.values()],
        )
    return {row["sku"] for row in rows}


async def reserve(lines: Iterable[LineView]) -> list[Problem]:
    """Reserve every line or report each SKU that is short; the caller rolls back on
    problems. Within ``adjusted_together`` a shortage is raised as its block ends."""
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
