"""Subscription fields, fed by the event bus."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from ordergraph.core.auth import Role
from ordergraph.core.dispatch import message_event
from ordergraph.core.errors import ErrorCode
from ordergraph.core.tables import Order as OrderRow
from ordergraph.graphql.context import READERS, ApiError, Info, require
from ordergraph.graphql.types import OrderEvent


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Events of one order as they happen, or of every order you may see."
    )
    async def order_events(
        self, info: Info, order_id: strawberry.ID | None = None
    ) -> AsyncGenerator[OrderEvent, None]:
        principal = require(info, *READERS)
        wanted = None
        if order_id is not None:
            row = (
                await OrderRow.select(OrderRow.customer).where(OrderRow.id == int(order_id)).first()
            )
            if row is None or not principal.may_see_customer(row["customer"]):
                raise ApiError(ErrorCode.NOT_FOUND, f"There is no order {order_id}.")
            wanted = int(order_id)
        async with info.context.rt.bus.subscribe() as messages:
            async for message in messages:
                if wanted is not None and message["order_id"] != wanted:
                    continue
                if principal.role == Role.CUSTOMER and message["customer_id"] != (
                    principal.customer_id
                ):
                    continue
                yield OrderEvent.from_view(message_event(message))
