"""GraphQL for stage 3: teams, assignment, pick/pack/ship tasks, shipments and my work."""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncGenerator
from enum import Enum
from typing import Any

import strawberry
from strawberry.scalars import JSON

from ordergraph.core import db, scope
from ordergraph.core.auth import Principal, Role
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.orders import actor_seen_by
from ordergraph.core.tables import Order as OrderRow
from ordergraph.graphql.context import OPERATORS, READERS, Info, require, row_id
from ordergraph.graphql.types import Order, UserError, extend_order, payload_errors
from ordergraph.stages.fulfilment import assignment, labels, teams, work
from ordergraph.stages.fulfilment.assignment import PRIORITY_RANK, explanation_of
from ordergraph.stages.fulfilment.tables import Assignment as AssignmentRow
from ordergraph.stages.fulfilment.tables import Task as TaskRow

MAX_WORK = 100


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@strawberry.type
class TeamMember:
    staff: str
    capacity: int
    order_types: list[str] = strawberry.field(description="Empty: every type.")
    available: bool
    open_orders: int
    open_by_priority: JSON


@strawberry.type
class Team:
    id: strawberry.ID
    name: str
    description: str
    last_assigned: str | None = strawberry.field(description="The round-robin pointer.")
    members: list[TeamMember]
    queued: int = strawberry.field(description="Orders waiting for someone in this team.")


@strawberry.type
class Assignment:
    state: str = strawberry.field(description="unassigned, queued, assigned or done.")
    team: str | None
    member: str | None
    rule: str
    assigned_by: str
    assigned_at: datetime.datetime | None
    due_at: datetime.datetime | None = strawberry.field(description="When it must ship.")
    explanation: JSON = strawberry.field(
        description="The rule that matched, the candidates with their loads, who was chosen, why."
    )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Assignment:
        return cls(
            state=row["state"],
            team=row["team_name"],
            member=row["member_staff"],
            rule=row["rule"],
            assigned_by=row["assigned_by"],
            assigned_at=row["assigned_at"],
            due_at=row["due_at"],
            explanation=explanation_of(row),
        )


@strawberry.type
class PickLine:
    line_no: int
    sku: str
    name: str
    quantity: int = strawberry.field(
        description="Left to pick: ordered, less shipped and cancelled."
    )
    bin_location: str
    picked: int | None
    shipped: int
    cancelled: int
    backordered: int


@strawberry.type
class Task:
    id: strawberry.ID
    kind: str = strawberry.field(description="pick, pack or ship.")
    state: str = strawberry.field(description="open, started or done.")
    assignee: str | None
    due_at: datetime.datetime | None
    started_at: datetime.datetime | None
    started_by: str | None
    completed_at: datetime.datetime | None
    completed_by: str | None
    result: JSON = strawberry.field(description="What was found, the parcels, the carrier.")
    order_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Task:
        return cls(
            id=strawberry.ID(str(row["id"])),
            kind=row["kind"],
            state=row["state"],
            assignee=row["assignee"],
            due_at=row["due_at"],
            started_at=row["started_at"],
            started_by=row["started_by"],
            completed_at=row["completed_at"],
            completed_by=row["completed_by"],
            result=_json(row["result"]) or {},
            order_id=row["order"],
        )

    @strawberry.field(description="The pick list: per line, what is left, and where it lies.")
    async def pick_list(self, info: Info) -> list[PickLine]:
        require(info, *OPERATORS)
        lines = await info.context.loaders.fulfilment_lines.load(self.order_id)
        ordered = {r["line_no"]: r for r in await info.context.loaders.lines.load(self.order_id)}
        bins = await info.context.loaders.bins.load_many([r["sku"] for r in lines])
        return [
            PickLine(
                line_no=r["line_no"],
                sku=r["sku"],
                name=ordered[r["line_no"]]["name"],
                quantity=work.open_quantity(r),
                bin_location=where,
                picked=r["picked"],
                shipped=r["shipped"],
                cancelled=r["cancelled"],
                backordered=r["backordered"],
            )
            for r, where in zip(lines, bins, strict=True)
        ]


@strawberry.type
class ShipmentLine:
    line_no: int
    quantity: int


@strawberry.type(description="The label bought from the carrier for a shipment.")
class ShipmentLabel:
    state: str = strawberry.field(
        description="pending, requesting, booked, failed (asked again) or unknown (the "
        "carrier did not answer in time: check with it)."
    )
    attempts: int
    error: str = strawberry.field(description="The carrier's last refusal, if any.")
    format: str = strawberry.field(description="PDF, once booked.")
    booked_at: datetime.datetime | None
    url: str | None = strawberry.field(
        description="Where staff download the label, with their bearer token, once booked."
    )


@strawberry.type
class Shipment:
    id: strawberry.ID
    carrier: str
    service: str
    tracking_number: str
    parcels: JSON
    created_by: str
    created_at: datetime.datetime
    lines: list[ShipmentLine]
    order_id: strawberry.Private[int]

    @strawberry.field(
        description="The label bought from the carrier (staff), when its plugin buys labels."
    )
    async def label(self, info: Info) -> ShipmentLabel | None:
        require(info, *OPERATORS)
        bookings = await info.context.loaders.bookings.load(self.order_id)
        row = next((b for b in bookings if str(b["shipment"]) == self.id), None)
        if row is None:
            return None
        booked = row["state"] == "booked"
        return ShipmentLabel(
            state=row["state"],
            attempts=row["attempts"],
            error=row["last_error"],
            format=row["label_format"],
            booked_at=row["booked_at"],
            url=labels.label_path(row["shipment"]) if booked else None,
        )


@strawberry.type
class WorkItem:
    order: Order
    due_at: datetime.datetime | None
    next_task: Task | None = strawberry.field(description="The first task not done.")


async def order_assignment(root: Order, info: Info) -> Assignment | None:
    root._caller(info, *OPERATORS)
    row = await info.context.loaders.assignments.load(root.order_id)
    return Assignment.from_row(row) if row else None


async def order_tasks(root: Order, info: Info) -> list[Task]:
    root._caller(info, *OPERATORS)
    return [Task.from_row(r) for r in await info.context.loaders.tasks.load(root.order_id)]


async def order_shipments(root: Order, info: Info) -> list[Shipment]:
    root._caller(info, *READERS)
    rows = await info.context.loaders.shipments.load(root.order_id)
    lines = await info.context.loaders.shipment_lines.load(root.order_id)
    return [
        Shipment(
            id=strawberry.ID(str(r["id"])),
            carrier=r["carrier"],
            service=r["service"],
            tracking_number=r["tracking_number"],
            parcels=_json(r["parcels"]) or [],
            created_by=actor_seen_by(info.context.principal, r["created_by"]),
            created_at=r["created_at"],
            lines=[
                ShipmentLine(line_no=line["line_no"], quantity=line["quantity"])
                for line in lines
                if line["shipment"] == r["id"]
            ],
            order_id=root.order_id,
        )
        for r in rows
    ]


@extend_order
@strawberry.type
class OrderFulfilment:
    """What stage 3 adds to ``Order``."""

    assignment: Assignment | None = strawberry.field(
        resolver=order_assignment, description="Who fulfils it and why (staff)."
    )
    tasks: list[Task] = strawberry.field(
        resolver=order_tasks, description="Its pick, pack and ship tasks, in order (staff)."
    )
    shipments: list[Shipment] = strawberry.field(
        resolver=order_shipments,
        description="Its shipments, each a set of (line, quantity), oldest first.",
    )


@strawberry.input
class TeamMemberInput:
    staff: str = strawberry.field(description="The name of the member's staff token.")
    capacity: int = 10
    order_types: list[str] = strawberry.field(default_factory=list)
    available: bool = True


@strawberry.input
class TeamInput:
    name: str
    description: str = ""
    members: list[TeamMemberInput] = strawberry.field(default_factory=list)


@strawberry.input
class PickedLineInput:
    line_no: int
    picked: int


@strawberry.enum
class ShortPick(Enum):
    CANCEL_REST = "CANCEL_REST"
    BACKORDER = "BACKORDER"


@strawberry.input
class LineQuantityInput:
    line_no: int
    quantity: int


@strawberry.input
class ParcelInput:
    weight_grams: int
    length_mm: int
    width_mm: int
    height_mm: int
    lines: list[LineQuantityInput]


@strawberry.input
class ShipmentInput:
    lines: list[LineQuantityInput]
    carrier: str
    service: str = ""
    tracking_number: str = ""


@strawberry.type
class TeamPayload:
    team: Team | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class WorkPayload:
    """The order as it is after the step (its status derived from its work)."""

    order: Order | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


async def _team(team_id: int) -> Team:
    found = next(t for t in await teams.load_teams() if t.id == team_id)
    queued = await AssignmentRow.count().where(
        (AssignmentRow.team == team_id) & (AssignmentRow.state == "queued")
    )
    return _team_type(found, queued)


def _team_type(team: teams.TeamView, queued: int) -> Team:
    return Team(
        id=strawberry.ID(str(team.id)),
        name=team.name,
        description=team.description,
        last_assigned=team.last_assigned,
        members=[
            TeamMember(
                staff=m.staff,
                capacity=m.capacity,
                order_types=list(m.order_types),
                available=m.available,
                open_orders=m.open_orders,
                open_by_priority=m.open_by_priority,
            )
            for m in team.members
        ],
        queued=queued,
    )


async def _order(order_id: int) -> Order:
    row = await OrderRow.select().where(OrderRow.id == order_id).first()
    return Order.from_row(row)


async def _task_order(task_id: int) -> int:
    row = await TaskRow.select(TaskRow.order).where(TaskRow.id == task_id).first()
    return row["order"]


def _operator(info: Info) -> Principal:
    return require(info, *OPERATORS)


@strawberry.type
class FulfilmentQuery:
    @strawberry.field(description="Every team with its members and their open work.")
    async def teams(self, info: Info) -> list[Team]:
        principal = _operator(info)
        queued = {
            r["team"]: r["n"]
            for r in await db.raw(
                "SELECT team, COUNT(*) AS n FROM assignments WHERE state = {} GROUP BY team",
                "queued",
            )
        }
        return [
            _team_type(t, queued.get(t.id, 0))
            for t in await teams.load_teams()
            if principal.role == Role.ADMIN or principal.team in (None, t.name)
        ]

    @strawberry.field(
        description="The caller's open work, most urgent first (priority, then due time)."
    )
    async def my_work(self, info: Info, first: int | None = 50) -> list[WorkItem]:
        principal = require(info, Role.STAFF)
        size = max(1, min(first or 50, MAX_WORK))
        rank = (
            "CASE o.priority "
            + " ".join(f"WHEN '{name}' THEN {r}" for name, r in PRIORITY_RANK.items())
            + " ELSE 9 END"
        )
        rows = await db.raw(
            f"SELECT o.*, a.due_at AS work_due_at FROM assignments a "
            f'JOIN orders o ON o.id = a."order" JOIN team_members m ON m.id = a."member" '
            f"WHERE m.staff = {{}} AND a.state = {{}} ORDER BY {rank}, a.due_at, o.id "
            f"LIMIT {size}",
            principal.name,
            "assigned",
        )
        # A token's name may be a member of a team other than the token's own.
        in_scope = await scope.accessible_orders(principal, [r["id"] for r in rows])
        rows = [r for r in rows if r["id"] in in_scope]
        tasks = await info.context.loaders.tasks.load_many([r["id"] for r in rows])
        return [
            WorkItem(
                order=Order.from_row(r),
                due_at=r["work_due_at"],
                next_task=next(
                    (Task.from_row(t) for t in tasks_of_order if t["state"] != "done"), None
                ),
            )
            for r, tasks_of_order in zip(rows, tasks, strict=True)
        ]


@strawberry.type
class FulfilmentMutation:
    @strawberry.mutation(description="Create or update a team and its listed members (admins).")
    @payload_errors
    async def upsert_team(self, info: Info, input: TeamInput) -> TeamPayload:
        require(info, Role.ADMIN)
        team_id = await teams.upsert_team(
            input.name,
            input.description,
            [
                teams.MemberData(m.staff, m.capacity, tuple(m.order_types), m.available)
                for m in input.members
            ],
        )
        info.context.rt.wake_jobs()
        return TeamPayload(team=await _team(team_id))

    @strawberry.mutation(
        description="On shift or away. Going away hands not-started work back to the team."
    )
    @payload_errors
    async def set_member_availability(self, info: Info, staff: str, available: bool) -> TeamPayload:
        principal = _operator(info)
        team_id = await teams.set_availability(info.context.rt, staff, available, principal)
        return TeamPayload(team=await _team(team_id))

    @strawberry.mutation(description="Give an order to a member (default: take it yourself).")
    @payload_errors
    async def assign_order(
        self, info: Info, id: strawberry.ID, member: str | None = None
    ) -> WorkPayload:
        principal = _operator(info)
        order_id = row_id(id, "order")
        await assignment.assign_to(info.context.rt, order_id, member or principal.name, principal)
        return WorkPayload(order=await _order(order_id))

    @strawberry.mutation(description="Hand an order back to assignment.")
    @payload_errors
    async def release_order(self, info: Info, id: strawberry.ID) -> WorkPayload:
        principal = _operator(info)
        order_id = row_id(id, "order")
        await assignment.release(info.context.rt, order_id, principal)
        return WorkPayload(order=await _order(order_id))

    @strawberry.mutation(description="Start a task; the first one moves the order to PROCESSING.")
    @payload_errors
    async def start_task(self, info: Info, id: strawberry.ID) -> WorkPayload:
        principal = _operator(info)
        task_id = row_id(id, "task")
        await work.start_task(info.context.rt, task_id, principal)
        return WorkPayload(order=await _order(await _task_order(task_id)))

    @strawberry.mutation(
        description="Finish picking: what was found per line (lines not named were found "
        "in full); a short pick needs shortPick."
    )
    @payload_errors
    async def complete_pick(
        self,
        info: Info,
        id: strawberry.ID,
        lines: list[PickedLineInput] | None = None,
        short_pick: ShortPick | None = None,
    ) -> WorkPayload:
        principal = _operator(info)
        task_id = row_id(id, "task")
        await work.complete_pick(
            info.context.rt,
            task_id,
            {line.line_no: line.picked for line in lines or []},
            short_pick.value if short_pick else None,
            principal,
        )
        return WorkPayload(order=await _order(await _task_order(task_id)))

    @strawberry.mutation(description="Finish packing: the parcels and what each holds.")
    @payload_errors
    async def complete_pack(
        self, info: Info, id: strawberry.ID, parcels: list[ParcelInput]
    ) -> WorkPayload:
        principal = _operator(info)
        task_id = row_id(id, "task")
        await work.complete_pack(
            info.context.rt,
            task_id,
            [
                work.Parcel(
                    p.weight_grams,
                    p.length_mm,
                    p.width_mm,
                    p.height_mm,
                    _quantities(p.lines, f"parcels[{i}].lines"),
                )
                for i, p in enumerate(parcels)
            ],
            principal,
        )
        return WorkPayload(order=await _order(await _task_order(task_id)))

    @strawberry.mutation(
        description="Hand the packed parcels to a carrier, one tracking number per parcel."
    )
    @payload_errors
    async def complete_ship(
        self,
        info: Info,
        id: strawberry.ID,
        carrier: str,
        tracking_numbers: list[str],
        service: str = "",
    ) -> WorkPayload:
        principal = _operator(info)
        task_id = row_id(id, "task")
        await work.complete_ship(
            info.context.rt, task_id, carrier, service, tracking_numbers, principal
        )
        return WorkPayload(order=await _order(await _task_order(task_id)))

    @strawberry.mutation(
        description="Ship more of an order after its ship task: a backorder or another split."
    )
    @payload_errors
    async def ship_order(
        self, info: Info, order_id: strawberry.ID, input: ShipmentInput
    ) -> WorkPayload:
        principal = _operator(info)
        order = row_id(order_id, "order", field="orderId")
        await work.ship_order(
            info.context.rt,
            order,
            _quantities(input.lines, "lines"),
            input.carrier,
            input.service,
            input.tracking_number,
            principal,
        )
        return WorkPayload(order=await _order(order))


def _quantities(lines: list[LineQuantityInput], field: str) -> dict[int, int]:
    """Quantities per line number; a line named twice is an error, not a sum."""
    out: dict[int, int] = {}
    for i, line in enumerate(lines):
        if line.line_no in out:
            raise DomainError.of(
                ErrorCode.DUPLICATE, f"Line {line.line_no} is named twice.", f"{field}[{i}]"
            )
        out[line.line_no] = line.quantity
    return out


@strawberry.type
class FulfilmentSubscription:
    @strawberry.subscription(description="Orders assigned to you, as they are assigned.")
    async def my_new_work(self, info: Info) -> AsyncGenerator[Order, None]:
        principal = require(info, Role.STAFF)
        async with info.context.rt.bus.subscribe() as messages:
            async for message in messages:
                data = message.get("data") or {}
                if (
                    message["type"] == "assigned"
                    and data.get("member") == principal.name
                    and await scope.may_access_order(principal, message["order_id"])
                ):
                    yield await _order(message["order_id"])
