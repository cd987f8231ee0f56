"""Domain errors, their stable codes, and the one place database errors become domain errors."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import StrEnum

import asyncpg


class ErrorCode(StrEnum):
    """Stable codes a client can switch on. New codes may be added; none is renamed."""

    REQUIRED = "REQUIRED"
    INVALID_VALUE = "INVALID_VALUE"
    UNKNOWN_SKU = "UNKNOWN_SKU"
    INACTIVE_SKU = "INACTIVE_SKU"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    INVALID_PRICE = "INVALID_PRICE"
    INVALID_CURRENCY = "INVALID_CURRENCY"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    UNKNOWN_CUSTOMER = "UNKNOWN_CUSTOMER"
    CUSTOMER_BLOCKED = "CUSTOMER_BLOCKED"
    DUPLICATE = "DUPLICATE"
    NOT_FOUND = "NOT_FOUND"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    VERSION_CONFLICT = "VERSION_CONFLICT"
    FORBIDDEN = "FORBIDDEN"
    VETOED = "VETOED"
    PLUGIN_FAILED = "PLUGIN_FAILED"
    RULE_FAILED = "RULE_FAILED"
    INSUFFICIENT_STOCK = "INSUFFICIENT_STOCK"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    BUSY = "BUSY"
    TOO_LONG = "TOO_LONG"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    INVALID_CHARACTER = "INVALID_CHARACTER"
    INVALID_CURSOR = "INVALID_CURSOR"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    TOO_LARGE = "TOO_LARGE"
    # A subscription sent over HTTP: subscriptions go over a websocket.
    USE_WEBSOCKET = "USE_WEBSOCKET"
    # Stage 3: processing.
    ALREADY_DONE = "ALREADY_DONE"
    OUT_OF_ORDER = "OUT_OF_ORDER"
    QUANTITY_EXCEEDED = "QUANTITY_EXCEEDED"
    UNKNOWN_CARRIER = "UNKNOWN_CARRIER"
    OTHER_TEAM = "OTHER_TEAM"
    AT_CAPACITY = "AT_CAPACITY"
    MEMBER_AWAY = "MEMBER_AWAY"
    WRONG_ORDER_TYPE = "WRONG_ORDER_TYPE"
    NOT_ASSIGNED = "NOT_ASSIGNED"
    # Stage 5: settlement.
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    NOTHING_TO_REFUND = "NOTHING_TO_REFUND"
    REFUND_FAILED = "REFUND_FAILED"
    PROBLEM_REPORTED = "PROBLEM_REPORTED"
    INVALID_TOKEN = "INVALID_TOKEN"
    COUPON_USED_UP = "COUPON_USED_UP"
    COUPON_LIMIT_REACHED = "COUPON_LIMIT_REACHED"
    RATE_LIMITED = "RATE_LIMITED"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input or an action, phrased for the person who sent it."""

    code: ErrorCode
    message: str
    field: str | None = None


class DomainError(Exception):
    """An expected failure; callers turn it into data (``errors { field code message }``)."""

    def __init__(self, *problems: Problem) -> None:
        if not problems:
            raise ValueError("a DomainError needs at least one problem")
        self.problems = list(problems)
        # The plugin that raised it, when one did (set by the core).
        self.source: str | None = None
        super().__init__("; ".join(p.message for p in problems))

    @classmethod
    def of(cls, code: ErrorCode, message: str, field: str | None = None) -> DomainError:
        return cls(Problem(code=code, message=message, field=field))

    @property
    def code(self) -> ErrorCode:
        return self.problems[0].code


def is_unique_violation(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.UniqueViolationError):
        return True
    return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE constraint failed" in str(exc)


def is_busy(exc: BaseException) -> bool:
    """SQLite gave up waiting for the write lock, or PostgreSQL hit a serialization failure."""
    if isinstance(exc, asyncpg.SerializationError | asyncpg.DeadlockDetectedError):
        return True
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def translate(exc: BaseException, *, duplicate: Problem | None = None) -> DomainError | None:
    """The domain error for a database error, or None when it is not an expected one.

    Values the database cannot hold (too long, out of range, NUL) are refused by the
    checks in ``limits.py`` before any query; the data errors here are the last line.
    """
    if is_unique_violation(exc):
        return DomainError(duplicate or Problem(ErrorCode.DUPLICATE, "This record already exists."))
    if is_busy(exc):
        return DomainError.of(ErrorCode.BUSY, "The database is busy; try again.")
    if isinstance(exc, asyncpg.StringDataRightTruncationError):
        return DomainError.of(ErrorCode.TOO_LONG, "A value is longer than its field holds.")
    if isinstance(exc, asyncpg.CharacterNotInRepertoireError):
        return DomainError.of(ErrorCode.INVALID_CHARACTER, "A value contains a NUL character.")
    if isinstance(exc, asyncpg.DataError):
        return DomainError.of(ErrorCode.OUT_OF_RANGE, "A value is out of the range it may have.")
    return None
