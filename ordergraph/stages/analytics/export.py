"""Every KPI as a table of rows, for CSV and the terminal (``ordergraph report``, the
``/analytics/KPI.csv`` download): the figures the API serves, one row per group (and
per stage, state, reason, currency or product where the KPI has several)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence

from ordergraph.core.money import from_minor
from ordergraph.stages.analytics.kpis import CYCLES, FLOW_COUNTS, Duration, Figures

Row = list[object]


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def _duration(d: Duration) -> Row:
    return [d.count, _seconds(d.p50), _seconds(d.p90), _seconds(d.mean)]


def _flow(f: Figures) -> list[Row]:
    return [[f.key, *(f.count(name) for name in ("received", *FLOW_COUNTS))]]


def _cycle_times(f: Figures) -> list[Row]:
    return [[f.key, name, *_duration(f.cycle(name))] for name in CYCLES]


def _time_in_state(f: Figures) -> list[Row]:
    return [[f.key, d.name, *_duration(d)] for d in f.time_in_states()]


def _review(f: Figures) -> list[Row]:
    r = f.review()
    return [[f.key, r.decided, *(_ratio(r.rate(n)) for n in (r.approved, r.rejected, r.held))]]


def _reasons(f: Figures) -> list[Row]:
    return [[f.key, *reason] for reason in f.reasons()]


def _fulfilment(f: Figures) -> list[Row]:
    done = f.fulfilment()
    tasks = done.tasks_completed
    return [
        [
            f.key,
            done.shipped_with_due,
            done.shipped_on_time,
            _ratio(done.on_time_ship_rate),
            *(tasks.get(kind, 0) for kind in ("pick", "pack", "shipment")),
            done.short_picks,
            done.units_to_pick,
            done.units_picked,
            _ratio(done.item_fill_rate),
        ]
    ]


def _delivery(f: Figures) -> list[Row]:
    d = f.delivery()
    return [
        [
            f.key,
            d.delivered_with_promise,
            d.delivered_on_time,
            _ratio(d.on_time_delivery_rate),
            d.delivered_in_full_on_time,
            _ratio(d.otif_rate),
            d.delivered,
            d.delivered_first_attempt,
            _ratio(d.first_attempt_delivery_rate),
            d.delivered_with_estimate,
            d.delivered_as_first_estimated,
            _ratio(d.eta_accuracy),
            sum(d.exceptions.values()),
            sum(d.alerts_opened.values()),
        ]
    ]


def _money(f: Figures) -> list[Row]:
    rows: list[Row] = []
    for m in f.money():
        aov = m.average_order_value
        rows.append(
            [
                f.key,
                m.currency,
                m.statements,
                from_minor(m.revenue, m.currency),
                "" if aov is None else from_minor(aov, m.currency),
                from_minor(m.gross, m.currency),
                from_minor(m.discount, m.currency),
                _ratio(m.discount_share),
                _ratio(m.payment_success_rate),
            ]
        )
    return rows


def _customers(f: Figures) -> list[Row]:
    c = f.customers()
    return [[f.key, c.new, c.returning, _ratio(c.returning_share)]]


def _products(f: Figures) -> list[Row]:
    return [
        [f.key, p.sku, p.units, currency, from_minor(minor, currency)]
        for p in f.top_products()
        for currency, minor in sorted(p.revenue.items())
    ]


DURATION_COLUMNS = ["count", "p50_seconds", "p90_seconds", "mean_seconds"]
KPIS: dict[str, tuple[list[str], Callable[[Figures], list[Row]]]] = {
    "flow": (["group", "received", *FLOW_COUNTS], _flow),
    "cycle-times": (["group", "stage", *DURATION_COLUMNS], _cycle_times),
    "time-in-state": (["group", "state", *DURATION_COLUMNS], _time_in_state),
    "review": (["group", "decided", "approve_rate", "reject_rate", "hold_rate"], _review),
    "reasons": (["group", "outcome", "rule", "code", "count"], _reasons),
    "fulfilment": (
        ["group", "shipped_with_due", "shipped_on_time", "on_time_ship_rate", "picks",
         "packs", "shipments", "short_picks", "units_to_pick", "units_picked",
         "item_fill_rate"],
        _fulfilment,
    ),
    "delivery": (
        ["group", "delivered_with_promise", "delivered_on_time", "on_time_delivery_rate",
         "delivered_in_full_on_time", "otif_rate", "delivered", "delivered_first_attempt",
         "first_attempt_delivery_rate", "delivered_with_estimate",
         "delivered_as_first_estimated", "eta_accuracy", "exceptions", "alerts_opened"],
        _delivery,
    ),
    "money": (
        ["group", "currency", "statements", "revenue", "average_order_value", "gross",
         "discount", "discount_share", "payment_success_rate"],
        _money,
    ),
    "customers": (
        ["group", "new_customer_orders", "returning_customer_orders", "returning_share"],
        _customers,
    ),
    "products": (["group", "sku", "units", "currency", "revenue"], _products),
}  # fmt: skip
"""Each KPI's columns and its rows for one group (docs/analytics.md defines them)."""


def table(kpi: str, groups: Sequence[Figures]) -> tuple[list[str], list[Row]]:
    """The KPI's columns and its rows for every group."""
    columns, rows_of = KPIS[kpi]
    return columns, [row for group in groups for row in rows_of(group)]


def to_csv(columns: list[str], rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()


def to_text(columns: list[str], rows: list[Row]) -> str:
    """An aligned table for a terminal."""
    cells = [columns, *[[str(value) for value in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines) + "\n"
