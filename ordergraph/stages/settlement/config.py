"""The settlement stage's settings: the ``[ordergraph.settlement]`` table of ``ordergraph.toml``."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ordergraph.core.money import parse_amount
from ordergraph.core.plugins import PluginConfigError

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime


@dataclass(frozen=True)
class Seller:
    name: str = "ordergraph shop"
    address: tuple[str, ...] = ()
    vat_id: str = ""
    email: str = ""


@dataclass(frozen=True)
class SettlementConfig:
    """``series_prefix``: statements are numbered ``PREFIX-YEAR-000001``, one series a year.
    ``confirm_after_days``: a delivery nobody reported a problem with is confirmed after
    this many days. ``payment_terms_days``: the due date is this long after issue.
    ``shipping_charge``: charged once per order, in the order's currency.
    ``prices_include_tax``: the channels whose prices already include tax.
    ``tax_rates``: percent by destination country, over the built-in table.
    ``link_secret``: signs delivery confirmation links (none: no links are made).
    ``public_url``: where customers reach the service, for links."""

    series_prefix: str = "ST"
    confirm_after_days: int = 7
    payment_terms_days: int = 14
    shipping_charge: Decimal = Decimal(0)
    prices_include_tax: tuple[str, ...] = ()
    tax_rates: dict[str, Decimal] = field(default_factory=dict)
    link_secret: str = ""
    public_url: str = "http://localhost:8000"
    link_valid_days: int = 30
    seller: Seller = field(default_factory=Seller)
    payment_instructions: str = ""


_KNOWN = (
    "series_prefix",
    "confirm_after_days",
    "payment_terms_days",
    "shipping_charge",
    "prices_include_tax",
    "tax_rates",
    "link_secret",
    "public_url",
    "link_valid_days",
    "seller",
    "payment_instructions",
)


def _fail(key: str, message: str) -> PluginConfigError:
    return PluginConfigError(f"ordergraph.settlement.{key}: {message}")


def _days(table: dict[str, Any], key: str, default: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3650:
        raise _fail(key, f"expected a whole number of days from 0 to 3650 (got {value!r})")
    return value


def _decimal(key: str, value: Any) -> Decimal:
    try:
        amount = parse_amount(str(value) if isinstance(value, float) else value)
    except ValueError as exc:
        raise _fail(key, str(exc)) from None
    if amount < 0:
        raise _fail(key, f"must not be negative (got {value!r})")
    return amount


def parse_config(table: dict[str, Any]) -> SettlementConfig:
    """The checked settings; a wrong value stops start-up naming the key."""
    unknown = sorted(set(table) - set(_KNOWN))
    if unknown:
        raise _fail(unknown[0], f"unknown setting (known: {', '.join(_KNOWN)})")
    prefix = table.get("series_prefix", "ST")
    if not isinstance(prefix, str) or not prefix.isalnum() or not 1 <= len(prefix) <= 12:
        raise _fail("series_prefix", f"expected 1 to 12 letters or digits (got {prefix!r})")
    channels = table.get("prices_include_tax", [])
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise _fail("prices_include_tax", f"expected a list of channel names (got {channels!r})")
    rates = table.get("tax_rates", {})
    if not isinstance(rates, dict):
        raise _fail("tax_rates", "expected a table of country = percent")
    tax_rates = {}
    for country, rate in rates.items():
        if len(country) != 2 or not country.isalpha():
            raise _fail(f"tax_rates.{country}", "expected a two-letter country code")
        tax_rates[country.upper()] = _decimal(f"tax_rates.{country}", rate)
    seller = table.get("seller", {})
    if not isinstance(seller, dict) or set(seller) - {"name", "address", "vat_id", "email"}:
        raise _fail("seller", "expected a table with name, address (a list), vat_id, email")
    texts = {k: table.get(k, "") for k in ("link_secret", "payment_instructions")}
    for key, value in texts.items():
        if not isinstance(value, str):
            raise _fail(key, "expected a string")
    public_url = table.get("public_url", "http://localhost:8000")
    if not isinstance(public_url, str) or not public_url.startswith(("http://", "https://")):
        raise _fail("public_url", f"expected an http(s) URL (got {public_url!r})")
    return SettlementConfig(
        series_prefix=prefix,
        confirm_after_days=_days(table, "confirm_after_days", 7),
        payment_terms_days=_days(table, "payment_terms_days", 14),
        shipping_charge=_decimal("shipping_charge", table.get("shipping_charge", "0")),
        prices_include_tax=tuple(channels),
        tax_rates=tax_rates,
        link_secret=texts["link_secret"],
        public_url=public_url.rstrip("/"),
        link_valid_days=_days(table, "link_valid_days", 30),
        seller=Seller(
            name=str(seller.get("name", "ordergraph shop")),
            address=tuple(str(line) for line in seller.get("address", [])),
            vat_id=str(seller.get("vat_id", "")),
            email=str(seller.get("email", "")),
        ),
        payment_instructions=texts["payment_instructions"],
    )


def config_of(rt: Runtime) -> SettlementConfig:
    """The running service's settlement settings (checked by the stage at start-up)."""
    return rt.plugins.internal["settlement"].module.config
