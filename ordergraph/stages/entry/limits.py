"""The limits of the entry stage's inputs that the kernel does not declare (an order's
own are in ``core.limits``). Lengths are taken from the stage's columns."""

from __future__ import annotations

from ordergraph.core.limits import TextLimit
from ordergraph.stages.entry.tables import ImportError_

IMPORT_STATUS = TextLimit("The status", ImportError_.status.length)
