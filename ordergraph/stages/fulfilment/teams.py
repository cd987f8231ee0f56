"""Teams and their members: who may take work, how much they hold, and when they are away."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from piccolo.query.methods.select import Select

from ordergraph.core import db, jobs
from ordergraph.core.auth import Principal, Role
from ordergraph.core.errors import DomainError, ErrorCode, Problem
from ordergraph.core.limits import TEAM, shown
from ordergraph.core.orders import OrderView, load_order, recording
from ordergraph.stages.fulfilment.limits import ORDER_TYPE, STAFF_NAME, TEAM_DESCRIPTION
from ordergraph.stages.fulfilment.tables import Assignment, Team, TeamMember

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime

DRAIN_JOB = "drain_team_queue"
# An arbitrary key for PostgreSQL's advisory lock held while assignments are written.
ASSIGNMENT_LOCK = 7_011_843
MAX_CAPACITY = 1000
MAX_MEMBERS = 200


async def serialize_assignments() -> None:
    """Inside a write transaction: wait until no other assignment is being written.

    Held by everything that changes who holds what (assigning, releasing, closing an
    order's work, availability, capacity), so a choice is written against the loads it
    was made on. SQLite's IMMEDIATE transaction is exclusive already.
    """
    if not db.current().is_sqlite:
        await db.raw("SELECT pg_advisory_xact_lock({})", ASSIGNMENT_LOCK)


@dataclass(frozen=True)
class Candidate:
    """A team member as assignment sees them, with ``skipped`` saying why they cannot take
    the order at hand (``None``: they can)."""

    id: int
    staff: str
    team: str
    capacity: int
    order_types: tuple[str, ...]
    available: bool
    open_by_priority: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None

    @property
    def open_orders(self) -> int:
        return sum(self.open_by_priority.values())


@dataclass(frozen=True)
class TeamView:
    id: int
    name: str
    description: str
    last_assigned: str | None
    members: tuple[Candidate, ...] = ()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _skipped(member: Candidate, order: OrderView | None, exclude: str | None) -> str | None:
    if order is None:
        return None
    if member.staff == exclude:
        return "released this order"
    if not member.available:
        return "away"
    if member.open_orders >= member.capacity:
        return f"at capacity ({member.open_orders} of {member.capacity})"
    if member.order_types and order.type not in member.order_types:
        return f"does not handle {order.type} orders"
    return None


async def load_teams(
    order: OrderView | None = None, *, exclude: str | None = None
) -> list[TeamView]:
    """Every team with its members and their open work: three statements whatever the size.

    With ``order``, each member's ``skipped`` says whether they can take it.
    """
    teams = await Team.select().order_by(Team.id)
    members = await TeamMember.select().order_by(TeamMember.id)
    loads = await db.raw(
        'SELECT a."member" AS member, o.priority AS priority, COUNT(*) AS n FROM assignments a '
        'JOIN orders o ON o.id = a."order" WHERE a.state = {} GROUP BY a."member", o.priority',
        "assigned",
    )
    open_work: dict[int, dict[str, int]] = defaultdict(dict)
    for row in loads:
        open_work[row["member"]][row["priority"]] = row["n"]
    names = {t["id"]: t["name"] for t in teams}
    staff_of = {m["id"]: m["staff"] for m in members}
    by_team: dict[int, list[Candidate]] = defaultdict(list)
    for m in members:
        member = Candidate(
            id=m["id"],
            staff=m["staff"],
            team=names[m["team"]],
            capacity=m["capacity"],
            order_types=tuple(_json(m["order_types"]) or ()),
            available=m["available"],
            open_by_priority=open_work.get(m["id"], {}),
        )
        skipped = _skipped(member, order, exclude)
        by_team[m["team"]].append(
            member if skipped is None else Candidate(**{**member.__dict__, "skipped": skipped})
        )
    return [
        TeamView(
            id=t["id"],
            name=t["name"],
            description=t["description"],
            last_assigned=staff_of.get(t["last_assigned"]),
            members=tuple(by_team[t["id"]]),
        )
        for t in teams
    ]


@dataclass(frozen=True)
class MemberData:
    staff: str
    capacity: int = 10
    order_types: tuple[str, ...] = ()
    available: bool = True


def _check_team(name: str, description: str, members: list[MemberData]) -> list[Problem]:
    problems: list[Problem] = []
    if not name.strip():
        problems.append(Problem(ErrorCode.REQUIRED, "Name the team.", "name"))
    TEAM.check(name, "name", problems)
    TEAM_DESCRIPTION.check(description, "description", problems)
    if len(members) > MAX_MEMBERS:
        problems.append(
            Problem(
                ErrorCode.INVALID_VALUE, f"A team has at most {MAX_MEMBERS} members.", "members"
            )
        )
    seen: set[str] = set()
    for i, m in enumerate(members):
        where = f"members[{i}]"
        if not m.staff.strip():
            problems.append(
                Problem(ErrorCode.REQUIRED, "A member is a staff name.", f"{where}.staff")
            )
        elif STAFF_NAME.check(m.staff, f"{where}.staff", problems) and m.staff in seen:
            problems.append(
                Problem(ErrorCode.DUPLICATE, f"{m.staff} is listed twice.", f"{where}.staff")
            )
        seen.add(m.staff)
        if not 1 <= m.capacity <= MAX_CAPACITY:
            problems.append(
                Problem(
                    ErrorCode.INVALID_VALUE,
                    f"The capacity is a whole number from 1 to {MAX_CAPACITY} (got {m.capacity}).",
                    f"{where}.capacity",
                )
            )
        for j, order_type in enumerate(m.order_types):
            if not order_type.strip():
                problems.append(
                    Problem(ErrorCode.REQUIRED, "Name the order type.", f"{where}.orderTypes[{j}]")
                )
            ORDER_TYPE.check(order_type, f"{where}.orderTypes[{j}]", problems)
    return problems


async def upsert_team(name: str, description: str, members: list[MemberData]) -> int:
    """Create or update a team by name and its listed members (others stay); all or none.

    A member who belongs to another team is refused (OTHER_TEAM): move them there first.
    Returns the team's id; the team's queue is drained afterwards (capacity may have grown).
    """
    problems = _check_team(name, description, members)
    if problems:
        raise DomainError(*problems)
    name = name.strip()
    async with db.write_transaction():
        await serialize_assignments()
        team = await Team.select(Team.id).where(Team.name == name).first()
        if team is None:
            team = (await Team.insert(Team(name=name, description=description)))[0]
        else:
            await Team.update({Team.description: description}).where(Team.id == team["id"])
        team_id = team["id"]
        staff = [m.staff for m in members]
        existing = {
            r["staff"]: r
            for r in await TeamMember.select().where(TeamMember.staff.is_in(staff or [""]))
        }
        problems = [
            Problem(
                ErrorCode.OTHER_TEAM,
                f"{m.staff} is a member of another team.",
                f"members[{i}].staff",
            )
            for i, m in enumerate(members)
            if m.staff in existing and existing[m.staff]["team"] != team_id
        ]
        if problems:
            raise DomainError(*problems)
        for m in members:
            values = {
                TeamMember.capacity: m.capacity,
                TeamMember.order_types: json.dumps(list(m.order_types)),
                TeamMember.available: m.available,
                TeamMember.updated_at: db.now(),
            }
            if m.staff in existing:
                await TeamMember.update(values).where(TeamMember.id == existing[m.staff]["id"])
            else:
                await TeamMember.insert(
                    TeamMember(
                        team=team_id,
                        staff=m.staff,
                        capacity=m.capacity,
                        order_types=json.dumps(list(m.order_types)),
                        available=m.available,
                    )
                )
        await jobs.enqueue_job(DRAIN_JOB, {"team_id": team_id})
    return team_id


async def set_availability(rt: Runtime, staff: str, available: bool, principal: Principal) -> int:
    """Put a member on shift or away. Going away hands their not-started work back to
    their team's queue, which is then drained to the others. Returns the team id."""
    if principal.role == Role.STAFF and principal.name != staff:
        raise DomainError.of(
            ErrorCode.FORBIDDEN, "Staff may change only their own availability.", "staff"
        )
    if STAFF_NAME.problem(staff, "staff") is not None:
        # No member has such a name; it must not reach the database as a query.
        raise DomainError.of(ErrorCode.NOT_FOUND, f"{shown(staff)} is in no team.", "staff")
    async with recording(rt) as timeline:
        await serialize_assignments()
        member = await TeamMember.select().where(TeamMember.staff == staff).first()
        if member is None:
            raise DomainError.of(ErrorCode.NOT_FOUND, f"{staff} is in no team.", "staff")
        await TeamMember.update(
            {TeamMember.available: available, TeamMember.updated_at: db.now()}
        ).where(TeamMember.id == member["id"])
        if not available:
            handed_back = await db.raw(
                'UPDATE assignments SET state = {}, "member" = NULL WHERE "member" = {} '
                "AND state = {} AND NOT EXISTS (SELECT 1 FROM tasks t WHERE "
                't."order" = assignments."order" AND t.state <> {}) RETURNING "order"',
                "queued",
                member["id"],
                "assigned",
                "open",
            )
            for row in handed_back:
                order = await load_order(row["order"])
                assert order is not None  # orders are never deleted
                await timeline.record(
                    order,
                    "handed_back",
                    principal,
                    data={"member": staff, "reason": "away"},
                )
        await jobs.enqueue_job(DRAIN_JOB, {"team_id": member["team"]})
    return member["team"]


async def team_of_order(order_id: int) -> str | None:
    row = await (
        Assignment.select(Assignment.team.name.as_alias("team"))
        .where(Assignment.order == order_id)
        .first()
    )
    return row["team"] if row else None


async def unknown_team(team: str) -> str | None:
    """Why a token cannot be bound to ``team`` (no team of that name), or None."""
    names = [row["name"] for row in await Team.select(Team.name).order_by(Team.name)]
    if team in names:
        return None
    if not names:
        return f"there is no team {team!r}: there are no teams yet (define one with upsertTeam)"
    return f"there is no team {team!r}; the teams are {', '.join(names)}"


def team_order_ids(team: str) -> Select:
    """The ids of the orders assigned to ``team``: the team's part of the one scope rule
    (``core.scope.team_orders``)."""
    return Assignment.select(Assignment.order).where(
        Assignment.team.is_in(Team.select(Team.id).where(Team.name == team))
    )
