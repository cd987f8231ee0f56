"""Credit limit: what the customer would owe with this order must fit their credit limit.

Exposure = what is outstanding on the customer's statements (their totals less the
payments in the ledger) + open orders without a statement + this order, all in the
currency of the credit limit. A blocked customer always fails.
"""

from decimal import Decimal
from typing import Any

from ordergraph.plugin_api import (
    ErrorCode,
    Finding,
    OrderView,
    PluginInfo,
    Setting,
    customer_exposure,
    get_customer,
    hookimpl,
)

PLEASE_WAIT = "Your order needs a manual check by our team; we will get back to you."


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        category="review_rule",
        description=(
            "Unpaid statements, open orders and this order must fit the customer's "
            "credit limit; blocked customers always fail."
        ),
        settings=(
            Setting(
                "on_exceed",
                str,
                default="reject",
                choices=("reject", "hold"),
                description="Reject the order, or hold it for a person, when over the limit.",
            ),
            Setting(
                "on_no_limit",
                str,
                default="hold",
                choices=("hold", "reject", "pass"),
                description=(
                    "What to do when the customer has no credit limit (0), such as a customer "
                    "created by their first order."
                ),
            ),
        ),
    )


def _outcome(choice: str) -> str:
    return {"reject": "fail", "hold": "hold", "pass": "pass"}[choice]


@hookimpl
async def review_order(order: OrderView, settings: dict[str, Any]) -> Finding:
    customer = await get_customer(order.customer_id)
    if customer is None:
        raise LookupError(f"order {order.number} names customer {order.customer_id}, who is gone")
    if customer.blocked:
        return Finding(
            outcome="fail",
            code=ErrorCode.CUSTOMER_BLOCKED.value,
            message=f"Customer {customer.email} is blocked.",
            customer_message=(
                "We cannot accept orders on your account at the moment; please contact us."
            ),
            data={"customer_id": customer.id},
        )
    limit, currency = customer.credit_limit, customer.currency
    if order.currency != currency:
        return Finding(
            outcome="hold",
            code="CREDIT_CURRENCY_MISMATCH",
            message=(
                f"The order is in {order.currency} but the credit limit of {customer.email} "
                f"is {limit} {currency}; check the credit by hand."
            ),
            customer_message=PLEASE_WAIT,
            data={"order_currency": order.currency, "limit_currency": currency},
        )
    if limit == 0:
        # "pass" checks nothing: measured against a limit of 0, every order would exceed it.
        on_no_limit = settings["on_no_limit"]
        return Finding(
            outcome=_outcome(on_no_limit),
            code="NO_CREDIT_LIMIT",
            message=f"Customer {customer.email} has no credit limit.",
            customer_message={
                "hold": PLEASE_WAIT,
                "reject": "Your account has no credit for orders yet; please contact us.",
                "pass": "No credit check was needed.",
            }[on_no_limit],
            data={"credit_limit": str(limit), "currency": currency},
        )
    owed = await customer_exposure(customer.id, currency, excluding_order=order.id)
    exposure = owed.total + order.total
    available = max(limit - owed.total, Decimal(0))
    data = {
        "currency": currency,
        "credit_limit": str(limit),
        "unpaid_statements": str(owed.unpaid_statements),
        "open_orders": str(owed.open_orders),
        "this_order": str(order.total),
        "exposure": str(exposure),
        "available": str(available),
    }
    if exposure <= limit:
        return Finding(
            outcome="pass",
            code="WITHIN_CREDIT_LIMIT",
            message=f"Exposure {exposure} {currency} is within the credit limit of {limit}.",
            customer_message="Your order is within your credit with us.",
            data=data,
        )
    on_exceed = settings["on_exceed"]
    return Finding(
        outcome=_outcome(on_exceed),
        code="CREDIT_LIMIT_EXCEEDED",
        message=(
            f"Exposure {exposure} {currency} (unpaid statements {owed.unpaid_statements} + open "
            f"orders {owed.open_orders} + this order {order.total}) exceeds the credit limit "
            f"of {limit} by {exposure - limit}."
        ),
        customer_message=(
            f"Your order of {order.total} {currency} exceeds your available credit of "
            f"{available} {currency}." + (" Our team will check it." if on_exceed == "hold" else "")
        ),
        data=data,
    )
