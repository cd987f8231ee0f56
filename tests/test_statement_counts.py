"""Round trips to the database do not grow with the size of an order or of a page."""

from __future__ import annotations

from conftest import ADDRESS, Api

from ordergraph.core import db
from ordergraph.core.auth import Principal, Role
from ordergraph.core.orders import LineDraft, OrderDraft, submit_order

ADMIN = Principal(Role.ADMIN, "counter")

# Submitting an existing customer's order, whatever its number of lines:
#   1. SELECT the customer by e-mail
#   2. SELECT every product of the order's SKUs at once
#   3. INSERT the order (RETURNING its row)
#   4. INSERT all its lines in one statement
#   5. INSERT the "submitted" event
#   6. INSERT the event's outbox jobs in one statement
# (BEGIN and COMMIT are not counted: the engine sends them outside its query path.)
SUBMIT_STATEMENTS = 6

# One page of orders with their lines and customers through GraphQL:
#   1. SELECT the token (authentication)
#   2. SELECT the page of orders
#   3. SELECT COUNT(*) for totalCount
#   4. SELECT the lines of every order on the page (one batch)
#   5. SELECT the customers of every order on the page (one batch)
PAGE_STATEMENTS = 5

PAGE = "{ orders(first: 50) { edges { node { number lines { sku } customer { email } } } } }"


def draft(external_id: str, lines: int) -> OrderDraft:
    skus = ["MUG", "TEE", "LAMP"]
    return OrderDraft(
        channel="web",
        external_id=external_id,
        lines=[LineDraft(skus[i % len(skus)], 1) for i in range(lines)],
        customer_email="ada@example.com",
        shipping_address=dict(ADDRESS),
    )


async def statements_to_submit(api: Api, order: OrderDraft) -> list[str]:
    with db.count_statements() as log:
        result = await submit_order(api.rt, order, ADMIN)
    assert result.created
    assert len(result.order.lines) == len(order.lines)
    return log.statements


async def test_submitting_costs_the_same_statements_for_1_or_50_lines(api: Api) -> None:
    one = await statements_to_submit(api, draft("ONE", lines=1))
    fifty = await statements_to_submit(api, draft("FIFTY", lines=50))

    assert len(one) == len(fifty) == SUBMIT_STATEMENTS, fifty
    assert [s.split()[0] for s in fifty] == ["SELECT", "SELECT"] + ["INSERT"] * 4


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
