"""An example third-party ordergraph plugin: loyalty points, an order limit, a pickup state.

It imports nothing from ordergraph but ``ordergraph.plugin_api`` and is found through the
``ordergraph.plugins`` entry point, as any plugin package is. Enable it in ``ordergraph.toml``::

    [plugins.example_loyalty]
    enabled = true
    api_key = "..."               # required, secret
    max_order_total = "500.00"    # reject larger orders (optional)
    label = "Bonus points"
    require_cancel_reason = true  # veto cancellations without a reason
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import strawberry

from ordergraph.plugin_api import (
    READERS,
    DomainError,
    ErrorCode,
    Info,
    OrderDraft,
    PluginInfo,
    Principal,
    Problem,
    Role,
    SchemaExtension,
    Setting,
    StatusGraph,
    Transition,
    hookimpl,
    load_order,
    order_key,
    require,
)

PICKUP_STATE = "AWAITING_PICKUP"


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        category="other",
        description="Loyalty points per order, an order-total limit and parcel-shop pickup.",
        settings=(
            Setting("api_key", str, required=True, secret=True, description="Loyalty API key."),
            Setting(
                "max_order_total",
                Decimal,
                description="Reject orders whose stated total is over this; unset: no limit.",
            ),
            Setting("label", str, default="Loyalty points", description="Shown with points."),
            Setting(
                "require_cancel_reason",
                bool,
                default=False,
                description="Veto cancellations that give no reason.",
            ),
        ),
    )


def _stated_total(draft: OrderDraft) -> Decimal:
    """The total of the lines that state a price; the core reports malformed lines itself."""
    total = Decimal(0)
    for line in draft.lines:
        try:
            total += Decimal(str(line.unit_price)) * int(line.quantity)
        except (InvalidOperation, TypeError, ValueError):
            continue
    return total


@hookimpl
def validate_order(draft: OrderDraft, settings: dict[str, Any]) -> list[Problem]:
    limit = settings["max_order_total"]
    if limit is None or _stated_total(draft) <= limit:
        return []
    return [
        Problem(
            ErrorCode.INVALID_VALUE,
            f"Orders over {limit} need a phone call to the loyalty desk.",
            "lines",
        )
    ]


@hookimpl
async def before_transition(
    transition: Transition, principal: Principal, reason: str | None, settings: dict[str, Any]
) -> str | None:
    if (
        transition.name == "cancel"
        and settings["require_cancel_reason"]
        and not (reason or "").strip()
    ):
        return f"{principal.name or 'you'} must give a reason to cancel an order"
    return None


@hookimpl
def extend_status_graph(graph: StatusGraph) -> None:
    graph.add_state(PICKUP_STATE, "Waiting at a parcel shop for the customer.")
    graph.add_transition(
        "ready_for_pickup",
        "SHIPPED",
        PICKUP_STATE,
        {Role.STAFF},
        "The carrier left the parcel at a parcel shop.",
    )
    graph.extend_transition("deliver", sources=(PICKUP_STATE,))


@strawberry.type(description="The loyalty points an order earns.")
class LoyaltyPoints:
    label: str = strawberry.field(description="What the shop calls its points.")
    points: int = strawberry.field(description="One per whole unit of the order's total.")


@hookimpl
def graphql_schema(settings: dict[str, Any]) -> SchemaExtension:
    label = settings["label"]

    @strawberry.type
    class LoyaltyQuery:
        @strawberry.field(description="Points earned by an order: one per whole unit of total.")
        async def loyalty_points(
            self,
            info: Info,
            order_id: Annotated[
                strawberry.ID, strawberry.argument(description="The order's id (Order.id).")
            ],
        ) -> LoyaltyPoints | None:
            principal = require(info, *READERS)
            try:
                order = await load_order(order_key(order_id, "orderId"))
            except DomainError:
                order = None
            if order is None or not principal.may_see_customer(order.customer_id):
                return None
            return LoyaltyPoints(label=label, points=int(order.total))

    return SchemaExtension(query=(LoyaltyQuery,))
