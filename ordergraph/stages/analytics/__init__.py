"""Stage 6, analytics: statistics for decisions, and the order flow as a process map.

- ``rollups``: per day, team and dimension, counts, sums and duration histograms,
  derived from each order event in the transaction that appends it (the
  ``events_recorded`` hook; the counts are appended, and folded into the rollups
  after the commit, at most once a second) and rebuilt from the timeline alone;
- ``histogram``: the logarithmic buckets durations are kept in;
- ``kpis``: every figure, defined and read from the rollups (``docs/analytics.md``);
- ``process_map``: the status graph with the orders in each state now and the
  transitions taken in a period.

Records: ``analytics_rollups`` (with ``analytics_rollup_deltas``, the counts not folded
yet) and ``analytics_orders`` (each order's dimensions and where it stands), all
derived, never a second truth. The stage registers like a plugin (``Stage``) and reads
the records of every stage before it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ordergraph.core import db
from ordergraph.core.db import Upsert
from ordergraph.core.orders import OrderEventView, OrderView
from ordergraph.core.plugins import PluginInfo, hookimpl
from ordergraph.stages.analytics.rollups import derive, fold

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime


log = logging.getLogger(__name__)

FOLD_EVERY_SECONDS = 1.0
"""How often at most a process folds the appended counts into the rollups: after a
commit that counted something, once this long has passed since its last fold. Under
load one fold a second per process takes every count made meanwhile; what the last
second of a burst appended waits for the next commit, read meanwhile where it is."""


class Stage:
    """The analytics stage's hook: the rollups kept with the events they count."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._folded_at = -FOLD_EVERY_SECONDS
        self._folding = False

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(category="other", description="Stage 6: analytics.")

    @hookimpl
    async def events_recorded(
        self, events: Sequence[OrderEventView], orders: Mapping[int, OrderView]
    ) -> list[Upsert]:
        written = await derive(events, orders)
        await db.after_commit(self._fold_if_due)
        return written

    async def _fold_if_due(self) -> None:
        if self._folding or time.monotonic() - self._folded_at < FOLD_EVERY_SECONDS:
            return
        self._folding, self._folded_at = True, time.monotonic()
        try:
            # In a context of its own: not among the committing request's statements.
            await asyncio.create_task(_fold(), context=contextvars.Context())
        finally:
            self._folding = False


async def _fold() -> None:
    try:
        await fold()
    except Exception:
        # The counts stay where every read finds them; a later commit folds them.
        log.warning("folding the analytics counts failed", exc_info=True)
