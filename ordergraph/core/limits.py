"""The limits of every text and number a caller sends, declared once.

The core checks them before anything reaches the database, so SQLite and PostgreSQL
accept and refuse the same inputs: a string longer than its column (which SQLite would
store and PostgreSQL refuses), a NUL character (which PostgreSQL cannot store), an id
beyond what a SERIAL column holds. Lengths are taken from the columns in ``tables.py``.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from ordergraph.core.errors import ErrorCode, Problem
from ordergraph.core.tables import ApiToken, Customer, Order, OrderEvent, Product

MAX_ID = 2**31 - 1
"""The largest id a row can have: ids are PostgreSQL SERIAL (32-bit) columns."""
MAX_STOCK = 2**31 - 1
"""The most stock a product can have on hand: an INTEGER column."""
MAX_FILTER_VALUES = 100
"""The most values a list filter may name (each is a query parameter)."""
MAX_PAGE = 100
"""The most items one page of a list holds: ``first`` is from 1 to this."""
DEFAULT_PAGE = 20
"""The items a page holds when the caller does not say (``first`` omitted)."""

# ASCII digits only: str.isdigit() and int() also take other scripts' digits ("²", "٣").
_ID_DIGITS = re.compile(r"[0-9]{1,10}")


def parse_id(value: str) -> int | None:
    """The row id ``value`` names, or None when no row can have it: anything but ASCII
    digits, or a number beyond what an id column holds. Every id a caller sends (GraphQL
    arguments, HTTP path segments, webhook fields) is read here."""
    if _ID_DIGITS.fullmatch(value) and 0 < int(value) <= MAX_ID:
        return int(value)
    return None


# Control characters (NUL among them) and lone surrogates, which no database stores as text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# The same, but line breaks and tabs are allowed: for notes.
_CONTROL_EXCEPT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class TextLimit:
    """A text input: at most ``max_length`` characters and no control characters
    (``multiline`` allows line breaks and tabs)."""

    what: str
    max_length: int
    multiline: bool = False

    def problem(self, value: str, field: str | None) -> Problem | None:
        """What is wrong with ``value``, or None."""
        if len(value) > self.max_length:
            return Problem(
                ErrorCode.TOO_LONG,
                f"{self.what} is longer than {self.max_length} characters.",
                field,
            )
        control = _CONTROL_EXCEPT_LINES if self.multiline else _CONTROL
        if control.search(value):
            return Problem(
                ErrorCode.INVALID_CHARACTER,
                f"{self.what} contains a control character (such as NUL), which is not allowed.",
                field,
            )
        return None

    def check(self, value: str, field: str | None, problems: list[Problem]) -> bool:
        """Append the problem with ``value`` to ``problems``; True when there was none."""
        problem = self.problem(value, field)
        if problem is not None:
            problems.append(problem)
        return problem is None


EXTERNAL_ID = TextLimit("The external id", Order.external_id.length)
CHANNEL = TextLimit("The channel", Order.channel.length)
STATUS = TextLimit("The status", Order.status.length)
NOTE = TextLimit("The note", 2000, multiline=True)
# Why a transition was fired (a cancellation's reason, a reviewer's note): on the timeline.
REASON = TextLimit("The reason", 2000, multiline=True)
# What a customer says is wrong with a delivery, and how staff resolved it.
DELIVERY_PROBLEM = TextLimit("The description", 2000, multiline=True)
RESOLUTION = TextLimit("The resolution", 2000, multiline=True)
# The shipping address's name may become the name of a new customer.
ADDRESS_FIELD = TextLimit("An address field", Customer.name.length)
EMAIL = TextLimit("The e-mail address", Customer.email.length)
CUSTOMER_NAME = TextLimit("The customer's name", Customer.name.length)
SKU = TextLimit("The SKU", Product.sku.length)
PRODUCT_NAME = TextLimit("The product name", Product.name.length)
BIN_LOCATION = TextLimit("The bin location", Product.bin_location.length)
SEARCH = TextLimit("The search", 200)
# A token's name is the actor of its events, "role:name"; "integrator" is the longest role.
TOKEN_NAME = TextLimit("The token's name", OrderEvent.actor.length - len("integrator:"))
TEAM = TextLimit("The team", ApiToken.team.length)


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def is_email(value: str) -> bool:
    """Whether ``value`` looks like an e-mail address (something@somewhere.tld)."""
    return bool(_EMAIL.match(value))


def utc_instant(
    value: datetime.datetime | None, field: str, problems: list[Problem]
) -> datetime.datetime | None:
    """``value`` in UTC (without an offset, it is taken as UTC). An instant outside the
    years 1 to 9999 in UTC, which no column holds, appends an ``OUT_OF_RANGE`` problem to
    ``problems`` and gives None."""
    if value is None or value.tzinfo is None:
        return value and value.replace(tzinfo=datetime.UTC)
    try:
        return value.astimezone(datetime.UTC)
    except OverflowError:
        problems.append(
            Problem(
                ErrorCode.OUT_OF_RANGE,
                f"{value.isoformat()} is outside the years 1 to 9999 in UTC.",
                field,
            )
        )
        return None


def page_problem(first: int, field: str = "first") -> Problem | None:
    """What is wrong with a page size, or None: ``first`` is from 1 to ``MAX_PAGE``.
    A size outside is refused rather than guessed (0 is not "the default", -1 not 1)."""
    if 1 <= first <= MAX_PAGE:
        return None
    return Problem(
        ErrorCode.OUT_OF_RANGE, f"{field} must be from 1 to {MAX_PAGE} (got {first}).", field
    )


def shown(text: str, limit: int = 40) -> str:
    """``text`` as a message quotes it: a value too long to repeat is cut short."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` uses of one key (a client, an order, a customer) in
    ``window_seconds``; counted by ``ordergraph.core.rate_limits``."""

    name: str
    what: str
    count: int
    window_seconds: float


# Customers' lookups of an order without a token (/track, trackOrder): guessing is slow.
LOOKUPS_PER_CLIENT = RateLimit("lookups-per-client", "lookups", 20, 600)
LOOKUPS_PER_ORDER = RateLimit("lookups-per-order", "lookups", 10, 600)
# Delivery problems reported on one order (through its confirmation link or the API).
PROBLEM_REPORTS_PER_ORDER = RateLimit("problem-reports", "problem reports", 5, 3600)
# Coupon codes one customer tries: a guessed code is worth money.
COUPON_TRIES_PER_CUSTOMER = RateLimit("coupon-tries", "coupon codes tried", 10, 600)
