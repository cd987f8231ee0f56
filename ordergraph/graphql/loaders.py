"""Batch loaders, one set per request, so a list of orders costs one query per relation."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from piccolo.columns import Column
from piccolo.table import Table
from strawberry.dataloader import DataLoader

from ordergraph.core.tables import Customer, OrderEvent, OrderLine, ReviewFinding


def _by_order(
    table: type[Table], order_by: Column
) -> Callable[[list[int]], Awaitable[list[list[dict[str, Any]]]]]:
    """A batch function: the rows of ``table`` for many orders in one query, per order."""

    async def load(order_ids: list[int]) -> list[list[dict[str, Any]]]:
        by_order: dict[int, list[dict[str, Any]]] = defaultdict(list)
        rows = await table.select().where(table.order.is_in(order_ids)).order_by(order_by)
        for row in rows:
            by_order[row["order"]].append(row)
        return [by_order[i] for i in order_ids]

    return load


async def _customers(ids: list[int]) -> list[dict[str, Any] | None]:
    rows = {r["id"]: r for r in await Customer.select().where(Customer.id.is_in(ids))}
    return [rows.get(i) for i in ids]


class Loaders:
    def __init__(self) -> None:
        self.lines: DataLoader[int, list[dict[str, Any]]] = DataLoader(
            _by_order(OrderLine, OrderLine.line_no)
        )
        self.events: DataLoader[int, list[dict[str, Any]]] = DataLoader(
            _by_order(OrderEvent, OrderEvent.id)
        )
        self.findings: DataLoader[int, list[dict[str, Any]]] = DataLoader(
            _by_order(ReviewFinding, ReviewFinding.id)
        )
        self.customers: DataLoader[int, dict[str, Any] | None] = DataLoader(_customers)
