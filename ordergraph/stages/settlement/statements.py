"""Settlement statements: one per order, numbered without gaps, never changed once issued.

The number comes from ``statement_series``: one row per series (``ST-2026``), raised
by one in the same transaction that stores the statement. PostgreSQL holds the row
lock until commit, SQLite's write transaction is exclusive, so concurrent issuers
queue there; a transaction that fails gives its number back by rolling back. Numbers
are therefore 1, 2, 3... with no gap and no duplicate, as invoicing law asks.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ordergraph.core import db
from ordergraph.core.auth import SYSTEM
from ordergraph.core.errors import DomainError, ErrorCode, is_unique_violation
from ordergraph.core.money import from_minor
from ordergraph.core.orders import OrderView, load_order, parse_order_number, recording
from ordergraph.core.tables import Customer
from ordergraph.stages.settlement.amount import delivered_quantities, final_amount
from ordergraph.stages.settlement.config import SettlementConfig, config_of
from ordergraph.stages.settlement.limits import STATEMENT_NUMBER
from ordergraph.stages.settlement.tables import Statement

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime

ISSUE_JOB = "issue_statement"
# Statuses in which an order has (or is about to get) its statement.
SETTLING = ("COMPLETED", "SETTLED")


@dataclass(frozen=True)
class StatementView:
    id: int
    order_id: int
    number: str
    series: str
    seq: int
    currency: str
    total: Decimal
    snapshot: dict[str, Any]
    issued_at: datetime.datetime
    due_at: datetime.datetime


def statement_view(row: dict[str, Any]) -> StatementView:
    snapshot = row["snapshot"]
    return StatementView(
        id=row["id"],
        order_id=row["order"],
        number=row["number"],
        series=row["series"],
        seq=row["seq"],
        currency=row["currency"],
        total=from_minor(row["total_minor"], row["currency"]),
        snapshot=json.loads(snapshot) if isinstance(snapshot, str) else snapshot,
        issued_at=row["issued_at"],
        due_at=row["due_at"],
    )


async def statement_of(order_id: int) -> StatementView | None:
    row = await Statement.select().where(Statement.order == order_id).first()
    return statement_view(row) if row else None


async def statement_by_number(number: str) -> StatementView | None:
    """The statement numbered ``number``; None also for text no number can be (a NUL,
    more than the column holds), which must not reach the database as a query."""
    wanted = number.strip().upper()
    if STATEMENT_NUMBER.problem(wanted, None) is not None:
        return None
    row = await Statement.select().where(Statement.number == wanted).first()
    return statement_view(row) if row else None


async def allocate_number(series: str) -> int:
    """The next number of ``series``, inside the caller's transaction (which holds it)."""
    rows = await db.raw(
        "INSERT INTO statement_series (series, last_number) VALUES ({}, 1) "
        "ON CONFLICT (series) DO UPDATE SET last_number = statement_series.last_number + 1 "
        "RETURNING last_number",
        series,
    )
    return int(rows[0]["last_number"])


async def _instructions(rt: Runtime, order: OrderView, config: SettlementConfig) -> str:
    told = await rt.plugins.call("payment_instructions", order=order)
    return " ".join(p for p in (config.payment_instructions, *told.values) if p)


async def _snapshot(
    rt: Runtime, order: OrderView, config: SettlementConfig, issued: datetime.datetime
) -> tuple[dict[str, Any], int]:
    amount = await final_amount(rt, order, config, await delivered_quantities(order))
    customer = await Customer.select().where(Customer.id == order.customer_id).first()
    due = issued + datetime.timedelta(days=config.payment_terms_days)
    snapshot = {
        "order": {"id": order.id, "number": order.number, "channel": order.channel,
                  "externalId": order.external_id, "placedAt": order.created_at.isoformat()},
        "seller": {"name": config.seller.name, "address": list(config.seller.address),
                   "vatId": config.seller.vat_id, "email": config.seller.email},
        "customer": {"id": order.customer_id, "name": customer["name"] if customer else "",
                     "email": customer["email"] if customer else "",
                     "address": order.shipping_address},
        **amount.to_snapshot(),
        "issuedAt": issued.isoformat(),
        "dueDate": due.date().isoformat(),
        "paymentInstructions": await _instructions(rt, order, config),
    }  # fmt: skip
    return snapshot, amount.total_minor


async def issue_statement(rt: Runtime, order_id: int) -> StatementView:
    """The order's statement, issued now if it has none. Safe to call twice at once."""
    existing = await statement_of(order_id)
    if existing is not None:
        return existing
    order = await load_order(order_id)
    if order is None:
        raise DomainError.of(ErrorCode.NOT_FOUND, f"There is no order {order_id}.", "id")
    if order.status not in SETTLING:
        raise DomainError.of(
            ErrorCode.OUT_OF_ORDER,
            f"Order {order.number} is {order.status}; a statement is issued once its "
            "delivery is confirmed (COMPLETED).",
            "id",
        )
    config = config_of(rt)
    issued = db.now()
    snapshot, total_minor = await _snapshot(rt, order, config, issued)
    series = f"{config.series_prefix}-{issued.year}"
    try:
        async with recording(rt) as timeline:
            seq = await allocate_number(series)
            number = f"{series}-{seq:06d}"
            snapshot["number"] = number
            inserted = await Statement.insert(
                Statement(
                    order=order.id,
                    series=series,
                    seq=seq,
                    number=number,
                    currency=order.currency,
                    total_minor=total_minor,
                    snapshot=json.dumps(snapshot),
                    issued_at=issued,
                    due_at=issued + datetime.timedelta(days=config.payment_terms_days),
                )
            ).returning(*Statement.all_columns())
            await timeline.record(
                order,
                "statement_issued",
                SYSTEM,
                data={"statement": number, "total": snapshot["total"], "currency": order.currency},
            )
    except Exception as exc:
        # Another issuer stored this order's statement first; its number stands, ours
        # was rolled back with the transaction.
        if not is_unique_violation(exc):
            raise
        found = await statement_of(order_id)
        if found is None:
            raise
        return found
    return statement_view(inserted[0])


async def statement_for_order_number(number: str) -> StatementView:
    """The statement of an order named by its number (``SO-000012`` or ``12``), or by the
    statement's own number; NOT_FOUND when there is none yet."""
    order_id = parse_order_number(number)
    found = await statement_of(order_id) if order_id else await statement_by_number(number)
    if found is None:
        raise DomainError.of(
            ErrorCode.NOT_FOUND, f"There is no statement for {number.strip()} yet.", "order"
        )
    return found
