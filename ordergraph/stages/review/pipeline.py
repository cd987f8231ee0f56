"""Stage 2: the review pipeline that runs the configured rules and decides an order.

Entering the graph's initial state (submission, resubmission) enqueues a
``review_order`` job in the same transaction; the job runner then calls
``review_orders`` below with the orders of the review jobs it started together. It
reads them in one statement, asks every configured rule about each (their lookups
shared, ``lookups.shared_lookups``, and asked together, ``lookups.lookups_together``)
and fires ``start_review`` and each decision (``approve``, ``hold`` or ``reject``) in
one transaction, with the findings.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from ordergraph.core import db, jobs, scope
from ordergraph.core.auth import SYSTEM, Principal
from ordergraph.core.batching import Batched
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.orders import OrderDraft, OrderView, load_order, load_orders_with, validate
from ordergraph.core.plugins import PluginConfigError
from ordergraph.core.tables import Customer, Order, OrderLine, Product
from ordergraph.core.transitions import Move, transition_order, transition_orders
from ordergraph.stages.review.lookups import lookups_together, shared_lookups
from ordergraph.stages.review.tables import ReviewFinding

if TYPE_CHECKING:
    from piccolo.table import Table

    from ordergraph.core.runtime import Runtime

log = logging.getLogger(__name__)

REVIEW_JOB = "review_order"
START = "start_review"
IN_REVIEW = "IN_REVIEW"

Outcome = Literal["pass", "fail", "hold"]
MANUAL_CHECK = "Your order needs a manual check by our team."
# What a customer reads of a finding its rule gave no customer wording: the staff
# message may carry numbers (exposure, limits, stock) that are not the customer's to read.
CUSTOMER_WORDING = {
    "pass": "This check passed.",
    "fail": "We cannot accept this order as it is; please contact us.",
    "hold": MANUAL_CHECK,
}


@dataclass(frozen=True)
class Finding:
    """One rule's verdict: ``message`` for staff, ``customer_message`` for the customer."""

    outcome: Outcome
    code: str
    message: str
    customer_message: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def in_customer_words(self) -> str:
        """What the customer reads: the rule's wording, else a plain one for the outcome."""
        return self.customer_message or CUSTOMER_WORDING[self.outcome]


def configured_rules(rt: Runtime) -> list[str]:
    """The rules to run, in order: ``[ordergraph] review_rules``, or every enabled rule
    in the order of the config file."""
    implementers = rt.plugins.implementers("review_order")
    if rt.settings.review_rules is not None:
        for name in rt.settings.review_rules:
            if name not in implementers:
                raise PluginConfigError(
                    f"ordergraph.review_rules: {name} is not an enabled review rule "
                    f"(enabled: {', '.join(implementers) or 'none'})"
                )
        return list(rt.settings.review_rules)
    in_config = [name for name in rt.settings.plugins if name in implementers]
    return in_config + [name for name in implementers if name not in in_config]


def rule_failed(error: str) -> Finding:
    """The finding of a rule that crashed, timed out or answered nonsense: a person decides."""
    return Finding(
        outcome="hold",
        code=ErrorCode.RULE_FAILED.value,
        message=f"The rule failed: {error}",
        customer_message=MANUAL_CHECK,
    )


def _findings(results: list[tuple[str, Any]]) -> list[tuple[str, Finding]]:
    out = []
    for rule, value in results:
        values = value if isinstance(value, list | tuple) else [value]
        if all(isinstance(finding, Finding) for finding in values):
            out += [(rule, finding) for finding in values]
        else:
            out.append((rule, rule_failed(f"it returned {value!r}, not Findings")))
    return out


def decide(findings: list[tuple[str, Finding]]) -> str:
    outcomes = {finding.outcome for _, finding in findings}
    if "fail" in outcomes:
        return "reject"
    if "hold" in outcomes:
        return "hold"
    return "approve"


def _reason(findings: list[tuple[str, Finding]], decision: str) -> str | None:
    wanted = {"reject": "fail", "hold": "hold"}.get(decision)
    messages = [f.in_customer_words for _, f in findings if f.outcome == wanted]
    return " ".join(messages) or None


async def review_order(rt: Runtime, order_id: int) -> OrderView | None:
    """Run the rules on one order and move it to APPROVED, ON_HOLD or REJECTED.

    An order still in the initial state is reviewed as IN_REVIEW and ``start_review``
    is fired with the decision. Safe to run twice: an order that is no longer waiting
    for review is left alone, and a concurrent change wins on the version check (the
    decision and its findings are then not written).
    """
    loaded = await _load_for_review([order_id])
    if order_id not in loaded:
        return None
    order = loaded[order_id].order
    verdict = await _judge(rt, loaded[order_id])
    if verdict is None:
        return order
    findings, decision = verdict.findings, verdict.decision
    try:
        return await _fire_decision(rt, verdict)
    except DomainError as error:
        if decision != "approve":
            raise
        if error.source is not None and error.code != ErrorCode.PLUGIN_FAILED:
            # A plugin refused the approval while it was written (stock ran out meanwhile).
            fallback, outcome = "reject", "fail"
        elif error.code in (ErrorCode.PLUGIN_FAILED, ErrorCode.VETOED):
            # A plugin crashed or vetoed while approving: a person decides, never approval.
            fallback, outcome = "hold", "hold"
        else:
            raise
        findings = findings + [
            (
                error.source or "core",
                # A problem's message is worded for whoever made the request: a customer too.
                Finding(
                    outcome,
                    p.code.value,
                    p.message,
                    customer_message=p.message if outcome == "fail" else MANUAL_CHECK,
                ),
            )
            for p in error.problems
        ]
        return await _fire_decision(rt, replace(verdict, findings=findings, decision=fallback))


async def review_orders(rt: Runtime, order_ids: list[int]) -> list[BaseException | None]:
    """Review orders that came in together: one read for all, the rules on each, and one
    transaction for every decision (``transition_orders``). When that transaction
    cannot be written as a whole (a concurrent change, stock that ran out, a plugin that
    refused), each order is reviewed on its own, as ``review_order`` does, which knows
    what to do in each case. For each order, None or the error of its review."""
    if len(order_ids) > 1:
        try:
            loaded = await _load_for_review(order_ids)
            with lookups_together():
                verdicts = await asyncio.gather(*(_judge(rt, each) for each in loaded.values()))
            await _fire_decisions(rt, [verdict for verdict in verdicts if verdict is not None])
            return [None] * len(order_ids)
        except Exception as error:
            log.debug("reviewing %s orders together failed (%s): one by one", len(order_ids), error)
    outcomes: list[BaseException | None] = []
    for order_id in order_ids:
        try:
            await review_order(rt, order_id)
        except Exception as error:
            outcomes.append(error)
        else:
            outcomes.append(None)
    return outcomes


@dataclass(frozen=True)
class _Loaded:
    """An order as read for its review, with what the rules look up first."""

    order: OrderView
    round: int
    customers: list[dict[str, Any]]
    products: list[dict[str, Any]]


@dataclass(frozen=True)
class _Verdict:
    """What the rules found and the decision it makes, for an order as read."""

    order: OrderView
    via: tuple[str, ...]
    round: int
    findings: list[tuple[str, Finding]]
    decision: str


async def _judge(rt: Runtime, loaded: _Loaded) -> _Verdict | None:
    """Ask the rules about an order waiting for review; None for any other order."""
    order = loaded.order
    via = (START,) if order.status == rt.graph.initial else ()
    reviewed = replace(order, status=IN_REVIEW) if via else order
    if reviewed.status != IN_REVIEW:
        return None
    with shared_lookups(customers=loaded.customers, products=loaded.products):
        checks = await rt.plugins.call("review_order", order=reviewed, only=rt.review_rules)
    findings = _findings(checks.results)
    findings += [(failure.plugin, rule_failed(failure.error)) for failure in checks.failures]
    return _Verdict(order, via, loaded.round, findings, decide(findings))


def _columns(alias: str, table: type[Table]) -> list[str]:
    name = table._meta.tablename
    return [
        f'{alias}."{column._meta.db_column_name}" AS "{name}.{column._meta.db_column_name}"'
        for column in table._meta.columns
    ]


def _rows_of(table: type[Table], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The distinct rows of ``table`` among the joined rows (columns named by ``_columns``)."""
    prefix = table._meta.tablename + "."
    found = {}
    for row in rows:
        if row[prefix + "id"] is not None:
            found[row[prefix + "id"]] = {
                key.removeprefix(prefix): value
                for key, value in row.items()
                if key.startswith(prefix)
            }
    return list(found.values())


async def _load_for_review(order_ids: list[int]) -> dict[int, _Loaded]:
    """In one statement: the orders and their lines, the number of each one's review
    round, and the customers and products that rules look up first (``shared_lookups``)."""
    found = await load_orders_with(
        order_ids,
        'COALESCE((SELECT MAX(f.round) FROM review_findings f WHERE f."order" = o.id), 0) + 1 '
        'AS "review.round"',
        *_columns("c", Customer),
        *_columns("p", Product),
        join="JOIN customers c ON c.id = o.customer LEFT JOIN products p ON p.sku = l.sku",
    )
    return {
        order_id: _Loaded(
            order, rows[0]["review.round"], _rows_of(Customer, rows), _rows_of(Product, rows)
        )
        for order_id, (order, rows) in found.items()
    }


async def _fire_decision(rt: Runtime, verdict: _Verdict) -> OrderView:
    """Fire the decision on the order as read (after ``via``); the round's findings
    commit with it."""
    return await transition_order(
        rt,
        verdict.order,
        verdict.decision,
        SYSTEM,
        via=verdict.via,
        reason=_reason(verdict.findings, verdict.decision),
        data={"round": verdict.round},
        within=lambda order: _write_findings([verdict]),
    )


async def _fire_decisions(rt: Runtime, verdicts: list[_Verdict]) -> None:
    """``_fire_decision`` for several orders in one transaction, all or none."""
    if not verdicts:
        return
    moves = [
        Move(
            v.order,
            v.decision,
            v.via,
            reason=_reason(v.findings, v.decision),
            data={"round": v.round},
        )
        for v in verdicts
    ]
    await transition_orders(rt, moves, SYSTEM, within=lambda orders: _write_findings(verdicts))


async def _write_findings(verdicts: list[_Verdict]) -> None:
    """The rounds' findings, in one statement, inside the deciding transaction."""
    await db.insert(
        ReviewFinding,
        [
            {
                "order": v.order.id,
                "round": v.round,
                "rule": rule,
                "outcome": f.outcome,
                "code": f.code,
                "message": f.message,
                "customer_message": f.in_customer_words,
                "data": json.dumps(f.data, default=str),
            }
            for v in verdicts
            for rule, f in v.findings
        ],
    )


def review_jobs(rt: Runtime) -> dict[str, jobs.Job]:
    async def review(payloads: list[dict[str, Any]]) -> list[BaseException | None]:
        outcomes = await review_orders(rt, [payload["order_id"] for payload in payloads])
        # A change that came first has decided the order, or will send it back to review.
        return [
            None
            if isinstance(outcome, DomainError) and outcome.code == ErrorCode.VERSION_CONFLICT
            else outcome
            for outcome in outcomes
        ]

    return {REVIEW_JOB: Batched(review)}


async def amend_order(
    rt: Runtime, order_id: int, draft: OrderDraft, principal: Principal
) -> OrderView:
    """Replace a REJECTED order's contents and send it back to review (``resubmit``).

    The channel, external id and customer stay the order's own; the new contents are
    validated like a submission and written in the transaction of the transition.
    """
    order = await load_order(order_id)
    if order is None or not await scope.may_access_order(
        principal, order_id, customer_id=order.customer_id
    ):
        raise DomainError.of(ErrorCode.NOT_FOUND, f"There is no order {order_id}.", "id")
    draft = replace(
        draft,
        channel=order.channel,
        external_id=order.external_id,
        customer_id=order.customer_id,
        customer_email=None,
    )
    valid = await validate(rt, draft, principal)

    async def write_contents(current: OrderView) -> None:
        await OrderLine.delete().where(OrderLine.order == current.id)
        await OrderLine.insert(*(OrderLine(order=current.id, **line) for line in valid.lines))
        await Order.update(
            {
                Order.currency: valid.currency,
                Order.subtotal_minor: valid.subtotal_minor,
                Order.total_minor: valid.subtotal_minor,
                Order.shipping_address: json.dumps(draft.shipping_address),
                Order.type: draft.type,
                Order.priority: draft.priority,
                Order.note: draft.note or "",
            }
        ).where(Order.id == current.id)

    await transition_order(
        rt, order.id, "resubmit", principal, reason="amended", within=write_contents
    )
    amended = await load_order(order.id)
    assert amended is not None
    return amended
