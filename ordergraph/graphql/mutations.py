"""Mutation fields. Expected failures come back as ``errors``, never as exceptions."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import strawberry

from ordergraph.core.auth import Principal, Role
from ordergraph.core.errors import ErrorCode
from ordergraph.core.orders import LineDraft, OrderDraft, OrderView, SubmitResult
from ordergraph.core.transitions import transition_order
from ordergraph.graphql.context import OPERATORS, READERS, Info, require, row_id
from ordergraph.graphql.types import (
    PAYLOAD_ERRORS,
    Customer,
    Order,
    OrderIdArgument,
    Priority,
    Product,
    UserError,
    order_global_id,
    order_key,
    payload_errors,
)
from ordergraph.stages.entry import masterdata


@strawberry.input(
    description=(
        "A shipping address. Each field is at most 200 characters without control "
        "characters (TOO_LONG, INVALID_CHARACTER); name, line1, city, postalCode and "
        "country are required (REQUIRED)."
    )
)
class AddressInput:
    name: str | None = strawberry.field(
        default=None,
        description=(
            "Who receives the parcel; it names a new customer when customerName is not given."
        ),
    )
    line1: str | None = strawberry.field(default=None, description="Street and number.")
    line2: str | None = strawberry.field(
        default=None, description="More of the address (flat, floor)."
    )
    city: str | None = strawberry.field(default=None, description="The town or city.")
    postal_code: str | None = strawberry.field(
        default=None, description="The postal code, as written in the destination country."
    )
    country: str | None = strawberry.field(
        default=None, description="ISO 3166-1 alpha-2 country code, such as GB."
    )
    phone: str | None = strawberry.field(
        default=None, description="A phone number for the carrier."
    )


@strawberry.input(description="One line of an order to submit.")
class OrderLineInput:
    sku: str = strawberry.field(
        description="The SKU of an active product (UNKNOWN_SKU, INACTIVE_SKU)."
    )
    quantity: int = strawberry.field(
        description="Units, a whole number from 1 to 1,000,000 (INVALID_QUANTITY)."
    )
    unit_price: Decimal | None = strawberry.field(
        default=None, description="Defaults to the product's list price."
    )


@strawberry.input(
    description=(
        "An order as a channel submits it. Every problem is answered at once, each with"
        " its field; nothing is stored unless all is well."
    )
)
class SubmitOrderInput:
    external_id: str = strawberry.field(
        description=(
            "The channel's id of the order, at most 128 characters: submitting it "
            "again returns the stored order (created: false)."
        )
    )
    lines: list[OrderLineInput] = strawberry.field(description="The lines, 1 to 500.")
    customer_id: strawberry.ID | None = strawberry.field(
        default=None,
        description=(
            "An existing customer (Customer.id; UNKNOWN_CUSTOMER), instead of customerEmail."
        ),
    )
    customer_email: str | None = strawberry.field(
        default=None,
        description=(
            "The customer's e-mail; a new one creates the customer. A customer's "
            "token submits for itself."
        ),
    )
    customer_name: str | None = strawberry.field(
        default=None, description="Creates the customer when the e-mail is new."
    )
    shipping_address: AddressInput | None = strawberry.field(
        default=None, description="Where to ship it (required)."
    )
    type: str = strawberry.field(
        default="standard",
        description=("The order's type (at most 32 characters); assignment rules may route by it."),
    )
    priority: Priority = strawberry.field(default=Priority.NORMAL, description="How urgent it is.")
    currency: str | None = strawberry.field(
        default=None, description="Defaults to the customer's currency."
    )
    note: str = strawberry.field(
        default="", description="A note for staff, at most 2,000 characters."
    )


@strawberry.input(description="A product to create or update, found by SKU.")
class ProductInput:
    sku: str = strawberry.field(
        description="The SKU, at most 64 characters; it finds the product to update."
    )
    name: str = strawberry.field(description="The product's name, at most 200 characters.")
    list_price: Decimal = strawberry.field(
        description=(
            "The price of one unit (INVALID_PRICE when negative, not finite or "
            "finer than the currency's minor unit)."
        )
    )
    currency: str = strawberry.field(description="ISO 4217 currency code of listPrice.")
    stock_on_hand: int = strawberry.field(
        default=0, description="Units in the warehouse, 0 to 2,147,483,647 (OUT_OF_RANGE)."
    )
    active: bool = strawberry.field(
        default=True, description="False stops new orders from naming it (INACTIVE_SKU)."
    )
    bin_location: str = strawberry.field(
        default="", description="Where pickers find it (shown on pick lists)."
    )


@strawberry.input(description="A customer to create or update, found by e-mail.")
class CustomerInput:
    email: str = strawberry.field(
        description=(
            "The customer's e-mail address, at most 254 characters; it finds the "
            "customer to update."
        )
    )
    name: str = strawberry.field(description="The customer's name, at most 200 characters.")
    credit_limit: Decimal = strawberry.field(
        default=Decimal(0),
        description=(
            "The most they may owe, as a decimal in their currency (INVALID_PRICE "
            "when negative, not finite or finer than a cent)."
        ),
    )
    currency: str = strawberry.field(
        default="EUR", description="ISO 4217 currency code (INVALID_CURRENCY otherwise)."
    )
    blocked: bool = strawberry.field(
        default=False, description="True refuses their new orders (CUSTOMER_BLOCKED)."
    )


@strawberry.type(description="The answer to a change of an order.")
class OrderPayload:
    order: Order | None = strawberry.field(
        default=None, description="The order after the change; null when errors is not empty."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description=PAYLOAD_ERRORS,
    )


@strawberry.type(description="The order already stored under a submitted external id.")
class ExistingOrder:
    id: strawberry.ID = strawberry.field(description="The stored order's id (Order.id).")
    number: str = strawberry.field(description="The stored order's number, such as SO-000013.")
    status: str = strawberry.field(
        description="The stored order's status now (a state of statusGraph)."
    )

    @classmethod
    def from_view(cls, view: OrderView) -> ExistingOrder:
        return cls(id=order_global_id(view.id), number=view.number, status=view.status)


@strawberry.type(description="The answer to submitOrder.")
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


@strawberry.type(description="The answer to upsertProducts: all stored, or none.")
class ProductsPayload:
    products: list[Product] = strawberry.field(
        default_factory=list,
        description=("The products as stored, in the order given; empty when errors is not empty."),
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description=PAYLOAD_ERRORS,
    )


@strawberry.type(description="The answer to upsertCustomer.")
class CustomerPayload:
    customer: Customer | None = strawberry.field(
        default=None, description="The customer as stored; null when errors is not empty."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description=PAYLOAD_ERRORS,
    )


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
        id: OrderIdArgument,
        transition: Annotated[
            str,
            strawberry.argument(
                description=(
                    "The transition's name (statusGraph lists them; INVALID_TRANSITION "
                    "when it cannot be fired from the status, FORBIDDEN for your role, "
                    "VETOED when a plugin refuses)."
                )
            ),
        ],
        reason: Annotated[
            str | None,
            strawberry.argument(description="Why, for the timeline (at most 2,000 characters)."),
        ] = None,
        expected_version: Annotated[
            int | None,
            strawberry.argument(
                description=(
                    "The order's version you saw: the change is refused with "
                    "VERSION_CONFLICT when it moved on since."
                )
            ),
        ] = None,
    ) -> OrderPayload:
        principal = require(info, *READERS)
        order = await transition_order(
            info.context.rt,
            order_key(id),
            transition,
            principal,
            reason=reason,
            expected_version=expected_version,
        )
        return OrderPayload(order=Order.from_view(order))

    @strawberry.mutation(description="Cancel an order that has not shipped.")
    async def cancel_order(
        self,
        info: Info,
        id: OrderIdArgument,
        reason: Annotated[
            str | None,
            strawberry.argument(description="Why, for the timeline (at most 2,000 characters)."),
        ] = None,
    ) -> OrderPayload:
        return await Mutation.transition_order(self, info, id, "cancel", reason)

    @strawberry.mutation(description="Create or update products by SKU, all or none.")
    @payload_errors
    async def upsert_products(
        self,
        info: Info,
        input: Annotated[
            list[ProductInput], strawberry.argument(description="The products, each found by SKU.")
        ],
    ) -> ProductsPayload:
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
    async def upsert_customer(
        self,
        info: Info,
        input: Annotated[
            CustomerInput, strawberry.argument(description="The customer, found by e-mail.")
        ],
    ) -> CustomerPayload:
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
