"""Manual review: some orders wait for a person whatever the other rules say.

Large orders, orders of chosen types and first orders of new customers go ON_HOLD
and appear in ``Query.reviewQueue`` (a failing rule still rejects them).
"""

from decimal import Decimal
from typing import Any

from ordergraph.plugin_api import (
    Finding,
    OrderView,
    PluginInfo,
    Setting,
    approved_order_count,
    hookimpl,
)

IN_WORDS = "Your order is being checked by our team; we will confirm it shortly."


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        category="review_rule",
        description=(
            "Holds large orders, orders of chosen types and first orders of new customers "
            "for a person to approve."
        ),
        settings=(
            Setting(
                "amount_over",
                Decimal,
                description="Hold orders whose total is over this amount, in the order's "
                "currency (none: no limit).",
            ),
            Setting("types", list, default=[], description="Hold orders of these types."),
            Setting(
                "first_time_customers",
                bool,
                default=False,
                description="Hold the orders of customers who have had no order approved yet.",
            ),
        ),
    )


def _hold(code: str, message: str, **data: Any) -> Finding:
    return Finding(outcome="hold", code=code, message=message, customer_message=IN_WORDS, data=data)


@hookimpl
async def review_order(order: OrderView, settings: dict[str, Any]) -> list[Finding] | Finding:
    holds = []
    amount_over = settings["amount_over"]
    if amount_over is not None and order.total > amount_over:
        holds.append(
            _hold(
                "AMOUNT_OVER",
                f"The total {order.total} {order.currency} is over {amount_over}.",
                total=str(order.total),
                amount_over=str(amount_over),
            )
        )
    if order.type in settings["types"]:
        holds.append(
            _hold(
                "ORDER_TYPE",
                f"Orders of type {order.type!r} are reviewed by hand.",
                type=order.type,
            )
        )
    if settings["first_time_customers"] and not await approved_order_count(
        order.customer_id, excluding_order=order.id
    ):
        holds.append(
            _hold(
                "FIRST_TIME_CUSTOMER",
                "The customer has had no order approved before.",
                customer_id=order.customer_id,
            )
        )
    return holds or Finding(
        outcome="pass",
        code="NO_MANUAL_REVIEW",
        message="No manual review is needed.",
        customer_message="Your order needs no manual check.",
    )
