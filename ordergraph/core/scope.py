"""Which orders a principal may see or act on: the one rule every stage asks.

- a customer: their own orders;
- staff of a team: the orders assigned to that team (a token whose team does not
  exist sees none);
- staff of no team, admins and the core itself: every order;
- integrators: not limited here; their role keeps them to the import endpoints.

An order outside the scope answers as if it did not exist (``NOT_FOUND``, or no row in a
list): telling "not yours" from "no such order" would tell which numbers exist. Records
bound to an order (tasks, shipments, statements, alerts, payments, delivery problems,
its events) are in scope exactly when their order is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from piccolo.custom_types import Combinable
from piccolo.query.methods.select import Select

from ordergraph.core.auth import Principal, Role
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.tables import Order

TeamOrders = Callable[[str], Select]
"""The ids of the orders a team holds, as a subquery on ``orders.id``."""

team_orders: TeamOrders | None = None
"""Which orders a team holds is the fulfilment stage's to say (its assignments): the
stage sets this when it is imported, so the kernel needs none of its tables. Unset,
staff of a team see no order."""


def _team_order_ids(team: str) -> Select:
    if team_orders is None:
        return Order.select(Order.id).where(Order.id < 0)
    return team_orders(team)


def visible_orders(principal: Principal) -> list[Combinable]:
    """Where-clauses on ``orders`` that keep the rows ``principal`` may see ([]: all)."""
    if principal.role == Role.CUSTOMER:
        return [Order.customer == principal.customer_id]
    if principal.role == Role.STAFF and principal.team is not None:
        return [Order.id.is_in(_team_order_ids(principal.team))]
    return []


async def accessible_orders(principal: Principal, order_ids: Iterable[int]) -> set[int]:
    """Those of ``order_ids`` that ``principal`` may see or act on, in one statement
    (none for a principal who sees every order, who gets ``order_ids`` back whether
    they exist or not: the caller looks the records up anyway)."""
    wanted = set(order_ids)
    clauses = visible_orders(principal)
    if not wanted or not clauses:
        return wanted
    rows = await Order.select(Order.id).where(Order.id.is_in(list(wanted)), *clauses)
    return {row["id"] for row in rows}


async def may_access_order(
    principal: Principal, order_id: int, *, customer_id: int | None = None
) -> bool:
    """Whether ``principal`` may see or act on order ``order_id``.

    ``customer_id``, the order's customer when the caller has read it, answers a
    customer without a query.
    """
    if principal.role == Role.CUSTOMER and customer_id is not None:
        return principal.may_see_customer(customer_id)
    return order_id in await accessible_orders(principal, [order_id])


async def check_order(
    principal: Principal,
    order_id: int,
    *,
    what: str = "order",
    ref: object = None,
    field: str = "id",
) -> None:
    """Raise ``NOT_FOUND`` unless ``principal`` may act on order ``order_id``.

    ``what`` and ``ref`` name the record the caller asked for (a task, a shipment, a
    statement number), so the refusal reads as that record's absence.
    """
    if not await may_access_order(principal, order_id):
        raise DomainError.of(
            ErrorCode.NOT_FOUND,
            f"There is no {what} {order_id if ref is None else ref}.",
            field,
        )


def figures_team(principal: Principal) -> str | None:
    """Whose statistics ``principal`` may see: ``None`` for every team's (admins, staff of
    no team, the core), the team's name for staff of a team, whose figures count only
    the orders their team holds. Customers and integrators see none (``FORBIDDEN``)."""
    if principal.role == Role.STAFF:
        return principal.team
    if principal.role in (Role.ADMIN, Role.SYSTEM):
        return None
    raise DomainError.of(ErrorCode.FORBIDDEN, "Statistics are for staff and admins.")
