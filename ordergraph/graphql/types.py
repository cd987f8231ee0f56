"""GraphQL object types. Resolvers that expose data check the caller themselves."""

from __future__ import annotations

import base64
import datetime
import functools
import json
import typing
from collections.abc import Awaitable, Callable
from decimal import Decimal
from enum import Enum
from typing import Any, Generic, TypeVar

import strawberry
from strawberry.scalars import JSON
from strawberry.utils.await_maybe import AwaitableOrValue

from ordergraph.core.auth import Principal, Role
from ordergraph.core.errors import DomainError
from ordergraph.core.errors import ErrorCode as CoreErrorCode
from ordergraph.core.limits import MAX_ID, shown
from ordergraph.core.money import from_minor
from ordergraph.core.orders import (
    OrderEventView,
    OrderView,
    actor_seen_by,
    event_view,
    may_see_event,
    order_view,
)
from ordergraph.core.plugins import LoadedPlugin
from ordergraph.core.statusgraph import Transition
from ordergraph.graphql.context import READERS, ApiError, Info, require
from ordergraph.graphql.loaders import preload, selected_names, when_loaded

ErrorCode = strawberry.enum(CoreErrorCode, description="Stable error codes.")


@strawberry.enum
class Priority(Enum):
    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"
    URGENT = "URGENT"


@strawberry.type(description="One thing wrong with the input or the action.")
class UserError:
    field: str | None
    code: ErrorCode
    message: str


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


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    node: T
    cursor: str


# totalCount stops counting here unless the per-status counts can answer: a filter that
# matches most of a million orders would otherwise read them all on every page.
COUNT_CAP = 10_000


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
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
    kind: str, nodes: list[Any], keys: list[int], has_next: bool, total: int
) -> Connection[Any]:
    edges = [Edge(node=n, cursor=encode_cursor(kind, k)) for n, k in zip(nodes, keys, strict=True)]
    return Connection(
        edges=edges,
        page_info=PageInfo(has_next_page=has_next, end_cursor=edges[-1].cursor if edges else None),
        total_count=total,
    )


# -- Master data ---------------------------------------------------------------------------


@strawberry.type
class Customer:
    id: strawberry.ID
    email: str
    name: str
    credit_limit: Decimal
    currency: str
    blocked: bool
    created_at: datetime.datetime

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


@strawberry.type
class Product:
    id: strawberry.ID
    sku: str
    name: str
    list_price: Decimal
    currency: str
    stock_on_hand: int
    stock_reserved: int
    active: bool
    bin_location: str

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


@strawberry.type
class Address:
    name: str
    line1: str
    line2: str | None
    city: str
    postal_code: str
    country: str
    phone: str | None


@strawberry.type
class OrderLine:
    line_no: int
    sku: str
    name: str
    quantity: int
    unit_price: Decimal
    total: Decimal


@strawberry.type
class OrderEvent:
    id: strawberry.ID
    order_id: strawberry.ID
    type: str
    from_status: str | None
    to_status: str | None
    actor: str
    data: JSON
    at: datetime.datetime

    @classmethod
    def from_view(cls, view: OrderEventView, principal: Principal) -> OrderEvent:
        """The event as ``principal`` sees it (``actor_seen_by``)."""
        return cls(
            id=strawberry.ID(str(view.id)),
            order_id=strawberry.ID(str(view.order_id)),
            type=view.type,
            from_status=view.from_status,
            to_status=view.to_status,
            actor=actor_seen_by(principal, view.actor),
            data=view.data,
            at=view.at,
        )


@strawberry.type
class ReviewFinding:
    round: int
    rule: str
    outcome: str = strawberry.field(description="pass, fail or hold.")
    code: str
    message: str = strawberry.field(description="For customers, the wording meant for them.")
    data: JSON | None = strawberry.field(description="Details for staff; null for customers.")
    at: datetime.datetime

    @classmethod
    def from_row(cls, row: dict[str, Any], *, for_customer: bool) -> ReviewFinding:
        data = row["data"]
        return cls(
            round=row["round"],
            rule=row["rule"],
            outcome=row["outcome"],
            code=row["code"],
            message=row["customer_message"] if for_customer else row["message"],
            data=None if for_customer else (json.loads(data) if isinstance(data, str) else data),
            at=row["at"],
        )


@strawberry.type(name="Transition")
class TransitionType:
    name: str
    from_: list[str] = strawberry.field(name="from")
    to: str
    roles: list[str]
    description: str

    @classmethod
    def from_transition(cls, t: Transition) -> TransitionType:
        return cls(
            name=t.name,
            from_=list(t.sources),
            to=t.target,
            roles=sorted(r.value for r in t.roles),
            description=t.description,
        )


@strawberry.type
class Order:
    id: strawberry.ID
    number: str
    channel: str
    external_id: str
    status: str
    type: str
    priority: Priority
    currency: str
    subtotal: Decimal
    total: Decimal
    version: int
    note: str
    shipping_address: Address
    created_at: datetime.datetime
    updated_at: datetime.datetime
    customer_id: strawberry.Private[int]
    order_id: strawberry.Private[int]

    @classmethod
    def from_view(cls, view: OrderView) -> Order:
        address = view.shipping_address
        return cls(
            id=strawberry.ID(str(view.id)),
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

    @strawberry.field(graphql_type=Customer | None)
    def customer(self, info: Info) -> AwaitableOrValue[Customer | None]:
        self._caller(info, *READERS)
        return when_loaded(info.context.loaders.customers.load(self.customer_id), _customer)

    @strawberry.field(graphql_type=list[OrderLine])
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


@strawberry.type
class StatusState:
    name: str
    description: str
    count: int = strawberry.field(description="Orders in this state that the caller may see.")


@strawberry.type
class StatusGraph:
    initial: str
    states: list[StatusState]
    transitions: list[TransitionType]


@strawberry.type
class PluginSetting:
    name: str
    type: str
    required: bool
    secret: bool
    description: str
    default: JSON | None


@strawberry.type
class Plugin:
    name: str
    category: str
    description: str
    enabled: bool
    schema: list[PluginSetting] = strawberry.field(description="The settings it accepts.")
    settings: JSON = strawberry.field(description="Its current settings; secrets are masked.")

    @classmethod
    def from_loaded(cls, plugin: LoadedPlugin) -> Plugin:
        return cls(
            name=plugin.name,
            category=plugin.info.category,
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


@strawberry.type
class Me:
    role: str
    name: str
    customer_id: strawberry.ID | None
    team: str | None
