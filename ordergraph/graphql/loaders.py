"""Batch loaders, one set per request, so a list of orders costs one query per relation."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from strawberry.dataloader import DataLoader

from ordergraph.core.tables import Customer, OrderEvent, OrderLine, ReviewFinding


async def _lines(order_ids: list[int]) -> list[list[dict[str, Any]]]:
    by_order: dict[int, list[dict[str, Any]]] = defaultdict(list)
    rows = (
        await OrderLine.select().where(OrderLine.order.is_in(order_ids)).order_by(OrderLine.line_no)
    )
    for row in rows:
        by_order[row["order"]].append(row)
    return [by_order[i] for i in order_ids]


async def _events(order_ids: list[int]) -> list[list[dict[str, Any]]]:
    by_order: dict[int, list[dict[str, Any]]] = defaultdict(list)
    rows = (
        await OrderEvent.select().where(OrderEvent.order.is_in(order_ids)).order_by(OrderEvent.id)
    )
    for row in rows:
        by_order[row["order"]].append(row)
    return [by_order[i] for i in order_ids]


async def _findings(order_ids: list[int]) -> list[list[dict[str, Any]]]:
    by_order: dict[int, list[dict[str, Any]]] = defaultdict(list)
    rows = (
        await ReviewFinding.select()
        .where(ReviewFinding.order.is_in(order_ids))
        .order_by(ReviewFinding.id)
    )
    for row in rows:
        by_order[row["order"]].append(row)
    return [by_order[i] for i in order_ids]


async def _customers(ids: list[int]) -> list[dict[str, Any] | None]:
    rows = {r["id"]: r for r in await Customer.select().where(Customer.id.is_in(ids))}
    return [rows.get(i) for i in ids]


class Loaders:
    def __init__(self) -> None:
        self.lines: DataLoader[int, list[dict[str, Any]]] = DataLoader(_lines)
        self.events: DataLoader[int, list[dict[str, Any]]] = DataLoader(_events)
        self.findings: DataLoader[int, list[dict[str, Any]]] = DataLoader(_findings)
        self.customers: DataLoader[int, dict[str, Any] | None] = DataLoader(_customers)
