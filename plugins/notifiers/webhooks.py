"""The ``webhooks`` notifier: order events posted to integrators' URLs, signed.

Endpoints come from two places. Integrators register their own through GraphQL (admin):
``registerWebhookEndpoint`` stores the URL and event types and answers the endpoint's
own signing secret, this once (``rotateWebhookEndpointSecret`` makes a new one);
``webhookEndpoints`` lists them, ``deleteWebhookEndpoint`` stops their deliveries,
``webhookDeliveries`` lists an endpoint's deliveries and ``replayWebhookDelivery``
sends one again. The config file may also name endpoints (``endpoints``: name -> URL,
``event_types``: name -> comma-separated types or ``*``), signed with
``signing_secret``; ``replayWebhook`` sends an event to one of those again.

Every matching order event becomes one delivery job per endpoint (in the outbox:
retried with its backoff until it is answered 2xx), sent once per event and endpoint,
each attempt logged on the order with its outcome.

The body is JSON; ``Ordergraph-Signature: t=<unix time>,v1=<hex>`` carries the
HMAC-SHA256 of ``"<t>.<body>"`` with the endpoint's secret, the scheme Stripe uses: the
receiver recomputes it and refuses an old ``t`` (a replayed capture). ``t`` is the time
of each attempt, so a replay is signed afresh.

No endpoint may name an internal host (loopback, private, link-local, metadata) unless
``allowed_hosts`` names it: refused at registration and at start-up, and every delivery
connects only to an address it checked just before (see ``webhook_endpoints``). A
delivery's error says "connection failed", "timed out" or "HTTP 503", nothing more.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import time
from enum import Enum
from typing import Annotated, Any

import httpx
import strawberry

from ordergraph.plugin_api import (
    PAYLOAD_ERRORS,
    Connection,
    DomainError,
    EndpointView,
    ErrorCode,
    Info,
    OrderEventView,
    OrderView,
    PluginInfo,
    Role,
    SchemaExtension,
    Setting,
    UserError,
    enqueue_job,
    hookimpl,
    load_order,
    load_order_event,
    notification_attempt,
    order_global_id,
    order_key,
    page_size,
    payload_errors,
    record_notification,
    require,
    row_id,
    user_errors,
    webhook_deliveries_page,
    webhook_endpoints,
)

DELIVER_JOB = "webhooks.deliver"
SIGNATURE_HEADER = "Ordergraph-Signature"
DELIVERIES_PAGE = 50
SKIPPED = frozenset({"notification"})
"""Never posted: the log of deliveries themselves."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _wanted(types: str, event_type: str) -> bool:
    names = {t.strip() for t in types.split(",") if t.strip()}
    return "*" in names or event_type in names


def body_of(order: OrderView, event: OrderEventView) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "at": event.at.isoformat(),
        "order": {"id": order.id, "number": order.number, "status": order.status},
        "fromStatus": event.from_status,
        "toStatus": event.to_status,
        "data": event.data,
    }


_settings: dict[str, Any] = {}


async def deliver(payload: dict[str, Any]) -> None:
    """Post one event to one endpoint; raise (and so retry) unless answered 2xx."""
    if "endpoint_id" in payload:
        found = await webhook_endpoints.target(payload["endpoint_id"])
        if found is None:
            return  # deleted: nothing more is sent to it
        endpoint, secret = found
        url, channel, name = endpoint.url, endpoint.channel, f"#{endpoint.id}"
    else:
        name = payload["endpoint"]
        url = _settings["endpoints"].get(name)
        if url is None:
            return
        secret, channel = _settings["signing_secret"], f"webhook:{name}"[:32]
    recipient = url[:254]
    kind = payload["body"]["type"]
    order_id, event_id = payload["body"]["order"]["id"], payload["body"]["id"]
    attempts = await notification_attempt(
        order_id, event_id, channel, recipient, kind, again=payload.get("replay", False)
    )
    if attempts is None:
        return
    body = json.dumps(payload["body"], separators=(",", ":"), default=str).encode()
    headers = {
        "content-type": "application/json",
        SIGNATURE_HEADER: signature(secret, int(time.time()), body),
    }
    error = await _post(url, body, headers)
    await record_notification(order_id, event_id, channel, recipient, kind, attempts, error)
    if error:
        raise RuntimeError(f"webhook {name}: {error}")


async def _post(url: str, body: bytes, headers: dict[str, str]) -> str:
    """Post ``body`` to the address ``url``'s host resolves to, once checked; what went
    wrong ("" when answered 2xx), in words that tell nothing of the network behind it
    (no address, no port, no "refused"), since admins read it back."""
    try:
        target = await webhook_endpoints.resolved_target(url, _settings["allowed_hosts"])
    except webhook_endpoints.TargetRefused:
        return "refused: the host is not a public address"
    except OSError:
        return "connection failed"  # the name does not resolve
    async with httpx.AsyncClient(timeout=10) as client:
        for address in target.urls:  # in the resolver's order, as a client tries them
            try:
                response = await client.post(
                    address,
                    content=body,
                    headers={**headers, "host": target.host_header},
                    extensions={"sni_hostname": target.server_name},
                )
            except httpx.ConnectError:
                continue
            except httpx.TimeoutException:
                return "timed out"
            except httpx.HTTPError:
                return "connection failed"
            return "" if response.is_success else f"HTTP {response.status_code}"
    return "connection failed"


async def _event_body(order_id: int, event_id: int) -> dict[str, Any] | None:
    order = await load_order(order_id)
    event = await load_order_event(order_id, event_id) if order else None
    return body_of(order, event) if order and event else None


@strawberry.type(description="A URL registered to receive signed order events (admins).")
class WebhookEndpoint:
    id: strawberry.ID = strawberry.field(description="The endpoint's id.")
    url: str = strawberry.field(description="Where events are posted.")
    event_types: list[str] = strawberry.field(
        description="The order event types it receives; * for all."
    )
    description: str = strawberry.field(description="What it is for.")
    created_by: str = strawberry.field(description="Who registered it, as role:name.")
    created_at: datetime.datetime = strawberry.field(
        description="When it was registered (ISO 8601, UTC)."
    )
    secret_rotated_at: datetime.datetime | None = strawberry.field(
        description="When its secret was last rotated (ISO 8601, UTC); null if never."
    )

    @classmethod
    def from_view(cls, view: EndpointView) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(str(view.id)),
            url=view.url,
            event_types=list(view.event_types),
            description=view.description,
            created_by=view.created_by,
            created_at=view.created_at,
            secret_rotated_at=view.secret_rotated_at,
        )


@strawberry.enum(description="Whether a webhook delivery reached its endpoint.")
class DeliveryOutcome(Enum):
    PENDING = strawberry.enum_value("pending", description="Not sent yet, or to be retried.")
    SENT = strawberry.enum_value("sent", description="The endpoint answered 2xx.")
    FAILED = strawberry.enum_value(
        "failed", description="Every attempt failed (lastError says why); replay it."
    )


@strawberry.type(description="An order event posted, or to be posted, to an endpoint.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(
        description="The delivery's id; replayWebhookDelivery takes it."
    )
    endpoint_id: strawberry.ID = strawberry.field(
        description="The endpoint's id (WebhookEndpoint.id)."
    )
    order_id: strawberry.ID = strawberry.field(description="The order's id (Order.id).")
    event_id: strawberry.ID = strawberry.field(description="The order event's id (OrderEvent.id).")
    event_type: str = strawberry.field(description="The order event's type.")
    outcome: DeliveryOutcome = strawberry.field(description="Whether it reached the endpoint.")
    attempts: int = strawberry.field(description="How many times it was posted.")
    last_error: str = strawberry.field(
        description="Why the last attempt failed; empty when none did."
    )
    sent_at: datetime.datetime | None = strawberry.field(
        description="When the endpoint accepted it (ISO 8601, UTC); null before."
    )
    created_at: datetime.datetime = strawberry.field(
        description="When it was queued (ISO 8601, UTC)."
    )

    @classmethod
    def from_view(cls, view: webhook_endpoints.DeliveryView) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(str(view.id)),
            endpoint_id=strawberry.ID(str(view.endpoint_id)),
            order_id=order_global_id(view.order_id),
            event_id=strawberry.ID(str(view.event_id)),
            event_type=view.event_type,
            outcome=DeliveryOutcome(view.outcome),
            attempts=view.attempts,
            last_error=view.last_error,
            sent_at=view.sent_at,
            created_at=view.created_at,
        )


@strawberry.input(description="An endpoint to register.")
class RegisterWebhookEndpointInput:
    url: str = strawberry.field(description="Where to POST: http:// or https://.")
    event_types: list[str] = strawberry.field(
        description="Order event types such as submitted or transition, or * for all."
    )
    description: str = strawberry.field(default="", description="What it is for.")


@strawberry.type(description="The answer to registering an endpoint or rotating its secret.")
class WebhookEndpointPayload:
    endpoint: WebhookEndpoint | None = strawberry.field(
        default=None, description="The endpoint; null when errors is not empty."
    )
    secret: str | None = strawberry.field(
        default=None,
        description="The endpoint's signing secret, shown this once: keep it to verify "
        "Ordergraph-Signature.",
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description=PAYLOAD_ERRORS,
    )


@strawberry.type(description="The answer to deleteWebhookEndpoint.")
class DeleteWebhookEndpointPayload:
    deleted: bool = strawberry.field(description="True when it was deleted.")
    errors: list[UserError] = strawberry.field(description=PAYLOAD_ERRORS)


@strawberry.type
class WebhooksQuery:
    @strawberry.field(description="The webhook endpoints registered through the API (admin).")
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        require(info, Role.ADMIN)
        return [WebhookEndpoint.from_view(e) for e in await webhook_endpoints.active()]

    @strawberry.field(description="A registered endpoint's deliveries, newest first (admin).")
    async def webhook_deliveries(
        self,
        info: Info,
        endpoint_id: Annotated[
            strawberry.ID, strawberry.argument(description="The endpoint (WebhookEndpoint.id).")
        ],
        first: Annotated[
            int | None,
            strawberry.argument(
                description="How many deliveries the page holds: 1 to 100 (default 50); "
                "another number is refused with OUT_OF_RANGE."
            ),
        ] = DELIVERIES_PAGE,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="The cursor after which the page starts: a cursor this list "
                "handed out (endCursor), else INVALID_CURSOR."
            ),
        ] = None,
    ) -> Connection[WebhookDelivery]:
        require(info, Role.ADMIN)
        size = page_size(first, default=DELIVERIES_PAGE)
        return await webhook_deliveries_page(endpoint_id, size, after, WebhookDelivery.from_view)


@strawberry.type(description="The answer to a replay of a webhook.")
class ReplayPayload:
    queued: bool = strawberry.field(description="True when it was queued to be sent again.")
    errors: list[UserError] = strawberry.field(description=PAYLOAD_ERRORS)


@strawberry.type
class WebhooksMutation:
    @strawberry.mutation(
        description="Register an endpoint for order events (admin); answers its secret once."
    )
    @payload_errors
    async def register_webhook_endpoint(
        self,
        info: Info,
        input: Annotated[
            RegisterWebhookEndpointInput, strawberry.argument(description="The endpoint.")
        ],
    ) -> WebhookEndpointPayload:
        principal = require(info, Role.ADMIN)
        endpoint, secret = await webhook_endpoints.register(
            input.url,
            input.event_types,
            input.description,
            principal,
            _settings["allowed_hosts"],
        )
        return WebhookEndpointPayload(endpoint=WebhookEndpoint.from_view(endpoint), secret=secret)

    @strawberry.mutation(
        description="Give an endpoint a new signing secret, answered once; the old one "
        "signs nothing more (admin)."
    )
    @payload_errors
    async def rotate_webhook_endpoint_secret(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID,
            strawberry.argument(description="The endpoint's id (WebhookEndpoint.id)."),
        ],
    ) -> WebhookEndpointPayload:
        require(info, Role.ADMIN)
        endpoint, secret = await webhook_endpoints.rotate_secret(row_id(id, "webhook endpoint"))
        return WebhookEndpointPayload(endpoint=WebhookEndpoint.from_view(endpoint), secret=secret)

    @strawberry.mutation(
        description="Delete an endpoint: nothing more is sent to it, not even queued "
        "retries; its deliveries stay listed (admin)."
    )
    async def delete_webhook_endpoint(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID,
            strawberry.argument(description="The endpoint's id (WebhookEndpoint.id)."),
        ],
    ) -> DeleteWebhookEndpointPayload:
        require(info, Role.ADMIN)
        try:
            await webhook_endpoints.delete(row_id(id, "webhook endpoint"))
        except DomainError as error:
            return DeleteWebhookEndpointPayload(deleted=False, errors=user_errors(error))
        return DeleteWebhookEndpointPayload(deleted=True, errors=[])

    @strawberry.mutation(
        description="Send a delivery to its registered endpoint again, signed anew (admin)."
    )
    async def replay_webhook_delivery(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID,
            strawberry.argument(description="The delivery's id (WebhookDelivery.id)."),
        ],
    ) -> ReplayPayload:
        require(info, Role.ADMIN)
        try:
            found = await webhook_endpoints.delivery(row_id(id, "webhook delivery"))
            if found is None:
                raise DomainError.of(
                    ErrorCode.NOT_FOUND, f"There is no webhook delivery {id}.", "id"
                )
            if await webhook_endpoints.target(found.endpoint_id) is None:
                raise DomainError.of(
                    ErrorCode.NOT_FOUND,
                    f"Webhook endpoint {found.endpoint_id} was deleted.",
                    "id",
                )
            body = await _event_body(found.order_id, found.event_id)
            if body is None:
                raise DomainError.of(
                    ErrorCode.NOT_FOUND, f"There is no webhook delivery {id}.", "id"
                )
        except DomainError as error:
            return ReplayPayload(queued=False, errors=user_errors(error))
        await enqueue_job(
            DELIVER_JOB, {"endpoint_id": found.endpoint_id, "body": body, "replay": True}
        )
        info.context.rt.wake_jobs()
        return ReplayPayload(queued=True, errors=[])

    @strawberry.mutation(description="Send an order event to an integrator's endpoint again.")
    async def replay_webhook(
        self,
        info: Info,
        order_id: Annotated[
            strawberry.ID,
            strawberry.argument(
                description="The order's id (Order.id; its databaseId is taken too)."
            ),
        ],
        event_id: Annotated[
            strawberry.ID, strawberry.argument(description="The order event's id (OrderEvent.id).")
        ],
        endpoint: Annotated[
            str, strawberry.argument(description="The endpoint's name in the plugin's settings.")
        ],
    ) -> ReplayPayload:
        require(info, Role.ADMIN)
        try:
            if endpoint not in _settings["endpoints"]:
                raise DomainError.of(
                    ErrorCode.NOT_FOUND, f"There is no endpoint {endpoint!r}.", "endpoint"
                )
            order = await load_order(order_key(order_id, "orderId"))
            if order is None:
                raise DomainError.of(
                    ErrorCode.NOT_FOUND, f"There is no order {order_id}.", "orderId"
                )
            event = await load_order_event(order.id, row_id(event_id, "event", field="eventId"))
            if event is None:
                raise DomainError.of(
                    ErrorCode.NOT_FOUND, f"There is no event {event_id}.", "eventId"
                )
        except DomainError as error:
            return ReplayPayload(queued=False, errors=user_errors(error))
        await enqueue_job(
            DELIVER_JOB, {"endpoint": endpoint, "body": body_of(order, event), "replay": True}
        )
        info.context.rt.wake_jobs()
        return ReplayPayload(queued=True, errors=[])


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        category="notifier",
        description="Signed order events posted to integrators' URLs, retried and replayable.",
        settings=(
            Setting(
                "signing_secret",
                default="",
                secret=True,
                description="HMAC key of the endpoints below (registered ones have their own).",
            ),
            Setting(
                "endpoints",
                dict,
                default={},
                description="Endpoint name -> URL to post to, besides those registered "
                "through GraphQL.",
            ),
            Setting(
                "event_types",
                dict,
                default={},
                description="Endpoint name -> comma-separated event types (default *).",
            ),
            Setting(
                "allowed_hosts",
                list,
                default=[],
                description="Hosts (names or addresses, as URLs write them) that endpoints "
                "may name although they are internal: loopback, private or link-local.",
            ),
        ),
    )


@hookimpl
def register_jobs(settings: dict[str, Any]) -> dict[str, Any]:
    if settings["endpoints"] and not settings["signing_secret"]:
        raise ValueError("plugins.webhooks.signing_secret is required for its endpoints")
    for name, url in settings["endpoints"].items():
        refused = webhook_endpoints.refused_target(url, settings["allowed_hosts"])
        if refused is not None:
            raise ValueError(f"plugins.webhooks.endpoints.{name}: {refused}")
    _settings.update(settings)
    return {DELIVER_JOB: deliver}


@hookimpl
def graphql_schema() -> SchemaExtension:
    return SchemaExtension(query=(WebhooksQuery,), mutation=(WebhooksMutation,))


@hookimpl
async def notify(order: OrderView, event: OrderEventView, settings: dict[str, Any]) -> None:
    if event.type in SKIPPED:
        return
    body = body_of(order, event)
    for endpoint in sorted(settings["endpoints"]):
        if _wanted(settings["event_types"].get(endpoint, "*"), event.type):
            await enqueue_job(DELIVER_JOB, {"endpoint": endpoint, "body": body})
    for registered in await webhook_endpoints.active():
        if registered.wants(event.type):
            await enqueue_job(DELIVER_JOB, {"endpoint_id": registered.id, "body": body})
