"""GraphQL for stage 5: delivery confirmation and problems, statements, the payment ledger."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import strawberry
from strawberry.scalars import JSON

from ordergraph.core import scope
from ordergraph.core.auth import Principal
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.money import LEDGER_EFFECT
from ordergraph.core.orders import load_order
from ordergraph.core.tables import Order as OrderRow
from ordergraph.graphql.context import OPERATORS, READERS, Info, require, row_id
from ordergraph.graphql.queries import keyset_page
from ordergraph.graphql.types import (
    PAYLOAD_ERRORS,
    Connection,
    Order,
    OrderIdArgument,
    UserError,
    extend_order,
    order_key,
    payload_errors,
    stored_enum,
)
from ordergraph.stages.settlement import (
    config_of,
    confirmation,
    payments,
    reconciliation,
    statements,
)
from ordergraph.stages.settlement.amount import expected_amount
from ordergraph.stages.settlement.statements import StatementView
from ordergraph.stages.settlement.tables import BankLine as BankLineRow

StatementLineKind = stored_enum(
    "StatementLineKind",
    "What a statement line charges for.",
    {"item": "Delivered units of an order line.", "shipping": "Shipping the order."},
)
AdjustmentTarget = stored_enum(
    "AdjustmentTarget",
    "What an adjustment changes the price of.",
    {"lines": "The order's lines (the items).", "shipping": "The shipping."},
)
BalanceState = stored_enum(
    "BalanceState",
    "How much of a statement is paid, from its ledger.",
    {
        "unpaid": "Nothing is paid.",
        "partially_paid": "Some is paid; outstanding says what is left.",
        "paid": "Paid in full: the order is SETTLED.",
        "overpaid": "More than the total was paid; refundOverpayment gives it back.",
    },
)
_ENTRY_MEANINGS = {
    "authorized": "A provider reserved the amount on the customer's card; not paid yet.",
    "captured": "A provider took the amount: paid.",
    "failed": "A provider refused the payment; nothing was paid.",
    "refunded": "Paid back to the customer.",
    "collected": "Cash a courier collected on delivery: paid.",
    "matched": "A bank transfer matched to the statement: paid.",
    "refund_pending": "A provider accepted a refund and has not paid it back yet.",
    "refund_failed": "A provider could not pay a refund back; nothing moved.",
}
LedgerEntryKind = stored_enum(
    "LedgerEntryKind",
    "What a payment movement did.",
    {kind: _ENTRY_MEANINGS[kind] for kind in LEDGER_EFFECT},
)
T = TypeVar("T")


@strawberry.type(
    description="One line of a statement: delivered units of an order line, or shipping."
)
class StatementLine:
    kind: StatementLineKind = strawberry.field(description="What the line charges for.")
    line_no: int = strawberry.field(description="The order line; 0 for shipping.")
    sku: str = strawberry.field(description="The product's SKU; empty for shipping.")
    name: str = strawberry.field(description="What is charged, as printed.")
    quantity: int = strawberry.field(description="Delivered quantity.")
    unit_price: Decimal = strawberry.field(
        description="The price of one unit, in the statement's currency."
    )
    amount: Decimal = strawberry.field(description="Quantity x unit price.")
    adjustments: Decimal = strawberry.field(description="This line's share of adjustments.")
    tax_rate: Decimal = strawberry.field(description="Percent.")
    net: Decimal = strawberry.field(description="amount plus adjustments, before tax.")
    tax: Decimal = strawberry.field(description="The tax on net.")
    total: Decimal = strawberry.field(description="net plus tax.")


@strawberry.type(description="A promotion or other change of the price, as applied.")
class StatementAdjustment:
    code: str = strawberry.field(description="The adjustment's code (the promotion kind's).")
    label: str = strawberry.field(description="What it is, as printed.")
    source: str = strawberry.field(description="The plugin that proposed it.")
    reference: str = strawberry.field(description="Such as the promotion's id.")
    line_no: int | None = strawberry.field(description="None: the whole order.")
    target: AdjustmentTarget = strawberry.field(description="What it changes the price of.")
    amount: Decimal = strawberry.field(description="As applied (negative lowers the price).")
    capped: bool = strawberry.field(description="Larger than what it applied to, so capped.")


@strawberry.type(description="What is paid of a statement and what is not, from its ledger.")
class Balance:
    total: Decimal = strawberry.field(description="The statement's total.")
    paid: Decimal = strawberry.field(description="Captured, collected and matched, less refunds.")
    outstanding: Decimal = strawberry.field(
        description="What is left to pay (0 when paid or overpaid)."
    )
    overpaid: Decimal = strawberry.field(description="Paid beyond the total.")
    refund_pending: Decimal = strawberry.field(
        description="Refunds a payment provider accepted and has not yet paid back."
    )
    refundable: Decimal = strawberry.field(
        description="The overpayment no refund covers yet (refundOverpayment's amount)."
    )
    state: BalanceState = strawberry.field(description="How much is paid.")


@strawberry.type(description="A payment movement on a statement (staff).")
class LedgerEntry:
    id: strawberry.ID = strawberry.field(description="The entry's id.")
    kind: LedgerEntryKind = strawberry.field(description="What the movement did.")
    amount: Decimal = strawberry.field(description="The amount moved, positive, in currency.")
    currency: str = strawberry.field(description="ISO 4217 currency code.")
    method: str = strawberry.field(
        description=(
            "How: bank_transfer, cash_on_delivery, stripe, or another payment plugin's name."
        )
    )
    reference: str = strawberry.field(
        description="The provider's or bank's reference; empty when none."
    )
    idempotency_key: str = strawberry.field(
        description="The key it was recorded under: the same key never records twice."
    )
    actor: str = strawberry.field(description="Who recorded it, as role:name.")
    data: JSON = strawberry.field(description="The provider's details, as JSON.")
    at: datetime.datetime = strawberry.field(description="When it was recorded (ISO 8601, UTC).")

    @classmethod
    def from_view(cls, entry: payments.EntryView) -> LedgerEntry:
        return cls(
            id=strawberry.ID(str(entry.id)),
            kind=LedgerEntryKind(entry.kind),
            amount=entry.amount,
            currency=entry.currency,
            method=entry.method,
            reference=entry.reference,
            idempotency_key=entry.idempotency_key,
            actor=entry.actor,
            data=entry.data,
            at=entry.at,
        )


@strawberry.type(
    description=(
        "The settlement statement of a delivered order: an immutable snapshot with a "
        "gap-free number. Customers see their own."
    )
)
class Statement:
    id: strawberry.ID = strawberry.field(description="The statement's id.")
    number: str = strawberry.field(
        description=("Its number, gap-free per series, such as ST-2026-000003: pay quoting it.")
    )
    currency: str = strawberry.field(description="ISO 4217 currency code of every amount.")
    total: Decimal = strawberry.field(description="What is to be paid: net plus tax.")
    subtotal: Decimal = strawberry.field(description="The lines' amounts before adjustments.")
    adjustment_total: Decimal = strawberry.field(
        description="The sum of the adjustments (negative lowers the price)."
    )
    net: Decimal = strawberry.field(description="subtotal plus adjustmentTotal, before tax.")
    tax: Decimal = strawberry.field(description="The tax, computed per line.")
    issued_at: datetime.datetime = strawberry.field(
        description="When it was issued (ISO 8601, UTC)."
    )
    due_date: datetime.date = strawberry.field(description="The date by which to pay.")
    lines: list[StatementLine] = strawberry.field(description="What is charged.")
    adjustments: list[StatementAdjustment] = strawberry.field(
        description="Promotions and other adjustments applied."
    )
    seller: JSON = strawberry.field(
        description="The seller as printed (name, address, tax id), as JSON."
    )
    customer: JSON = strawberry.field(
        description="The customer as printed (name, address), as JSON."
    )
    payment_instructions: str = strawberry.field(
        description="How to pay, from the enabled payment plugins."
    )
    notes: list[str] = strawberry.field(description="Notes printed at the foot.")
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
            kind=StatementLineKind(li["kind"]),
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
            target=AdjustmentTarget(a["target"]),
            amount=Decimal(a["amount"]),
            capped=bool(a.get("capped")),
        )
        for a in snapshot["adjustments"]
    ]


@strawberry.type(
    description="What an order comes to if delivered in full, with today's promotions."
)
class PricePreview:
    """What the order comes to if it is delivered in full, with today's promotions."""

    currency: str = strawberry.field(description="ISO 4217 currency code of every amount.")
    subtotal: Decimal = strawberry.field(description="The lines' amounts before adjustments.")
    adjustment_total: Decimal = strawberry.field(
        description="The sum of the adjustments (negative lowers the price)."
    )
    net: Decimal = strawberry.field(description="subtotal plus adjustmentTotal, before tax.")
    tax: Decimal = strawberry.field(description="The tax, computed per line.")
    total: Decimal = strawberry.field(description="What would be paid: net plus tax.")
    lines: list[StatementLine] = strawberry.field(description="What would be charged.")
    adjustments: list[StatementAdjustment] = strawberry.field(
        description="The promotions that would apply."
    )
    notes: list[str] = strawberry.field(description="Notes on the computation.")


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
        state=BalanceState(balance.state),
    )


@strawberry.type(description="A problem a customer reported with a delivery.")
class DeliveryProblem:
    id: strawberry.ID = strawberry.field(
        description="The problem's id; resolveDeliveryProblem takes it."
    )
    reported_by: str = strawberry.field(description="Who reported it, as role:name.")
    description: str = strawberry.field(description="What the customer said.")
    opened_at: datetime.datetime = strawberry.field(
        description="When it was reported (ISO 8601, UTC)."
    )
    resolved_at: datetime.datetime | None = strawberry.field(
        description="When it was resolved (ISO 8601, UTC); null while open."
    )
    resolved_by: str | None = strawberry.field(
        description="Who resolved it, as role:name; null while open."
    )
    resolution: str = strawberry.field(description="What was done; empty while open.")

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


PaymentKind = stored_enum(
    "PaymentKind",
    "A payment movement staff may record by hand (the provider's own are recorded by its plugin).",
    {
        kind: _ENTRY_MEANINGS[kind]
        for kind in ("authorized", "captured", "failed", "refunded", "collected", "matched")
    },
)


@strawberry.input(description="A payment movement to record by hand.")
class RecordPaymentInput:
    statement_number: str = strawberry.field(
        description="The statement's number (NOT_FOUND when it is not one you may see)."
    )
    kind: PaymentKind = strawberry.field(description="What the movement did.")
    amount: Decimal = strawberry.field(
        description="The amount, positive, in the statement's currency (INVALID_PRICE)."
    )
    method: str = strawberry.field(description="bank_transfer, cash_on_delivery, stripe...")
    idempotency_key: str = strawberry.field(
        description="One entry per key: the same key again returns it; different values fail."
    )
    reference: str = strawberry.field(default="", description="The provider's or bank's reference.")


@strawberry.type(description="The answer to confirmDelivery.")
class SettlementOrderPayload:
    order: Order | None = strawberry.field(
        default=None, description="The order after the change; null when errors is not empty."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description=PAYLOAD_ERRORS,
    )


@strawberry.type(description="The answer to a report or resolution of a delivery problem.")
class DeliveryProblemPayload:
    problem: DeliveryProblem | None = strawberry.field(
        default=None, description="The problem after the change; null when errors is not empty."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description=PAYLOAD_ERRORS,
    )


@strawberry.type(description="The answer to a payment movement.")
class PaymentPayload:
    entry: LedgerEntry | None = strawberry.field(
        default=None,
        description=(
            "The entry, new or recorded before under the same key; null when errors is not empty."
        ),
    )
    created: bool = strawberry.field(default=False, description="False: the key was seen before.")
    statement: Statement | None = strawberry.field(
        default=None, description="The statement it was recorded on."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description=(
            "Everything wrong with the input or the action, each with its field and"
            " stable code; empty when it succeeded (then nothing else is null). "
            "IDEMPOTENCY_CONFLICT when the key was used with other values."
        ),
    )


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
    async def statement(
        self,
        info: Info,
        number: Annotated[
            str, strawberry.argument(description="The statement's number, such as ST-2026-000003.")
        ],
    ) -> Statement | None:
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
    async def confirm_delivery(
        self,
        info: Info,
        order_id: Annotated[
            strawberry.ID,
            strawberry.argument(
                description=(
                    "The order's id (Order.id; its databaseId is taken too). A customer"
                    " confirms their own; PROBLEM_REPORTED while a delivery problem is "
                    "open."
                )
            ),
        ],
    ) -> SettlementOrderPayload:
        principal = require(info, *READERS)
        order = order_key(order_id, "orderId")
        await confirmation.confirm_delivery(info.context.rt, order, principal)
        return SettlementOrderPayload(order=await _order(order))

    @strawberry.mutation(
        description="Report a problem with a delivery; its confirmation waits until resolved."
    )
    @payload_errors
    async def report_delivery_problem(
        self,
        info: Info,
        order_id: OrderIdArgument,
        description: Annotated[
            str,
            strawberry.argument(
                description=(
                    "What is wrong, at most 2,000 characters (RATE_LIMITED beyond 5 "
                    "reports an hour)."
                )
            ),
        ],
    ) -> DeliveryProblemPayload:
        principal = require(info, *READERS)
        order = order_key(order_id, "orderId")
        problem = await confirmation.report_problem(info.context.rt, order, description, principal)
        return DeliveryProblemPayload(problem=DeliveryProblem.from_view(problem))

    @strawberry.mutation(description="Resolve a reported delivery problem (staff).")
    @payload_errors
    async def resolve_delivery_problem(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID, strawberry.argument(description="The problem's id (DeliveryProblem.id).")
        ],
        resolution: Annotated[
            str, strawberry.argument(description="What was done, at most 2,000 characters.")
        ],
    ) -> DeliveryProblemPayload:
        principal = require(info, *OPERATORS)
        problem = await confirmation.resolve_problem(
            info.context.rt, row_id(id, "delivery problem"), resolution, principal
        )
        return DeliveryProblemPayload(problem=DeliveryProblem.from_view(problem))

    @strawberry.mutation(description="Record a payment movement on a statement (staff).")
    @payload_errors
    async def record_payment(
        self,
        info: Info,
        input: Annotated[
            RecordPaymentInput, strawberry.argument(description="The movement to record.")
        ],
    ) -> PaymentPayload:
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
        self,
        info: Info,
        statement_number: Annotated[
            str,
            strawberry.argument(
                description=("The statement's number (NOTHING_TO_REFUND when nothing is overpaid).")
            ),
        ],
        method: Annotated[
            str,
            strawberry.argument(
                description=(
                    "How to refund: a payment method such as stripe, bank_transfer or "
                    "cash_on_delivery."
                )
            ),
        ],
        idempotency_key: Annotated[
            str,
            strawberry.argument(
                description=(
                    "Your key for this refund, at most 255 characters: the same key "
                    "again returns the first answer."
                )
            ),
        ],
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


async def bank_lines_page(
    state: str | None,
    principal: Principal,
    first: int | None,
    after: str | None,
    make: Callable[[dict[str, Any]], T],
) -> Connection[T]:
    """A page of the imported bank lines in ``state`` (all when None) that ``principal``
    may see, newest first, each made by ``make`` from the line: the list behind the bank
    transfer plugin's ``bankLines``."""
    return await keyset_page(
        "bank_line",
        BankLineRow,
        reconciliation.bank_line_filters(state, principal),
        first,
        after,
        lambda row: make(reconciliation.line_view(row)),
        newest_first=True,
    )
