"""Webhook endpoints that integrators register at run time, each with its own secret.

An endpoint is a URL and the order event types it wants. Its signing secret is made
here, returned once (at registration, or when rotated) and kept in the database, since
signing needs it in the clear. A deleted endpoint keeps its row (its deliveries stay
listed) but receives nothing more, not even the retries already queued.

Each delivery is a ``notifications`` row on the channel ``webhook-endpoint:ID`` (sent
once per event, every attempt counted and logged on the order), so the deliveries of an
endpoint are read from there.

A webhook must not become a way into the service's own network: a URL with credentials,
or whose host is a loopback, private, link-local or otherwise non-public address (in any
spelling: ``2130706433``, ``0x7f.1``, ``[::ffff:127.0.0.1]``) or ``localhost``, is refused
at registration, and each delivery resolves the name again, refuses it if any address is
not public, and connects to the address it checked. Hosts named in the notifier's
``allowed_hosts`` setting are exempt.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import secrets
import socket
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from piccolo.custom_types import Combinable

from ordergraph.core import db
from ordergraph.core.auth import Principal
from ordergraph.core.errors import DomainError, ErrorCode, Problem
from ordergraph.core.limits import MAX_ID
from ordergraph.stages.tracking.limits import (
    MAX_WEBHOOK_ENDPOINTS,
    MAX_WEBHOOK_EVENT_TYPES,
    WEBHOOK_DESCRIPTION,
    WEBHOOK_URL,
)
from ordergraph.stages.tracking.tables import Notification, WebhookEndpoint

CHANNEL_PREFIX = "webhook-endpoint:"
_EVENT_TYPE = re.compile(r"\*|[a-z][a-z0-9_.]{0,63}")


@dataclass(frozen=True)
class EndpointView:
    id: int
    url: str
    event_types: tuple[str, ...]
    description: str
    created_by: str
    created_at: datetime.datetime
    secret_rotated_at: datetime.datetime | None
    deleted_at: datetime.datetime | None

    @property
    def channel(self) -> str:
        """The notification channel of this endpoint's deliveries."""
        return f"{CHANNEL_PREFIX}{self.id}"

    def wants(self, event_type: str) -> bool:
        return "*" in self.event_types or event_type in self.event_types


@dataclass(frozen=True)
class DeliveryView:
    id: int
    endpoint_id: int
    order_id: int
    event_id: int
    event_type: str
    outcome: str
    attempts: int
    last_error: str
    sent_at: datetime.datetime | None
    created_at: datetime.datetime


def _endpoint(row: dict[str, Any]) -> EndpointView:
    return EndpointView(
        id=row["id"],
        url=row["url"],
        event_types=tuple(row["event_types"].split(",")),
        description=row["description"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        secret_rotated_at=row["secret_rotated_at"],
        deleted_at=row["deleted_at"],
    )


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(host: str) -> IPAddress | None:
    """The address ``host`` spells, in any form a resolver reads as one (``10.1``,
    ``2130706433``, ``0x7f.0.0.1``, ``0177.0.0.1``, ``::ffff:127.0.0.1``); None for a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _public(address: IPAddress) -> bool:
    return address.is_global and not address.is_multicast


def _allowed(host: str, allowed_hosts: Collection[str]) -> bool:
    return host.lower().rstrip(".") in {h.lower().rstrip(".") for h in allowed_hosts}


def refused_target(url: str, allowed_hosts: Collection[str] = ()) -> str | None:
    """Why a webhook may not post to ``url`` (before any name is resolved), or None."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (a port out of range raises)
    except ValueError:
        parts = parts._replace(netloc="")
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        return "The URL must be an absolute http:// or https:// URL with a host."
    if parts.username is not None or parts.password is not None:
        return "The URL must not carry credentials (user:password@); sign with the secret."
    if _allowed(host, allowed_hosts):
        return None
    address = _address(host)
    name = host.lower().rstrip(".")
    internal_name = name in ("localhost", "") or name.endswith(".localhost")
    if internal_name or (address is not None and not _public(address)):
        return (
            "The URL's host is a loopback, private, link-local or otherwise internal "
            "address; name it in the webhooks notifier's allowed_hosts to allow it."
        )
    return None


class TargetRefused(Exception):
    """A delivery's host resolved to an address that is not public."""


@dataclass(frozen=True)
class Target:
    """Where one delivery connects: the checked addresses, and the name they stand for."""

    urls: tuple[str, ...]  # the URL with each checked address in place of the name
    host_header: str
    server_name: str  # for TLS: the name the certificate must show


async def resolved_target(url: str, allowed_hosts: Collection[str] = ()) -> Target:
    """Resolve ``url``'s host now; TargetRefused unless every address is public (or the
    host is allowed). Connecting to the checked address keeps a name that changes its
    answer between the check and the connection (DNS rebinding) from reaching inside."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if refused_target(url, allowed_hosts) is not None:
        raise TargetRefused
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [_address(str(info[4][0]).split("%")[0]) for info in infos]
    public = all(a is not None and _public(a) for a in addresses)
    if not addresses or not (public or _allowed(host, allowed_hosts)):
        raise TargetRefused
    checked = dict.fromkeys(str(info[4][0]) for info in infos)
    return Target(
        urls=tuple(_with_host(parts, f"[{a}]" if ":" in a else a) for a in checked),
        host_header=parts.netloc.rpartition("@")[2],
        server_name=host,
    )


def _with_host(parts: SplitResult, host: str) -> str:
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def _checked(
    url: str, event_types: list[str], description: str, allowed_hosts: Collection[str]
) -> tuple[str, ...]:
    """The event types, deduplicated, or every problem with the input at once."""
    problems: list[Problem] = []
    if WEBHOOK_URL.check(url, "url", problems):
        refused = refused_target(url, allowed_hosts)
        if refused is not None:
            problems.append(Problem(ErrorCode.INVALID_VALUE, refused, "url"))
    WEBHOOK_DESCRIPTION.check(description, "description", problems)
    wanted = tuple(dict.fromkeys(t.strip() for t in event_types))
    if not wanted:
        problems.append(
            Problem(ErrorCode.REQUIRED, "Name at least one event type, or *.", "eventTypes")
        )
    elif len(wanted) > MAX_WEBHOOK_EVENT_TYPES:
        problems.append(
            Problem(
                ErrorCode.OUT_OF_RANGE,
                f"An endpoint takes at most {MAX_WEBHOOK_EVENT_TYPES} event types.",
                "eventTypes",
            )
        )
    for i, name in enumerate(wanted[:MAX_WEBHOOK_EVENT_TYPES]):
        if not _EVENT_TYPE.fullmatch(name):
            problems.append(
                Problem(
                    ErrorCode.INVALID_VALUE,
                    "An event type is * or a lower-case name such as submitted "
                    "(letters, digits, _ and .).",
                    f"eventTypes[{i}]",
                )
            )
    if problems:
        raise DomainError(*problems)
    return wanted


async def register(
    url: str,
    event_types: list[str],
    description: str,
    principal: Principal,
    allowed_hosts: Collection[str] = (),
) -> tuple[EndpointView, str]:
    """Store a new endpoint; it and its secret (shown to the caller this once).
    ``allowed_hosts``: internal hosts the URL may name (see ``refused_target``)."""
    wanted = _checked(url, event_types, description, allowed_hosts)
    secret = new_secret()
    async with db.write_transaction():
        registered = await WebhookEndpoint.count().where(WebhookEndpoint.deleted_at.is_null())
        if registered >= MAX_WEBHOOK_ENDPOINTS:
            raise DomainError.of(
                ErrorCode.OUT_OF_RANGE,
                f"At most {MAX_WEBHOOK_ENDPOINTS} webhook endpoints can be registered; "
                "delete one first.",
                "url",
            )
        [row] = await WebhookEndpoint.insert(
            WebhookEndpoint(
                url=url,
                event_types=",".join(wanted),
                description=description,
                secret=secret,
                created_by=principal.actor,
            )
        ).returning(*WebhookEndpoint.all_columns())
    return _endpoint(row), secret


async def active() -> list[EndpointView]:
    """Every endpoint not deleted, oldest first (at most ``MAX_WEBHOOK_ENDPOINTS``)."""
    rows = (
        await WebhookEndpoint.select(*WebhookEndpoint.all_columns(exclude=[WebhookEndpoint.secret]))
        .where(WebhookEndpoint.deleted_at.is_null())
        .order_by(WebhookEndpoint.id)
    )
    return [_endpoint(row) for row in rows]


def _not_found(endpoint_id: int | str, field: str = "id") -> DomainError:
    return DomainError.of(
        ErrorCode.NOT_FOUND, f"There is no webhook endpoint {endpoint_id}.", field
    )


async def delete(endpoint_id: int) -> EndpointView:
    """Stop all deliveries to the endpoint (NOT_FOUND when unknown or deleted already)."""
    rows = await (
        WebhookEndpoint.update({WebhookEndpoint.deleted_at: db.now()})
        .where((WebhookEndpoint.id == endpoint_id) & WebhookEndpoint.deleted_at.is_null())
        .returning(*WebhookEndpoint.all_columns())
    )
    if not rows:
        raise _not_found(endpoint_id)
    return _endpoint(rows[0])


async def rotate_secret(endpoint_id: int) -> tuple[EndpointView, str]:
    """Give the endpoint a new secret, used from the next attempt on; it and the secret."""
    secret = new_secret()
    rows = await (
        WebhookEndpoint.update(
            {WebhookEndpoint.secret: secret, WebhookEndpoint.secret_rotated_at: db.now()}
        )
        .where((WebhookEndpoint.id == endpoint_id) & WebhookEndpoint.deleted_at.is_null())
        .returning(*WebhookEndpoint.all_columns())
    )
    if not rows:
        raise _not_found(endpoint_id)
    return _endpoint(rows[0]), secret


async def target(endpoint_id: int) -> tuple[EndpointView, str] | None:
    """Where to deliver and the secret to sign with; None once the endpoint is deleted."""
    row = await (
        WebhookEndpoint.select()
        .where((WebhookEndpoint.id == endpoint_id) & WebhookEndpoint.deleted_at.is_null())
        .first()
    )
    return (_endpoint(row), row["secret"]) if row else None


def delivery_view(endpoint_id: int, row: dict[str, Any]) -> DeliveryView:
    return DeliveryView(
        id=row["id"],
        endpoint_id=endpoint_id,
        order_id=row["order"],
        event_id=row["event"],
        event_type=row["kind"],
        outcome=row["outcome"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        sent_at=row["sent_at"],
        created_at=row["created_at"],
    )


def delivery_filters(endpoint_id: int) -> list[Combinable]:
    """Where-clauses on notifications that keep the deliveries to endpoint ``endpoint_id``."""
    return [Notification.channel == f"{CHANNEL_PREFIX}{endpoint_id}"]


async def delivery(delivery_id: int) -> DeliveryView | None:
    """One delivery to a registered endpoint (None for another channel's message)."""
    if not 0 < delivery_id <= MAX_ID:
        return None
    row = await Notification.select().where(Notification.id == delivery_id).first()
    if row is None or not row["channel"].startswith(CHANNEL_PREFIX):
        return None
    return delivery_view(int(row["channel"].removeprefix(CHANNEL_PREFIX)), row)


async def get(endpoint_id: int) -> EndpointView | None:
    """An endpoint, deleted or not."""
    row = await (
        WebhookEndpoint.select(*WebhookEndpoint.all_columns(exclude=[WebhookEndpoint.secret]))
        .where(WebhookEndpoint.id == endpoint_id)
        .first()
    )
    return _endpoint(row) if row else None
