"""Statistics for decisions: rollups kept with the records they count, equal to those
rebuilt from the timeline, read through the API by admins and staff."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime
import io
import random
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Api, submit
from test_cli import ordergraph
from test_settlement import ADMIN, BERLIN, confirmed, delivered, sent, shop
from test_subscriptions import connected_as
from test_tracking import PROMISE, RECORD, scan, shipment_ids

from ordergraph.core import auth, db
from ordergraph.core.migrations import m0017_analytics_team_months_and_summaries as m0017
from ordergraph.core.transitions import transition_order
from ordergraph.stages.analytics import kpis
from ordergraph.stages.analytics.export import KPIS
from ordergraph.stages.analytics.histogram import RELATIVE_ERROR, bucket_of, bucket_value, quantile
from ordergraph.stages.analytics.rollups import SUMMARY, fold, rebuild
from ordergraph.stages.fulfilment.teams import MemberData, upsert_team
from plugins.payments import cash_on_delivery

# Three weeks ago at 09:00 UTC: the flows below happen over the days after.
START = datetime.datetime.combine(
    datetime.date.today() - datetime.timedelta(days=21), datetime.time(9), datetime.UTC
)
DAY1 = START.date().isoformat()
MONTH = {"from": DAY1, "to": (START.date() + datetime.timedelta(days=20)).isoformat()}
CASH = """
mutation($order: String!, $amount: Decimal!, $ref: String!) {
  recordCashCollected(order: $order, amount: $amount, courierReference: $ref) {
    recorded errors { field code message }
  }
}
"""
FIGURES = """
query($from: Date!, $to: Date!, $groupBy: AnalyticsGroupBy, $filter: AnalyticsFilter) {
  analytics(from: $from, to: $to, groupBy: $groupBy, filter: $filter) {
    groups { key flow { received approved rejected shipped delivered completed settled cancelled } }
    total {
      flow {
        received approved rejected held shipped delivered completed settled cancelled
        cycleTimes { stage duration { count p50Seconds p90Seconds } }
        timeInStates { state duration { count p50Seconds } }
      }
      review { decided approveRate rejectRate topReasons { outcome rule code count } }
      fulfilment { tasksCompleted { kind count } }
      money { currency statements revenue averageOrderValue payments { kind count amount } }
      products { sku units }
    }
    previous { flow { received } }
    outstanding { currency age statements amount }
  }
}
"""
CHANGES = "subscription { processMapChanged { at states { kind count } } }"
MAP = """
query($from: Date!, $to: Date!) {
  processMap(from: $from, to: $to) {
    states { name final count ages { underHour underDay underWeek older } late }
    transitions { name from to inDefaultGraph count wait { count p50Seconds } }
    unnamedPaths { from to count }
  }
}
"""


def test_a_bucket_stands_for_its_durations_within_the_stated_error() -> None:
    for seconds in [1, 2, 3, 59, 60, 61, 3_599, 3_600, 86_399, 86_400, 31_536_000]:
        shown = bucket_value(bucket_of(seconds))
        assert abs(shown - seconds) / seconds <= RELATIVE_ERROR + 1e-12, seconds
    assert bucket_value(bucket_of(0)) == 0
    durations = [random.Random(7).randint(1, 10**6) for _ in range(1)] + list(range(1, 2001))
    buckets: dict[int, int] = {}
    for d in durations:
        buckets[bucket_of(d)] = buckets.get(bucket_of(d), 0) + 1
    exact = sorted(durations)[len(durations) // 2]
    assert abs(quantile(buckets.items(), 0.5) - exact) / exact <= RELATIVE_ERROR  # type: ignore[operator]


async def _all_rows() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    await fold()
    rollups = await db.raw(
        "SELECT day, metric, detail, team, dimension, value, currency, bucket, n, total "
        "FROM analytics_rollups WHERE n <> 0 OR total <> 0"
    )
    facts = await db.raw("SELECT * FROM analytics_orders")
    return (
        sorted(tuple(r.values()) for r in rollups),
        sorted(tuple(v for k, v in r.items() if k != "id") for r in facts),
    )


async def _random_flow(api: Api, seed: int, orders: int) -> dict[str, int]:
    """Orders taken down random paths on days a few hours apart; what happened, counted."""
    chance = random.Random(seed)
    happened = {"received": 0, "rejected": 0, "cancelled": 0, "settled": 0, "completed": 0}
    for i in range(orders):
        db.set_clock(START + datetime.timedelta(hours=7 * i))
        path = chance.choice(["reject", "cancel", "ship", "deliver", "complete", "settle"])
        external = f"R-{seed}-{i}"
        happened["received"] += 1
        if path == "reject":
            # More lamps than in stock: the stock rule rejects it.
            await submit_lamps(api, external)
            happened["rejected"] += 1
            continue
        if path == "cancel":
            order = await submit_lamps(api, external, quantity=1)
            db.set_clock(START + datetime.timedelta(hours=7 * i + 2))
            await transition_order(api.rt, order["databaseId"], "cancel", ADMIN, reason="changed")
            happened["cancelled"] += 1
            continue
        quantity = chance.randint(1, 3)
        lines = [{"sku": "MUG", "quantity": quantity}]
        if path == "ship":
            await sent(api, external, lines)
            continue
        order_id = await delivered(api, external, lines)
        db.set_clock(START + datetime.timedelta(hours=7 * i + 30))
        if path == "deliver":
            continue
        shown = await confirmed(api, order_id)
        happened["completed"] += 1
        if path == "settle":
            db.set_clock(START + datetime.timedelta(hours=7 * i + 50))
            paid = {"order": f"SO-{order_id:06d}", "amount": shown["statement"]["total"],
                    "ref": f"C-{external}"}  # fmt: skip
            assert (await api.data(CASH, paid))["recordCashCollected"]["recorded"] == 1
            happened["settled"] += 1
    db.set_clock(None)
    return happened


async def submit_lamps(api: Api, external: str, quantity: int = 10) -> dict[str, Any]:
    order = await submit(
        api, external, as_="ada", lines=[{"sku": "LAMP", "quantity": quantity}],
        shippingAddress=BERLIN,
    )  # fmt: skip
    await api.rt.runner.drain()
    return order


async def test_counts_of_concurrent_writers_are_read_at_once_and_folded_once(
    database_url: str,
) -> None:
    """Each commit appends its counts; folds running meanwhile move them into the
    rollups: every count is read as soon as it is committed, and none twice."""
    today = {"from": datetime.date.today().isoformat(), "to": datetime.date.today().isoformat()}
    async with shop(database_url) as api:
        stop = asyncio.Event()

        async def folding() -> int:
            folds = 0
            while not stop.is_set():
                await fold()
                folds += 1
                await asyncio.sleep(0)
            return folds

        folder = asyncio.create_task(folding())
        try:
            await asyncio.gather(*(submit_lamps(api, f"C-{i}", quantity=1) for i in range(12)))
        finally:
            stop.set()
        assert await folder > 0
        # Counted after the last fold: read from the counts appended.
        await submit_lamps(api, "C-last", quantity=1)
        unfolded = await db.raw("SELECT COUNT(*) AS n FROM analytics_rollup_deltas")
        received = (await api.data(FIGURES, today))["analytics"]["total"]["flow"]["received"]
        live = await _all_rows()
        assert await rebuild() > 0
        rebuilt = await _all_rows()
        left = await db.raw("SELECT COUNT(*) AS n FROM analytics_rollup_deltas")
    assert received == 13, f"read with {unfolded[0]['n']} counts not folded"
    assert live == rebuilt
    assert left[0]["n"] == 0


@pytest.mark.parametrize("seed", [1, 2])
async def test_the_rollups_kept_live_equal_those_rebuilt_from_the_timeline(
    database_url: str, seed: int
) -> None:
    extra = {"cash_on_delivery": cash_on_delivery}
    async with shop(database_url, extra=extra, shipping_charge="0") as api:
        try:
            happened = await _random_flow(api, seed, orders=14)
        finally:
            db.set_clock(None)
        live = await _all_rows()
        assert await rebuild() > 0
        rebuilt = await _all_rows()
        # Rollups stored before migration 0017 had neither teams' months nor summaries.
        await db.raw(
            f"DELETE FROM analytics_rollups WHERE bucket = {SUMMARY} OR "
            "(team <> '*' AND LENGTH(day) = 7)"
        )
        for statement in m0017.SQLITE if db.current().is_sqlite else m0017.POSTGRES:
            await db.raw(statement)
        migrated = await _all_rows()
        figures = await api.data(FIGURES, {**MONTH, "groupBy": "MONTH"})
        # From the first of the month three weeks ago: whole months are read from their
        # month rows, the rest from day rows; by day, from day rows alone.
        since = {"from": START.date().replace(day=1).isoformat(), "to": MONTH["to"]}
        by_month = await api.data(FIGURES, {**since, "groupBy": "MONTH"})
        by_day = await api.data(FIGURES, {**since, "groupBy": "DAY"})
    assert live[0], "the flow left no rollups"
    assert live == rebuilt
    assert migrated == rebuilt
    flow = figures["analytics"]["total"]["flow"]
    for name, count in happened.items():
        assert flow[name] == count, (name, flow)
    assert by_month["analytics"]["total"] == by_day["analytics"]["total"]
    assert by_month["analytics"]["total"]["flow"]["received"] == happened["received"]
    groups = figures["analytics"]["groups"]
    assert {g["key"] for g in groups} <= {DAY1[:7], MONTH["to"][:7]}
    assert sum(g["flow"]["received"] for g in groups) == happened["received"]


def _summed(groups: list[kpis.Figures]) -> tuple[dict[Any, list[int]], dict[Any, dict[int, int]]]:
    """The sums and histograms of ``groups`` added up."""
    sums: dict[Any, list[int]] = {}
    histograms: dict[Any, dict[int, int]] = {}
    for figures in groups:
        for key, (n, total) in figures.sums.items():
            row = sums.setdefault(key, [0, 0])
            row[0] += n
            row[1] += total
        for key, duration in figures.durations.items():
            histogram = histograms.setdefault(key, {})
            for bucket, n in duration.histogram.items():
                histogram[bucket] = histogram.get(bucket, 0) + n
        for sku, product in figures.products.items():
            sums.setdefault(("product", sku, ""), [0, 0])[0] += product.units
    return sums, histograms


async def test_a_period_reads_the_same_figures_from_months_summaries_and_days(
    database_url: str,
) -> None:
    """Whole months are read from month rows and counts from histograms' summary rows:
    they add up to what the day rows hold, for every team and each team alone."""
    extra = {"cash_on_delivery": cash_on_delivery}
    async with shop(database_url, extra=extra, shipping_charge="0") as api:
        try:
            happened = await _random_flow(api, 3, orders=10)
        finally:
            db.set_clock(None)
        await fold()
        # From the first of the month three weeks ago: at least one whole month.
        first, last = START.date().replace(day=1), datetime.date.today()
        everyone = kpis.Filter()
        by_team = await kpis.report(first, last, kpis.GroupBy.TEAM, everyone)
        teams = [None, *(g.key for g in by_team.groups)]
        read = {}
        for team in teams:
            wanted = kpis.Filter(team=team)
            by_day = await kpis.report(first, last, kpis.GroupBy.DAY, wanted)
            counts = await kpis.report(
                first, last, kpis.GroupBy.DAY, wanted, groups=None, total=kpis.Selection()
            )
            read[team] = by_day, counts
        by_carrier = await kpis.report(first, last, kpis.GroupBy.CARRIER, everyone)
    assert len(teams) >= 3, "the flow left no orders both unassigned and assigned"
    for team, (by_day, counts) in read.items():
        total = _summed([by_day.total])
        assert total == _summed(by_day.groups), team
        assert counts.total.sums == by_day.total.sums, team
    everyone_total = _summed([read[None][0].total])
    assert _summed(by_team.groups)[0] == everyone_total[0]
    # A total counts the orders of no carrier too (those never shipped).
    assert by_carrier.total.count("received") == happened["received"]
    assert sum(g.count("received") for g in by_carrier.groups) < happened["received"]


DELIVERY_FIGURES = """
query($from: Date!, $to: Date!) { analytics(from: $from, to: $to) { total {
  fulfilment { unitsToPick unitsPicked itemFillRate }
  delivery { deliveredWithPromise deliveredOnTime deliveredInFullOnTime otifRate
             delivered deliveredFirstAttempt firstAttemptDeliveryRate
             deliveredWithEstimate deliveredAsFirstEstimated etaAccuracy
             exceptions { kind count } } } } }
"""


async def test_fill_rate_first_attempt_deliveries_and_otif_count_what_befell_each_order(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        whole = await sent(api, "WHOLE", [{"sku": "MUG", "quantity": 2}])
        # One of four mugs found: the short pick cancels the other three.
        cut = await sent(api, "CUT", [{"sku": "MUG", "quantity": 4}], found={1: 1})
        shipments = {
            order_id: (await shipment_ids(api, str(order_id)))[0] for order_id in (whole, cut)
        }
        for shipment in shipments.values():
            await api.data(PROMISE, {"id": shipment, "date": "2099-01-02"})
        failed = scan("2026-01-02T11:00:00Z", "delivery_failed")
        today, yesterday = db.now(), db.now() - datetime.timedelta(days=1)
        await api.data(
            RECORD,
            {"id": shipments[whole], "events": [failed],
             "estimate": {"windowFrom": yesterday.isoformat(), "windowTo": today.isoformat()}},
        )  # fmt: skip
        # The cut order's carrier first says yesterday, then today: only the first counts.
        for estimate in (yesterday, today):
            await api.data(
                RECORD,
                {"id": shipments[cut], "events": [],
                 "estimate": {"estimatedDelivery": estimate.isoformat()}},
            )  # fmt: skip
        for shipment in shipments.values():
            arrived = scan(db.now().isoformat(), "delivered")
            await api.data(RECORD, {"id": shipment, "events": [arrived]})
        await api.rt.runner.drain()
        period = {"from": today.date().isoformat(), "to": today.date().isoformat()}
        live = (await api.data(DELIVERY_FIGURES, period))["analytics"]["total"]
        await rebuild()
        rebuilt = (await api.data(DELIVERY_FIGURES, period))["analytics"]["total"]

    assert live["fulfilment"] == {"unitsToPick": 6, "unitsPicked": 3, "itemFillRate": 0.5}
    assert live["delivery"] == {
        "deliveredWithPromise": 2,
        "deliveredOnTime": 2,
        "deliveredInFullOnTime": 1,  # the whole order: the other lost three mugs
        "otifRate": 0.5,
        "delivered": 2,
        "deliveredFirstAttempt": 1,  # the cut order: the whole one failed once
        "firstAttemptDeliveryRate": 0.5,
        "deliveredWithEstimate": 2,
        "deliveredAsFirstEstimated": 1,  # the whole order, within its window
        "etaAccuracy": 0.5,
        "exceptions": [{"kind": "delivery_failed", "count": 1}],
    }
    assert rebuilt == live


CUSTOMERS = """
query($from: Date!, $to: Date!) { analytics(from: $from, to: $to, groupBy: DAY) {
  groups { key customers { newCustomerOrders returningCustomerOrders returningShare } }
  total { customers { newCustomerOrders returningCustomerOrders returningShare } }
  previous { customers { newCustomerOrders returningCustomerOrders } } } }
"""


async def test_orders_count_as_new_or_returning_by_their_customers_first_day(
    database_url: str,
) -> None:
    async with shop(database_url) as api:
        try:
            db.set_clock(START)
            await submit(api, "C-1")  # ada's first order
            await submit(
                api, "C-2", customerEmail="lin@example.com", customerName="Lin", currency="EUR"
            )
            await submit(api, "C-3")  # ada's second, on her first day
            db.set_clock(START + datetime.timedelta(days=1))
            await submit(api, "C-4", customerEmail="lin@example.com")
            await submit(api, "C-5")
        finally:
            db.set_clock(None)
        await api.rt.runner.drain()
        figures = (await api.data(CUSTOMERS, MONTH))["analytics"]
        live = await _all_rows()
        await rebuild()
        rebuilt = await _all_rows()
    assert figures["total"]["customers"] == {
        "newCustomerOrders": 3, "returningCustomerOrders": 2, "returningShare": 0.4
    }  # fmt: skip
    by_day = [(g["key"], g["customers"]) for g in figures["groups"]]
    assert by_day[:2] == [
        (DAY1, {"newCustomerOrders": 3, "returningCustomerOrders": 0, "returningShare": 0.0}),
        ((START.date() + datetime.timedelta(days=1)).isoformat(),
         {"newCustomerOrders": 0, "returningCustomerOrders": 2, "returningShare": 1.0}),
    ]  # fmt: skip
    assert figures["previous"]["customers"] == {
        "newCustomerOrders": 0, "returningCustomerOrders": 0
    }  # fmt: skip
    assert live == rebuilt


async def test_staff_see_the_figures_of_flow_review_and_money_and_only_their_teams(
    database_url: str,
) -> None:
    extra = {"cash_on_delivery": cash_on_delivery}
    async with shop(database_url, extra=extra, shipping_charge="0") as api:
        await upsert_team("dock", "", [MemberData("dan", 10)])
        try:
            db.set_clock(START)
            await submit_lamps(api, "REJ-1")
            first = await delivered(api, "D-1", [{"sku": "MUG", "quantity": 2}])
            db.set_clock(START + datetime.timedelta(days=1))
            shown = await confirmed(api, first)
            db.set_clock(START + datetime.timedelta(days=2))
            paid = {"order": f"SO-{first:06d}", "amount": shown["statement"]["total"],
                    "ref": "C-1"}  # fmt: skip
            await api.data(CASH, paid)
            second = await delivered(api, "D-2", [{"sku": "MUG", "quantity": 1}])
            owed = (await confirmed(api, second))["statement"]["total"]
        finally:
            db.set_clock(None)
        span = MONTH
        admin = (await api.data(FIGURES, span))["analytics"]
        floor_token = await auth.create_token("staff", name="pia", team="floor")
        dock_token = await auth.create_token("staff", name="dan", team="dock")
        api.tokens |= {"floor": floor_token, "dock": dock_token}
        floor = (await api.data(FIGURES, span, as_="floor"))["analytics"]
        dock = (await api.data(FIGURES, span, as_="dock"))["analytics"]
        peeking = await api.gql(FIGURES, {**span, "filter": {"team": "floor"}}, as_="dock")
        customer = await api.gql(FIGURES, span, as_="ada")
        by_day = (await api.data(FIGURES, {**span, "groupBy": "DAY"}))["analytics"]
        by_channel = (await api.data(FIGURES, {**span, "groupBy": "CHANNEL"}))["analytics"]
        backwards = await api.gql(FIGURES, {"from": MONTH["to"], "to": DAY1})
    total = admin["total"]
    assert total["flow"]["received"] == 3
    assert (total["flow"]["approved"], total["flow"]["rejected"]) == (2, 1)
    assert (total["flow"]["delivered"], total["flow"]["settled"]) == (2, 1)
    assert total["review"]["decided"] == 3
    assert total["review"]["approveRate"] == pytest.approx(2 / 3)
    reasons = total["review"]["topReasons"]
    assert reasons and reasons[0]["rule"] == "stock" and reasons[0]["outcome"] == "fail"
    (eur,) = total["money"]
    assert eur["currency"] == "EUR" and eur["statements"] == 2
    revenue = Decimal(shown["statement"]["total"]) + Decimal(owed)
    assert Decimal(eur["revenue"]) == revenue
    assert Decimal(eur["averageOrderValue"]) == (revenue / 2).quantize(
        Decimal("0.01"), ROUND_HALF_UP
    )
    assert [(p["kind"], p["count"], p["amount"]) for p in eur["payments"]] == [
        ("collected", 1, shown["statement"]["total"])
    ]
    assert total["products"] == [{"sku": "MUG", "units": 3}]
    assert admin["outstanding"] == [
        {"currency": "EUR", "age": "DAYS_0_30", "statements": 1, "amount": owed}
    ]
    delivery = {c["stage"]: c["duration"] for c in total["flow"]["cycleTimes"]}
    assert delivery["ORDER_TO_SETTLE"]["count"] == 1
    # Submitted at 09:00, collected two days later: within the histogram's error.
    assert delivery["ORDER_TO_SETTLE"]["p50Seconds"] == pytest.approx(2 * 86_400, rel=0.05)
    assert {t["kind"]: t["count"] for t in total["fulfilment"]["tasksCompleted"]} == {
        "pick": 2, "pack": 2, "shipment": 2
    }  # fmt: skip
    # The floor holds the approved orders; the rejected one was never assigned.
    assert floor["total"]["flow"]["received"] == 0  # assigned after it was received
    assert floor["total"]["flow"]["delivered"] == 2
    assert dock["total"]["flow"]["delivered"] == 0 and dock["total"]["money"] == []
    assert dock["outstanding"] == []
    assert peeking["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert customer["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert sum(g["flow"]["received"] for g in by_day["groups"]) == 3
    assert by_day["groups"][0]["key"] == DAY1
    assert [(g["key"], g["flow"]["received"]) for g in by_channel["groups"]] == [("web", 3)]
    assert backwards["errors"][0]["extensions"]["code"] == "OUT_OF_RANGE"


async def test_the_process_map_shows_the_orders_in_each_state_and_the_moves_taken(
    database_url: str,
) -> None:
    async with shop(database_url, shipping_charge="0") as api:
        try:
            db.set_clock(START)
            await submit_lamps(api, "REJ-1")
            await sent(api, "S-1", [{"sku": "MUG", "quantity": 1}])
            db.set_clock(START + datetime.timedelta(hours=3))
            await sent(api, "S-2", [{"sku": "MUG", "quantity": 1}])
        finally:
            db.set_clock(None)
        with db.count_statements() as weeks:
            found = await api.data(MAP, MONTH)
        year = {**MONTH, "from": (START.date() - datetime.timedelta(days=340)).isoformat()}
        with db.count_statements() as whole_year:
            await api.data(MAP, year)
        refused = await api.gql(MAP, MONTH, as_="ada")
    states = {s["name"]: s for s in found["processMap"]["states"]}
    assert states["SHIPPED"]["count"] == 2 and states["REJECTED"]["count"] == 1
    assert not states["SHIPPED"]["final"] and states["SETTLED"]["final"]
    # Shipped three weeks ago (the clock was set back): both are older than 7 days.
    assert states["SHIPPED"]["ages"]["older"] == 2
    assert states["SETTLED"]["ages"] is None
    moves = {(t["from"], t["to"]): t for t in found["processMap"]["transitions"]}
    assert moves[("IN_REVIEW", "APPROVED")]["count"] == 2
    assert moves[("IN_REVIEW", "REJECTED")]["name"] == "reject"
    assert moves[("PROCESSING", "SHIPPED")]["wait"]["count"] == 2
    assert all(t["inDefaultGraph"] for t in moves.values())
    assert found["processMap"]["unnamedPaths"] == []
    # A year costs the statements of three weeks.
    assert len(whole_year.statements) == len(weeks.statements)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_every_kpi_downloads_as_csv_and_staff_get_their_teams_figures_only(
    database_url: str,
) -> None:
    async with shop(database_url, shipping_charge="0") as api:
        await upsert_team("dock", "", [MemberData("dan", 10)])
        try:
            db.set_clock(START)
            await submit_lamps(api, "REJ-1")
            await delivered(api, "D-1", [{"sku": "MUG", "quantity": 2}])
        finally:
            db.set_clock(None)
        api.tokens |= {
            "floor": await auth.create_token("staff", name="pia", team="floor"),
            "dock": await auth.create_token("staff", name="dan", team="dock"),
        }

        async def download(kpi: str, who: str | None, **params: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {api.tokens[who]}"} if who else {}
            query = {**MONTH, "groupBy": "month", **params}
            return await api.client.get(f"/analytics/{kpi}.csv", params=query, headers=headers)

        every = {kpi: await download(kpi, "admin") for kpi in KPIS}
        floor = await download("flow", "floor")
        dock = await download("flow", "dock")
        peeking = await download("flow", "dock", team="floor")
        customer = await download("flow", "ada")
        anonymous = await download("flow", None)
        unknown = await download("speed", "admin")
        bad_day = await download("flow", "admin", to="yesterday")
    for kpi, response in every.items():
        assert response.status_code == 200, (kpi, response.text)
        assert response.headers["content-type"].startswith("text/csv")
        header = next(csv.reader(io.StringIO(response.text)))
        assert header == KPIS[kpi][0]
    flow = list(csv.DictReader(io.StringIO(every["flow"].text)))
    assert sum(int(row["received"]) for row in flow) == 2
    assert sum(int(row["delivered"]) for row in flow) == 1
    assert sum(int(r["delivered"]) for r in csv.DictReader(io.StringIO(floor.text))) == 1
    assert list(csv.DictReader(io.StringIO(dock.text))) == []
    assert peeking.status_code == 404 and peeking.json()["field"] == "team"
    assert customer.status_code == 403
    assert anonymous.status_code == 401
    assert unknown.status_code == 404
    assert bad_day.status_code == 400 and bad_day.json() == {
        "code": "INVALID_VALUE", "message": "`to` must be a date like 2026-12-31.", "field": "to"
    }  # fmt: skip


async def test_the_report_command_prints_a_kpi_as_csv_and_as_a_table(database_url: str) -> None:
    async with shop(database_url, shipping_charge="0") as api:
        try:
            db.set_clock(START)
            await submit_lamps(api, "REJ-1")
        finally:
            db.set_clock(None)
        args = ["report", "review", "--from", MONTH["from"], "--to", MONTH["to"]]
        as_csv = await asyncio.to_thread(
            ordergraph, *args, "--group-by", "channel", "--format", "csv",
            cwd=Path.cwd(), DATABASE_URL=database_url,
        )  # fmt: skip
        as_table = await asyncio.to_thread(
            ordergraph, *args, cwd=Path.cwd(), DATABASE_URL=database_url
        )
        backwards = await asyncio.to_thread(
            ordergraph, "report", "flow", "--from", MONTH["to"], "--to", MONTH["from"],
            cwd=Path.cwd(), DATABASE_URL=database_url,
        )  # fmt: skip
    assert as_csv.returncode == 0, as_csv.stderr
    assert as_csv.stdout == (
        "group,decided,approve_rate,reject_rate,hold_rate\nweb,1,0.0000,1.0000,0.0000\n"
    )
    lines = as_table.stdout.splitlines()
    assert lines[0].split() == ["group", "decided", "approve_rate", "reject_rate", "hold_rate"]
    assert lines[2].split() == [DAY1, "1", "0.0000", "1.0000", "0.0000"]
    assert backwards.returncode == 2 and "`to` is before `from`" in backwards.stderr


async def test_process_map_changes_reach_a_subscriber_at_most_once_a_second(
    database_url: str,
) -> None:
    async with shop(database_url, shipping_charge="0") as api, connected_as(api, "admin") as ws:
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": CHANGES}})
        probe = {"id": 0, "order_id": 1, "customer_id": 1, "type": "transition",
                 "from_status": None, "to_status": None, "actor": "test", "data": {},
                 "at": db.now().isoformat()}  # fmt: skip
        async with asyncio.timeout(10):
            while True:  # until the subscription listens
                await api.rt.bus.publish(probe)
                with contextlib.suppress(TimeoutError):
                    first = await ws.receive_json(timeout=0.1)
                    break
        for i in range(4):
            await submit(api, f"SUB-{i}", as_="ada", lines=[{"sku": "MUG", "quantity": 1}])
            await api.rt.runner.drain()
        changes = [first]
        async with asyncio.timeout(20):
            while True:
                message = await ws.receive_json()
                changes.append(message)
                counts = {
                    s["kind"]: s["count"]
                    for s in message["payload"]["data"]["processMapChanged"]["states"]
                }
                if counts["APPROVED"] == 4:
                    break
    instants = [
        datetime.datetime.fromisoformat(c["payload"]["data"]["processMapChanged"]["at"])
        for c in changes
    ]
    assert all(b - a >= datetime.timedelta(seconds=1) for a, b in pairwise(instants)), instants
    # Four orders made twelve changes (submitted, start_review, approve): fewer messages.
    assert len(changes) < 12
