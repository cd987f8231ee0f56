"""Stage 2, review: every new or resubmitted order is checked by the configured rules
and approved, rejected with its reasons, or held for a person; an approved order's stock
is reserved.

- ``pipeline``: the review job, which asks the rules and decides, and amending an order;
- ``lookups``: what rules may ask (customers, products, credit exposure), shared and
  asked together across the orders of one batch;
- ``inventory``: stock on hand and reserved, which can never oversell.

Records: the review findings of each order (``review_findings``) and the stock columns
of ``products``. The stage registers like a plugin (``Stage``): its job, and the block
that writes the stock of a batch of transitions in one statement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ordergraph.core.plugins import PluginInfo, hookimpl
from ordergraph.stages.review.inventory import adjusted_together
from ordergraph.stages.review.pipeline import REVIEW_JOB, configured_rules, review_jobs

if TYPE_CHECKING:
    from ordergraph.core.runtime import Job, Runtime


class Stage:
    """The review stage's hooks, bound to one running service."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        rt.review_rules = configured_rules(rt)
        if rt.review_rules:
            rt.entry_jobs.append(REVIEW_JOB)
        rt.batch_scopes.append(adjusted_together)

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(category="other", description="Stage 2: review.")

    @hookimpl
    def register_jobs(self) -> dict[str, Job]:
        return review_jobs(self.rt)
