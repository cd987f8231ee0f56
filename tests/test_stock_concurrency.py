"""Stock reservations under real concurrency never oversell, on SQLite and PostgreSQL.

The orders are reviewed at the same time (``asyncio.gather``): on PostgreSQL through a
pool of 10 connections, so transactions really interleave and wait on row locks; on
SQLite the IMMEDIATE write transactions queue for the one write lock.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from conftest import Api, make_settings, seed_shop, submit

from ordergraph.app import create_app
from ordergraph.core import auth, db
from ordergraph.core.errors import DomainError, ErrorCode, Problem
from ordergraph.core.orders import LineView
from ordergraph.stages.entry.masterdata import ProductData, upsert_products
from ordergraph.stages.review import inventory, pipeline

ORDER = """
query Order($id: ID!) {
  order(id: $id) { id status reviewFindings { rule outcome code message } }
}
"""
STOCK = "{ products(first: 20) { edges { node { sku stockOnHand stockReserved } } } }"
APPROVE = """
mutation Approve($id: ID!) {
  approveOrder(id: $id) { order { status } errors { code message } }
}
"""
CANCEL = """
mutation Cancel($id: ID!) { cancelOrder(id: $id) { order { status } errors { code } } }
"""


@contextlib.asynccontextmanager
async def shop(
    database_url: str, plugins: dict[str, dict[str, Any]], *, run_jobs: bool
) -> AsyncIterator[Api]:
    """The real app with these plugins, the seeded shop plus scarce products HOT (30),
    PAIR-A (15) and PAIR-B (25), and staff and admin tokens."""
    app = create_app(make_settings(database_url, plugins=plugins), run_jobs=run_jobs)
    async with LifespanManager(app) as manager:
        await seed_shop()
        await upsert_products(
            [
                ProductData("HOT", "Hot item", Decimal("10.00"), "EUR", 30),
                ProductData("PAIR-A", "Pair, left", Decimal("5.00"), "EUR", 15),
                ProductData("PAIR-B", "Pair, right", Decimal("5.00"), "EUR", 25),
            ]
        )
        tokens = {
            "admin": await auth.create_token("admin", name="alice"),
            "staff": await auth.create_token("staff", name="sam"),
        }
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client=client, rt=app.state.rt, tokens=tokens)


async def submit_many(api: Api, prefix: str, count: int, lines: list[dict[str, Any]]) -> list[str]:
    """Submit one after another: what runs concurrently in these tests is the review.
    Their databaseIds, which arguments take as they take global ids."""
    return [
        str((await submit(api, f"{prefix}-{i}", lines=lines))["databaseId"]) for i in range(count)
    ]


async def orders(api: Api, ids: list[str]) -> list[dict[str, Any]]:
    return [(await api.data(ORDER, {"id": order_id}))["order"] for order_id in ids]


async def stock(api: Api) -> dict[str, tuple[int, int]]:
    """(on hand, reserved) by SKU."""
    edges = (await api.data(STOCK))["products"]["edges"]
    return {e["node"]["sku"]: (e["node"]["stockOnHand"], e["node"]["stockReserved"]) for e in edges}


async def test_a_hundred_concurrent_reviews_of_thirty_in_stock_approve_exactly_thirty(
    database_url: str,
) -> None:
    async with shop(database_url, {"stock": {"enabled": True}}, run_jobs=False) as api:
        ids = await submit_many(api, "HOT", 100, [{"sku": "HOT", "quantity": 1}])

        await asyncio.gather(*(pipeline.review_order(api.rt, int(order_id)) for order_id in ids))

        decided = await orders(api, ids)
        by_status = collections.Counter(o["status"] for o in decided)
        assert by_status == {"APPROVED": 30, "REJECTED": 70}
        for rejected in (o for o in decided if o["status"] == "REJECTED"):
            assert {
                "rule": "stock",
                "outcome": "FAIL",
                "code": "INSUFFICIENT_STOCK",
                "message": "SKU HOT: 1 requested, 0 available.",
            } in rejected["reviewFindings"], rejected
        assert (await stock(api))["HOT"] == (30, 30)

        approved = [o["id"] for o in decided if o["status"] == "APPROVED"]
        cancelled = await asyncio.gather(
            *(api.data(CANCEL, {"id": order_id}) for order_id in approved[:5])
        )
        assert all(c["cancelOrder"]["order"]["status"] == "CANCELLED" for c in cancelled)
        assert (await stock(api))["HOT"] == (30, 25)


async def test_orders_reviewed_together_are_decided_as_each_would_be_alone(
    database_url: str,
) -> None:
    """Ten batches of ten at once: a batch whose stock runs out is decided order by order."""
    async with shop(database_url, {"stock": {"enabled": True}}, run_jobs=False) as api:
        ids = await submit_many(api, "BATCH", 100, [{"sku": "HOT", "quantity": 1}])
        batches = [[int(order_id) for order_id in ids[i : i + 10]] for i in range(0, 100, 10)]

        outcomes = await asyncio.gather(*(pipeline.review_orders(api.rt, b) for b in batches))

        assert outcomes == [[None] * 10] * 10
        decided = await orders(api, ids)
        assert collections.Counter(o["status"] for o in decided) == {
            "APPROVED": 30,
            "REJECTED": 70,
        }
        for found in decided:
            codes = [f["code"] for f in found["reviewFindings"]]
            if found["status"] == "APPROVED":
                assert codes == ["IN_STOCK"], found
            else:  # short when read, or when its reservation was written
                assert codes in (["INSUFFICIENT_STOCK"], ["IN_STOCK", "INSUFFICIENT_STOCK"]), found
        assert (await stock(api))["HOT"] == (30, 30)


async def test_stock_changes_made_together_end_as_the_same_changes_made_one_by_one(
    database_url: str,
) -> None:
    """``adjusted_together`` (the stock of a review batch) writes the sum of the changes,
    in one statement, and refuses the whole when a reservation's total is short."""
    hot = [LineView(1, "HOT", "Hot item", 4, Decimal("10.00"), Decimal("40.00"))]
    pair = [LineView(1, "PAIR-A", "Pair, left", 2, Decimal("5.00"), Decimal("10.00"))]

    async def changes() -> list[Problem]:
        problems = await inventory.reserve(hot)
        problems += await inventory.reserve(hot + pair)
        await inventory.release(hot)
        await inventory.consume(pair)
        return problems

    async with shop(database_url, {"stock": {"enabled": True}}, run_jobs=False) as api:
        async with db.write_transaction():
            assert await changes() == []
        one_by_one = await stock(api)
        with db.count_statements() as log:
            async with db.write_transaction(), inventory.adjusted_together():
                assert await changes() == []
        together = await stock(api)
        updates = [s for s in log.statements if "UPDATE products" in s]

        assert one_by_one["HOT"] == (30, 4) and one_by_one["PAIR-A"] == (13, 0)
        assert together["HOT"] == (30, 8) and together["PAIR-A"] == (11, 0)
        assert len(updates) == 1

        with pytest.raises(DomainError) as refused:
            async with db.write_transaction(), inventory.adjusted_together():
                await inventory.reserve(hot * 3)  # 12 of the 22 left: it fits alone
                await inventory.reserve(hot * 3)  # but not twice
        assert [(p.code, p.message) for p in refused.value.problems] == [
            (ErrorCode.INSUFFICIENT_STOCK, "SKU HOT: 24 requested, 22 available.")
        ]
        assert await stock(api) == together


async def test_concurrent_orders_locking_two_skus_in_opposite_orders_do_not_deadlock(
    database_url: str,
) -> None:
    """Lines name the SKUs in either order; reservations lock them in SKU order."""
    async with shop(database_url, {"stock": {"enabled": True}}, run_jobs=False) as api:
        a_then_b = [{"sku": "PAIR-A", "quantity": 1}, {"sku": "PAIR-B", "quantity": 1}]
        ids = await submit_many(api, "AB", 20, a_then_b)
        ids += await submit_many(api, "BA", 20, a_then_b[::-1])

        await asyncio.gather(*(pipeline.review_order(api.rt, int(order_id)) for order_id in ids))

        by_status = collections.Counter(o["status"] for o in await orders(api, ids))
        assert by_status == {"APPROVED": 15, "REJECTED": 25}
        levels = await stock(api)
        assert (levels["PAIR-A"], levels["PAIR-B"]) == ((15, 15), (25, 15))


async def test_concurrent_staff_approvals_over_http_never_oversell(database_url: str) -> None:
    """Held orders pass the stock check while nothing is reserved; approving them all at
    once over HTTP reserves exactly what is there and refuses the rest."""
    plugins = {
        "stock": {"enabled": True},
        "manual_review": {"enabled": True, "amount_over": "0"},
    }
    async with shop(database_url, plugins, run_jobs=True) as api:
        ids = await submit_many(api, "HELD", 45, [{"sku": "HOT", "quantity": 1}])
        await api.rt.runner.drain()
        assert {o["status"] for o in await orders(api, ids)} == {"ON_HOLD"}

        answers = await asyncio.gather(
            *(api.data(APPROVE, {"id": order_id}, as_="staff") for order_id in ids)
        )

        payloads = [a["approveOrder"] for a in answers]
        approved = [p for p in payloads if p["order"] is not None]
        refused = [p for p in payloads if p["order"] is None]
        assert len(approved) == 30
        assert {p["order"]["status"] for p in approved} == {"APPROVED"}
        assert len(refused) == 15
        assert all(
            p["errors"]
            == [{"code": "INSUFFICIENT_STOCK", "message": "SKU HOT: 1 requested, 0 available."}]
            for p in refused
        )
        assert (await stock(api))["HOT"] == (30, 30)
        by_status = collections.Counter(o["status"] for o in await orders(api, ids))
        assert by_status == {"APPROVED": 30, "ON_HOLD": 15}
