"""A hundred orders approved at once into a team of four equal members: 25 each, never
above capacity, on both backends. The reviews and the assignment jobs both run
concurrently (``asyncio.gather``), as several job runners would run them."""

from __future__ import annotations

import asyncio
import collections
import json
from typing import Any

from conftest import Api, make_settings, serve_api, submit

from ordergraph.core.auth import SYSTEM
from ordergraph.core.tables import OutboxJob
from ordergraph.core.transitions import transition_order
from ordergraph.stages.fulfilment.tables import Assignment
from ordergraph.stages.review import pipeline

MEMBERS = ("ann", "ben", "cat", "dan")
TEAM = """
mutation($input: TeamInput!) { upsertTeam(input: $input) { errors { code } } }
"""


async def assign_job(api: Api, row: dict[str, Any]) -> None:
    """Run one ``assign_order`` job from the outbox, as a job runner would."""
    payload = row["payload"]
    await api.rt.job_handlers["assign_order"](
        json.loads(payload) if isinstance(payload, str) else payload
    )


async def approve_and_assign_at_once(api: Api, count: int, capacity: int) -> dict[str, int]:
    members = [{"staff": name, "capacity": capacity} for name in MEMBERS]
    assert (await api.data(TEAM, {"input": {"name": "floor", "members": members}}))["upsertTeam"][
        "errors"
    ] == []
    one_mug = [{"sku": "MUG", "quantity": 1}]
    ids = [(await submit(api, f"C-{i}", lines=one_mug))["databaseId"] for i in range(count)]

    await asyncio.gather(*(pipeline.review_order(api.rt, order_id) for order_id in ids))
    due = await OutboxJob.select(OutboxJob.payload).where(
        (OutboxJob.name == "assign_order") & (OutboxJob.status == "pending")
    )
    assert len(due) == count
    await asyncio.gather(*(assign_job(api, row) for row in due))

    rows = await Assignment.select(
        Assignment.state, Assignment.member.staff.as_alias("staff")
    ).where(Assignment.order.is_in(ids))
    assert len(rows) == count
    return collections.Counter(r["staff"] or r["state"] for r in rows)


async def test_a_hundred_approvals_at_once_give_four_equal_members_25_each(
    database_url: str,
) -> None:
    plugins = {"stock": {"enabled": True}, "rules": {"enabled": True, "rules": ["-> floor"]}}
    async with serve_api(make_settings(database_url, plugins=plugins), run_jobs=False) as api:
        held = await approve_and_assign_at_once(api, 100, capacity=30)

    assert set(held) == set(MEMBERS)
    assert max(held.values()) - min(held.values()) <= 1
    assert held == {name: 25 for name in MEMBERS}


async def test_concurrent_approvals_never_fill_a_member_beyond_capacity(
    database_url: str,
) -> None:
    plugins = {
        "stock": {"enabled": True},
        "rules": {"enabled": True, "rules": ["-> floor round_robin"]},
    }
    async with serve_api(make_settings(database_url, plugins=plugins), run_jobs=False) as api:
        held = await approve_and_assign_at_once(api, 100, capacity=20)

    assert held == {**{name: 20 for name in MEMBERS}, "queued": 20}


async def test_orders_cancelled_while_being_assigned_leave_nobody_holding_them(
    database_url: str,
) -> None:
    plugins = {"stock": {"enabled": True}, "rules": {"enabled": True, "rules": ["-> floor"]}}
    async with serve_api(make_settings(database_url, plugins=plugins), run_jobs=False) as api:
        members = [{"staff": name, "capacity": 100} for name in MEMBERS]
        await api.data(TEAM, {"input": {"name": "floor", "members": members}})
        one_mug = [{"sku": "MUG", "quantity": 1}]
        ids = [(await submit(api, f"X-{i}", lines=one_mug))["databaseId"] for i in range(30)]
        await asyncio.gather(*(pipeline.review_order(api.rt, order_id) for order_id in ids))
        due = await OutboxJob.select(OutboxJob.payload).where(OutboxJob.name == "assign_order")

        await asyncio.gather(
            *(assign_job(api, row) for row in due),
            *(transition_order(api.rt, order_id, "cancel", SYSTEM) for order_id in ids),
        )

        held = await Assignment.count().where(Assignment.state == "assigned")
        teams = await api.data("{ teams { members { openOrders } } }")
    assert held == 0
    assert [m["openOrders"] for m in teams["teams"][0]["members"]] == [0, 0, 0, 0]
