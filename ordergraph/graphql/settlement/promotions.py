"""GraphQL for promotions: the kinds, the promotions admins manage, coupons, the preview."""

from __future__ import annotations

import datetime
import json
from typing import Any

import strawberry
from strawberry.scalars import JSON

from ordergraph.core.auth import Role
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.graphql.context import READERS, Info, require, row_id
from ordergraph.graphql.types import (
    PluginSetting,
    UserError,
    _jsonable,
    payload_errors,
)
from ordergraph.stages.settlement import promotions
from ordergraph.stages.settlement.tables import Promotion as PromotionRow

MAX_LISTED = 200


@strawberry.type
class PromotionKind:
    name: str
    description: str
    arguments: list[PluginSetting]


@strawberry.type
class Promotion:
    id: strawberry.ID
    name: str
    kind: str
    arguments: JSON
    priority: int = strawberry.field(description="Higher applies first.")
    combinable: bool = strawberry.field(description="False: applies alone or not at all.")
    starts_at: datetime.datetime | None
    ends_at: datetime.datetime | None
    retired_at: datetime.datetime | None
    coupon_code: str | None
    usage_limit: int | None
    per_customer_limit: int | None
    uses: int
    created_by: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Promotion:
        arguments = row["arguments"]
        return cls(
            id=strawberry.ID(str(row["id"])),
            name=row["name"],
            kind=row["kind"],
            arguments=json.loads(arguments) if isinstance(arguments, str) else arguments,
            priority=row["priority"],
            combinable=row["combinable"],
            starts_at=row["starts_at"],
            ends_at=row["ends_at"],
            retired_at=row["retired_at"],
            coupon_code=row["coupon_code"],
            usage_limit=row["usage_limit"],
            per_customer_limit=row["per_customer_limit"],
            uses=row["uses"],
            created_by=row["created_by"],
        )


@strawberry.input
class PromotionInput:
    name: str
    kind: str
    arguments: JSON = strawberry.field(description="The kind's typed arguments.")
    priority: int = 0
    combinable: bool = True
    starts_at: datetime.datetime | None = None
    ends_at: datetime.datetime | None = None
    coupon_code: str | None = None
    usage_limit: int | None = None
    per_customer_limit: int | None = None


@strawberry.type
class PromotionPayload:
    promotion: Promotion | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class PromotionQuery:
    @strawberry.field(description="The kinds of promotion the installed plugins offer.")
    def promotion_kinds(self, info: Info) -> list[PromotionKind]:
        require(info, Role.ADMIN, Role.STAFF)
        return [
            PromotionKind(
                name=k.name,
                description=k.description,
                arguments=[
                    PluginSetting(
                        name=s.name,
                        type=s.type_name,
                        required=s.required,
                        secret=False,
                        description=s.description,
                        default=_jsonable(s.default),
                    )
                    for s in k.arguments
                ],
            )
            for k in promotions.kinds(info.context.rt).values()
        ]

    @strawberry.field(description="Promotions, highest priority first (retired ones too).")
    async def promotions(self, info: Info) -> list[Promotion]:
        require(info, Role.ADMIN, Role.STAFF)
        rows = (
            await PromotionRow.select()
            .order_by(PromotionRow.priority, ascending=False)
            .order_by(PromotionRow.id)
            .limit(MAX_LISTED)
        )
        return [Promotion.from_row(r) for r in rows]


@strawberry.type
class PromotionMutation:
    @strawberry.mutation(description="Create a promotion; it runs from startsAt (admins).")
    @payload_errors
    async def create_promotion(self, info: Info, input: PromotionInput) -> PromotionPayload:
        principal = require(info, Role.ADMIN)
        if not isinstance(input.arguments, dict):
            raise DomainError.of(
                ErrorCode.INVALID_VALUE, "Give the arguments as an object.", "arguments"
            )
        row = await promotions.create_promotion(
            info.context.rt,
            promotions.PromotionData(
                name=input.name,
                kind=input.kind,
                arguments=input.arguments,
                priority=input.priority,
                combinable=input.combinable,
                starts_at=input.starts_at,
                ends_at=input.ends_at,
                coupon_code=input.coupon_code,
                usage_limit=input.usage_limit,
                per_customer_limit=input.per_customer_limit,
            ),
            principal,
        )
        return PromotionPayload(promotion=Promotion.from_row(row))

    @strawberry.mutation(description="Change when a promotion runs (admins).")
    @payload_errors
    async def schedule_promotion(
        self,
        info: Info,
        id: strawberry.ID,
        starts_at: datetime.datetime | None,
        ends_at: datetime.datetime | None,
    ) -> PromotionPayload:
        require(info, Role.ADMIN)
        row = await promotions.schedule_promotion(row_id(id, "promotion"), starts_at, ends_at)
        return PromotionPayload(promotion=Promotion.from_row(row))

    @strawberry.mutation(description="Stop offering a promotion; placed orders keep it (admins).")
    @payload_errors
    async def retire_promotion(self, info: Info, id: strawberry.ID) -> PromotionPayload:
        require(info, Role.ADMIN)
        row = await promotions.retire_promotion(row_id(id, "promotion"))
        return PromotionPayload(promotion=Promotion.from_row(row))

    @strawberry.mutation(description="Use a coupon code on an order, within its limits.")
    @payload_errors
    async def redeem_coupon(
        self, info: Info, order_id: strawberry.ID, code: str
    ) -> PromotionPayload:
        principal = require(info, *READERS)
        row = await promotions.redeem_coupon(
            info.context.rt, row_id(order_id, "order", field="orderId"), code, principal
        )
        if principal.role == Role.CUSTOMER:
            return PromotionPayload()
        return PromotionPayload(promotion=Promotion.from_row(row))
