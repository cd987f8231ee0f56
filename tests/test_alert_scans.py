"""The alerts the scans and plugin failures open: SLA breaches, failed jobs, plugin failures."""

from __future__ import annotations

import datetime
import json

from test_alerts import alerts_of
from test_fulfilment import approved, shop, team

from ordergraph.core import alerts, db, jobs
from ordergraph.core.orders import load_order
from ordergraph.core.plugins import PluginFailure
from ordergraph.core.tables import Assignment, OutboxJob
from ordergraph.core.transitions import record_plugin_failures


async def test_work_past_its_due_time_is_an_sla_breach_until_it_is_done(database_url: str) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 5))
        order = await approved(api, "SLA-1")
        due = datetime.datetime.fromisoformat(order["assignment"]["dueAt"])
        assert await alerts.scan_sla(api.rt, due - datetime.timedelta(minutes=1)) == 0
        assert await alerts.scan_sla(api.rt, due + datetime.timedelta(minutes=1)) == 1
        assert await alerts.scan_sla(api.rt, due + datetime.timedelta(minutes=2)) == 0
        [alert] = await alerts_of(api, order["id"], "OPEN")
        assert (alert["kind"], alert["severity"], alert["owner"]) == ("sla_breach", "high", "pia")
        await Assignment.update({Assignment.state: "done"}).where(
            Assignment.order == int(order["id"])
        )
        await alerts.scan_sla(api.rt, due + datetime.timedelta(minutes=3))
        assert await alerts_of(api, order["id"], "OPEN") == []


async def test_a_job_that_failed_for_good_opens_job_failed_on_its_order(database_url: str) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 5))
        order = await approved(api, "JOB-1")
        [job_id] = await jobs.enqueue_many([("assign_order", {"order_id": int(order["id"])})])
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
        assert alert["kind"] == "job_failed"
        assert alert["detail"]["error"] == "Boom: the carrier is down"


async def test_a_plugin_failure_on_an_order_opens_plugin_failed(database_url: str) -> None:
    async with shop(database_url) as api:
        await team(api, "packers", ("pia", 5))
        order = await approved(api, "PLG-1")
        failure = PluginFailure("fedex", "track_shipments", "timed out after 10s")
        loaded = await load_order(int(order["id"]))
        assert loaded is not None
        await record_plugin_failures(api.rt, loaded, [failure])
        assert await alerts.scan_plugin_failures(api.rt) == 1
        assert await alerts.scan_plugin_failures(api.rt) == 0  # answered already
        [alert] = await alerts_of(api, order["id"], "OPEN")
        assert alert["kind"] == "plugin_failed"
        assert json.dumps(alert["detail"]) == json.dumps(
            {"plugin": "fedex", "error": "timed out after 10s"}
        )
