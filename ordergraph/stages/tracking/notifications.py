"""Stage 4, notifications: each message about an order event is sent once per recipient
and channel, and every attempt is logged on the order.

Notifier plugins implement ``notify``, which the job runner calls after commit, at
least once per event (the outbox: a crash never loses one). ``attempt`` turns that into
once per (event, channel, recipient): it records the attempt and answers None when the
message was sent already, and ``record_outcome`` writes the outcome and attempt count on
the order's timeline (a ``notification`` event, for staff).
"""

from __future__ import annotations

from ordergraph.core import db
from ordergraph.core.auth import SYSTEM
from ordergraph.core.orders import OrderEventView, append_event, event_view
from ordergraph.core.tables import OrderEvent
from ordergraph.stages.tracking.tables import Notification

NOTIFICATION_EVENT = "notification"


async def attempt(
    order_id: int,
    event_id: int,
    channel: str,
    recipient: str,
    kind: str,
    *,
    again: bool = False,
) -> int | None:
    """Count one more attempt; the attempt number, or None when it was sent already
    (``again``: send anyway, for a replay)."""
    async with db.write_transaction():
        await Notification.insert(
            Notification(
                order=order_id, event=event_id, channel=channel, recipient=recipient, kind=kind
            )
        ).on_conflict(
            target=(Notification.event, Notification.channel, Notification.recipient),
            action="DO NOTHING",
        )
        which = (
            (Notification.event == event_id)
            & (Notification.channel == channel)
            & (Notification.recipient == recipient)
        )
        if not again:
            which &= Notification.outcome != "sent"
        counted = await (
            Notification.update({Notification.attempts: Notification.attempts + 1})
            .where(which)
            .returning(Notification.attempts)
        )
    return counted[0]["attempts"] if counted else None


async def record_outcome(
    order_id: int,
    event_id: int,
    channel: str,
    recipient: str,
    kind: str,
    attempts: int,
    error: str = "",
) -> None:
    """Write the outcome of an attempt on the notification and the order's timeline."""
    outcome = "failed" if error else "sent"
    async with db.write_transaction():
        await Notification.update(
            {
                Notification.outcome: outcome,
                Notification.last_error: error[:2000],
                Notification.sent_at: None if error else db.now(),
            }
        ).where(
            (Notification.event == event_id)
            & (Notification.channel == channel)
            & (Notification.recipient == recipient)
        )
        await append_event(
            order_id,
            NOTIFICATION_EVENT,
            SYSTEM,
            {
                "channel": channel,
                "recipient": recipient,
                "kind": kind,
                "event": event_id,
                "outcome": outcome,
                "attempts": attempts,
                "error": error or None,
            },
        )


async def load_order_event(order_id: int, event_id: int) -> OrderEventView | None:
    """One event of an order's timeline (to send it again)."""
    row = await (
        OrderEvent.select()
        .where((OrderEvent.id == event_id) & (OrderEvent.order == order_id))
        .first()
    )
    return event_view(row) if row else None
