"""Cash on delivery: the courier collects the amount at the door and remits it; the
remittance (a CSV file from the courier, or one payment at a time) is recorded in the
ledger as ``collected``, once per courier reference."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Annotated

import strawberry

from ordergraph.plugin_api import (
    OPERATORS,
    PAYLOAD_ERRORS,
    DomainError,
    ErrorCode,
    Info,
    PluginInfo,
    Problem,
    SchemaExtension,
    UserError,
    hookimpl,
    load_order_statement,
    may_access_order,
    payload_errors,
    record_ledger_entry,
    require,
    user_errors,
)

METHOD = "cash_on_delivery"
COLUMNS = ("order", "amount", "courier_reference")
MAX_ROWS = 10_000


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(category="payment", description="Cash collected by the courier on delivery.")


@hookimpl
def payment_instructions() -> str:
    return "Pay the courier in cash on delivery."


async def _collect(info: Info, order: str, amount: object, reference: str, field: str) -> bool:
    """Record one remitted amount; True when it is new."""
    principal = require(info, *OPERATORS)
    if not reference.strip():
        raise DomainError.of(ErrorCode.REQUIRED, "Give the courier's reference.", field)
    statement = await load_order_statement(order)
    if not await may_access_order(principal, statement.order_id):
        # Another team's order reads as one with no statement: the same answer as none.
        raise DomainError.of(
            ErrorCode.NOT_FOUND, f"There is no statement for {order.strip()} yet.", "order"
        )
    result = await record_ledger_entry(
        info.context.rt,
        statement,
        "collected",
        amount,
        idempotency_key=f"cod:{reference.strip()}",
        method=METHOD,
        principal=principal,
        reference=reference.strip(),
    )
    return result.created


@strawberry.type(description="The answer to recording cash a courier collected.")
class RemittancePayload:
    recorded: int = strawberry.field(default=0, description="Amounts recorded now.")
    already_recorded: int = strawberry.field(
        default=0, description="Amounts recorded before under the same courier reference."
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list,
        description=PAYLOAD_ERRORS,
    )


@strawberry.type
class CashMutation:
    @strawberry.mutation(description="Record cash a courier collected for an order (staff).")
    @payload_errors
    async def record_cash_collected(
        self,
        info: Info,
        order: Annotated[
            str, strawberry.argument(description="The order's number (SO-000013) or id.")
        ],
        amount: Annotated[
            Decimal,
            strawberry.argument(description="The amount collected, in the statement's currency."),
        ],
        courier_reference: Annotated[
            str,
            strawberry.argument(description="The courier's reference: one record per reference."),
        ],
    ) -> RemittancePayload:
        new = await _collect(info, order, amount, courier_reference, "courierReference")
        return RemittancePayload(recorded=int(new), already_recorded=int(not new))

    @strawberry.mutation(
        description="Import a courier's remittance CSV (order, amount, courier_reference); "
        "rows with a problem are reported by row and the others recorded."
    )
    async def import_courier_remittance(
        self,
        info: Info,
        content: Annotated[
            str,
            strawberry.argument(
                description=(
                    "The CSV file's text, with the columns order, amount, "
                    "courier_reference; at most 10,000 rows."
                )
            ),
        ],
    ) -> RemittancePayload:
        require(info, *OPERATORS)
        rows = list(csv.DictReader(io.StringIO(content)))
        missing = [c for c in COLUMNS if rows and c not in rows[0]] or ([] if rows else COLUMNS)
        if missing or len(rows) > MAX_ROWS:
            message = (
                f"The file needs the columns {', '.join(COLUMNS)} and at most {MAX_ROWS} rows."
            )
            return RemittancePayload(
                errors=user_errors(DomainError.of(ErrorCode.INVALID_VALUE, message, "content"))
            )
        out = RemittancePayload()
        problems: list[Problem] = []
        for i, row in enumerate(rows, start=2):
            try:
                new = await _collect(
                    info, row["order"], row["amount"], row["courier_reference"] or "", f"row {i}"
                )
            except DomainError as error:
                problems += [Problem(p.code, f"Row {i}: {p.message}", f"rows[{i}]")
                             for p in error.problems]  # fmt: skip
                continue
            out.recorded += int(new)
            out.already_recorded += int(not new)
        if problems:
            out.errors = user_errors(DomainError(*problems))
        return out


@hookimpl
def graphql_schema() -> SchemaExtension:
    return SchemaExtension(mutation=(CashMutation,))
