"""The one function that moves an order along the status graph."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ordergraph.core import db
from ordergraph.core.auth import SYSTEM, Principal
from ordergraph.core.errors import DomainError, ErrorCode, Problem
from ordergraph.core.orders import OrderView, load_order, record_event
from ordergraph.core.plugins import PluginFailure
from ordergraph.core.tables import Order

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime


def _not_found(order_id: int) -> DomainError:
    return DomainError.of(ErrorCode.NOT_FOUND, f"There is no order {order_id}.", "id")


async def transition_order(
    rt: Runtime,
    order_id: int,
    transition: str,
    principal: Principal,
    *,
    reason: str | None = None,
    expected_version: int | None = None,
    data: dict[str, Any] | None = None,
    within: Callable[[OrderView], Awaitable[None]] | None = None,
) -> OrderView:
    """Fire ``transition`` on an order and return the order as it is now.

    In this order: the transition exists; the caller's ``expected_version`` (if
    given) is current, checked before the status so a caller with a stale view is
    told to reload rather than judged on a status it has not seen; the graph allows
    the transition from the current status; the principal's role may fire it; no
    ``before_transition`` hook vetoes. Then one transaction writes the
    new status with an optimistic version check, appends the event and writes its
    outbox jobs. Nothing else writes ``status``.

    Raises ``DomainError`` with NOT_FOUND, INVALID_TRANSITION, FORBIDDEN,
    VERSION_CONFLICT or VETOED; the order is unchanged then.
    """
    order = await load_order(order_id)
    if order is None or not principal.may_see_customer(order.customer_id):
        raise _not_found(order_id)
    step = rt.graph.transitions.get(transition)
    if step is None:
        raise DomainError.of(
            ErrorCode.INVALID_TRANSITION,
            f"There is no transition named {transition!r}.",
            "transition",
        )
    if expected_version is not None and expected_version != order.version:
        raise _version_conflict(order.number, expected_version, order.version)
    if order.status not in step.sources:
        raise DomainError.of(
            ErrorCode.INVALID_TRANSITION,
            f"Order {order.number} is {order.status}; {transition} is only possible from "
            f"{', '.join(step.sources)}.",
            "transition",
        )
    if not step.allows(principal.role):
        raise DomainError.of(
            ErrorCode.FORBIDDEN,
            f"The {principal.role} role may not {transition} orders.",
            "transition",
        )

    checks = await rt.plugins.call(
        "before_transition", order=order, transition=step, principal=principal, reason=reason
    )
    vetoes = [
        Problem(ErrorCode.VETOED, f"{plugin}: {why}", "transition")
        for plugin, why in checks.results
    ]
    vetoes += [
        Problem(ErrorCode.VETOED, f"{f.plugin} failed ({f.error}); nothing was changed.")
        for f in checks.failures
    ]
    if checks.failures:
        await record_plugin_failures(rt, order.id, checks.failures)
    if vetoes:
        raise DomainError(*vetoes)

    async with db.write_transaction():
        updated = await (
            Order.update(
                {
                    Order.status: step.target,
                    Order.version: Order.version + 1,
                    Order.updated_at: db.now(),
                }
            )
            .where((Order.id == order.id) & (Order.version == order.version))
            .returning(*Order.all_columns())
        )
        if not updated:
            raise _version_conflict(order.number, order.version, None)
        effects = await rt.plugins.call(
            "apply_transition", order=order, transition=step, principal=principal
        )
        for failure in effects.failures:
            if isinstance(failure.exception, DomainError):
                failure.exception.source = failure.plugin
                raise failure.exception
            raise DomainError.of(
                ErrorCode.PLUGIN_FAILED, f"{failure.plugin} failed ({failure.error}).", "transition"
            )
        if within is not None:
            await within(order)
        await record_event(
            order.id,
            "transition",
            principal,
            from_status=order.status,
            to_status=step.target,
            data={"transition": step.name, "reason": reason, **(data or {})},
            more_jobs=rt.jobs_on_entry(order.id) if step.target == rt.graph.initial else (),
        )
    rt.wake_jobs()
    return replace(
        order,
        status=step.target,
        version=updated[0]["version"],
        updated_at=updated[0]["updated_at"],
    )


def _version_conflict(number: str, expected: int, current: int | None) -> DomainError:
    now = f"it is at version {current}" if current is not None else "another change came first"
    return DomainError.of(
        ErrorCode.VERSION_CONFLICT,
        f"Order {number} changed since version {expected} ({now}); reload and try again.",
        "expectedVersion",
    )


async def record_plugin_failures(rt: Runtime, order_id: int, failures: list[PluginFailure]) -> None:
    """Write plugin failures on the order's timeline, without touching its status."""
    async with db.write_transaction():
        for failure in failures:
            await record_event(
                order_id,
                "plugin_failed",
                SYSTEM,
                data={"plugin": failure.plugin, "hook": failure.hook, "error": failure.error},
            )
    rt.wake_jobs()
