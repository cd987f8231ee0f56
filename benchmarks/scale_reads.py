"""How the read side holds up at a million orders: latency of the list queries and counts.

    .venv/bin/python benchmarks/scale_reads.py [--orders N] [--requests R] [--backends ...]

For each backend (PostgreSQL by default: a temporary database on the server of
TEST_POSTGRES_URL, dropped afterwards; or a temporary SQLite file) it migrates a fresh
database and loads N orders (default 1,000,000) with 1 to 3 lines and 2 events each,
N / 10 customers, 1,000 products and N / 100 import errors, in bulk: COPY on PostgreSQL
(with the counting triggers off, then one count, as a bulk import would do), one
transaction of ``executemany`` on SQLite (triggers on). It runs ANALYZE, then sends every
query below R times, one at a time, through the real GraphQL app (ASGI transport, job
runner off) and prints p50 and p99 per query; then, as "SQL", the same for the
statements of one such request sent alone, without the app (the database's share).

Before measuring, it prints the plan of every statement each query sends (EXPLAIN on
PostgreSQL, EXPLAIN QUERY PLAN on SQLite) and stops with an error when one reads a big
table (10,000 rows or more) by a sequential scan. Allowed: on PostgreSQL, the first rows
of a table under a LIMIT with no filter (a capped count reads at most 10,001 of them);
on SQLite, a walk of the rowid b-tree in id order up to a LIMIT (a keyset page, what
PostgreSQL does with its primary key index), and substring search, which has no index
there.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import random
import re
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from asgi_lifespan import LifespanManager
from common import argument_parser, fresh_database, markdown_table

from ordergraph.app import create_app
from ordergraph.core import auth, db, migrations
from ordergraph.core.migrations import m0004_counts_and_indexes
from ordergraph.core.orders import order_number
from ordergraph.core.settings import Settings

# A table this big must not be read by a sequential scan.
BIG_TABLE_ROWS = 10_000
CHANNELS = ("web", "shopify", "woocommerce", "csv")
PRIORITIES = (("NORMAL", 85), ("HIGH", 10), ("URGENT", 3), ("LOW", 2))
STATUSES = (
    ("SETTLED", 55),
    ("COMPLETED", 10),
    ("CANCELLED", 8),
    ("DELIVERED", 5),
    ("SHIPPED", 5),
    ("PROCESSING", 4),
    ("APPROVED", 4),
    ("REJECTED", 4),
    ("RECEIVED", 3),
    ("ON_HOLD", 1),
    ("IN_REVIEW", 1),
)
FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson")
PRODUCTS = 1_000
START = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
SPAN = datetime.timedelta(days=700)
ADDRESS = json.dumps({"name": "A. Customer", "line1": "1 Main St", "city": "Paris",
                      "postalCode": "75001", "country": "FR"})  # fmt: skip

LINE_FIELDS = "lines { sku quantity unitPrice } customer { email name }"
PAGE = "edges { node { id number status total " + LINE_FIELDS + " } } pageInfo { endCursor }"


@dataclass
class Measure:
    name: str
    query: str
    variables: Callable[[random.Random], dict[str, Any]] = lambda _: {}
    as_: str = "admin"
    sqlite_may_scan: bool = False
    latencies_ms: list[float] = field(default_factory=list)
    # The SELECTs one request sends, with their arguments.
    statements: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def measures(orders: int, customers: int) -> list[Measure]:
    day = START + SPAN / 2
    customer_id = lambda r: str(r.randrange(1, customers + 1))  # noqa: E731
    fragment = lambda r: f"customer{r.randrange(1, customers // 10 + 1)}@"  # noqa: E731
    return [
        Measure(
            "orders(first: 50), no filter",
            f"{{ orders(first: 50) {{ totalCount {PAGE} }} }}",
            sqlite_may_scan=True,
        ),
        Measure(
            "orders, status APPROVED",
            f'{{ orders(first: 50, filter: {{status: ["APPROVED"]}}) {{ totalCount {PAGE} }} }}',
        ),
        Measure(
            "orders, status ON_HOLD or REJECTED",
            '{ orders(first: 50, filter: {status: ["ON_HOLD", "REJECTED"]}) '
            f"{{ totalCount {PAGE} }} }}",
        ),
        Measure(
            "orders, channel shopify",
            f'{{ orders(first: 50, filter: {{channel: "shopify"}}) {{ totalCount {PAGE} }} }}',
        ),
        Measure(
            "orders, one customer",
            "query($c: ID!) { orders(first: 50, filter: {customerId: $c}) "
            f"{{ totalCount {PAGE} }} }}",
            lambda r: {"c": customer_id(r)},
        ),
        Measure(
            "orders, created in one day",
            "query($a: DateTime!, $b: DateTime!) "
            "{ orders(first: 50, filter: {createdAfter: $a, createdBefore: $b}) "
            f"{{ totalCount {PAGE} }} }}",
            lambda _: {
                "a": day.isoformat(),
                "b": (day + datetime.timedelta(days=1)).isoformat(),
            },
        ),
        Measure(
            "orders, search e-mail fragment",
            f"query($s: String!) {{ orders(first: 50, filter: {{search: $s}}) "
            f"{{ totalCount {PAGE} }} }}",
            lambda r: {"s": fragment(r)},
            sqlite_may_scan=True,
        ),
        Measure(
            "orders, search external id",
            f"query($s: String!) {{ orders(first: 50, filter: {{search: $s}}) "
            f"{{ totalCount {PAGE} }} }}",
            lambda r: {"s": f"-{r.randrange(1, orders + 1):07d}"},
            sqlite_may_scan=True,
        ),
        Measure(
            "orders, as a customer",
            f"{{ orders(first: 50) {{ totalCount {PAGE} }} }}",
            as_="customer",
        ),
        Measure("statusGraph counts", "{ statusGraph { states { name count } } }"),
        Measure(
            "statusGraph counts, as a customer",
            "{ statusGraph { states { name count } } }",
            as_="customer",
        ),
        Measure(
            "orderByNumber",
            f"query($n: String!) {{ orderByNumber(number: $n) {{ id status {LINE_FIELDS} }} }}",
            lambda r: {"n": order_number(r.randrange(1, orders + 1))},
        ),
        Measure(
            "reviewQueue(first: 50)",
            "{ reviewQueue(first: 50) { totalCount edges { node { id number total } } } }",
        ),
        Measure(
            "products(first: 50)",
            "{ products(first: 50) { totalCount edges { node { sku stockAvailable } } } }",
        ),
        Measure(
            "customers(first: 50)",
            "{ customers(first: 50) { totalCount edges { node { email } } } }",
        ),
        Measure(
            "customers(search)",
            "query($s: String!) { customers(first: 50, search: $s) "
            "{ totalCount edges { node { email } } } }",
            lambda r: {"s": fragment(r)},
            sqlite_may_scan=True,
        ),
        Measure(
            "importErrors(first: 50)",
            "{ importErrors(first: 50) { totalCount edges { node { reference } } } }",
        ),
    ]


# -- Loading ----------------------------------------------------------------------------


def _weighted(rng: random.Random, choices: Sequence[tuple[str, int]], k: int) -> list[str]:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices], k=k)


@dataclass
class Rows:
    customers: list[tuple[Any, ...]]
    products: list[tuple[Any, ...]]
    orders: list[tuple[Any, ...]]
    lines: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    import_errors: list[tuple[Any, ...]]


CUSTOMER_COLUMNS = (
    "id",
    "email",
    "name",
    "credit_limit_minor",
    "currency",
    "blocked",
    "created_at",
)
PRODUCT_COLUMNS = ("id", "sku", "name", "list_price_minor", "currency", "stock_on_hand",
                   "stock_reserved", "active", "updated_at")  # fmt: skip
ORDER_COLUMNS = ("id", "channel", "external_id", "customer", "type", "priority", "currency",
                 "subtotal_minor", "total_minor", "status", "version", "shipping_address",
                 "note", "created_at", "updated_at")  # fmt: skip
LINE_COLUMNS = ("order", "line_no", "sku", "name", "quantity", "unit_price_minor", "total_minor")
EVENT_COLUMNS = ("order", "type", "from_status", "to_status", "actor", "data", "at")
IMPORT_ERROR_COLUMNS = ("channel", "reference", "status", "reasons", "payload", "attempts",
                        "received_at", "updated_at")  # fmt: skip


def generate(orders: int, seed: int = 7) -> Rows:
    """Deterministic rows: orders spread over 700 days in id order, customers drawn at random."""
    rng = random.Random(seed)
    customers = max(1, orders // 10)
    customer_rows = [
        (i, f"customer{i}@example.com",
         f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {LAST_NAMES[i // 9 % len(LAST_NAMES)]} {i}",
         10**7, "EUR", False, START)
        for i in range(1, customers + 1)
    ]  # fmt: skip
    prices = [rng.randrange(100, 20_000) for _ in range(PRODUCTS)]
    product_rows = [
        (i + 1, f"SKU-{i:05d}", f"Product {i}", prices[i], "EUR", 10**6, 0, True, START)
        for i in range(PRODUCTS)
    ]
    statuses = _weighted(rng, STATUSES, orders)
    priorities = _weighted(rng, PRIORITIES, orders)
    order_rows, lines, events = [], [], []
    step = SPAN / orders
    for i in range(1, orders + 1):
        at = START + step * i
        total = 0
        for line_no in range(1, rng.randint(1, 3) + 1):
            product = rng.randrange(PRODUCTS)
            quantity = rng.randint(1, 4)
            total += quantity * prices[product]
            lines.append(
                (i, line_no, f"SKU-{product:05d}", f"Product {product}", quantity,
                 prices[product], quantity * prices[product])
            )  # fmt: skip
        channel = CHANNELS[i % len(CHANNELS)]
        status = statuses[i - 1]
        order_rows.append(
            (i, channel, f"{channel.upper()}-{i:07d}", rng.randint(1, customers), "standard",
             priorities[i - 1], "EUR", total, total, status, 2, ADDRESS, "", at, at)
        )  # fmt: skip
        events.append((i, "submitted", None, "RECEIVED", "customer", "{}", at))
        events.append((i, "transition", "RECEIVED", status, "system:ordergraph", "{}", at))
    import_errors = [
        (CHANNELS[i % len(CHANNELS)], f"DELIVERY-{i}", "open" if i % 3 else "imported",
         json.dumps([{"field": "lines[0].sku", "code": "UNKNOWN_SKU", "message": "Unknown."}]),
         "{}", 1, START + step * i * 100, START + step * i * 100)
        for i in range(1, max(1, orders // 100) + 1)
    ]  # fmt: skip
    return Rows(customer_rows, product_rows, order_rows, lines, events, import_errors)


async def load_postgres(url: str, rows: Rows) -> None:
    connection = await asyncpg.connect(url)
    try:
        # As a bulk import would: the counting triggers off while copying, then one count.
        # (Kept on, a million updates of the counts in one transaction would also leave
        # order_status_counts a million dead row versions long.)
        await connection.execute('ALTER TABLE "orders" DISABLE TRIGGER USER')
        for table, columns, records in (
            ("customers", CUSTOMER_COLUMNS, rows.customers),
            ("products", PRODUCT_COLUMNS, rows.products),
            ("orders", ORDER_COLUMNS, rows.orders),
            ("order_lines", LINE_COLUMNS, rows.lines),
            ("order_events", EVENT_COLUMNS, rows.events),
            ("import_errors", IMPORT_ERROR_COLUMNS, rows.import_errors),
        ):
            await connection.copy_records_to_table(table, records=records, columns=columns)
            if "id" in columns:
                await connection.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f'(SELECT MAX(id) FROM "{table}"))'
                )
        await connection.execute('ALTER TABLE "orders" ENABLE TRIGGER USER')
        await connection.execute('DELETE FROM "order_status_counts"')
        await connection.execute(COUNT_ORDERS)
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


COUNT_ORDERS = m0004_counts_and_indexes.SEED_COUNTS


def load_sqlite(path: str, rows: Rows) -> None:
    connection = sqlite3.connect(path)
    try:
        with connection:
            for table, columns, records in (
                ("customers", CUSTOMER_COLUMNS, rows.customers),
                ("products", PRODUCT_COLUMNS, rows.products),
                ("orders", ORDER_COLUMNS, rows.orders),
                ("order_lines", LINE_COLUMNS, rows.lines),
                ("order_events", EVENT_COLUMNS, rows.events),
                ("import_errors", IMPORT_ERROR_COLUMNS, rows.import_errors),
            ):
                names = ", ".join(f'"{c}"' for c in columns)
                marks = ", ".join("?" for _ in columns)
                connection.executemany(
                    f'INSERT INTO "{table}" ({names}) VALUES ({marks})',
                    ([_sqlite_value(v) for v in r] for r in records),
                )
        connection.execute("ANALYZE")
    finally:
        connection.close()


def _sqlite_value(value: Any) -> Any:
    # Stored as piccolo's SQLite engine stores timestamps: UTC, str() of the datetime.
    return str(value.astimezone(datetime.UTC)) if isinstance(value, datetime.datetime) else value


# -- Plans ------------------------------------------------------------------------------


async def big_tables() -> set[str]:
    tables = ("orders", "order_lines", "order_events", "customers", "products", "import_errors")
    sizes = {t: (await db.raw(f'SELECT COUNT(*) AS n FROM "{t}"'))[0]["n"] for t in tables}
    return {t for t, n in sizes.items() if n >= BIG_TABLE_ROWS}


async def plans(
    statements: list[tuple[str, tuple[Any, ...]]], big: set[str], allow_sqlite_scan: bool
) -> tuple[str, list[str]]:
    """The plan of every SELECT in ``statements``, and the big tables read by a scan."""
    texts, scans = [], []
    for sql, args in statements:
        if db.current().is_sqlite:
            rows = await db.raw("EXPLAIN QUERY PLAN " + _braces(sql), *args)
            plan = "\n".join(row["detail"] for row in rows)
            scanned = re.findall(r"^SCAN (\w+)(?! USING)", plan, re.MULTILINE)
            in_id_order = re.search(r'ORDER BY "\w+"\."id" (ASC|DESC) LIMIT \d+$', sql)
            if allow_sqlite_scan or (in_id_order and "TEMP B-TREE" not in plan):
                scanned = []
        else:
            rows = await db.raw("EXPLAIN " + _braces(sql), *args)
            plan = "\n".join(row["QUERY PLAN"] for row in rows)
            [tree] = await db.raw("EXPLAIN (FORMAT JSON) " + _braces(sql), *args)
            document = tree["QUERY PLAN"]
            root = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
            scanned = list(unbounded_seq_scans(root))
        texts.append(f"{sql}\n{plan}")
        scans += [table for table in scanned if table in big]
    return "\n\n".join(texts), scans


def unbounded_seq_scans(node: dict[str, Any], parent: str = "") -> Iterator[str]:
    """Tables a PostgreSQL plan reads sequentially, except the first rows of a table
    under a LIMIT with no filter (a capped count reads at most COUNT_CAP + 1 of them)."""
    if node["Node Type"] == "Seq Scan" and not (parent == "Limit" and "Filter" not in node):
        yield node["Relation Name"]
    for child in node.get("Plans", []):
        yield from unbounded_seq_scans(child, node["Node Type"])


def _braces(sql: str) -> str:
    """A statement as sent (``?`` or ``$1`` for its arguments) in ``db.raw``'s ``{}`` form."""
    escaped = sql.replace("{", "{{").replace("}", "}}")
    if db.current().is_sqlite:
        return escaped.replace("?", "{}")
    return re.sub(r"\$\d+", "{}", escaped)


# -- Measuring --------------------------------------------------------------------------


async def run(backend: str, orders: int, requests: int) -> tuple[list[Measure], float]:
    async with fresh_database(backend) as url:
        if backend == "sqlite":
            # Migrated by the app's start; load after, then restart it on the loaded file.
            await db.connect(url)
            await migrations.migrate()
            await db.disconnect()
        print(f"{backend}: generating {orders} orders...", file=sys.stderr)
        rows = generate(orders)
        started = time.perf_counter()
        if backend == "sqlite":
            await asyncio.to_thread(load_sqlite, url.removeprefix("sqlite:///"), rows)
        else:
            await load_postgres(url, rows)
        load_seconds = time.perf_counter() - started
        print(f"{backend}: loaded in {load_seconds:.0f} s", file=sys.stderr)
        customers = len(rows.customers)
        del rows
        app = create_app(Settings(database_url=url), run_jobs=False)
        async with LifespanManager(app) as manager:
            tokens = {
                "admin": await auth.create_token("admin", name="bench"),
                "customer": await auth.create_token("customer", name="c", customer_id=1),
            }
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://bench", timeout=120
            ) as client:
                todo = measures(orders, customers)
                await check_plans(backend, client, tokens, todo)
                for measure in todo:
                    await measure_one(client, tokens, measure, requests)
    return todo, load_seconds


async def send(
    client: httpx.AsyncClient, tokens: dict[str, str], measure: Measure, rng: random.Random
) -> float:
    started = time.perf_counter()
    response = await client.post(
        "/graphql",
        json={"query": measure.query, "variables": measure.variables(rng)},
        headers={"Authorization": f"Bearer {tokens[measure.as_]}"},
    )
    elapsed = (time.perf_counter() - started) * 1000
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"{measure.name} failed: {body}")
    return elapsed


async def check_plans(
    backend: str, client: httpx.AsyncClient, tokens: dict[str, str], todo: list[Measure]
) -> None:
    failures = []
    big = await big_tables()
    for measure in todo:
        with db.count_statements() as log:
            await send(client, tokens, measure, random.Random(1))
        measure.statements = [
            (sql, args)
            for sql, args in zip(log.statements, log.arguments, strict=True)
            if sql.lstrip().upper().startswith("SELECT")
        ]
        text, scans = await plans(measure.statements, big, measure.sqlite_may_scan)
        print(f"\n## {backend}: {measure.name}\n{text}")
        if scans:
            failures.append(f"{measure.name}: sequential scan of {', '.join(sorted(set(scans)))}")
    if failures:
        raise SystemExit(f"{backend}: list queries that scan a big table:\n" + "\n".join(failures))


async def measure_one(
    client: httpx.AsyncClient, tokens: dict[str, str], measure: Measure, requests: int
) -> None:
    rng = random.Random(11)
    for _ in range(5):
        await send(client, tokens, measure, rng)
    measure.latencies_ms = [await send(client, tokens, measure, rng) for _ in range(requests)]
    measure.sql_ms = [await replay(measure.statements) for _ in range(requests)]


async def replay(statements: list[tuple[str, tuple[Any, ...]]]) -> float:
    """Milliseconds the database takes for these statements, sent one after the other."""
    started = time.perf_counter()
    for sql, args in statements:
        await db.raw(_braces(sql), *args)
    return (time.perf_counter() - started) * 1000


def quartet(m: Measure) -> list[tuple[list[float], int]]:
    return [(m.latencies_ms, 50), (m.latencies_ms, 99), (m.sql_ms, 50), (m.sql_ms, 99)]


def table(results: list[tuple[str, int, float, list[Measure]]]) -> str:
    header = ("backend", "orders", "query", "p50 ms", "p99 ms", "SQL p50 ms", "SQL p99 ms")
    rows = [
        (backend, f"{orders:,}", m.name, *(f"{percentile(v, p):.1f}" for v, p in quartet(m)))
        for backend, orders, _, done in results
        for m in done
    ]
    loads = "\n".join(
        f"{backend}: loaded {orders:,} orders in {seconds:.0f} s"
        for backend, orders, seconds, _ in results
    )
    busy = "load average over the last 1, 5, 15 minutes: " + ", ".join(
        f"{n:.1f}" for n in os.getloadavg()
    )
    return markdown_table(header, rows) + "\n\n" + loads + f"\n{busy} ({os.cpu_count()} CPUs)"


async def main(argv: list[str]) -> int:
    parser = argument_parser(__doc__, backends=["postgresql"])
    parser.add_argument("--orders", type=int, default=1_000_000, help="default 1,000,000")
    parser.add_argument("--requests", type=int, default=200, help="per query (default 200)")
    args = parser.parse_args(argv)
    if args.orders < 100 or args.requests < 2:
        parser.error("--orders must be at least 100 and --requests at least 2")
    results = []
    for backend in args.backends:
        done, load_seconds = await run(backend, args.orders, args.requests)
        results.append((backend, args.orders, load_seconds, done))
    print()
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
