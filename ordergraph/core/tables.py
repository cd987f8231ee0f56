"""The tables of the core. Money is stored as integer minor units beside a currency."""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    BigInt,
    Boolean,
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


class Order(Table, tablename="orders"):
    """An order. Only ``ordergraph.core.transitions.transition_order`` writes ``status``."""

    channel = Varchar(length=32)
    external_id = Varchar(length=128)
    customer = ForeignKey(references=Customer, null=False, on_delete=OnDelete.restrict, index=True)
    type = Varchar(length=32, default="standard")
    priority = Varchar(length=16, default="NORMAL")
    currency = Varchar(length=3)
    subtotal_minor = BigInt()
    total_minor = BigInt()
    status = Varchar(length=32, index=True)
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
    """Input a channel received but could not turn into an order, kept for an operator."""

    channel = Varchar(length=32)
    reference = Varchar(length=200)
    status = Varchar(length=16, default="open", index=True)
    reasons = JSON(default=[])
    payload = Text()
    attempts = Integer(default=1)
    order = ForeignKey(references=Order, null=True, on_delete=OnDelete.restrict)
    received_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class WebhookDelivery(Table, tablename="webhook_deliveries"):
    """Delivery ids already handled, so a redelivered webhook is answered without work."""

    channel = Varchar(length=32)
    delivery_id = Varchar(length=200)
    received_at = Timestamptz(default=TimestamptzNow())


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
)
