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
    due, on_time = f.n("on_time", "ship_due"), f.n("on_time", "shipped")
    to_pick, picked = f.n("fill", "to_pick"), f.n("fill", "picked")
    tasks = f.of_family("task")
    return [
        [
            f.key,
            due,
            on_time,
            _ratio(on_time / due if due else None),
            *(tasks.get(kind, 0) for kind in ("pick", "pack", "shipment", "short_pick")),
            to_pick,
            picked,
            _ratio(picked / to_pick if to_pick else None),
        ]
    ]


def _delivery(f: Figures) -> list[Row]:
    promised, on_time = f.n("on_time", "delivery_promised"), f.n("on_time", "delivered")
    in_full = f.n("on_time", "in_full")
    delivered, first_attempt = f.n("delivery", "delivered"), f.n("delivery", "first_attempt")
    estimated, met = f.n("eta", "estimated"), f.n("eta", "met")
    return [
        [
            f.key,
            promised,
            on_time,
            _ratio(on_time / promised if promised else None),
            in_full,
            _ratio(in_full / promised if promised else None),
            delivered,
            first_attempt,
            _ratio(first_attempt / delivered if delivered else None),
            estimated,
            met,
            _ratio(met / estimated if estimated else None),
            sum(f.of_family("exception").values()),
            sum(f.of_family("alert_open").values()),
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
