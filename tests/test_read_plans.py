"""Every list query can be served by an index, read from the database's own plans.

The statements are the ones the GraphQL API really sends (recorded with
``count_statements``). On PostgreSQL each is explained with sequential scans disabled, so
a plan that still scans a table proves no index can serve it; on SQLite, EXPLAIN QUERY
PLAN must show a SEARCH, an index scan or a walk of the rowid b-tree in id order (a
keyset page), never a scan and sort. Substring search has no index on SQLite.
"""

from __future__ import annotations

import re

import pytest
from conftest import Api, submit

from ordergraph.core import db
from ordergraph.graphql.types import encode_cursor

# Tables that grow with the business; order_status_counts and api_tokens stay small.
TABLES = ("orders", "order_lines", "order_events", "customers", "products", "import_errors")

PAGE = "edges { node { id lines { sku } customer { email } } } totalCount"
LISTS = {
    "orders": f"{{ orders(first: 50) {{ {PAGE} }} }}",
    "orders by status": f'{{ orders(filter: {{status: ["ON_HOLD"]}}) {{ {PAGE} }} }}',
    "orders by channel": f'{{ orders(filter: {{channel: "web"}}) {{ {PAGE} }} }}',
    "orders by customer": f'{{ orders(filter: {{customerId: "1"}}) {{ {PAGE} }} }}',
    "orders by creation": (
        '{ orders(filter: {createdAfter: "2020-01-01T00:00:00Z", '
        f'createdBefore: "2020-02-01T00:00:00Z"}}) {{ {PAGE} }} }}'
    ),
    "orders by status and channel, second page": (
        f'{{ orders(after: "{encode_cursor("order", 3)}", '
        f'filter: {{status: ["RECEIVED"], channel: "web"}}) {{ {PAGE} }} }}'
    ),
    "orders of a customer": f"{{ orders {{ {PAGE} }} }}",
    "order by number": '{ orderByNumber(number: "SO-000002") { id lines { sku } } }',
    "status graph of a customer": "{ statusGraph { states { name count } } }",
    "review queue": "{ reviewQueue { edges { node { id } } totalCount } }",
    "review queue, second page": (
        f'{{ reviewQueue(after: "{encode_cursor("queue", 2 * 10**12 + 1)}") '
        "{ edges { node { id } } } }"
    ),
    "products": "{ products { edges { node { sku } } totalCount } }",
    "import errors": "{ importErrors { edges { node { id } } totalCount } }",
    "import errors by channel": (
        '{ importErrors(status: null, channel: "csv") { edges { node { id } } totalCount } }'
    ),
}
SEARCHES = {
    "orders by search": f'{{ orders(filter: {{search: "lovelace"}}) {{ {PAGE} }} }}',
    "products by search": '{ products(search: "mug") { edges { node { sku } } totalCount } }',
    "customers by search": '{ customers(search: "ada") { edges { node { id } } totalCount } }',
}
# The trigram indexes a search's page must read (on PostgreSQL).
SEARCHED_BY = {
    "orders by search": ("orders_external_id_trgm", "customers_email_trgm", "customers_name_trgm"),
    "products by search": ("products_sku_trgm", "products_name_trgm"),
    "customers by search": ("customers_email_trgm", "customers_name_trgm"),
}
AS_CUSTOMER = {"orders of a customer", "status graph of a customer"}
# The index that reads the list itself: naming it proves the filter is what the index
# serves, not a walk of the whole primary key. SQLite reads by rowid with "SCAN <table>"
# or "INTEGER PRIMARY KEY", and without statistics reads the queue by status and sorts it.
SQLITE_ROWID = ("SCAN orders\n", "SCAN products\n", "INTEGER PRIMARY KEY")
READ_BY = {
    "orders": ("orders_pkey", *SQLITE_ROWID),
    "orders by status": ("orders_status_id",),
    "orders by channel": ("orders_channel_id",),
    "orders by customer": ("orders_customer_id",),
    "orders by creation": ("orders_created_at",),
    "orders by status and channel, second page": ("orders_status_id", "orders_channel_id"),
    "orders of a customer": ("orders_customer_id",),
    "order by number": ("orders_pkey", *SQLITE_ROWID),
    "status graph of a customer": ("orders_customer_id",),
    "review queue": ("orders_review_queue", "SEARCH orders USING INDEX orders_status_id"),
    "review queue, second page": (
        "orders_review_queue",
        "SEARCH orders USING INDEX orders_status_id",
    ),
    "products": ("products_pkey", *SQLITE_ROWID),
    "import errors": ("import_errors_status_id",),
    "import errors by channel": ("import_errors_channel_id",),
}


async def sent_statements(api: Api, query: str, as_: str) -> list[tuple[str, tuple]]:
    """The SELECTs a query sent, with their arguments."""
    with db.count_statements() as log:
        await api.data(query, as_=as_)
    return [
        (sql, args)
        for sql, args in zip(log.statements, log.arguments, strict=True)
        if sql.lstrip().upper().startswith("SELECT")
    ]


def with_placeholders(sql: str) -> str:
    """A statement as sent (``?`` or ``$1`` for its arguments) in ``db.raw``'s ``{}`` form."""
    escaped = sql.replace("{", "{{").replace("}", "}}")
    return (
        re.sub(r"\$\d+", "{}", escaped)
        if not db.current().is_sqlite
        else escaped.replace("?", "{}")
    )


async def postgres_plan(sql: str, args: tuple, *, bitmaps_only: bool = False) -> str:
    async with db.write_transaction():
        await db.raw("SET LOCAL enable_seqscan = off")
        if bitmaps_only:
            # A table of a few rows is best walked by its primary key even when
            # searched; without that walk the plan shows which indexes can serve it.
            await db.raw("SET LOCAL enable_indexscan = off")
        rows = await db.raw("EXPLAIN " + with_placeholders(sql), *args)
    return "\n".join(row["QUERY PLAN"] for row in rows)


async def sqlite_plan(sql: str, args: tuple) -> str:
    rows = await db.raw("EXPLAIN QUERY PLAN " + with_placeholders(sql), *args)
    return "\n".join(row["detail"] for row in rows)


def postgres_scans(plan: str) -> list[str]:
    return [t for t in re.findall(r"Seq Scan on (\w+)", plan) if t in TABLES]


def sqlite_scans(sql: str, plan: str) -> list[str]:
    scanned = [t for t in re.findall(r"^SCAN (\w+)(?! USING)", plan, re.M) if t in TABLES]
    keyset_walk = re.search(r'ORDER BY "\w+"\."id" (ASC|DESC) LIMIT \d+$', sql)
    if keyset_walk and "TEMP B-TREE" not in plan:
        return []
    return scanned


async def scans_of(
    api: Api, query: str, as_: str, *, bitmaps_only: bool = False
) -> list[tuple[str, list[str]]]:
    """(plan, tables scanned) of every statement that reads a growing table."""
    found = []
    for sql, args in await sent_statements(api, query, as_):
        if not any(f'"{t}"' in sql or f" {t} " in sql for t in TABLES):
            continue
        if db.current().is_sqlite:
            plan = await sqlite_plan(sql, args)
            found.append((f"{sql}\n{plan}", sqlite_scans(sql, plan)))
        else:
            plan = await postgres_plan(sql, args, bitmaps_only=bitmaps_only)
            found.append((f"{sql}\n{plan}", postgres_scans(plan)))
    return found


async def seed_orders(api: Api) -> None:
    for i in range(3):
        await submit(api, f"PLAN-{i}")
    await submit(api, "PLAN-BOB", customerEmail="bob@example.com")


async def test_every_list_query_is_served_by_an_index(api: Api) -> None:
    await seed_orders(api)
    scanning, unindexed = [], []
    for name, query in LISTS.items():
        plans = await scans_of(api, query, "ada" if name in AS_CUSTOMER else "admin")
        scanning += [f"{name}: {plan}" for plan, scanned in plans if scanned]
        first = plans[0][0] + "\n"
        if not any(index in first for index in READ_BY[name]):
            unindexed.append(f"{name}: {first}")
    assert scanning == []
    assert unindexed == []


async def test_search_is_served_by_trigram_indexes_on_postgres(api: Api, is_postgres: bool) -> None:
    if not is_postgres:
        pytest.skip("SQLite has no index for substring search; it scans")
    await seed_orders(api)
    scanning, unindexed = [], []
    for name, query in SEARCHES.items():
        plans = await scans_of(api, query, "admin", bitmaps_only=True)
        scanning += [f"{name}: {plan}" for plan, scanned in plans if scanned]
        first = plans[0][0]
        if not all(index in first for index in SEARCHED_BY[name]):
            unindexed.append(f"{name}: {first}")
    assert scanning == []
    assert unindexed == []


async def test_the_review_queue_reads_its_own_index_on_postgres(
    api: Api, is_postgres: bool
) -> None:
    """The queue's rank expression and its index's (m0004) must stay the same text.

    (SQLite, without statistics, prefers the status index and sorts the ON_HOLD orders.)
    """
    if not is_postgres:
        pytest.skip("SQLite's planner picks the status index until ANALYZE has run")
    plans = await scans_of(api, LISTS["review queue"], "admin")
    [plan] = [plan for plan, _ in plans if "queue_rank" in plan]
    assert "orders_review_queue" in plan, plan


async def test_counting_orders_does_not_read_the_orders(api: Api) -> None:
    await seed_orders(api)
    for query in (
        LISTS["orders"],
        LISTS["orders by status"],
        "{ statusGraph { states { count } } }",
    ):
        statements = [sql for sql, _ in await sent_statements(api, query, "admin")]
        counts = [s for s in statements if "COUNT(" in s.upper() or "SUM(" in s.upper()]
        assert counts and all('"order_status_counts"' in s for s in counts), counts
