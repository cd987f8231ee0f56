"""Customers look for themselves: an order's tracking by its number and the customer's
e-mail (or the delivery postal code), without a token.

The answer holds the order's status and, per shipment, its carrier, status, ETA and
events with the place down to the city; nothing else (no address, no lines, no name).
A wrong e-mail gets the same answer as an unknown number (none), and lookups are
limited per client and per order number, so guessing is slow.
"""

from __future__ import annotations

import collections
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.events import channel_for
from ordergraph.core.orders import load_order, parse_order_number
from ordergraph.core.tables import Customer
from ordergraph.stages.tracking import updates

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime

LOOKUPS_PER_CLIENT = 20
LOOKUPS_PER_ORDER = 10
WINDOW_SECONDS = 600.0
"""At most 20 lookups per client and 10 per order number in 10 minutes, counted in Redis
across all API processes when ``REDIS_URL`` is set (otherwise in the one process)."""
MAX_INPUT = 254


class SlidingWindow:
    """How many times each key was used in the last ``window`` seconds."""

    def __init__(self, limit: int, window: float = WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, collections.deque[float]] = {}

    def allow(self, key: str, now: float) -> bool:
        hits = self._hits.setdefault(key, collections.deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True


def _refused() -> DomainError:
    return DomainError.of(
        ErrorCode.RATE_LIMITED, "Too many lookups; try again in a few minutes.", "number"
    )


def _keys(client: str, number: str) -> tuple[str, str]:
    return f"client:{client}", f"order:{number.strip().upper()}"


class Limits(Protocol):
    async def check(self, client: str, number: str) -> None:
        """Count one lookup by ``client`` of order ``number``; RATE_LIMITED when either
        is over its limit (a lookup refused for the order still counts for the client)."""


@dataclass
class ProcessLimits:
    """The limits of a service that runs as one process (no Redis)."""

    per_client: SlidingWindow
    per_order: SlidingWindow

    @classmethod
    def default(cls) -> ProcessLimits:
        return cls(SlidingWindow(LOOKUPS_PER_CLIENT), SlidingWindow(LOOKUPS_PER_ORDER))

    async def check(self, client: str, number: str) -> None:
        now = time.monotonic()
        client_key, order_key = _keys(client, number)
        if not (self.per_client.allow(client_key, now) and self.per_order.allow(order_key, now)):
            raise _refused()


# The same sliding window in one atomic step for every process: per key, drop the hits
# older than the window, refuse when the key is full, else add this hit. Redis's clock
# is the one clock all processes share.
SLIDING_WINDOW_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= tonumber(ARGV[i + 1]) then
    return 0
  end
  redis.call('ZADD', key, now, ARGV[#ARGV])
  redis.call('PEXPIRE', key, window)
end
return 1
"""


@dataclass
class RedisLimits:
    """The limits shared by every process of a deployment, kept in Redis."""

    redis: Any
    prefix: str

    async def check(self, client: str, number: str) -> None:
        keys = [f"{self.prefix}:{key}" for key in _keys(client, number)]
        allowed = await self.redis.eval(
            SLIDING_WINDOW_SCRIPT,
            len(keys),
            *keys,
            int(WINDOW_SECONDS * 1000),
            LOOKUPS_PER_CLIENT,
            LOOKUPS_PER_ORDER,
            uuid.uuid4().hex,
        )
        if not allowed:
            raise _refused()


@dataclass(frozen=True)
class PublicTracking:
    order_id: int  # for the page's own links and live feed; the answers do not show it
    number: str
    status: str
    shipments: list[updates.ShipmentTrackingView]


def _postal(value: str) -> str:
    return "".join(value.split()).upper()


_process_limits: dict[int, ProcessLimits] = {}


def limits_for(rt: Runtime) -> Limits:
    """The lookup limits of one running service: in Redis when it has Redis."""
    if rt.bus.redis is not None:
        return RedisLimits(rt.bus.redis, channel_for(rt.settings.database_url, "track-lookups"))
    return _process_limits.setdefault(id(rt), ProcessLimits.default())


async def look_up(
    number: str, *, email: str | None = None, postal_code: str | None = None
) -> PublicTracking | None:
    """The order's public tracking when the number and the e-mail (or postal code) match;
    None otherwise, whichever of the two was wrong."""
    if len(number) > MAX_INPUT or len(email or "") > MAX_INPUT or len(postal_code or "") > 32:
        return None
    order_id = parse_order_number(number)
    if order_id is None or not (email or postal_code):
        return None
    order = await load_order(order_id)
    if order is None:
        return None
    customer = await Customer.select(Customer.email).where(Customer.id == order.customer_id).first()
    matches = False
    if email:
        matches = customer is not None and customer["email"].lower() == email.strip().lower()
    elif postal_code:
        on_order = str(order.shipping_address.get("postalCode") or "")
        matches = bool(on_order) and _postal(on_order) == _postal(postal_code)
    if not matches:
        return None
    shipments = (await updates.order_tracking([order_id]))[order_id]
    return PublicTracking(
        order_id=order.id, number=order.number, status=order.status, shipments=shipments
    )
