"""The tables of the core. Money is stored as integer minor units beside a currency."""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    BigInt,
    Boolean,
    Bytea,
    Date,
    ForeignKey,
    Integer,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class Customer(Table, tablename="customers"):
    email = Varchar(length=254, unique=True)
    name = Varchar(length=200)
    credit_limit_minor = BigInt(default=0)
    currency = Varchar(length=3, default="EUR")
    blocked = Boolean(default=False)
    created_at = Timestamptz(default=TimestamptzNow())


class Product(Table, tablename="products"):
    sku = Varchar(length=64, unique=True)
    name = Varchar(length=200)
    list_price_minor = BigInt()
    currency = Varchar(length=3, default="EUR")
    stock_on_hand = Integer(default=0)
    stock_reserved = Integer(default=0)
    active = Boolean(default=True)
    updated_at = Timestamptz(default=TimestamptzNow())
    # Where pickers find it in the warehouse (stage 3's pick lists).
    bin_location = Varchar(length=32, default="")


class Order(Table, tablename="orders"):
    """An order. Only ``ordergraph.core.transitions.transition_order`` writes ``status``.

    Its list indexes span several columns or an expression ((status, id), (customer, id),
    (channel, id), the review queue's rank, trigrams) and are declared only in migration
    m0004, as are the triggers that keep ``OrderStatusCount``.
    """

    channel = Varchar(length=32)
    external_id = Varchar(length=128)
    customer = ForeignKey(references=Customer, null=False, on_delete=OnDelete.restrict)
    type = Varchar(length=32, default="standard")
    priority = Varchar(length=16, default="NORMAL")
    currency = Varchar(length=3)
    subtotal_minor = BigInt()
    total_minor = BigInt()
    status = Varchar(length=32)
    version = Integer(default=1)
    shipping_address = JSON(default={})
    note = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow(), index=True)
    updated_at = Timestamptz(default=TimestamptzNow())


class OrderLine(Table, tablename="order_lines"):
    order = ForeignKey(references=Order, null=False, on_delete=OnDelete.restrict, index=True)
    line_no = Integer()
    sku = Varchar(length=64)
    name = Varchar(length=200)
    quantity = Integer()
    unit_price_minor = BigInt()
    total_minor = BigInt()


class OrderEvent(Table, tablename="order_events"):
    """The append-only timeline of an order."""

    order = ForeignKey(references=Order, null=False, on_delete=OnDelete.restrict, index=True)
    type = Varchar(length=64)
    from_status = Varchar(length=32, null=True, default=None)
    to_status = Varchar(length=32, null=True, default=None)
    actor = Varchar(length=200)
    data = JSON(default={})
    at = Timestamptz(default=TimestamptzNow())


class OutboxJob(Table, tablename="outbox"):
    """Work written in the same transaction as a state change and run after commit."""

    name = Varchar(length=100)
    payload = JSON(default={})
    status = Varchar(length=16, default="pending", index=True)
    attempts = Integer(default=0)
    max_attempts = Integer(default=5)
    run_after = Timestamptz(default=TimestamptzNow(), index=True)
    last_error = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())
    finished_at = Timestamptz(null=True, default=None)
    # The runner that holds a running job (renews its lease, records its outcome).
    claimed_by = Varchar(length=64, null=True, default=None)


class ApiToken(Table, tablename="api_tokens"):
    """A bearer token; only its SHA-256 is stored."""

    name = Varchar(length=200)
    token_hash = Varchar(length=64, unique=True)
    role = Varchar(length=16)
    customer = ForeignKey(references=Customer, null=True, on_delete=OnDelete.restrict)
    team = Varchar(length=64, null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class SchemaMigration(Table, tablename="schema_migrations"):
    name = Varchar(length=200, unique=True)
    applied_at = Timestamptz(default=TimestamptzNow())


class ReviewFinding(Table, tablename="review_findings"):
    """One review rule's verdict on one review round of an order."""

    order = ForeignKey(references=Order, null=False, on_delete=OnDelete.restrict, index=True)
    round = Integer()
    rule = Varchar(length=100)
    outcome = Varchar(length=8)
    code = Varchar(length=64)
    message = Text()
    customer_message = Text()
    data = JSON(default={})
    at = Timestamptz(default=TimestamptzNow())


class ImportError_(Table, tablename="import_errors"):
    """Input a channel received but could not turn into an order, kept for an operator.

    Listed through its (status, id) and (channel, id) indexes, declared in migration m0004.
    """

    channel = Varchar(length=32)
    reference = Varchar(length=200)
    status = Varchar(length=16, default="open")
    reasons = JSON(default=[])
    payload = Text()
    attempts = Integer(default=1)
    order = ForeignKey(references=Order, null=True, on_delete=OnDelete.restrict)
    received_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class OrderStatusCount(Table, tablename="order_status_counts"):
    """How many orders are in ``status``, one of 16 slots (``orders.id % 16``) of it.

    Written only by the database's triggers on ``orders``, inside the writing
    transaction; the count of a status is the sum of its slots.
    """

    status = Varchar(length=32)
    slot = Integer()
    n = BigInt()


class WebhookDelivery(Table, tablename="webhook_deliveries"):
    """Deliveries already handled (id and body), so a redelivery is answered without work."""

    channel = Varchar(length=32)
    delivery_id = Varchar(length=200)
    body_sha256 = Varchar(length=64, default="")
    received_at = Timestamptz(default=TimestamptzNow())


# -- Stage 3: processing (ordergraph.stages.fulfilment) ---------------------------------------


class Team(Table, tablename="teams"):
    """A department that fulfils orders; ``last_assigned`` is its round-robin pointer."""

    name = Varchar(length=64, unique=True)
    description = Text(default="")
    last_assigned = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class TeamMember(Table, tablename="team_members"):
    """A staff principal (by token name) in a team: how much work they hold, what, and when."""

    team = ForeignKey(references=Team, null=False, on_delete=OnDelete.restrict, index=True)
    staff = Varchar(length=200, unique=True)
    capacity = Integer(default=10)
    order_types = JSON(default=[])
    available = Boolean(default=True)
    updated_at = Timestamptz(default=TimestamptzNow())


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
    created_at = Timestamptz(default=TimestamptzNow())


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
    created_at = Timestamptz(default=TimestamptzNow())


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


# -- Stage 5: settlement (ordergraph.stages.settlement) ---------------------------------


class StatementSeries(Table, tablename="statement_series"):
    """The last number given in a series (``ST-2026``); raised in the statement's transaction."""

    series = Varchar(length=32, unique=True)
    last_number = Integer(default=0)


class Statement(Table, tablename="statements"):
    """An order's settlement statement: a gap-free number and an immutable snapshot."""

    order = ForeignKey(references=Order, null=False, on_delete=OnDelete.restrict, unique=True)
    series = Varchar(length=32)
    seq = Integer()
    number = Varchar(length=40, unique=True)
    currency = Varchar(length=3)
    total_minor = BigInt()
    snapshot = JSON(default={})
    issued_at = Timestamptz(default=TimestamptzNow())
    due_at = Timestamptz(default=TimestamptzNow())


class LedgerEntry(Table, tablename="ledger_entries"):
    """One payment movement on a statement; append-only, one per idempotency key."""

    statement = ForeignKey(
        references=Statement, null=False, on_delete=OnDelete.restrict, index=True
    )
    kind = Varchar(length=16)
    amount_minor = BigInt()
    currency = Varchar(length=3)
    method = Varchar(length=32, default="")
    reference = Varchar(length=200, default="")
    idempotency_key = Varchar(length=255, unique=True)
    fingerprint = Varchar(length=64)
    actor = Varchar(length=200, default="")
    data = JSON(default={})
    at = Timestamptz(default=TimestamptzNow())


class DeliveryProblem(Table, tablename="delivery_problems"):
    """A problem the customer reported with a delivery; open ones pause its confirmation."""

    order = ForeignKey(references=Order, null=False, on_delete=OnDelete.restrict, index=True)
    reported_by = Varchar(length=200)
    description = Text(default="")
    opened_at = Timestamptz(default=TimestamptzNow())
    resolved_at = Timestamptz(null=True, default=None)
    resolved_by = Varchar(length=200, null=True, default=None)
    resolution = Text(default="")


class Promotion(Table, tablename="promotions"):
    """A promotion admins manage: a kind (a plugin) with typed arguments, a schedule, and
    for coupons a code with usage limits; ``uses`` counts redemptions."""

    name = Varchar(length=200)
    kind = Varchar(length=64)
    arguments = JSON(default={})
    priority = Integer(default=0)
    combinable = Boolean(default=True)
    starts_at = Timestamptz(null=True, default=None)
    ends_at = Timestamptz(null=True, default=None)
    retired_at = Timestamptz(null=True, default=None)
    coupon_code = Varchar(length=64, unique=True, null=True, default=None)
    usage_limit = Integer(null=True, default=None)
    per_customer_limit = Integer(null=True, default=None)
    uses = Integer(default=0)
    created_by = Varchar(length=200, default="")
    created_at = Timestamptz(default=TimestamptzNow())


class PromotionUse(Table, tablename="promotion_uses"):
    """A coupon redeemed for an order (once per order)."""

    promotion = ForeignKey(references=Promotion, null=False, on_delete=OnDelete.restrict)
    order = ForeignKey(references=Order, null=False, on_delete=OnDelete.restrict, index=True)
    customer = ForeignKey(references=Customer, null=False, on_delete=OnDelete.restrict)
    at = Timestamptz(default=TimestamptzNow())


class BankLine(Table, tablename="bank_lines"):
    """A credit from an imported bank statement: matched to a statement, or kept
    ``unmatched`` for an operator. ``line_key`` makes importing a file twice harmless."""

    line_key = Varchar(length=200, unique=True)
    source = Varchar(length=16)
    booked_on = Varchar(length=10)
    amount_minor = BigInt()
    currency = Varchar(length=3)
    text = Text(default="")
    counterparty = Varchar(length=200, default="")
    state = Varchar(length=16, default="unmatched", index=True)
    statement = ForeignKey(references=Statement, null=True, on_delete=OnDelete.restrict)
    note = Text(default="")
    imported_at = Timestamptz(default=TimestamptzNow())


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
    updated_at = Timestamptz(default=TimestamptzNow())


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
    received_at = Timestamptz(default=TimestamptzNow())


class EtaHistory(Table, tablename="eta_history"):
    """Every estimate a carrier gave for a shipment, in the order they came."""

    shipment = ForeignKey(references=Shipment, null=False, on_delete=OnDelete.restrict, index=True)
    estimated_delivery = Timestamptz(null=True, default=None)
    estimate_from = Timestamptz(null=True, default=None)
    estimate_to = Timestamptz(null=True, default=None)
    source = Varchar(length=64, default="")
    recorded_at = Timestamptz(default=TimestamptzNow())


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
    opened_at = Timestamptz(default=TimestamptzNow())
    due_at = Timestamptz(null=True, default=None)
    acknowledged_by = Varchar(length=200, null=True, default=None)
    acknowledged_at = Timestamptz(null=True, default=None)
    resolved_by = Varchar(length=200, null=True, default=None)
    resolved_at = Timestamptz(null=True, default=None)
    resolution = Text(default="")
    detail = JSON(default={})


class PeriodicJob(Table, tablename="periodic_jobs"):
    """When a periodic job runs next: claimed by a conditional UPDATE, once per period."""

    name = Varchar(length=200, unique=True)
    next_run_at = Timestamptz(default=TimestamptzNow())
    last_started_at = Timestamptz(null=True, default=None)
    last_finished_at = Timestamptz(null=True, default=None)
    last_status = Varchar(length=16, default="")
    last_error = Text(default="")


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
    created_at = Timestamptz(default=TimestamptzNow())


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
    created_at = Timestamptz(default=TimestamptzNow())
    secret_rotated_at = Timestamptz(null=True, default=None)
    deleted_at = Timestamptz(null=True, default=None)


ALL_TABLES: tuple[type[Table], ...] = (
    Customer,
    Product,
    Order,
    OrderLine,
    OrderEvent,
    OutboxJob,
    ApiToken,
    SchemaMigration,
    ReviewFinding,
    ImportError_,
    WebhookDelivery,
    Team,
    TeamMember,
    Assignment,
    FulfilmentLine,
    Task,
    Shipment,
    ShipmentBooking,
    ShipmentLine,
    OrderStatusCount,
    StatementSeries,
    Statement,
    LedgerEntry,
    DeliveryProblem,
    Promotion,
    PromotionUse,
    BankLine,
    ShipmentTracking,
    TrackingEventRow,
    EtaHistory,
    Alert,
    PeriodicJob,
    Notification,
    WebhookEndpoint,
)
