"""The one function that moves an order along the status graph."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ordergraph.core import db, scope
from ordergraph.core.auth import SYSTEM, Principal
from ordergraph.core.errors import DomainError, ErrorCode, Problem
from ordergraph.core.limits import REASON
from ordergraph.core.orders import (
    NewEvent,
    OrderView,
    announce,
    announce_all,
    insert_events,
    load_order,
    record_events,
)
from ordergraph.core.plugins import PluginFailure
from ordergraph.core.statusgraph import Transition

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime


# An arbitrary key for PostgreSQL's advisory lock held while several orders are moved.
BATCH_LOCK = 7_011_844


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
    order is unchanged then. A ``before_transition`` hook that fails is recorded on
    the order's timeline.
    """
    _check_reason(reason)
    if isinstance(order, int):
        loaded = await load_order(order)
        if loaded is None:
            raise _not_found(order)
        order = loaded
    if not await scope.may_access_order(principal, order.id, customer_id=order.customer_id):
        raise _not_found(order.id)
    move = _prepare(rt, Move(order, transition, via, reason, data), principal, expected_version)
    vetoes, failures = await _vet(rt, move, principal)
    if failures:
        await record_plugin_failures(rt, order, failures)
    if vetoes:
        raise DomainError(*vetoes)
    writes = None if within is None else lambda orders: within(orders[0])
    return (await _write(rt, [move], principal, writes))[0]


@dataclass(frozen=True)
class Move:
    """One order's part in ``transition_orders``: as ``transition_order``'s arguments."""

    order: OrderView
    transition: str
    via: Sequence[str] = ()
    reason: str | None = None
    data: dict[str, Any] | None = None


async def transition_orders(
    rt: Runtime,
    moves: Sequence[Move],
    principal: Principal,
    *,
    within: Callable[[list[OrderView]], Awaitable[None]] | None = None,
) -> list[OrderView]:
    """Fire the moves of several orders in one transaction, all or none: what
    ``transition_order`` does for one, with one statement for every status, one for
    every event and one for the stock the hooks change (the review stage's
    ``inventory.adjusted_together``, one of ``rt.batch_scopes``), however many orders
    (the review decides the orders that came in together so).
    ``within`` gets the orders as read.

    On PostgreSQL such transactions take turns (an advisory lock), so that two of them
    never deadlock on the rows they lock in their own orders.

    Raises ``DomainError`` as ``transition_order`` does when any move cannot be made;
    nothing is written then, a failing ``before_transition`` hook is not recorded
    either, and the caller moves each order on its own to learn which one it was.
    """
    for move in moves:
        _check_reason(move.reason)
    ids = [move.order.id for move in moves]
    if missing := set(ids) - await scope.accessible_orders(principal, ids):
        raise _not_found(min(missing))
    prepared = [_prepare(rt, move, principal, None) for move in moves]
    for move in prepared:
        vetoes, _ = await _vet(rt, move, principal)
        if vetoes:
            raise DomainError(*vetoes)
    return await _write(rt, prepared, principal, within)


@dataclass(frozen=True)
class _Prepared:
    """A checked move: its transitions, and the order as each of them finds it."""

    move: Move
    steps: list[Transition]
    before: list[OrderView]

    @property
    def order(self) -> OrderView:
        return self.move.order


def _check_reason(reason: str | None) -> None:
    problem = REASON.problem(reason, "reason") if reason is not None else None
    if problem is not None:
        raise DomainError(problem)


def _prepare(
    rt: Runtime, move: Move, principal: Principal, expected_version: int | None
) -> _Prepared:
    """The checks of ``transition_order`` after the reason's and before the hooks'."""
    order = move.order
    steps = [_step(rt, name) for name in (*move.via, move.transition)]
    if expected_version is not None and expected_version != order.version:
        raise _version_conflict(order.number, expected_version, order.version)
    before = [order]
    for step in steps:
        _check(before[-1], step, principal)
        before.append(replace(before[-1], status=step.target))
    before.pop()
    return _Prepared(move, steps, before)


async def _vet(
    rt: Runtime, move: _Prepared, principal: Principal
) -> tuple[list[Problem], list[PluginFailure]]:
    """Ask the ``before_transition`` hooks about each transition: their vetoes (a failed
    hook vetoes too) and their failures."""
    vetoes: list[Problem] = []
    failures: list[PluginFailure] = []
    last = len(move.steps) - 1
    for index, (step, seen) in enumerate(zip(move.steps, move.before, strict=True)):
        checks = await rt.plugins.call(
            "before_transition",
            order=seen,
            transition=step,
            principal=principal,
            reason=move.move.reason if index == last else None,
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
    return vetoes, failures


async def _write(
    rt: Runtime,
    moves: list[_Prepared],
    principal: Principal,
    within: Callable[[list[OrderView]], Awaitable[None]] | None,
) -> list[OrderView]:
    """The transaction of checked moves: statuses (version-checked), ``apply_transition``
    hooks, ``within``, events and their jobs; then the events are announced."""
    async with db.write_transaction():
        if len(moves) > 1 and not db.current().is_sqlite:
            # Two batches would lock their orders' count rows each in its own order and
            # could deadlock; they take turns instead. (SQLite's IMMEDIATE transaction
            # is exclusive already.)
            await db.raw("SELECT pg_advisory_xact_lock({})", BATCH_LOCK)
        updated = await _update_statuses(moves)
        for move in moves:
            if move.order.id not in updated:
                raise _version_conflict(move.order.number, move.order.version, None)
        async with contextlib.AsyncExitStack() as batch:
            if len(moves) > 1:
                # The stages write what the hooks of a batch change together (the
                # review stage: one statement for the stock of every order).
                for block in rt.batch_scopes:
                    await batch.enter_async_context(block())
            for move in moves:
                for step, seen in zip(move.steps, move.before, strict=True):
                    await _apply(rt, seen, step, principal)
            if within is not None:
                await within([move.order for move in moves])
        entries = []
        more_jobs: list[tuple[str, dict[str, Any]]] = []
        for move in moves:
            entries += [(move.order.id, move.order.customer_id, e) for e in _events(move)]
            if any(step.target == rt.graph.initial for step in move.steps):
                more_jobs += rt.jobs_on_entry(move.order.id)
        recorded = await insert_events(rt, entries, principal, more_jobs)
    customer_of = {move.order.id: move.order.customer_id for move in moves}
    await announce_all(rt, [(customer_of[event.order_id], [event]) for event in recorded])
    return [
        replace(
            move.order,
            status=move.steps[-1].target,
            version=updated[move.order.id]["version"],
            updated_at=updated[move.order.id]["updated_at"],
        )
        for move in moves
    ]


async def _update_statuses(moves: list[_Prepared]) -> dict[int, dict[str, Any]]:
    """Write each order's new status in one statement, where its version is still the
    one read; the new version and time of each order written, by id."""
    if db.current().is_sqlite:
        rows = await db.raw(
            "UPDATE orders SET status = x.value ->> 2, version = orders.version + "
            "(x.value ->> 3), updated_at = {} FROM json_each({}) AS x "
            "WHERE orders.id = x.value ->> 0 AND orders.version = x.value ->> 1 "
            "RETURNING orders.id, orders.version, orders.updated_at",
            db.now(),
            json.dumps(
                [[m.order.id, m.order.version, m.steps[-1].target, len(m.steps)] for m in moves]
            ),
        )
    else:
        rows = await db.raw(
            "UPDATE orders o SET status = x.status, version = o.version + x.steps, "
            "updated_at = {} FROM unnest({}::int[], {}::int[], {}::text[], {}::int[]) "
            "AS x(id, version, status, steps) WHERE o.id = x.id AND o.version = x.version "
            "RETURNING o.id, o.version, o.updated_at",
            db.now(),
            [m.order.id for m in moves],
            [m.order.version for m in moves],
            [m.steps[-1].target for m in moves],
            [len(m.steps) for m in moves],
        )
    return {row["id"]: row for row in rows}


async def _apply(rt: Runtime, seen: OrderView, step: Transition, principal: Principal) -> None:
    """The ``apply_transition`` hooks of one transition; a failure refuses the move."""
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


def _events(move: _Prepared) -> list[NewEvent]:
    """One ``transition`` event per transition; the last carries the reason and data."""
    last = len(move.steps) - 1
    return [
        NewEvent(
            "transition",
            from_status=seen.status,
            to_status=step.target,
            data={"transition": step.name, "reason": None}
            if index < last
            else {"transition": step.name, "reason": move.move.reason, **(move.move.data or {})},
        )
        for index, (step, seen) in enumerate(zip(move.steps, move.before, strict=True))
    ]


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
