"""The tracking stage's records: each shipment's tracking, its events and ETA history,
alerts, notifications and webhook endpoints."""

from __future__ import annotations

from piccolo.columns import JSON, Date, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from ordergraph.core.tables import Now, Order
from ordergraph.stages.fulfilment.tables import (
    Shipment,
    Team,
)


class ShipmentTracking(Table, tablename="shipment_tracking"):
    """Where a shipment is, as its carrier last said, and when to ask the carrier again."""

    shipment = ForeignKey(references=Shipment, null=False, on_delete=OnDelete.restrict, unique=True)
    order = ForeignKey(references=Order, null=False, on_delete=OnDelete.restrict, index=True)
    status = Varchar(length=32, default="pending")
    reason = Varchar(length=64, null=True, default=None)
    last_event_at = Timestamptz(null=True, default=None)
    delivered_at = Timestamptz(null=True, default=None)
    estimated_delivery = Timestamptz(null=True, default=None)
    estimate_from = Timestamptz(null=True, default=None)
    estimate_to = Timestamptz(null=True, default=None)
    promised_date = Date(null=True, default=None)
    polls = Integer(default=0)
    poll_failures = Integer(default=0)
    last_polled_at = Timestamptz(null=True, default=None)
    next_poll_at = Timestamptz(null=True, default=None, index=True)
    poll_error = Text(default="")
    updated_at = Timestamptz(default=Now())


class TrackingEventRow(Table, tablename="tracking_events"):
    """One carrier scan: the UTC instant with the local offset kept, and a structured place."""

    shipment = ForeignKey(references=Shipment, null=False, on_delete=OnDelete.restrict)
    order = ForeignKey(references=Order, null=False, on_delete=OnDelete.restrict, index=True)
    occurred_at = Timestamptz()
    utc_offset_minutes = Integer(null=True, default=None)
    status = Varchar(length=32)
    reason = Varchar(length=64, null=True, default=None)
    code = Varchar(length=64, default="")
    description = Text(default="")
    city = Varchar(length=128, default="")
    region = Varchar(length=128, default="")
    postal_code = Varchar(length=32, default="")
    country = Varchar(length=2, default="")
    latitude = Varchar(length=16, null=True, default=None)
    longitude = Varchar(length=16, null=True, default=None)
    source = Varchar(length=64, default="")
    dedupe_key = Varchar(length=64)
    received_at = Timestamptz(default=Now())


class EtaHistory(Table, tablename="eta_history"):
    """Every estimate a carrier gave for a shipment, in the order they came."""

    shipment = ForeignKey(references=Shipment, null=False, on_delete=OnDelete.restrict, index=True)
    estimated_delivery = Timestamptz(null=True, default=None)
    estimate_from = Timestamptz(null=True, default=None)
    estimate_to = Timestamptz(null=True, default=None)
    source = Varchar(length=64, default="")
    recorded_at = Timestamptz(default=Now())


class Alert(Table, tablename="alerts"):
    """An exception someone must resolve; ``open_key`` (order and kind) is set while it is
    open, so an order has at most one open alert of each kind."""

    kind = Varchar(length=32)
    severity = Varchar(length=16, default="warning")
    order = ForeignKey(references=Order, null=False, on_delete=OnDelete.restrict, index=True)
    shipment = ForeignKey(references=Shipment, null=True, on_delete=OnDelete.restrict)
    team = ForeignKey(references=Team, null=True, on_delete=OnDelete.restrict)
    owner = Varchar(length=200, null=True, default=None)
    state = Varchar(length=16, default="open")
    open_key = Varchar(length=80, null=True, default=None, unique=True)
    opened_at = Timestamptz(default=Now())
    due_at = Timestamptz(null=True, default=None)
    acknowledged_by = Varchar(length=200, null=True, default=None)
    acknowledged_at = Timestamptz(null=True, default=None)
    resolved_by = Varchar(length=200, null=True, default=None)
    resolved_at = Timestamptz(null=True, default=None)
    resolution = Text(default="")
    detail = JSON(default={})


class Notification(Table, tablename="notifications"):
    """One message about one order event to one recipient by one channel: sent once."""

    order = ForeignKey(references=Order, null=False, on_delete=OnDelete.restrict, index=True)
    event = Integer()
    channel = Varchar(length=32)
    recipient = Varchar(length=254)
    kind = Varchar(length=32, default="")
    outcome = Varchar(length=16, default="pending")
    attempts = Integer(default=0)
    last_error = Text(default="")
    sent_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=Now())


class WebhookEndpoint(Table, tablename="webhook_endpoints"):
    """An integrator's URL for order events, registered through GraphQL, with its secret.

    The secret is kept in the clear (HMAC signing needs it) and never read back through
    the API; a deleted endpoint keeps its row for its delivery log.
    """

    url = Varchar(length=1000)
    event_types = Text(default="*")
    description = Varchar(length=200, default="")
    secret = Varchar(length=100)
    created_by = Varchar(length=200, default="")
    created_at = Timestamptz(default=Now())
    secret_rotated_at = Timestamptz(null=True, default=None)
    deleted_at = Timestamptz(null=True, default=None)
