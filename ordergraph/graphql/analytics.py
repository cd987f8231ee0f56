"""GraphQL for stage 6: the figures of a period (``analytics``), the process map
(``processMap``) and its live counts (``processMapChanged``). Admins and staff only;
staff of a team see their team's figures (``core.scope.figures_team``)."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncGenerator
from decimal import Decimal
from enum import Enum
from typing import Annotated

import strawberry

from ordergraph.core import db, scope
from ordergraph.core.auth import Principal
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.money import from_minor
from ordergraph.graphql.context import OPERATORS, ApiError, Info, checked, require
from ordergraph.graphql.loaders import selected_names
from ordergraph.stages.analytics import kpis, process_map
from ordergraph.stages.analytics.kpis import Duration, Figures
from ordergraph.stages.analytics.limits import DIMENSION_VALUE, TEAM

THROTTLE_SECONDS = 1.0
"""A ``processMapChanged`` subscriber hears at most once a second."""


@strawberry.enum(description="How the figures of a period are grouped.")
class AnalyticsGroupBy(Enum):
    DAY = strawberry.enum_value("day", description="Per UTC day.")
    WEEK = strawberry.enum_value("week", description="Per ISO week (2026-W49).")
    MONTH = strawberry.enum_value("month", description="Per calendar month (2026-12).")
    TEAM = strawberry.enum_value("team", description="Per team holding the orders.")
    CHANNEL = strawberry.enum_value("channel", description="Per sales channel.")
    PERSON = strawberry.enum_value("person", description="Per staff member assigned.")
    ORDER_TYPE = strawberry.enum_value("order_type", description="Per order type.")
    PRIORITY = strawberry.enum_value("priority", description="Per order priority.")
    CARRIER = strawberry.enum_value("carrier", description="Per carrier of the first shipment.")
    COUNTRY = strawberry.enum_value("country", description="Per shipping country.")


@strawberry.enum(description="A dimension the figures can be filtered on.")
class AnalyticsDimension(Enum):
    CHANNEL = strawberry.enum_value("channel", description="The sales channel.")
    PERSON = strawberry.enum_value("person", description="The staff member assigned.")
    ORDER_TYPE = strawberry.enum_value("order_type", description="The order type.")
    PRIORITY = strawberry.enum_value("priority", description="The order priority.")
    CARRIER = strawberry.enum_value("carrier", description="The first shipment's carrier.")
    COUNTRY = strawberry.enum_value("country", description="The shipping country (ISO code).")


@strawberry.enum(description="A stretch of the flow whose duration is measured.")
class CycleStage(Enum):
    REVIEW = strawberry.enum_value("review", description="Received to approved or rejected.")
    FULFILMENT = strawberry.enum_value("fulfilment", description="Approved to shipped.")
    DELIVERY = strawberry.enum_value("delivery", description="Shipped to delivered.")
    SETTLEMENT = strawberry.enum_value("settlement", description="Delivered to settled.")
    ORDER_TO_SHIP = strawberry.enum_value("order_to_ship", description="Received to shipped.")
    ORDER_TO_DELIVERY = strawberry.enum_value(
        "order_to_delivery", description="Received to delivered: end to end."
    )
    ORDER_TO_SETTLE = strawberry.enum_value(
        "order_to_settle", description="Received to settled: the whole flow."
    )


@strawberry.enum(description="How long a statement has been waiting for its money.")
class OutstandingAge(Enum):
    DAYS_0_30 = strawberry.enum_value("0-30 days", description="Issued 30 days ago or less.")
    DAYS_31_60 = strawberry.enum_value("31-60 days", description="Issued 31 to 60 days ago.")
    DAYS_61_90 = strawberry.enum_value("61-90 days", description="Issued 61 to 90 days ago.")
    OVER_90_DAYS = strawberry.enum_value("over 90 days", description="Issued over 90 days ago.")


@strawberry.input(description="Which orders the figures count.")
class AnalyticsFilter:
    team: str | None = strawberry.field(
        default=None, description="Only the orders this team holds (staff of a team: theirs)."
    )
    dimension: AnalyticsDimension | None = strawberry.field(
        default=None,
        description="With `value`: only the orders with this value of the dimension. Goes "
        "with a grouping by period, by team or by the same dimension.",
    )
    value: str | None = strawberry.field(
        default=None, description="The dimension's value (`web`, `DE`, `NORMAL`...)."
    )


@strawberry.type(description="A duration's count and quantiles, from summed histograms.")
class DurationFigures:
    count: int = strawberry.field(description="How many times it was measured.")
    p50_seconds: float | None = strawberry.field(
        description="The median, in seconds (within 4.8 %); null when nothing was measured."
    )
    p90_seconds: float | None = strawberry.field(
        description="The 90th percentile, in seconds (within 4.8 %)."
    )
    mean_seconds: float | None = strawberry.field(description="The exact mean, in seconds.")

    @classmethod
    def of(cls, duration: Duration) -> DurationFigures:
        return cls(
            count=duration.count,
            p50_seconds=duration.p50,
            p90_seconds=duration.p90,
            mean_seconds=duration.mean,
        )


@strawberry.type(description="The duration of a stretch of the flow.")
class CycleTime:
    stage: CycleStage = strawberry.field(description="The stretch measured.")
    duration: DurationFigures = strawberry.field(description="Its count and quantiles.")


@strawberry.type(description="The time orders spent in a state before they left it.")
class StateTime:
    state: str = strawberry.field(description="The state left.")
    duration: DurationFigures = strawberry.field(description="Its count and quantiles.")


@strawberry.type(description="How many times something of a kind happened.")
class KindCount:
    kind: str = strawberry.field(description="The kind (a task's, an alert's, a status).")
    count: int = strawberry.field(description="How many.")


@strawberry.type(description="The orders' flow: how many reached each point, and how fast.")
class FlowFigures:
    received: int = strawberry.field(description="Orders submitted.")
    approved: int = strawberry.field(description="Transitions into APPROVED.")
    rejected: int = strawberry.field(description="Transitions into REJECTED.")
    held: int = strawberry.field(description="Transitions into ON_HOLD.")
    shipped: int = strawberry.field(description="Transitions into SHIPPED.")
    delivered: int = strawberry.field(description="Transitions into DELIVERED.")
    completed: int = strawberry.field(description="Transitions into COMPLETED.")
    settled: int = strawberry.field(description="Transitions into SETTLED.")
    cancelled: int = strawberry.field(description="Transitions into CANCELLED.")
    cycle_times: list[CycleTime] = strawberry.field(
        description="Each stretch's duration, counted on the day it ended."
    )
    time_in_states: list[StateTime] = strawberry.field(
        description="Per state, the time spent in it by the orders that left it."
    )


@strawberry.type(description="A reason the review gave, by rule.")
class ReviewReason:
    outcome: str = strawberry.field(description="The finding's outcome: fail or hold.")
    rule: str = strawberry.field(description="The rule that gave it.")
    code: str = strawberry.field(description="The rule's code for it.")
    count: int = strawberry.field(description="How many decisions gave it.")


@strawberry.type(description="The review's decisions.")
class ReviewFigures:
    decided: int = strawberry.field(description="Orders leaving IN_REVIEW.")
    approve_rate: float | None = strawberry.field(description="Approved ÷ decided.")
    reject_rate: float | None = strawberry.field(description="Rejected ÷ decided.")
    hold_rate: float | None = strawberry.field(description="Held ÷ decided.")
    top_reasons: list[ReviewReason] = strawberry.field(
        description="The most frequent reasons of rejections and holds (at most 10)."
    )


@strawberry.type(description="Processing: shipping on time, tasks done.")
class FulfilmentFigures:
    shipped_with_due: int = strawberry.field(description="Shipped orders with a due time.")
    shipped_on_time: int = strawberry.field(description="Of those, shipped by the due time.")
    on_time_ship_rate: float | None = strawberry.field(
        description="Shipped on time ÷ shipped with a due time."
    )
    tasks_completed: list[KindCount] = strawberry.field(
        description="Picks and packs completed, and shipments made: the throughput."
    )
    short_picks: int = strawberry.field(description="Picks that found less than ordered.")
    units_to_pick: int = strawberry.field(description="Units the picks completed were to find.")
    units_picked: int = strawberry.field(description="Of those, units found.")
    item_fill_rate: float | None = strawberry.field(
        description="Units picked ÷ units to pick: the share of ordered units found."
    )


@strawberry.type(description="Tracking: delivering on time, exceptions and alerts.")
class DeliveryFigures:
    delivered_with_promise: int = strawberry.field(
        description="Delivered orders with a promised date."
    )
    delivered_on_time: int = strawberry.field(description="Of those, delivered by that date.")
    on_time_delivery_rate: float | None = strawberry.field(
        description="Delivered on time ÷ delivered with a promised date."
    )
    delivered_in_full_on_time: int = strawberry.field(
        description="Of those delivered on time, orders no short pick cut down."
    )
    otif_rate: float | None = strawberry.field(
        description="On time in full: delivered on time and in full ÷ delivered with a "
        "promised date."
    )
    delivered: int = strawberry.field(description="Orders delivered.")
    delivered_first_attempt: int = strawberry.field(
        description="Of those, delivered with no failed delivery attempt before."
    )
    first_attempt_delivery_rate: float | None = strawberry.field(
        description="Delivered at the first attempt ÷ delivered."
    )
    delivered_with_estimate: int = strawberry.field(
        description="Delivered orders whose carrier gave an estimate."
    )
    delivered_as_first_estimated: int = strawberry.field(
        description="Of those, delivered on a day of the carrier's first estimate (its "
        "window's days, or its day), UTC."
    )
    eta_accuracy: float | None = strawberry.field(
        description="Delivered as first estimated ÷ delivered with an estimate."
    )
    exceptions: list[KindCount] = strawberry.field(
        description="Carriers' exception reports by status, most first."
    )
    alerts_opened: list[KindCount] = strawberry.field(description="Alerts opened by kind.")
    alert_resolution: list[StateTime] = strawberry.field(
        description="Per alert kind (`state`), the time from opening to resolving."
    )


@strawberry.type(description="A payment movement kind's count and amount.")
class PaymentFigures:
    kind: str = strawberry.field(description="captured, collected, matched, failed, refunded...")
    count: int = strawberry.field(description="Ledger entries of this kind.")
    amount: Decimal = strawberry.field(description="Their amount in the currency.")


@strawberry.type(description="Money in one currency.")
class MoneyFigures:
    currency: str = strawberry.field(description="ISO 4217 code.")
    statements: int = strawberry.field(description="Statements issued.")
    revenue: Decimal = strawberry.field(description="The statements' totals.")
    average_order_value: Decimal | None = strawberry.field(
        description="Revenue ÷ statements, to the minor unit (half up)."
    )
    gross: Decimal = strawberry.field(description="The statements' item amounts before discounts.")
    discount: Decimal = strawberry.field(description="Discounts given (positive).")
    discount_share: float | None = strawberry.field(description="Discount ÷ gross.")
    payments: list[PaymentFigures] = strawberry.field(description="Ledger movements by kind.")
    payment_success_rate: float | None = strawberry.field(
        description="Money-moving entries ÷ (those and failed ones)."
    )


@strawberry.type(description="An amount in a currency.")
class Amount:
    currency: str = strawberry.field(description="ISO 4217 code.")
    amount: Decimal = strawberry.field(description="The amount.")


@strawberry.type(
    description="Orders received, by whether their customer had ordered on an earlier day."
)
class CustomerFigures:
    new_customer_orders: int = strawberry.field(
        description="Orders of customers whose first order came that day (UTC)."
    )
    returning_customer_orders: int = strawberry.field(
        description="Orders of customers whose first order came on an earlier day."
    )
    returning_share: float | None = strawberry.field(
        description="Returning customers' orders ÷ both."
    )


@strawberry.type(description="A product's demand.")
class ProductFigures:
    sku: str = strawberry.field(description="The product's SKU.")
    units: int = strawberry.field(description="Units on issued statements.")
    revenue: list[Amount] = strawberry.field(description="Their line totals, per currency.")


@strawberry.type(description="Every figure of one group: a period, or a dimension's value.")
class AnalyticsFigures:
    """Each family of figures is worked out when the query selects it."""

    figures: strawberry.Private[Figures]

    @strawberry.field(
        description="The group: a day (2026-12-06), week (2026-W49), month (2026-12), team "
        "or value; `total` and `previous` for the whole period and the one before."
    )
    def key(self) -> str:
        return self.figures.key

    @strawberry.field(description="Counts and cycle times.")
    def flow(self) -> FlowFigures:
        f = self.figures
        return FlowFigures(
            **{name: f.count(name) for name in ("received", *kpis.FLOW_COUNTS)},
            cycle_times=[
                CycleTime(stage=CycleStage(name), duration=DurationFigures.of(f.cycle(name)))
                for name in kpis.CYCLES
            ],
            time_in_states=[
                StateTime(state=d.name, duration=DurationFigures.of(d)) for d in f.time_in_states()
            ],
        )

    @strawberry.field(description="The review's rates and reasons.")
    def review(self) -> ReviewFigures:
        review = self.figures.review()
        return ReviewFigures(
            decided=review.decided,
            approve_rate=review.rate(review.approved),
            reject_rate=review.rate(review.rejected),
            hold_rate=review.rate(review.held),
            top_reasons=[
                ReviewReason(outcome=outcome, rule=rule, code=code, count=n)
                for outcome, rule, code, n in self.figures.reasons()
            ],
        )

    @strawberry.field(description="Shipping on time, tasks.")
    def fulfilment(self) -> FulfilmentFigures:
        fulfilment = self.figures.fulfilment()
        return FulfilmentFigures(
            shipped_with_due=fulfilment.shipped_with_due,
            shipped_on_time=fulfilment.shipped_on_time,
            on_time_ship_rate=fulfilment.on_time_ship_rate,
            tasks_completed=_kinds(fulfilment.tasks_completed),
            short_picks=fulfilment.short_picks,
            units_to_pick=fulfilment.units_to_pick,
            units_picked=fulfilment.units_picked,
            item_fill_rate=fulfilment.item_fill_rate,
        )

    @strawberry.field(description="Delivering on time, exceptions.")
    def delivery(self) -> DeliveryFigures:
        delivery = self.figures.delivery()
        return DeliveryFigures(
            delivered_with_promise=delivery.delivered_with_promise,
            delivered_on_time=delivery.delivered_on_time,
            on_time_delivery_rate=delivery.on_time_delivery_rate,
            delivered_in_full_on_time=delivery.delivered_in_full_on_time,
            otif_rate=delivery.otif_rate,
            delivered=delivery.delivered,
            delivered_first_attempt=delivery.delivered_first_attempt,
            first_attempt_delivery_rate=delivery.first_attempt_delivery_rate,
            delivered_with_estimate=delivery.delivered_with_estimate,
            delivered_as_first_estimated=delivery.delivered_as_first_estimated,
            eta_accuracy=delivery.eta_accuracy,
            exceptions=_kinds(delivery.exceptions),
            alerts_opened=_kinds(delivery.alerts_opened),
            alert_resolution=[
                StateTime(state=detail, duration=DurationFigures.of(d))
                for (metric, detail), d in sorted(self.figures.durations.items())
                if metric == "alert_fix"
            ],
        )

    @strawberry.field(description="Revenue and payments per currency.")
    def money(self) -> list[MoneyFigures]:
        return [
            MoneyFigures(
                currency=m.currency,
                statements=m.statements,
                revenue=_money(m.revenue, m.currency),
                average_order_value=None
                if m.average_order_value is None
                else _money(m.average_order_value, m.currency),
                gross=_money(m.gross, m.currency),
                discount=_money(m.discount, m.currency),
                discount_share=m.discount_share,
                payments=[
                    PaymentFigures(kind=kind, count=n, amount=_money(total, m.currency))
                    for kind, (n, total) in m.payments.items()
                ],
                payment_success_rate=m.payment_success_rate,
            )
            for m in self.figures.money()
        ]

    @strawberry.field(description="New against returning customers.")
    def customers(self) -> CustomerFigures:
        customers = self.figures.customers()
        return CustomerFigures(
            new_customer_orders=customers.new,
            returning_customer_orders=customers.returning,
            returning_share=customers.returning_share,
        )

    @strawberry.field(
        description="The 20 products sold most (in groups by period or team, and in `total` "
        "and `previous`; with no dimension filter)."
    )
    def products(self) -> list[ProductFigures]:
        return [
            ProductFigures(
                sku=p.sku,
                units=p.units,
                revenue=[
                    Amount(currency=c, amount=_money(m, c)) for c, m in sorted(p.revenue.items())
                ],
            )
            for p in self.figures.top_products()
        ]


@strawberry.type(description="What issued statements still wait for.")
class OutstandingAmount:
    currency: str = strawberry.field(description="ISO 4217 code.")
    age: OutstandingAge = strawberry.field(description="How long the statements have waited.")
    statements: int = strawberry.field(description="How many statements.")
    amount: Decimal = strawberry.field(description="What they still wait for.")


@strawberry.type(description="The figures of a period, grouped, with the period before.")
class Analytics:
    start: datetime.date = strawberry.field(name="from", description="The first day (UTC).")
    end: datetime.date = strawberry.field(name="to", description="The last day (UTC).")
    group_by: AnalyticsGroupBy = strawberry.field(description="How `groups` are made.")
    groups: list[AnalyticsFigures] = strawberry.field(description="One per group, in key order.")
    total: AnalyticsFigures = strawberry.field(description="The whole period.")
    previous: AnalyticsFigures = strawberry.field(
        description="The period of the same length just before, to compare with."
    )
    outstanding: list[OutstandingAmount] = strawberry.field(
        description="Now, not in the period: money delivered orders' statements wait for."
    )


@strawberry.type(description="Ages of the orders in a state, since they entered it.")
class StateAges:
    under_hour: int = strawberry.field(description="Less than an hour.")
    under_day: int = strawberry.field(description="An hour to a day.")
    under_week: int = strawberry.field(description="A day to 7 days.")
    older: int = strawberry.field(description="7 days or more.")


@strawberry.type(description="A state of the merged status graph with its orders now.")
class ProcessState:
    name: str = strawberry.field(description="The state.")
    description: str = strawberry.field(description="What it means.")
    final: bool = strawberry.field(description="No transition leaves it.")
    count: int = strawberry.field(description="Orders in it now.")
    ages: StateAges | None = strawberry.field(description="Their ages; null for a final state.")
    oldest_since: datetime.datetime | None = strawberry.field(
        description="When the longest-waiting order entered it (not for final states)."
    )
    late: int = strawberry.field(
        description="Orders in it past their due time: APPROVED or PROCESSING past the "
        "assignment's due time, SHIPPED past a promised date not met."
    )


@strawberry.type(description="A move between two states, taken in the period.")
class ProcessTransition:
    name: str | None = strawberry.field(description="The merged graph's transition name.")
    source: str = strawberry.field(name="from", description="The state left.")
    target: str = strawberry.field(name="to", description="The state entered.")
    in_default_graph: bool = strawberry.field(
        description="Whether the default status graph names this move."
    )
    count: int = strawberry.field(description="How many times it was taken.")
    wait: DurationFigures = strawberry.field(description="The time in `from` before it.")


@strawberry.type(description="The status graph with live counts and the period's transitions.")
class ProcessMap:
    start: datetime.date = strawberry.field(name="from", description="The first day (UTC).")
    end: datetime.date = strawberry.field(name="to", description="The last day (UTC).")
    states: list[ProcessState] = strawberry.field(description="Every state, with its orders now.")
    transitions: list[ProcessTransition] = strawberry.field(
        description="Every move taken in the period."
    )
    unnamed_paths: list[ProcessTransition] = strawberry.field(
        description="Moves taken that the default graph does not name, most taken first."
    )


@strawberry.type(description="The orders in each state changed.")
class ProcessMapChange:
    at: datetime.datetime = strawberry.field(description="When the counts were read.")
    states: list[KindCount] = strawberry.field(
        description="Orders in each state now (`kind` is the state)."
    )


FromDay = Annotated[datetime.date, strawberry.argument(name="from", description="The first day.")]
ToDay = Annotated[datetime.date, strawberry.argument(name="to", description="The last day.")]
TeamFilter = Annotated[
    AnalyticsFilter | None,
    strawberry.argument(description="Which orders to count (only `team` applies)."),
]


def _scoped_team(principal: Principal, wanted: str | None) -> str | None:
    """The team whose figures to read: the caller's own for staff of a team (another
    team's name answers as absence), else the filter's."""
    if wanted is not None:
        checked(TEAM, wanted, "filter.team")
    try:
        own = scope.figures_team(principal)
    except DomainError as error:
        raise ApiError(error.code, error.problems[0].message) from None
    if own is not None and wanted not in (None, own):
        raise ApiError(ErrorCode.NOT_FOUND, f"There is no team {wanted}.", "filter.team")
    return own if own is not None else wanted


def _filter(principal: Principal, given: AnalyticsFilter | None) -> kpis.Filter:
    given = given or AnalyticsFilter()
    if (given.dimension is None) != (given.value is None):
        raise ApiError(
            ErrorCode.REQUIRED, "A filter needs both `dimension` and `value`.", "filter.value"
        )
    if given.value is not None:
        checked(DIMENSION_VALUE, given.value, "filter.value")
    return kpis.Filter(
        _scoped_team(principal, given.team),
        None if given.dimension is None else given.dimension.value,
        given.value,
    )


def _kinds(counts: dict[str, int]) -> list[KindCount]:
    return [KindCount(kind=kind, count=n) for kind, n in counts.items()]


def _money(minor: int, currency: str) -> Decimal:
    return from_minor(minor, currency)


def _state(state: process_map.StateNow) -> ProcessState:
    return ProcessState(
        name=state.name,
        description=state.description,
        final=state.final,
        count=state.count,
        ages=None if state.final else StateAges(**{k: state.ages.get(k, 0) for k in (
            "under_hour", "under_day", "under_week", "older")}),
        oldest_since=state.oldest_since,
        late=state.late,
    )  # fmt: skip


def _edge(edge: process_map.Edge) -> ProcessTransition:
    return ProcessTransition(
        name=edge.name,
        source=edge.source,
        target=edge.target,
        in_default_graph=edge.in_default_graph,
        count=edge.duration.count,
        wait=DurationFigures.of(edge.duration),
    )


QUANTILES = {
    ("flow", "cycleTimes"): "cycle",
    ("flow", "timeInStates"): "edge",
    ("delivery", "alertResolution"): "alert_fix",
}
"""The fields whose ``duration`` reads a measure's histogram, but for its ``count``."""


def _selection(info: Info, part: str) -> kpis.Selection | None:
    """What the query selects of ``part`` (``groups``, ``total``, ``previous``)."""
    path = (info.field_name, part)
    names = selected_names(info.selected_fields, *path)
    if not names:
        return None
    quantiles = frozenset(
        metric
        for (family, field), metric in QUANTILES.items()
        if selected_names(info.selected_fields, *path, family, field, "duration") - {"count"}
    )
    return kpis.Selection(quantiles, products="products" in names)


async def read_report(
    principal: Principal,
    start: datetime.date,
    end: datetime.date,
    group_by: AnalyticsGroupBy,
    given: AnalyticsFilter | None,
    selected: dict[str, kpis.Selection | None],
) -> tuple[kpis.Filter, kpis.Report]:
    """The report a caller may see, as selected, with the filter it was read with."""
    wanted = _filter(principal, given)
    try:
        found = await kpis.report(start, end, kpis.GroupBy(group_by.value), wanted, **selected)
    except DomainError as error:
        problem = error.problems[0]
        raise ApiError(problem.code, problem.message, problem.field) from None
    return wanted, found


@strawberry.type
class AnalyticsQuery:
    @strawberry.field(
        description="Figures for decisions over the days `from` to `to` (UTC, inclusive; at "
        "most two years), per group, read from the rollups (docs/analytics.md). Admins and "
        "staff; staff of a team see their team's."
    )
    async def analytics(
        self,
        info: Info,
        start: FromDay,
        end: ToDay,
        group_by: Annotated[
            AnalyticsGroupBy, strawberry.argument(description="How to group the figures.")
        ] = AnalyticsGroupBy.DAY,
        filter: Annotated[
            AnalyticsFilter | None, strawberry.argument(description="Which orders to count.")
        ] = None,
    ) -> Analytics:
        principal = require(info, *OPERATORS)
        selected = {part: _selection(info, part) for part in ("groups", "total", "previous")}
        wanted, found = await read_report(principal, start, end, group_by, filter, selected)
        owed = []
        if selected_names(info.selected_fields, info.field_name, "outstanding"):
            owed = await kpis.outstanding(wanted.team, db.now())
        return Analytics(
            start=start,
            end=end,
            group_by=group_by,
            groups=[AnalyticsFigures(figures=g) for g in found.groups],
            total=AnalyticsFigures(figures=found.total),
            previous=AnalyticsFigures(figures=found.previous),
            outstanding=[
                OutstandingAmount(
                    currency=o.currency,
                    age=OutstandingAge(o.age),
                    statements=o.statements,
                    amount=_money(o.amount_minor, o.currency),
                )
                for o in owed
            ],
        )

    @strawberry.field(
        description="The merged status graph with the orders in each state now (their ages, "
        "the oldest, the late) and the moves taken over the days `from` to `to` with the "
        "time waited before each. Admins and staff; staff of a team see their team's."
    )
    async def process_map(
        self,
        info: Info,
        start: FromDay,
        end: ToDay,
        filter: TeamFilter = None,
    ) -> ProcessMap:
        principal = require(info, *OPERATORS)
        team = _scoped_team(principal, (filter or AnalyticsFilter()).team)
        try:
            found = await process_map.process_map(info.context.rt.graph, start, end, team, db.now())
        except DomainError as error:
            problem = error.problems[0]
            raise ApiError(problem.code, problem.message, problem.field) from None
        return ProcessMap(
            start=start,
            end=end,
            states=[_state(s) for s in found.states],
            transitions=[_edge(e) for e in found.edges],
            unnamed_paths=[_edge(e) for e in found.unnamed],
        )


@strawberry.type
class AnalyticsSubscription:
    @strawberry.subscription(
        description="The orders in each state, sent when they change: at most once a second."
    )
    async def process_map_changed(
        self,
        info: Info,
        filter: TeamFilter = None,
    ) -> AsyncGenerator[ProcessMapChange, None]:
        principal = require(info, *OPERATORS)
        team = _scoped_team(principal, (filter or AnalyticsFilter()).team)
        graph = info.context.rt.graph
        changed = asyncio.Event()
        async with info.context.rt.bus.subscribe() as messages:

            async def listen() -> None:
                async for message in messages:
                    if message["type"] in ("submitted", "transition") and (
                        team is None or await scope.may_access_order(principal, message["order_id"])
                    ):
                        changed.set()

            listener = asyncio.create_task(listen())
            try:
                while True:
                    await changed.wait()
                    changed.clear()
                    now = db.now()
                    states = await process_map.states_now(graph, team, now)
                    yield ProcessMapChange(
                        at=now, states=[KindCount(kind=s.name, count=s.count) for s in states]
                    )
                    await asyncio.sleep(THROTTLE_SECONDS)
            finally:
                listener.cancel()
