"""The limits of what a tracking event may hold, whoever reports it (a carrier, staff).
Lengths are taken from the stage's columns."""

from __future__ import annotations

from ordergraph.core.limits import TextLimit
from ordergraph.stages.tracking.tables import TrackingEventRow

TRACKING_DESCRIPTION = TextLimit("The description", 500)
TRACKING_CODE = TextLimit("The code", TrackingEventRow.code.length)
CITY = TextLimit("The city", TrackingEventRow.city.length)
REGION = TextLimit("The region", TrackingEventRow.region.length)
POSTAL_CODE = TextLimit("The postal code", TrackingEventRow.postal_code.length)
COORDINATE_PLACES = 7
"""Decimal places a latitude or longitude keeps (about a centimetre), so that it fits its column."""
