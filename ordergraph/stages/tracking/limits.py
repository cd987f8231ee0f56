"""The limits of the tracking stage's inputs: what a tracking event may hold, whoever
reports it (a carrier, staff), and integrators' webhook endpoints. Lengths are taken from
the stage's columns."""

from __future__ import annotations

from ordergraph.core.limits import TextLimit
from ordergraph.stages.tracking.tables import TrackingEventRow, WebhookEndpoint

TRACKING_DESCRIPTION = TextLimit("The description", 500)
TRACKING_CODE = TextLimit("The code", TrackingEventRow.code.length)
CITY = TextLimit("The city", TrackingEventRow.city.length)
REGION = TextLimit("The region", TrackingEventRow.region.length)
POSTAL_CODE = TextLimit("The postal code", TrackingEventRow.postal_code.length)
COORDINATE_PLACES = 7
"""Decimal places a latitude or longitude keeps (about a centimetre), so that it fits its column."""
WEBHOOK_URL = TextLimit("The URL", WebhookEndpoint.url.length)
WEBHOOK_DESCRIPTION = TextLimit("The description", WebhookEndpoint.description.length)
MAX_WEBHOOK_ENDPOINTS = 100
"""Webhook endpoints registered at most (deleted ones do not count): every list is capped."""
MAX_WEBHOOK_EVENT_TYPES = 50
"""Event types one webhook endpoint may name."""
