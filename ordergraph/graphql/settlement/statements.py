"""GraphQL for stage 5: delivery confirmation and problems, statements, the payment ledger."""

from __future__ import annotations

import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import strawberry
from strawberry.scalars import JSON

from ordergraph.core import scope
from ordergraph.core.auth import Principal
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.orders import load_order
from ordergraph.core.tables import Order as OrderRow
from ordergraph.graphql.context import OPERATORS, READERS, Info, require, row_id
from ordergraph.graphql.types import Order, UserError, extend_order, payload_errors
from ordergraph.stages.settlement import config_of, confirmation, payments, statements
from ordergraph.stages.settlement.amount import expected_amount
from ordergraph.stages.settlement.statements import StatementView


@strawberry.type
class StatementLine:
    kind: str = strawberry.field(description="item or shipping.")
    line_no: int = strawberry.field(description="The order line; 0 for shipping.")
    sku: str
    name: str
    quantity: int = strawberry.field(description="Delivered quantity.")
    unit_price: Decimal
    amount: Decimal = strawberry.field(description="Quantity x unit price.")
    adjustments: Decimal = strawberry.field(description="This line's share of adjustments.")
    tax_rate: Decimal = strawberry.field(description="Percent.")
    net: Decimal
    tax: Decimal
    total: Decimal


@strawberry.type
class StatementAdjustment:
    code: str
    label: str
    source: str = strawberry.field(description="The plugin that proposed it.")
    reference: str = strawberry.field(description="Such as the promotion's id.")
    line_no: int | None = strawberry.field(description="None: the whole order.")
    target: str = strawberry.field(description="lines or shipping.")
    amount: Decimal = strawberry.field(description="As applied (negative lowers the price).")
    capped: bool = strawberry.field(description="Larger than what it applied to, so capped.")


@strawberry.type
class Balance:
    total: Decimal
    paid: Decimal = strawberry.field(description="Captured, collected and matched, less refunds.")
    outstanding: Decimal
    overpaid: Decimal = strawberry.field(description="Paid beyond the total.")
    refund_pending: Decimal = strawberry.field(
        description="Refunds a payment provider accepted and has not yet paid back."
    )
    refundable: Decimal = strawberry.field(
        description="The overpayment no refund covers yet (refundOverpayment's amount)."
    )
    state: str = strawberry.field(description="unpaid, partially_paid, paid or overpaid.")


@strawberry.type
class LedgerEntry:
    id: strawberry.ID
    kind: str = strawberry.field(
        description="authorized, captured, failed, refunded, collected, matched, "
        "refund_pending or refund_failed."
    )
    amount: Decimal
    currency: str
    method: str
    reference: str
    idempotency_key: str
    actor: str
    data: JSON
    at: datetime.datetime

    @classmethod
    def from_view(cls, entry: payments.EntryView) -> LedgerEntry:
        return cls(
            id=strawberry.ID(str(entry.id)),
            kind=entry.kind,
            amount=entry.amount,
            currency=entry.currency,
            method=entry.method,
            reference=entry.reference,
            idempotency_key=entry.idempotency_key,
            actor=entry.actor,
            data=entry.data,
            at=entry.at,
        )


@strawberry.type
class Statement:
    id: strawberry.ID
    number: str
    currency: str
    total: Decimal
    subtotal: Decimal
    adjustment_total: Decimal
    net: Decimal
    tax: Decimal
    issued_at: datetime.datetime
    due_date: datetime.date
    lines: list[StatementLine]
    adjustments: list[StatementAdjustment]
    seller: JSON
    customer: JSON
    payment_instructions: str
    notes: list[str]
    snapshot: JSON = strawberry.field(description="The stored document, exactly as issued.")
    statement_id: strawberry.Private[int]
    view: strawberry.Private[StatementView]

    @classmethod
    def from_view(cls, view: StatementView) -> Statement:
        s = view.snapshot
        return cls(
            id=strawberry.ID(str(view.id)),
            number=view.number,
            currency=view.currency,
            total=view.total,
            subtotal=Decimal(s["subtotal"]),
            adjustment_total=Decimal(s["adjustmentTotal"]),
            net=Decimal(s["net"]),
            tax=Decimal(s["tax"]),
            issued_at=view.issued_at,
            due_date=datetime.date.fromisoformat(s["dueDate"]),
            lines=_lines(s),
            adjustments=_adjustments(s),
            seller=s["seller"],
            customer=s["customer"],
            payment_instructions=s["paymentInstructions"],
            notes=s["notes"],
            snapshot=s,
            statement_id=view.id,
            view=view,
        )

    @strawberry.field(description="Where to download it as a PDF (with the same bearer token).")
    def pdf_url(self) -> str:
        return f"/statements/{self.number}.pdf"

    @strawberry.field(description="Paid and outstanding, derived from the ledger.")
    async def balance(self, info: Info) -> Balance:
        require(info, *READERS)
        return _balance(await payments.balance_of(self.view))

    @strawberry.field(description="Every payment movement, oldest first (staff).")
    async def entries(self, info: Info) -> list[LedgerEntry]:
        require(info, *OPERATORS)
        return [LedgerEntry.from_view(e) for e in await payments.entries_of(self.statement_id)]


def _lines(snapshot: dict[str, Any]) -> list[StatementLine]:
    return [
        StatementLine(
            kind=li["kind"],
            line_no=li["lineNo"],
            sku=li["sku"],
            name=li["name"],
            quantity=li["quantity"],
            unit_price=Decimal(li["unitPrice"]),
            amount=Decimal(li["amount"]),
            adjustments=Decimal(li["adjustments"]),
            tax_rate=Decimal(li["taxRate"]),
            net=Decimal(li["net"]),
            tax=Decimal(li["tax"]),
            total=Decimal(li["total"]),
        )
        for li in snapshot["lines"]
    ]


def _adjustments(snapshot: dict[str, Any]) -> list[StatementAdjustment]:
    return [
        StatementAdjustment(
            code=a["code"],
            label=a["label"],
            source=a["source"],
            reference=a["reference"],
            line_no=a["lineNo"],
            target=a["target"],
            amount=Decimal(a["amount"]),
            capped=bool(a.get("capped")),
        )
        for a in snapshot["adjustments"]
    ]


@strawberry.type
class PricePreview:
    """What the order comes to if it is delivered in full, with today's promotions."""

    currency: str
    subtotal: Decimal
    adjustment_total: Decimal
    net: Decimal
    tax: Decimal
    total: Decimal
    lines: list[StatementLine]
    adjustments: list[StatementAdjustment]
    notes: list[str]


async def order_price_preview(root: Order, info: Info) -> PricePreview:
    root._caller(info, *READERS)
    rt = info.context.rt
    view = await load_order(root.order_id)
    assert view is not None
    s = (await expected_amount(rt, view, config_of(rt))).to_snapshot()
    return PricePreview(
        currency=s["currency"],
        subtotal=Decimal(s["subtotal"]),
        adjustment_total=Decimal(s["adjustmentTotal"]),
        net=Decimal(s["net"]),
        tax=Decimal(s["tax"]),
        total=Decimal(s["total"]),
        lines=_lines(s),
        adjustments=_adjustments(s),
        notes=s["notes"],
    )


def _balance(balance: payments.Balance) -> Balance:
    return Balance(
        total=balance.total,
        paid=balance.paid,
        outstanding=balance.outstanding,
        overpaid=balance.overpaid,
        refund_pending=balance.refund_pending,
        refundable=balance.refundable,
        state=balance.state,
    )


@strawberry.type
class DeliveryProblem:
    id: strawberry.ID
    reported_by: str
    description: str
    opened_at: datetime.datetime
    resolved_at: datetime.datetime | None
    resolved_by: str | None
    resolution: str

    @classmethod
    def from_view(cls, p: confirmation.ProblemView) -> DeliveryProblem:
        return cls(
            id=strawberry.ID(str(p.id)),
            reported_by=p.reported_by,
            description=p.description,
            opened_at=p.opened_at,
            resolved_at=p.resolved_at,
            resolved_by=p.resolved_by,
            resolution=p.resolution,
        )


async def order_statement(root: Order, info: Info) -> Statement | None:
    root._caller(info, *READERS)
    found = await statements.statement_of(root.order_id)
    return Statement.from_view(found) if found else None


@extend_order
@strawberry.type
class OrderSettlement:
    """What stage 5 adds to ``Order``."""

    statement: Statement | None = strawberry.field(
        resolver=order_statement,
        description="Its settlement statement, once delivery is confirmed.",
    )
    price_preview: PricePreview = strawberry.field(
        resolver=order_price_preview,
        description="The expected price: the order delivered in full, with its promotions.",
    )


@strawberry.enum
class PaymentKind(Enum):
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    FAILED = "failed"
    REFUNDED = "refunded"
    COLLECTED = "collected"
    MATCHED = "matched"


@strawberry.input
class RecordPaymentInput:
    statement_number: str
    kind: PaymentKind
    amount: Decimal
    method: str = strawberry.field(description="bank_transfer, cash_on_delivery, stripe...")
    idempotency_key: str = strawberry.field(
        description="One entry per key: the same key again returns it; different values fail."
    )
    reference: str = ""


@strawberry.type
class SettlementOrderPayload:
    order: Order | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeliveryProblemPayload:
    problem: DeliveryProblem | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class PaymentPayload:
    entry: LedgerEntry | None = None
    created: bool = strawberry.field(default=False, description="False: the key was seen before.")
    statement: Statement | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


async def _order(order_id: int) -> Order:
    row = await OrderRow.select().where(OrderRow.id == order_id).first()
    return Order.from_row(row)


async def _statement(number: str, principal: Principal) -> StatementView:
    """The statement, if the caller may see its order (NOT_FOUND otherwise)."""
    found = await statements.statement_by_number(number)
    if found is None or not await scope.may_access_order(principal, found.order_id):
        raise DomainError.of(
            ErrorCode.NOT_FOUND, f"There is no statement {number}.", "statementNumber"
        )
    return found


@strawberry.type
class SettlementQuery:
    @strawberry.field(description="A statement by its number (customers: their own).")
    async def statement(self, info: Info, number: str) -> Statement | None:
        principal = require(info, *READERS)
        try:
            return Statement.from_view(await _statement(number, principal))
        except DomainError:
            return None


@strawberry.type
class SettlementMutation:
    @strawberry.mutation(
        description="Confirm that a delivered order arrived: DELIVERED -> COMPLETED."
    )
    @payload_errors
    async def confirm_delivery(self, info: Info, order_id: strawberry.ID) -> SettlementOrderPayload:
        principal = require(info, *READERS)
        order = row_id(order_id, "order", field="orderId")
        await confirmation.confirm_delivery(info.context.rt, order, principal)
        return SettlementOrderPayload(order=await _order(order))

    @strawberry.mutation(
        description="Report a problem with a delivery; its confirmation waits until resolved."
    )
    @payload_errors
    async def report_delivery_problem(
        self, info: Info, order_id: strawberry.ID, description: str
    ) -> DeliveryProblemPayload:
        principal = require(info, *READERS)
        order = row_id(order_id, "order", field="orderId")
        problem = await confirmation.report_problem(info.context.rt, order, description, principal)
        return DeliveryProblemPayload(problem=DeliveryProblem.from_view(problem))

    @strawberry.mutation(description="Resolve a reported delivery problem (staff).")
    @payload_errors
    async def resolve_delivery_problem(
        self, info: Info, id: strawberry.ID, resolution: str
    ) -> DeliveryProblemPayload:
        principal = require(info, *OPERATORS)
        problem = await confirmation.resolve_problem(
            info.context.rt, row_id(id, "delivery problem"), resolution, principal
        )
        return DeliveryProblemPayload(problem=DeliveryProblem.from_view(problem))

    @strawberry.mutation(description="Record a payment movement on a statement (staff).")
    @payload_errors
    async def record_payment(self, info: Info, input: RecordPaymentInput) -> PaymentPayload:
        principal = require(info, *OPERATORS)
        statement = await _statement(input.statement_number, principal)
        result = await payments.record_entry(
            info.context.rt,
            statement,
            input.kind.value,
            input.amount,
            idempotency_key=input.idempotency_key,
            method=input.method,
            reference=input.reference,
            principal=principal,
        )
        return PaymentPayload(
            entry=LedgerEntry.from_view(result.entry),
            created=result.created,
            statement=Statement.from_view(statement),
        )

    @strawberry.mutation(
        description="Refund what was paid beyond a statement's total (staff): through the "
        "payment plugin of the method when it refunds (stripe), else recorded as refunded by "
        "hand. REFUND_FAILED names the provider's reason and records nothing."
    )
    @payload_errors
    async def refund_overpayment(
        self, info: Info, statement_number: str, method: str, idempotency_key: str
    ) -> PaymentPayload:
        principal = require(info, *OPERATORS)
        statement = await _statement(statement_number, principal)
        result = await payments.refund_overpayment(
            info.context.rt, statement, method, idempotency_key, principal
        )
        return PaymentPayload(
            entry=LedgerEntry.from_view(result.entry),
            created=result.created,
            statement=Statement.from_view(statement),
        )
