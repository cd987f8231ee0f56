"""Promotions: business data admins manage at run time, whose kinds are plugins.

A kind (``PromotionKind``, from the ``promotion_kinds`` hook) names typed arguments
and turns an order into adjustments. A promotion is a row: a kind with arguments, a
priority (higher first), whether it combines with others, a schedule, and for a
coupon a code with usage limits in total and per customer.

Which promotions apply is decided at the instant the order was placed, so the price
the customer was shown (``Order.pricePreview``) is the price charged for what is
delivered. In priority order (then oldest first): a coupon promotion applies only to
orders that redeemed its code; a promotion that does not combine applies only if
nothing applied before it, and nothing applies after it.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ordergraph.core import db, rate_limits, scope
from ordergraph.core.auth import Principal, Role
from ordergraph.core.errors import DomainError, ErrorCode, Problem
from ordergraph.core.limits import COUPON_TRIES_PER_CUSTOMER, utc_instant
from ordergraph.core.orders import OrderView, load_order, recording
from ordergraph.core.plugins import PluginConfigError, Setting
from ordergraph.core.tables import Customer
from ordergraph.stages.settlement.amount import Adjustment, ChargeLine
from ordergraph.stages.settlement.limits import COUPON_CODE, PROMOTION_ARGUMENT, PROMOTION_NAME
from ordergraph.stages.settlement.tables import Promotion, PromotionUse

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime

MAX_PROMOTIONS = 500
REDEEMABLE = ("RECEIVED", "IN_REVIEW", "ON_HOLD", "APPROVED", "PROCESSING", "SHIPPED", "DELIVERED")


@dataclass(frozen=True)
class PromotionContext:
    """What a kind sees: the order, its lines (delivered, or ordered for a preview),
    the shipping charge and the customer's e-mail."""

    order: OrderView
    lines: list[ChargeLine]
    shipping: Decimal
    customer_email: str

    @property
    def subtotal(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))


@dataclass(frozen=True)
class PromotionKind:
    """A kind of promotion: its typed arguments and what it does to an order."""

    name: str
    description: str
    arguments: tuple[Setting, ...]
    apply: Callable[[PromotionContext, dict[str, Any]], list[Adjustment]]
    # What is wrong across the typed arguments (an amount finer than its currency), by
    # argument name: checked with them.
    check: Callable[[dict[str, Any]], dict[str, str]] | None = None


@dataclass(frozen=True)
class PromotionData:
    name: str
    kind: str
    arguments: dict[str, Any]
    priority: int = 0
    combinable: bool = True
    starts_at: datetime.datetime | None = None
    ends_at: datetime.datetime | None = None
    coupon_code: str | None = None
    usage_limit: int | None = None
    per_customer_limit: int | None = None


def kinds(rt: Runtime) -> dict[str, PromotionKind]:
    """Every installed kind by name (the first plugin to declare a name keeps it)."""
    found: dict[str, PromotionKind] = {}
    for _, declared in rt.plugins.call_sync("promotion_kinds").results:
        for kind in declared:
            found.setdefault(kind.name, kind)
    return found


def check_arguments(kind: PromotionKind, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments, typed; every problem named by ``arguments.NAME``."""
    problems = []
    known = {s.name: s for s in kind.arguments}
    for name in sorted(set(arguments) - set(known)):
        problems.append(
            Problem(
                ErrorCode.INVALID_VALUE,
                f"Kind {kind.name} has no argument {name} (it has: {', '.join(known)}).",
                f"arguments.{name}",
            )
        )
    values = {}
    for name, setting in known.items():
        if name not in arguments:
            if setting.required:
                problems.append(
                    Problem(ErrorCode.REQUIRED, f"Give the argument {name}.", f"arguments.{name}")
                )
            values[name] = setting.default
            continue
        try:
            values[name] = setting.coerce(kind.name, arguments[name])
        except PluginConfigError as exc:
            problems.append(
                Problem(ErrorCode.INVALID_VALUE, str(exc).split(": ", 1)[-1], f"arguments.{name}")
            )
            continue
        texts = values[name] if isinstance(values[name], list) else [values[name]]
        for text in texts:
            if isinstance(text, str):
                PROMOTION_ARGUMENT.check(text, f"arguments.{name}", problems)
    if not problems and kind.check is not None:
        problems += [
            Problem(ErrorCode.INVALID_VALUE, message, f"arguments.{name}")
            for name, message in kind.check(values).items()
        ]
    if problems:
        raise DomainError(*problems)
    return values


def _stored(values: dict[str, Any]) -> str:
    return json.dumps(values, default=str)


Schedule = tuple[datetime.datetime | None, datetime.datetime | None]


def _check_schedule(
    starts_at: datetime.datetime | None, ends_at: datetime.datetime | None, problems: list[Problem]
) -> Schedule:
    """The schedule in UTC (a time without an offset is UTC); it must end after it starts."""
    starts_at = utc_instant(starts_at, "startsAt", problems)
    ends_at = utc_instant(ends_at, "endsAt", problems)
    if starts_at and ends_at and ends_at <= starts_at:
        problems.append(Problem(ErrorCode.INVALID_VALUE, "It must end after it starts.", "endsAt"))
    return starts_at, ends_at


def _check(rt: Runtime, data: PromotionData) -> tuple[PromotionKind, dict[str, Any], Schedule]:
    """The kind, the checked arguments and the schedule in UTC, or every problem."""
    problems: list[Problem] = []
    if not data.name.strip():
        problems.append(Problem(ErrorCode.REQUIRED, "Name the promotion.", "name"))
    PROMOTION_NAME.check(data.name, "name", problems)
    kind = kinds(rt).get(data.kind)
    if kind is None:
        problems.append(
            Problem(
                ErrorCode.INVALID_VALUE,
                f"There is no promotion kind {data.kind!r} "
                f"(known: {', '.join(sorted(kinds(rt)))}).",
                "kind",
            )
        )
    schedule = _check_schedule(data.starts_at, data.ends_at, problems)
    code = data.coupon_code
    if code is not None and not code.strip():
        problems.append(Problem(ErrorCode.REQUIRED, "Give the coupon code.", "couponCode"))
    if code is not None:
        COUPON_CODE.check(code, "couponCode", problems)
    for field, limit in (
        ("usageLimit", data.usage_limit),
        ("perCustomerLimit", data.per_customer_limit),
    ):
        if limit is not None and (code is None or not 1 <= limit <= 10_000_000):
            problems.append(
                Problem(
                    ErrorCode.INVALID_VALUE,
                    "A usage limit is a whole number from 1, for a coupon code.",
                    field,
                )
            )
    if not -1000 <= data.priority <= 1000:
        problems.append(
            Problem(ErrorCode.INVALID_VALUE, "Priority is from -1000 to 1000.", "priority")
        )
    values: dict[str, Any] = {}
    if kind is not None:
        try:
            values = check_arguments(kind, data.arguments)
        except DomainError as error:
            problems += error.problems
    if problems:
        raise DomainError(*problems)
    assert kind is not None
    return kind, values, schedule


async def create_promotion(
    rt: Runtime, data: PromotionData, principal: Principal
) -> dict[str, Any]:
    _, values, (starts_at, ends_at) = _check(rt, data)
    code = data.coupon_code.strip().upper() if data.coupon_code else None
    if code and await Promotion.exists().where(Promotion.coupon_code == code):
        raise DomainError.of(ErrorCode.DUPLICATE, f"Coupon code {code} is taken.", "couponCode")
    rows = await Promotion.insert(
        Promotion(
            name=data.name.strip(),
            kind=data.kind,
            arguments=_stored(values),
            priority=data.priority,
            combinable=data.combinable,
            starts_at=starts_at,
            ends_at=ends_at,
            coupon_code=code,
            usage_limit=data.usage_limit,
            per_customer_limit=data.per_customer_limit,
            created_by=principal.actor,
        )
    ).returning(*Promotion.all_columns())
    return rows[0]


async def schedule_promotion(
    promotion_id: int, starts_at: datetime.datetime | None, ends_at: datetime.datetime | None
) -> dict[str, Any]:
    problems: list[Problem] = []
    starts_at, ends_at = _check_schedule(starts_at, ends_at, problems)
    if problems:
        raise DomainError(*problems)
    rows = await (
        Promotion.update({Promotion.starts_at: starts_at, Promotion.ends_at: ends_at})
        .where((Promotion.id == promotion_id) & Promotion.retired_at.is_null())
        .returning(*Promotion.all_columns())
    )
    if not rows:
        raise DomainError.of(
            ErrorCode.NOT_FOUND, f"There is no current promotion {promotion_id}.", "id"
        )
    return rows[0]


async def retire_promotion(promotion_id: int) -> dict[str, Any]:
    """Stop offering it; orders placed while it ran keep it."""
    rows = await (
        Promotion.update({Promotion.retired_at: db.now()})
        .where((Promotion.id == promotion_id) & Promotion.retired_at.is_null())
        .returning(*Promotion.all_columns())
    )
    if not rows:
        raise DomainError.of(
            ErrorCode.NOT_FOUND, f"There is no current promotion {promotion_id}.", "id"
        )
    return rows[0]


def _running(row: dict[str, Any], at: datetime.datetime) -> bool:
    return (
        (row["retired_at"] is None or row["retired_at"] > at)
        and (row["starts_at"] is None or row["starts_at"] <= at)
        and (row["ends_at"] is None or row["ends_at"] > at)
    )


async def adjustments_for(
    rt: Runtime, order: OrderView, lines: list[ChargeLine], shipping: Decimal
) -> list[Adjustment]:
    """The adjustments of the promotions that apply to ``order`` (see the module's rules)."""
    rows = (
        await Promotion.select()
        .order_by(Promotion.priority, ascending=False)
        .order_by(Promotion.id)
        .limit(MAX_PROMOTIONS)
    )
    redeemed = {
        row["promotion"]
        for row in await PromotionUse.select(PromotionUse.promotion).where(
            PromotionUse.order == order.id
        )
    }
    customer = await Customer.select(Customer.email).where(Customer.id == order.customer_id).first()
    context = PromotionContext(order, lines, shipping, customer["email"] if customer else "")
    by_name = kinds(rt)
    out: list[Adjustment] = []
    for row in rows:
        if row["coupon_code"] is not None:
            if row["id"] not in redeemed:
                continue
        elif not _running(row, order.created_at):
            continue
        kind = by_name.get(row["kind"])
        if kind is None or (out and not row["combinable"]):
            continue
        arguments = row["arguments"]
        values = check_arguments(
            kind, json.loads(arguments) if isinstance(arguments, str) else arguments
        )
        found = [
            Adjustment(
                a.code or kind.name,
                row["name"],
                a.amount,
                a.line_no,
                a.target,
                f"promotion:{row['id']}",
            )
            for a in kind.apply(context, values)
            if a.amount != 0
        ]
        out += found
        if found and not row["combinable"]:
            break
    return out


async def redeem_coupon(
    rt: Runtime, order_id: int, code: str, principal: Principal
) -> dict[str, Any]:
    """Use a coupon on an order, within its limits: the row lock (PostgreSQL) or the write
    transaction (SQLite) makes a 30-use coupon give exactly 30 uses under any concurrency.
    A customer's tries are limited (``COUPON_TRIES_PER_CUSTOMER``), so codes are not guessed."""
    order = await load_order(order_id)
    if order is None or not await scope.may_access_order(principal, order_id):
        raise DomainError.of(ErrorCode.NOT_FOUND, f"There is no order {order_id}.", "orderId")
    if principal.role == Role.CUSTOMER:
        tries = (COUPON_TRIES_PER_CUSTOMER, str(principal.customer_id))
        await rate_limits.check(rt, "code", tries)
    if order.status not in REDEEMABLE:
        raise DomainError.of(
            ErrorCode.OUT_OF_ORDER,
            f"Order {order.number} is {order.status}; it takes no coupon now.",
            "orderId",
        )
    wanted = code.strip().upper()
    # A code no coupon can have (a NUL, too long) must not reach the database as a query.
    promotion = None
    if COUPON_CODE.problem(wanted, "code") is None:
        promotion = await Promotion.select().where(Promotion.coupon_code == wanted).first()
    if promotion is None or not _running(promotion, db.now()):
        raise DomainError.of(ErrorCode.NOT_FOUND, f"There is no coupon {wanted}.", "code")
    async with recording(rt) as timeline:
        taken = await db.raw(
            "UPDATE promotions SET uses = uses + 1 WHERE id = {} "
            "AND (usage_limit IS NULL OR uses < usage_limit) RETURNING uses",
            promotion["id"],
        )
        if not taken:
            raise DomainError.of(ErrorCode.COUPON_USED_UP, f"Coupon {wanted} is used up.", "code")
        # The update above holds the promotion's row: these counts cannot change under us.
        if await PromotionUse.exists().where(
            (PromotionUse.promotion == promotion["id"]) & (PromotionUse.order == order_id)
        ):
            raise DomainError.of(
                ErrorCode.DUPLICATE, f"Coupon {wanted} is already on order {order.number}.", "code"
            )
        limit = promotion["per_customer_limit"]
        if limit is not None:
            used = await PromotionUse.count().where(
                (PromotionUse.promotion == promotion["id"])
                & (PromotionUse.customer == order.customer_id)
            )
            if used >= limit:
                raise DomainError.of(
                    ErrorCode.COUPON_LIMIT_REACHED,
                    f"Coupon {wanted} can be used {limit} time(s) per customer.",
                    "code",
                )
        await PromotionUse.insert(
            PromotionUse(promotion=promotion["id"], order=order_id, customer=order.customer_id)
        )
        await timeline.record(
            order,
            "coupon_redeemed",
            principal,
            data={"code": wanted, "promotion": promotion["id"]},
        )
    return promotion
