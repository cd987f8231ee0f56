"""Subscription fields, fed by the event bus."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

from ordergraph.core import scope
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.orders import may_see_event, message_event
from ordergraph.core.tables import Order as OrderRow
from ordergraph.graphql.context import READERS, ApiError, Info, require
from ordergraph.graphql.types import OrderEvent, order_key


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Events of one order as they happen, or of every order you may see."
    )
    async def order_events(
        self,
        info: Info,
        order_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description=(
                    "The order's id (Order.id; its databaseId is taken too). Null: "
                    "every order you may see. NOT_FOUND when it is not one you may see."
                )
            ),
        ] = None,
    ) -> AsyncGenerator[OrderEvent, None]:
        principal = require(info, *READERS)
        wanted = None
        if order_id is not None:
            not_found = ApiError(ErrorCode.NOT_FOUND, f"There is no order {order_id}.")
            try:
                wanted = order_key(order_id)
            except DomainError:
                raise not_found from None
            row = await OrderRow.select(OrderRow.customer).where(OrderRow.id == wanted).first()
            if row is None or not await scope.may_access_order(
                principal, wanted, customer_id=row["customer"]
            ):
                raise not_found
        async with info.context.rt.bus.subscribe() as messages:
            async for message in messages:
                if wanted is not None and message["order_id"] != wanted:
                    continue
                if not may_see_event(principal, message["type"]):
                    continue
                if wanted is None and not await scope.may_access_order(
                    principal, message["order_id"], customer_id=message["customer_id"]
                ):
                    continue
                yield OrderEvent.from_view(message_event(message), principal)
