"""The built-in kinds of promotion: off the order above a minimum (percent or fixed), off
chosen SKUs, buy X get Y, free shipping, and a customer-group discount.

Any of them becomes a coupon when the promotion has a coupon code. Amounts are rounded
half up to the currency's minor unit.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ordergraph.plugin_api import (
    Adjustment,
    PluginInfo,
    PromotionContext,
    PromotionKind,
    Setting,
    hookimpl,
    is_iso_currency,
    minor_unit,
    money_to_minor,
)


def _percent(value: Decimal) -> Decimal:
    if not 0 < value <= 100:
        raise ValueError(f"a percentage is above 0 and at most 100 (got {value})")
    return value


def _at_least_one(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be at least 1 (got {value})")
    return value


def _not_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError(f"must not be negative (got {value})")
    return value


def _currency(value: str) -> str:
    code = value.strip().upper()
    if not is_iso_currency(code):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code")
    return code


def _amounts_in_currency(args: dict[str, Any]) -> dict[str, str]:
    """A fixed amount and its minimum are money of the promotion's currency: neither may
    be finer than its minor unit (0.001 EUR) or more than an amount can hold."""
    problems = {}
    for name in ("amount", "minimum"):
        try:
            money_to_minor(args[name], args["currency"])
        except ValueError as exc:
            problems[name] = str(exc)
    return problems


PERCENT = Setting("percent", Decimal, required=True, parse=_percent, description="Percent off.")
MINIMUM = Setting(
    "minimum", Decimal, default=Decimal(0), parse=_not_negative,
    description="Applies when the lines add up to at least this.",
)  # fmt: skip


def _round(amount: Decimal, context: PromotionContext) -> Decimal:
    return amount.quantize(minor_unit(context.order.currency), rounding=ROUND_HALF_UP)


def order_percentage(context: PromotionContext, args: dict[str, Any]) -> list[Adjustment]:
    if context.subtotal < args["minimum"] or context.subtotal == 0:
        return []
    off = _round(context.subtotal * args["percent"] / 100, context)
    return [Adjustment("order_percentage", f"{args['percent']}% off", -off)]


def order_fixed(context: PromotionContext, args: dict[str, Any]) -> list[Adjustment]:
    if context.order.currency != args["currency"]:
        return []
    if context.subtotal < args["minimum"] or context.subtotal == 0:
        return []
    return [Adjustment("order_fixed", f"{args['amount']} off", -args["amount"])]


def sku_percentage(context: PromotionContext, args: dict[str, Any]) -> list[Adjustment]:
    return [
        Adjustment("sku_percentage", f"{args['percent']}% off {line.sku}",
                   -_round(line.amount * args["percent"] / 100, context), line_no=line.line_no)
        for line in context.lines
        if line.sku in args["skus"]
    ]  # fmt: skip


def buy_x_get_y(context: PromotionContext, args: dict[str, Any]) -> list[Adjustment]:
    """Of every ``buy + get`` units of the SKU on a line, ``get`` are free."""
    out = []
    for line in context.lines:
        if line.sku != args["sku"]:
            continue
        free = line.quantity // (args["buy"] + args["get"]) * args["get"]
        if free:
            out.append(
                Adjustment("buy_x_get_y", f"{free} x {line.sku} free",
                           -line.unit_price * free, line_no=line.line_no)
            )  # fmt: skip
    return out


def free_shipping(context: PromotionContext, args: dict[str, Any]) -> list[Adjustment]:
    if context.subtotal < args["minimum"] or context.shipping == 0:
        return []
    return [Adjustment("free_shipping", "Free shipping", -context.shipping, target="shipping")]


def customer_group(context: PromotionContext, args: dict[str, Any]) -> list[Adjustment]:
    """The group: listed e-mail addresses, or every address at a listed domain."""
    email = context.customer_email.lower()
    members = {e.lower() for e in args["emails"]}
    domains = {d.lower().lstrip("@") for d in args["email_domains"]}
    if email not in members and email.rpartition("@")[2] not in domains:
        return []
    off = _round(context.subtotal * args["percent"] / 100, context)
    return [Adjustment("customer_group", f"{args['percent']}% for {args['group']}", -off)]


KINDS = [
    PromotionKind("order_percentage", "A percentage off the order above a minimum.",
                  (PERCENT, MINIMUM), order_percentage),
    PromotionKind("order_fixed", "A fixed amount off the orders in its currency above a minimum.",
                  (Setting("amount", Decimal, required=True, parse=_not_negative),
                   Setting("currency", str, required=True, parse=_currency,
                           description="The ISO 4217 code of the amount: orders in it only."),
                   MINIMUM),
                  order_fixed, check=_amounts_in_currency),
    PromotionKind("sku_percentage", "A percentage off chosen SKUs.",
                  (PERCENT, Setting("skus", list, required=True, description="The SKUs.")),
                  sku_percentage),
    PromotionKind("buy_x_get_y", "Buy X units of a SKU, get Y more free.",
                  (Setting("sku", str, required=True),
                   Setting("buy", int, required=True, parse=_at_least_one),
                   Setting("get", int, required=True, parse=_at_least_one)),
                  buy_x_get_y),
    PromotionKind("free_shipping", "No shipping charge above a minimum.", (MINIMUM,),
                  free_shipping),
    PromotionKind("customer_group", "A percentage off for a group of customers.",
                  (PERCENT, Setting("group", str, required=True, description="Its name."),
                   Setting("emails", list, default=[]), Setting("email_domains", list, default=[])),
                  customer_group),
]  # fmt: skip


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        category="promotion",
        description="Built-in promotion kinds: order and SKU discounts, buy X get Y, "
        "free shipping, customer groups.",
        enabled_by_default=True,
    )


@hookimpl
def promotion_kinds() -> list[PromotionKind]:
    return KINDS
