"""Schema migrations: an ordered list of named steps, each applied once.

Each step is a module ``mNNNN_name.py`` with a list of statements per dialect
(``SQLITE`` and ``POSTGRES``). ``migrate()`` applies the ones not yet recorded in
``schema_migrations``, each in its own transaction, in name order.
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
from collections.abc import AsyncIterator

from ordergraph.core import db
from ordergraph.core.tables import SchemaMigration

# An arbitrary key for PostgreSQL's advisory lock held while migrating.
MIGRATION_LOCK = 7_011_842


def available() -> list[str]:
    return sorted(info.name for info in pkgutil.iter_modules(__path__) if info.name.startswith("m"))


@contextlib.asynccontextmanager
async def _exclusive() -> AsyncIterator[None]:
    """A write transaction that one process at a time holds: two processes may start
    migrating at once, and the second must wait, then see what the first did."""
    async with db.write_transaction():
        # SQLite's IMMEDIATE transaction is exclusive already; PostgreSQL needs a lock.
        if not db.current().is_sqlite:
            await db.raw("SELECT pg_advisory_xact_lock({})", MIGRATION_LOCK)
        yield


async def applied() -> set[str]:
    # The bookkeeping table itself is created here, before any migration runs.
    async with _exclusive():
        await db.current().engine.run_ddl(
            'CREATE TABLE IF NOT EXISTS "schema_migrations" ("id" '
            + ("INTEGER" if db.current().is_sqlite else "SERIAL")
            + " PRIMARY KEY NOT NULL, \"name\" VARCHAR(200) UNIQUE NOT NULL DEFAULT '', "
            '"applied_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)'
        )
    rows = await SchemaMigration.select(SchemaMigration.name)
    return {row["name"] for row in rows}


async def migrate() -> list[str]:
    """Apply every pending migration; return the names applied."""
    done = await applied()
    newly_applied = []
    for name in available():
        if name in done:
            continue
        module = importlib.import_module(f"{__name__}.{name}")
        statements = module.SQLITE if db.current().is_sqlite else module.POSTGRES
        async with _exclusive():
            if await SchemaMigration.exists().where(SchemaMigration.name == name):
                continue
            for statement in statements:
                await db.current().engine.run_ddl(statement)
            await SchemaMigration.insert(SchemaMigration(name=name))
        newly_applied.append(name)
    return newly_applied


class PendingMigrations(RuntimeError):
    pass


async def ensure_current() -> None:
    """Refuse to work on a database that lacks migrations (PostgreSQL is migrated by
    ``ordergraph migrate`` before a deploy; SQLite is migrated on start instead)."""
    if db.current().is_sqlite:
        await migrate()
        return
    pending = sorted(set(available()) - await applied())
    if pending:
        raise PendingMigrations(
            f"the database lacks migrations {', '.join(pending)}: run `ordergraph migrate`"
        )
