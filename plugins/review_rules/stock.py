"""Stock: every line must be in stock; approval reserves it, leaving approval gives it back.

Review only reads what is available. The reservation itself is written by
``apply_transition`` inside the transaction that approves the order, as one
conditional update per SKU, so concurrent approvals can never oversell: the one that
finds the stock gone aborts, and the pipeline rejects that order with the SKU and
what is left.
"""

from ordergraph.plugin_api import (
    DomainError,
    Finding,
    OrderView,
    PluginInfo,
    Transition,
    available_stock,
    consume_stock_quantities,
    hookimpl,
    open_quantities,
    release_stock_quantities,
    reserve_stock,
    stock_quantities,
)

# The states in which an order holds a reservation.
HOLDS_STOCK = ("APPROVED", "PROCESSING")
SHIPPED = "SHIPPED"


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        category="review_rule",
        description=(
            "Every line must be in stock. Approval reserves the stock; cancelling or "
            "rejecting an approved order releases what it still holds; every shipped "
            "quantity consumes its part."
        ),
    )


def _short(sku: str, name: str, requested: int, available: int) -> Finding:
    left = max(available, 0)
    in_words = (
        f"{name} ({sku}) is out of stock."
        if left == 0
        else f"Only {left} of {name} ({sku}) can be delivered; you ordered {requested}."
    )
    return Finding(
        outcome="fail",
        code="INSUFFICIENT_STOCK",
        message=f"SKU {sku}: {requested} requested, {left} available.",
        customer_message=in_words,
        data={"sku": sku, "requested": requested, "available": left},
    )


@hookimpl
async def review_order(order: OrderView) -> list[Finding] | Finding:
    wanted = stock_quantities(order.lines)
    left = await available_stock(wanted)
    names = {line.sku: line.name for line in order.lines}
    short = [
        _short(sku, names[sku], quantity, left.get(sku, 0))
        for sku, quantity in wanted.items()
        if left.get(sku, 0) < quantity
    ]
    if short:
        return short
    return Finding(
        outcome="pass",
        code="IN_STOCK",
        message="Every line is in stock.",
        customer_message="Everything you ordered is in stock.",
        data={"available": {sku: left[sku] for sku in wanted}},
    )


@hookimpl
async def apply_transition(order: OrderView, transition: Transition) -> None:
    """Reserve on entering APPROVED/PROCESSING; on leaving them, what the order still
    holds (less what shipped or was cancelled in its work) is consumed when the goods
    ship and released otherwise (cancel, reject). ``order.status`` is the status before."""
    held_before = order.status in HOLDS_STOCK
    held_after = transition.target in HOLDS_STOCK
    if held_after and not held_before:
        problems = await reserve_stock(order.lines)
        if problems:
            raise DomainError(*problems)
    elif held_before and not held_after:
        still_held = await open_quantities(order)
        if transition.target == SHIPPED:
            await consume_stock_quantities(still_held)
        else:
            await release_stock_quantities(still_held)


@hookimpl
async def apply_fulfilment(shipped: dict[str, int], cancelled: dict[str, int]) -> None:
    """Each shipment consumes its quantities; a cancelled remainder gives its stock back."""
    await consume_stock_quantities(shipped)
    await release_stock_quantities(cancelled)
