"""Database engines, table binding, write transactions and statement counting.

One database is active per process. ``connect()`` builds the piccolo engine for a
``DATABASE_URL`` and binds every table to it; everything else in the core uses the
tables and ``write_transaction()``.

Statements are counted where they leave for the server (the asyncpg connection, the
SQLite connection), so BEGIN, COMMIT and whatever a pool sends are counted too.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime
import functools
import json
import sqlite3
import string
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiosqlite
import asyncpg
from piccolo.columns import JSON, JSONB, Column
from piccolo.columns.combination import Where
from piccolo.columns.defaults.base import Default
from piccolo.columns.operators.comparison import ComparisonOperator
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, SQLiteTransaction, TransactionType
from piccolo.querystring import QueryString
from piccolo.table import Table

from ordergraph.core.batching import Batched
from ordergraph.core.errors import is_busy, translate

DEFAULT_DATABASE_URL = "sqlite:///ordergraph.db"


_clock_offset = datetime.timedelta(0)


def now() -> datetime.datetime:
    """The current instant in UTC: what every timestamp the service writes is taken from."""
    return datetime.datetime.now(datetime.UTC) + _clock_offset


def set_clock(instant: datetime.datetime | None) -> None:
    """Make ``now()`` run from ``instant`` on (None: the real time again). Only for the
    demo, which writes a shop's past fortnight as it would have happened."""
    global _clock_offset
    real = datetime.datetime.now(datetime.UTC)
    _clock_offset = datetime.timedelta(0) if instant is None else instant - real


@dataclass
class StatementLog:
    """The SQL statements one block of code sent to the database, and their arguments."""

    statements: list[str] = field(default_factory=list)
    arguments: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.statements)


_statement_log: contextvars.ContextVar[StatementLog | None] = contextvars.ContextVar(
    "ordergraph_statement_log", default=None
)


@contextlib.contextmanager
def count_statements() -> Iterator[StatementLog]:
    """Record every statement sent to the server from this context (and tasks it starts),
    transaction control included."""
    log = StatementLog()
    token = _statement_log.set(log)
    try:
        yield log
    finally:
        _statement_log.reset(token)


def _record(sql: str, args: Sequence[Any] = ()) -> None:
    log = _statement_log.get()
    if log is not None:
        log.statements.append(sql)
        log.arguments.append(tuple(args))


@dataclass
class _SQLiteConnections:
    """One event loop's two SQLite connections, each used by one statement at a time."""

    reader: aiosqlite.Connection | None = None
    writer: aiosqlite.Connection | None = None
    read_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class _CountingSQLiteEngine(SQLiteEngine):
    """piccolo's SQLite engine, counting statements, with two long-lived connections.

    piccolo opens a new connection (and a thread) for every statement outside a
    transaction and for every transaction. SQLite has one writer at a time anyway, so
    this engine keeps, per event loop, one connection for SELECTs outside
    transactions and one for writes: ``write_transaction()`` and writes outside a
    transaction take ``write_lock`` first, so writers queue in this process instead
    of sleeping in SQLite's busy handler (which stays, for other processes).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._by_loop: dict[asyncio.AbstractEventLoop, _SQLiteConnections] = {}
        self._closed = False

    def connections(self) -> _SQLiteConnections:
        return self._by_loop.setdefault(asyncio.get_running_loop(), _SQLiteConnections())

    async def writer(self) -> aiosqlite.Connection:
        """The writing connection; only for the holder of ``connections().write_lock``."""
        held = self.connections()
        if held.writer is None:
            held.writer = await self.get_connection()
        return held.writer

    async def drop_writer(self) -> None:
        """Forget a writer left in an unknown state (a failed rollback)."""
        held = self.connections()
        writer, held.writer = held.writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                await writer.close()

    async def _run_in_new_connection(self, query, args=None, query_type="generic", table=None):
        if self._closed:
            # A statement after close_connections() (a job cut off at shutdown) gets a
            # connection of its own: one kept would keep its thread, and the process, alive.
            connection = await self.get_connection()
            try:
                return await self._run_in_existing_connection(
                    connection, query, args, query_type, table
                )
            finally:
                await connection.close()
        held = self.connections()
        if query.lstrip()[:6].upper() != "SELECT":
            async with held.write_lock:
                return await self._run_in_existing_connection(
                    await self.writer(), query, args, query_type, table
                )
        # One statement at a time: a statement interleaved with an open read on the
        # same connection would fail at once with SQLITE_BUSY.
        async with held.read_lock:
            if held.reader is None:
                held.reader = await self.get_connection()
            return await self._run_in_existing_connection(
                held.reader, query, args, query_type, table
            )

    async def _run_in_existing_connection(
        self,
        connection: aiosqlite.Connection,
        query: str,
        args: list[Any] | None = None,
        query_type: str = "generic",
        table: type[Table] | None = None,
    ) -> list[dict[str, Any]]:
        # piccolo's version sends PRAGMA foreign_keys before every statement; every
        # connection here comes from get_connection(), which has set it once.
        _record(query, args or ())
        # One trip to the connection's thread: piccolo's cursor takes three (execute,
        # fetchall, close), each waiting for this event loop to come round again.
        return list(await connection.execute_fetchall(query, args or []))

    async def in_one_trip(
        self, connection: aiosqlite.Connection, statements: Sequence[tuple[str, Sequence[Any]]]
    ) -> list[list[dict[str, Any]]]:
        """Run statements in one trip to the connection's thread; the rows of each. A
        writer holds SQLite's one write lock while it waits for each answer, and each
        answer waits for the event loop to come round: a trip saved is time for the
        next writer."""
        for text, args in statements:
            _record(text, args)

        def run(sqlite: sqlite3.Connection) -> list[list[dict[str, Any]]]:
            return [sqlite.execute(text, args).fetchall() for text, args in statements]

        return await connection._execute(run, connection._conn)

    async def close_connections(self) -> None:
        self._closed = True
        held = self._by_loop.pop(asyncio.get_running_loop(), None)
        for connection in (held.reader, held.writer) if held else ():
            if connection is not None:
                await connection.close()


class _WriterTransaction(SQLiteTransaction):
    """An IMMEDIATE transaction on the engine's writing connection, kept open after."""

    engine: _CountingSQLiteEngine

    async def get_connection(self) -> aiosqlite.Connection:
        return await self.engine.writer()

    async def begin(self) -> None:
        _record(f"BEGIN {self.transaction_type.value}")
        await super().begin()

    async def commit(self) -> None:
        _record("COMMIT")
        await super().commit()

    async def rollback(self) -> None:
        _record("ROLLBACK")
        await super().rollback()

    async def __aexit__(self, exception_type, exception, traceback) -> bool:
        if self._parent:
            return exception is None
        try:
            if exception is not None:
                if not self._rolled_back:
                    await self.rollback()
            elif not self._committed and not self._rolled_back:
                await self.commit()
        except BaseException:
            await self.engine.drop_writer()
            raise
        finally:
            self.engine.current_transaction.reset(self.context)
        return exception is None


class _CountingConnection(asyncpg.Connection):
    """An asyncpg connection that records every statement it sends.

    piccolo runs queries with ``fetch``; transactions and the pool send BEGIN, COMMIT,
    ROLLBACK and resets with ``execute``.
    """

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        _record(query, args)
        return await super().execute(query, *args, timeout=timeout)

    async def executemany(self, command: str, args: Any, *, timeout: float | None = None) -> None:
        _record(command)
        return await super().executemany(command, args, timeout=timeout)

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> list[Any]:
        _record(query, args)
        return await super().fetch(query, *args, **kwargs)

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> Any:
        _record(query, args)
        return await super().fetchrow(query, *args, **kwargs)

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        _record(query, args)
        return await super().fetchval(query, *args, **kwargs)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Return a connection to the pool as it is, without asyncpg's reset statement.

    The reset (``pg_advisory_unlock_all``, ``UNLISTEN *``, ``RESET ALL``) is a round
    trip on every release, and undoes what this code never leaves behind: advisory
    locks are transaction-scoped, nothing runs SET or opens cursors outside a
    transaction, and LISTEN runs on a connection of its own. An open transaction is
    still rolled back by the pool before this is called.
    """


@dataclass
class Database:
    url: str
    engine: Engine
    # The reads that concurrent tasks share (``select_in``, ``next_id``), by what they read.
    together: dict[tuple[str, ...], Batched[Any, Any]] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.engine_type == "sqlite"


_current: Database | None = None


def current() -> Database:
    if _current is None:
        raise RuntimeError("no database connected: call ordergraph.core.db.connect() first")
    return _current


def engine_for_url(url: str) -> Engine:
    """Build a piccolo engine for ``sqlite:///path`` or ``postgresql://...``."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else parsed.path
        if not path:
            raise ValueError(f"DATABASE_URL {url!r} names no file: use sqlite:///path/file.db")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # The timeout is how long a writer waits for the single SQLite write lock.
        return _CountingSQLiteEngine(path=path, timeout=30)
    if parsed.scheme in ("postgres", "postgresql"):
        return PostgresEngine(config={"dsn": url})
    raise ValueError(
        f"DATABASE_URL {url!r} is not supported: use sqlite:///path/file.db or postgresql://..."
    )


def all_tables() -> list[type[Table]]:
    """Every table defined so far: the kernel's, the stages' and plugins' (each stage's
    tables are imported with the stage, before ``connect``)."""
    found, waiting = [], list(Table.__subclasses__())
    while waiting:
        table = waiting.pop()
        waiting += table.__subclasses__()
        if not table.__module__.startswith("piccolo."):
            found.append(table)
    return found


async def connect(
    url: str, *, pool_size: int = 10, job_notifications_once_a_second: bool = False
) -> Database:
    """Make ``url`` the database of this process and bind every table to it.

    ``job_notifications_once_a_second``: this process hands its committed jobs to Redis
    itself, so its commits notify the relay at most once a second (migration 0015).

    PostgreSQL's JIT compiler is off: it compiles a statement whose plan looks costly,
    and the reads of the analytics rollups spent more compiling (150 ms) than running.
    """
    global _current
    engine = engine_for_url(url)
    if isinstance(engine, PostgresEngine):
        settings = {"jit": "off"}
        if job_notifications_once_a_second:
            settings["ordergraph.job_notifications"] = "once_a_second"
        await engine.start_connection_pool(
            min_size=1,
            max_size=pool_size,
            connection_class=_CountingConnection,
            reset=_keep_session,
            server_settings=settings,
        )
    else:
        # WAL lets readers go on while one writer writes; it is stored in the file.
        await engine.run_ddl("PRAGMA journal_mode=WAL")
    for table in all_tables():
        table._meta.db = engine
    _current = Database(url=url, engine=engine)
    return _current


async def disconnect(database: Database | None = None) -> None:
    """Close ``database`` (default: the current one); it stops being current if it was."""
    global _current
    database = database or _current
    if database is None:
        return
    if isinstance(database.engine, PostgresEngine):
        if database.engine.pool is not None:
            await database.engine.close_connection_pool()
    elif isinstance(database.engine, _CountingSQLiteEngine):
        await database.engine.close_connections()
    if _current is database:
        _current = None


AfterCommit = Callable[[], Awaitable[None]]

_after_commit: contextvars.ContextVar[list[AfterCommit] | None] = contextvars.ContextVar(
    "ordergraph_after_commit", default=None
)


async def after_commit(callback: AfterCommit) -> None:
    """Call ``callback`` once the open ``write_transaction()`` has committed (never if it
    rolls back); at once outside one, where every statement commits by itself. The
    callbacks of one commit run together, so calls they make in the same turn of the
    event loop can go as one (the outbox's jobs reaching Redis in one pipeline)."""
    waiting = _after_commit.get()
    if waiting is None:
        if current().engine.current_transaction.get() is not None:
            raise RuntimeError("a transaction not opened by write_transaction() is open")
        await callback()
    else:
        waiting.append(callback)


@contextlib.asynccontextmanager
async def write_transaction() -> AsyncIterator[Any]:
    """A transaction for writes.

    SQLite takes the write lock at BEGIN (IMMEDIATE), so two writers never both read
    and then fail to upgrade; PostgreSQL uses its default READ COMMITTED transaction.
    The outermost block runs the ``after_commit`` callbacks once it has committed.
    """
    engine = current().engine
    outermost = _after_commit.get() is None
    waiting: list[AfterCommit] = []
    token = _after_commit.set(waiting) if outermost else None
    try:
        async with _transaction(engine) as txn:
            yield txn
    except Exception as exc:
        # A busy database is an answer the caller can show (try again), not a fault.
        if is_busy(exc):
            raise translate(exc) from exc
        raise
    finally:
        if token is not None:
            _after_commit.reset(token)
    if waiting:
        await asyncio.gather(*(callback() for callback in waiting))


@contextlib.asynccontextmanager
async def _transaction(engine: Engine) -> AsyncIterator[Any]:
    if isinstance(engine, _CountingSQLiteEngine):
        if engine.current_transaction.get() is not None:
            # A nested block joins the outer transaction, which holds the lock.
            async with engine.transaction() as txn:
                yield txn
            return
        async with (
            engine.connections().write_lock,
            _WriterTransaction(engine, transaction_type=TransactionType.immediate) as txn,
        ):
            yield txn
    else:
        async with engine.transaction() as txn:
            yield txn


class _LikeEscaped(ComparisonOperator):
    template = "{name} LIKE {value} ESCAPE '\\'"


class _ILikeEscaped(ComparisonOperator):
    template = "{name} ILIKE {value} ESCAPE '\\'"


def icontains(column: Any, text: str) -> Any:
    """A case-insensitive substring match (SQLite's LIKE already ignores ASCII case).

    ``%`` and ``_`` in ``text`` are escaped, so "john_doe" finds only what contains it.
    """
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    operator = _LikeEscaped if current().is_sqlite else _ILikeEscaped
    return Where(column=column, value=f"%{escaped}%", operator=operator)


async def raw(sql: str, *args: Any) -> list[dict[str, Any]]:
    """Run one SQL statement with ``{}`` placeholders on the current database; its rows.

    It runs in the task's open transaction, if any, else on a connection of its own, as
    piccolo's queries do, but sends the text as written: the statements run for every
    order (submission, review, the job runner) skip piccolo's query building, which
    costs more than the round trip, and asyncpg prepares each text once per connection.
    An argument may be a piccolo ``QueryString`` (a subquery): piccolo compiles those.
    """
    engine = current().engine
    if any(isinstance(arg, QueryString) for arg in args):
        response = await engine.run_querystring(QueryString(sql, *args))
        return engine.transform_response_to_dicts(response)
    transaction = engine.current_transaction.get()
    if isinstance(engine, _CountingSQLiteEngine):
        text = _placeholders(sql, "?")
        if transaction is not None:
            return await engine._run_in_existing_connection(transaction.connection, text, args)
        return await engine._run_in_new_connection(text, args)
    text = _placeholders(sql, "$")
    if transaction is not None:
        rows = await transaction.connection.fetch(text, *args)
    else:
        async with engine.pool.acquire() as connection:
            rows = await connection.fetch(text, *args)
    return [dict(row) for row in rows]


async def _sqlite_trip(
    statements: Sequence[tuple[str, Sequence[Any]]],
) -> list[list[dict[str, Any]]]:
    """Statements with ``{}`` placeholders, run on the writing connection in one trip, in
    the caller's write transaction or one of their own."""
    engine = current().engine
    assert isinstance(engine, _CountingSQLiteEngine)
    async with write_transaction() as transaction:
        texts = [(_placeholders(sql, "?"), args) for sql, args in statements]
        return await engine.in_one_trip(transaction.connection, texts)


def one_of(expression: str, values: Sequence[Any]) -> tuple[str, Any]:
    """SQL for ``expression`` being one of ``values``, and its one argument: a list sent
    as one parameter, so the text is the same for any number of values."""
    if current().is_sqlite:
        return f"{expression} IN (SELECT value FROM json_each({{}}))", json.dumps(list(values))
    return f"{expression} = ANY({{}})", list(values)


def _default(column: Column) -> Any:
    """The value piccolo would write for a column left out (``Table.__init__``)."""
    value = column.get_default_value()
    if isinstance(value, Default):
        return value.python()
    if isinstance(column, JSON | JSONB) and not isinstance(value, str):
        return None if value is None else json.dumps(value)
    return value


@functools.lru_cache(maxsize=1024)
def _placeholders(sql: str, style: str) -> str:
    """``{}`` placeholders as the driver's (``?``, or ``$1, $2...``); ``{{`` is ``{``."""
    parts = []
    number = 0
    for literal, field_name, _, _ in string.Formatter().parse(sql):
        parts.append(literal)
        if field_name is not None:
            number += 1
            parts.append("?" if style == "?" else f"${number}")
    return "".join(parts)


async def insert(
    table: type[Table], rows: Sequence[dict[str, Any]], *, returning: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Insert ``rows`` (column name to value, the same columns in each) in one statement,
    a column left out taking its piccolo default as ``Table.insert`` would; the
    ``returning`` columns of the new rows."""
    if not rows:
        return []
    sql, values = _insert_sql(table, complete_rows(table, rows), returning)
    return await raw(sql, *values)


async def insert_together(
    inserts: Sequence[tuple[type[Table], Sequence[dict[str, Any]]]],
    *,
    returning: Sequence[str],
    ids_of: type[Table] | None = None,
    upserts: Sequence[Upsert] = (),
) -> tuple[list[dict[str, Any]], list[int]]:
    """``insert`` into several tables, then ``upserts``: the ``returning`` columns of the
    last inserted table's rows, and the ids of the rows written to ``ids_of`` (one of the
    others), in id order.

    The rows must not need each other's generated values (``next_id`` gives a row its
    id beforehand). On PostgreSQL this is one statement (a data-modifying ``WITH``,
    atomic without a transaction); on SQLite one trip to the writer's thread, in the
    caller's transaction (or one of its own)."""
    *first, (last_table, last_rows) = [(table, rows) for table, rows in inserts if rows]
    upserts = [u for u in upserts if u.rows]
    ids: list[int] = []
    if current().is_sqlite:
        statements = [
            _insert_sql(table, complete_rows(table, rows), ("id",) * (table is ids_of))
            for table, rows in first
        ]
        statements.append(_insert_sql(last_table, complete_rows(last_table, last_rows), returning))
        results = await _sqlite_trip([*statements, *map(_upsert_sql, upserts)])
        for (table, _), written in zip(first, results, strict=False):
            if table is ids_of:
                ids = sorted(row["id"] for row in written)
        return results[len(first)], ids
    parts, values = [], []
    columns = ", ".join(f'"{name}"' for name in returning)
    for index, (table, rows) in enumerate(first):
        sql, args = _insert_sql(table, complete_rows(table, rows), ("id",) * (table is ids_of))
        parts.append(f"w{index} AS ({sql})")
        values += args
        if table is ids_of:
            columns += f', (SELECT array_agg("id" ORDER BY "id") FROM w{index}) AS "ids_of"'
    for index, upsert in enumerate(upserts):
        sql, args = _upsert_sql(upsert)
        parts.append(f"u{index} AS ({sql})")
        values += args
    sql, args = _insert_sql(last_table, complete_rows(last_table, last_rows), returning)
    parts.append(f"last AS ({sql})")
    rows = await raw(f"WITH {', '.join(parts)} SELECT {columns} FROM last", *values, *args)
    if rows and "ids_of" in rows[0]:
        ids = list(rows[0]["ids_of"] or [])
        for row in rows:
            del row["ids_of"]
    return rows, ids


async def next_id(table: type[Table]) -> int | None:
    """A new id from the table's sequence on PostgreSQL, for a row written together with
    rows that refer to it (``insert_together``); None on SQLite, which has no sequences.

    The calls of concurrent tasks that come while one is on its way take their ids in
    the next statement, one for all (a sequence is outside transactions anyway)."""
    if current().is_sqlite:
        return None
    name = table._meta.tablename

    async def take(calls: list[None]) -> list[int | BaseException]:
        rows = await raw(
            f"SELECT nextval(pg_get_serial_sequence('\"{name}\"', 'id')) AS id "
            "FROM generate_series(1, {})",
            len(calls),
        )
        return sorted(row["id"] for row in rows)

    return await _shared(("next_id", name), take)(None)


async def select_in(table: str, column: str, values: Sequence[Any]) -> list[dict[str, Any]]:
    """The rows of ``table`` whose ``column`` is one of ``values`` (``SELECT *``).

    Outside a transaction, the calls of concurrent tasks that come while one read of
    the same table and column is on its way go together in the next, one statement for
    all (the customer and the products of each submission, under load); inside one, the
    read is the transaction's own."""
    if not values:
        return []
    if current().engine.current_transaction.get() is not None:
        return await _select_in(table, column, values)

    async def read(calls: list[Sequence[Any]]) -> list[list[dict[str, Any]] | BaseException]:
        rows = await _select_in(table, column, list(dict.fromkeys(v for c in calls for v in c)))
        wanted = [set(call) for call in calls]
        return [[dict(row) for row in rows if row[column] in each] for each in wanted]

    return await _shared(("select_in", table, column), read)(values)


async def _select_in(table: str, column: str, values: Sequence[Any]) -> list[dict[str, Any]]:
    condition, argument = one_of(f'"{column}"', values)
    return await raw(f'SELECT * FROM "{table}" WHERE {condition}', argument)


def _shared(
    key: tuple[str, ...], run_many: Callable[[list[Any]], Awaitable[list[Any]]]
) -> Batched[Any, Any]:
    """The ``Batched`` that the tasks using the current database share for ``key``
    (made with ``run_many`` the first time)."""
    together = current().together
    if key not in together:
        together[key] = Batched(run_many)
    return together[key]


def complete_rows(table: type[Table], rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as ``insert`` writes them: every column but the key, those left out with
    the value piccolo's ``Table.__init__`` would give them."""
    left_out = _left_out(table, tuple(rows[0]))
    return [
        {**row, **{column._meta.db_column_name: _default(column) for column in left_out}}
        for row in rows
    ]


def _insert_sql(
    table: type[Table], rows: Sequence[dict[str, Any]], returning: Sequence[str]
) -> tuple[str, list[Any]]:
    """The ``INSERT`` of complete rows (the same columns in each), and its arguments."""
    names = list(rows[0])
    values = [row[name] for row in rows for name in names]
    row_marks = "(" + ", ".join("{}" for _ in names) + ")"
    columns = ", ".join(f'"{name}"' for name in names)
    sql = (
        f'INSERT INTO "{table._meta.tablename}" ({columns}) VALUES '
        + ", ".join(row_marks for _ in rows)
        + (" RETURNING " + ", ".join(f'"{name}"' for name in returning) if returning else "")
    )
    return sql, values


@functools.lru_cache(maxsize=256)
def _left_out(table: type[Table], given: tuple[str, ...]) -> tuple[Column, ...]:
    """The columns of ``table`` other than its key and ``given``: those taking defaults."""
    return tuple(
        column
        for column in table._meta.columns
        if not column._meta.primary_key and column._meta.db_column_name not in given
    )


@dataclass(frozen=True)
class Upsert:
    """Rows to insert, or to merge into the row already stored under the same ``key``:
    the ``add`` columns are summed with it, the ``replace`` columns overwrite it. One
    statement whatever the number of rows, race-free on both databases
    (``INSERT ... ON CONFLICT DO UPDATE``); two rows may not share a key. Without a
    ``key`` the rows are appended (a plain ``INSERT``). A value may be ``Sql``."""

    table: str
    key: tuple[str, ...]
    rows: Sequence[dict[str, Any]]
    add: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()


@dataclass(frozen=True, order=True)
class Sql:
    """A value of an ``Upsert`` row that the database works out as it writes the row: an
    SQL expression with ``{}`` placeholders for ``args``. It is judged in the statement
    that writes, so it sees what the writing transaction sees, and costs no trip of its
    own."""

    text: str
    args: tuple[Any, ...] = ()


def _upsert_sql(upsert: Upsert) -> tuple[str, list[Any]]:
    names = list(upsert.rows[0])
    plain = "(" + ", ".join("{}" for _ in names) + ")"
    marks: list[str] = []
    values: list[Any] = []
    for row in upsert.rows:
        cells = [row[name] for name in names]
        if not any(isinstance(cell, Sql) for cell in cells):
            marks.append(plain)
            values += cells
            continue
        marks.append("(" + ", ".join(_mark(cell, values) for cell in cells) + ")")
    updates = [f'"{c}" = "{upsert.table}"."{c}" + excluded."{c}"' for c in upsert.add]
    updates += [f'"{c}" = excluded."{c}"' for c in upsert.replace]
    columns = ", ".join(f'"{name}"' for name in names)
    key = ", ".join(f'"{name}"' for name in upsert.key)
    sql = f'INSERT INTO "{upsert.table}" ({columns}) VALUES ' + ", ".join(marks)
    if upsert.key:
        sql += f" ON CONFLICT ({key}) " + (
            f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
        )
    return sql, values


def _mark(cell: Any, values: list[Any]) -> str:
    """A cell's placeholder (its value appended to ``values``), or an ``Sql``'s text."""
    if isinstance(cell, Sql):
        values += cell.args
        return f"({cell.text})"
    values.append(cell)
    return "{}"


async def upsert_all(upserts: Sequence[Upsert]) -> None:
    """Write ``Upsert``s in the caller's transaction: on PostgreSQL in one statement (a
    data-modifying ``WITH``), on SQLite in one trip to the writer's thread."""
    upserts = [u for u in upserts if u.rows]
    if not upserts:
        return
    if current().is_sqlite:
        await _sqlite_trip([_upsert_sql(upsert) for upsert in upserts])
        return
    if len(upserts) == 1:
        sql, args = _upsert_sql(upserts[0])
        await raw(sql, *args)
        return
    parts, values = [], []
    for index, upsert in enumerate(upserts):
        sql, args = _upsert_sql(upsert)
        parts.append(f"u{index} AS ({sql})")
        values += args
    await raw(f"WITH {', '.join(parts)} SELECT 1", *values)
