"""GraphQL for stage 4's webhook endpoints: the pages of an endpoint's deliveries that
the webhooks notifier lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ordergraph.core.errors import DomainError
from ordergraph.graphql.context import row_id
from ordergraph.graphql.queries import keyset_page
from ordergraph.graphql.types import Connection, connection
from ordergraph.stages.tracking import webhook_endpoints
from ordergraph.stages.tracking.tables import Notification

T = TypeVar("T")


async def webhook_deliveries_page(
    endpoint_id: str,
    first: int | None,
    after: str | None,
    make: Callable[[webhook_endpoints.DeliveryView], T],
) -> Connection[T]:
    """A page of the deliveries to the endpoint an ``endpointId`` argument names, newest
    first, each made by ``make`` from the delivery; empty for an id no endpoint has."""
    try:
        endpoint = row_id(endpoint_id, "webhook endpoint", field="endpointId")
    except DomainError:
        return connection("webhook_delivery", [], [], 0, has_next=False)

    def made(row: dict[str, Any]) -> T:
        return make(webhook_endpoints.delivery_view(endpoint, row))

    return await keyset_page(
        "webhook_delivery",
        Notification,
        webhook_endpoints.delivery_filters(endpoint),
        first,
        after,
        made,
        newest_first=True,
    )
