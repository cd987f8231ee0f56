"""The ``ordergraph`` command as a user runs it: a separate process, a clean environment."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from conftest import BACKENDS, POSTGRES_URL, new_postgres_database

from ordergraph import demo
from ordergraph.core import db, migrations
from ordergraph.core.statusgraph import default_graph

ORDERGRAPH = str(Path(sys.executable).with_name("ordergraph"))
# Generous bounds for a slow machine; a passing run takes a fraction of them.
COMMAND_TIMEOUT = 120
DEMO_START_TIMEOUT = 120


def clean_env(**values: str) -> dict[str, str]:
    """This environment without the service's variables, plus ``values``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "ORDERGRAPH_CONFIG", "ORDERGRAPH_ENV")
    }
    return {**env, **values}


def ordergraph(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ORDERGRAPH, *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )


@pytest.fixture(params=BACKENDS)
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database nobody has migrated (``database_url`` migrates PostgreSQL up front)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/fresh.db"
        return
    async with new_postgres_database("og_cli") as url:
        yield url


def test_graph_mermaid_prints_every_transition(tmp_path: Path) -> None:
    result = ordergraph("graph", "--format", "mermaid", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["stateDiagram-v2", "    [*] --> RECEIVED"]
    for t in default_graph().transitions.values():
        for source in t.sources:
            assert f"    {source} --> {t.target}: {t.name}" in lines


def test_graph_dot_prints_every_transition(tmp_path: Path) -> None:
    result = ordergraph("graph", "--format", "dot", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("digraph status_graph {")
    assert result.stdout.rstrip().endswith("}")
    lines = result.stdout.splitlines()
    for t in default_graph().transitions.values():
        for source in t.sources:
            assert f'    {source} -> {t.target} [label="{t.name}"];' in lines


async def test_migrate_applies_every_migration_once(
    empty_database_url: str, tmp_path: Path
) -> None:
    first = ordergraph("migrate", cwd=tmp_path, DATABASE_URL=empty_database_url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "applied: " + ", ".join(migrations.available())
    assert first.stdout.startswith("applied: m0001_initial")

    again = ordergraph("migrate", cwd=tmp_path, DATABASE_URL=empty_database_url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "the database is up to date"

    token = ordergraph(
        "token", "create", "--role", "admin", cwd=tmp_path, DATABASE_URL=empty_database_url
    )
    assert token.returncode == 0, token.stderr
    assert token.stdout.startswith("og_")


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL is not among the backends")
async def test_serve_on_an_unmigrated_postgres_database_says_to_migrate(tmp_path: Path) -> None:
    name = f"og_cli_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
        result = ordergraph("serve", "--port", str(free_port()), cwd=tmp_path, DATABASE_URL=url)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    assert result.returncode != 0
    assert "lacks migrations m0001_initial" in result.stderr
    assert "run `ordergraph migrate`" in result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def read_until_ready(stream: asyncio.StreamReader, deadline: float) -> dict[str, str]:
    """The tokens ``serve --demo`` prints, once uvicorn says it is accepting connections."""
    tokens: dict[str, str] = {}
    seen: list[str] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("the demo did not start in time:\n" + "".join(seen))
        raw = await asyncio.wait_for(stream.readline(), remaining)
        if not raw:
            raise AssertionError("the demo exited:\n" + "".join(seen))
        line = raw.decode()
        seen.append(line)
        words = line.split()
        if len(words) >= 2 and words[-1].startswith("og_"):
            tokens[words[0]] = words[-1]
        if "Uvicorn running on" in line:
            return tokens


async def test_demo_serves_the_demo_shop_with_the_printed_tokens(tmp_path: Path) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        ORDERGRAPH,
        "serve",
        "--demo",
        "--port",
        str(port),
        cwd=tmp_path,
        env=clean_env(PYTHONUNBUFFERED="1"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        tokens = await read_until_ready(proc.stdout, time.monotonic() + DEMO_START_TIMEOUT)
        assert set(tokens) == {"admin", "customer", "staff"}
        assert (tmp_path / "ordergraph.db").exists()

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            health = await client.get("/health")
            assert health.json() == {"status": "ok", "database": "sqlite", "jobs": "embedded"}

            async def query(text: str, token: str) -> dict:
                response = await client.post(
                    "/graphql",
                    json={"query": text},
                    headers={"Authorization": f"Bearer {token}"},
                )
                body = response.json()
                assert "errors" not in body, body
                return body["data"]

            everything = await query("{ orders { totalCount } }", tokens["admin"])
            assert everything["orders"]["totalCount"] == len(demo.ORDERS)

            ada = await query("{ me { role } orders { totalCount } }", tokens["customer"])
            assert ada["me"]["role"] == "customer"
            adas_orders = [o for o in demo.ORDERS if o[1] == "ada@example.com"]
            assert ada["orders"]["totalCount"] == len(adas_orders)

            pia = await query("{ myWork { order { externalId } } }", tokens["staff"])
            assert pia["myWork"]
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def test_two_processes_migrating_at_once_apply_each_migration_once(
    database_url: str, tmp_path
) -> None:
    """Two ``ordergraph migrate`` started together (two service processes starting on a
    fresh database do the same): both succeed and every migration is recorded once."""
    env = {**os.environ, "DATABASE_URL": database_url}
    if database_url.startswith("postgresql"):
        # The fixture already migrated it; start from an empty schema again.
        await db.connect(database_url)
        await db.raw("DROP SCHEMA public CASCADE")
        await db.raw("CREATE SCHEMA public")
        await db.disconnect()
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ordergraph.cli", "migrate", env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]  # fmt: skip
    results = [await p.communicate() for p in processes]
    assert [p.returncode for p in processes] == [0, 0], results
    await db.connect(database_url)
    try:
        rows = await db.raw("SELECT name FROM schema_migrations ORDER BY name")
    finally:
        await db.disconnect()
    assert [r["name"] for r in rows] == migrations.available()
