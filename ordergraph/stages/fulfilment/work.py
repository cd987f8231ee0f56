"""The work on an order: pick, pack and ship tasks, shipments of (line, quantity), and
the statuses that follow from them.

Every step is a conditional update (``state <> 'done'``, ``quantity - shipped -
cancelled >= q``), so two people finishing one task, or two shipments of the last
units, give one success and one clear refusal. After each step the core derives the
order's status from these records through ``transition_order``: PROCESSING once work
has started, SHIPPED once every ordered quantity has shipped or was cancelled.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ordergraph.core import db, scope
from ordergraph.core.auth import SYSTEM, Principal
from ordergraph.core.errors import DomainError, ErrorCode, Problem
from ordergraph.core.money import to_minor
from ordergraph.core.orders import OrderView, Timeline, load_order, recording
from ordergraph.core.tables import Order
from ordergraph.core.transitions import transition_order
from ordergraph.stages.fulfilment import labels
from ordergraph.stages.fulfilment.assignment import WORKING
from ordergraph.stages.fulfilment.limits import CARRIER, SERVICE, TRACKING_NUMBER
from ordergraph.stages.fulfilment.tables import FulfilmentLine, Shipment, ShipmentLine, Task

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime

DERIVE_JOB = "derive_fulfilment_status"
MAX_PARCELS = 100
ShortPick = Literal["CANCEL_REST", "BACKORDER"]


@dataclass(frozen=True)
class Parcel:
    weight_grams: int
    length_mm: int
    width_mm: int
    height_mm: int
    lines: dict[int, int]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def open_quantity(line: dict[str, Any]) -> int:
    return line["quantity"] - line["shipped"] - line["cancelled"]


async def fulfilment_lines(order_id: int) -> dict[int, dict[str, Any]]:
    rows = await FulfilmentLine.select().where(FulfilmentLine.order == order_id)
    return {row["line_no"]: row for row in rows}


async def open_quantities(order: OrderView) -> dict[str, int]:
    """What an order still holds in stock, per SKU: ordered, less shipped and cancelled
    (the whole order when no work was recorded for it)."""
    lines = await fulfilment_lines(order.id)
    totals: Counter[str] = Counter()
    for line in order.lines:
        record = lines.get(line.line_no)
        totals[line.sku] += open_quantity(record) if record else line.quantity
    return {sku: n for sku, n in sorted(totals.items()) if n}


async def _task_and_order(
    task_id: int, principal: Principal, kind: str | None = None
) -> tuple[dict[str, Any], OrderView, list[dict[str, Any]]]:
    """The task, its order and all the order's tasks, after the checks every step makes."""
    task = await Task.select().where(Task.id == task_id).first()
    if task is None:
        raise DomainError.of(ErrorCode.NOT_FOUND, f"There is no task {task_id}.", "id")
    await scope.check_order(principal, task["order"], what="task", ref=task_id)
    if kind is not None and task["kind"] != kind:
        raise DomainError.of(
            ErrorCode.INVALID_VALUE, f"Task {task_id} is a {task['kind']} task, not {kind}.", "id"
        )
    if task["state"] == "done":
        raise _already_done(task)
    order = await load_order(task["order"])
    assert order is not None
    if order.status not in WORKING:
        raise DomainError.of(
            ErrorCode.OUT_OF_ORDER,
            f"Order {order.number} is {order.status}; its work is over.",
            "id",
        )
    tasks = await Task.select().where(Task.order == order.id).order_by(Task.position)
    before = [t for t in tasks if t["position"] < task["position"] and t["state"] != "done"]
    if before:
        raise DomainError.of(
            ErrorCode.OUT_OF_ORDER,
            f"Finish the {before[0]['kind']} task of order {order.number} first.",
            "id",
        )
    return task, order, tasks


def _already_done(task: dict[str, Any]) -> DomainError:
    return DomainError.of(
        ErrorCode.ALREADY_DONE,
        f"The {task['kind']} task {task['id']} was already completed by {task['completed_by']}.",
        "id",
    )


async def _finish(task: dict[str, Any], principal: Principal, result: dict[str, Any]) -> None:
    """Mark a task done, once: the loser of two people finishing it at once gets ALREADY_DONE."""
    now = db.now()
    done = await db.raw(
        "UPDATE tasks SET state = {}, completed_at = {}, completed_by = {}, result = {}, "
        "started_at = COALESCE(started_at, {}), started_by = COALESCE(started_by, {}) "
        "WHERE id = {} AND state <> {} RETURNING id",
        "done",
        now,
        principal.actor,
        json.dumps(result, default=str),
        now,
        principal.actor,
        task["id"],
        "done",
    )
    if not done:
        latest = await Task.select().where(Task.id == task["id"]).first()
        raise _already_done(latest or task)


async def start_task(rt: Runtime, task_id: int, principal: Principal) -> None:
    task, order, _ = await _task_and_order(task_id, principal)
    if task["state"] == "started":
        raise DomainError.of(
            ErrorCode.ALREADY_DONE,
            f"The {task['kind']} task {task_id} was already started by {task['started_by']}.",
            "id",
        )
    async with recording(rt) as timeline:
        started = await (
            Task.update(
                {Task.state: "started", Task.started_at: db.now(), Task.started_by: principal.actor}
            )
            .where((Task.id == task_id) & (Task.state == "open"))
            .returning(Task.id)
        )
        if not started:
            raise DomainError.of(
                ErrorCode.ALREADY_DONE, f"Task {task_id} was started by someone else.", "id"
            )
        await timeline.record(
            order,
            "task_started",
            principal,
            data={"task": task_id, "kind": task["kind"]},
            more_jobs=[(DERIVE_JOB, {"order_id": order.id})],
        )
    await derive_status(rt, order.id)


async def complete_pick(
    rt: Runtime,
    task_id: int,
    picked: dict[int, int],
    short_pick: ShortPick | None,
    principal: Principal,
) -> None:
    """Record what was found per line (lines not named were found in full). A line found
    short needs ``short_pick``: CANCEL_REST (the rest is cancelled: its stock released,
    the totals lowered) or BACKORDER (the rest ships later, in another shipment)."""
    task, order, _ = await _task_and_order(task_id, principal, "pick")
    lines = await fulfilment_lines(order.id)
    problems = []
    for i, (line_no, found) in enumerate(picked.items()):
        where = f"lines[{i}]"
        if line_no not in lines:
            problems.append(
                Problem(ErrorCode.NOT_FOUND, f"Order {order.number} has no line {line_no}.", where)
            )
        elif not 0 <= found <= open_quantity(lines[line_no]):
            problems.append(
                Problem(
                    ErrorCode.QUANTITY_EXCEEDED,
                    f"Line {line_no}: {open_quantity(lines[line_no])} to pick, {found} reported.",
                    f"{where}.picked",
                )
            )
    if problems:
        raise DomainError(*problems)
    found_per_line = {n: picked.get(n, open_quantity(line)) for n, line in lines.items()}
    short = {n: open_quantity(lines[n]) - q for n, q in found_per_line.items()}
    short = {n: q for n, q in short.items() if q > 0}
    if short and short_pick is None:
        raise DomainError.of(
            ErrorCode.REQUIRED,
            "Some lines were found short ("
            + ", ".join(f"line {n}: {q} missing" for n, q in short.items())
            + "): choose CANCEL_REST or BACKORDER.",
            "shortPick",
        )
    async with recording(rt) as timeline:
        await _finish(
            task, principal, {"picked": found_per_line, "short": short, "shortPick": short_pick}
        )
        for line_no, found in found_per_line.items():
            missing = short.get(line_no, 0)
            cancel = missing if short_pick == "CANCEL_REST" else 0
            backorder = missing if short_pick == "BACKORDER" else 0
            await FulfilmentLine.update(
                {
                    FulfilmentLine.picked: found,
                    FulfilmentLine.cancelled: FulfilmentLine.cancelled + cancel,
                    FulfilmentLine.backordered: backorder,
                }
            ).where(FulfilmentLine.id == lines[line_no]["id"])
        if short and short_pick == "CANCEL_REST":
            await _cancel_rest(rt, order, short)
        await timeline.record(
            order,
            "task_completed",
            principal,
            data={
                "task": task_id,
                "kind": "pick",
                "units": sum(found_per_line.values()),
                "short": short,
                "shortPick": short_pick,
            },
            more_jobs=[(DERIVE_JOB, {"order_id": order.id})],
        )
    await derive_status(rt, order.id)


async def _cancel_rest(rt: Runtime, order: OrderView, short: dict[int, int]) -> None:
    """Lower the totals by what will never ship and let plugins release its stock."""
    by_line = {line.line_no: line for line in order.lines}
    minus = sum(to_minor(by_line[n].unit_price, order.currency) * q for n, q in short.items())
    await Order.update(
        {
            Order.subtotal_minor: Order.subtotal_minor - minus,
            Order.total_minor: Order.total_minor - minus,
            Order.version: Order.version + 1,
            Order.updated_at: db.now(),
        }
    ).where(Order.id == order.id)
    cancelled: Counter[str] = Counter()
    for n, q in short.items():
        cancelled[by_line[n].sku] += q
    await _apply_fulfilment(rt, order, shipped={}, cancelled=dict(sorted(cancelled.items())))


async def _apply_fulfilment(
    rt: Runtime, order: OrderView, *, shipped: dict[str, int], cancelled: dict[str, int]
) -> None:
    effects = await rt.plugins.call(
        "apply_fulfilment", order=order, shipped=shipped, cancelled=cancelled
    )
    for failure in effects.failures:
        if isinstance(failure.exception, DomainError):
            raise failure.exception
        raise DomainError.of(ErrorCode.PLUGIN_FAILED, f"{failure.plugin} failed ({failure.error}).")


def check_parcels(parcels: list[Parcel], lines: dict[int, dict[str, Any]]) -> list[Problem]:
    problems = []
    if not 1 <= len(parcels) <= MAX_PARCELS:
        problems.append(
            Problem(ErrorCode.INVALID_VALUE, f"Pack 1 to {MAX_PARCELS} parcels.", "parcels")
        )
    packed: Counter[int] = Counter()
    for i, parcel in enumerate(parcels):
        where = f"parcels[{i}]"
        for name in ("weight_grams", "length_mm", "width_mm", "height_mm"):
            value = getattr(parcel, name)
            if not 0 < value <= 10_000_000:
                camel = name.split("_")[0] + name.split("_")[1].capitalize()
                problems.append(
                    Problem(
                        ErrorCode.INVALID_VALUE,
                        f"{camel} must be a positive whole number (got {value}).",
                        f"{where}.{camel}",
                    )
                )
        if not parcel.lines:
            problems.append(Problem(ErrorCode.REQUIRED, "A parcel holds some lines.", where))
        for j, (line_no, quantity) in enumerate(parcel.lines.items()):
            if line_no not in lines:
                problems.append(
                    Problem(
                        ErrorCode.NOT_FOUND, f"There is no line {line_no}.", f"{where}.lines[{j}]"
                    )
                )
            elif quantity < 1:
                problems.append(
                    Problem(
                        ErrorCode.INVALID_QUANTITY,
                        f"Line {line_no}: pack at least 1 (got {quantity}).",
                        f"{where}.lines[{j}].quantity",
                    )
                )
            packed[line_no] += max(quantity, 0)
    for line_no, quantity in packed.items():
        line = lines.get(line_no)
        if line is None:
            continue
        ready = min(open_quantity(line), (line["picked"] or 0) - line["shipped"])
        if quantity > ready:
            problems.append(
                Problem(
                    ErrorCode.QUANTITY_EXCEEDED,
                    f"Line {line_no}: {max(ready, 0)} picked and not shipped, {quantity} packed.",
                    "parcels",
                )
            )
    return problems


async def complete_pack(
    rt: Runtime, task_id: int, parcels: list[Parcel], principal: Principal
) -> None:
    """Record the parcels: weight, dimensions, and which lines and quantities each holds."""
    task, order, _ = await _task_and_order(task_id, principal, "pack")
    lines = await fulfilment_lines(order.id)
    problems = check_parcels(parcels, lines)
    if problems:
        raise DomainError(*problems)
    result = {
        "parcels": [
            {
                "weightGrams": p.weight_grams,
                "lengthMm": p.length_mm,
                "widthMm": p.width_mm,
                "heightMm": p.height_mm,
                "lines": [{"lineNo": n, "quantity": q} for n, q in p.lines.items()],
            }
            for p in parcels
        ]
    }
    async with recording(rt) as timeline:
        await _finish(task, principal, result)
        await timeline.record(
            order,
            "task_completed",
            principal,
            data={"task": task_id, "kind": "pack", "parcels": len(parcels)},
        )


def _check_carrier(rt: Runtime, carrier: str, service: str) -> list[Problem]:
    """The carrier must be one that tracks its parcels: an enabled carrier plugin (the
    ``manual`` one for a courier whose scans staff record), or any name while a plugin
    that tracks every courier (AfterShip) is enabled."""
    problems = []
    name = carrier.strip()
    carriers = [p for p in rt.plugins.enabled() if p.info.category == "carrier"]
    if not name:
        problems.append(Problem(ErrorCode.REQUIRED, "Name the carrier.", "carrier"))
    elif CARRIER.check(carrier, "carrier", problems) and not any(
        p.name == name or p.info.tracks_any_carrier for p in carriers
    ):
        installed = ", ".join(sorted(p.name for p in carriers)) or "none"
        problems.append(
            Problem(
                ErrorCode.UNKNOWN_CARRIER,
                f"No enabled carrier is named {name!r}, so its parcels would never be "
                f"tracked; the enabled carriers are: {installed}.",
                "carrier",
            )
        )
    SERVICE.check(service, "service", problems)
    return problems


async def complete_ship(
    rt: Runtime,
    task_id: int,
    carrier: str,
    service: str,
    tracking_numbers: list[str],
    principal: Principal,
) -> int:
    """Hand the packed parcels to a carrier: one shipment of what they hold, with a
    tracking number per parcel, or none when the carrier's plugin buys the label (the
    booking job then stores the numbers). Returns the shipment's id."""
    task, order, tasks = await _task_and_order(task_id, principal, "ship")
    pack = next(t for t in tasks if t["kind"] == "pack")
    parcels = _json(pack["result"]).get("parcels", [])
    problems = _check_carrier(rt, carrier, service)
    buy_label = not tracking_numbers and labels.buys_labels(rt, carrier.strip())
    if len(tracking_numbers) != len(parcels) and not buy_label:
        problems.append(
            Problem(
                ErrorCode.INVALID_VALUE,
                f"Give one tracking number per parcel: {len(parcels)} parcels, "
                f"{len(tracking_numbers)} numbers (or none, with a carrier that buys labels).",
                "trackingNumbers",
            )
        )
    for i, number in enumerate(tracking_numbers):
        if not number.strip():
            problems.append(
                Problem(ErrorCode.REQUIRED, "Give the tracking number.", f"trackingNumbers[{i}]")
            )
        TRACKING_NUMBER.check(number, f"trackingNumbers[{i}]", problems)
    if problems:
        raise DomainError(*problems)
    quantities: Counter[int] = Counter()
    for parcel in parcels:
        for line in parcel["lines"]:
            quantities[line["lineNo"]] += line["quantity"]
    shipped_parcels = [
        {**parcel, "trackingNumber": number}
        for parcel, number in zip(parcels, tracking_numbers or [""] * len(parcels), strict=True)
    ]
    async with recording(rt) as timeline:
        await _finish(task, principal, {"carrier": carrier, "service": service})
        shipment_id = await _write_shipment(
            timeline,
            order,
            principal,
            dict(quantities),
            carrier,
            service,
            shipped_parcels,
            buy_label=buy_label,
        )
    await derive_status(rt, order.id)
    return shipment_id


async def ship_order(
    rt: Runtime,
    order_id: int,
    quantities: dict[int, int],
    carrier: str,
    service: str,
    tracking_number: str,
    principal: Principal,
) -> int:
    """Ship more of an order after its ship task: a backorder, or another split (no parcels
    are measured here, so no label is bought: staff give the tracking number)."""
    await scope.check_order(principal, order_id, field="orderId")
    order = await load_order(order_id)
    if order is None:
        raise DomainError.of(ErrorCode.NOT_FOUND, f"There is no order {order_id}.", "orderId")
    ship = await Task.select().where((Task.order == order_id) & (Task.kind == "ship")).first()
    if ship is None or ship["state"] != "done" or order.status != "PROCESSING":
        raise DomainError.of(
            ErrorCode.OUT_OF_ORDER,
            f"Order {order.number} ships through its ship task first (it is {order.status}).",
            "orderId",
        )
    lines = await fulfilment_lines(order_id)
    problems = _check_carrier(rt, carrier, service)
    TRACKING_NUMBER.check(tracking_number, "trackingNumber", problems)
    if not quantities:
        problems.append(Problem(ErrorCode.REQUIRED, "Name the lines to ship.", "lines"))
    for i, (line_no, quantity) in enumerate(quantities.items()):
        if line_no not in lines:
            problems.append(
                Problem(ErrorCode.NOT_FOUND, f"There is no line {line_no}.", f"lines[{i}].lineNo")
            )
        elif quantity < 1:
            problems.append(
                Problem(ErrorCode.INVALID_QUANTITY, "Ship at least 1.", f"lines[{i}].quantity")
            )
    if problems:
        raise DomainError(*problems)
    async with recording(rt) as timeline:
        shipment_id = await _write_shipment(
            timeline,
            order,
            principal,
            quantities,
            carrier,
            service,
            [
                {
                    "trackingNumber": tracking_number,
                    "lines": [{"lineNo": n, "quantity": q} for n, q in quantities.items()],
                }
            ],
        )
    await derive_status(rt, order.id)
    return shipment_id


async def _write_shipment(
    timeline: Timeline,
    order: OrderView,
    principal: Principal,
    quantities: dict[int, int],
    carrier: str,
    service: str,
    parcels: list[dict[str, Any]],
    *,
    buy_label: bool = False,
) -> int:
    """Inside the caller's transaction: count the quantities as shipped (never beyond what is
    left of a line), store the shipment, consume its stock, record the event, and with
    ``buy_label`` ask for the label to be booked (a job, after commit)."""
    for line_no, quantity in sorted(quantities.items()):
        left = "quantity - shipped - cancelled"
        updated = await db.raw(
            f"UPDATE fulfilment_lines SET shipped = shipped + {{}}, backordered = CASE "
            f"WHEN backordered > {left} - {{}} THEN {left} - {{}} ELSE backordered END "
            f'WHERE "order" = {{}} AND line_no = {{}} AND {left} >= {{}} RETURNING id',
            quantity,
            quantity,
            quantity,
            order.id,
            line_no,
            quantity,
        )
        if not updated:
            line = (await fulfilment_lines(order.id))[line_no]
            raise DomainError.of(
                ErrorCode.QUANTITY_EXCEEDED,
                f"Line {line_no}: {open_quantity(line)} left to ship, {quantity} requested.",
                "lines",
            )
    inserted = await Shipment.insert(
        Shipment(
            order=order.id,
            carrier=carrier.strip(),
            service=service.strip(),
            tracking_number=parcels[0].get("trackingNumber", "") if parcels else "",
            parcels=json.dumps(parcels),
            created_by=principal.actor,
        )
    )
    shipment_id = inserted[0]["id"]
    await ShipmentLine.insert(
        *(
            ShipmentLine(shipment=shipment_id, order=order.id, line_no=n, quantity=q)
            for n, q in sorted(quantities.items())
        )
    )
    skus = {line.line_no: line.sku for line in order.lines}
    shipped: Counter[str] = Counter()
    for n, q in quantities.items():
        shipped[skus[n]] += q
    await _apply_fulfilment(timeline.rt, order, shipped=dict(sorted(shipped.items())), cancelled={})
    jobs = [(DERIVE_JOB, {"order_id": order.id})]
    if buy_label:
        jobs.append(await labels.start_booking(order.id, shipment_id, carrier.strip()))
    await timeline.record(
        order,
        "shipment",
        principal,
        data={
            "shipment": shipment_id,
            "carrier": carrier,
            "lines": [{"lineNo": n, "quantity": q} for n, q in sorted(quantities.items())],
            "buyLabel": buy_label,
        },
        more_jobs=jobs,
    )
    return shipment_id


async def derive_status(rt: Runtime, order_id: int) -> None:
    """Move the order to the status its records call for, through ``transition_order``.

    APPROVED with a task started: ``start_processing``. PROCESSING with nothing left to
    ship: ``ship`` (or ``cancel`` when nothing shipped at all). Safe to run twice and
    concurrently: a lost version race is read again.
    """
    for _ in range(3):
        order = await load_order(order_id)
        if order is None or order.status not in WORKING:
            return
        lines = list((await fulfilment_lines(order_id)).values())
        if not lines:
            return
        if order.status == "APPROVED":
            started = await Task.exists().where((Task.order == order_id) & (Task.state != "open"))
            if not started:
                return
            transition = "start_processing"
        elif all(open_quantity(line) == 0 for line in lines):
            transition = "ship" if any(line["shipped"] for line in lines) else "cancel"
        else:
            return
        try:
            await transition_order(
                rt,
                order_id,
                transition,
                SYSTEM,
                expected_version=order.version,
                reason="derived from the order's work",
            )
        except DomainError as error:
            if error.code != ErrorCode.VERSION_CONFLICT:
                raise
