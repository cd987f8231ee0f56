"""Stage 6, analytics: statistics for decisions, and the order flow as a process map.

- ``rollups``: per day, team and dimension, counts, sums and duration histograms,
  derived from each order event in the transaction that appends it (the
  ``events_recorded`` hook; the counts are appended, and folded into the rollups a
  second later) and rebuilt from the timeline alone;
- ``histogram``: the logarithmic buckets durations are kept in;
- ``kpis``: every figure, defined and read from the rollups (``docs/analytics.md``);
- ``process_map``: the status graph with the orders in each state now and the
  transitions taken in a period.

Records: ``analytics_rollups`` (with ``analytics_rollup_deltas``, the counts not folded
yet) and ``analytics_orders`` (each order's dimensions and where it stands), all
derived, never a second truth. The stage registers like a
plugin (``Stage``) and reads the records of every stage before it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
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

FOLD_AFTER_SECONDS = 1.0
"""How long after a commit that counted something its counts are folded into the
rollups: under load, one fold a second per process takes every count made meanwhile."""


class Stage:
    """The analytics stage's hook: the rollups kept with the events they count."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._fold_at: asyncio.TimerHandle | None = None
        self._folding: set[asyncio.Task[None]] = set()

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(category="other", description="Stage 6: analytics.")

    @hookimpl
    async def events_recorded(
        self, events: Sequence[OrderEventView], orders: Mapping[int, OrderView]
    ) -> list[Upsert]:
        written = await derive(events, orders)
        await db.after_commit(self._fold_soon)
        return written

    async def _fold_soon(self) -> None:
        if self._fold_at is None:
            loop = asyncio.get_running_loop()
            self._fold_at = loop.call_later(FOLD_AFTER_SECONDS, self._start_fold)

    def _start_fold(self) -> None:
        self._fold_at = None
        # Outside the context of the request that scheduled it (its statement count).
        task = asyncio.get_running_loop().create_task(_fold(), context=contextvars.Context())
        self._folding.add(task)
        task.add_done_callback(self._folding.discard)


async def _fold() -> None:
    try:
        await fold()
    except Exception:
        # The counts stay where every read finds them; the next commit folds them.
        log.info("folding the analytics counts failed", exc_info=True)
