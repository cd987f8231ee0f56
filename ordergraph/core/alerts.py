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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ordergraph.core import db
from ordergraph.core.auth import SYSTEM, Principal, Role
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.orders import recording
from ordergraph.core.periodic import Periodic
from ordergraph.core.plugins import PluginInfo, hookimpl
from ordergraph.core.tables import (
    Alert,
    Assignment,
    Order,
    OrderEvent,
    OutboxJob,
    ShipmentTracking,
)

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
MAX_RESOLUTION = 2000


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def open_key(order_id: int, kind: str) -> str:
    return f"{order_id}:{kind}"


async def open_alert(
    rt: Runtime,
    order_id: int,
    kind: str,
    *,
    shipment_id: int | None = None,
    detail: dict[str, Any] | None = None,
    now: datetime.datetime | None = None,
) -> int | None:
    """Open an alert unless one of this kind is open on the order; its id when opened.

    The owner is the order's team and member (stage 3's assignment). Joins the caller's
    transaction, or runs in its own.
    """
    now = now or db.now()
    severity = SEVERITY[kind]
    async with recording(rt) as timeline:
        owner = await (
            Assignment.select(
                Assignment.team, Assignment.team.name.as_alias("team_name"), Assignment.member.staff
            )
            .where(Assignment.order == order_id)
            .first()
        )
        inserted = await (
            Alert.insert(
                Alert(
                    kind=kind,
                    severity=severity,
                    order=order_id,
                    shipment=shipment_id,
                    team=owner["team"] if owner else None,
                    owner=owner["member.staff"] if owner else None,
                    open_key=open_key(order_id, kind),
                    opened_at=now,
                    due_at=now + datetime.timedelta(hours=RESPONSE_HOURS[severity]),
                    detail=json.dumps(detail or {}, default=str),
                )
            )
            .on_conflict(target=Alert.open_key, action="DO NOTHING")
            .returning(Alert.id)
        )
        if not inserted:
            return None
        alert_id = inserted[0]["id"]
        await timeline.record(
            order_id,
            "alert_opened",
            SYSTEM,
            data={
                "alert": alert_id,
                "kind": kind,
                "severity": severity,
                "team": owner["team_name"] if owner else None,
                "owner": owner["member.staff"] if owner else None,
                **(detail or {}),
            },
        )
    return alert_id


async def close_alerts(
    rt: Runtime, order_id: int, kinds: list[str], resolution: str, principal: Principal = SYSTEM
) -> list[int]:
    """Resolve the open alerts of these kinds on an order (their condition cleared)."""
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
            .where(
                (Alert.order == order_id) & Alert.kind.is_in(kinds) & Alert.open_key.is_not_null()
            )
            .returning(Alert.id, Alert.kind)
        )
        for row in closed:
            await timeline.record(
                order_id,
                "alert_resolved",
                principal,
                data={"alert": row["id"], "kind": row["kind"], "resolution": resolution},
            )
    return [row["id"] for row in closed]


async def follow_tracking(
    rt: Runtime, order_id: int, shipment_id: int, status: str, reason: str | None
) -> None:
    """Open or close the tracking alerts of an order as a shipment's status moves.

    In the caller's transaction (``tracking.ingest``). Any carrier news ends a
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


async def _without_open(order_ids: list[int], kind: str) -> list[int]:
    if not order_ids:
        return []
    keys = [open_key(order_id, kind) for order_id in order_ids]
    taken = {
        row["open_key"]
        for row in await Alert.select(Alert.open_key).where(Alert.open_key.is_in(keys))
    }
    return [order_id for order_id, key in zip(order_ids, keys, strict=True) if key not in taken]


async def scan_stuck(rt: Runtime, now: datetime.datetime | None = None) -> int:
    """Open ``stuck`` alerts for orders in a state past its hours, close those that moved.

    One indexed range read per (status, priority) on ``orders (status, priority,
    updated_at)``: it reads the stuck orders only, never the whole table.
    """
    now = now or db.now()
    opened = 0
    for status, by_priority in stuck_hours(rt).items():
        for priority, hours in sorted(by_priority.items()):
            since = now - datetime.timedelta(hours=hours)
            rows = await (
                Order.select(Order.id, Order.updated_at)
                .where(
                    (Order.status == status)
                    & (Order.priority == priority)
                    & (Order.updated_at < since)
                )
                .order_by(Order.updated_at)
                .limit(SCAN_LIMIT)
            )
            for order_id in await _without_open([r["id"] for r in rows], "stuck"):
                detail = {"status": status, "priority": priority, "hours": hours}
                opened += (
                    await open_alert(rt, order_id, "stuck", detail=detail, now=now) is not None
                )
    still_open = await (
        Alert.select(Alert.order, Alert.detail, Alert.order.status.as_alias("status"))
        .where((Alert.kind == "stuck") & Alert.open_key.is_not_null())
        .limit(SCAN_LIMIT)
    )
    moved = [row for row in still_open if _json(row["detail"]).get("status") != row["status"]]
    for row in moved:
        await close_alerts(rt, row["order"], ["stuck"], "the order moved on")
    return opened


async def scan_sla(rt: Runtime, now: datetime.datetime | None = None) -> int:
    """``sla_breach`` for work past its due time (stage 3's assignment ``due_at``)."""
    now = now or db.now()
    late = await (
        Assignment.select(Assignment.order, Assignment.due_at)
        .where((Assignment.state != "done") & (Assignment.due_at < now))
        .order_by(Assignment.due_at)
        .limit(SCAN_LIMIT)
    )
    opened = 0
    for order_id in await _without_open([r["order"] for r in late], "sla_breach"):
        opened += await open_alert(rt, order_id, "sla_breach", now=now) is not None
    breached = await (
        Alert.select(Alert.order)
        .where((Alert.kind == "sla_breach") & Alert.open_key.is_not_null())
        .limit(SCAN_LIMIT)
    )
    done = []
    if breached:
        done = await Assignment.select(Assignment.order).where(
            Assignment.order.is_in([r["order"] for r in breached]) & (Assignment.state == "done")
        )
    for row in done:
        await close_alerts(rt, row["order"], ["sla_breach"], "the work was done")
    return opened


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
    opened = 0
    for order_id in await _without_open(list(shipment_of), "tracking_silent"):
        opened += (
            await open_alert(
                rt,
                order_id,
                "tracking_silent",
                shipment_id=shipment_of[order_id],
                detail={"hours": hours},
                now=now,
            )
            is not None
        )
    return opened


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
    opened = 0
    for order_id in await _without_open(list(by_order), "job_failed"):
        job = by_order[order_id]
        detail = {"job": job["id"], "name": job["name"], "error": job["last_error"]}
        opened += await open_alert(rt, order_id, "job_failed", detail=detail, now=now) is not None
    return opened


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
    opened = 0
    for order_id, row in latest.items():
        if order_id in answered:
            continue
        data = _json(row["data"]) or {}
        detail = {"plugin": data.get("plugin"), "error": data.get("error")}
        opened += (
            await open_alert(rt, order_id, "plugin_failed", detail=detail, now=now) is not None
        )
    return opened


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


_COLUMNS = (*Alert.all_columns(), Alert.team.name.as_alias("team_name"))


def _view(row: dict[str, Any]) -> AlertView:
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


def may_see(principal: Principal, team: str | None) -> bool:
    """Admins and staff without a team see every alert; a team's staff see their team's."""
    if principal.role == Role.ADMIN or (principal.role == Role.STAFF and principal.team is None):
        return True
    return principal.role == Role.STAFF and team == principal.team


async def list_alerts(
    principal: Principal,
    *,
    state: str | None = None,
    order_id: int | None = None,
    limit: int = 100,
) -> list[AlertView]:
    """Alerts the principal may see, newest first; ``state``: open (incl. acknowledged),
    acknowledged or resolved."""
    query = Alert.select(*_COLUMNS).order_by(Alert.id, ascending=False).limit(limit)
    if state == "open":
        query = query.where(Alert.open_key.is_not_null())
    elif state is not None:
        query = query.where(Alert.state == state)
    if order_id is not None:
        query = query.where(Alert.order == order_id)
    if principal.role == Role.STAFF and principal.team is not None:
        query = query.where(Alert.team.name == principal.team)
    return [_view(row) for row in await query]


async def get_alert(alert_id: int, principal: Principal) -> AlertView:
    row = await Alert.select(*_COLUMNS).where(Alert.id == alert_id).first()
    if row is None or not may_see(principal, row["team_name"]):
        raise DomainError.of(ErrorCode.NOT_FOUND, f"There is no alert {alert_id}.", "id")
    return _view(row)


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
    if not note or len(note) > MAX_RESOLUTION:
        raise DomainError.of(
            ErrorCode.REQUIRED,
            f"Say what was done (1 to {MAX_RESOLUTION} characters).",
            "resolution",
        )
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


class Stage:
    """The alerts stage's hooks: its scans run as periodic work."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(category="other", description="Stage 4: alerts.")

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
