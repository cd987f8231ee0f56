"""GraphQL for stage 2: the manual review queue, decisions, and amending rejected orders."""

from __future__ import annotations

from typing import Annotated

import strawberry

from ordergraph.core import db
from ordergraph.core.limits import DEFAULT_PAGE, MAX_ID
from ordergraph.core.orders import PRIORITIES
from ordergraph.core.transitions import transition_order
from ordergraph.graphql.context import OPERATORS, READERS, Info, page_size, require
from ordergraph.graphql.mutations import OrderPayload, SubmitOrderInput, draft_from_input
from ordergraph.graphql.queries import orders_in_states
from ordergraph.graphql.types import (
    Connection,
    Order,
    OrderIdArgument,
    PageAfter,
    PageSize,
    connection,
    decode_cursor,
    invalid_cursor,
    order_key,
    payload_errors,
    preload_orders,
)
from ordergraph.stages.review.pipeline import amend_order

# Highest priority first, then oldest first; the key is (rank, id). The partial index
# orders_review_queue (migration m0004) is on this same expression and id.
_RANK = (
    "CASE priority "
    + " ".join(f"WHEN '{name}' THEN {rank}" for rank, name in enumerate(reversed(PRIORITIES)))
    + f" ELSE {len(PRIORITIES)} END"
)


def _queue_cursor(rank: int, order_id: int) -> int:
    return rank * 10**12 + order_id


@strawberry.type
class ReviewQuery:
    @strawberry.field(description="Orders ON_HOLD, highest priority first, then oldest first.")
    async def review_queue(
        self,
        info: Info,
        first: PageSize = DEFAULT_PAGE,
        after: PageAfter = None,
    ) -> Connection[Order]:
        require(info, *OPERATORS)
        size = page_size(first)
        key = decode_cursor("queue", after, maximum=_queue_cursor(len(PRIORITIES), MAX_ID))
        where = "status = 'ON_HOLD'"
        args: list[int] = []
        has_previous = False
        if key is not None:
            rank, order_id = divmod(key, 10**12)
            if not 0 < order_id <= MAX_ID:
                raise invalid_cursor(str(after))
            # The cursor's order and those before it, if any is still in the queue.
            before = await db.raw(
                f"SELECT id FROM orders WHERE {where} AND ({_RANK}, id) <= ({{}}, {{}}) LIMIT 1",
                rank,
                order_id,
            )
            has_previous = bool(before)
            where += f" AND ({_RANK}, id) > ({{}}, {{}})"
            args = [rank, order_id]
        rows = await db.raw(
            f"SELECT *, {_RANK} AS queue_rank FROM orders WHERE {where} "
            f"ORDER BY queue_rank, id LIMIT {size + 1}",
            *args,
        )
        total = await orders_in_states(["ON_HOLD"])
        rows, has_next = rows[:size], len(rows) > size
        orders = [Order.from_row(r) for r in rows]
        await preload_orders(info, orders, "edges", "node")
        keys = [_queue_cursor(r["queue_rank"], r["id"]) for r in rows]
        return connection(
            "queue", orders, keys, total, has_next=has_next, has_previous=has_previous
        )


@strawberry.type
class ReviewMutation:
    @strawberry.mutation(description="Approve an order waiting in the review queue.")
    async def approve_order(
        self,
        info: Info,
        id: OrderIdArgument,
        note: Annotated[
            str | None, strawberry.argument(description="Why, for the timeline.")
        ] = None,
    ) -> OrderPayload:
        return await _decide(info, id, "approve", note)

    @strawberry.mutation(description="Reject an order waiting in the review queue.")
    async def reject_order(
        self,
        info: Info,
        id: OrderIdArgument,
        reason: Annotated[str, strawberry.argument(description="Why, shown to the customer.")],
    ) -> OrderPayload:
        return await _decide(info, id, "reject", reason)

    @strawberry.mutation(
        description="Correct a REJECTED order; it returns to RECEIVED and is reviewed again."
    )
    @payload_errors
    async def amend_order(
        self,
        info: Info,
        id: OrderIdArgument,
        input: Annotated[
            SubmitOrderInput,
            strawberry.argument(
                description="The corrected order; its externalId must stay the same."
            ),
        ],
    ) -> OrderPayload:
        principal = require(info, *READERS)
        order = await amend_order(
            info.context.rt,
            order_key(id),
            draft_from_input(input, "amend"),
            principal,
        )
        return OrderPayload(order=Order.from_view(order))


@payload_errors
async def _decide(
    info: Info, id: strawberry.ID, transition: str, reason: str | None
) -> OrderPayload:
    principal = require(info, *OPERATORS)
    order = await transition_order(
        info.context.rt, order_key(id), transition, principal, reason=reason
    )
    return OrderPayload(order=Order.from_view(order))
