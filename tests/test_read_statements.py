"""Reads cost a fixed number of statements, and counting never reads the orders table."""

from __future__ import annotations

from conftest import Api, make_settings, serve_api, submit

from ordergraph.core import db

# A page of orders with lines and customers, unfiltered or filtered by status:
#   1. SELECT the token (authentication)
#   2. SELECT the page of orders
#   3. SELECT SUM(n) of the per-status counts, for totalCount
#   4. SELECT the lines of every order on the page (one batch)
#   5. SELECT the customers of every order on the page (one batch)
# With any other filter, 3. is a COUNT of the matching orders, stopped at COUNT_CAP + 1.
PAGE_STATEMENTS = 5
# statusGraph: the token, then the per-status counts.
STATUS_GRAPH_STATEMENTS = 2
# reviewQueue with findings: the token, the page, the ON_HOLD count, the findings (batch).
QUEUE_STATEMENTS = 4
# orderByNumber with lines and customer: the token, the order, its lines, its customer.
BY_NUMBER_STATEMENTS = 4

NODE = "node { number lines { sku } customer { email } }"
ORDERS = (
    "query($f: OrderFilter) { orders(first: 50, filter: $f) { totalCount edges { " + NODE + " } } }"
)
STATUS_GRAPH = "{ statusGraph { states { name count } } }"
QUEUE = "{ reviewQueue { totalCount edges { node { number reviewFindings { rule } } } } }"
BY_NUMBER = "query($n: String!) { orderByNumber(number: $n) { lines { sku } customer { email } } }"
# Every field of an order that a loader answers, for a page of orders and for one order.
LOADED = (
    "number lines { lineNo sku quantity unitPrice total } customer { email name } "
    "events { type fromStatus toStatus actor } reviewFindings { rule outcome code message data }"
)
PAGE_OF_LOADED = "{ orders(first: 50) { edges { node { " + LOADED + " } } } }"
ONE_LOADED = "query($id: ID!) { order(id: $id) { " + LOADED + " } }"
# The same fields through a named fragment, an inline fragment and an alias, each
# relation left out on request.
THROUGH_FRAGMENTS = """
query($lines: Boolean!, $customer: Boolean!) {
  orders(first: 50) {
    edges {
      node { number ...Lines ... on Order { buyer: customer @include(if: $customer) { email } } }
    }
  }
}
fragment Lines on Order { items: lines @include(if: $lines) { sku } }
"""
MOVE = """
mutation Move($id: ID!, $t: String!) {
  transitionOrder(id: $id, transition: $t) { errors { code } }
}
"""


async def statements(api: Api, query: str, variables: dict | None = None) -> list[str]:
    with db.count_statements() as log:
        await api.data(query, variables)
    return log.statements


def reads_orders_to_count(sent: list[str]) -> bool:
    return any("COUNT(" in s.upper() and '"orders"' in s for s in sent)


async def hold(api: Api, external_id: str) -> None:
    order = await submit(api, external_id)
    for transition in ("start_review", "hold"):
        body = await api.data(MOVE, {"id": order["id"], "t": transition}, as_="staff")
        assert body["transitionOrder"]["errors"] == []


async def test_a_page_of_orders_is_counted_from_the_per_status_counts(api: Api) -> None:
    for i in range(3):
        await submit(api, f"FEW-{i}")
    few = await statements(api, ORDERS)
    for i in range(30):
        await submit(api, f"MORE-{i}")
    unfiltered = await statements(api, ORDERS)
    by_status = await statements(api, ORDERS, {"f": {"status": ["RECEIVED", "APPROVED"]}})

    assert len(few) == len(unfiltered) == len(by_status) == PAGE_STATEMENTS
    assert not reads_orders_to_count(unfiltered + by_status)


async def test_other_filters_count_the_matching_orders_in_one_capped_statement(
    api: Api,
) -> None:
    for i in range(3):
        await submit(api, f"WEB-{i}")
    sent = await statements(api, ORDERS, {"f": {"channel": "web", "search": "ada"}})
    assert len(sent) == PAGE_STATEMENTS
    [count] = [s for s in sent if "COUNT(" in s.upper()]
    assert "LIMIT 10001" in count


async def test_the_status_graph_reads_only_the_counts(api: Api) -> None:
    for i in range(3):
        await submit(api, f"SG-{i}")
    sent = await statements(api, STATUS_GRAPH)
    assert len(sent) == STATUS_GRAPH_STATEMENTS
    assert '"order_status_counts"' in sent[-1] and '"orders"' not in sent[-1]


async def test_the_review_queue_costs_the_same_for_1_or_5_orders(api: Api) -> None:
    await hold(api, "Q-0")
    one = await statements(api, QUEUE)
    for i in range(1, 5):
        await hold(api, f"Q-{i}")
    data = await api.data(QUEUE)
    five = await statements(api, QUEUE)

    assert data["reviewQueue"]["totalCount"] == 5
    assert len(one) == len(five) == QUEUE_STATEMENTS
    assert not reads_orders_to_count(five)


async def test_an_order_by_number_is_one_statement_per_relation(api: Api) -> None:
    order = await submit(api, "NUM-1")
    assert len(await statements(api, BY_NUMBER, {"n": order["number"]})) == BY_NUMBER_STATEMENTS


async def test_an_order_in_a_page_reads_as_it_does_alone(database_url: str) -> None:
    """A page loads each relation of its orders in one batch; what each order shows is
    what the order shows when asked for alone, for staff and for its customer."""
    settings = make_settings(database_url, plugins={"stock": {"enabled": True}})
    async with serve_api(settings) as api:
        ids = [
            (await submit(api, f"ALONE-{i}", lines=[{"sku": "MUG", "quantity": i + 1}]))["id"]
            for i in range(3)
        ]
        await api.rt.runner.drain()
        for as_ in ("admin", "ada"):
            page = await api.data(PAGE_OF_LOADED, as_=as_)
            nodes = [edge["node"] for edge in page["orders"]["edges"]]
            alone = [(await api.data(ONE_LOADED, {"id": i}, as_=as_))["order"] for i in ids]

            assert nodes == alone[::-1]
            assert all(node["reviewFindings"] and node["events"] for node in nodes)
        # One statement per relation, whether the page holds one order or three.
        assert len(await statements(api, PAGE_OF_LOADED)) == PAGE_STATEMENTS + 2


async def test_a_page_loads_what_fragments_select_and_nothing_left_out(api: Api) -> None:
    for i in range(3):
        await submit(api, f"FRAG-{i}")

    both = await statements(api, THROUGH_FRAGMENTS, {"lines": True, "customer": True})
    data = await api.data(THROUGH_FRAGMENTS, {"lines": True, "customer": True})
    without_lines = await statements(api, THROUGH_FRAGMENTS, {"lines": False, "customer": True})
    neither = await statements(api, THROUGH_FRAGMENTS, {"lines": False, "customer": False})

    assert [edge["node"] for edge in data["orders"]["edges"]] == [
        {"number": number, "items": [{"sku": "MUG"}], "buyer": {"email": "ada@example.com"}}
        for number in ("SO-000003", "SO-000002", "SO-000001")
    ]
    assert (len(both), len(without_lines), len(neither)) == (
        PAGE_STATEMENTS,
        PAGE_STATEMENTS - 1,
        PAGE_STATEMENTS - 2,
    )
