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
from dataclasses import dataclass

from ordergraph.core import tracking
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.orders import load_order, parse_order_number
from ordergraph.core.tables import Customer

LOOKUPS_PER_CLIENT = 20
LOOKUPS_PER_ORDER = 10
WINDOW_SECONDS = 600.0
"""At most 20 lookups per client and 10 per order number in 10 minutes (per process)."""
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


@dataclass
class Limits:
    per_client: SlidingWindow
    per_order: SlidingWindow

    @classmethod
    def default(cls) -> Limits:
        return cls(SlidingWindow(LOOKUPS_PER_CLIENT), SlidingWindow(LOOKUPS_PER_ORDER))

    def check(self, client: str, number: str) -> None:
        now = time.monotonic()
        if not (
            self.per_client.allow(f"client:{client}", now)
            and self.per_order.allow(f"order:{number.strip().upper()}", now)
        ):
            raise DomainError.of(
                ErrorCode.RATE_LIMITED, "Too many lookups; try again in a few minutes.", "number"
            )


@dataclass(frozen=True)
class PublicTracking:
    order_id: int  # for the page's own links and live feed; the answers do not show it
    number: str
    status: str
    shipments: list[tracking.ShipmentTrackingView]


def _postal(value: str) -> str:
    return "".join(value.split()).upper()


_limits: dict[int, Limits] = {}


def limits_for(owner: object) -> Limits:
    """The lookup limits of one running service (``owner``: its runtime)."""
    return _limits.setdefault(id(owner), Limits.default())


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
    shipments = (await tracking.order_tracking([order_id]))[order_id]
    return PublicTracking(
        order_id=order.id, number=order.number, status=order.status, shipments=shipments
    )
