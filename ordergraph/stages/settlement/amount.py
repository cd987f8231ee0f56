"""The final amount of an order: what was delivered, adjustments, shipping and tax.

All arithmetic is in integer minor units of the order's currency. Rounding happens
once per line, half up (0.5 of a minor unit goes up), in this order:

1. a line's amount is delivered quantity x unit price (exact);
2. adjustments for one line apply to it; adjustments for the whole order are shared
   among the lines in proportion to their amounts, by the largest-remainder method,
   so the shares add up to the adjustment exactly; no line goes below zero;
3. shipping is the configured charge less shipping adjustments, never below zero;
4. tax is computed per line (and on shipping) at the destination country's rate:
   added to the amount when the channel's prices exclude tax, or taken out of it
   (``amount x rate / (100 + rate)``) when they include it.

The total is the sum of the lines' gross amounts; every adjustment is kept with the
plugin (and promotion) it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, Literal

from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.money import from_minor, to_minor
from ordergraph.core.orders import OrderView
from ordergraph.stages.fulfilment.tables import FulfilmentLine
from ordergraph.stages.settlement.config import SettlementConfig

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime

# Standard VAT rates in percent by destination country (ISO 3166 alpha-2). A country
# missing here is charged 0% and the statement says so; ``tax_rates`` in the
# settlement settings and the ``tax_rate`` hook override this table.
STANDARD_RATES: dict[str, Decimal] = {
    country: Decimal(rate)
    for country, rate in {
        "AT": "20", "BE": "21", "BG": "20", "CH": "8.1", "CY": "19", "CZ": "21", "DE": "19",
        "DK": "25", "EE": "24", "ES": "21", "FI": "25.5", "FR": "20", "GB": "20", "GR": "24",
        "HR": "25", "HU": "27", "IE": "23", "IT": "22", "LT": "21", "LU": "17", "LV": "21",
        "MT": "18", "NL": "21", "NO": "25", "PL": "23", "PT": "23", "RO": "21", "SE": "25",
        "SI": "22", "SK": "23",
    }.items()
}  # fmt: skip
SHIPPING = "shipping"


async def delivered_quantities(order: OrderView) -> dict[int, int]:
    """How many units of each order line were delivered: what the statement charges.

    The one place that answers it. Until carriers report deliveries per shipment, a
    shipped unit counts as a delivered one; an order whose work was not recorded
    (no fulfilment stage: staff moved it by hand) was delivered in full.
    """
    rows = await FulfilmentLine.select(FulfilmentLine.line_no, FulfilmentLine.shipped).where(
        FulfilmentLine.order == order.id
    )
    if not rows:
        return {line.line_no: line.quantity for line in order.lines}
    return {row["line_no"]: row["shipped"] for row in rows}


@dataclass(frozen=True)
class ChargeLine:
    """A delivered line as adjustment plugins see it."""

    line_no: int
    sku: str
    name: str
    quantity: int
    unit_price: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Adjustment:
    """What an ``order_adjustments`` hook returns: a signed amount (negative lowers the
    price), for one line (``line_no``), the whole order (``line_no=None``), or shipping
    (``target="shipping"``)."""

    code: str
    label: str
    amount: Decimal
    line_no: int | None = None
    target: Literal["lines", "shipping"] = "lines"
    # Where it came from beyond the plugin, such as a promotion's id.
    reference: str = ""


@dataclass
class _Line:
    line_no: int
    sku: str
    name: str
    quantity: int
    unit_minor: int
    amount_minor: int
    adjustments_minor: int = 0
    rate: Decimal = Decimal(0)
    net_minor: int = 0
    tax_minor: int = 0
    gross_minor: int = 0


@dataclass
class FinalAmount:
    currency: str
    country: str
    prices_include_tax: bool
    lines: list[_Line]
    adjustments: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total_minor(self) -> int:
        return sum(line.gross_minor for line in self.lines)

    def to_snapshot(self) -> dict[str, Any]:
        """Amounts as exact decimal strings in the currency's unit."""
        money = lambda minor: str(from_minor(minor, self.currency))  # noqa: E731
        lines = [
            {
                "kind": "shipping" if line.line_no == 0 else "item",
                "lineNo": line.line_no,
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "unitPrice": money(line.unit_minor),
                "amount": money(line.amount_minor),
                "adjustments": money(line.adjustments_minor),
                "taxRate": str(line.rate),
                "net": money(line.net_minor),
                "tax": money(line.tax_minor),
                "total": money(line.gross_minor),
            }
            for line in self.lines
        ]
        return {
            "currency": self.currency,
            "country": self.country,
            "pricesIncludeTax": self.prices_include_tax,
            "lines": lines,
            "adjustments": self.adjustments,
            "subtotal": money(sum(li.amount_minor for li in self.lines)),
            "adjustmentTotal": money(sum(li.adjustments_minor for li in self.lines)),
            "net": money(sum(li.net_minor for li in self.lines)),
            "tax": money(sum(li.tax_minor for li in self.lines)),
            "total": money(self.total_minor),
            "notes": self.notes,
        }


def share(amount: int, weights: list[int]) -> list[int]:
    """``amount`` split in proportion to ``weights``, in whole units that add up to it
    (largest remainder; ties go to the earlier weight)."""
    total = sum(weights)
    if total == 0 or amount == 0:
        return [0] * len(weights)
    sign = -1 if amount < 0 else 1
    exact = [abs(amount) * w for w in weights]
    parts = [e // total for e in exact]
    left = abs(amount) - sum(parts)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] % total), i))
    for i in by_remainder[:left]:
        parts[i] += 1
    return [sign * p for p in parts]


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


async def tax_rate(rt: Runtime, order: OrderView, config: SettlementConfig) -> tuple[Decimal, str]:
    """(percent, where it came from) for the order's destination."""
    country = str(order.shipping_address.get("country", "")).upper()
    answer = await rt.plugins.call("tax_rate", first_result=True, order=order, country=country)
    if answer.failures:
        failure = answer.failures[0]
        raise DomainError.of(
            ErrorCode.PLUGIN_FAILED, f"{failure.plugin} failed to give a tax rate: {failure.error}"
        )
    if answer.results:
        plugin, rate = answer.results[0]
        return Decimal(rate), plugin
    if country in config.tax_rates:
        return config.tax_rates[country], "settings"
    return STANDARD_RATES.get(country, Decimal(0)), "built-in table"


async def final_amount(
    rt: Runtime, order: OrderView, config: SettlementConfig, delivered: dict[int, int]
) -> FinalAmount:
    """The amount owed for ``order`` given the ``delivered`` quantity of each line."""
    currency = order.currency
    lines = [
        _Line(
            line_no=line.line_no,
            sku=line.sku,
            name=line.name,
            quantity=delivered.get(line.line_no, 0),
            unit_minor=to_minor(line.unit_price, currency),
            amount_minor=delivered.get(line.line_no, 0) * to_minor(line.unit_price, currency),
        )
        for line in order.lines
        if delivered.get(line.line_no, 0) > 0
    ]
    shipping_minor = to_minor(config.shipping_charge, currency) if lines else 0
    result = FinalAmount(
        currency=currency,
        country=str(order.shipping_address.get("country", "")).upper(),
        prices_include_tax=order.channel in config.prices_include_tax,
        lines=lines,
    )
    charge_lines = [
        ChargeLine(li.line_no, li.sku, li.name, li.quantity, from_minor(li.unit_minor, currency),
                   from_minor(li.amount_minor, currency))
        for li in lines
    ]  # fmt: skip
    proposed = await rt.plugins.call(
        "order_adjustments",
        order=order,
        lines=charge_lines,
        shipping=from_minor(shipping_minor, currency),
    )
    for failure in proposed.failures:
        raise DomainError.of(
            ErrorCode.PLUGIN_FAILED,
            f"{failure.plugin} failed to adjust the amount: {failure.error}",
        )
    by_no = {li.line_no: li for li in lines}
    shipping_adjusted = shipping_minor
    for plugin, adjustments in proposed.results:
        for adjustment in adjustments:
            wanted = to_minor(adjustment.amount, currency)
            applied = _apply(adjustment, wanted, lines, by_no, shipping_adjusted)
            if adjustment.target == SHIPPING:
                shipping_adjusted += applied
            result.adjustments.append(
                {
                    "code": adjustment.code,
                    "label": adjustment.label,
                    "source": plugin,
                    "reference": adjustment.reference,
                    "lineNo": adjustment.line_no,
                    "target": adjustment.target,
                    "amount": str(from_minor(applied, currency)),
                    **({"capped": True} if applied != wanted else {}),
                }
            )
    if shipping_minor:
        lines.append(
            _Line(0, "", "Shipping", 1, shipping_minor, shipping_minor,
                  shipping_adjusted - shipping_minor)
        )  # fmt: skip
    rate, rate_source = await tax_rate(rt, order, config)
    if rate == 0 and rate_source == "built-in table":
        result.notes.append(f"No tax rate is known for {result.country or 'an unknown country'}.")
    for line in lines:
        amount = line.amount_minor + line.adjustments_minor
        line.rate = rate
        if result.prices_include_tax:
            line.tax_minor = _round(Decimal(amount) * rate / (100 + rate))
            line.net_minor, line.gross_minor = amount - line.tax_minor, amount
        else:
            line.tax_minor = _round(Decimal(amount) * rate / 100)
            line.net_minor, line.gross_minor = amount, amount + line.tax_minor
    return result


def _apply(
    adjustment: Adjustment,
    wanted: int,
    lines: list[_Line],
    by_no: dict[int, _Line],
    shipping_left: int,
) -> int:
    """Apply one adjustment; return the part applied (a discount is capped at what is left)."""
    if adjustment.target == SHIPPING:
        return max(wanted, -shipping_left)
    if adjustment.line_no is not None:
        line = by_no.get(adjustment.line_no)
        if line is None:
            return 0
        applied = max(wanted, -(line.amount_minor + line.adjustments_minor))
        line.adjustments_minor += applied
        return applied
    left = [li.amount_minor + li.adjustments_minor for li in lines]
    applied = max(wanted, -sum(left))
    for line, part in zip(lines, share(applied, left), strict=True):
        line.adjustments_minor += part
    return applied


async def expected_amount(rt: Runtime, order: OrderView, config: SettlementConfig) -> FinalAmount:
    """The amount the order will come to if it is delivered in full: the price preview."""
    return await final_amount(rt, order, config, {li.line_no: li.quantity for li in order.lines})
