"""Mutation fields. Expected failures come back as ``errors``, never as exceptions."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from ordergraph.core.auth import Principal, Role
from ordergraph.core.errors import ErrorCode
from ordergraph.core.orders import LineDraft, OrderDraft, OrderView, SubmitResult
from ordergraph.core.transitions import transition_order
from ordergraph.graphql.context import OPERATORS, READERS, Info, require, row_id
from ordergraph.graphql.types import (
    Customer,
    Order,
    Priority,
    Product,
    UserError,
    payload_errors,
)
from ordergraph.stages.entry import masterdata


@strawberry.input
class AddressInput:
    name: str | None = None
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    postal_code: str | None = None
    country: str | None = None
    phone: str | None = None


@strawberry.input
class OrderLineInput:
    sku: str
    quantity: int
    unit_price: Decimal | None = strawberry.field(
        default=None, description="Defaults to the product's list price."
    )


@strawberry.input
class SubmitOrderInput:
    external_id: str
    lines: list[OrderLineInput]
    customer_id: strawberry.ID | None = None
    customer_email: str | None = None
    customer_name: str | None = strawberry.field(
        default=None, description="Creates the customer when the e-mail is new."
    )
    shipping_address: AddressInput | None = None
    type: str = "standard"
    priority: Priority = Priority.NORMAL
    currency: str | None = strawberry.field(
        default=None, description="Defaults to the customer's currency."
    )
    note: str = ""


@strawberry.input
class ProductInput:
    sku: str
    name: str
    list_price: Decimal
    currency: str
    stock_on_hand: int = 0
    active: bool = True
    bin_location: str = strawberry.field(
        default="", description="Where pickers find it (shown on pick lists)."
    )


@strawberry.input
class CustomerInput:
    email: str
    name: str
    credit_limit: Decimal = Decimal(0)
    currency: str = "EUR"
    blocked: bool = False


@strawberry.type
class OrderPayload:
    order: Order | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="The order already stored under a submitted external id.")
class ExistingOrder:
    id: strawberry.ID
    number: str
    status: str

    @classmethod
    def from_view(cls, view: OrderView) -> ExistingOrder:
        return cls(id=strawberry.ID(str(view.id)), number=view.number, status=view.status)


@strawberry.type
class SubmitOrderPayload(OrderPayload):
    created: bool = strawberry.field(
        default=False, description="False when this external id was already submitted."
    )
    existing: ExistingOrder | None = strawberry.field(
        default=None,
        description="When this external id was already submitted: that order's id, number "
        "and status. An integrator gets only this, not the order.",
    )

    @classmethod
    def of(cls, result: SubmitResult, principal: Principal) -> SubmitOrderPayload:
        """The answer to a submission; an integrator submits orders but does not read
        them, so a repeated external id shows it no more than ``existing``."""
        if result.created:
            return cls(order=Order.from_view(result.order), created=True)
        existing = ExistingOrder.from_view(result.order)
        if principal.role == Role.INTEGRATOR:
            return cls(existing=existing)
        return cls(order=Order.from_view(result.order), existing=existing)


@strawberry.type
class ProductsPayload:
    products: list[Product] = strawberry.field(default_factory=list)
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class CustomerPayload:
    customer: Customer | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


def _address(value: AddressInput | None) -> dict[str, str]:
    if value is None:
        return {}
    fields = {
        "name": value.name,
        "line1": value.line1,
        "line2": value.line2,
        "city": value.city,
        "postalCode": value.postal_code,
        "country": value.country,
        "phone": value.phone,
    }
    return {k: v for k, v in fields.items() if v is not None}


def draft_from_input(input: SubmitOrderInput, channel: str) -> OrderDraft:
    """The core's ``OrderDraft`` for a GraphQL order input.

    Raises ``DomainError`` when ``customerId`` is an id no customer can have.
    """
    customer_id = None
    if input.customer_id:
        customer_id = row_id(
            input.customer_id,
            "customer with id",
            field="customerId",
            code=ErrorCode.UNKNOWN_CUSTOMER,
        )
    return OrderDraft(
        channel=channel,
        external_id=input.external_id,
        lines=[LineDraft(line.sku, line.quantity, line.unit_price) for line in input.lines],
        customer_id=customer_id,
        customer_email=input.customer_email,
        customer_name=input.customer_name,
        shipping_address=_address(input.shipping_address),
        currency=input.currency,
        type=input.type,
        priority=input.priority.value,
        note=input.note,
    )


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Fire a named transition of the status graph.")
    @payload_errors
    async def transition_order(
        self,
        info: Info,
        id: strawberry.ID,
        transition: str,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> OrderPayload:
        principal = require(info, *READERS)
        order = await transition_order(
            info.context.rt,
            row_id(id, "order"),
            transition,
            principal,
            reason=reason,
            expected_version=expected_version,
        )
        return OrderPayload(order=Order.from_view(order))

    @strawberry.mutation(description="Cancel an order that has not shipped.")
    async def cancel_order(
        self, info: Info, id: strawberry.ID, reason: str | None = None
    ) -> OrderPayload:
        return await Mutation.transition_order(self, info, id, "cancel", reason)

    @strawberry.mutation(description="Create or update products by SKU, all or none.")
    @payload_errors
    async def upsert_products(self, info: Info, input: list[ProductInput]) -> ProductsPayload:
        require(info, *OPERATORS)
        rows = await masterdata.upsert_products(
            [
                masterdata.ProductData(
                    sku=p.sku,
                    name=p.name,
                    list_price=p.list_price,
                    currency=p.currency,
                    stock_on_hand=p.stock_on_hand,
                    active=p.active,
                    bin_location=p.bin_location,
                )
                for p in input
            ]
        )
        return ProductsPayload(products=[Product.from_row(r) for r in rows])

    @strawberry.mutation(description="Create or update a customer by e-mail.")
    @payload_errors
    async def upsert_customer(self, info: Info, input: CustomerInput) -> CustomerPayload:
        require(info, *OPERATORS)
        row = await masterdata.upsert_customer(
            masterdata.CustomerData(
                email=input.email,
                name=input.name,
                credit_limit=input.credit_limit,
                currency=input.currency,
                blocked=input.blocked,
            )
        )
        return CustomerPayload(customer=Customer.from_row(row))
