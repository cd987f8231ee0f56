"""GraphQL for promotions: the kinds, the promotions admins manage, coupons, the preview."""

from __future__ import annotations

import datetime
import json
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from ordergraph.core.auth import Role
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.graphql.context import READERS, Info, require, row_id
from ordergraph.graphql.types import (
    PAYLOAD_ERRORS,
    OrderIdArgument,
    PluginSetting,
    UserError,
    _jsonable,
    order_key,
    payload_errors,
)
from ordergraph.stages.settlement import promotions
from ordergraph.stages.settlement.tables import Promotion as PromotionRow

MAX_LISTED = 200


@strawberry.type(description="A kind of promotion a plugin offers.")
class PromotionKind:
    name: str = strawberry.field(description="Its name, which PromotionInput.kind takes.")
    description: str = strawberry.field(description="What it does.")
    arguments: list[PluginSetting] = strawberry.field(description="The arguments it takes.")


@strawberry.type(description="A promotion admins manage (admins and staff read them).")
class Promotion:
    id: strawberry.ID = strawberry.field(description="The promotion's id.")
    name: str = strawberry.field(description="Its name, as statements show it.")
    kind: str = strawberry.field(
        description=(
            "Its kind (PromotionKind.name); plugins add kinds, so it is not a closed list."
        )
    )
    arguments: JSON = strawberry.field(description="The kind's arguments, as JSON.")
    priority: int = strawberry.field(description="Higher applies first.")
    combinable: bool = strawberry.field(description="False: applies alone or not at all.")
    starts_at: datetime.datetime | None = strawberry.field(
        description="When it starts (ISO 8601, UTC); null: from its creation."
    )
    ends_at: datetime.datetime | None = strawberry.field(
        description="When it ends (ISO 8601, UTC); null: never."
    )
    retired_at: datetime.datetime | None = strawberry.field(
        description="When it was retired (ISO 8601, UTC); null while offered."
    )
    coupon_code: str | None = strawberry.field(
        description="The code customers redeem; null: it applies without one."
    )
    usage_limit: int | None = strawberry.field(
        description="The most orders it applies to in all; null: no limit."
    )
    per_customer_limit: int | None = strawberry.field(
        description="The most orders of one customer it applies to; null: no limit."
    )
    uses: int = strawberry.field(description="Orders it applied to so far.")
    created_by: str = strawberry.field(description="Who created it, as role:name.")

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


@strawberry.input(description="A promotion to create.")
class PromotionInput:
    name: str = strawberry.field(description="Its name, at most 200 characters.")
    kind: str = strawberry.field(
        description=("A kind an enabled plugin offers (promotionKinds; INVALID_VALUE otherwise).")
    )
    arguments: JSON = strawberry.field(description="The kind's typed arguments.")
    priority: int = strawberry.field(default=0, description="Higher applies first.")
    combinable: bool = strawberry.field(
        default=True, description="False: it applies alone or not at all."
    )
    starts_at: datetime.datetime | None = strawberry.field(
        default=None, description="When it starts; null: now."
    )
    ends_at: datetime.datetime | None = strawberry.field(
        default=None, description="When it ends; null: never."
    )
    coupon_code: str | None = strawberry.field(
        default=None,
        description=(
            "A code customers redeem (at most 64 characters, unique); null: it applies without one."
        ),
    )
    usage_limit: int | None = strawberry.field(
        default=None, description="The most orders it applies to in all; null: no limit."
    )
    per_customer_limit: int | None = strawberry.field(
        default=None, description="The most orders of one customer; null: no limit."
    )


@strawberry.type(description="The answer to a change of a promotion.")
class PromotionPayload:
    promotion: Promotion | None = strawberry.field(
        default=None,
        description=(
            "The promotion after the change; null when errors is not empty and for customers."
        ),
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description=PAYLOAD_ERRORS,
    )


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
    async def create_promotion(
        self,
        info: Info,
        input: Annotated[PromotionInput, strawberry.argument(description="The promotion.")],
    ) -> PromotionPayload:
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
        id: Annotated[
            strawberry.ID, strawberry.argument(description="The promotion's id (Promotion.id).")
        ],
        starts_at: Annotated[
            datetime.datetime | None, strawberry.argument(description="When it starts; null: now.")
        ],
        ends_at: Annotated[
            datetime.datetime | None, strawberry.argument(description="When it ends; null: never.")
        ],
    ) -> PromotionPayload:
        require(info, Role.ADMIN)
        row = await promotions.schedule_promotion(row_id(id, "promotion"), starts_at, ends_at)
        return PromotionPayload(promotion=Promotion.from_row(row))

    @strawberry.mutation(description="Stop offering a promotion; placed orders keep it (admins).")
    @payload_errors
    async def retire_promotion(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID, strawberry.argument(description="The promotion's id (Promotion.id).")
        ],
    ) -> PromotionPayload:
        require(info, Role.ADMIN)
        row = await promotions.retire_promotion(row_id(id, "promotion"))
        return PromotionPayload(promotion=Promotion.from_row(row))

    @strawberry.mutation(description="Use a coupon code on an order, within its limits.")
    @payload_errors
    async def redeem_coupon(
        self,
        info: Info,
        order_id: OrderIdArgument,
        code: Annotated[
            str,
            strawberry.argument(
                description=(
                    "The coupon code (NOT_FOUND, COUPON_USED_UP, COUPON_LIMIT_REACHED; "
                    "RATE_LIMITED after 10 tries in 10 minutes)."
                )
            ),
        ],
    ) -> PromotionPayload:
        principal = require(info, *READERS)
        row = await promotions.redeem_coupon(
            info.context.rt, order_key(order_id, "orderId"), code, principal
        )
        if principal.role == Role.CUSTOMER:
            return PromotionPayload()
        return PromotionPayload(promotion=Promotion.from_row(row))
