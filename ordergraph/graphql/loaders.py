"""Batch loaders, one set per request, so a list of orders costs one query per relation."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from functools import cached_property
from typing import Any, TypeVar

from piccolo.columns import Column
from piccolo.columns.combination import WhereRaw
from piccolo.custom_types import Combinable
from piccolo.table import Table
from strawberry.dataloader import DataLoader
from strawberry.types.nodes import SelectedField, Selection

from ordergraph.core import db
from ordergraph.core.tables import Customer, OrderEvent, OrderLine, Product
from ordergraph.stages.fulfilment.tables import (
    Assignment,
    FulfilmentLine,
    Shipment,
    ShipmentBooking,
    ShipmentLine,
    Task,
)
from ordergraph.stages.review.tables import ReviewFinding

T = TypeVar("T")
R = TypeVar("R")


def when_loaded(pending: Awaitable[T], then: Callable[[T], R]) -> R | Awaitable[R]:
    """``then`` of what a loader's ``load`` gives: at once when the loader already holds it,
    otherwise once its batch has run.

    A list of orders loads each relation of the whole page first (``preload``), so every
    order's field answers at once: the executor then has no awaitable to gather, and no
    task to start, per field of every order.
    """
    if isinstance(pending, asyncio.Future) and pending.done():
        return then(pending.result())

    async def later() -> R:
        return then(await pending)

    return later()


async def preload(loaders: Iterable[tuple[DataLoader[Any, Any], Iterable[Any]]]) -> None:
    """Load these keys into these loaders, one batch per loader, the batches at once.

    A failed batch leaves its error in the loader, for each field that reads it to
    report, as it would have without the preload.
    """
    await asyncio.gather(
        *(loader.load_many(keys) for loader, keys in loaders), return_exceptions=True
    )


def selected_names(selections: Iterable[Selection], *path: str) -> set[str]:
    """The names of the fields selected at ``path`` under ``selections`` (a strawberry
    ``info.selected_fields``), through fragments, leaving out fields that ``@skip`` or
    ``@include`` leave out."""
    names: set[str] = set()
    for selection in selections:
        if _left_out(selection.directives):
            continue
        if not isinstance(selection, SelectedField):
            names |= selected_names(selection.selections, *path)
        elif not path:
            names.add(selection.name)
        elif selection.name == path[0]:
            names |= selected_names(selection.selections, *path[1:])
    return names


def _left_out(directives: dict[str, Any]) -> bool:
    return directives.get("skip", {}).get("if") is True or (
        directives.get("include", {}).get("if") is False
    )


def _one_of(column: Column, ids: list[int]) -> Combinable:
    """``column`` is one of ``ids``, sent as one parameter.

    piccolo's ``is_in`` builds a placeholder and checks a value per id: half a
    millisecond of the request for a page's 50 ids, more than the database takes.
    """
    return WhereRaw(*db.one_of(column._meta.get_full_name(with_alias=False), ids))


def _by_order(
    table: type[Table], order_by: Column
) -> Callable[[list[int]], Awaitable[list[list[dict[str, Any]]]]]:
    """A batch function: the rows of ``table`` for many orders in one query, per order."""

    async def load(order_ids: list[int]) -> list[list[dict[str, Any]]]:
        by_order: dict[int, list[dict[str, Any]]] = defaultdict(list)
        rows = await table.select().where(_one_of(table.order, order_ids)).order_by(order_by)
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
    rows = {r["id"]: r for r in await Customer.select().where(_one_of(Customer.id, ids))}
    return [rows.get(i) for i in ids]


async def _assignments(order_ids: list[int]) -> list[dict[str, Any] | None]:
    rows = await Assignment.select(
        *Assignment.all_columns(),
        Assignment.team.name.as_alias("team_name"),
        Assignment.member.staff.as_alias("member_staff"),
    ).where(_one_of(Assignment.order, order_ids))
    by_order = {r["order"]: r for r in rows}
    return [by_order.get(i) for i in order_ids]


async def _bins(skus: list[str]) -> list[str]:
    rows = await Product.select(Product.sku, Product.bin_location).where(Product.sku.is_in(skus))
    where = {r["sku"]: r["bin_location"] for r in rows}
    return [where.get(sku, "") for sku in skus]


class Loaders:
    """The loaders of one request, each made when a field first asks for it: most
    requests (a mutation, one order) use none or few of them."""

    @cached_property
    def lines(self) -> DataLoader[int, list[dict[str, Any]]]:
        return DataLoader(_by_order(OrderLine, OrderLine.line_no))

    @cached_property
    def events(self) -> DataLoader[int, list[dict[str, Any]]]:
        return DataLoader(_by_order(OrderEvent, OrderEvent.id))

    @cached_property
    def findings(self) -> DataLoader[int, list[dict[str, Any]]]:
        return DataLoader(_by_order(ReviewFinding, ReviewFinding.id))

    @cached_property
    def customers(self) -> DataLoader[int, dict[str, Any] | None]:
        return DataLoader(_customers)

    @cached_property
    def assignments(self) -> DataLoader[int, dict[str, Any] | None]:
        return DataLoader(_assignments)

    @cached_property
    def tasks(self) -> DataLoader[int, list[dict[str, Any]]]:
        return DataLoader(_by_order(Task, Task.position))

    @cached_property
    def fulfilment_lines(self) -> DataLoader[int, list[dict[str, Any]]]:
        return DataLoader(_by_order(FulfilmentLine, FulfilmentLine.line_no))

    @cached_property
    def shipments(self) -> DataLoader[int, list[dict[str, Any]]]:
        return DataLoader(_by_order(Shipment, Shipment.id))

    @cached_property
    def shipment_lines(self) -> DataLoader[int, list[dict[str, Any]]]:
        return DataLoader(_by_order(ShipmentLine, ShipmentLine.id))

    @cached_property
    def bookings(self) -> DataLoader[int, list[dict[str, Any]]]:
        return DataLoader(_bookings)

    @cached_property
    def bins(self) -> DataLoader[str, str]:
        return DataLoader(_bins)
