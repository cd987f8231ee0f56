"""Stage 5, settlement: delivery confirmation, the final amount, statements and the ledger.

The stage is registered like a plugin (``Stage``, added by the runtime): entering
COMPLETED asks for the statement (a job, after commit); its ``before_transition``
pauses confirmation while a delivery problem is open and refuses ``settle`` until the
statement is paid in full; the payment ledger (``payments``) derives SETTLED. Promotions
(``promotions``) and bank reconciliation (``reconciliation``) live here too.

Records (``tables``): ``statements`` and their gap-free ``statement_series``, the
``ledger_entries``, ``delivery_problems``, ``promotions`` and ``promotion_uses``, and
``bank_lines``.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ordergraph.core import jobs
from ordergraph.core.orders import OrderView
from ordergraph.core.periodic import Periodic
from ordergraph.core.plugins import PluginInfo, hookimpl
from ordergraph.core.statusgraph import Transition
from ordergraph.stages.settlement import promotions
from ordergraph.stages.settlement.amount import Adjustment, ChargeLine, delivered_quantities
from ordergraph.stages.settlement.config import SettlementConfig, config_of, parse_config
from ordergraph.stages.settlement.confirmation import confirm_due_deliveries, open_problem
from ordergraph.stages.settlement.links import confirmation_link, statement_link
from ordergraph.stages.settlement.payments import balance_of, derive_settled, request_payment
from ordergraph.stages.settlement.statements import ISSUE_JOB, issue_statement, statement_of

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime

# How often deliveries past their window are looked for (confirm_after_days is in days).
CONFIRM_EVERY = datetime.timedelta(hours=1)

__all__ = [
    "Adjustment",
    "ChargeLine",
    "SettlementConfig",
    "Stage",
    "config_of",
    "confirmation_link",
    "delivered_quantities",
    "statement_link",
]


class Stage:
    """The settlement stage's hooks, bound to one running service."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        # Checked here, at start-up: a wrong value stops the service naming the key.
        self.config = parse_config(rt.settings.settlement)

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(category="other", description="Stage 5: settlement.")

    @hookimpl
    def register_jobs(self) -> dict[str, jobs.Job]:
        rt = self.rt

        async def issue(payload: dict[str, Any]) -> None:
            # A statement of nothing (every line cancelled, all free) is paid already.
            statement = await issue_statement(rt, payload["order_id"])
            await derive_settled(rt, statement)
            await request_payment(rt, statement)

        return {ISSUE_JOB: issue}

    @hookimpl
    def register_periodic(self) -> dict[str, Periodic]:
        rt, config = self.rt, self.config

        async def confirm(now: datetime.datetime) -> None:
            await confirm_due_deliveries(rt, config, now)

        return {
            "settlement.confirm_deliveries": Periodic(
                CONFIRM_EVERY, confirm, "Confirms deliveries past confirm_after_days."
            )
        }

    @hookimpl
    async def order_adjustments(
        self, order: OrderView, lines: list[ChargeLine], shipping: Decimal
    ) -> list[Adjustment]:
        """The promotions that apply (admin-managed rows of the plugins' kinds)."""
        return await promotions.adjustments_for(self.rt, order, lines, shipping)

    @hookimpl
    async def before_transition(self, order: OrderView, transition: Transition) -> str | None:
        if transition.target == "COMPLETED":
            problem = await open_problem(order.id)
            if problem is not None:
                return (
                    f"a delivery problem is open (reported by {problem.reported_by}); "
                    "staff resolve it before the delivery is confirmed"
                )
        if transition.target == "SETTLED":
            statement = await statement_of(order.id)
            if statement is None:
                return f"order {order.number} has no statement yet"
            outstanding = (await balance_of(statement)).outstanding
            if outstanding > 0:
                return (
                    f"statement {statement.number} has {outstanding} {statement.currency} "
                    "outstanding"
                )
        return None

    @hookimpl
    async def apply_transition(self, order: OrderView, transition: Transition) -> None:
        if transition.target == "COMPLETED":
            await jobs.enqueue_job(ISSUE_JOB, {"order_id": order.id})
