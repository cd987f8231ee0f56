"""Batch loaders, one set per request, so a list of orders costs one query per relation."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from piccolo.columns import Column
from piccolo.table import Table
from strawberry.dataloader import DataLoader

from ordergraph.core.tables import (
    Assignment,
    Customer,
    FulfilmentLine,
    OrderEvent,
    OrderLine,
    Product,
    ReviewFinding,
    Shipment,
    ShipmentBooking,
    ShipmentLine,
    Task,
)


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


async def _bookings(order_ids: list[int]) -> list[list[dict[str, Any]]]:
    """Label bookings per order, without the labels' bytes."""
    columns = [c for c in ShipmentBooking.all_columns() if c is not ShipmentBooking.label]
    by_order: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in await ShipmentBooking.select(*columns).where(ShipmentBooking.order.is_in(order_ids)):
        by_order[row["order"]].append(row)
    return [by_order[i] for i in order_ids]


async def _customers(ids: list[int]) -> list[dict[str, Any] | None]:
    rows = {r["id"]: r for r in await Customer.select().where(Customer.id.is_in(ids))}
    return [rows.get(i) for i in ids]


async def _assignments(order_ids: list[int]) -> list[dict[str, Any] | None]:
    rows = await Assignment.select(
        *Assignment.all_columns(),
        Assignment.team.name.as_alias("team_name"),
        Assignment.member.staff.as_alias("member_staff"),
    ).where(Assignment.order.is_in(order_ids))
    by_order = {r["order"]: r for r in rows}
    return [by_order.get(i) for i in order_ids]


async def _bins(skus: list[str]) -> list[str]:
    rows = await Product.select(Product.sku, Product.bin_location).where(Product.sku.is_in(skus))
    where = {r["sku"]: r["bin_location"] for r in rows}
    return [where.get(sku, "") for sku in skus]


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
        self.assignments: DataLoader[int, dict[str, Any] | None] = DataLoader(_assignments)
        self.tasks: DataLoader[int, list[dict[str, Any]]] = DataLoader(
            _by_order(Task, Task.position)
        )
        self.fulfilment_lines: DataLoader[int, list[dict[str, Any]]] = DataLoader(
            _by_order(FulfilmentLine, FulfilmentLine.line_no)
        )
        self.shipments: DataLoader[int, list[dict[str, Any]]] = DataLoader(
            _by_order(Shipment, Shipment.id)
        )
        self.shipment_lines: DataLoader[int, list[dict[str, Any]]] = DataLoader(
            _by_order(ShipmentLine, ShipmentLine.id)
        )
        self.bookings: DataLoader[int, list[dict[str, Any]]] = DataLoader(_bookings)
        self.bins: DataLoader[str, str] = DataLoader(_bins)
