"""Exact money: Decimal amounts in, integer minor units stored, Decimal amounts out."""

from __future__ import annotations

import re
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow

# ISO 4217 currencies whose minor unit is not 1/100.
_EXPONENTS = {
    "BHD": 3, "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "IQD": 3, "ISK": 0, "JOD": 3,
    "JPY": 0, "KMF": 0, "KRW": 0, "KWD": 3, "LYD": 3, "OMR": 3, "PYG": 0, "RWF": 0,
    "TND": 3, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
}  # fmt: skip
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# The largest amount in minor units a BIGINT column holds (on SQLite and PostgreSQL).
MAX_MINOR = 2**63 - 1
# Enough for any amount MAX_MINOR holds, with room for trailing zeros ("12.500").
MAX_AMOUNT_CHARS = 100
# Exact arithmetic for the amounts that pass the checks in to_minor.
_EXACT = Context(prec=MAX_AMOUNT_CHARS * 2, traps=[InvalidOperation, Inexact, Overflow])


def is_currency(code: str) -> bool:
    return bool(_CURRENCY.match(code or ""))


def is_iso_currency(code: str) -> bool:
    """Whether ``code`` is an ISO 4217 currency code ("EUR")."""
    return is_currency(code)


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency, 2)


def parse_amount(value: object) -> Decimal:
    """A Decimal from a string, int or Decimal; floats are refused because they are inexact."""
    if isinstance(value, float | bool):
        raise ValueError("amounts must be given as strings or decimals, not floats")
    if isinstance(value, Decimal):
        amount = value
    else:
        text = str(value).strip()
        if len(text) > MAX_AMOUNT_CHARS:
            raise ValueError(f"an amount has at most {MAX_AMOUNT_CHARS} characters")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
    if not amount.is_finite():
        raise ValueError(f"{value} is not a finite number")
    return amount


def to_minor(amount: Decimal, currency: str) -> int:
    """Minor units of ``amount``; an amount that is not a finite number, finer than the
    currency's unit, or too large to store, is refused.

    Computed on the digits themselves: decimal arithmetic would round to 28 digits
    (and overflow on ``1e999999999``) before the check could see it.
    """
    if not amount.is_finite():
        raise ValueError(f"{amount} is not a finite number")
    places = exponent(currency)
    _, digits, power = amount.as_tuple()
    assert isinstance(power, int)
    significant = "".join(map(str, digits)).lstrip("0")
    trailing_zeros = len(significant) - len(significant.rstrip("0"))
    if significant and power + trailing_zeros < -places:
        raise ValueError(f"{amount} has more than {places} decimal places for {currency}")
    # Digits before the currency's minor unit: more than MAX_MINOR has cannot be stored.
    if significant and len(significant) + power + places > len(str(MAX_MINOR)):
        raise ValueError(f"{amount} {currency} is too large")
    minor = int(amount.scaleb(places, _EXACT)) if significant else 0
    if abs(minor) > MAX_MINOR:
        raise ValueError(f"{amount} {currency} is too large")
    return minor


def from_minor(minor: int, currency: str) -> Decimal:
    places = exponent(currency)
    return Decimal(minor).scaleb(-places).quantize(Decimal(1).scaleb(-places))


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of ``currency`` (0.01 for EUR, 1 for JPY), to quantize to."""
    return Decimal(1).scaleb(-exponent(currency))
