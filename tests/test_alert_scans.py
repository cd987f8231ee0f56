"""The alerts the scans and plugin failures open: stuck orders in bulk, SLA breaches, failed
jobs, plugin failures."""

from __future__ import annotations

import asyncio
import datetime
import json

from conftest import Api, submit
from test_alerts import alerts_of
from test_fulfilment import approved, shop, team

from ordergraph.core import db, jobs
from ordergraph.core.orders import load_order
from ordergraph.core.plugins import PluginFailure
from ordergraph.core.tables import OrderEvent, OutboxJob
from ordergraph.core.transitions import record_plugin_failures
from ordergraph.stages.fulfilment.tables import Assignment
from ordergraph.stages.tracking import alerts
from ordergraph.stages.tracking.tables import Alert


async def test_work_past_its_due_time_is_an_sla_breach_until_it_is_done(database_url: str) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 5))
        order = await approved(api, "SLA-1")
        due = datetime.datetime.fromisoformat(order["assignment"]["dueAt"])
        assert await alerts.scan_sla(api.rt, due - datetime.timedelta(minutes=1)) == 0
        assert await alerts.scan_sla(api.rt, due + datetime.timedelta(minutes=1)) == 1
        assert await alerts.scan_sla(api.rt, due + datetime.timedelta(minutes=2)) == 0
        [alert] = await alerts_of(api, order["id"], "OPEN")
        assert (alert["kind"], alert["severity"], alert["owner"]) == ("SLA_BREACH", "HIGH", "pia")
        await Assignment.update({Assignment.state: "done"}).where(
            Assignment.order == order["databaseId"]
        )
        await alerts.scan_sla(api.rt, due + datetime.timedelta(minutes=3))
        assert await alerts_of(api, order["id"], "OPEN") == []


async def test_a_job_that_failed_for_good_opens_job_failed_on_its_order(database_url: str) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 5))
        order = await approved(api, "JOB-1")
        [job_id] = await jobs.enqueue_many([("assign_order", {"order_id": order["databaseId"]})])
        await OutboxJob.update(
            {
                OutboxJob.status: "failed",
                OutboxJob.last_error: "Boom: the carrier is down",
                OutboxJob.finished_at: db.now(),
            }
        ).where(OutboxJob.id == job_id)
        assert await alerts.scan_failed_jobs(api.rt) == 1
        assert await alerts.scan_failed_jobs(api.rt) == 0
        [alert] = await alerts_of(api, order["id"], "OPEN")
        assert alert["kind"] == "JOB_FAILED"
        assert alert["detail"]["error"] == "Boom: the carrier is down"


async def test_a_plugin_failure_on_an_order_opens_plugin_failed(database_url: str) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 5))
        order = await approved(api, "PLG-1")
        failure = PluginFailure("fedex", "track_shipments", "timed out after 10s")
        loaded = await load_order(order["databaseId"])
        assert loaded is not None
        await record_plugin_failures(api.rt, loaded, [failure])
        assert await alerts.scan_plugin_failures(api.rt) == 1
        assert await alerts.scan_plugin_failures(api.rt) == 0  # answered already
        [alert] = await alerts_of(api, order["id"], "OPEN")
        assert alert["kind"] == "PLUGIN_FAILED"
        assert json.dumps(alert["detail"]) == json.dumps(
            {"plugin": "fedex", "error": "timed out after 10s"}
        )


async def submitted(api: Api, prefix: str, count: int, **overrides: object) -> list[int]:
    """``count`` orders reviewed and assigned, all APPROVED."""
    ids = [(await submit(api, f"{prefix}-{n}", **overrides))["databaseId"] for n in range(count)]
    await api.rt.runner.drain()
    statuses = await api.data("{ orders(first: 100) { edges { node { status } } } }")
    assert {edge["node"]["status"] for edge in statuses["orders"]["edges"]} == {"APPROVED"}
    return ids


async def open_stuck_alerts() -> dict[int, int]:
    """Order id -> how many ``stuck`` alerts are open on it."""
    rows = await Alert.select(Alert.order).where(
        (Alert.kind == "stuck") & Alert.open_key.is_not_null()
    )
    counts: dict[int, int] = {}
    for row in rows:
        counts[row["order"]] = counts.get(row["order"], 0) + 1
    return counts


async def test_one_scan_opens_a_stuck_alert_on_each_of_many_orders_in_the_same_statements(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 100))
        urgent = await submitted(api, "FEW", 2, priority="URGENT")
        normal = await submitted(api, "MANY", 30)
        now = db.now()
        with db.count_statements() as few:
            assert await alerts.scan_stuck(api.rt, now + datetime.timedelta(hours=2)) == 2
        with db.count_statements() as many:
            assert await alerts.scan_stuck(api.rt, now + datetime.timedelta(hours=13)) == 30
        assert many.count == few.count, many.statements
        assert await open_stuck_alerts() == dict.fromkeys(urgent + normal, 1)
        opened_events = await OrderEvent.count().where(OrderEvent.type == "alert_opened")
        assert opened_events == 32
        [alert] = await alerts_of(api, str(normal[0]), "OPEN")
        assert (alert["team"], alert["owner"]) == ("packers", "pia")
        assert alert["detail"] == {"status": "APPROVED", "priority": "NORMAL", "hours": 12.0}


async def test_two_stuck_scans_at_once_open_each_alert_once(database_url: str) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 100))
        orders = await submitted(api, "TWICE", 20)
        later = db.now() + datetime.timedelta(hours=13)
        first, second = await asyncio.gather(
            alerts.scan_stuck(api.rt, later), alerts.scan_stuck(api.rt, later)
        )
        assert first + second == 20
        assert await open_stuck_alerts() == dict.fromkeys(orders, 1)
        assert await OrderEvent.count().where(OrderEvent.type == "alert_opened") == 20
