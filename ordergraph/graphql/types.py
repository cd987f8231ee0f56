"""GraphQL object types. Resolvers that expose data check the caller themselves."""

from __future__ import annotations

import base64
import datetime
import functools
import json
import typing
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Generic, TypeVar

import strawberry
from strawberry.scalars import JSON
from strawberry.utils.await_maybe import AwaitableOrValue

from ordergraph.core.auth import Principal, Role
from ordergraph.core.errors import DomainError
from ordergraph.core.errors import ErrorCode as CoreErrorCode
from ordergraph.core.limits import DEFAULT_PAGE, MAX_ID, MAX_PAGE, parse_id, shown
from ordergraph.core.money import from_minor
from ordergraph.core.orders import (
    OrderEventView,
    OrderView,
    actor_seen_by,
    event_view,
    may_see_event,
    order_view,
)
from ordergraph.core.plugins import CATEGORIES, LoadedPlugin
from ordergraph.core.statusgraph import Transition
from ordergraph.graphql.context import READERS, ApiError, Info, require, row_id
from ordergraph.graphql.loaders import preload, selected_names, when_loaded

ErrorCode = strawberry.enum(
    CoreErrorCode,
    description="Stable codes a client can switch on: new codes may be added, none is renamed.",
)
ERROR_MEANINGS = {
    "REQUIRED": "A value that must be given is missing or empty.",
    "INVALID_VALUE": "A value is not one the field takes (the message says which are).",
    "UNKNOWN_SKU": "No product has this SKU.",
    "INACTIVE_SKU": "The product is no longer sold.",
    "INVALID_QUANTITY": "A quantity is not a whole number from 1 to 1,000,000.",
    "INVALID_PRICE": "An amount is negative, not finite, finer than the currency's minor "
    "unit, or too large.",
    "INVALID_CURRENCY": "Not an ISO 4217 currency code.",
    "CURRENCY_MISMATCH": "Amounts in different currencies were mixed.",
    "UNKNOWN_CUSTOMER": "No customer has this id.",
    "CUSTOMER_BLOCKED": "The shop stopped taking this customer's orders.",
    "DUPLICATE": "Already there: the same value twice, or a record that exists.",
    "NOT_FOUND": "It does not exist, or is not yours to see: the two are not told apart.",
    "INVALID_TRANSITION": "The transition does not exist or cannot be fired from the status.",
    "VERSION_CONFLICT": "The order changed since the version you saw: reload and try again.",
    "FORBIDDEN": "Your role may not do this.",
    "VETOED": "A plugin refused the change (the message says why).",
    "PLUGIN_FAILED": "A plugin failed or timed out; nothing was changed.",
    "RULE_FAILED": "A review rule failed; the order is held for a person.",
    "INSUFFICIENT_STOCK": "Not enough stock is available to reserve.",
    "UNAUTHENTICATED": "No token, or one that does not work (unknown, revoked, expired).",
    "BUSY": "The database is busy: try again.",
    "TOO_LONG": "A text is longer than its limit.",
    "OUT_OF_RANGE": "A number or date is outside what the field takes (the message says "
    "the range).",
    "INVALID_CHARACTER": "A text holds a control character such as NUL.",
    "INVALID_CURSOR": "A cursor this list did not hand out.",
    "INTERNAL_ERROR": "The service failed; extensions.reference finds it in the server log.",
    "TOO_LARGE": "The request body is larger than the service accepts.",
    "USE_WEBSOCKET": "A subscription was sent over HTTP: subscribe over the websocket.",
    "ALREADY_DONE": "The task or step was done already.",
    "OUT_OF_ORDER": "The step before it is not done yet.",
    "QUANTITY_EXCEEDED": "More units than are left to pick, pack or ship.",
    "UNKNOWN_CARRIER": "No enabled plugin provides this carrier.",
    "OTHER_TEAM": "The member is not in the order's team.",
    "AT_CAPACITY": "The member has as many open orders as their capacity.",
    "MEMBER_AWAY": "The member is not on shift.",
    "WRONG_ORDER_TYPE": "The member does not take orders of this type.",
    "NOT_ASSIGNED": "The order is not assigned to anyone.",
    "IDEMPOTENCY_CONFLICT": "The idempotency key was used before with other values.",
    "NOTHING_TO_REFUND": "Nothing is paid beyond the total.",
    "REFUND_FAILED": "The payment provider refused the refund (the message has its reason).",
    "PROBLEM_REPORTED": "A delivery problem is open: it is resolved first.",
    "INVALID_TOKEN": "A signed link's token is wrong or expired.",
    "COUPON_USED_UP": "The coupon reached its usage limit.",
    "COUPON_LIMIT_REACHED": "You used this coupon as often as one customer may.",
    "RATE_LIMITED": "Too many tries in a short time: wait and try again.",
}
for _value in ErrorCode.__strawberry_definition__.values:
    _value.description = ERROR_MEANINGS[_value.value]


def stored_enum(name: str, description: str, meanings: Mapping[str, str]) -> Any:
    """A GraphQL enum of values stored as lowercase text: the stored ``refund_pending``
    is ``REFUND_PENDING``, and ``Enum("refund_pending")`` is that member. ``meanings``
    holds every value with what it means to a user, its description."""
    members = {
        value.upper(): strawberry.enum_value(value, description=meaning)
        for value, meaning in meanings.items()
    }
    return strawberry.enum(Enum(name, members), description=description)  # type: ignore[misc]


@strawberry.enum(description="How urgent an order is: review, assignment and due times follow it.")
class Priority(Enum):
    LOW = strawberry.enum_value("LOW", description="After every other.")
    NORMAL = strawberry.enum_value("NORMAL", description="The default.")
    HIGH = strawberry.enum_value("HIGH", description="Before NORMAL and LOW.")
    URGENT = strawberry.enum_value(
        "URGENT", description="First in review and assignment, with the shortest due times."
    )


RoleType = stored_enum(
    "Role",
    "Who a token acts as; it decides what the caller may read and do.",
    {
        Role.ADMIN: "Everything, plugin settings and teams included.",
        Role.STAFF: "Operates orders: review, pick, pack, ship, alerts, payments; with a "
        "team, only that team's orders.",
        Role.CUSTOMER: "A shop's customer: their own orders only.",
        Role.INTEGRATOR: "A channel's system: submits orders, reads nothing else.",
        Role.SYSTEM: "The service itself (the review pipeline, derived statuses); never a "
        "token's role.",
    },
)
FindingOutcome = stored_enum(
    "FindingOutcome",
    "What a review rule decided about an order.",
    {
        "pass": "The rule has no objection.",
        "fail": "The rule rejects the order (REJECTED); the customer may amend it.",
        "hold": "The rule wants a person to decide (ON_HOLD, in the review queue).",
    },
)
_CATEGORY_MEANINGS = {
    "channel": "Brings orders in (GraphQL, webhooks, files).",
    "review_rule": "Checks orders in review (credit, stock, prices...).",
    "assignment": "Chooses the team and person who fulfil an order.",
    "carrier": "Tracks parcels (and may buy labels) with a carrier.",
    "payment": "Takes or records payments of statements.",
    "promotion": "Offers kinds of promotion.",
    "notifier": "Tells customers and systems what happened (e-mail, webhooks).",
    "other": "Anything else.",
}
PluginCategory = stored_enum(
    "PluginCategory",
    "What a plugin is for.",
    {category: _CATEGORY_MEANINGS[category] for category in CATEGORIES},
)


@strawberry.type(description="One thing wrong with the input or the action.")
class UserError:
    field: str | None = strawberry.field(
        description=(
            "The input field at fault, as a path such as lines[1].quantity; null "
            "when the action as a whole failed."
        )
    )
    code: ErrorCode = strawberry.field(
        description="What is wrong, as a stable code a client can switch on."
    )
    message: str = strawberry.field(description="What is wrong, in a sentence a person can act on.")


PAYLOAD_ERRORS = (
    "Everything wrong with the input or the action, each with its field and stable code; "
    "empty when it succeeded (then nothing else is null)."
)
"""The description of every payload's ``errors``."""


def user_errors(error: DomainError) -> list[UserError]:
    return [UserError(field=p.field, code=p.code, message=p.message) for p in error.problems]


Resolver = TypeVar("Resolver", bound=Callable[..., Awaitable[Any]])


def payload_errors(resolver: Resolver) -> Resolver:
    """A mutation whose expected failures are data: a ``DomainError`` it raises is
    answered as its payload type with ``errors`` (every other field left at its
    default). Put it under ``@strawberry.mutation``."""

    @functools.wraps(resolver)
    async def resolve(*args: Any, **kwargs: Any) -> Any:
        try:
            return await resolver(*args, **kwargs)
        except DomainError as error:
            payload = typing.get_type_hints(resolver)["return"]
            return payload(errors=user_errors(error))

    return resolve  # type: ignore[return-value]


# -- Connections ------------------------------------------------------------------------

T = TypeVar("T")


@strawberry.type(description="Where a page of a list lies in the whole list (Relay's PageInfo).")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="True when items follow this page: ask for them with after: endCursor."
    )
    has_previous_page: bool = strawberry.field(
        description="True when items of the list come before this page (there are when the "
        "page was asked for with after, unless they left the list since)."
    )
    start_cursor: str | None = strawberry.field(
        description="The cursor of the first item of the page; null when the page is empty."
    )
    end_cursor: str | None = strawberry.field(
        description="The cursor of the last item of the page; null when the page is empty."
    )


@strawberry.type(description="One item of a list and the cursor that points at it.")
class Edge(Generic[T]):
    node: T = strawberry.field(description="The item.")
    cursor: str = strawberry.field(
        description="Opaque; pass it as after to get the items that follow this one. Only this "
        "list understands it (another list answers INVALID_CURSOR)."
    )


# The argument that names an order, in the mutations that act on one.
OrderIdArgument = Annotated[
    strawberry.ID,
    strawberry.argument(description="The order's id (Order.id; its databaseId is taken too)."),
]

# The paging arguments of every connection.
PageSize = Annotated[
    int | None,
    strawberry.argument(
        description=(
            f"How many items the page holds: 1 to {MAX_PAGE} (default {DEFAULT_PAGE}); "
            "another number is refused with OUT_OF_RANGE."
        )
    ),
]
PageAfter = Annotated[
    str | None,
    strawberry.argument(
        description=(
            "The cursor after which the page starts: a cursor this list handed out "
            "(endCursor), else INVALID_CURSOR."
        )
    ),
]


# totalCount stops counting here unless the per-status counts can answer: a filter that
# matches most of a million orders would otherwise read them all on every page.
COUNT_CAP = 10_000


@strawberry.type(
    description=f"A page of a list (a Relay connection): first from 1 to {MAX_PAGE} "
    f"(default {DEFAULT_PAGE}), after a cursor the list handed out."
)
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The items of this page, in list order.")
    page_info: PageInfo = strawberry.field(description="Whether more items come before or after.")
    total_count: int = strawberry.field(
        description=(
            f"How many items the list holds with these filters, exact up to {COUNT_CAP:,}; "
            f"past that it stops counting and says {COUNT_CAP + 1:,}, meaning more than "
            f"{COUNT_CAP:,}. Staff's orders, unfiltered or filtered by status alone, and "
            "the review queue are always exact: they come from counts kept per status."
        )
    )


def encode_cursor(kind: str, key: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode()


# Longer than any cursor a list hands out.
MAX_CURSOR_CHARS = 100


def invalid_cursor(cursor: str) -> ApiError:
    return ApiError(
        CoreErrorCode.INVALID_CURSOR,
        f"{shown(repr(cursor), MAX_CURSOR_CHARS)} is not a cursor of this list.",
        "after",
    )


def decode_cursor(kind: str, cursor: str | None, maximum: int = MAX_ID) -> int | None:
    """The key inside a cursor of ``kind``, from 1 to ``maximum``; any other cursor is a
    clear error (a key beyond what an id column holds would be a query the database refuses)."""
    if cursor is None:
        return None
    if len(cursor) <= MAX_CURSOR_CHARS:
        try:
            prefix, _, key = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
            if prefix == kind and key.isascii() and key.isdigit() and 0 < int(key) <= maximum:
                return int(key)
        except (ValueError, UnicodeError):
            pass
    raise invalid_cursor(cursor)


def connection(
    kind: str,
    nodes: list[Any],
    keys: list[int],
    total: int,
    *,
    has_next: bool,
    has_previous: bool = False,
) -> Connection[Any]:
    edges = [Edge(node=n, cursor=encode_cursor(kind, k)) for n, k in zip(nodes, keys, strict=True)]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=has_previous,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=total,
    )


# -- Global ids (Relay's Node) ---------------------------------------------------------------


@strawberry.interface(
    description="An object a client can fetch again by its global id alone, with "
    "node(id:): Relay's refetching and its cache rely on it. Implemented by Order."
)
class Node:
    id: strawberry.ID = strawberry.field(
        description="The global id: opaque, unique across every type. Keep it as it is; "
        "node(id:) and every argument that names this object take it."
    )


def global_id(type_name: str, key: int) -> strawberry.ID:
    """The global id of row ``key`` of the type ``type_name``: base64 of "Order:13"."""
    return strawberry.ID(base64.b64encode(f"{type_name}:{key}".encode()).decode())


def parse_global_id(value: str) -> tuple[str, int] | None:
    """The (type name, row id) a global id names, or None when it is not one."""
    if len(value) > MAX_CURSOR_CHARS:
        return None
    try:
        decoded = base64.b64decode(value.encode(), validate=True).decode()
    except (ValueError, UnicodeError):
        return None
    type_name, _, key = decoded.partition(":")
    row = parse_id(key)
    return (type_name, row) if type_name.isidentifier() and row is not None else None


def order_global_id(key: int) -> strawberry.ID:
    """The global id of order ``key``: what ``Order.id`` and every ``orderId`` say."""
    return global_id("Order", key)


def order_key(value: str, field: str = "id") -> int:
    """The row id of the order an argument names: its global id or, as before global
    ids, its database id (``databaseId``). Anything else raises the ``DomainError`` of
    an order that does not exist."""
    found = None if parse_id(value) is not None else parse_global_id(value)
    if found is not None and found[0] == "Order":
        return found[1]
    return row_id(value, "order", field=field)


# -- Master data ---------------------------------------------------------------------------


@strawberry.type(description="A customer of the shop (admins and staff).")
class Customer:
    id: strawberry.ID = strawberry.field(
        description="The customer's id; customerId arguments and filters take it."
    )
    email: str = strawberry.field(
        description=(
            "The e-mail address, unique per customer (submitting an order with a "
            "new one creates the customer)."
        )
    )
    name: str = strawberry.field(description="The customer's name.")
    credit_limit: Decimal = strawberry.field(
        description=(
            "The most this customer may owe in open orders and unpaid statements, "
            "in their currency; the credit_limit review rule holds or rejects "
            "orders beyond it."
        )
    )
    currency: str = strawberry.field(
        description="ISO 4217 currency code of their orders and credit limit."
    )
    blocked: bool = strawberry.field(
        description=("True when the shop stopped taking this customer's orders (CUSTOMER_BLOCKED).")
    )
    created_at: datetime.datetime = strawberry.field(
        description="When the customer was created (ISO 8601, UTC)."
    )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Customer:
        return cls(
            id=strawberry.ID(str(row["id"])),
            email=row["email"],
            name=row["name"],
            credit_limit=from_minor(row["credit_limit_minor"], row["currency"]),
            currency=row["currency"],
            blocked=row["blocked"],
            created_at=row["created_at"],
        )


@strawberry.type(description="A product the shop sells (admins and staff).")
class Product:
    id: strawberry.ID = strawberry.field(description="The product's id.")
    sku: str = strawberry.field(
        description="The stock-keeping unit, unique; order lines name products by it."
    )
    name: str = strawberry.field(
        description="The product's name, as order lines and pick lists show it."
    )
    list_price: Decimal = strawberry.field(
        description=(
            "The price of one unit in the product's currency; a line without "
            "unitPrice is charged this."
        )
    )
    currency: str = strawberry.field(description="ISO 4217 currency code of listPrice.")
    stock_on_hand: int = strawberry.field(description="Units in the warehouse.")
    stock_reserved: int = strawberry.field(
        description="Units reserved for approved orders that have not shipped."
    )
    active: bool = strawberry.field(
        description=(
            "False when the product is no longer sold: new order lines naming it "
            "are refused (INACTIVE_SKU)."
        )
    )
    bin_location: str = strawberry.field(
        description=(
            "Where pickers find it in the warehouse (shown on pick lists); empty when not set."
        )
    )

    @strawberry.field(description="Stock on hand that is not reserved.")
    def stock_available(self) -> int:
        return self.stock_on_hand - self.stock_reserved

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Product:
        return cls(
            id=strawberry.ID(str(row["id"])),
            sku=row["sku"],
            name=row["name"],
            list_price=from_minor(row["list_price_minor"], row["currency"]),
            currency=row["currency"],
            stock_on_hand=row["stock_on_hand"],
            stock_reserved=row["stock_reserved"],
            active=row["active"],
            bin_location=row["bin_location"],
        )


# -- Orders ----------------------------------------------------------------------------------


@strawberry.type(description="Where an order is shipped, as the customer gave it.")
class Address:
    name: str = strawberry.field(description="Who receives the parcel.")
    line1: str = strawberry.field(description="Street and number.")
    line2: str | None = strawberry.field(
        description="More of the address (flat, floor); null when not given."
    )
    city: str = strawberry.field(description="The town or city.")
    postal_code: str = strawberry.field(
        description="The postal code, as written in the destination country."
    )
    country: str = strawberry.field(description="ISO 3166-1 alpha-2 country code, such as GB.")
    phone: str | None = strawberry.field(
        description="A phone number for the carrier; null when not given."
    )


@strawberry.type(description="One line of an order: a product and how many.")
class OrderLine:
    line_no: int = strawberry.field(
        description=(
            "The line's number in its order, from 1; shipments, picks and "
            "statements name lines by it."
        )
    )
    sku: str = strawberry.field(description="The product's SKU.")
    name: str = strawberry.field(description="The product's name when the order was placed.")
    quantity: int = strawberry.field(description="Units ordered.")
    unit_price: Decimal = strawberry.field(
        description="The price of one unit, in the order's currency."
    )
    total: Decimal = strawberry.field(description="quantity times unitPrice.")


@strawberry.type(description="One step of an order's timeline: who did what, and when.")
class OrderEvent:
    id: strawberry.ID = strawberry.field(
        description="The event's id, increasing in the order events happened."
    )
    order_id: strawberry.ID = strawberry.field(description="The order's id (Order.id).")
    type: str = strawberry.field(
        description=(
            "What happened: submitted, transition, assigned, tracking, an alert's "
            "opening... Stages and plugins add types, so it is not a closed list."
        )
    )
    from_status: str | None = strawberry.field(
        description="The status before a transition (a state of statusGraph); null for "
        "other events."
    )
    to_status: str | None = strawberry.field(
        description="The status after a transition (a state of statusGraph); null for other events."
    )
    actor: str = strawberry.field(
        description=(
            "Who did it, as role:name (staff:pia); a customer sees other people's "
            "names only as their role."
        )
    )
    data: JSON = strawberry.field(
        description=(
            "The event's details (a transition's reason, an assignment's team...), as JSON."
        )
    )
    at: datetime.datetime = strawberry.field(description="When it happened (ISO 8601, UTC).")

    @classmethod
    def from_view(cls, view: OrderEventView, principal: Principal) -> OrderEvent:
        """The event as ``principal`` sees it (``actor_seen_by``)."""
        return cls(
            id=strawberry.ID(str(view.id)),
            order_id=order_global_id(view.order_id),
            type=view.type,
            from_status=view.from_status,
            to_status=view.to_status,
            actor=actor_seen_by(principal, view.actor),
            data=view.data,
            at=view.at,
        )


@strawberry.type(description="What one review rule found in one round of review.")
class ReviewFinding:
    round: int = strawberry.field(
        description="The round of review, from 1; each resubmission starts another."
    )
    rule: str = strawberry.field(
        description=(
            "The rule's name (credit_limit, stock, price_policy, manual_review, or a plugin's)."
        )
    )
    outcome: FindingOutcome = strawberry.field(description="What the rule decided.")
    code: str = strawberry.field(
        description="The rule's own code for what it found (its plugin decides the list)."
    )
    message: str = strawberry.field(description="For customers, the wording meant for them.")
    data: JSON | None = strawberry.field(description="Details for staff; null for customers.")
    at: datetime.datetime = strawberry.field(description="When the rule decided (ISO 8601, UTC).")

    @classmethod
    def from_row(cls, row: dict[str, Any], *, for_customer: bool) -> ReviewFinding:
        data = row["data"]
        return cls(
            round=row["round"],
            rule=row["rule"],
            outcome=FindingOutcome(row["outcome"]),
            code=row["code"],
            message=row["customer_message"] if for_customer else row["message"],
            data=None if for_customer else (json.loads(data) if isinstance(data, str) else data),
            at=row["at"],
        )


@strawberry.type(
    name="Transition", description="A named move of the status graph: from some states to one."
)
class TransitionType:
    name: str = strawberry.field(
        description="Its name, which transitionOrder takes (approve, cancel...)."
    )
    from_: list[str] = strawberry.field(
        name="from", description="The states of statusGraph it may be fired from."
    )
    to: str = strawberry.field(description="The state of statusGraph it moves the order to.")
    roles: list[RoleType] = strawberry.field(description="The roles that may fire it.")
    description: str = strawberry.field(description="What it means, in a sentence.")

    @classmethod
    def from_transition(cls, t: Transition) -> TransitionType:
        return cls(
            name=t.name,
            from_=list(t.sources),
            to=t.target,
            roles=[RoleType(r) for r in sorted(r.value for r in t.roles)],
            description=t.description,
        )


@strawberry.type(
    description=(
        "An order, from its submission to its settlement. Customers see their own, "
        "staff of a team their team's, admins and other staff every order; integrators "
        "none."
    )
)
class Order(Node):
    database_id: int = strawberry.field(
        description=(
            "The order's number in the database, as in its number (SO-000013 is "
            "13), webhooks and e-mails; arguments that take the id take it too."
        )
    )
    number: str = strawberry.field(
        description="The order's number, such as SO-000013: what customers and staff quote."
    )
    channel: str = strawberry.field(
        description=("The channel it came through: web, csv, shopify, woocommerce or a plugin's.")
    )
    external_id: str = strawberry.field(
        description=("The channel's own id of the order; one order per channel and external id.")
    )
    status: str = strawberry.field(
        description=(
            "Where it is in the status graph: RECEIVED, IN_REVIEW, ON_HOLD, "
            "APPROVED, PROCESSING, SHIPPED, DELIVERED, COMPLETED, SETTLED, "
            "REJECTED, CANCELLED, or a state a plugin adds. A String, not an enum, "
            "because plugins add states: statusGraph lists them all."
        )
    )
    type: str = strawberry.field(
        description=(
            "The order's type, such as standard or wholesale (free text, at most 32"
            " characters); assignment rules may route by it."
        )
    )
    priority: Priority = strawberry.field(
        description="How urgent it is: review, assignment and due times follow it."
    )
    currency: str = strawberry.field(
        description="ISO 4217 currency code of every amount of the order."
    )
    subtotal: Decimal = strawberry.field(description="The sum of the lines' totals, in currency.")
    total: Decimal = strawberry.field(
        description=(
            "What the order comes to as submitted, in currency (the statement's "
            "total is the final amount)."
        )
    )
    version: int = strawberry.field(
        description=(
            "Increases with every change of status; pass it as expectedVersion so "
            "that a change made in between is not overwritten (VERSION_CONFLICT)."
        )
    )
    note: str = strawberry.field(description="The customer's or channel's note; empty when none.")
    shipping_address: Address = strawberry.field(description="Where it is shipped.")
    created_at: datetime.datetime = strawberry.field(
        description="When it was submitted (ISO 8601, UTC)."
    )
    updated_at: datetime.datetime = strawberry.field(
        description="When it last changed (ISO 8601, UTC)."
    )
    customer_id: strawberry.Private[int]
    order_id: strawberry.Private[int]

    @classmethod
    def from_view(cls, view: OrderView) -> Order:
        address = view.shipping_address
        return cls(
            id=order_global_id(view.id),
            database_id=view.id,
            number=view.number,
            channel=view.channel,
            external_id=view.external_id,
            status=view.status,
            type=view.type,
            priority=Priority(view.priority),
            currency=view.currency,
            subtotal=view.subtotal,
            total=view.total,
            version=view.version,
            note=view.note,
            shipping_address=Address(
                name=address.get("name", ""),
                line1=address.get("line1", ""),
                line2=address.get("line2"),
                city=address.get("city", ""),
                postal_code=address.get("postalCode", ""),
                country=address.get("country", ""),
                phone=address.get("phone"),
            ),
            created_at=view.created_at,
            updated_at=view.updated_at,
            customer_id=view.customer_id,
            order_id=view.id,
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Order:
        return cls.from_view(order_view(row))

    def _caller(self, info: Info, *roles: Role) -> Principal:
        """The caller, checked again here: an order also reaches callers through plugins'
        fields and duplicate submissions, not only through the core's queries."""
        principal = require(info, *roles)
        if not principal.may_see_customer(self.customer_id):
            raise ApiError(CoreErrorCode.NOT_FOUND, f"There is no order {self.order_id}.")
        return principal

    @strawberry.field(
        graphql_type=Customer | None, description="Who ordered it; null for integrators."
    )
    def customer(self, info: Info) -> AwaitableOrValue[Customer | None]:
        self._caller(info, *READERS)
        return when_loaded(info.context.loaders.customers.load(self.customer_id), _customer)

    @strawberry.field(graphql_type=list[OrderLine], description="Its lines, by line number.")
    def lines(self, info: Info) -> AwaitableOrValue[list[OrderLine]]:
        self._caller(info)
        return when_loaded(info.context.loaders.lines.load(self.order_id), self._lines)

    def _lines(self, rows: list[dict[str, Any]]) -> list[OrderLine]:
        return [
            OrderLine(
                line_no=r["line_no"],
                sku=r["sku"],
                name=r["name"],
                quantity=r["quantity"],
                unit_price=from_minor(r["unit_price_minor"], self.currency),
                total=from_minor(r["total_minor"], self.currency),
            )
            for r in rows
        ]

    @strawberry.field(description="The timeline, oldest first.", graphql_type=list[OrderEvent])
    def events(self, info: Info) -> AwaitableOrValue[list[OrderEvent]]:
        principal = self._caller(info, *READERS)

        def visible(rows: list[dict[str, Any]]) -> list[OrderEvent]:
            return [
                OrderEvent.from_view(event_view(row), principal)
                for row in rows
                if may_see_event(principal, row["type"])
            ]

        return when_loaded(info.context.loaders.events.load(self.order_id), visible)

    @strawberry.field(
        description="What each review rule found, every round, oldest first.",
        graphql_type=list[ReviewFinding],
    )
    def review_findings(self, info: Info) -> AwaitableOrValue[list[ReviewFinding]]:
        for_customer = self._caller(info, *READERS).role == Role.CUSTOMER

        def findings(rows: list[dict[str, Any]]) -> list[ReviewFinding]:
            return [ReviewFinding.from_row(row, for_customer=for_customer) for row in rows]

        return when_loaded(info.context.loaders.findings.load(self.order_id), findings)

    @strawberry.field(description="The transitions the caller may fire from the current status.")
    def available_transitions(self, info: Info) -> list[TransitionType]:
        principal = self._caller(info)
        return [
            TransitionType.from_transition(t)
            for t in info.context.rt.graph.available(self.status, principal.role)
        ]


def extend_order(part: type) -> type:
    """Give ``Order`` the fields of the strawberry type ``part``: how a stage's API adds
    what it knows of an order (its tasks, its statement) without this module importing
    the stage. Each field's resolver takes the order as ``root``. Call it when the
    stage's module is imported, before the schema is built; a name ``Order`` has
    already is an error."""
    fields = Order.__strawberry_definition__.fields
    taken = {f.python_name for f in fields}
    for f in part.__strawberry_definition__.fields:
        if f.python_name in taken:
            raise ValueError(f"Order.{f.python_name} is defined twice")
        fields.append(f)
    return part


def _customer(row: dict[str, Any] | None) -> Customer | None:
    return Customer.from_row(row) if row else None


# The fields of Order that a loader answers: the loader, and the key it loads by.
_LOADED: dict[str, tuple[str, Callable[[Order], int]]] = {
    "customer": ("customers", lambda order: order.customer_id),
    "lines": ("lines", lambda order: order.order_id),
    "events": ("events", lambda order: order.order_id),
    "reviewFindings": ("findings", lambda order: order.order_id),
}


async def preload_orders(info: Info, orders: list[Order], *path: str) -> None:
    """Load what the query selects of ``orders`` (at ``path`` under the current field,
    ``"edges", "node"`` for a connection), one batch per field for the whole list, so
    that each order's fields answer at once (``when_loaded``)."""
    if not orders:
        return
    wanted = selected_names(info.selected_fields, info.field_name, *path)
    loaders = info.context.loaders
    await preload(
        (getattr(loaders, loader), [key(order) for order in orders])
        for name, (loader, key) in _LOADED.items()
        if name in wanted
    )


# -- Status graph, plugins, me -------------------------------------------------------------


@strawberry.type(description="A status of the graph and how many orders are in it.")
class StatusState:
    name: str = strawberry.field(
        description="The state, as Order.status says it: plugins add states, so this list "
        "is the one to read."
    )
    description: str = strawberry.field(description="What it means, in a sentence.")
    count: int = strawberry.field(description="Orders in this state that the caller may see.")


@strawberry.type(
    description=(
        "The status graph orders move through, with the states and transitions plugins add."
    )
)
class StatusGraph:
    initial: str = strawberry.field(description="The status a new order gets (RECEIVED).")
    states: list[StatusState] = strawberry.field(description="Every status, in the graph's order.")
    transitions: list[TransitionType] = strawberry.field(description="Every named transition.")


@strawberry.type(description="A setting a plugin (or a promotion kind's argument) accepts.")
class PluginSetting:
    name: str = strawberry.field(
        description="Its name in ordergraph.toml (or in a promotion's arguments)."
    )
    type: str = strawberry.field(
        description="Its type: str, int, bool, decimal, list[str], or table of a type."
    )
    required: bool = strawberry.field(description="True when it must be given.")
    secret: bool = strawberry.field(description="True when its value is masked in answers.")
    description: str = strawberry.field(description="What it sets.")
    default: JSON | None = strawberry.field(
        description="The value when not given; null for secrets and when there is none."
    )


@strawberry.type(description="An installed plugin (admins).")
class Plugin:
    name: str = strawberry.field(
        description="Its name, as ordergraph.toml's [plugins.NAME] table names it."
    )
    category: PluginCategory = strawberry.field(description="What it is for.")
    description: str = strawberry.field(description="What it does, in a sentence.")
    enabled: bool = strawberry.field(
        description="Whether it runs (enabled = true in ordergraph.toml, or on by default)."
    )
    schema: list[PluginSetting] = strawberry.field(description="The settings it accepts.")
    settings: JSON = strawberry.field(description="Its current settings; secrets are masked.")

    @classmethod
    def from_loaded(cls, plugin: LoadedPlugin) -> Plugin:
        return cls(
            name=plugin.name,
            category=PluginCategory(plugin.info.category),
            description=plugin.info.description,
            enabled=plugin.enabled,
            schema=[
                PluginSetting(
                    name=s.name,
                    type=s.type_name,
                    required=s.required,
                    secret=s.secret,
                    description=s.description,
                    default=None if s.secret else _jsonable(s.default),
                )
                for s in plugin.info.settings
            ],
            settings={k: _jsonable(v) for k, v in plugin.masked_settings().items()},
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return str(value) if isinstance(value, Decimal) else value


@strawberry.type(description="The caller, as its token says.")
class Me:
    role: RoleType = strawberry.field(description="The token's role.")
    name: str = strawberry.field(
        description="The token's name: a staff member's is their name in teams."
    )
    customer_id: strawberry.ID | None = strawberry.field(
        description="A customer's id (Customer.id); null for other roles."
    )
    team: str | None = strawberry.field(
        description=("A staff token's team: it sees that team's orders only; null for every order.")
    )
