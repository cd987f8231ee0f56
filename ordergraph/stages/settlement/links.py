"""Signed links for customers without a token: the delivery confirmation page and a
statement's PDF.

A link's token is ``SUBJECT.EXPIRES.SIGNATURE``: an HMAC-SHA256 with ``link_secret`` of
the link's purpose, its subject (an order id, a statement number) and its expiry, valid
``link_valid_days``. With no ``link_secret`` no links are made and none is accepted.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import re

from ordergraph.core import db
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.stages.settlement.config import SettlementConfig

CONFIRM_PATH = "/confirm-delivery"
CONFIRM = "confirm-delivery"
STATEMENT = "statement"
_EXPIRES = re.compile(r"[0-9]{1,12}")
_SUBJECTS = {CONFIRM: re.compile(r"[0-9]{1,10}"), STATEMENT: re.compile(r"[A-Z0-9]+-[0-9-]+")}
_WORDS = {CONFIRM: "confirmation link", STATEMENT: "statement link"}


def _signature(secret: str, purpose: str, payload: str) -> str:
    digest = hmac.new(secret.encode(), f"{purpose}:{payload}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


def signed_token(
    config: SettlementConfig, purpose: str, subject: str, now: datetime.datetime
) -> str:
    expires = int((now + datetime.timedelta(days=config.link_valid_days)).timestamp())
    payload = f"{subject}.{expires}"
    return f"{payload}.{_signature(config.link_secret, purpose, payload)}"


def verify_signed(
    config: SettlementConfig, purpose: str, token: str, now: datetime.datetime | None = None
) -> str:
    """The subject a token names; INVALID_TOKEN when forged, malformed or expired."""
    invalid = DomainError.of(
        ErrorCode.INVALID_TOKEN, f"This {_WORDS[purpose]} is not valid.", "token"
    )
    parts = token.split(".")
    if not config.link_secret or len(parts) != 3:
        raise invalid
    subject, expires, signature = parts
    # ASCII only: int() reads other scripts' digits, compare_digest refuses non-ASCII text.
    if not _SUBJECTS[purpose].fullmatch(subject) or not _EXPIRES.fullmatch(expires):
        raise invalid
    expected = _signature(config.link_secret, purpose, f"{subject}.{expires}")
    if not signature.isascii() or not hmac.compare_digest(signature, expected):
        raise invalid
    if (now or db.now()).timestamp() > int(expires):
        raise DomainError.of(
            ErrorCode.INVALID_TOKEN,
            f"This {_WORDS[purpose]} has expired; sign in or look your order up again.",
            "token",
        )
    return subject


def confirmation_token(
    config: SettlementConfig, order_id: int, now: datetime.datetime | None = None
) -> str | None:
    """The token of an order's confirmation link; None when no ``link_secret`` is set."""
    if not config.link_secret:
        return None
    return signed_token(config, CONFIRM, str(order_id), now or db.now())


def confirmation_link(
    config: SettlementConfig, order_id: int, now: datetime.datetime | None = None
) -> str | None:
    """The link a customer follows to confirm delivery or report a problem (in the
    delivered e-mail); None when no ``link_secret`` is set."""
    token = confirmation_token(config, order_id, now)
    return f"{config.public_url}{CONFIRM_PATH}?token={token}" if token else None


def verify_confirmation(
    config: SettlementConfig, token: str, now: datetime.datetime | None = None
) -> int:
    """The order id a confirmation link's token names (INVALID_TOKEN otherwise)."""
    return int(verify_signed(config, CONFIRM, token, now))


def statement_path(
    config: SettlementConfig, number: str, now: datetime.datetime | None = None
) -> str | None:
    """The path of a link that downloads statement ``number``'s PDF without a bearer
    token (for the tracking page); None when no ``link_secret`` is set."""
    if not config.link_secret:
        return None
    token = signed_token(config, STATEMENT, number, now or db.now())
    return f"/statements/{number}.pdf?token={token}"


def statement_link(
    config: SettlementConfig, number: str, now: datetime.datetime | None = None
) -> str | None:
    """``statement_path`` as a full link, for a message sent elsewhere."""
    path = statement_path(config, number, now)
    return f"{config.public_url}{path}" if path else None
