"""The limits of what the statistics' filters may hold, from the rollups' columns."""

from __future__ import annotations

from ordergraph.core.limits import TextLimit
from ordergraph.stages.analytics.tables import Rollup

TEAM = TextLimit("The team", Rollup.team.length)
DIMENSION_VALUE = TextLimit("The value", Rollup.value.length)
