"""Stage 6, analytics: statistics for decisions, and the order flow as a process map.

- ``rollups``: per day, team and dimension, counts, sums and duration histograms,
  derived from each order event in the transaction that appends it (the
  ``events_recorded`` hook) and rebuilt from the timeline alone;
- ``histogram``: the logarithmic buckets durations are kept in;
- ``kpis``: every figure, defined and read from the rollups (``docs/analytics.md``);
- ``process_map``: the status graph with the orders in each state now and the
  transitions taken in a period.

Records: ``analytics_rollups`` and ``analytics_orders`` (each order's dimensions and
where it stands), both derived, never a second truth. The stage registers like a
plugin (``Stage``) and reads the records of every stage before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ordergraph.core.db import Upsert
from ordergraph.core.orders import OrderEventView, OrderView
from ordergraph.core.plugins import PluginInfo, hookimpl
from ordergraph.stages.analytics.rollups import derive

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime


class Stage:
    """The analytics stage's hook: the rollups kept with the events they count."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(category="other", description="Stage 6: analytics.")

    @hookimpl
    async def events_recorded(
        self, events: Sequence[OrderEventView], orders: Mapping[int, OrderView]
    ) -> list[Upsert]:
        return await derive(events, orders)
