"""Roles, principals and bearer API tokens (stored as SHA-256 hashes)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

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
) -> str:
    """Store a new token and return it; it is shown once and cannot be recovered."""
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
    token = "og_" + secrets.token_urlsafe(32)
    await ApiToken.insert(
        ApiToken(
            name=name,
            token_hash=hash_token(token),
            role=role.value,
            customer=customer_id,
            team=team,
        )
    )
    return token


async def authenticate(token: str) -> Principal | None:
    row = await ApiToken.select().where(ApiToken.token_hash == hash_token(token)).first()
    if row is None:
        return None
    return Principal(
        role=Role(row["role"]),
        name=row["name"],
        token_id=row["id"],
        customer_id=row["customer"],
        team=row["team"],
    )
