"""The settlement stage's records: statements and their series, the ledger, delivery
problems, promotions and bank lines. Money is stored as integer minor units beside a
currency."""

from __future__ import annotations

from piccolo.columns import JSON, BigInt, Boolean, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from ordergraph.core.tables import Customer, Now, Order


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
    issued_at = Timestamptz(default=Now())
    due_at = Timestamptz(default=Now())


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
    at = Timestamptz(default=Now())


class DeliveryProblem(Table, tablename="delivery_problems"):
    """A problem the customer reported with a delivery; open ones pause its confirmation."""

    order = ForeignKey(references=Order, null=False, on_delete=OnDelete.restrict, index=True)
    reported_by = Varchar(length=200)
    description = Text(default="")
    opened_at = Timestamptz(default=Now())
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
    created_at = Timestamptz(default=Now())


class PromotionUse(Table, tablename="promotion_uses"):
    """A coupon redeemed for an order (once per order)."""

    promotion = ForeignKey(references=Promotion, null=False, on_delete=OnDelete.restrict)
    order = ForeignKey(references=Order, null=False, on_delete=OnDelete.restrict, index=True)
    customer = ForeignKey(references=Customer, null=False, on_delete=OnDelete.restrict)
    at = Timestamptz(default=Now())


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
    imported_at = Timestamptz(default=Now())
