"""The processing stage's records: teams and members, assignments, tasks, shipments
and their labels."""

from __future__ import annotations

from piccolo.columns import JSON, Boolean, Bytea, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from ordergraph.core.tables import Now, Order


class Team(Table, tablename="teams"):
    """A department that fulfils orders; ``last_assigned`` is its round-robin pointer."""

    name = Varchar(length=64, unique=True)
    description = Text(default="")
    last_assigned = Integer(null=True, default=None)
    created_at = Timestamptz(default=Now())


class TeamMember(Table, tablename="team_members"):
    """A staff principal (by token name) in a team: how much work they hold, what, and when."""

    team = ForeignKey(references=Team, null=False, on_delete=OnDelete.restrict, index=True)
    staff = Varchar(length=200, unique=True)
    capacity = Integer(default=10)
    order_types = JSON(default=[])
    available = Boolean(default=True)
    updated_at = Timestamptz(default=Now())


class Assignment(Table, tablename="assignments"):
    """Who fulfils an order: ``state`` is unassigned, queued, assigned or done."""

    order = ForeignKey(references=Order, null=False, on_delete=OnDelete.restrict, unique=True)
    team = ForeignKey(references=Team, null=True, on_delete=OnDelete.restrict, index=True)
    member = ForeignKey(references=TeamMember, null=True, on_delete=OnDelete.restrict, index=True)
    state = Varchar(length=16, index=True)
    rule = Varchar(length=200, default="")
    assigned_by = Varchar(length=200, default="")
    assigned_at = Timestamptz(null=True, default=None)
    due_at = Timestamptz(null=True, default=None)
    explanation = JSON(default={})
    created_at = Timestamptz(default=Now())


class FulfilmentLine(Table, tablename="fulfilment_lines"):
    """How much of one order line was picked, shipped, cancelled or is on backorder."""

    order = ForeignKey(references=Order, null=False, on_delete=OnDelete.restrict, index=True)
    line_no = Integer()
    sku = Varchar(length=64)
    quantity = Integer()
    picked = Integer(null=True, default=None)
    shipped = Integer(default=0)
    cancelled = Integer(default=0)
    backordered = Integer(default=0)


class Task(Table, tablename="tasks"):
    """One step of an order's work (pick, pack, ship): who did it and when."""

    order = ForeignKey(references=Order, null=False, on_delete=OnDelete.restrict, index=True)
    kind = Varchar(length=8)
    position = Integer()
    state = Varchar(length=16, default="open")
    assignee = Varchar(length=200, null=True, default=None)
    due_at = Timestamptz(null=True, default=None)
    started_at = Timestamptz(null=True, default=None)
    started_by = Varchar(length=200, null=True, default=None)
    completed_at = Timestamptz(null=True, default=None)
    completed_by = Varchar(length=200, null=True, default=None)
    result = JSON(default={})


class Shipment(Table, tablename="shipments"):
    """A set of (order line, quantity) handed to a carrier, in parcels."""

    order = ForeignKey(references=Order, null=False, on_delete=OnDelete.restrict, index=True)
    carrier = Varchar(length=64)
    service = Varchar(length=64, default="")
    tracking_number = Varchar(length=128, default="")
    parcels = JSON(default=[])
    created_by = Varchar(length=200)
    created_at = Timestamptz(default=Now())


class ShipmentBooking(Table, tablename="shipment_bookings"):
    """Buying a shipment's label from its carrier. ``state`` makes the request go out at
    most once at a time and never again once booked: pending, requesting, failed (the
    carrier refused; asked again), booked, or unknown (no answer in time: a person
    checks with the carrier). The label's bytes live here, apart from the shipment row
    that every order read loads."""

    shipment = ForeignKey(references=Shipment, null=False, on_delete=OnDelete.restrict, unique=True)
    order = ForeignKey(references=Order, null=False, on_delete=OnDelete.restrict, index=True)
    carrier = Varchar(length=64)
    state = Varchar(length=16, default="pending")
    attempts = Integer(default=0)
    last_error = Text(default="")
    tracking_number = Varchar(length=128, default="")
    label = Bytea(null=True, default=None)
    label_format = Varchar(length=16, default="")
    requested_at = Timestamptz(null=True, default=None)
    booked_at = Timestamptz(null=True, default=None)


class ShipmentLine(Table, tablename="shipment_lines"):
    shipment = ForeignKey(references=Shipment, null=False, on_delete=OnDelete.restrict, index=True)
    order = ForeignKey(references=Order, null=False, on_delete=OnDelete.restrict, index=True)
    line_no = Integer()
    quantity = Integer()
