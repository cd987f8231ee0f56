"""Shared fixtures: every test that takes ``app`` runs once on SQLite and once on PostgreSQL.

PostgreSQL and Redis must be reachable (``.ci/run`` starts them). Set
``ORDERGRAPH_TEST_BACKENDS=sqlite`` to run the SQLite half alone on a machine
without PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as redis
import uvicorn
from asgi_lifespan import LifespanManager

from ordergraph.app import create_app
from ordergraph.core import auth, db, migrations
from ordergraph.core.runtime import Runtime
from ordergraph.core.settings import Settings
from ordergraph.stages.entry.masterdata import (
    CustomerData,
    ProductData,
    upsert_customer,
    upsert_products,
)

# `make test` installs the example plugin (tests/plugin_pkg) here, for the tests and the
# processes they start only: `ordergraph plugins` in .venv does not see it.
TEST_PLUGINS = str(Path(__file__).resolve().parent.parent / "build" / "test-plugins")
sys.path.insert(0, TEST_PLUGINS)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [TEST_PLUGINS, os.getenv("PYTHONPATH")]))

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BACKENDS = os.environ.get("ORDERGRAPH_TEST_BACKENDS", "sqlite,postgresql").split(",")


def _database_url(base: str, name: str) -> str:
    return base.rsplit("/", 1)[0] + "/" + name


@contextlib.asynccontextmanager
async def new_postgres_database(prefix: str = "og_test") -> AsyncIterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(POSTGRES_URL)
    except OSError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield _database_url(POSTGRES_URL, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    """A new, empty database for one test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ordergraph.db"
        return
    async with new_postgres_database() as url:
        try:
            await db.connect(url)
            await migrations.migrate()  # what `ordergraph migrate` does before a deploy
            await db.disconnect()
            yield url
        finally:
            await db.disconnect()


@pytest.fixture
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """The test Redis, emptied before and after the test."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (OSError, redis.ConnectionError) as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
    await client.flushdb()
    yield REDIS_URL
    await client.flushdb()
    await client.aclose()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"database_url": database_url, "job_retry_base_seconds": 0.0}
    values.update(overrides)
    return Settings(**values)


@dataclass
class Api:
    """A client of the running ASGI app, with a token per role."""

    client: httpx.AsyncClient
    rt: Runtime
    tokens: dict[str, str]
    # The started app, to serve over a socket (for a browser).
    app: Any = None

    async def gql(
        self, query: str, variables: dict[str, Any] | None = None, *, as_: str | None = "admin"
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[as_]}"} if as_ else {}
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def data(
        self, query: str, variables: dict[str, Any] | None = None, *, as_: str | None = "admin"
    ) -> dict[str, Any]:
        """The ``data`` of a query that must not fail."""
        body = await self.gql(query, variables, as_=as_)
        assert "errors" not in body, body["errors"]
        return body["data"]


async def seed_shop() -> dict[str, int]:
    """Two customers and three products; returns the customer ids by short name."""
    ada = await upsert_customer(CustomerData("ada@example.com", "Ada", Decimal(1000), "EUR"))
    bob = await upsert_customer(CustomerData("bob@example.com", "Bob", Decimal(1000), "EUR"))
    await upsert_products(
        [
            ProductData("MUG", "Mug", Decimal("12.50"), "EUR", 100),
            ProductData("TEE", "T-shirt", Decimal("24.90"), "EUR", 50),
            ProductData("LAMP", "Lamp", Decimal("79.00"), "EUR", 5),
        ]
    )
    return {"ada": ada["id"], "bob": bob["id"]}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@contextlib.asynccontextmanager
async def serve_api(
    settings: Settings,
    *,
    installed_plugins: Mapping[str, Any] | None = None,
    run_jobs: bool = True,
) -> AsyncIterator[Api]:
    """The real app with these settings (and, when given, only these plugins), a seeded
    shop, a token per role and an HTTP client through the ASGI transport."""
    app = create_app(settings, installed_plugins=installed_plugins, run_jobs=run_jobs)
    async with LifespanManager(app) as manager:
        periodic = app.state.rt.periodic
        if periodic is not None:
            # The periodic work that runs at start (alert scans) is done before the test
            # begins: its next run is minutes away.
            await asyncio.wait_for(periodic.idle.wait(), 60)
        customers = await seed_shop()
        tokens = {
            "admin": await auth.create_token("admin", name="alice"),
            "staff": await auth.create_token("staff", name="sam"),
            "integrator": await auth.create_token("integrator", name="shopsync"),
            "ada": await auth.create_token("customer", name="ada", customer_id=customers["ada"]),
            "bob": await auth.create_token("customer", name="bob", customer_id=customers["bob"]),
        }
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client=client, rt=app.state.rt, tokens=tokens, app=manager.app)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.asynccontextmanager
async def over_http(api: Api, port: int | None = None) -> AsyncIterator[str]:
    """The started app of ``api`` on ``port`` (a free one if None) of 127.0.0.1, served by
    uvicorn in the test's own event loop; its base URL."""
    port = port or free_port()
    config = uvicorn.Config(
        api.app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    """The app with its plugins from entry points, a seeded shop, and tokens for every role."""
    async with serve_api(settings) as served:
        yield served


ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postalCode": "SW1Y 4JH",
    "country": "GB",
}

SUBMIT = """
mutation Submit($input: SubmitOrderInput!) {
  submitOrder(input: $input) {
    created
    order {
      id databaseId number status version total currency
      lines { sku quantity unitPrice total }
    }
    errors { field code message }
  }
}
"""


def order_input(external_id: str = "EXT-1", **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "externalId": external_id,
        "customerEmail": "ada@example.com",
        "lines": [{"sku": "MUG", "quantity": 2}],
        "shippingAddress": ADDRESS,
    }
    values.update(overrides)
    return values


async def submit(api: Api, external_id: str = "EXT-1", *, as_: str = "admin", **overrides):
    """Submit an order that must be accepted; return it."""
    data = await api.data(SUBMIT, {"input": order_input(external_id, **overrides)}, as_=as_)
    payload = data["submitOrder"]
    assert payload["errors"] == [], payload["errors"]
    return payload["order"]


class Streamed:
    """A request body handed to the server in chunks, counting the bytes it pulled."""

    def __init__(self, body: bytes, chunk: int = 65_536) -> None:
        self.body, self.chunk, self.pulled = body, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), self.chunk):
            part = self.body[start : start + self.chunk]
            self.pulled += len(part)
            yield part


def pdf_text(pdf: bytes) -> str:
    """The text of a PDF as poppler's ``pdftotext`` lays it out (``make test`` installs
    Debian's poppler-utils)."""
    return subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=pdf, check=True, capture_output=True
    ).stdout.decode()
