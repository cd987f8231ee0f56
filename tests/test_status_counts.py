"""statusGraph counts and totalCount come from per-status counts kept by the database:
they must equal a real count after any mix of concurrent submissions and transitions."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import random
from collections import Counter

from conftest import SUBMIT, Api, new_postgres_database, order_input

from ordergraph.core import db, migrations
from ordergraph.core.tables import SchemaMigration
from ordergraph.graphql.types import COUNT_CAP

ORDERS = 40

MOVE = """
mutation Move($id: ID!, $t: String!) {
  transitionOrder(id: $id, transition: $t) { order { status } errors { code } }
}
"""
COUNTS = "{ statusGraph { states { name count } } }"
TOTAL = "query($s: [String!]) { orders(filter: {status: $s}) { totalCount } }"


async def counted_by_the_api(api: Api, as_: str = "admin") -> Counter[str]:
    states = (await api.data(COUNTS, as_=as_))["statusGraph"]["states"]
    return Counter({s["name"]: s["count"] for s in states if s["count"]})


async def counted_in_orders(customer: int | None = None) -> Counter[str]:
    where = f'WHERE "customer" = {int(customer)} ' if customer is not None else ""
    rows = await db.raw(f'SELECT "status", COUNT(*) AS n FROM "orders" {where}GROUP BY "status"')
    return Counter({r["status"]: r["n"] for r in rows})


async def submit_at_once(api: Api, prefix: str, count: int) -> list[str]:
    bodies = await asyncio.gather(
        *(
            api.data(SUBMIT, {"input": order_input(f"{prefix}-{i}")}, as_="staff")
            for i in range(count)
        )
    )
    return [b["submitOrder"]["order"]["id"] for b in bodies]


async def move_at_once(api: Api, moves: list[tuple[str, str]]) -> int:
    """Fire every (order id, transition) concurrently; how many moved an order."""
    bodies = await asyncio.gather(
        *(api.data(MOVE, {"id": order_id, "t": t}, as_="staff") for order_id, t in moves)
    )
    return sum(1 for b in bodies if not b["transitionOrder"]["errors"])


async def test_counts_stay_exact_under_concurrent_submissions_and_transitions(api: Api) -> None:
    rng = random.Random(4)
    ids = await submit_at_once(api, "C", ORDERS)
    assert await counted_by_the_api(api) == Counter({"RECEIVED": ORDERS})

    # Two staff members act on every order at once: one starts review, one cancels
    # (both win when the review starts first: IN_REVIEW may be cancelled too).
    moved = await move_at_once(
        api, [(i, t) for i in ids for t in rng.sample(["start_review", "cancel"], 2)]
    )
    assert moved >= ORDERS
    # Then every order under review is decided three ways at once, and more arrive.
    decisions = [(i, t) for i in ids for t in ("approve", "hold", "reject")]
    rng.shuffle(decisions)
    _, more = await asyncio.gather(move_at_once(api, decisions), submit_at_once(api, "D", 10))

    truth = await counted_in_orders()
    assert sum(truth.values()) == ORDERS + len(more)
    assert len(truth) >= 3, truth  # a real mix of states, not one
    assert await counted_by_the_api(api) == truth
    for status, n in truth.items():
        assert (await api.data(TOTAL, {"s": [status]}))["orders"]["totalCount"] == n
    everything = (await api.data(TOTAL, {"s": None}))["orders"]["totalCount"]
    assert everything == ORDERS + len(more)


async def test_customers_count_only_their_own_orders(api: Api) -> None:
    await submit_at_once(api, "A", 3)
    bob = (await api.data("{ me { customerId } }", as_="bob"))["me"]["customerId"]
    await api.data(SUBMIT, {"input": order_input("B-1", customerEmail="bob@example.com")})

    assert await counted_by_the_api(api, as_="bob") == await counted_in_orders(int(bob))
    assert await counted_by_the_api(api, as_="bob") == Counter({"RECEIVED": 1})
    assert (await api.data(TOTAL, {"s": None}, as_="bob"))["orders"]["totalCount"] == 1
    assert await counted_by_the_api(api) == Counter({"RECEIVED": 4})


async def test_migrating_a_database_with_orders_counts_them(is_postgres: bool, tmp_path) -> None:
    """m0004 counts the orders already stored when it is applied."""
    async with contextlib.AsyncExitStack() as stack:
        if is_postgres:
            url = await stack.enter_async_context(new_postgres_database())
        else:
            url = f"sqlite:///{tmp_path}/before_m0004.db"
        await db.connect(url)
        stack.push_async_callback(db.disconnect)
        await migrations.applied()
        for name in [n for n in migrations.available() if n < "m0004"]:
            module = importlib.import_module(f"ordergraph.core.migrations.{name}")
            for statement in module.SQLITE if db.current().is_sqlite else module.POSTGRES:
                await db.current().engine.run_ddl(statement)
            await SchemaMigration.insert(SchemaMigration(name=name))
        await db.raw(
            'INSERT INTO "customers" ("email", "name") VALUES (\'old@example.com\', \'Old\')'
        )
        for i, status in enumerate(["SETTLED"] * 5 + ["ON_HOLD"] * 2 + ["RECEIVED"]):
            await db.raw(
                'INSERT INTO "orders" ("channel", "external_id", "customer", "currency", '
                "\"status\") VALUES ('web', {}, 1, 'EUR', {})",
                f"OLD-{i}",
                status,
            )

        assert "m0004_counts_and_indexes" in await migrations.migrate()
        rows = await db.raw(
            'SELECT "status", SUM("n") AS n FROM "order_status_counts" GROUP BY "status"'
        )
        counts = {r["status"]: int(r["n"]) for r in rows}
        assert counts == {"SETTLED": 5, "ON_HOLD": 2, "RECEIVED": 1}


async def test_total_count_stops_past_the_cap_except_where_the_counts_answer(api: Api) -> None:
    many = COUNT_CAP + 50
    await db.raw(
        f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {many}) "
        'INSERT INTO "orders" ("channel", "external_id", "customer", "currency", "status") '
        "SELECT 'web', 'BULK-' || i, (SELECT id FROM customers WHERE email = 'ada@example.com'), "
        "'EUR', 'RECEIVED' FROM n"
    )
    by_channel = '{ orders(filter: {channel: "web"}) { totalCount } }'
    as_ada = "{ orders { totalCount } }"

    assert (await api.data(TOTAL, {"s": None}))["orders"]["totalCount"] == many
    assert (await api.data(TOTAL, {"s": ["RECEIVED"]}))["orders"]["totalCount"] == many
    assert await counted_by_the_api(api) == Counter({"RECEIVED": many})
    assert (await api.data(by_channel))["orders"]["totalCount"] == COUNT_CAP + 1
    assert (await api.data(as_ada, as_="ada"))["orders"]["totalCount"] == COUNT_CAP + 1
