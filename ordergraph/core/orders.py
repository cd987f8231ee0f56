"""Orders: the draft a channel submits, its validation, storage and the read model."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ordergraph.core import db, jobs, scope
from ordergraph.core.auth import Principal, Role
from ordergraph.core.errors import DomainError, ErrorCode, Problem, is_unique_violation
from ordergraph.core.limits import (
    ADDRESS_FIELD,
    CHANNEL,
    CUSTOMER_NAME,
    EMAIL,
    EXTERNAL_ID,
    MAX_ID,
    NOTE,
    SKU,
    is_email,
    shown,
)
from ordergraph.core.money import (
    MAX_MINOR,
    from_minor,
    is_iso_currency,
    parse_amount,
    to_minor,
)
from ordergraph.core.tables import Customer, Order, OrderEvent, OrderLine, OutboxJob

if TYPE_CHECKING:
    from piccolo.table import Table

    from ordergraph.core.runtime import Runtime

log = logging.getLogger(__name__)
PRIORITIES = ("LOW", "NORMAL", "HIGH", "URGENT")
MAX_LINES = 500
MAX_QUANTITY = 1_000_000
ADDRESS_REQUIRED = ("name", "line1", "city", "postalCode", "country")
_NUMBER = re.compile(r"(?:SO-)?0*([0-9]{1,10})", re.IGNORECASE)


def order_number(order_id: int) -> str:
    """The human number of an order, derived from its id: ``SO-000123``."""
    return f"SO-{order_id:06d}"


def parse_order_number(number: str) -> int | None:
    """The order id an order number names, or None when no order can have that number."""
    match = _NUMBER.fullmatch(number.strip())
    order_id = int(match.group(1)) if match else 0
    return order_id if 0 < order_id <= MAX_ID else None


@dataclass
class LineDraft:
    sku: str
    quantity: Any
    unit_price: Any = None


@dataclass
class OrderDraft:
    """An order as a channel received it, before validation; values may be wrong."""

    channel: str
    external_id: str
    lines: list[LineDraft]
    customer_id: int | None = None
    customer_email: str | None = None
    customer_name: str | None = None
    shipping_address: dict[str, Any] = field(default_factory=dict)
    currency: str | None = None
    type: str = "standard"
    priority: str = "NORMAL"
    note: str = ""


@dataclass(frozen=True)
class LineView:
    line_no: int
    sku: str
    name: str
    quantity: int
    unit_price: Decimal
    total: Decimal


@dataclass(frozen=True)
class OrderView:
    """A read-only snapshot of an order, as hooks receive it."""

    id: int
    number: str
    channel: str
    external_id: str
    customer_id: int
    status: str
    version: int
    type: str
    priority: str
    currency: str
    subtotal: Decimal
    total: Decimal
    shipping_address: dict[str, Any]
    note: str
    created_at: datetime
    updated_at: datetime
    lines: tuple[LineView, ...] = ()


@dataclass(frozen=True)
class OrderEventView:
    id: int
    order_id: int
    type: str
    from_status: str | None
    to_status: str | None
    actor: str
    data: dict[str, Any]
    at: datetime


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def order_view(row: dict[str, Any], lines: Sequence[dict[str, Any]] = ()) -> OrderView:
    currency = row["currency"]
    return OrderView(
        id=row["id"],
        number=order_number(row["id"]),
        channel=row["channel"],
        external_id=row["external_id"],
        customer_id=row["customer"],
        status=row["status"],
        version=row["version"],
        type=row["type"],
        priority=row["priority"],
        currency=currency,
        subtotal=from_minor(row["subtotal_minor"], currency),
        total=from_minor(row["total_minor"], currency),
        shipping_address=_json(row["shipping_address"]) or {},
        note=row["note"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        lines=tuple(
            LineView(
                line_no=line["line_no"],
                sku=line["sku"],
                name=line["name"],
                quantity=line["quantity"],
                unit_price=from_minor(line["unit_price_minor"], currency),
                total=from_minor(line["total_minor"], currency),
            )
            for line in sorted(lines, key=lambda line: line["line_no"])
        ),
    )


INTERNAL_EVENT_TYPES = frozenset(
    {
        "plugin_failed",
        "alert_opened",
        "alert_acknowledged",
        "alert_resolved",
        "notification",
        "payment_held",
        "assigned",
        "queued",
        "released",
        "handed_back",
        "task_started",
        "task_completed",
        "label_bought",
    }
)
"""Event types for staff only: they name plugins and quote their errors, or tell who in
the shop was given or did which piece of work."""


def may_see_event(principal: Principal, event_type: str) -> bool:
    """Whether ``principal`` may see an order event of this type on an order they may see.

    The one rule for the timeline (``Order.events``) and the live feed (``orderEvents``).
    """
    return principal.role != Role.CUSTOMER or event_type not in INTERNAL_EVENT_TYPES


def actor_seen_by(principal: Principal, actor: str) -> str:
    """An event's actor as ``principal`` sees it: a customer sees that the shop acted
    (``staff``), never which member of staff or admin did."""
    role, _, _ = actor.partition(":")
    if principal.role == Role.CUSTOMER and role in (Role.STAFF, Role.ADMIN):
        return Role.STAFF.value
    return actor


def event_view(row: dict[str, Any]) -> OrderEventView:
    return OrderEventView(
        id=row["id"],
        order_id=row["order"],
        type=row["type"],
        from_status=row["from_status"],
        to_status=row["to_status"],
        actor=row["actor"],
        data=_json(row["data"]) or {},
        at=row["at"],
    )


_LINE_COLUMNS = ("line_no", "sku", "name", "quantity", "unit_price_minor", "total_minor")
_ORDER_COLUMNS = tuple(column._meta.db_column_name for column in Order._meta.columns)
_EVENT_COLUMNS = tuple(column._meta.db_column_name for column in OrderEvent._meta.columns)


async def load_order_with(
    order_id: int, *columns: str, join: str = ""
) -> tuple[OrderView | None, list[dict[str, Any]]]:
    """The order with its lines in one statement, and the rows it read (one per line).

    ``columns`` are more SQL expressions for those rows, on ``o`` (the order), ``l``
    (the line) and the tables ``join`` adds, each named ``AS "something.name"``.
    """
    found = await _load_orders_where("o.id = {}", order_id, columns, join)
    return found.get(order_id, (None, []))


async def load_orders_with(
    order_ids: Sequence[int], *columns: str, join: str = ""
) -> dict[int, tuple[OrderView, list[dict[str, Any]]]]:
    """``load_order_with`` for several orders in one statement, by id (found ones only)."""
    return await _load_orders_where(*db.one_of("o.id", order_ids), columns, join)


async def _load_orders_where(
    where: str, argument: Any, columns: Sequence[str], join: str
) -> dict[int, tuple[OrderView, list[dict[str, Any]]]]:
    selected = ", ".join(
        ["o.*", *(f'l.{column} AS "line.{column}"' for column in _LINE_COLUMNS), *columns]
    )
    rows = await db.raw(
        f'SELECT {selected} FROM orders o LEFT JOIN order_lines l ON l."order" = o.id {join} '
        f"WHERE {where}",
        argument,
    )
    by_order: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_order.setdefault(row["id"], []).append(row)
    found = {}
    for order_id, order_rows in by_order.items():
        lines = [
            {column: row[f"line.{column}"] for column in _LINE_COLUMNS}
            for row in order_rows
            if row["line.line_no"] is not None
        ]
        found[order_id] = (order_view(order_rows[0], lines), order_rows)
    return found


async def load_order(order_id: int) -> OrderView | None:
    """The order with its lines (one statement), or None."""
    return (await load_order_with(order_id))[0]


# -- Validation ------------------------------------------------------------------------


@dataclass
class _Valid:
    customer_id: int | None
    new_customer: dict[str, Any] | None
    currency: str
    lines: list[dict[str, Any]]
    subtotal_minor: int


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _quantity(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value.strip()):
        return int(value.strip())
    return None


async def _customer(column: str, value: Any) -> dict[str, Any] | None:
    rows = await db.select_in("customers", column, [value])
    return rows[0] if rows else None


async def _resolve_customer(
    draft: OrderDraft, principal: Principal, problems: list[Problem]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(existing customer row, or a customer to create) for the draft."""
    if principal.role == Role.CUSTOMER:
        return await _customer("id", principal.customer_id), None
    if draft.customer_id is not None:
        known = 0 < draft.customer_id <= MAX_ID
        row = await _customer("id", draft.customer_id) if known else None
        if row is None:
            problems.append(
                Problem(
                    ErrorCode.UNKNOWN_CUSTOMER,
                    f"There is no customer with id {draft.customer_id}.",
                    "customerId",
                )
            )
        return row, None
    email = _text(draft.customer_email).lower()
    if not email:
        problems.append(
            Problem(
                ErrorCode.REQUIRED, "Give the customer's id or e-mail address.", "customerEmail"
            )
        )
        return None, None
    if not EMAIL.check(email, "customerEmail", problems):
        return None, None
    if not is_email(email):
        problems.append(
            Problem(
                ErrorCode.INVALID_VALUE, f"{email!r} is not an e-mail address.", "customerEmail"
            )
        )
        return None, None
    row = await _customer("email", email)
    if row is not None:
        return row, None
    if not CUSTOMER_NAME.check(_text(draft.customer_name), "customerName", problems):
        return None, None
    # The shipping address's name is checked with the address, to a customer name's limit.
    name = _text(draft.customer_name) or _text(draft.shipping_address.get("name"))
    if not name:
        problems.append(
            Problem(
                ErrorCode.UNKNOWN_CUSTOMER,
                f"No customer has the e-mail {email}; give a customer name to create one.",
                "customerName",
            )
        )
        return None, None
    return None, {"email": email, "name": name}


def _check_address(address: dict[str, Any], problems: list[Problem]) -> None:
    for key, value in address.items():
        if isinstance(value, str):
            ADDRESS_FIELD.check(value, f"shippingAddress.{key}", problems)
    for key in ADDRESS_REQUIRED:
        if not _text(address.get(key)):
            problems.append(
                Problem(
                    ErrorCode.REQUIRED,
                    f"The shipping address needs a {key}.",
                    f"shippingAddress.{key}",
                )
            )
    country = _text(address.get("country"))
    if country and not re.fullmatch(r"[A-Za-z]{2}", country):
        problems.append(
            Problem(
                ErrorCode.INVALID_VALUE,
                "The country must be a two-letter ISO code such as DE or US.",
                "shippingAddress.country",
            )
        )


async def validate_draft(
    draft: OrderDraft, principal: Principal
) -> tuple[list[Problem], _Valid | None]:
    """Every problem with ``draft`` at once; the cleaned values when there are none."""
    problems: list[Problem] = []
    external_id = _text(draft.external_id)
    if not external_id:
        problems.append(Problem(ErrorCode.REQUIRED, "Give the order's external id.", "externalId"))
    else:
        EXTERNAL_ID.check(external_id, "externalId", problems)
    CHANNEL.check(draft.channel, "channel", problems)
    customer, new_customer = await _resolve_customer(draft, principal, problems)
    currency = _text(draft.currency).upper() or (customer["currency"] if customer else "")
    if not currency:
        problems.append(Problem(ErrorCode.REQUIRED, "Give the order's currency.", "currency"))
    elif not is_iso_currency(currency):
        problems.append(
            Problem(
                ErrorCode.INVALID_CURRENCY,
                f"{shown(repr(draft.currency))} is not a currency code such as EUR or USD.",
                "currency",
            )
        )
    if draft.priority not in PRIORITIES:
        problems.append(
            Problem(
                ErrorCode.INVALID_VALUE,
                f"The priority must be one of {', '.join(PRIORITIES)}.",
                "priority",
            )
        )
    if not re.fullmatch(r"[a-z0-9_]{1,32}", draft.type or ""):
        problems.append(
            Problem(
                ErrorCode.INVALID_VALUE,
                "The type must be 1 to 32 lowercase letters, digits or underscores.",
                "type",
            )
        )
    NOTE.check(draft.note or "", "note", problems)
    _check_address(draft.shipping_address or {}, problems)

    lines: list[dict[str, Any]] = []
    if not draft.lines:
        problems.append(Problem(ErrorCode.REQUIRED, "An order needs at least one line.", "lines"))
    elif len(draft.lines) > MAX_LINES:
        problems.append(
            Problem(ErrorCode.INVALID_VALUE, f"An order has at most {MAX_LINES} lines.", "lines")
        )
    skus = {
        sku
        for sku in (_text(line.sku) for line in draft.lines[:MAX_LINES])
        if sku and SKU.problem(sku, None) is None
    }
    products = {p["sku"]: p for p in await db.select_in("products", "sku", sorted(skus))}
    subtotal = 0
    for index, line in enumerate(draft.lines[:MAX_LINES]):
        where = f"lines[{index}]"
        sku = _text(line.sku)
        product = products.get(sku)
        if not sku:
            problems.append(Problem(ErrorCode.REQUIRED, "Give the SKU.", f"{where}.sku"))
        elif SKU.check(sku, f"{where}.sku", problems):
            if product is None:
                problems.append(
                    Problem(ErrorCode.UNKNOWN_SKU, f"We do not sell SKU {sku}.", f"{where}.sku")
                )
            elif not product["active"]:
                problems.append(
                    Problem(ErrorCode.INACTIVE_SKU, f"SKU {sku} is no longer sold.", f"{where}.sku")
                )
        quantity = _quantity(line.quantity)
        if quantity is None or not 0 < quantity <= MAX_QUANTITY:
            problems.append(
                Problem(
                    ErrorCode.INVALID_QUANTITY,
                    f"The quantity must be a whole number from 1 to {MAX_QUANTITY} "
                    f"(got {shown(repr(line.quantity))}).",
                    f"{where}.quantity",
                )
            )
        unit_minor = None
        if line.unit_price is None or line.unit_price == "":
            if product is not None and is_iso_currency(currency):
                if product["currency"] != currency:
                    problems.append(
                        Problem(
                            ErrorCode.CURRENCY_MISMATCH,
                            f"SKU {sku} is priced in {product['currency']}, not {currency}; "
                            "give a unit price.",
                            f"{where}.unitPrice",
                        )
                    )
                else:
                    unit_minor = product["list_price_minor"]
        else:
            try:
                price = parse_amount(line.unit_price)
                if price < 0:
                    raise ValueError("a price cannot be negative")
                if is_iso_currency(currency):
                    unit_minor = to_minor(price, currency)
            except ValueError as exc:
                problems.append(
                    Problem(
                        ErrorCode.INVALID_PRICE,
                        f"The unit price {shown(str(line.unit_price))} is not valid: {exc}.",
                        f"{where}.unitPrice",
                    )
                )
        if product is not None and quantity and unit_minor is not None:
            total = quantity * unit_minor
            subtotal += total
            lines.append(
                {
                    "line_no": index + 1,
                    "sku": sku,
                    "name": product["name"],
                    "quantity": quantity,
                    "unit_price_minor": unit_minor,
                    "total_minor": total,
                }
            )
    if subtotal > MAX_MINOR:
        problems.append(
            Problem(ErrorCode.INVALID_PRICE, "The order's total is too large to store.", "lines")
        )
    if problems:
        return problems, None
    return problems, _Valid(
        customer_id=customer["id"] if customer else None,
        new_customer=new_customer,
        currency=currency,
        lines=lines,
        subtotal_minor=subtotal,
    )


async def validate(rt: Runtime, draft: OrderDraft, principal: Principal) -> _Valid:
    """The core's checks and every plugin's ``validate_order``; raises with all problems."""
    problems, valid = await validate_draft(draft, principal)
    checks = await rt.plugins.call("validate_order", draft=draft)
    for _, plugin_problems in checks.results:
        problems.extend(plugin_problems)
    for failure in checks.failures:
        # Raising DomainError is another way to return problems; other failures are
        # logged by the plugin manager and reject nothing.
        if isinstance(failure.exception, DomainError):
            problems.extend(failure.exception.problems)
    if problems or valid is None:
        raise DomainError(*problems)
    return valid


# -- Submission --------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitResult:
    order: OrderView
    created: bool


async def submit_order(rt: Runtime, draft: OrderDraft, principal: Principal) -> SubmitResult:
    """Validate and store an order in the graph's initial state.

    Raises ``DomainError`` with every problem when the draft is invalid; nothing is
    stored then. The same (channel, external id) submitted again returns the stored
    order with ``created=False``.
    """
    valid = await validate(rt, draft, principal)
    try:
        order, events = await _store(rt, draft, valid, principal)
    except Exception as exc:
        if not is_unique_violation(exc):
            raise
        existing = await _existing(draft, principal)
        if existing is not None:
            return SubmitResult(order=existing, created=False)
        if valid.new_customer is None:
            raise
        # A concurrent order created the same new customer first: use that customer.
        order, events = await _store(rt, draft, await validate(rt, draft, principal), principal)
    await announce(rt, order.customer_id, events)
    return SubmitResult(order=order, created=True)


async def _store(
    rt: Runtime, draft: OrderDraft, valid: _Valid, principal: Principal
) -> tuple[OrderView, list[OrderEventView]]:
    initial = rt.graph.initial
    submitted = NewEvent("submitted", to_status=initial, data={"channel": draft.channel})
    if valid.customer_id is not None and not _plugins_react_to(rt, submitted.type):
        order_id = await db.next_id(Order)
        if order_id is not None:
            # PostgreSQL: the order, its lines, its event and its jobs in one statement.
            (row,) = db.complete_rows(
                Order, [{"id": order_id, **_order_row(draft, valid, valid.customer_id, initial)}]
            )
            order = order_view(row, valid.lines)
            return order, await _submission(rt, order, valid.lines, submitted, principal, row)
    async with db.write_transaction():
        customer_id = valid.customer_id
        if customer_id is None:
            assert valid.new_customer is not None
            inserted = await Customer.insert(
                Customer(**valid.new_customer, currency=valid.currency)
            )
            customer_id = inserted[0]["id"]
        inserted = await db.insert(
            Order, [_order_row(draft, valid, customer_id, initial)], returning=_ORDER_COLUMNS
        )
        order = order_view(inserted[0], valid.lines)
        events = await _submission(rt, order, valid.lines, submitted, principal)
    return order, events


async def _submission(
    rt: Runtime,
    order: OrderView,
    lines: Sequence[dict[str, Any]],
    submitted: NewEvent,
    principal: Principal,
    row: dict[str, Any] | None = None,
) -> list[OrderEventView]:
    """Write a new order's lines (after its ``row``, unless it is stored already), its
    submission, its jobs and what the hooks derive from it, together."""
    written: list[tuple[type[Table], list[dict[str, Any]]]] = []
    if row is not None:
        written.append((Order, [row]))
    written.append((OrderLine, [{"order": order.id, **line} for line in lines]))
    return await insert_events(
        rt,
        [(order.id, order.customer_id, submitted)],
        principal,
        rt.jobs_on_entry(order.id),
        submitted=[order],
        before=written,
    )


def _order_row(draft: OrderDraft, valid: _Valid, customer_id: int, status: str) -> dict[str, Any]:
    return {
        "channel": draft.channel,
        "external_id": _text(draft.external_id),
        "customer": customer_id,
        "type": draft.type,
        "priority": draft.priority,
        "currency": valid.currency,
        "subtotal_minor": valid.subtotal_minor,
        "total_minor": valid.subtotal_minor,
        "status": status,
        "shipping_address": json.dumps(draft.shipping_address),
        "note": draft.note or "",
    }


async def _existing(draft: OrderDraft, principal: Principal) -> OrderView | None:
    """The order already stored for the draft's (channel, external id), if the caller may see it."""
    row = (
        await Order.select(Order.id)
        .where((Order.channel == draft.channel) & (Order.external_id == _text(draft.external_id)))
        .first()
    )
    if row is None:
        return None
    order = await load_order(row["id"])
    assert order is not None
    if not await scope.may_access_order(principal, order.id, customer_id=order.customer_id):
        # An order outside the caller's scope: say the id is taken, never show that order.
        raise DomainError.of(
            ErrorCode.DUPLICATE, "This external id is already in use.", "externalId"
        )
    return order


@dataclass(frozen=True)
class NewEvent:
    """An event to append to an order's timeline."""

    type: str
    from_status: str | None = None
    to_status: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


HOOKS_JOB = "run_order_event_hooks"


def _plugins_react_to(rt: Runtime, event_type: str) -> bool:
    """Whether a plugin reacts to events of this type (``notify``, ``after_transition``)."""
    return rt.plugins.hook_implemented("notify") or (
        event_type == "transition" and rt.plugins.hook_implemented("after_transition")
    )


async def record_events(
    rt: Runtime,
    order: OrderView,
    principal: Principal,
    events: Sequence[NewEvent],
    *,
    more_jobs: Sequence[tuple[str, dict[str, Any]]] = (),
) -> list[OrderEventView]:
    """Append events to an order's timeline in one statement, and in one more the outbox
    jobs: ``more_jobs`` and a hooks job for each event a plugin handles. No plugin, no
    job.

    Call inside ``db.write_transaction()``, and ``announce()`` the events after commit.
    """
    return await insert_events(
        rt, [(order.id, order.customer_id, event) for event in events], principal, more_jobs
    )


async def insert_events(
    rt: Runtime,
    entries: Sequence[tuple[int, int, NewEvent]],
    principal: Principal,
    more_jobs: Sequence[tuple[str, dict[str, Any]]] = (),
    *,
    submitted: Sequence[OrderView] = (),
    before: Sequence[tuple[type[Table], Sequence[dict[str, Any]]]] = (),
) -> list[OrderEventView]:
    """``record_events`` for (order id, customer id, event) entries of any orders, with
    rows to insert before them (``before``: a new order's row and lines) and the records
    the ``events_recorded`` hooks derive from them (``submitted``: the orders whose
    submission the events record).

    The events, their jobs and the derived records are written together, in one
    statement on PostgreSQL and one trip to the writer on SQLite, the hooks seeing the
    events before they have ids; when a plugin reacts to them, its jobs carry the
    events' ids, so the events are written first."""
    if not entries:
        return []
    customer_of = {order_id: customer_id for order_id, customer_id, _ in entries}
    event_rows = db.complete_rows(OrderEvent, _event_rows(entries, principal))
    if any(_plugins_react_to(rt, event.type) for _, _, event in entries):
        for table, rows in before:
            await db.insert(table, rows)
        rows = await db.insert(OrderEvent, event_rows, returning=_EVENT_COLUMNS)
        recorded = sorted((event_view(row) for row in rows), key=lambda event: event.id)
        await db.upsert_all(await derived_writes(rt, recorded, submitted))
        hook_jobs = [
            (HOOKS_JOB, {"event": event_message(event, customer_of[event.order_id])})
            for event in recorded
            if _plugins_react_to(rt, event.type)
        ]
        await jobs.enqueue_many([*hook_jobs, *more_jobs])
        return recorded
    appended = [event_view({"id": 0, **row}) for row in event_rows]
    derived = await derived_writes(rt, appended, submitted)
    job_rows = jobs.outbox_rows(list(more_jobs))
    rows, job_ids = await db.insert_together(
        [*before, (OutboxJob, job_rows), (OrderEvent, event_rows)],
        returning=_EVENT_COLUMNS,
        ids_of=OutboxJob,
        upserts=derived,
    )
    await jobs.written(job_ids, job_rows)
    return sorted((event_view(row) for row in rows), key=lambda event: event.id)


async def derived_writes(
    rt: Runtime, events: Sequence[OrderEventView], submitted: Sequence[OrderView] = ()
) -> list[db.Upsert]:
    """What the ``events_recorded`` hooks derive from events just appended, to write in
    their transaction; a hook that fails refuses the change."""
    if not rt.plugins.hook_implemented("events_recorded"):
        return []
    derived = await rt.plugins.call(
        "events_recorded", events=list(events), orders={order.id: order for order in submitted}
    )
    for failure in derived.failures:
        raise DomainError.of(
            ErrorCode.PLUGIN_FAILED, f"{failure.plugin} failed ({failure.error}).", "events"
        )
    return [upsert for _, upserts in derived.results for upsert in upserts]


def _event_rows(
    entries: Sequence[tuple[int, int, NewEvent]], principal: Principal
) -> list[dict[str, Any]]:
    return [
        {
            "order": order_id,
            "type": event.type,
            "from_status": event.from_status,
            "to_status": event.to_status,
            "actor": principal.actor,
            "data": json.dumps(event.data, default=str),
        }
        for order_id, _, event in entries
    ]


def event_message(event: OrderEventView, customer_id: int) -> dict[str, Any]:
    """The bus message (and hooks job payload) for one event, as JSON: the event's fields,
    and ``customer_id`` so that subscriptions can filter by owner."""
    fields = {f.name: getattr(event, f.name) for f in dataclass_fields(OrderEventView)}
    return {**fields, "at": event.at.isoformat(), "customer_id": customer_id}


def message_event(message: dict[str, Any]) -> OrderEventView:
    """The event a bus message carries: ``event_message`` read back."""
    fields = {f.name: message[f.name] for f in dataclass_fields(OrderEventView)}
    return OrderEventView(**{**fields, "at": datetime.fromisoformat(message["at"])})


async def announce(rt: Runtime, customer_id: int, events: Sequence[OrderEventView]) -> None:
    """After commit: publish the events to subscribers and wake the job runner.

    The timeline is the record; the live feed reaches the subscribers connected now.
    A bus that fails is logged and does not undo the committed change.
    """
    await announce_all(rt, [(customer_id, events)])


async def announce_all(
    rt: Runtime, recorded: Sequence[tuple[int, Sequence[OrderEventView]]]
) -> None:
    """``announce`` for the events of several customers (customer id, events), in one
    publish."""
    await _publish(
        rt,
        [event_message(event, customer_id) for customer_id, events in recorded for event in events],
    )
    rt.wake_jobs()


async def _publish(rt: Runtime, messages: list[dict[str, Any]]) -> None:
    """Publish messages in one go; a bus that fails is logged, never raised."""
    if not messages:
        return
    try:
        await rt.bus.publish_many(messages)
    except Exception:
        log.exception(
            "publishing %s events (the first of order %s) failed",
            len(messages),
            messages[0]["order_id"],
        )


async def append_event(
    order_id: int, type: str, principal: Principal, data: dict[str, Any]
) -> None:
    """Append an event that keeps a record for staff only (a notification's outcome): no
    plugin reacts to it and the live feed does not carry it, so it needs no runtime.
    Call inside ``db.write_transaction()``."""
    await OrderEvent.insert(
        OrderEvent(
            order=order_id, type=type, actor=principal.actor, data=json.dumps(data, default=str)
        )
    )


@dataclass
class Timeline:
    """The events one write transaction records, to announce once it has committed."""

    rt: Runtime
    recorded: list[tuple[int, list[OrderEventView]]] = field(default_factory=list)

    async def record(
        self,
        order: OrderView | int,
        type: str,
        principal: Principal,
        *,
        data: dict[str, Any] | None = None,
        more_jobs: Sequence[tuple[str, dict[str, Any]]] = (),
    ) -> None:
        """Append one event (and ``more_jobs``) to ``order``'s timeline, as ``record_events``;
        ``order`` may be an id (it is read then)."""
        if isinstance(order, int):
            loaded = await load_order(order)
            if loaded is None:
                raise DomainError.of(ErrorCode.NOT_FOUND, f"There is no order {order}.", "id")
            order = loaded
        events = await record_events(
            self.rt, order, principal, [NewEvent(type, data=data or {})], more_jobs=more_jobs
        )
        self.recorded.append((order.customer_id, events))

    async def record_many(
        self, entries: Sequence[tuple[int, int, NewEvent]], principal: Principal
    ) -> None:
        """Append one event per (order id, customer id, event) entry, to any number of
        orders, in one statement (and their jobs in one more): a scan that opens or
        closes a thousand alerts records their events as cheaply as one."""
        if not entries:
            return
        customer_of = {order_id: customer_id for order_id, customer_id, _ in entries}
        for event in await insert_events(self.rt, entries, principal):
            self.recorded.append((customer_of[event.order_id], [event]))


_open_timeline: contextvars.ContextVar[Timeline | None] = contextvars.ContextVar(
    "ordergraph_open_timeline", default=None
)


@contextlib.asynccontextmanager
async def recording(rt: Runtime) -> AsyncIterator[Timeline]:
    """``db.write_transaction()`` for a change that records order events: after commit the
    events are announced and the job runner is woken; a rollback drops them. Inside
    another ``recording`` block it joins that one, which announces them once it commits."""
    outer = _open_timeline.get()
    if outer is not None:
        async with db.write_transaction():
            yield outer
        return
    timeline = Timeline(rt)
    token = _open_timeline.set(timeline)
    try:
        async with db.write_transaction():
            yield timeline
    finally:
        _open_timeline.reset(token)
    await announce_all(rt, timeline.recorded)
