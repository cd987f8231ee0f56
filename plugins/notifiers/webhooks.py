"""The ``webhooks`` notifier: order events posted to integrators' URLs, signed.

The admin registers endpoints (``endpoints``: name -> URL) and the event types each
wants (``event_types``: name -> comma-separated types, or ``*``). Every matching order
event becomes one delivery job per endpoint (in the outbox: retried with its backoff
until it is answered 2xx), sent once per event and endpoint, each attempt logged on the
order with its outcome. ``replayWebhook`` (admin) sends an event to an endpoint again.

The body is JSON; ``Ordergraph-Signature: t=<unix time>,v1=<hex>`` carries the
HMAC-SHA256 of ``"<t>.<body>"`` with ``signing_secret``, the scheme Stripe uses: the
receiver recomputes it and refuses an old ``t`` (a replayed capture).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import strawberry

from ordergraph.plugin_api import (
    DomainError,
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
    record_notification,
    require,
    user_errors,
)

DELIVER_JOB = "webhooks.deliver"
SIGNATURE_HEADER = "Ordergraph-Signature"
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
    endpoint = payload["endpoint"]
    url = _settings["endpoints"].get(endpoint)
    if url is None:
        return
    channel = f"webhook:{endpoint}"[:32]
    kind = payload["body"]["type"]
    order_id, event_id = payload["body"]["order"]["id"], payload["body"]["id"]
    attempts = await notification_attempt(
        order_id, event_id, channel, url, kind, again=payload.get("replay", False)
    )
    if attempts is None:
        return
    body = json.dumps(payload["body"], separators=(",", ":"), default=str).encode()
    headers = {
        "content-type": "application/json",
        SIGNATURE_HEADER: signature(_settings["signing_secret"], int(time.time()), body),
    }
    error = ""
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(url, content=body, headers=headers)
        if not response.is_success:
            error = f"answered {response.status_code}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    await record_notification(order_id, event_id, channel, url, kind, attempts, error)
    if error:
        raise RuntimeError(f"webhook {endpoint}: {error}")


@strawberry.type
class ReplayPayload:
    queued: bool
    errors: list[UserError]


@strawberry.type
class WebhooksMutation:
    @strawberry.mutation(description="Send an order event to an integrator's endpoint again.")
    async def replay_webhook(
        self, info: Info, order_id: strawberry.ID, event_id: strawberry.ID, endpoint: str
    ) -> ReplayPayload:
        require(info, Role.ADMIN)
        try:
            if endpoint not in _settings["endpoints"]:
                raise DomainError.of(
                    ErrorCode.NOT_FOUND, f"There is no endpoint {endpoint!r}.", "endpoint"
                )
            order = await load_order(int(order_id)) if order_id.isdigit() else None
            if order is None or not event_id.isdigit():
                raise DomainError.of(
                    ErrorCode.NOT_FOUND, f"There is no order {order_id}.", "orderId"
                )
            event = await load_order_event(order.id, int(event_id))
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
            Setting("signing_secret", required=True, secret=True, description="HMAC key."),
            Setting("endpoints", dict, default={}, description="Endpoint name -> URL to post to."),
            Setting(
                "event_types",
                dict,
                default={},
                description="Endpoint name -> comma-separated event types (default *).",
            ),
        ),
    )


@hookimpl
def register_jobs(settings: dict[str, Any]) -> dict[str, Any]:
    _settings.update(settings)
    return {DELIVER_JOB: deliver}


@hookimpl
def graphql_schema() -> SchemaExtension:
    return SchemaExtension(mutation=(WebhooksMutation,))


@hookimpl
async def notify(order: OrderView, event: OrderEventView, settings: dict[str, Any]) -> None:
    if event.type in SKIPPED:
        return
    for endpoint in sorted(settings["endpoints"]):
        if _wanted(settings["event_types"].get(endpoint, "*"), event.type):
            await enqueue_job(DELIVER_JOB, {"endpoint": endpoint, "body": body_of(order, event)})
