"""Roles, principals and bearer API tokens (stored as SHA-256 hashes)."""

from __future__ import annotations

import datetime
import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ordergraph.core import db
from ordergraph.core.limits import MAX_ID, TEAM, TOKEN_NAME
from ordergraph.core.tables import ApiToken, Customer


class Role(StrEnum):
    ADMIN = "admin"
    STAFF = "staff"
    CUSTOMER = "customer"
    INTEGRATOR = "integrator"
    # The core itself (jobs, review pipeline); never given to a token.
    SYSTEM = "system"


TOKEN_ROLES = (Role.ADMIN, Role.STAFF, Role.CUSTOMER, Role.INTEGRATOR)


@dataclass(frozen=True)
class Principal:
    role: Role
    name: str
    token_id: int | None = None
    customer_id: int | None = None
    team: str | None = None

    @property
    def actor(self) -> str:
        """How this principal appears in an order's timeline."""
        return f"{self.role}:{self.name}"

    def may_see_customer(self, customer_id: int) -> bool:
        """Whether an order of ``customer_id`` may be this principal's: the part of the
        scope rule (``core.scope``) that needs no query."""
        if self.role == Role.CUSTOMER:
            return customer_id == self.customer_id
        return self.role in (Role.ADMIN, Role.STAFF, Role.SYSTEM, Role.INTEGRATOR)


SYSTEM = Principal(role=Role.SYSTEM, name="ordergraph")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    role: Role | str,
    *,
    name: str | None = None,
    customer_id: int | None = None,
    team: str | None = None,
    expires_at: datetime.datetime | None = None,
) -> str:
    """Store a new token and return it; it is shown once and cannot be recovered.

    From ``expires_at`` on (an aware instant; None: never) the token no longer
    authenticates.
    """
    role = Role(role)
    if role not in TOKEN_ROLES:
        raise ValueError(f"role must be one of {', '.join(TOKEN_ROLES)}")
    if role == Role.CUSTOMER:
        if customer_id is None:
            raise ValueError("a customer token needs --customer ID")
        if not 0 < customer_id <= MAX_ID or not await Customer.exists().where(
            Customer.id == customer_id
        ):
            raise ValueError(f"no customer with id {customer_id}")
    elif customer_id is not None:
        raise ValueError("only customer tokens are bound to a customer")
    name = name or role.value
    problem = TOKEN_NAME.problem(name, "name") or (TEAM.problem(team, "team") if team else None)
    if problem is not None:
        raise ValueError(problem.message)
    if expires_at is not None and expires_at <= db.now():
        raise ValueError(f"the expiry {expires_at.isoformat()} is not in the future")
    token = "og_" + secrets.token_urlsafe(32)
    await ApiToken.insert(
        ApiToken(
            name=name,
            token_hash=hash_token(token),
            role=role.value,
            customer=customer_id,
            team=team,
            expires_at=expires_at,
        )
    )
    return token


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown of a token: never the token or its hash."""

    id: int
    name: str
    role: str
    team: str | None
    customer_id: int | None
    created_at: datetime.datetime
    expires_at: datetime.datetime | None
    revoked_at: datetime.datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TokenInfo:
        return cls(
            id=row["id"],
            name=row["name"],
            role=row["role"],
            team=row["team"],
            customer_id=row["customer"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            revoked_at=row["revoked_at"],
        )

    def state(self, now: datetime.datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


_TOKEN_INFO = (
    ApiToken.id,
    ApiToken.name,
    ApiToken.role,
    ApiToken.team,
    ApiToken.customer,
    ApiToken.created_at,
    ApiToken.expires_at,
    ApiToken.revoked_at,
)


def _live(now: datetime.datetime) -> Any:
    """The tokens that authenticate at ``now``: not revoked, not expired."""
    return ApiToken.revoked_at.is_null() & (
        ApiToken.expires_at.is_null() | (ApiToken.expires_at > now)
    )


async def list_tokens(*, include_dead: bool = False) -> list[TokenInfo]:
    """Every token that still authenticates (with ``include_dead``, revoked and expired
    ones too), oldest first."""
    query = ApiToken.select(*_TOKEN_INFO).order_by(ApiToken.id)
    if not include_dead:
        query = query.where(_live(db.now()))
    return [TokenInfo.from_row(row) for row in await query]


async def revoke_token(token_id: int) -> TokenInfo:
    """Revoke a token: from now on it no longer authenticates."""
    if 0 < token_id <= MAX_ID:
        revoked = (
            await ApiToken.update({ApiToken.revoked_at: db.now()})
            .where((ApiToken.id == token_id) & ApiToken.revoked_at.is_null())
            .returning(*_TOKEN_INFO)
        )
        if revoked:
            return TokenInfo.from_row(revoked[0])
        if await ApiToken.exists().where(ApiToken.id == token_id):
            raise ValueError(f"token {token_id} was already revoked")
    raise ValueError(f"no token with id {token_id}")


async def authenticate(token: str) -> Principal | None:
    """The principal of a token that is known, not revoked and not expired; else None.

    Every request asks, so concurrent requests share one read (``db.select_in``), sent
    after they arrived: a token revoked before a request came is refused.
    """
    rows = await db.select_in("api_tokens", "token_hash", [hash_token(token)])
    if not rows:
        return None
    row = rows[0]
    if row["revoked_at"] is not None or (
        row["expires_at"] is not None and row["expires_at"] <= db.now()
    ):
        return None
    return Principal(
        role=Role(row["role"]),
        name=row["name"],
        token_id=row["id"],
        customer_id=row["customer"],
        team=row["team"],
    )
