"""Price policy: a unit price may be below the list price only by the allowed discount,
and never below a floor.

Channels that send their own prices (integrators, marketplaces, staff) can sell below
list price; this rule catches the lines that go further than the policy allows.
"""

from decimal import Decimal
from typing import Any

from ordergraph.plugin_api import (
    Finding,
    LineView,
    OrderView,
    PluginInfo,
    ProductView,
    Setting,
    get_products,
    hookimpl,
)

HUNDRED = Decimal(100)
CENT = Decimal("0.01")


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        category="review_rule",
        description=(
            "Unit prices may be below list price by at most the allowed discount, and never "
            "below a floor."
        ),
        settings=(
            Setting(
                "max_discount_percent",
                Decimal,
                default=Decimal(0),
                description="The largest discount off list price, in percent, for every SKU.",
            ),
            Setting(
                "max_discount_percent_by_sku",
                dict,
                default={},
                item_type=Decimal,
                description="Per-SKU discounts in percent that replace max_discount_percent.",
            ),
            Setting(
                "min_unit_price",
                Decimal,
                description="A floor for every unit price, in the order's currency.",
            ),
            Setting(
                "min_unit_price_by_sku",
                dict,
                default={},
                item_type=Decimal,
                description="Per-SKU floors, in the order's currency, that replace min_unit_price.",
            ),
            Setting(
                "on_violation",
                str,
                default="hold",
                choices=("hold", "reject"),
                description="Hold the order for a person to approve, or reject it.",
            ),
        ),
    )


def _check_line(
    line: LineView, product: ProductView, currency: str, settings: dict[str, Any]
) -> Finding | None:
    outcome = "fail" if settings["on_violation"] == "reject" else "hold"
    price = f"{line.unit_price} {currency}"
    floor = settings["min_unit_price_by_sku"].get(line.sku, settings["min_unit_price"])
    data: dict[str, Any] = {
        "line": line.line_no,
        "sku": line.sku,
        "unit_price": str(line.unit_price),
    }
    if floor is not None and line.unit_price < floor:
        return Finding(
            outcome=outcome,
            code="PRICE_BELOW_FLOOR",
            message=(
                f"Line {line.line_no}, SKU {line.sku}: unit price {price} is below the floor "
                f"of {floor} {currency}."
            ),
            customer_message=f"The price of {line.name} ({price}) is below what we can accept.",
            data={**data, "floor": str(floor)},
        )
    if product.currency != currency:
        return Finding(
            outcome="hold",
            code="PRICE_NOT_COMPARABLE",
            message=(
                f"Line {line.line_no}, SKU {line.sku}: the list price is in {product.currency}, "
                f"the order in {currency}; check the price by hand."
            ),
            customer_message="Your order needs a price check by our team.",
            data={**data, "list_currency": product.currency},
        )
    if product.list_price <= 0 or line.unit_price >= product.list_price:
        return None
    discount = ((product.list_price - line.unit_price) / product.list_price * HUNDRED).quantize(
        CENT
    )
    allowed = settings["max_discount_percent_by_sku"].get(
        line.sku, settings["max_discount_percent"]
    )
    if discount <= allowed:
        return None
    return Finding(
        outcome=outcome,
        code="DISCOUNT_TOO_HIGH",
        message=(
            f"Line {line.line_no}, SKU {line.sku}: unit price {price} is {discount}% below the "
            f"list price of {product.list_price} {currency}; at most {allowed}% is allowed."
        ),
        customer_message=(
            f"The price of {line.name} ({price}) is a larger discount than we can accept."
        ),
        data={
            **data,
            "list_price": str(product.list_price),
            "discount_percent": str(discount),
            "max_discount_percent": str(allowed),
        },
    )


@hookimpl
async def review_order(order: OrderView, settings: dict[str, Any]) -> list[Finding] | Finding:
    products = await get_products(line.sku for line in order.lines)
    findings = [
        finding
        for line in order.lines
        if (finding := _check_line(line, products[line.sku], order.currency, settings))
    ]
    return findings or Finding(
        outcome="pass",
        code="PRICES_WITHIN_POLICY",
        message="Every unit price is within the price policy.",
        customer_message="Your prices are ones we accept.",
    )
