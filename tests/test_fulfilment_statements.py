"""Statements per fulfilment step: bounded, and not growing with the team or the work."""

from __future__ import annotations

from conftest import Api, make_settings, serve_api, submit

from ordergraph.core import auth, db
from ordergraph.core.auth import Principal, Role
from ordergraph.stages.fulfilment import assignment, teams, work
from ordergraph.stages.fulfilment.tables import Task
from ordergraph.stages.review import pipeline
from plugins.assignment.rules import parse_rules

PIA = Principal(Role.STAFF, "pia", team="floor")

# Assigning one approved order (the assign_order job), whatever the team's size:
#   2  SELECT the order and its lines
#   1  SELECT pg_advisory_xact_lock (PostgreSQL only: assignments are serialized)
#   1  SELECT the order's assignment, if any
#   1  SELECT the order's status again, under the lock (first assignment only)
#   3  SELECT the teams, the members, the open work per member and priority
#   2  INSERT the order's tasks, INSERT its per-line quantities (first assignment only)
#   1  INSERT the assignment
#   2  UPDATE the tasks' assignee, UPDATE the team's round-robin pointer
#   1  INSERT the "assigned" event
#   2  the analytics stage's rollups of the event: SELECT the order's facts, then
#      INSERT ... ON CONFLICT its facts and counts (events_recorded); on PostgreSQL
#      the event and the upserts are one WITH, on SQLite the INSERTs go in one trip
#      to the writer's thread
ASSIGN_STATEMENTS = {"sqlite": 16, "postgresql": 16}

# myWork, for any number of items: the token, the page of work, which of its orders are
# in the caller's scope, the tasks of every order.
MY_WORK_STATEMENTS = 4

# Each step of the work on a one-line order, through the core functions. Every step
# reads the task, the team scope, the order and its tasks, then writes the task with one
# conditional UPDATE and its event; the steps that can change the status then derive it
# (start: start_processing, ship: ship, each a full transition_order with its hooks;
# closing the assignment on ship takes the assignment lock, on PostgreSQL a statement).
# The analytics stage counts each step's events in the same transaction (events_recorded:
# the order's facts read, its rollups written with the events, in one statement on
# PostgreSQL).
STEP_STATEMENTS = {
    "sqlite": {"start": 22, "pick": 15, "pack": 11, "ship": 32},
    "postgresql": {"start": 19, "pick": 13, "pack": 10, "ship": 28},
}


async def test_assigning_costs_the_same_for_a_team_of_4_or_40(database_url: str) -> None:
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    plugins = {"stock": {"enabled": True}, "rules": {"enabled": True, "rules": []}}
    async with serve_api(make_settings(database_url, plugins=plugins), run_jobs=False) as api:
        rules = api.rt.plugins.plugins["rules"].settings
        small = await _assign_into(api, rules, 4)
        large = await _assign_into(api, rules, 40)
    assert small == large == ASSIGN_STATEMENTS[backend]


async def _assign_into(api: Api, rules: dict, members: int) -> int:
    """Statements to assign one order into a new team of ``members`` equal members."""
    await teams.upsert_team(
        f"team-{members}", "", [teams.MemberData(f"m{members}-{i}", 1000) for i in range(members)]
    )
    rules["rules"] = parse_rules([f"-> team-{members}"])
    order = await submit(api, f"S-{members}", lines=[{"sku": "MUG", "quantity": 1}])
    await pipeline.review_order(api.rt, order["databaseId"])
    with db.count_statements() as log:
        state = await assignment.assign(api.rt, order["databaseId"])
    assert state == "assigned"
    return log.count


async def test_my_work_and_each_step_cost_a_bounded_number_of_statements(
    database_url: str,
) -> None:
    plugins = {"stock": {"enabled": True}, "rules": {"enabled": True, "rules": ["-> floor"]}}
    async with serve_api(make_settings(database_url, plugins=plugins)) as api:
        api.tokens["pia"] = await auth.create_token("staff", name="pia", team="floor")
        await teams.upsert_team("floor", "", [teams.MemberData("pia", 100)])
        ids = [
            (await submit(api, f"W-{i}", lines=[{"sku": "MUG", "quantity": 1}]))["databaseId"]
            for i in range(12)
        ]
        await api.rt.runner.drain()
        # Each step also queues a derive job in case the process dies before it derives
        # the status itself; a runner that took it first would leave the step less to do.
        await api.rt.runner.stop()

        counts = []
        for first in (2, 12):
            with db.count_statements() as log:
                data = await api.data(
                    "query($n: Int) { myWork(first: $n) { dueAt order { number } "
                    "nextTask { kind } } }",
                    {"n": first},
                    as_="pia",
                )
            assert len(data["myWork"]) == first
            counts.append(log.count)
        assert counts == [MY_WORK_STATEMENTS, MY_WORK_STATEMENTS]

        tasks = {t["kind"]: t["id"] for t in await Task.select().where(Task.order == ids[0])}
        steps = {}
        with db.count_statements() as log:
            await work.start_task(api.rt, tasks["pick"], PIA)
        steps["start"] = log.count
        with db.count_statements() as log:
            await work.complete_pick(api.rt, tasks["pick"], {}, None, PIA)
        steps["pick"] = log.count
        with db.count_statements() as log:
            await work.complete_pack(
                api.rt, tasks["pack"], [work.Parcel(500, 100, 100, 100, {1: 1})], PIA
            )
        steps["pack"] = log.count
        with db.count_statements() as log:
            await work.complete_ship(api.rt, tasks["ship"], "manual", "", ["T1"], PIA)
        steps["ship"] = log.count
        backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
        assert steps == STEP_STATEMENTS[backend], steps
