"""The one function that moves an order along the status graph."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ordergraph.core import db
from ordergraph.core.auth import SYSTEM, Principal
from ordergraph.core.errors import DomainError, ErrorCode, Problem
from ordergraph.core.limits import REASON
from ordergraph.core.orders import NewEvent, OrderView, announce, load_order, record_events
from ordergraph.core.plugins import PluginFailure
from ordergraph.core.statusgraph import Transition

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime


def _not_found(order_id: int) -> DomainError:
    return DomainError.of(ErrorCode.NOT_FOUND, f"There is no order {order_id}.", "id")


async def transition_order(
    rt: Runtime,
    order: int | OrderView,
    transition: str,
    principal: Principal,
    *,
    via: Sequence[str] = (),
    reason: str | None = None,
    expected_version: int | None = None,
    data: dict[str, Any] | None = None,
    within: Callable[[OrderView], Awaitable[None]] | None = None,
) -> OrderView:
    """Fire ``transition`` on an order and return the order as it is now.

    ``order`` is an id, or the order as the caller has just read it (it is then
    written only if still at that version). ``via`` names transitions to fire first,
    in the same transaction, each checked like the last (the review fires
    ``start_review`` and its decision together).

    In this order: each transition exists; the caller's ``expected_version`` (if
    given) is current, checked before the status so a caller with a stale view is
    told to reload rather than judged on a status it has not seen; the graph allows
    each transition from the status before it; the principal's role may fire it; no
    ``before_transition`` hook vetoes. Then one transaction writes the new status
    with an optimistic version check (the version grows by one per transition), runs
    the ``apply_transition`` hooks and ``within``, appends one event per transition
    and writes their outbox jobs. Nothing else writes ``status``.

    Raises ``DomainError`` with NOT_FOUND, INVALID_TRANSITION, FORBIDDEN,
    VERSION_CONFLICT, VETOED, or TOO_LONG or INVALID_CHARACTER for the reason; the
    order is unchanged then.
    """
    problem = REASON.problem(reason, "reason") if reason is not None else None
    if problem is not None:
        raise DomainError(problem)
    if isinstance(order, int):
        loaded = await load_order(order)
        if loaded is None:
            raise _not_found(order)
        order = loaded
    if not principal.may_see_customer(order.customer_id):
        raise _not_found(order.id)
    steps = [_step(rt, name) for name in (*via, transition)]
    if expected_version is not None and expected_version != order.version:
        raise _version_conflict(order.number, expected_version, order.version)
    # The order as each transition finds it: the status the one before left.
    before = [order]
    for step in steps:
        _check(before[-1], step, principal)
        before.append(replace(before[-1], status=step.target))
    before.pop()

    vetoes: list[Problem] = []
    failures: list[PluginFailure] = []
    last = len(steps) - 1
    for index, (step, seen) in enumerate(zip(steps, before, strict=True)):
        checks = await rt.plugins.call(
            "before_transition",
            order=seen,
            transition=step,
            principal=principal,
            reason=reason if index == last else None,
        )
        vetoes += [
            Problem(ErrorCode.VETOED, f"{plugin}: {why}", "transition")
            for plugin, why in checks.results
        ]
        vetoes += [
            Problem(ErrorCode.VETOED, f"{f.plugin} failed ({f.error}); nothing was changed.")
            for f in checks.failures
        ]
        failures += checks.failures
    if failures:
        await record_plugin_failures(rt, order, failures)
    if vetoes:
        raise DomainError(*vetoes)

    async with db.write_transaction():
        updated = await db.raw(
            "UPDATE orders SET status = {}, version = version + {}, updated_at = {} "
            "WHERE id = {} AND version = {} RETURNING version, updated_at",
            steps[-1].target,
            len(steps),
            db.now(),
            order.id,
            order.version,
        )
        if not updated:
            raise _version_conflict(order.number, order.version, None)
        for step, seen in zip(steps, before, strict=True):
            effects = await rt.plugins.call(
                "apply_transition", order=seen, transition=step, principal=principal
            )
            for failure in effects.failures:
                if isinstance(failure.exception, DomainError):
                    failure.exception.source = failure.plugin
                    raise failure.exception
                raise DomainError.of(
                    ErrorCode.PLUGIN_FAILED,
                    f"{failure.plugin} failed ({failure.error}).",
                    "transition",
                )
        if within is not None:
            await within(order)
        events = [
            NewEvent(
                "transition",
                from_status=seen.status,
                to_status=step.target,
                data={"transition": step.name, "reason": None}
                if index < last
                else {"transition": step.name, "reason": reason, **(data or {})},
            )
            for index, (step, seen) in enumerate(zip(steps, before, strict=True))
        ]
        entered = any(step.target == rt.graph.initial for step in steps)
        recorded = await record_events(
            rt, order, principal, events, more_jobs=rt.jobs_on_entry(order.id) if entered else ()
        )
    await announce(rt, order.customer_id, recorded)
    return replace(
        order,
        status=steps[-1].target,
        version=updated[0]["version"],
        updated_at=updated[0]["updated_at"],
    )


def _step(rt: Runtime, name: str) -> Transition:
    step = rt.graph.transitions.get(name)
    if step is None:
        raise DomainError.of(
            ErrorCode.INVALID_TRANSITION, f"There is no transition named {name!r}.", "transition"
        )
    return step


def _check(order: OrderView, step: Transition, principal: Principal) -> None:
    """The graph allows ``step`` from the order's status, and the principal's role may fire it."""
    if order.status not in step.sources:
        raise DomainError.of(
            ErrorCode.INVALID_TRANSITION,
            f"Order {order.number} is {order.status}; {step.name} is only possible from "
            f"{', '.join(step.sources)}.",
            "transition",
        )
    if not step.allows(principal.role):
        raise DomainError.of(
            ErrorCode.FORBIDDEN,
            f"The {principal.role} role may not {step.name} orders.",
            "transition",
        )


def _version_conflict(number: str, expected: int, current: int | None) -> DomainError:
    now = f"it is at version {current}" if current is not None else "another change came first"
    return DomainError.of(
        ErrorCode.VERSION_CONFLICT,
        f"Order {number} changed since version {expected} ({now}); reload and try again.",
        "expectedVersion",
    )


async def record_plugin_failures(
    rt: Runtime, order: OrderView, failures: list[PluginFailure]
) -> None:
    """Write plugin failures on the order's timeline, without touching its status."""
    async with db.write_transaction():
        recorded = await record_events(
            rt,
            order,
            SYSTEM,
            [
                NewEvent(
                    "plugin_failed",
                    data={"plugin": f.plugin, "hook": f.hook, "error": f.error},
                )
                for f in failures
            ],
        )
    await announce(rt, order.customer_id, recorded)
