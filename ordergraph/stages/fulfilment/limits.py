"""The limits of what processing's inputs may hold: teams and their members, carriers and
what staff ship with. Lengths are taken from the stage's columns."""

from __future__ import annotations

from ordergraph.core.limits import TextLimit
from ordergraph.stages.fulfilment.tables import Shipment, TeamMember

TEAM_DESCRIPTION = TextLimit("The description", 2000, multiline=True)
STAFF_NAME = TextLimit("The staff name", TeamMember.staff.length)
ORDER_TYPE = TextLimit("The order type", 32)
CARRIER = TextLimit("The carrier", Shipment.carrier.length)
SERVICE = TextLimit("The service", Shipment.service.length)
TRACKING_NUMBER = TextLimit("The tracking number", Shipment.tracking_number.length)
