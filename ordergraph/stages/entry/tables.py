"""The entry stage's records: what channels delivered that did not become an order,
and the webhook deliveries already seen."""

from __future__ import annotations

from piccolo.columns import JSON, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from ordergraph.core.tables import Now, Order


class ImportError_(Table, tablename="import_errors"):
    """Input a channel received but could not turn into an order, kept for an operator.

    Listed through its (status, id) and (channel, id) indexes, declared in migration m0004.
    """

    channel = Varchar(length=32)
    reference = Varchar(length=200)
    status = Varchar(length=16, default="open")
    reasons = JSON(default=[])
    payload = Text()
    attempts = Integer(default=1)
    order = ForeignKey(references=Order, null=True, on_delete=OnDelete.restrict)
    received_at = Timestamptz(default=Now())
    updated_at = Timestamptz(default=Now())


class WebhookDelivery(Table, tablename="webhook_deliveries"):
    """Deliveries already handled (id and body), so a redelivery is answered without work."""

    channel = Varchar(length=32)
    delivery_id = Varchar(length=200)
    body_sha256 = Varchar(length=64, default="")
    received_at = Timestamptz(default=Now())
