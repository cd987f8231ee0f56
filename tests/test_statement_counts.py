"""Round trips to the database do not grow with the size of an order, of a page, or
with the number of review rules.

``db.count_statements`` counts what reaches the server: every statement, BEGIN and
COMMIT, and whatever a connection pool sends when a connection goes back to it.
"""

from __future__ import annotations

import asyncio
import datetime
from decimal import Decimal
from typing import Any

from conftest import ADDRESS, Api, make_settings, serve_api, submit
from piccolo.engine.postgres import PostgresEngine

from ordergraph.core import db, periodic
from ordergraph.core.auth import Principal, Role
from ordergraph.core.jobs import JobRunner
from ordergraph.core.orders import LineDraft, OrderDraft, submit_order
from ordergraph.core.tables import OutboxJob, PeriodicJob
from ordergraph.plugin_api import (
    Finding,
    OrderView,
    approved_order_count,
    available_stock,
    customer_exposure,
    get_customer,
    get_products,
    hookimpl,
)
from ordergraph.stages.entry.masterdata import ProductData, upsert_products
from ordergraph.worker import run_worker
from plugins.channels import web
from plugins.review_rules import credit_limit, manual_review, price_policy, stock

ADMIN = Principal(Role.ADMIN, "counter")

# Submitting an existing customer's order, whatever its number of lines:
#   1. SELECT the customer by e-mail
#   2. SELECT every product of the order's SKUs at once
#   then on SQLite
#   3. BEGIN
#   4. INSERT the order (RETURNING its row)
#   5. INSERT all its lines in one statement, and in the same trip to the writer's
#      thread
#   6. INSERT the "submitted" event (no plugin handles events: no outbox job)
#   7. INSERT the order's analytics facts
#   8. INSERT (upsert) the analytics rollups the event counts
#   9. COMMIT
#   and on PostgreSQL
#   3. SELECT the order's id from its sequence
#   4. WITH ... INSERT the order, its lines, its event, its jobs, its analytics facts
#      and rollups: one statement
SUBMIT_STATEMENTS = {
    "sqlite": ["SELECT", "SELECT", "BEGIN", *["INSERT"] * 5, "COMMIT"],
    "postgresql": ["SELECT", "SELECT", "SELECT", "WITH"],
}

# From submitOrder requests to the review decisions, the four rules on, per order:
#   the request (12 on SQLite, 6 on PostgreSQL)
#    - SELECT the token (authentication)
#    - the submission above, with the review job among its inserts (10 on SQLite, 4)
#    - SELECT the lines for the response
#   the job runner (1, and 4 per pass: purge, claim, and twice the next due time to see
#   the outbox drained); a claim also records done the jobs finished since the last one
#    - UPDATE to claim, which records the review job of the order before done (at
#      most: several finish between two claims when jobs run concurrently)
#   the review (11 on SQLite, 10 on PostgreSQL), of one order or of every order whose
#   job started with it
#    - SELECT the orders with their lines, their last review round, their customers and
#      the products of their lines (what rules look up first)
#    - SELECT the customers' exposures, once for every rule
#    - BEGIN, UPDATE the orders (start_review and the decision), UPDATE the stock of
#      every SKU of the orders, INSERT the findings, SELECT the orders' analytics
#      facts, INSERT the events with the facts and rollups they change (one WITH on
#      PostgreSQL; on SQLite three statements in one trip to the writer's thread),
#      COMMIT
REQUEST_STATEMENTS = {"sqlite": 12, "postgresql": 6}
REVIEW_STATEMENTS = {"sqlite": 11, "postgresql": 9}
RUNNER_STATEMENTS_PER_PASS = 4
DECIDE_LIMIT = {"sqlite": 29, "postgresql": 25}

# One page of orders with their lines and customers through GraphQL:
#   1. SELECT the token (authentication)
#   2. SELECT the page of orders
#   3. SELECT COUNT(*) for totalCount
#   4. SELECT the lines of every order on the page (one batch)
#   5. SELECT the customers of every order on the page (one batch)
PAGE_STATEMENTS = 5

PAGE = "{ orders(first: 50) { edges { node { number lines { sku } customer { email } } } } }"
SKUS = [f"SKU-{i:02d}" for i in range(1, 21)]
FOUR_RULES = {"credit_limit": credit_limit, "stock": stock, "price_policy": price_policy,
              "manual_review": manual_review}  # fmt: skip


def draft(external_id: str, lines: int) -> OrderDraft:
    skus = ["MUG", "TEE", "LAMP"]
    return OrderDraft(
        channel="web",
        external_id=external_id,
        lines=[LineDraft(skus[i % len(skus)], 1) for i in range(lines)],
        customer_email="ada@example.com",
        shipping_address=dict(ADDRESS),
    )


def first_words(statements: list[str]) -> list[str]:
    return [statement.split()[0].rstrip(";").upper() for statement in statements]


async def statements_to_submit(api: Api, order: OrderDraft) -> list[str]:
    with db.count_statements() as log:
        result = await submit_order(api.rt, order, ADMIN)
    assert result.created
    assert len(result.order.lines) == len(order.lines)
    return log.statements


async def test_submitting_costs_the_same_statements_for_1_or_50_lines(api: Api) -> None:
    one = await statements_to_submit(api, draft("ONE", lines=1))
    fifty = await statements_to_submit(api, draft("FIFTY", lines=50))

    expected = SUBMIT_STATEMENTS["sqlite" if db.current().is_sqlite else "postgresql"]
    assert first_words(one) == first_words(fifty) == expected, fifty


class AskEverything:
    """A fifth rule that asks every lookup the four built-in rules ask, and one more."""

    @hookimpl
    async def review_order(self, order: OrderView) -> Finding:
        skus = [line.sku for line in order.lines]
        await get_customer(order.customer_id)
        await customer_exposure(order.customer_id, order.currency, excluding_order=order.id)
        await get_products(skus)
        await available_stock(skus)
        await approved_order_count(order.customer_id, excluding_order=order.id)
        return Finding(outcome="pass", code="ASKED", message="Asked every question.")


async def statements_to_decide(
    database_url: str, name: str, rules: dict[str, Any], *, lines: int = 3, orders: int = 1
) -> list[str]:
    """Every statement from ``orders`` submitOrder requests (external ids ``name-N``) to
    the review decisions: the requests, then one pass of the embedded job runner
    (started, drained, stopped)."""
    settings = make_settings(database_url, plugins={name: {"enabled": True} for name in rules})
    async with serve_api(settings, installed_plugins={"web": web, **rules}, run_jobs=False) as api:
        await upsert_products(
            [ProductData(sku, f"Product {sku}", Decimal("1.00"), "EUR", 100) for sku in SKUS]
        )
        with db.count_statements() as log:
            submitted = [
                await submit(
                    api, f"{name}-{i}", lines=[{"sku": sku, "quantity": 1} for sku in SKUS[:lines]]
                )
                for i in range(orders)
            ]
            api.rt.runner = JobRunner(api.rt)
            await api.rt.runner.start()
            await api.rt.runner.drain()
            await api.rt.runner.stop()
        for order in submitted:
            found = await api.data(
                "query($id: ID!) { order(id: $id) { status reviewFindings { rule } } }",
                {"id": order["id"]},
            )
            assert found["order"]["status"] == "APPROVED"
            assert {f["rule"] for f in found["order"]["reviewFindings"]} == set(rules)
    return log.statements


def without_the_runner(statements: list[str]) -> list[str]:
    """The statements of the requests and the reviews: those of the job runner's own
    bookkeeping (purge, claims, finishing, the next due time) depend on timing."""
    runner = ('UPDATE "outbox"', 'DELETE FROM "outbox"', 'SELECT min("run_after")')
    return [statement for statement in statements if not statement.startswith(runner)]


async def test_orders_are_decided_in_at_most_25_statements_each_29_on_sqlite(
    database_url: str,
) -> None:
    one = await statements_to_decide(database_url, "ONE", FOUR_RULES)
    ten = await statements_to_decide(database_url, "TEN", FOUR_RULES, orders=10)

    postgres = database_url.startswith("postgresql")
    dialect = "postgresql" if postgres else "sqlite"
    request, review = REQUEST_STATEMENTS[dialect], REVIEW_STATEMENTS[dialect]
    decide = request + 1 + review
    assert len(one) <= decide + RUNNER_STATEMENTS_PER_PASS + 1 <= DECIDE_LIMIT[dialect], one
    assert len(without_the_runner(one)) == decide - 1, one
    # One claim starts the ten review jobs at once, and they are reviewed together: the
    # statements of one review (one stock update for all ten orders), and on PostgreSQL
    # the lock that makes batches take turns.
    together = review + (1 if postgres else 0)
    assert len(without_the_runner(ten)) == 10 * request + together, ten
    assert len(ten) <= 10 * DECIDE_LIMIT[dialect], ten
    words = first_words(ten)
    transactions = 1 if postgres else 10 + 1
    assert words.count("BEGIN") == words.count("COMMIT") == transactions, ten


async def test_deciding_an_order_costs_the_same_statements_for_1_or_20_lines(
    database_url: str,
) -> None:
    one = await statements_to_decide(database_url, "ONE", FOUR_RULES, lines=1)
    twenty = await statements_to_decide(database_url, "TWENTY", FOUR_RULES, lines=20)

    assert first_words(one) == first_words(twenty), twenty


async def test_a_rule_asking_what_the_others_asked_costs_no_statement_for_it(
    database_url: str,
) -> None:
    four = await statements_to_decide(database_url, "FOUR", FOUR_RULES)
    five = await statements_to_decide(
        database_url, "FIVE", {**FOUR_RULES, "ask_everything": AskEverything()}
    )

    # Only the approved-order count is a new question; every other answer is shared.
    assert len(five) == len(four) + 1, five


async def statements_for_a_page(api: Api) -> tuple[int, int]:
    """(statements, orders) of one page of orders with their lines and customers."""
    with db.count_statements() as log:
        data = await api.data(PAGE)
    edges = data["orders"]["edges"]
    assert all(edge["node"]["lines"] and edge["node"]["customer"] for edge in edges)
    return log.count, len(edges)


async def test_listing_orders_with_lines_and_customers_is_not_n_plus_one(api: Api) -> None:
    for i in range(5):
        await submit_order(api.rt, draft(f"FEW-{i}", lines=2), ADMIN)
    few = await statements_for_a_page(api)

    for i in range(45):
        await submit_order(api.rt, draft(f"MANY-{i}", lines=3), ADMIN)
    many = await statements_for_a_page(api)

    assert few == (PAGE_STATEMENTS, 5)
    assert many == (PAGE_STATEMENTS, 50)


async def statements_of_an_arq_worker(
    database_url: str, redis_url: str, rules: dict[str, Any], *, orders: int
) -> list[str]:
    """Every statement an arq worker sends from its start to the review decisions of
    ``orders`` submitOrder requests made before it started (so that their review jobs
    are due together), with every periodic job run a moment ago."""
    settings = make_settings(
        database_url, redis_url=redis_url, plugins={name: {"enabled": True} for name in rules}
    )
    installed = {"web": web, **rules}
    async with serve_api(settings, installed_plugins=installed, run_jobs=False) as api:
        await upsert_products(
            [ProductData(sku, f"Product {sku}", Decimal("1.00"), "EUR", 100) for sku in SKUS]
        )
        submitted = [
            await submit(api, f"ARQ-{i}", lines=[{"sku": sku, "quantity": 1} for sku in SKUS[:3]])
            for i in range(orders)
        ]
        later = db.now() + datetime.timedelta(days=1)
        await PeriodicJob.delete(force=True)
        await PeriodicJob.insert(
            *(PeriodicJob(name=name, next_run_at=later) for name in periodic.collect(api.rt))
        )
        api_engine = db.current().engine
        stop, started = asyncio.Event(), asyncio.Event()
        # The worker's tasks, started here, count into the log.
        with db.count_statements() as log:
            running = asyncio.create_task(
                run_worker(settings, installed_plugins=installed, stop=stop, started=started)
            )
        try:
            await asyncio.wait_for(started.wait(), 10)
            async with asyncio.timeout(30):
                while await OutboxJob.exists().where(OutboxJob.status != "done"):
                    await asyncio.sleep(0.05)
            for order in submitted:
                found = await api.data(
                    "query($id: ID!) { order(id: $id) { status reviewFindings { rule } } }",
                    {"id": order["id"]},
                )
                assert found["order"]["status"] == "APPROVED"
        finally:
            stop.set()
            await running
            if isinstance(api_engine, PostgresEngine):
                await api_engine.close_connection_pool()
    return log.statements


def without_bookkeeping(statements: list[str]) -> list[str]:
    """Without the relay, the outbox's bookkeeping (recording jobs done, the purge) and
    the claims of periodic work (none is due: each an empty transaction), which depend
    on timing."""
    bookkeeping = ('UPDATE "outbox"', 'DELETE FROM "outbox"', 'SELECT "id", "name", "payload"')
    claims = sum(statement.startswith('INSERT INTO "periodic_jobs"') for statement in statements)
    kept = [
        statement
        for statement in statements
        if not statement.startswith(bookkeeping) and '"periodic_jobs"' not in statement
    ]
    for word in ("BEGIN", "COMMIT"):
        for _ in range(claims):
            kept.remove(next(s for s in kept if s.split()[0].rstrip(";").upper() == word))
    return kept


async def test_an_arq_worker_reviews_orders_due_together_in_the_statements_of_one_review(
    database_url: str, redis_url: str
) -> None:
    idle = await statements_of_an_arq_worker(database_url, redis_url, FOUR_RULES, orders=0)
    ten = await statements_of_an_arq_worker(database_url, redis_url, FOUR_RULES, orders=10)

    # What ten orders add to a worker's statements: one review of them all, and on
    # PostgreSQL the lock that makes batches take turns, as with the embedded runner.
    postgres = database_url.startswith("postgresql")
    together = REVIEW_STATEMENTS["postgresql" if postgres else "sqlite"] + (1 if postgres else 0)
    added = len(without_bookkeeping(ten)) - len(without_bookkeeping(idle))
    assert added == together, without_bookkeeping(ten)
