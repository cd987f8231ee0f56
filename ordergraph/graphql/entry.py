"""GraphQL for the import inbox: what channels could not import, and replaying it."""

from __future__ import annotations

import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from ordergraph.core.auth import Role
from ordergraph.core.errors import DomainError
from ordergraph.core.limits import CHANNEL
from ordergraph.graphql.context import OPERATORS, Info, checked, require, row_id
from ordergraph.graphql.queries import DEFAULT_PAGE, keyset_page
from ordergraph.graphql.types import Connection, Order, UserError, payload_errors, user_errors
from ordergraph.stages.entry import inbox
from ordergraph.stages.entry.limits import IMPORT_STATUS
from ordergraph.stages.entry.tables import ImportError_ as ImportErrorRow


@strawberry.type(name="ImportError")
class ImportErrorType:
    id: strawberry.ID
    channel: str
    reference: str = strawberry.field(description="The channel's id of the delivery or order.")
    status: str = strawberry.field(description="open, or imported once a replay succeeded.")
    reasons: list[UserError]
    attempts: int
    order_id: strawberry.ID | None
    received_at: datetime.datetime
    updated_at: datetime.datetime
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
            status=row["status"],
            reasons=[UserError(**reason) for reason in inbox.reasons_of(row)],
            attempts=row["attempts"],
            order_id=strawberry.ID(str(row["order"])) if row["order"] else None,
            received_at=row["received_at"],
            updated_at=row["updated_at"],
            raw_payload=row["payload"],
        )


@strawberry.type
class ReplayImportPayload:
    import_error: ImportErrorType | None = None
    order: Order | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class InboxQuery:
    @strawberry.field(description="Channel input that was not imported, newest first.")
    async def import_errors(
        self,
        info: Info,
        status: str | None = "open",
        channel: str | None = None,
        first: int | None = DEFAULT_PAGE,
        after: str | None = None,
    ) -> Connection[ImportErrorType]:
        require(info, *OPERATORS)
        clauses = []
        if status:
            clauses.append(ImportErrorRow.status == checked(IMPORT_STATUS, status, "status"))
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
    async def replay_import(self, info: Info, id: strawberry.ID) -> ReplayImportPayload:
        principal = require(info, *OPERATORS)
        entry_id = row_id(id, "import error")
        result = await inbox.replay(info.context.rt, entry_id, principal)
        row = await ImportErrorRow.select().where(ImportErrorRow.id == entry_id).first()
        return ReplayImportPayload(
            import_error=ImportErrorType.from_row(row),
            order=Order.from_view(result.order) if result.order else None,
            errors=user_errors(DomainError(*result.problems)) if result.problems else [],
        )
