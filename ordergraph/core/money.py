"""Exact money: Decimal amounts in, integer minor units stored, Decimal amounts out."""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow

from ordergraph.core.limits import shown

# ISO 4217 currencies (list one) by the number of decimals of their minor unit. Units
# without a minor unit (gold, SDRs, the test code XTS, XXX) are not currencies a statement
# can be paid in and are left out.
_CODES_BY_EXPONENT = {
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    2: """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL BSD BTN BWP BYN BZD
    CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK
    LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO
    NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS
    SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST
    XCD XCG YER ZAR ZMW ZWG
    """,
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "CLF UYW",
}
_EXPONENTS = {
    code: places for places, codes in _CODES_BY_EXPONENT.items() for code in codes.split()
}
# What each kind of ledger entry does to the amount paid: authorizations, failures and
# refunds under way are recorded but move no money. The settlement stage writes the
# ledger; whoever sums it (the review stage's credit exposure) reads its entries so.
LEDGER_EFFECT = {
    "authorized": 0,
    "failed": 0,
    "captured": 1,
    "collected": 1,
    "matched": 1,
    "refunded": -1,
    "refund_pending": 0,
    "refund_failed": 0,
}
# The largest amount in minor units a BIGINT column holds (on SQLite and PostgreSQL).
MAX_MINOR = 2**63 - 1
# Enough for any amount MAX_MINOR holds, with room for trailing zeros ("12.500").
MAX_AMOUNT_CHARS = 100
# Exact arithmetic for the amounts that pass the checks in to_minor.
_EXACT = Context(prec=MAX_AMOUNT_CHARS * 2, traps=[InvalidOperation, Inexact, Overflow])


def is_iso_currency(code: str) -> bool:
    """Whether ``code`` is an ISO 4217 currency code (upper case, as "EUR")."""
    return code in _EXPONENTS


def currency_exponent(code: str) -> int:
    """Decimal places of the currency's minor unit: 2 for EUR, 0 for JPY, 3 for KWD.

    An unknown code is refused (ValueError) rather than guessed."""
    try:
        return _EXPONENTS[code]
    except KeyError:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code") from None


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
            raise ValueError(f"{shown(str(value))!r} is not a number") from None
    if not amount.is_finite():
        raise ValueError(f"{shown(str(value))} is not a finite number")
    return amount


def to_minor(amount: Decimal, currency: str) -> int:
    """Minor units of ``amount``; an amount that is not a finite number, finer than the
    currency's unit, or too large to store, is refused.

    Computed on the digits themselves: decimal arithmetic would round to 28 digits
    (and overflow on ``1e999999999``) before the check could see it.
    """
    if not amount.is_finite():
        raise ValueError(f"{shown(str(amount))} is not a finite number")
    places = currency_exponent(currency)
    _, digits, power = amount.as_tuple()
    assert isinstance(power, int)
    significant = "".join(map(str, digits)).lstrip("0")
    trailing_zeros = len(significant) - len(significant.rstrip("0"))
    if significant and power + trailing_zeros < -places:
        raise ValueError(
            f"{shown(str(amount))} has more than {places} decimal places for {currency}"
        )
    # Digits before the currency's minor unit: more than MAX_MINOR has cannot be stored.
    if significant and len(significant) + power + places > len(str(MAX_MINOR)):
        raise ValueError(f"{shown(str(amount))} {currency} is too large")
    minor = int(amount.scaleb(places, _EXACT)) if significant else 0
    if abs(minor) > MAX_MINOR:
        raise ValueError(f"{shown(str(amount))} {currency} is too large")
    return minor


def from_minor(minor: int, currency: str) -> Decimal:
    places = currency_exponent(currency)
    return Decimal(minor).scaleb(-places).quantize(Decimal(1).scaleb(-places))


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of ``currency`` (0.01 for EUR, 1 for JPY), to quantize to."""
    return Decimal(1).scaleb(-currency_exponent(currency))
