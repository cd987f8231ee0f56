"""GraphQL for the import inbox: what channels could not import, and replaying it."""

from __future__ import annotations

import datetime
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from ordergraph.core.auth import Role
from ordergraph.core.errors import DomainError
from ordergraph.core.limits import CHANNEL, DEFAULT_PAGE
from ordergraph.graphql.context import OPERATORS, Info, checked, require, row_id
from ordergraph.graphql.queries import keyset_page
from ordergraph.graphql.types import (
    PAYLOAD_ERRORS,
    Connection,
    Order,
    PageAfter,
    PageSize,
    UserError,
    order_global_id,
    payload_errors,
    stored_enum,
    user_errors,
)
from ordergraph.stages.entry import inbox
from ordergraph.stages.entry.tables import ImportError_ as ImportErrorRow

ImportStatus = stored_enum(
    "ImportStatus",
    "Whether channel input that could not be imported still waits for someone.",
    {
        "open": "Not imported: fix the cause (a product, a customer, the channel's data) "
        "and replay it.",
        "imported": "A replay imported it (orderId).",
    },
)


@strawberry.type(
    name="ImportError",
    description=(
        "Channel input that could not be imported as an order, kept for staff to fix and replay."
    ),
)
class ImportErrorType:
    id: strawberry.ID = strawberry.field(description="Its id; replayImport takes it.")
    channel: str = strawberry.field(
        description="The channel it came through (csv, shopify, woocommerce...)."
    )
    reference: str = strawberry.field(description="The channel's id of the delivery or order.")
    status: ImportStatus = strawberry.field(description="Whether it still waits.")
    reasons: list[UserError] = strawberry.field(
        description="Every problem found, each with its field and code."
    )
    attempts: int = strawberry.field(description="How many times it was tried, the first included.")
    order_id: strawberry.ID | None = strawberry.field(
        description="The order a replay created (Order.id); null until then."
    )
    received_at: datetime.datetime = strawberry.field(
        description="When the channel delivered it (ISO 8601, UTC)."
    )
    updated_at: datetime.datetime = strawberry.field(
        description="When it was last tried (ISO 8601, UTC)."
    )
    raw_payload: strawberry.Private[str]

    @strawberry.field(description="The payload as received (admins only; null for others).")
    def payload(self, info: Info) -> JSON | None:
        principal = require(info)
        return self.raw_payload if principal.role == Role.ADMIN else None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ImportErrorType:
        return cls(
            id=strawberry.ID(str(row["id"])),
            channel=row["channel"],
            reference=row["reference"],
            status=ImportStatus(row["status"]),
            reasons=[UserError(**reason) for reason in inbox.reasons_of(row)],
            attempts=row["attempts"],
            order_id=order_global_id(row["order"]) if row["order"] else None,
            received_at=row["received_at"],
            updated_at=row["updated_at"],
            raw_payload=row["payload"],
        )


@strawberry.type(description="The answer to replayImport.")
class ReplayImportPayload:
    import_error: ImportErrorType | None = strawberry.field(
        default=None, description="The entry after the replay."
    )
    order: Order | None = strawberry.field(
        default=None, description="The order it created; null when it still has problems."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description=PAYLOAD_ERRORS,
    )


@strawberry.type
class InboxQuery:
    @strawberry.field(description="Channel input that was not imported, newest first.")
    async def import_errors(
        self,
        info: Info,
        status: Annotated[
            ImportStatus | None,
            strawberry.argument(
                description="Only entries in this state (default OPEN); null: every entry."
            ),
        ] = ImportStatus.OPEN,
        channel: Annotated[
            str | None, strawberry.argument(description="Only this channel's entries.")
        ] = None,
        first: PageSize = DEFAULT_PAGE,
        after: PageAfter = None,
    ) -> Connection[ImportErrorType]:
        require(info, *OPERATORS)
        clauses = []
        if status:
            clauses.append(ImportErrorRow.status == status.value)
        if channel:
            clauses.append(ImportErrorRow.channel == checked(CHANNEL, channel, "channel"))
        return await keyset_page(
            "import",
            ImportErrorRow,
            clauses,
            first,
            after,
            ImportErrorType.from_row,
            newest_first=True,
        )


@strawberry.type
class InboxMutation:
    @strawberry.mutation(description="Try an import again after fixing its cause.")
    @payload_errors
    async def replay_import(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID,
            strawberry.argument(description="The import error's id (ImportError.id)."),
        ],
    ) -> ReplayImportPayload:
        principal = require(info, *OPERATORS)
        entry_id = row_id(id, "import error")
        result = await inbox.replay(info.context.rt, entry_id, principal)
        row = await ImportErrorRow.select().where(ImportErrorRow.id == entry_id).first()
        return ReplayImportPayload(
            import_error=ImportErrorType.from_row(row),
            order=Order.from_view(result.order) if result.order else None,
            errors=user_errors(DomainError(*result.problems)) if result.problems else [],
        )
