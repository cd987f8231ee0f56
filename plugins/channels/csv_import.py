"""The CSV channel: orders from spreadsheet files, on the command line or uploaded over HTTP.

One row is one order line. The rows of one order share its ``external_id`` and agree on
the order's customer, address and currency (a blank cell takes the value of the other
rows). Every row's problems are reported with its row number and column; valid orders
are created, rejected ones go to the import inbox, and importing a file again creates
no duplicates. docs/channels.md has the column mapping.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ordergraph.plugin_api import (
    BodyTooLarge,
    DomainError,
    ErrorCode,
    LineDraft,
    OrderDraft,
    PluginInfo,
    Principal,
    Problem,
    Role,
    Runtime,
    ServiceSettings,
    capped_request,
    find_order,
    hookimpl,
    ingest,
    open_runtime,
    principal_for,
    record_import_error,
    runtime_of,
    validate_order_draft,
)

CHANNEL = "csv"
CLI_PRINCIPAL = Principal(role=Role.INTEGRATOR, name="csv-cli")
UPLOADERS = (Role.ADMIN, Role.INTEGRATOR)
UPLOAD_PATH = "/channels/csv/upload"

# CSV column -> the order field it fills (the names the core's problems use).
ORDER_COLUMNS = {
    "customer_email": "customerEmail",
    "customer_name": "customerName",
    "currency": "currency",
    "ship_name": "shippingAddress.name",
    "ship_line1": "shippingAddress.line1",
    "ship_line2": "shippingAddress.line2",
    "ship_city": "shippingAddress.city",
    "ship_postal_code": "shippingAddress.postalCode",
    "ship_country": "shippingAddress.country",
    "ship_phone": "shippingAddress.phone",
    "type": "type",
    "priority": "priority",
    "note": "note",
}
LINE_COLUMNS = {"sku": "sku", "quantity": "quantity", "unit_price": "unitPrice"}
REQUIRED_COLUMNS = ("external_id", "sku", "quantity")
COLUMNS = ("external_id", *ORDER_COLUMNS, *LINE_COLUMNS)
_COLUMN_OF_FIELD = {"externalId": "external_id"} | {f: c for c, f in ORDER_COLUMNS.items()}
_COLUMN_OF_LINE_FIELD = {f: c for c, f in LINE_COLUMNS.items()}
_LINE_FIELD = re.compile(r"lines\[(\d+)\]\.(\w+)")
_CHANNEL_NAME = re.compile(r"[a-z0-9_-]{1,32}")
# Cells beyond the header's columns, kept with the row so a replay reports them too.
_EXTRA = "_extra_cells"


class CsvFileError(ValueError):
    """The file as a whole cannot be read (encoding, header); nothing was imported."""


@dataclass(frozen=True)
class RowProblem:
    """One problem, located in the file: row 1 is the header, so data starts at row 2."""

    row: int
    column: str | None
    code: str
    message: str
    external_id: str = ""

    def as_problem(self) -> Problem:
        return Problem(ErrorCode(self.code), f"Row {self.row}: {self.message}", self.column)


@dataclass
class CsvOrder:
    """The rows of one order, as (row number, cells by column) pairs."""

    external_id: str
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    @property
    def row_numbers(self) -> list[int]:
        return [number for number, _ in self.rows]

    def payload(self, channel: str) -> str:
        """What the inbox keeps for a rejected order; ``parse_order`` reads it back."""
        rows = [{"row": number, **cells} for number, cells in self.rows]
        return json.dumps({"channel": channel, "external_id": self.external_id, "rows": rows})


@dataclass
class CsvFile:
    orders: list[CsvOrder]
    # Rows that belong to no order (no external_id).
    problems: list[RowProblem]
    ignored_columns: list[str]


def _column_name(header: str) -> str:
    return re.sub(r"[\s-]+", "_", header.strip().lower())


def read_orders(data: bytes) -> CsvFile:
    """The file's rows grouped into orders, in the order they first appear."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvFileError(f"the file is not UTF-8 text (byte {exc.start} is not)") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [_column_name(name) for name in next(reader, [])]
        if not any(header):
            raise CsvFileError("the file is empty: the first row must name the columns")
        duplicated = sorted({name for name in header if name and header.count(name) > 1})
        if duplicated:
            raise CsvFileError(f"the header names {', '.join(duplicated)} more than once")
        missing = [name for name in REQUIRED_COLUMNS if name not in header]
        if missing:
            raise CsvFileError(
                f"the header lacks the column(s) {', '.join(missing)}; the first row must name "
                f"the columns, for example {','.join(COLUMNS)}"
            )
        orders: dict[str, CsvOrder] = {}
        orphans: list[RowProblem] = []
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            row = {name: cell for name, cell in zip(header, cells, strict=False) if name in COLUMNS}
            extra = [cell for cell in cells[len(header) :] if cell.strip()]
            if extra:
                row[_EXTRA] = ", ".join(extra)
            external_id = row.get("external_id", "").strip()
            if not external_id:
                orphans.append(
                    RowProblem(
                        number,
                        "external_id",
                        ErrorCode.REQUIRED.value,
                        "Give the order's external id; the rows of one order share it.",
                    )
                )
                continue
            orders.setdefault(external_id, CsvOrder(external_id)).rows.append((number, row))
    except csv.Error as exc:
        raise CsvFileError(f"row {reader.line_num}: {exc}") from None
    ignored = [name for name in header if name and name not in COLUMNS]
    return CsvFile(list(orders.values()), orphans, ignored)


@dataclass
class CsvDraft:
    """An order's draft, the problems of its rows, and where each order value was given."""

    draft: OrderDraft
    problems: list[RowProblem]
    line_rows: list[int]
    given_at: dict[str, int]

    def locate(self, problem: Problem) -> RowProblem:
        """The row and column of a problem the core (or a plugin) found in the draft."""
        external_id = self.draft.external_id
        line = _LINE_FIELD.fullmatch(problem.field or "")
        if line and int(line.group(1)) < len(self.line_rows):
            row = self.line_rows[int(line.group(1))]
            column = _COLUMN_OF_LINE_FIELD.get(line.group(2), line.group(2))
        elif problem.field in _COLUMN_OF_FIELD:
            column = _COLUMN_OF_FIELD[problem.field]
            row = self.given_at.get(column, self.line_rows[0])
        else:
            row, column = self.line_rows[0], problem.field
        return RowProblem(row, column, problem.code.value, problem.message, external_id)


def draft_from_rows(
    channel: str, external_id: str, rows: list[tuple[int, dict[str, str]]]
) -> CsvDraft:
    """One ``OrderDraft`` from an order's rows; rows that disagree are problems."""
    values: dict[str, str] = {}
    given_at: dict[str, int] = {}
    problems: list[RowProblem] = []
    lines: list[LineDraft] = []
    for number, cells in rows:
        if cells.get(_EXTRA):
            problems.append(
                RowProblem(
                    number,
                    None,
                    ErrorCode.INVALID_VALUE.value,
                    f"The row has more cells than the header has columns ({cells[_EXTRA]}); "
                    "put cells that contain commas in double quotes.",
                    external_id,
                )
            )
        for column in ORDER_COLUMNS:
            value = cells.get(column, "").strip()
            if not value:
                continue
            if column not in values:
                values[column], given_at[column] = value, number
            elif value.casefold() != values[column].casefold():
                problems.append(
                    RowProblem(
                        number,
                        column,
                        ErrorCode.INVALID_VALUE.value,
                        f"{column} is {value!r} here but {values[column]!r} in row "
                        f"{given_at[column]}; the rows of order {external_id} must agree "
                        "(or leave the cell blank).",
                        external_id,
                    )
                )
        lines.append(
            LineDraft(
                sku=cells.get("sku", "").strip(),
                quantity=cells.get("quantity", "").strip(),
                unit_price=cells.get("unit_price", "").strip() or None,
            )
        )
    prefix = "shippingAddress."
    address = {
        ORDER_COLUMNS[column].removeprefix(prefix): value
        for column, value in values.items()
        if ORDER_COLUMNS[column].startswith(prefix)
    }
    draft = OrderDraft(
        channel=channel,
        external_id=external_id,
        lines=lines,
        customer_email=values.get("customer_email"),
        customer_name=values.get("customer_name"),
        shipping_address=address,
        currency=values.get("currency"),
        type=values.get("type", "standard"),
        priority=values.get("priority", "NORMAL").upper(),
        note=values.get("note", ""),
    )
    return CsvDraft(draft, problems, [number for number, _ in rows], given_at)


# -- Importing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderOutcome:
    external_id: str
    status: str  # created, duplicate or rejected
    rows: list[int]
    order: str | None = None
    import_error_id: int | None = None


@dataclass
class ImportSummary:
    channel: str
    dry_run: bool
    ignored_columns: list[str]
    orders: list[OrderOutcome] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.orders if outcome.status == status)

    def as_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "dry_run": self.dry_run,
            "created": self.count("created"),
            "duplicate": self.count("duplicate"),
            "rejected": self.count("rejected"),
            "ignored_columns": self.ignored_columns,
            "orders": [asdict(outcome) for outcome in self.orders],
            "problems": [asdict(problem) for problem in self.problems],
        }


def inbox_reference(channel: str, external_id: str) -> str:
    """The inbox entry of an order: its external id, qualified by a ``--channel`` name."""
    return external_id if channel == CHANNEL else f"{channel}:{external_id}"


async def _import_order(
    rt: Runtime, order: CsvOrder, channel: str, principal: Principal, dry_run: bool
) -> tuple[OrderOutcome, list[RowProblem]]:
    rows = order.row_numbers
    existing = await find_order(channel, order.external_id)
    if existing is not None:
        return OrderOutcome(order.external_id, "duplicate", rows, existing.number), []
    built = draft_from_rows(channel, order.external_id, order.rows)
    reference = inbox_reference(channel, order.external_id)
    if not dry_run and not built.problems:
        result = await ingest(rt, CHANNEL, reference, order.payload(channel), principal)
        number = result.order.number if result.order else None
        outcome = OrderOutcome(
            order.external_id, result.status, rows, number, result.import_error_id
        )
        return outcome, [built.locate(problem) for problem in result.problems]
    # A dry run, or rows that disagree: still report every problem the core would find.
    problems = list(built.problems)
    try:
        await validate_order_draft(rt, built.draft, principal)
    except DomainError as error:
        problems += [built.locate(problem) for problem in error.problems]
    if not problems:
        return OrderOutcome(order.external_id, "created", rows), []
    entry = None
    if not dry_run:
        reasons = [problem.as_problem() for problem in problems]
        entry = await record_import_error(CHANNEL, reference, order.payload(channel), reasons)
    return OrderOutcome(order.external_id, "rejected", rows, None, entry), problems


async def import_csv(
    rt: Runtime,
    data: bytes,
    *,
    channel: str = CHANNEL,
    principal: Principal,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Import every order of a CSV file, each in its own transaction.

    Raises ``CsvFileError`` when the file cannot be read at all, or ``channel`` is not a
    name the CSV channel may use. With ``dry_run`` every order is checked and nothing is
    stored (not even in the inbox).
    """
    if not _CHANNEL_NAME.fullmatch(channel):
        raise CsvFileError(
            f"the channel name {channel!r} must be 1 to 32 lowercase letters, digits, - or _"
        )
    if channel != CHANNEL and channel in rt.plugins.plugins:
        # Orders under another plugin's name would pass for that channel's own
        # (a storefront's, a shop's webhook) and take its external ids.
        raise CsvFileError(
            f"the channel name {channel!r} belongs to the installed plugin {channel}; "
            "choose a name of your own"
        )
    parsed = read_orders(data)
    summary = ImportSummary(channel, dry_run, parsed.ignored_columns)
    for problem in parsed.problems:
        summary.orders.append(OrderOutcome("", "rejected", [problem.row]))
        summary.problems.append(problem)
    for done, order in enumerate(parsed.orders, start=1):
        outcome, problems = await _import_order(rt, order, channel, principal, dry_run)
        summary.orders.append(outcome)
        summary.problems += problems
        if progress is not None:
            progress(done, len(parsed.orders))
    summary.problems.sort(key=lambda problem: problem.row)
    return summary


# -- The command line: ordergraph import csv FILE --------------------------------------------


class ProgressBar:
    """``orders.csv [##########..........] 50/100 orders`` on one line of a terminal."""

    def __init__(self, label: str, stream: TextIO, width: int = 30) -> None:
        self.label, self.stream, self.width = label, stream, width

    def __call__(self, done: int, total: int) -> None:
        filled = self.width * done // total
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{total} orders")
        if done == total:
            self.stream.write("\n")
        self.stream.flush()


def print_summary(summary: ImportSummary, out: TextIO) -> None:
    for problem in summary.problems:
        where = f"row {problem.row}" + (f", {problem.column}" if problem.column else "")
        order = f" (order {problem.external_id})" if problem.external_id else ""
        print(f"{where}{order}: {problem.code}: {problem.message}", file=out)
    if summary.ignored_columns:
        print(f"ignored columns: {', '.join(summary.ignored_columns)}", file=out)
    counts = (
        f"{summary.count('created')}, duplicate {summary.count('duplicate')}, "
        f"rejected {summary.count('rejected')}"
    )
    if summary.dry_run:
        print(f"dry run, nothing was stored: would create {counts}", file=out)
        return
    print(f"created {counts}", file=out)
    if summary.count("rejected"):
        print(
            "rejected orders are kept in the import inbox (Query.importErrors, channel csv); "
            "fix them and import the file again, or fix the cause and use Mutation.replayImport",
            file=out,
        )


def _import_command(args: argparse.Namespace, service_settings: ServiceSettings) -> int:
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    progress = ProgressBar(Path(args.file).name, sys.stderr) if sys.stderr.isatty() else None

    async def run() -> ImportSummary:
        async with open_runtime(service_settings) as rt:
            return await import_csv(
                rt,
                data,
                channel=args.channel,
                principal=CLI_PRINCIPAL,
                dry_run=args.dry_run,
                progress=progress,
            )

    try:
        summary = asyncio.run(run())
    except CsvFileError as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return 2
    print_summary(summary, sys.stdout)
    return 1 if summary.count("rejected") else 0


# -- HTTP: POST /channels/csv/upload ------------------------------------------------------------


class UploadError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


async def _read_upload(request: Request, limit: int) -> bytes:
    """The CSV of a ``text/csv`` body or of a multipart field named ``file``; raises
    ``BodyTooLarge`` once the body passes ``limit`` bytes, without reading further."""
    request = capped_request(request, limit)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await request.body()
    async with request.form(max_files=1, max_fields=10, max_part_size=limit) as form:
        value = form.get("file")
        if isinstance(value, UploadFile):
            return await value.read()
        if isinstance(value, str):
            return value.encode()
    raise UploadError(400, "Send the CSV in a multipart field named file.")


def _upload_route() -> Route:
    async def upload(request: Request) -> JSONResponse:
        """Import an uploaded CSV file; the answer is the import summary."""
        principal = await principal_for(request.headers.get("authorization"))
        if principal is None:
            return _error(
                401,
                "Authentication required: send the header Authorization: Bearer <token>.",
                **{"WWW-Authenticate": "Bearer"},
            )
        if principal.role not in UPLOADERS:
            return _error(403, f"The {principal.role} role may not upload orders.")
        try:
            rt = runtime_of(request)
            data = await _read_upload(request, rt.settings.max_upload_bytes)
            summary = await import_csv(
                rt,
                data,
                channel=request.query_params.get("channel", CHANNEL),
                principal=principal,
                dry_run=request.query_params.get("dry_run", "").lower() in ("1", "true", "yes"),
            )
        except BodyTooLarge as exc:
            return exc.response()
        except UploadError as exc:
            return _error(exc.status, str(exc))
        except CsvFileError as exc:
            return _error(400, f"The file cannot be imported: {exc}.")
        return JSONResponse(summary.as_json())

    return Route(UPLOAD_PATH, upload, methods=["POST"])


# -- Hooks ---------------------------------------------------------------------------------------


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        category="channel",
        description=f"Orders from CSV files: `ordergraph import csv FILE` and POST {UPLOAD_PATH}.",
        enabled_by_default=True,
    )


@hookimpl
def register_commands(commands: Any) -> None:
    imports = commands.add_parser("import", help="import orders from files")
    formats = imports.add_subparsers(dest="import_format", required=True)
    command = formats.add_parser(
        "csv",
        help="import orders from a CSV file",
        description="Import orders from a CSV file (one row per order line; docs/channels.md). "
        "Exit status: 0 all imported, 1 some orders rejected, 2 the file cannot be read "
        "or the channel name is refused.",
    )
    command.add_argument("file", help="the CSV file, or - for standard input")
    command.add_argument(
        "--channel",
        default=CHANNEL,
        help="the channel the orders are recorded under (default: csv); external ids are "
        "unique per channel; the name of another installed plugin (web, shopify, ...) is refused",
    )
    command.add_argument(
        "--dry-run", action="store_true", help="check every order and store nothing"
    )
    command.set_defaults(run=_import_command)


@hookimpl
def http_routes() -> list[Route]:
    return [_upload_route()]


@hookimpl
def parse_order(payload: str) -> OrderDraft:
    """Rebuild a rejected order from the rows the inbox kept (on replay)."""
    data = json.loads(payload)
    rows = [(int(row.pop("row")), {k: str(v) for k, v in row.items()}) for row in data["rows"]]
    built = draft_from_rows(data["channel"], data["external_id"], rows)
    if built.problems:
        raise DomainError(*(problem.as_problem() for problem in built.problems))
    return built.draft
