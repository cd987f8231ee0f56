"""Query fields."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from functools import reduce
from typing import Annotated, Any, TypeVar

import strawberry
from piccolo.columns import Column
from piccolo.columns.combination import Or, WhereRaw
from piccolo.custom_types import Combinable
from piccolo.query.functions.aggregate import Count, Sum
from piccolo.query.methods.select import Select
from piccolo.querystring import Selectable
from piccolo.table import Table

from ordergraph.core import db
from ordergraph.core.auth import Role
from ordergraph.core.db import icontains
from ordergraph.core.errors import DomainError, ErrorCode, Problem
from ordergraph.core.limits import (
    CHANNEL,
    DEFAULT_PAGE,
    MAX_FILTER_VALUES,
    SEARCH,
    STATUS,
    utc_instant,
)
from ordergraph.core.orders import parse_order_number
from ordergraph.core.scope import visible_orders
from ordergraph.core.tables import Customer as CustomerRow
from ordergraph.core.tables import Order as OrderRow
from ordergraph.core.tables import OrderStatusCount
from ordergraph.core.tables import Product as ProductRow
from ordergraph.graphql.context import (
    OPERATORS,
    READERS,
    ApiError,
    Info,
    checked,
    page_size,
    require,
    row_id,
)
from ordergraph.graphql.types import (
    COUNT_CAP,
    Connection,
    Customer,
    Me,
    Node,
    Order,
    OrderIdArgument,
    PageAfter,
    PageSize,
    Plugin,
    Product,
    RoleType,
    StatusGraph,
    StatusState,
    TransitionType,
    connection,
    decode_cursor,
    order_key,
    parse_global_id,
    preload_orders,
)

T = TypeVar("T")
# node(id:) answers each id on its own, with its own scope check: a few at a time.
MAX_NODES = 50


@strawberry.input(description="Which orders to list; every given field must match.")
class OrderFilter:
    status: list[str] | None = strawberry.field(
        default=None,
        description="Orders in any of these states of statusGraph (at most 100; OUT_OF_RANGE).",
    )
    channel: str | None = strawberry.field(default=None, description="Orders from this channel.")
    customer_id: strawberry.ID | None = strawberry.field(
        default=None, description="Orders of this customer (Customer.id)."
    )
    created_after: datetime.datetime | None = strawberry.field(
        default=None,
        description="Orders submitted at or after this instant (without an offset: UTC).",
    )
    created_before: datetime.datetime | None = strawberry.field(
        default=None, description="Orders submitted before this instant (without an offset: UTC)."
    )
    search: str | None = strawberry.field(
        default=None, description="Matches the number, the external id, or the customer."
    )


def _instant(value: datetime.datetime, field: str) -> datetime.datetime:
    """``value`` in UTC, or an ``OUT_OF_RANGE`` error (see ``limits.utc_instant``)."""
    problems: list[Problem] = []
    instant = utc_instant(value, field, problems)
    if instant is None:
        [problem] = problems
        raise ApiError(problem.code, problem.message, problem.field)
    return instant


def _search(value: str | None, field: str = "search") -> str:
    """The search text, trimmed; "" for no search."""
    return checked(SEARCH, value.strip(), field) if value else ""


def _order_filters(f: OrderFilter | None) -> list[Combinable]:
    """Where-clauses for the filter; raises ``DomainError`` for a customer id no one can have
    and ``ApiError`` for values no order can have (too long, control characters, dates)."""
    if f is None:
        return []
    clauses = []
    if f.status:
        if len(f.status) > MAX_FILTER_VALUES:
            raise ApiError(
                ErrorCode.OUT_OF_RANGE,
                f"Filter by at most {MAX_FILTER_VALUES} statuses.",
                "filter.status",
            )
        for status in f.status:
            checked(STATUS, status, "filter.status")
        clauses.append(OrderRow.status.is_in(f.status))
    if f.channel:
        clauses.append(OrderRow.channel == checked(CHANNEL, f.channel, "filter.channel"))
    if f.customer_id:
        clauses.append(OrderRow.customer == row_id(f.customer_id, "customer", field="customerId"))
    if f.created_after:
        clauses.append(OrderRow.created_at >= _instant(f.created_after, "filter.createdAfter"))
    if f.created_before:
        clauses.append(OrderRow.created_at < _instant(f.created_before, "filter.createdBefore"))
    text = _search(f.search, "filter.search")
    if text:
        clauses.append(_matching_orders(text))
    return clauses


def _matching_orders(text: str) -> Combinable:
    """Orders whose external id or customer contains ``text``, or with that number.

    On PostgreSQL each alternative is an index scan (trigrams, the customer index, the
    primary key) and their union a bitmap OR.
    """
    matches = [
        icontains(OrderRow.external_id, text),
        _containing(OrderRow.customer, CustomerRow, text, CustomerRow.email, CustomerRow.name),
    ]
    number = parse_order_number(text)
    if number is not None:
        matches.append(OrderRow.id == number)
    return reduce(Or, matches)


def _containing(key: Column, table: type[Table], text: str, *columns: Column) -> Combinable:
    """``key`` is the id of a row of ``table`` with ``text`` in one of ``columns``.

    A subquery, not a join or a filter of the page: PostgreSQL plans it on its own, with
    the trigram indexes, whatever the page's ORDER BY and LIMIT (as a filter under them,
    the generic plan of a prepared statement, used from its sixth run, walks the whole
    primary key testing every row). ``= ANY(ARRAY(...))`` runs it once, into ids that
    the page looks up in an index. A term that matches most rows costs as much as
    reading them; one that matches few costs a few index lookups.
    """
    ids = table.select(table.id).where(reduce(Or, [icontains(c, text) for c in columns]))
    name = key._meta.get_full_name(with_alias=False)
    template = "{} IN ({{}})" if db.current().is_sqlite else "{} = ANY(ARRAY({{}}))"
    return WhereRaw(template.format(name), ids.querystrings[0])


def _status_only(f: OrderFilter | None) -> bool:
    """Whether ``f`` narrows by status and nothing else (the counts can count it)."""
    only_status = OrderFilter(status=f.status) if f is not None else None
    return len(_order_filters(f)) == len(_order_filters(only_status))


async def orders_in_states(statuses: list[str] | None) -> int:
    """How many orders are in ``statuses`` (all when None), from the per-status counts."""
    query = OrderStatusCount.select(Sum(OrderStatusCount.n, alias="n"))
    if statuses is not None:
        query = query.where(OrderStatusCount.status.is_in(statuses))
    rows = await query
    return int(rows[0]["n"] or 0)


async def capped_count(table: type[Table], clauses: list[Combinable]) -> int:
    """The rows of ``table`` matching ``clauses``, counted up to ``COUNT_CAP + 1``."""
    matching = _where(table.select(table.id), clauses).limit(COUNT_CAP + 1)
    rows = await db.raw("SELECT COUNT(*) AS n FROM ({}) AS matching", matching.querystrings[0])
    return rows[0]["n"]


def _where(query: Select, clauses: list[Combinable]) -> Select:
    return query.where(*clauses) if clauses else query


async def _node(info: Info, id: str) -> Node | None:
    """What ``node(id:)`` answers for one id: each type that implements ``Node`` is
    fetched the way its own query fetches it."""
    found = parse_global_id(id)
    if found is not None and found[0] == "Order":
        return await _order_by_id(info, found[1])
    return None


async def _order_by_id(info: Info, order_id: int) -> Order | None:
    principal = require(info, *READERS)
    row = await _where(
        OrderRow.select().where(OrderRow.id == order_id), visible_orders(principal)
    ).first()
    return Order.from_row(row) if row is not None else None


@strawberry.type
class Query:
    @strawberry.field(description="The caller, as its token says.")
    def me(self, info: Info) -> Me:
        principal = require(info)
        return Me(
            role=RoleType(principal.role.value),
            name=principal.name,
            customer_id=strawberry.ID(str(principal.customer_id))
            if principal.customer_id
            else None,
            team=principal.team,
        )

    @strawberry.field(description="An order by id; null when it does not exist or is not yours.")
    async def order(
        self,
        info: Info,
        id: OrderIdArgument,
    ) -> Order | None:
        require(info, *READERS)
        try:
            order_id = order_key(id)
        except DomainError:
            return None
        return await _order_by_id(info, order_id)

    @strawberry.field(
        description="The object with this global id (Relay's refetch), as the query of its "
        "type answers it: an order through the same check as order(id:), null when it does "
        "not exist, is not yours, or the id is not a global id."
    )
    async def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global id (Order.id).")],
    ) -> Node | None:
        require(info, *READERS)
        return await _node(info, id)

    @strawberry.field(
        description=f"The objects with these global ids, in the same order, null for each "
        f"that node(id:) would answer null; at most {MAX_NODES} ids."
    )
    async def nodes(
        self,
        info: Info,
        ids: Annotated[
            list[strawberry.ID],
            strawberry.argument(description="Global ids (Order.id), at most 50 (OUT_OF_RANGE)."),
        ],
    ) -> list[Node | None]:
        require(info, *READERS)
        if len(ids) > MAX_NODES:
            raise ApiError(
                ErrorCode.OUT_OF_RANGE, f"Ask for at most {MAX_NODES} ids at once.", "ids"
            )
        return [await _node(info, id) for id in ids]

    @strawberry.field(description="An order by its number, such as SO-000123.")
    async def order_by_number(
        self,
        info: Info,
        number: Annotated[
            str,
            strawberry.argument(
                description="The number, with or without SO-, in any case, or its digits alone."
            ),
        ],
    ) -> Order | None:
        order_id = parse_order_number(number)
        require(info, *READERS)
        return await _order_by_id(info, order_id) if order_id is not None else None

    @strawberry.field(description="Orders, newest first, at most 100 per page.")
    async def orders(
        self,
        info: Info,
        filter: Annotated[
            OrderFilter | None,
            strawberry.argument(description="Which orders; all you may see when null."),
        ] = None,
        first: PageSize = DEFAULT_PAGE,
        after: PageAfter = None,
    ) -> Connection[Order]:
        principal = require(info, *READERS)
        try:
            clauses = visible_orders(principal) + _order_filters(filter)
        except DomainError:
            # Orders of a customer who cannot exist: there are none.
            return connection("order", [], [], 0, has_next=False)
        if not visible_orders(principal) and _status_only(filter):
            # The principal sees every order: the per-status counts answer.
            total = await orders_in_states(filter.status if filter and filter.status else None)
        else:
            total = None
        page = await keyset_page(
            "order", OrderRow, clauses, first, after, Order.from_row, newest_first=True, total=total
        )
        await preload_orders(info, [edge.node for edge in page.edges], "edges", "node")
        return page

    @strawberry.field(description="The merged status graph with live counts of orders per state.")
    async def status_graph(self, info: Info) -> StatusGraph:
        principal = require(info, *READERS)
        graph = info.context.rt.graph
        visible = visible_orders(principal)
        if visible:
            # A customer's own orders (the (customer, id) index) or a team's, counted.
            counts = (
                await OrderRow.select(OrderRow.status, Count(OrderRow.id, alias="n"))
                .where(*visible)
                .group_by(OrderRow.status)
            )
        else:
            counts = await OrderStatusCount.select(
                OrderStatusCount.status, Sum(OrderStatusCount.n, alias="n")
            ).group_by(OrderStatusCount.status)
        by_status = {row["status"]: int(row["n"]) for row in counts}
        return StatusGraph(
            initial=graph.initial,
            states=[
                StatusState(name=name, description=description, count=by_status.get(name, 0))
                for name, description in graph.states.items()
            ],
            transitions=[TransitionType.from_transition(t) for t in graph.transitions.values()],
        )

    @strawberry.field(description="Every installed plugin, enabled or not (admins only).")
    def plugins(self, info: Info) -> list[Plugin]:
        require(info, Role.ADMIN)
        return [Plugin.from_loaded(p) for p in info.context.rt.plugins.plugins.values()]

    @strawberry.field(description="Products by SKU order; search matches SKU and name.")
    async def products(
        self,
        info: Info,
        search: Annotated[
            str | None,
            strawberry.argument(
                description="Matches SKU and name, any case (at most 200 characters)."
            ),
        ] = None,
        first: PageSize = DEFAULT_PAGE,
        after: PageAfter = None,
    ) -> Connection[Product]:
        require(info, *OPERATORS)
        clauses = []
        text = _search(search)
        if text:
            clauses.append(
                _containing(ProductRow.id, ProductRow, text, ProductRow.sku, ProductRow.name)
            )
        return await keyset_page("product", ProductRow, clauses, first, after, Product.from_row)

    @strawberry.field(description="Customers; search matches e-mail and name.")
    async def customers(
        self,
        info: Info,
        search: Annotated[
            str | None,
            strawberry.argument(
                description="Matches e-mail and name, any case (at most 200 characters)."
            ),
        ] = None,
        first: PageSize = DEFAULT_PAGE,
        after: PageAfter = None,
    ) -> Connection[Customer]:
        require(info, *OPERATORS)
        clauses = []
        text = _search(search)
        if text:
            clauses.append(
                _containing(CustomerRow.id, CustomerRow, text, CustomerRow.email, CustomerRow.name)
            )
        return await keyset_page("customer", CustomerRow, clauses, first, after, Customer.from_row)


async def keyset_page(
    kind: str,
    table: type[Table],
    clauses: list[Combinable],
    first: int | None,
    after: str | None,
    make: Callable[[dict[str, Any]], T],
    *,
    newest_first: bool = False,
    total: int | None = None,
    columns: Sequence[Selectable] = (),
) -> Connection[T]:
    """One page of ``table`` in id order, after the cursor ``after``, with ``total`` or,
    when the caller has none, a count capped at ``COUNT_CAP + 1``. Each row holds
    ``columns`` (every column of ``table`` when none are named)."""
    size = page_size(first)
    after_id = decode_cursor(kind, after)
    clauses_after, has_previous = [], False
    if after_id is not None:
        clauses_after = [table.id < after_id if newest_first else table.id > after_id]
        # The cursor's item and those before it, if any is still in the list.
        up_to = table.id >= after_id if newest_first else table.id <= after_id
        has_previous = await _where(table.select(table.id), [*clauses, up_to]).first() is not None
    rows = (
        await _where(table.select(*columns), clauses + clauses_after)
        .order_by(table.id, ascending=not newest_first)
        .limit(size + 1)
    )
    if total is None:
        total = await capped_count(table, clauses)
    rows, has_next = rows[:size], len(rows) > size
    return connection(
        kind,
        [make(r) for r in rows],
        [r["id"] for r in rows],
        total,
        has_next=has_next,
        has_previous=has_previous,
    )
