"""GraphQL for stage 3: teams, assignment, pick/pack/ship tasks, shipments and my work."""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncGenerator
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from ordergraph.core import db, scope
from ordergraph.core.auth import Principal, Role
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.orders import actor_seen_by
from ordergraph.core.tables import Order as OrderRow
from ordergraph.graphql.context import OPERATORS, READERS, Info, page_size, require, row_id
from ordergraph.graphql.types import (
    PAYLOAD_ERRORS,
    Order,
    OrderIdArgument,
    UserError,
    extend_order,
    order_key,
    payload_errors,
    stored_enum,
)
from ordergraph.stages.fulfilment import assignment, labels, teams, work
from ordergraph.stages.fulfilment.assignment import PRIORITY_RANK, explanation_of
from ordergraph.stages.fulfilment.tables import Assignment as AssignmentRow
from ordergraph.stages.fulfilment.tables import Task as TaskRow

MY_WORK_PAGE = 50

AssignmentState = stored_enum(
    "AssignmentState",
    "Where an order's assignment stands.",
    {
        "unassigned": "No team matched yet (no assignment plugin, or no rule matched).",
        "queued": "Waiting in a team's queue for a member with room.",
        "assigned": "A member has it.",
        "done": "Its work is finished: shipped in full, or cancelled.",
    },
)
TaskKind = stored_enum(
    "TaskKind",
    "A step of fulfilling an order, done in this order.",
    {
        "pick": "Take the lines from their bins.",
        "pack": "Put what was picked into parcels.",
        "ship": "Hand the parcels to a carrier.",
    },
)
TaskState = stored_enum(
    "TaskState",
    "Where a task stands.",
    {
        "open": "Not started.",
        "started": "Someone started it (startedBy, startedAt).",
        "done": "Finished (completedBy, completedAt).",
    },
)
LabelState = stored_enum(
    "LabelState",
    "Where buying a shipment's label from its carrier stands.",
    {
        "pending": "Waiting for the job runner to ask the carrier.",
        "requesting": "The carrier is being asked now.",
        "booked": "Bought: the label can be downloaded (url).",
        "failed": "The carrier refused (error); it is asked again.",
        "unknown": "The carrier did not answer in time: whether it booked is unknown; "
        "check with the carrier before asking again.",
    },
)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@strawberry.type(description="A member of a team and their open work.")
class TeamMember:
    staff: str = strawberry.field(description="The member's staff name (their token's name).")
    capacity: int = strawberry.field(description="The most open orders they take at once.")
    order_types: list[str] = strawberry.field(description="Empty: every type.")
    available: bool = strawberry.field(
        description="True when on shift: only members on shift get work."
    )
    open_orders: int = strawberry.field(description="Orders assigned to them and not done.")
    open_by_priority: JSON = strawberry.field(
        description='openOrders per priority, as JSON: {"NORMAL": 2}.'
    )


@strawberry.type(description="A team that fulfils orders (a department).")
class Team:
    id: strawberry.ID = strawberry.field(description="The team's id.")
    name: str = strawberry.field(
        description="Its name, unique; tokens, rules and assignments name it."
    )
    description: str = strawberry.field(description="What it does; empty when not said.")
    last_assigned: str | None = strawberry.field(description="The round-robin pointer.")
    members: list[TeamMember] = strawberry.field(description="Its members.")
    queued: int = strawberry.field(description="Orders waiting for someone in this team.")


@strawberry.type(description="Who fulfils an order, and why (staff).")
class Assignment:
    state: AssignmentState = strawberry.field(description="Where the assignment stands.")
    team: str | None = strawberry.field(description="The team's name; null while unassigned.")
    member: str | None = strawberry.field(
        description="The member's staff name; null while queued or unassigned."
    )
    rule: str = strawberry.field(description="The assignment rule that matched, or manual.")
    assigned_by: str = strawberry.field(
        description="Who assigned it, as role:name (system:ordergraph for the rules)."
    )
    assigned_at: datetime.datetime | None = strawberry.field(
        description="When it was assigned (ISO 8601, UTC); null while unassigned."
    )
    due_at: datetime.datetime | None = strawberry.field(description="When it must ship.")
    explanation: JSON = strawberry.field(
        description="The rule that matched, the candidates with their loads, who was chosen, why."
    )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Assignment:
        return cls(
            state=AssignmentState(row["state"]),
            team=row["team_name"],
            member=row["member_staff"],
            rule=row["rule"],
            assigned_by=row["assigned_by"],
            assigned_at=row["assigned_at"],
            due_at=row["due_at"],
            explanation=explanation_of(row),
        )


@strawberry.type(description="One line of a pick list.")
class PickLine:
    line_no: int = strawberry.field(description="The order line's number.")
    sku: str = strawberry.field(description="The product's SKU.")
    name: str = strawberry.field(description="The product's name.")
    quantity: int = strawberry.field(
        description="Left to pick: ordered, less shipped and cancelled."
    )
    bin_location: str = strawberry.field(
        description="Where it lies in the warehouse; empty when not set."
    )
    picked: int | None = strawberry.field(description="Units found at the pick; null before it.")
    shipped: int = strawberry.field(description="Units shipped.")
    cancelled: int = strawberry.field(description="Units cancelled after a short pick.")
    backordered: int = strawberry.field(description="Units waiting for stock after a short pick.")


@strawberry.type(description="A pick, pack or ship step of an order (staff).")
class Task:
    id: strawberry.ID = strawberry.field(
        description=(
            "The task's id; startTask and completePick, completePack, completeShip take it."
        )
    )
    kind: TaskKind = strawberry.field(description="Which step it is.")
    state: TaskState = strawberry.field(description="Where it stands.")
    assignee: str | None = strawberry.field(
        description=("The member it is for (staff name); null while the order is not assigned.")
    )
    due_at: datetime.datetime | None = strawberry.field(
        description=("When it is due (ISO 8601, UTC), from the order's priority; null without one.")
    )
    started_at: datetime.datetime | None = strawberry.field(
        description="When it was started (ISO 8601, UTC); null before."
    )
    started_by: str | None = strawberry.field(
        description="Who started it, as role:name; null before."
    )
    completed_at: datetime.datetime | None = strawberry.field(
        description="When it was done (ISO 8601, UTC); null before."
    )
    completed_by: str | None = strawberry.field(
        description="Who did it, as role:name; null before."
    )
    result: JSON = strawberry.field(description="What was found, the parcels, the carrier.")
    order_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Task:
        return cls(
            id=strawberry.ID(str(row["id"])),
            kind=TaskKind(row["kind"]),
            state=TaskState(row["state"]),
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


@strawberry.type(description="How much of an order line a shipment carries.")
class ShipmentLine:
    line_no: int = strawberry.field(description="The order line's number.")
    quantity: int = strawberry.field(description="Units.")


@strawberry.type(description="The label bought from the carrier for a shipment.")
class ShipmentLabel:
    state: LabelState = strawberry.field(description="Where buying the label stands.")
    attempts: int = strawberry.field(description="How many times the carrier was asked.")
    error: str = strawberry.field(description="The carrier's last refusal, if any.")
    format: str = strawberry.field(description="PDF, once booked.")
    booked_at: datetime.datetime | None = strawberry.field(
        description="When it was bought (ISO 8601, UTC); null before."
    )
    url: str | None = strawberry.field(
        description="Where staff download the label, with their bearer token, once booked."
    )


@strawberry.type(description="Parcels handed to a carrier: a set of (order line, quantity).")
class Shipment:
    id: strawberry.ID = strawberry.field(
        description="The shipment's id; setPromisedDate and recordTrackingEvents take it."
    )
    carrier: str = strawberry.field(
        description="The carrier plugin's name (manual, fedex, ups, usps, dhl_express...)."
    )
    service: str = strawberry.field(description="The carrier's service; empty for its default.")
    tracking_number: str = strawberry.field(
        description="The carrier's tracking number (the first parcel's when several)."
    )
    parcels: JSON = strawberry.field(
        description=(
            "The parcels as packed: weight in grams, dimensions in millimetres, "
            "tracking number and lines, as JSON."
        )
    )
    created_by: str = strawberry.field(
        description="Who shipped it, as role:name (customers see the role only)."
    )
    created_at: datetime.datetime = strawberry.field(
        description="When it was shipped (ISO 8601, UTC)."
    )
    lines: list[ShipmentLine] = strawberry.field(description="What it carries.")
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
            state=LabelState(row["state"]),
            attempts=row["attempts"],
            error=row["last_error"],
            format=row["label_format"],
            booked_at=row["booked_at"],
            url=labels.label_path(row["shipment"]) if booked else None,
        )


@strawberry.type(description="An order assigned to the caller, with its next step.")
class WorkItem:
    order: Order = strawberry.field(description="The order.")
    due_at: datetime.datetime | None = strawberry.field(
        description="When it must ship (ISO 8601, UTC); null without a due time."
    )
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


@strawberry.input(description="A member of a team to create or update.")
class TeamMemberInput:
    staff: str = strawberry.field(description="The name of the member's staff token.")
    capacity: int = strawberry.field(
        default=10, description="The most open orders they take at once (1 to 1,000)."
    )
    order_types: list[str] = strawberry.field(
        default_factory=list, description="The order types they take; empty: every type."
    )
    available: bool = strawberry.field(default=True, description="True when on shift.")


@strawberry.input(
    description="A team to create or update, found by name; members not listed are kept."
)
class TeamInput:
    name: str = strawberry.field(description="The team's name, at most 64 characters.")
    description: str = strawberry.field(default="", description="What it does.")
    members: list[TeamMemberInput] = strawberry.field(
        default_factory=list, description="Members to add or update."
    )


@strawberry.input(description="What was found of one line at the pick.")
class PickedLineInput:
    line_no: int = strawberry.field(description="The order line's number.")
    picked: int = strawberry.field(description="Units found, 0 to what is left to pick.")


@strawberry.enum(description="What to do with the units a pick did not find.")
class ShortPick(Enum):
    CANCEL_REST = strawberry.enum_value(
        "CANCEL_REST", description="Cancel them: the order ships without them."
    )
    BACKORDER = strawberry.enum_value(
        "BACKORDER", description="Keep them on order: they ship later, with shipOrder."
    )


@strawberry.input(description="Units of one order line.")
class LineQuantityInput:
    line_no: int = strawberry.field(
        description=(
            "The order line's number (NOT_FOUND when the order has none; DUPLICATE "
            "when named twice)."
        )
    )
    quantity: int = strawberry.field(
        description="Units, from 1 (QUANTITY_EXCEEDED beyond what is open)."
    )


@strawberry.input(description="A packed parcel.")
class ParcelInput:
    weight_grams: int = strawberry.field(description="Its weight in grams, from 1.")
    length_mm: int = strawberry.field(description="Its length in millimetres, from 1.")
    width_mm: int = strawberry.field(description="Its width in millimetres, from 1.")
    height_mm: int = strawberry.field(description="Its height in millimetres, from 1.")
    lines: list[LineQuantityInput] = strawberry.field(description="What it holds.")


@strawberry.input(description="A shipment after the ship task: a backorder or another split.")
class ShipmentInput:
    lines: list[LineQuantityInput] = strawberry.field(description="What it carries.")
    carrier: str = strawberry.field(description="A carrier a plugin provides (UNKNOWN_CARRIER).")
    service: str = strawberry.field(
        default="", description="The carrier's service; empty for its default."
    )
    tracking_number: str = strawberry.field(
        default="", description="The carrier's tracking number, at most 128 characters."
    )


@strawberry.type(description="The answer to a change of a team.")
class TeamPayload:
    team: Team | None = strawberry.field(
        default=None, description="The team after the change; null when errors is not empty."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description=PAYLOAD_ERRORS,
    )


@strawberry.type(description="The answer to a step of the work on an order.")
class WorkPayload:
    """The order as it is after the step (its status derived from its work)."""

    order: Order | None = strawberry.field(
        default=None, description="The order after the step; null when errors is not empty."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description=PAYLOAD_ERRORS,
    )


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
    async def my_work(
        self,
        info: Info,
        first: Annotated[
            int | None,
            strawberry.argument(
                description="How many orders: 1 to 100 (default 50; OUT_OF_RANGE otherwise)."
            ),
        ] = MY_WORK_PAGE,
    ) -> list[WorkItem]:
        principal = require(info, Role.STAFF)
        size = page_size(first, default=MY_WORK_PAGE)
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
    async def upsert_team(
        self,
        info: Info,
        input: Annotated[TeamInput, strawberry.argument(description="The team, found by name.")],
    ) -> TeamPayload:
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
    async def set_member_availability(
        self,
        info: Info,
        staff: Annotated[str, strawberry.argument(description="The member's staff name.")],
        available: Annotated[bool, strawberry.argument(description="True: on shift; false: away.")],
    ) -> TeamPayload:
        principal = _operator(info)
        team_id = await teams.set_availability(info.context.rt, staff, available, principal)
        return TeamPayload(team=await _team(team_id))

    @strawberry.mutation(description="Give an order to a member (default: take it yourself).")
    @payload_errors
    async def assign_order(
        self,
        info: Info,
        id: OrderIdArgument,
        member: Annotated[
            str | None,
            strawberry.argument(
                description=(
                    "The member's staff name; yourself when null (OTHER_TEAM, "
                    "AT_CAPACITY, MEMBER_AWAY, WRONG_ORDER_TYPE)."
                )
            ),
        ] = None,
    ) -> WorkPayload:
        principal = _operator(info)
        order_id = order_key(id)
        await assignment.assign_to(info.context.rt, order_id, member or principal.name, principal)
        return WorkPayload(order=await _order(order_id))

    @strawberry.mutation(description="Hand an order back to assignment.")
    @payload_errors
    async def release_order(
        self,
        info: Info,
        id: OrderIdArgument,
    ) -> WorkPayload:
        principal = _operator(info)
        order_id = order_key(id)
        await assignment.release(info.context.rt, order_id, principal)
        return WorkPayload(order=await _order(order_id))

    @strawberry.mutation(description="Start a task; the first one moves the order to PROCESSING.")
    @payload_errors
    async def start_task(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID,
            strawberry.argument(
                description=(
                    "The task's id (Task.id); OUT_OF_ORDER before the task before it is"
                    " done, ALREADY_DONE when done."
                )
            ),
        ],
    ) -> WorkPayload:
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
        id: Annotated[
            strawberry.ID, strawberry.argument(description="The pick task's id (Task.id).")
        ],
        lines: Annotated[
            list[PickedLineInput] | None,
            strawberry.argument(
                description=(
                    "What was found of the lines found short; lines not named were found in full."
                )
            ),
        ] = None,
        short_pick: Annotated[
            ShortPick | None,
            strawberry.argument(
                description=(
                    "What to do with what was not found; required when a line was found short."
                )
            ),
        ] = None,
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
        self,
        info: Info,
        id: Annotated[
            strawberry.ID, strawberry.argument(description="The pack task's id (Task.id).")
        ],
        parcels: Annotated[
            list[ParcelInput],
            strawberry.argument(
                description=(
                    "The parcels and what each holds (QUANTITY_EXCEEDED beyond what was picked)."
                )
            ),
        ],
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
        id: Annotated[
            strawberry.ID, strawberry.argument(description="The ship task's id (Task.id).")
        ],
        carrier: Annotated[
            str,
            strawberry.argument(
                description=(
                    "A carrier a plugin provides, such as manual or fedex (UNKNOWN_CARRIER)."
                )
            ),
        ],
        tracking_numbers: Annotated[
            list[str],
            strawberry.argument(
                description=(
                    "One per parcel, in the order they were packed; empty when the "
                    "carrier plugin buys labels."
                )
            ),
        ],
        service: Annotated[
            str,
            strawberry.argument(
                description="The carrier's service, such as express; empty for its default."
            ),
        ] = "",
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
        self,
        info: Info,
        order_id: OrderIdArgument,
        input: Annotated[
            ShipmentInput,
            strawberry.argument(description="The lines, quantities and carrier of the shipment."),
        ],
    ) -> WorkPayload:
        principal = _operator(info)
        order = order_key(order_id, "orderId")
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
