"""Assignment: which team and which person fulfil an approved order, and why.

The choice is the ``assign_order`` hook's (the built-in ``rules`` plugin, or another);
the core checks it and writes it. Assignments are serialized across processes (an
advisory lock on PostgreSQL; SQLite's IMMEDIATE transaction is exclusive already), so
the loads a choice is based on are the loads it is written against: concurrent
approvals can neither overfill a member nor race a round-robin pointer.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ordergraph.core import db, jobs, scope
from ordergraph.core.auth import SYSTEM, Principal, Role
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.orders import PRIORITIES, OrderView, Timeline, load_order, recording
from ordergraph.core.tables import Order
from ordergraph.stages.fulfilment.tables import Assignment, FulfilmentLine, Task, Team
from ordergraph.stages.fulfilment.teams import (
    DRAIN_JOB,
    Candidate,
    TeamView,
    load_teams,
    serialize_assignments,
    team_of_order,
)

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime

ASSIGN_JOB = "assign_order"
WORKING = ("APPROVED", "PROCESSING")
STEPS = ("pick", "pack", "ship")
# Most urgent first: URGENT is 0.
PRIORITY_RANK = {name: rank for rank, name in enumerate(reversed(PRIORITIES))}


@dataclass(frozen=True)
class AssignmentChoice:
    """What ``assign_order`` returns: the team, the person (``None``: the team's queue),
    the rule that matched, and the explanation stored on the order."""

    team: str
    member: str | None = None
    rule: str = ""
    explanation: dict[str, Any] = field(default_factory=dict)


def due_at(rt: Runtime, step: str, priority: str, start: datetime.datetime) -> datetime.datetime:
    return start + datetime.timedelta(hours=rt.settings.due_hours[step][priority])


async def _still_working(order_id: int) -> bool:
    """The order's status as committed now, under the assignment lock: a transition that
    leaves the working states takes the same lock to close the assignment, so either it
    sees this assignment or this sees its status."""
    row = await Order.select(Order.status).where(Order.id == order_id).first()
    return row is not None and row["status"] in WORKING


async def _create_work(rt: Runtime, order: OrderView) -> None:
    """The order's tasks and per-line quantities, written with its first assignment."""
    start = db.now()
    await Task.insert(
        *(
            Task(
                order=order.id,
                kind=step,
                position=i,
                due_at=due_at(rt, step, order.priority, start),
            )
            for i, step in enumerate(STEPS)
        )
    )
    await FulfilmentLine.insert(
        *(
            FulfilmentLine(
                order=order.id, line_no=line.line_no, sku=line.sku, quantity=line.quantity
            )
            for line in order.lines
        )
    )


def _member(
    teams: list[TeamView], team: str, staff: str | None
) -> tuple[TeamView, Candidate | None]:
    """The team and member a choice names; ValueError when they do not exist or cannot take it."""
    found = next((t for t in teams if t.name == team), None)
    if found is None:
        raise ValueError(f"there is no team {team!r}")
    if staff is None:
        return found, None
    member = next((m for m in found.members if m.staff == staff), None)
    if member is None:
        raise ValueError(f"{staff!r} is not a member of team {team}")
    if member.skipped:
        raise ValueError(f"{staff} cannot take it: {member.skipped}")
    return found, member


def _candidates(team: TeamView) -> list[dict[str, Any]]:
    return [
        {
            "member": m.staff,
            "open": m.open_by_priority,
            "capacity": m.capacity,
            "skipped": m.skipped,
        }
        for m in team.members
    ]


async def _write(
    timeline: Timeline,
    order: OrderView,
    current: dict[str, Any] | None,
    team: TeamView | None,
    member: Candidate | None,
    *,
    rule: str,
    by: Principal,
    explanation: dict[str, Any],
) -> str:
    """Write the assignment row, the tasks' assignee, the round-robin pointer and the event."""
    rt = timeline.rt
    state = "assigned" if member else ("queued" if team else "unassigned")
    if current is None:
        await _create_work(rt, order)
    values = {
        "team": team.id if team else None,
        "member": member.id if member else None,
        "state": state,
        "rule": rule,
        "assigned_by": by.actor,
        "assigned_at": db.now() if member else None,
        "explanation": json.dumps(explanation, default=str),
    }
    if current is None:
        await Assignment.insert(
            Assignment(
                order=order.id,
                due_at=due_at(rt, "ship", order.priority, db.now()),
                **values,
            )
        )
    else:
        await Assignment.update({getattr(Assignment, k): v for k, v in values.items()}).where(
            Assignment.id == current["id"]
        )
    if member is not None:
        await Task.update({Task.assignee: member.staff}).where(
            (Task.order == order.id) & (Task.state != "done")
        )
        assert team is not None
        await Team.update({Team.last_assigned: member.id}).where(Team.id == team.id)
    await timeline.record(
        order,
        "assigned" if member else state,
        by,
        data={
            "team": team.name if team else None,
            "member": member.staff if member else None,
            "rule": rule,
        },
    )
    return state


async def assign(rt: Runtime, order_id: int, *, exclude: str | None = None) -> str | None:
    """Run the ``assign_order`` hook for an order that needs a person and write its choice.

    Returns the assignment's state, or ``None`` when the order needs no assignment (it
    is not approved or processing, or someone already holds it). Safe to run twice.
    """
    order = await load_order(order_id)
    if order is None or order.status not in WORKING:
        return None
    async with recording(rt) as timeline:
        await serialize_assignments()
        current = await Assignment.select().where(Assignment.order == order_id).first()
        if current is not None and current["state"] in ("assigned", "done"):
            return None
        if current is None and not await _still_working(order_id):
            return None  # cancelled meanwhile: its work must not count on anyone
        teams = await load_teams(order, exclude=exclude)
        outcome = await rt.plugins.call("assign_order", first_result=True, order=order, teams=teams)
        team = member = None
        failure = None
        rule, explanation = "", {"reason": "no assignment rule matched this order"}
        if outcome.results:
            plugin, choice = outcome.results[0]
            try:
                if not isinstance(choice, AssignmentChoice):
                    raise ValueError(f"it returned {choice!r}, not an AssignmentChoice")
                rule = f"{plugin}: {choice.rule}" if choice.rule else plugin
                team, member = _member(teams, choice.team, None)
                _, member = _member(teams, choice.team, choice.member)
            except ValueError as exc:
                failure = (plugin, str(exc))
                member = None
            explanation = {
                **(choice.explanation if isinstance(choice, AssignmentChoice) else {}),
                "candidates": _candidates(team) if team else [],
            }
        for f in outcome.failures:
            failure = (f.plugin, f.error)
        if failure is not None:
            explanation = {**explanation, "failure": f"{failure[0]}: {failure[1]}"}
            await timeline.record(
                order,
                "plugin_failed",
                SYSTEM,
                data={"plugin": failure[0], "hook": "assign_order", "error": failure[1]},
            )
        state = "assigned" if member else ("queued" if team else "unassigned")
        if (
            current is not None
            and current["state"] == state
            and current["team"] == (team.id if team else None)
            and failure is None
        ):
            return state  # still waiting where it was: nothing to write
        state = await _write(
            timeline, order, current, team, member, rule=rule, by=SYSTEM, explanation=explanation
        )
    return state


async def assign_to(rt: Runtime, order_id: int, staff: str, principal: Principal) -> None:
    """A person takes an order or gives it to someone (``assignOrder``).

    Staff of a team assign only their team's orders, to their team's members; admins
    and staff of no team assign anywhere (the order moves to the member's team).
    """
    order = await load_order(order_id)
    if order is None:
        raise DomainError.of(ErrorCode.NOT_FOUND, f"There is no order {order_id}.", "id")
    if await team_of_order(order_id) is not None:
        # An order no team holds yet may be taken by anyone; a team's, by its staff.
        await scope.check_order(principal, order_id)
    if order.status not in WORKING:
        raise DomainError.of(
            ErrorCode.OUT_OF_ORDER,
            f"Order {order.number} is {order.status}; only approved or processing orders "
            "are assigned.",
            "id",
        )
    async with recording(rt) as timeline:
        await serialize_assignments()
        current = await Assignment.select().where(Assignment.order == order_id).first()
        if not await _still_working(order_id) or (current and current["state"] == "done"):
            raise DomainError.of(
                ErrorCode.OUT_OF_ORDER, f"Order {order.number} is no longer being worked on.", "id"
            )
        teams = await load_teams(order)
        found = [(t, m) for t in teams for m in t.members if m.staff == staff]
        if not found:
            raise DomainError.of(ErrorCode.NOT_FOUND, f"{staff} is in no team.", "member")
        team, member = found[0]
        current_team = next(
            (t for t in teams if current is not None and t.id == current["team"]), None
        )
        if principal.role == Role.STAFF and principal.team not in (None, team.name):
            raise DomainError.of(ErrorCode.OTHER_TEAM, f"{staff} is in team {team.name}.", "member")
        if current is not None and current["member"] == member.id:
            return
        if member.skipped:
            code = (
                ErrorCode.MEMBER_AWAY
                if member.skipped == "away"
                else ErrorCode.AT_CAPACITY
                if member.skipped.startswith("at capacity")
                else ErrorCode.WRONG_ORDER_TYPE
            )
            raise DomainError.of(code, f"{staff} cannot take it: {member.skipped}.", "member")
        previous = next(
            (m.staff for t in teams for m in t.members if current and m.id == current["member"]),
            None,
        )
        await _write(
            timeline,
            order,
            current,
            team,
            member,
            rule="manual",
            by=principal,
            explanation={
                "reason": f"assigned by {principal.actor}",
                "previous": previous,
                "candidates": _candidates(team),
            },
        )
        if current_team is not None:
            await jobs.enqueue_job(DRAIN_JOB, {"team_id": current_team.id})


async def release(rt: Runtime, order_id: int, principal: Principal) -> str | None:
    """Hand an order back to assignment (``releaseOrder``); it goes to someone else in the
    team, or waits in the team's queue. Returns the new state."""
    await scope.check_order(principal, order_id)
    current = await (
        Assignment.select(
            Assignment.id,
            Assignment.state,
            Assignment.member.staff.as_alias("staff"),
            Assignment.team.name.as_alias("team_name"),
        )
        .where(Assignment.order == order_id)
        .first()
    )
    order = await load_order(order_id)
    if current is None or current["state"] != "assigned" or order is None:
        raise DomainError.of(
            ErrorCode.NOT_ASSIGNED, f"Order {order_id} is not assigned to anyone.", "id"
        )
    async with recording(rt) as timeline:
        await serialize_assignments()
        released = await (
            Assignment.update({Assignment.state: "queued", Assignment.member: None})
            .where((Assignment.id == current["id"]) & (Assignment.state == "assigned"))
            .returning(Assignment.id)
        )
        if not released:
            raise DomainError.of(
                ErrorCode.NOT_ASSIGNED, f"Order {order_id} is not assigned to anyone.", "id"
            )
        await timeline.record(order, "released", principal, data={"member": current["staff"]})
    return await assign(rt, order_id, exclude=current["staff"]) or "queued"


async def drain_queue(rt: Runtime, team_id: int) -> int:
    """Assign a team's queued orders, most urgent and oldest first, while someone can take
    them; return how many were assigned."""
    rank = (
        "CASE o.priority "
        + " ".join(f"WHEN '{name}' THEN {r}" for name, r in PRIORITY_RANK.items())
        + " ELSE 9 END"
    )
    queued = await db.raw(
        f'SELECT a."order" AS order_id FROM assignments a JOIN orders o ON o.id = a."order" '
        f"WHERE a.team = {{}} AND a.state = {{}} ORDER BY {rank}, a.id",
        team_id,
        "queued",
    )
    assigned = 0
    for row in queued:
        state = await assign(rt, row["order_id"])
        if state == "assigned":
            assigned += 1
        elif state is not None:
            break
    return assigned


def explanation_of(row: dict[str, Any]) -> dict[str, Any]:
    value = row["explanation"]
    return json.loads(value) if isinstance(value, str) else value
