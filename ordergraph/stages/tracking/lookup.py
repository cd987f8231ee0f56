"""Customers look for themselves: an order's tracking by its number and the customer's
e-mail (or the delivery postal code), without a token.

The answer holds the order's status and, per shipment, its carrier, status, ETA and
events with the place down to the city; nothing else (no address, no lines, no name).
A wrong e-mail gets the same answer as an unknown number (none), and lookups are
limited per client and per order (``limits.LOOKUPS_PER_CLIENT`` and
``LOOKUPS_PER_ORDER``), so guessing is slow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ordergraph.core import rate_limits
from ordergraph.core.limits import LOOKUPS_PER_CLIENT, LOOKUPS_PER_ORDER
from ordergraph.core.orders import load_order, parse_order_number
from ordergraph.core.tables import Customer
from ordergraph.stages.tracking import updates

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime

MAX_INPUT = 254


def _order_key(number: str) -> str:
    """What a lookup of ``number`` counts against: the order it names however written
    (``11``, ``so-000011``, ``SO-0000000011``), else the number as typed, normalized."""
    order_id = parse_order_number(number)
    if order_id is not None:
        return f"order:{order_id}"
    return "text:" + " ".join(number[:MAX_INPUT].split()).upper()


async def limit_lookup(rt: Runtime, client: str, number: str, *, count: bool = True) -> None:
    """Count one lookup by ``client`` of order ``number`` (``count=False``: only look);
    RATE_LIMITED, on the field ``number``, when either is over its limit (a lookup
    refused for the order still counts for the client)."""
    await rate_limits.check(
        rt,
        "number",
        (LOOKUPS_PER_CLIENT, client),
        (LOOKUPS_PER_ORDER, _order_key(number)),
        count=count,
    )


@dataclass(frozen=True)
class PublicTracking:
    order_id: int  # for the page's own links and live feed; the answers do not show it
    number: str
    status: str
    shipments: list[updates.ShipmentTrackingView]


def _postal(value: str) -> str:
    return "".join(value.split()).upper()


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
