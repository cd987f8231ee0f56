"""What every benchmark sets up the same way: a fresh database per run, the running
service on it, the benchmark customer, order drafts, the command line and the table.

A run's database is a temporary SQLite file, or a temporary PostgreSQL database
created and dropped on the server of TEST_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from ordergraph.core import assembly, db, migrations
from ordergraph.core.orders import LineDraft, OrderDraft
from ordergraph.core.runtime import Runtime
from ordergraph.core.settings import Settings
from ordergraph.stages.entry.masterdata import CustomerData, upsert_customer

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgresql")
EMAIL = "bench@example.com"
ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postalCode": "SW1Y 4JH",
    "country": "GB",
}


@contextlib.asynccontextmanager
async def fresh_database(backend: str) -> AsyncIterator[str]:
    """An empty, migrated database for one run, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="og_bench_") as directory:
            yield f"sqlite:///{Path(directory) / 'bench.db'}"
        return
    name = f"og_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
        await db.connect(url)
        try:
            await migrations.migrate()
        finally:
            await db.disconnect()
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.asynccontextmanager
async def service(backend: str, **settings: Any) -> AsyncIterator[Runtime]:
    """The service built on a fresh database and opened without a job runner (the
    benchmark runs the jobs it measures itself)."""
    async with fresh_database(backend) as url:
        rt = assembly.build(Settings(database_url=url, **settings))
        await rt.open(run_jobs=False)
        try:
            yield rt
        finally:
            await rt.close()


async def bench_customer(name: str = "Bench") -> int:
    """The customer every benchmark order is for, with credit for all of them; its id."""
    customer = await upsert_customer(CustomerData(EMAIL, name, Decimal(10**9), "EUR"))
    return customer["id"]


def bench_draft(
    external_id: str, lines: Sequence[tuple[str, int]], channel: str = "bench"
) -> OrderDraft:
    """An order of the benchmark customer: ``lines`` of (SKU, quantity)."""
    return OrderDraft(
        channel=channel,
        external_id=external_id,
        customer_email=EMAIL,
        lines=[LineDraft(sku, quantity) for sku, quantity in lines],
        shipping_address=ADDRESS,
    )


def argument_parser(doc: str | None, backends: Sequence[str] = BACKENDS) -> argparse.ArgumentParser:
    """The benchmark's command line, described by its docstring's first paragraph, with
    ``--backends`` (``backends`` by default)."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(backends))
    return parser


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"
        for row in [header, *rows]
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
