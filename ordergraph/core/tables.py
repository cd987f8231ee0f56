"""The tables of the kernel: customers, products, orders and their lines and
timeline, the outbox, tokens, per-status counts and periodic work. Money is stored as
integer minor units beside a currency. Each stage keeps its own tables in its package."""

from __future__ import annotations

from piccolo.columns import JSON, BigInt, Boolean, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from ordergraph.core import db


class Now(TimestamptzNow):
    """The instant a row is written, from ``db.now()`` (which the demo sets back)."""

    def python(self) -> object:
        return db.now()


class Customer(Table, tablename="customers"):
    email = Varchar(length=254, unique=True)
    name = Varchar(length=200)
    credit_limit_minor = BigInt(default=0)
    currency = Varchar(length=3, default="EUR")
    blocked = Boolean(default=False)
    created_at = Timestamptz(default=Now())


class Product(Table, tablename="products"):
    sku = Varchar(length=64, unique=True)
    name = Varchar(length=200)
    list_price_minor = BigInt()
    currency = Varchar(length=3, default="EUR")
    stock_on_hand = Integer(default=0)
    stock_reserved = Integer(default=0)
    active = Boolean(default=True)
    updated_at = Timestamptz(default=Now())
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
    created_at = Timestamptz(default=Now(), index=True)
    updated_at = Timestamptz(default=Now())


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
    at = Timestamptz(default=Now())


class OutboxJob(Table, tablename="outbox"):
    """Work written in the same transaction as a state change and run after commit."""

    name = Varchar(length=100)
    payload = JSON(default={})
    status = Varchar(length=16, default="pending", index=True)
    attempts = Integer(default=0)
    max_attempts = Integer(default=5)
    run_after = Timestamptz(default=Now(), index=True)
    last_error = Text(default="")
    created_at = Timestamptz(default=Now())
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
    created_at = Timestamptz(default=Now())
    # A token past ``expires_at`` or with ``revoked_at`` set no longer authenticates.
    expires_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)


class SchemaMigration(Table, tablename="schema_migrations"):
    name = Varchar(length=200, unique=True)
    applied_at = Timestamptz(default=Now())


class OrderStatusCount(Table, tablename="order_status_counts"):
    """How many orders are in ``status``, one of 16 slots (``orders.id % 16``) of it.

    Written only by the database's triggers on ``orders``, inside the writing
    transaction; the count of a status is the sum of its slots.
    """

    status = Varchar(length=32)
    slot = Integer()
    n = BigInt()


class PeriodicJob(Table, tablename="periodic_jobs"):
    """When a periodic job runs next: claimed by a conditional UPDATE, once per period."""

    name = Varchar(length=200, unique=True)
    next_run_at = Timestamptz(default=Now())
    last_started_at = Timestamptz(null=True, default=None)
    last_finished_at = Timestamptz(null=True, default=None)
    last_status = Varchar(length=16, default="")
    last_error = Text(default="")
