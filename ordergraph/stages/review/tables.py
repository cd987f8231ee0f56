"""The review stage's records: the findings of each order's review."""

from __future__ import annotations

from piccolo.columns import JSON, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from ordergraph.core.tables import Now, Order


class ReviewFinding(Table, tablename="review_findings"):
    """One review rule's verdict on one review round of an order."""

    order = ForeignKey(references=Order, null=False, on_delete=OnDelete.restrict, index=True)
    round = Integer()
    rule = Varchar(length=100)
    outcome = Varchar(length=8)
    code = Varchar(length=64)
    message = Text()
    customer_message = Text()
    data = JSON(default={})
    at = Timestamptz(default=Now())
