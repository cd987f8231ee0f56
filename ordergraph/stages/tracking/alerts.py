"""Stage 4, alerts: exceptions that a person must resolve, owned by the order's team.

An alert opens when its condition holds (a failed delivery, a carrier exception, an
order sitting in a state past its due time, ...) and closes itself when the condition
clears (the parcel is delivered after all); staff acknowledge and resolve the rest.
An order has at most one open alert of each kind: ``open_key`` is unique while open.
Opening, acknowledging and resolving are written on the order's timeline (for staff
only), which also feeds the ``alerts`` subscription.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from piccolo.custom_types import Combinable

from ordergraph.core import db, scope
from ordergraph.core.auth import SYSTEM, Principal
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.limits import RESOLUTION
from ordergraph.core.orders import NewEvent, Timeline, recording
from ordergraph.core.periodic import Periodic
from ordergraph.core.plugins import PluginInfo, hookimpl
from ordergraph.core.tables import Order, OrderEvent, OutboxJob
from ordergraph.stages.fulfilment.tables import Assignment
from ordergraph.stages.tracking.tables import Alert, ShipmentTracking

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime

SEVERITY = {
    "stuck": "warning",
    "sla_breach": "high",
    "delivery_failed": "high",
    "carrier_exception": "warning",
    "tracking_silent": "warning",
    "job_failed": "high",
    "plugin_failed": "high",
    "label_failed": "high",
    "payment_held": "high",
    "delivery_problem": "high",
}
"""Every kind of alert and its severity."""
RESPONSE_HOURS = {"high": 4, "warning": 24}
"""Hours from opening until an alert is due to be resolved, by severity."""
ALERT_EVENTS = frozenset({"alert_opened", "alert_acknowledged", "alert_resolved"})
CARRIER_EXCEPTIONS = frozenset({"on_hold", "return_to_sender", "delivery_delayed", "cancelled"})
SILENT_HOURS = 48
"""A shipment in transit with no carrier event for this long raises ``tracking_silent``."""
STUCK_HOURS = {"RECEIVED": 1, "IN_REVIEW": 2, "ON_HOLD": 24}
"""Hours an order may sit in a state before it is stuck (APPROVED and PROCESSING take
stage 3's due hours per priority: the pick's and the ship's)."""
SCAN_EVERY = datetime.timedelta(minutes=5)
SCAN_LIMIT = 1000
"""The most alerts one scan opens of one kind (the next period continues)."""


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def open_key(order_id: int, kind: str) -> str:
    return f"{order_id}:{kind}"


@dataclass(frozen=True)
class Wanted:
    """An alert to open on an order, unless one of its kind is open there already."""

    order_id: int
    shipment_id: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


async def open_alert(
    rt: Runtime,
    order_id: int,
    kind: str,
    *,
    shipment_id: int | None = None,
    detail: dict[str, Any] | None = None,
    now: datetime.datetime | None = None,
) -> int | None:
    """Open an alert unless one of this kind is open on the order; its id when opened."""
    opened = await open_alerts(rt, kind, [Wanted(order_id, shipment_id, detail or {})], now)
    return opened[0] if opened else None


async def open_alerts(
    rt: Runtime, kind: str, wanted: Sequence[Wanted], now: datetime.datetime | None = None
) -> list[int]:
    """Open one alert of ``kind`` on each order that has none open; the ids opened.

    The owner is the order's team and member (stage 3's assignment). However many
    orders: one read of the owners, one insert that skips the orders with an open
    alert (the unique ``open_key`` decides, also against a concurrent scan), and the
    events of ``_record_opened``. Joins the caller's transaction, or runs in its own.
    """
    if not wanted:
        return []
    now = now or db.now()
    severity = SEVERITY[kind]
    # One per order, in order: concurrent openers take the keys in the same order.
    by_order = {item.order_id: item for item in sorted(wanted, key=lambda w: w.order_id)}
    async with recording(rt) as timeline:
        owners = {
            row["order"]: row
            for row in await Assignment.select(
                Assignment.order, Assignment.team, Assignment.member.staff
            ).where(Assignment.order.is_in(list(by_order)))
        }
        inserted = await (
            Alert.insert(
                *(
                    Alert(
                        kind=kind,
                        severity=severity,
                        order=item.order_id,
                        shipment=item.shipment_id,
                        team=owners[item.order_id]["team"] if item.order_id in owners else None,
                        owner=owners.get(item.order_id, {}).get("member.staff"),
                        open_key=open_key(item.order_id, kind),
                        opened_at=now,
                        due_at=now + datetime.timedelta(hours=RESPONSE_HOURS[severity]),
                        detail=json.dumps(item.detail, default=str),
                    )
                    for item in by_order.values()
                )
            )
            .on_conflict(target=Alert.open_key, action="DO NOTHING")
            .returning(Alert.id)
        )
        opened = [row["id"] for row in inserted]
        await _record_opened(timeline, opened)
    return opened


async def _record_opened(timeline: Timeline, alert_ids: list[int]) -> None:
    """Write ``alert_opened`` on the orders of these new alerts: one read, one insert."""
    if not alert_ids:
        return
    rows = await Alert.select(
        Alert.id,
        Alert.order,
        Alert.kind,
        Alert.severity,
        Alert.owner,
        Alert.detail,
        Alert.team.name.as_alias("team_name"),
        Alert.order.customer.as_alias("customer"),
    ).where(Alert.id.is_in(alert_ids))
    await timeline.record_many(
        [
            (
                row["order"],
                row["customer"],
                NewEvent(
                    "alert_opened",
                    data={
                        "alert": row["id"],
                        "kind": row["kind"],
                        "severity": row["severity"],
                        "team": row["team_name"],
                        "owner": row["owner"],
                        **(_json(row["detail"]) or {}),
                    },
                ),
            )
            for row in sorted(rows, key=lambda row: row["id"])
        ],
        SYSTEM,
    )


async def close_alerts(
    rt: Runtime, order_id: int, kinds: list[str], resolution: str, principal: Principal = SYSTEM
) -> list[int]:
    """Resolve the open alerts of these kinds on an order (their condition cleared)."""
    return await _close(
        rt,
        (Alert.order == order_id) & Alert.kind.is_in(kinds) & Alert.open_key.is_not_null(),
        resolution,
        principal,
    )


async def _close_ids(rt: Runtime, alert_ids: list[int], resolution: str) -> list[int]:
    """Resolve these alerts if still open (a scan's alerts whose condition cleared)."""
    if not alert_ids:
        return []
    where = Alert.id.is_in(alert_ids) & Alert.open_key.is_not_null()
    return await _close(rt, where, resolution, SYSTEM)


async def _close(rt: Runtime, where: Any, resolution: str, principal: Principal) -> list[int]:
    """Resolve the open alerts ``where`` selects, however many, in one update, and write
    ``alert_resolved`` on their orders in one insert."""
    async with recording(rt) as timeline:
        closed = await (
            Alert.update(
                {
                    Alert.state: "resolved",
                    Alert.open_key: None,
                    Alert.resolved_by: principal.actor,
                    Alert.resolved_at: db.now(),
                    Alert.resolution: resolution,
                }
            )
            .where(where)
            .returning(Alert.id, Alert.kind, Alert.order)
        )
        if not closed:
            return []
        customer_of = {
            row["id"]: row["customer"]
            for row in await Order.select(Order.id, Order.customer).where(
                Order.id.is_in(sorted({row["order"] for row in closed}))
            )
        }
        await timeline.record_many(
            [
                (
                    row["order"],
                    customer_of[row["order"]],
                    NewEvent(
                        "alert_resolved",
                        data={"alert": row["id"], "kind": row["kind"], "resolution": resolution},
                    ),
                )
                for row in sorted(closed, key=lambda row: row["id"])
            ],
            principal,
        )
    return sorted(row["id"] for row in closed)


async def follow_tracking(
    rt: Runtime, order_id: int, shipment_id: int, status: str, reason: str | None
) -> None:
    """Open or close the tracking alerts of an order as a shipment's status moves.

    In the caller's transaction (``updates.ingest``). Any carrier news ends a
    ``tracking_silent`` alert; delivery ends a failed delivery; a status that is no
    exception ends a carrier exception.
    """
    statuses = [
        row["status"]
        for row in await ShipmentTracking.select(ShipmentTracking.status).where(
            ShipmentTracking.order == order_id
        )
    ]
    detail = {"shipment": shipment_id, "status": status, "reason": reason}
    if status == "delivery_failed":
        await open_alert(rt, order_id, "delivery_failed", shipment_id=shipment_id, detail=detail)
    elif status in CARRIER_EXCEPTIONS:
        await open_alert(rt, order_id, "carrier_exception", shipment_id=shipment_id, detail=detail)
    clear = ["tracking_silent"]
    if "delivery_failed" not in statuses:
        clear.append("delivery_failed")
    if not CARRIER_EXCEPTIONS.intersection(statuses):
        clear.append("carrier_exception")
    await close_alerts(rt, order_id, clear, f"the carrier reports {status}")


def stuck_hours(rt: Runtime) -> dict[str, dict[str, float]]:
    """Status -> priority -> hours an order may sit there."""
    due = rt.settings.due_hours
    priorities = set(due["pick"]) | set(due["ship"])
    rules = {status: dict.fromkeys(priorities, hours) for status, hours in STUCK_HOURS.items()}
    rules["APPROVED"] = dict(due["pick"])
    rules["PROCESSING"] = dict(due["ship"])
    return rules


OPEN_STUCK = """
INSERT INTO alerts (kind, severity, "order", team, owner, open_key, opened_at, due_at, detail)
SELECT 'stuck', {}, o.id, a.team, m.staff, CAST(o.id AS TEXT) || ':stuck', {}, {}, {}
FROM orders o
LEFT JOIN assignments a ON a."order" = o.id
LEFT JOIN team_members m ON m.id = a.member
WHERE o.priority = {} AND o.status = {} AND o.updated_at < {}
  AND NOT EXISTS (SELECT 1 FROM alerts x WHERE x.open_key = CAST(o.id AS TEXT) || ':stuck')
ORDER BY o.updated_at, o.id
LIMIT {}
ON CONFLICT (open_key) DO NOTHING
RETURNING id
"""
"""Open ``stuck`` for the orders of one status and priority that sat since a time and have
none open: a range of ``orders (priority, status, updated_at)``, an index probe of
``alerts.open_key`` per order, and the unique ``open_key`` against a concurrent scan."""


async def scan_stuck(rt: Runtime, now: datetime.datetime | None = None) -> int:
    """Open ``stuck`` alerts for orders in a state past its hours, close those that moved.

    One statement per (status, priority) opens the alerts (``OPEN_STUCK``), one writes
    their events, one more closes the alerts of orders that moved on: the statements do
    not grow with the number of alerts, and no statement reads the whole table.
    """
    now = now or db.now()
    severity = SEVERITY["stuck"]
    due = now + datetime.timedelta(hours=RESPONSE_HOURS[severity])
    opened: list[int] = []
    async with recording(rt) as timeline:
        for status, by_priority in stuck_hours(rt).items():
            for priority, hours in sorted(by_priority.items()):
                if len(opened) >= SCAN_LIMIT:
                    break
                detail = json.dumps({"status": status, "priority": priority, "hours": hours})
                since = now - datetime.timedelta(hours=hours)
                rows = await db.raw(
                    OPEN_STUCK,
                    severity,
                    now,
                    due,
                    detail,
                    priority,
                    status,
                    since,
                    SCAN_LIMIT - len(opened),
                )
                opened.extend(row["id"] for row in rows)
        await _record_opened(timeline, opened)
    still_open = await (
        Alert.select(Alert.id, Alert.detail, Alert.order.status.as_alias("status"))
        .where((Alert.kind == "stuck") & Alert.open_key.is_not_null())
        .limit(SCAN_LIMIT)
    )
    moved = [row["id"] for row in still_open if _json(row["detail"]).get("status") != row["status"]]
    await _close_ids(rt, moved, "the order moved on")
    return len(opened)


async def scan_sla(rt: Runtime, now: datetime.datetime | None = None) -> int:
    """``sla_breach`` for work past its due time (stage 3's assignment ``due_at``)."""
    now = now or db.now()
    late = await (
        Assignment.select(Assignment.order, Assignment.due_at)
        .where((Assignment.state != "done") & (Assignment.due_at < now))
        .order_by(Assignment.due_at)
        .limit(SCAN_LIMIT)
    )
    opened = await open_alerts(rt, "sla_breach", [Wanted(r["order"]) for r in late], now)
    breached = await (
        Alert.select(Alert.id, Alert.order)
        .where((Alert.kind == "sla_breach") & Alert.open_key.is_not_null())
        .limit(SCAN_LIMIT)
    )
    done = set()
    if breached:
        done = {
            row["order"]
            for row in await Assignment.select(Assignment.order).where(
                Assignment.order.is_in([r["order"] for r in breached])
                & (Assignment.state == "done")
            )
        }
    await _close_ids(
        rt, [row["id"] for row in breached if row["order"] in done], "the work was done"
    )
    return len(opened)


async def scan_silent(
    rt: Runtime, now: datetime.datetime | None = None, hours: float = SILENT_HOURS
) -> int:
    """``tracking_silent`` for shipments in transit with no carrier event for ``hours``."""
    now = now or db.now()
    since = now - datetime.timedelta(hours=hours)
    quiet = await (
        ShipmentTracking.select(ShipmentTracking.order, ShipmentTracking.shipment)
        .where(
            ShipmentTracking.status.not_in(["delivered", "cancelled", "return_to_sender"])
            & (
                (ShipmentTracking.last_event_at < since)
                | (
                    ShipmentTracking.last_event_at.is_null()
                    & (ShipmentTracking.shipment.created_at < since)
                )
            )
        )
        .limit(SCAN_LIMIT)
    )
    shipment_of = {row["order"]: row["shipment"] for row in quiet}
    wanted = [Wanted(order, shipment, {"hours": hours}) for order, shipment in shipment_of.items()]
    return len(await open_alerts(rt, "tracking_silent", wanted, now))


async def scan_failed_jobs(rt: Runtime, now: datetime.datetime | None = None) -> int:
    """``job_failed`` for an order whose job failed for good in the last day."""
    now = now or db.now()
    failed = await OutboxJob.select(
        OutboxJob.id, OutboxJob.name, OutboxJob.payload, OutboxJob.last_error
    ).where(
        (OutboxJob.status == "failed") & (OutboxJob.finished_at > now - datetime.timedelta(days=1))
    )
    by_order: dict[int, dict[str, Any]] = {}
    for job in failed:
        payload = _json(job["payload"])
        order_id = payload.get("order_id") if isinstance(payload, dict) else None
        if isinstance(order_id, int):
            by_order.setdefault(order_id, job)
    wanted = [
        Wanted(order_id, detail={"job": job["id"], "name": job["name"], "error": job["last_error"]})
        for order_id, job in by_order.items()
    ]
    return len(await open_alerts(rt, "job_failed", wanted, now))


async def scan_plugin_failures(rt: Runtime, now: datetime.datetime | None = None) -> int:
    """``plugin_failed`` for an order whose timeline records a plugin failure in the last
    day that no ``plugin_failed`` alert has answered yet (one opened since)."""
    now = now or db.now()
    failures = await (
        OrderEvent.select(OrderEvent.order, OrderEvent.data, OrderEvent.at)
        .where(
            (OrderEvent.type == "plugin_failed")
            & (OrderEvent.at > now - datetime.timedelta(days=1))
        )
        .order_by(OrderEvent.id, ascending=False)
        .limit(SCAN_LIMIT)
    )
    latest: dict[int, dict[str, Any]] = {}
    for row in failures:
        latest.setdefault(row["order"], row)
    answered = {
        row["order"]
        for row in await Alert.select(Alert.order, Alert.opened_at).where(
            Alert.order.is_in(list(latest) or [0]) & (Alert.kind == "plugin_failed")
        )
        if row["opened_at"] >= latest[row["order"]]["at"]
    }
    wanted = []
    for order_id, row in latest.items():
        if order_id not in answered:
            data = _json(row["data"]) or {}
            detail = {"plugin": data.get("plugin"), "error": data.get("error")}
            wanted.append(Wanted(order_id, detail=detail))
    return len(await open_alerts(rt, "plugin_failed", wanted, now))


async def scan_all(rt: Runtime, now: datetime.datetime) -> dict[str, int]:
    """Every scan; the alerts each opened."""
    return {
        "stuck": await scan_stuck(rt, now),
        "sla_breach": await scan_sla(rt, now),
        "tracking_silent": await scan_silent(rt, now),
        "job_failed": await scan_failed_jobs(rt, now),
        "plugin_failed": await scan_plugin_failures(rt, now),
    }


@dataclass(frozen=True)
class AlertView:
    id: int
    kind: str
    severity: str
    order_id: int
    shipment_id: int | None
    team: str | None
    owner: str | None
    state: str
    opened_at: datetime.datetime
    due_at: datetime.datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime.datetime | None
    resolved_by: str | None
    resolved_at: datetime.datetime | None
    resolution: str
    detail: dict[str, Any]


ALERT_COLUMNS = (*Alert.all_columns(), Alert.team.name.as_alias("team_name"))
"""What ``alert_view`` reads of an alert: its row and its team's name."""


def alert_view(row: dict[str, Any]) -> AlertView:
    return AlertView(
        id=row["id"],
        kind=row["kind"],
        severity=row["severity"],
        order_id=row["order"],
        shipment_id=row["shipment"],
        team=row["team_name"],
        owner=row["owner"],
        state=row["state"],
        opened_at=row["opened_at"],
        due_at=row["due_at"],
        acknowledged_by=row["acknowledged_by"],
        acknowledged_at=row["acknowledged_at"],
        resolved_by=row["resolved_by"],
        resolved_at=row["resolved_at"],
        resolution=row["resolution"],
        detail=_json(row["detail"]),
    )


def alert_filters(
    principal: Principal, *, state: str | None = None, order_id: int | None = None
) -> list[Combinable]:
    """Where-clauses on alerts that keep those the principal may see, in ``state`` (open:
    acknowledged ones included; acknowledged; resolved) and of ``order_id``, when given."""
    clauses: list[Combinable] = []
    if state == "open":
        clauses.append(Alert.open_key.is_not_null())
    elif state is not None:
        clauses.append(Alert.state == state)
    if order_id is not None:
        clauses.append(Alert.order == order_id)
    visible = scope.visible_orders(principal)
    if visible:
        clauses.append(Alert.order.is_in(Order.select(Order.id).where(*visible)))
    return clauses


async def get_alert(alert_id: int, principal: Principal) -> AlertView:
    row = await Alert.select(*ALERT_COLUMNS).where(Alert.id == alert_id).first()
    if row is None or not await scope.may_access_order(principal, row["order"]):
        raise DomainError.of(ErrorCode.NOT_FOUND, f"There is no alert {alert_id}.", "id")
    return alert_view(row)


async def acknowledge(rt: Runtime, alert_id: int, principal: Principal) -> AlertView:
    """Say someone is on it; an alert is acknowledged once."""
    alert = await get_alert(alert_id, principal)
    async with recording(rt) as timeline:
        updated = await (
            Alert.update(
                {
                    Alert.state: "acknowledged",
                    Alert.acknowledged_by: principal.actor,
                    Alert.acknowledged_at: db.now(),
                }
            )
            .where((Alert.id == alert_id) & (Alert.state == "open"))
            .returning(Alert.id)
        )
        if not updated:
            raise DomainError.of(
                ErrorCode.ALREADY_DONE, f"Alert {alert_id} is {alert.state} already.", "id"
            )
        await timeline.record(
            alert.order_id,
            "alert_acknowledged",
            principal,
            data={"alert": alert_id, "kind": alert.kind, "team": alert.team},
        )
    return await get_alert(alert_id, principal)


async def resolve(rt: Runtime, alert_id: int, principal: Principal, resolution: str) -> AlertView:
    """Close an alert with a note saying what was done."""
    alert = await get_alert(alert_id, principal)
    note = resolution.strip()
    if not note:
        raise DomainError.of(ErrorCode.REQUIRED, "Say what was done.", "resolution")
    if (wrong := RESOLUTION.problem(note, "resolution")) is not None:
        raise DomainError(wrong)
    async with recording(rt) as timeline:
        updated = await (
            Alert.update(
                {
                    Alert.state: "resolved",
                    Alert.open_key: None,
                    Alert.resolved_by: principal.actor,
                    Alert.resolved_at: db.now(),
                    Alert.resolution: note,
                }
            )
            .where((Alert.id == alert_id) & Alert.open_key.is_not_null())
            .returning(Alert.id)
        )
        if not updated:
            raise DomainError.of(
                ErrorCode.ALREADY_DONE, f"Alert {alert_id} is resolved already.", "id"
            )
        await timeline.record(
            alert.order_id,
            "alert_resolved",
            principal,
            data={"alert": alert_id, "kind": alert.kind, "team": alert.team, "resolution": note},
        )
    return await get_alert(alert_id, principal)


@dataclass(frozen=True)
class Desk:
    """Opening and closing alerts for the stages before tracking (``Runtime.alerts``)."""

    rt: Runtime

    async def open_alert(
        self,
        order_id: int,
        kind: str,
        *,
        shipment_id: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> int | None:
        return await open_alert(self.rt, order_id, kind, shipment_id=shipment_id, detail=detail)

    async def close_alerts(self, order_id: int, kinds: list[str], resolution: str) -> list[int]:
        return await close_alerts(self.rt, order_id, kinds, resolution)


class Stage:
    """The alerts stage's hooks: its scans run as periodic work."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        rt.alerts = Desk(rt)

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(category="other", description="Stage 4: alerts.")

    @hookimpl
    async def delivery_problem_reported(self, order: Any, problem: Any) -> None:
        """A customer's problem with a delivery is the order's team's to resolve; the
        alert closes when the order's last open problem is resolved
        (``settlement.confirmation.resolve_problem``)."""
        await open_alert(
            self.rt,
            order.id,
            "delivery_problem",
            detail={"problem": problem.id, "description": problem.description},
        )

    @hookimpl
    def register_periodic(self) -> dict[str, Periodic]:
        rt = self.rt

        async def scan(now: datetime.datetime) -> None:
            await scan_all(rt, now)

        return {
            "alerts.scan": Periodic(
                SCAN_EVERY, scan, "Stuck, SLA, silent, failed jobs and plugin failures."
            )
        }
