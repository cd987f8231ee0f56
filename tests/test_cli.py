"""The ``ordergraph`` command as a user runs it: a separate process, a clean environment."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from conftest import BACKENDS, POSTGRES_URL, Api, make_settings, new_postgres_database, serve_api

from ordergraph import cli, demo
from ordergraph.core import auth, db, migrations
from ordergraph.core.settings import Settings
from ordergraph.core.statusgraph import default_graph
from ordergraph.core.tables import ApiToken
from ordergraph.stages.fulfilment import teams

ORDERGRAPH = str(Path(sys.executable).with_name("ordergraph"))
# Generous bounds for a slow machine; a passing run takes a fraction of them.
COMMAND_TIMEOUT = 120
DEMO_START_TIMEOUT = 120
README = Path(__file__).resolve().parent.parent / "README.md"


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


async def read_until_ready(stream: asyncio.StreamReader, deadline: float) -> list[str]:
    """What ``serve --demo`` prints until uvicorn says it is accepting connections."""
    seen: list[str] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("the demo did not start in time:\n" + "".join(seen))
        raw = await asyncio.wait_for(stream.readline(), remaining)
        if not raw:
            raise AssertionError("the demo exited:\n" + "".join(seen))
        seen.append(raw.decode())
        if "Uvicorn running on" in seen[-1]:
            return seen


def printed_tokens(output: list[str]) -> dict[str, str]:
    """The tokens ``serve --demo`` printed, by the first word of their line (admin, customer)."""
    return {
        words[0]: words[-1]
        for words in (line.split() for line in output)
        if len(words) >= 2 and words[-1].startswith("og_")
    }


@dataclass
class Demo:
    """A running ``ordergraph serve --demo``: what it printed, and a client of it."""

    output: list[str]
    client: httpx.AsyncClient

    @property
    def tokens(self) -> dict[str, str]:
        return printed_tokens(self.output)

    async def query(self, text: str, variables: dict | None = None, *, as_: str = "admin") -> dict:
        response = await self.client.post(
            "/graphql",
            json={"query": text, "variables": variables or {}},
            headers={"Authorization": f"Bearer {self.tokens[as_]}"},
        )
        body = response.json()
        assert "errors" not in body, body
        return body["data"]


@contextlib.asynccontextmanager
async def running_demo(cwd: Path) -> AsyncIterator[Demo]:
    """``ordergraph serve --demo`` started in ``cwd``, as ``make demo`` starts it."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        ORDERGRAPH,
        "serve",
        "--demo",
        "--port",
        str(port),
        cwd=cwd,
        env=clean_env(PYTHONUNBUFFERED="1"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        output = await read_until_ready(proc.stdout, time.monotonic() + DEMO_START_TIMEOUT)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield Demo(output, client)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def readme_demo_output() -> list[str]:
    """The output of ``make demo`` the README shows (the indented block after "tokens:")."""
    quickstart = README.read_text().split("It prints the URL and three tokens:\n", 1)[1]
    shown: list[str] = []
    for line in quickstart.removeprefix("\n").splitlines():
        if line and not line.startswith("    "):
            break
        shown.append(line.strip())
    return shown[:-1] if shown and not shown[-1] else shown


def printed_as_in_readme(output: list[str]) -> list[str]:
    """What the demo printed (without uvicorn's log), with the README's port and tokens."""
    printed = [line.strip() for line in output if not line.startswith("INFO:")]
    printed = [re.sub(r"og_\S+", "og_...", line) for line in printed]
    printed = [re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:8000", line) for line in printed]
    return printed[:-1] if printed and not printed[-1] else printed


async def test_demo_serves_the_demo_shop_with_the_printed_tokens(tmp_path: Path) -> None:
    async with running_demo(tmp_path) as shop:
        assert set(shop.tokens) == {"admin", "customer", "staff"}
        assert printed_as_in_readme(shop.output) == readme_demo_output()
        assert (tmp_path / "ordergraph.db").exists()

        health = await shop.client.get("/health")
        assert health.json() == {"status": "ok", "database": "sqlite", "jobs": "embedded"}

        everything = await shop.query("{ orders { totalCount } }")
        assert everything["orders"]["totalCount"] == len(demo.ORDERS)

        ada = await shop.query("{ me { role } orders { totalCount } }", as_="customer")
        assert ada["me"]["role"] == "CUSTOMER"
        adas_orders = [o for o in demo.ORDERS if o.email == "ada@example.com"]
        assert ada["orders"]["totalCount"] == len(adas_orders)

        pia = await shop.query("{ myWork { order { externalId } } }", as_="staff")
        assert pia["myWork"]

        # The printed tokens work for a day, then stop by themselves.
        tokens = await asyncio.to_thread(ordergraph, "token", "list", cwd=tmp_path)
        assert tokens.returncode == 0, tokens.stderr
        rows = listed(tokens.stdout)
        assert set(rows) == {"demo-admin", "demo-ada", "pia"}
        for row in rows.values():
            lifetime = datetime.datetime.fromisoformat(row["EXPIRES (UTC)"])
            lifetime -= datetime.datetime.fromisoformat(row["CREATED (UTC)"])
            assert abs(lifetime - demo.DEMO_TOKEN_LIFETIME) <= SHOWN_TO_THE_MINUTE


CSV_HEADER = "external_id,customer_email,sku,quantity,currency,ship_name,ship_line1,ship_city,"
CSV_HEADER += "ship_postal_code,ship_country\n"
ADA = "ada@example.com,{sku},{quantity},EUR,Ada Lovelace,12 St James's Square,London,SW1Y 4JH,GB"
CSV_STATUSES = """
query Imported {
  orders(filter: {channel: "csv"}) {
    edges { node { externalId status reviewFindings { rule } } }
  }
}
"""
DECIDED = ("APPROVED", "REJECTED", "ON_HOLD")


def csv_orders(**lines: tuple[str, int]) -> str:
    """A CSV file with one order of Ada's per external id: (SKU, quantity)."""
    rows = [f"{ref}," + ADA.format(sku=sku, quantity=qty) for ref, (sku, qty) in lines.items()]
    return CSV_HEADER + "\n".join(rows) + "\n"


async def decided_orders(shop: Demo, count: int) -> dict[str, dict]:
    """The CSV orders, once review has decided ``count`` of them (the service's runner
    polls the outbox for jobs other processes wrote)."""
    deadline = time.monotonic() + 60
    while True:
        edges = (await shop.query(CSV_STATUSES))["orders"]["edges"]
        orders = {edge["node"]["externalId"]: edge["node"] for edge in edges}
        decided = [o for o in orders.values() if o["status"] in DECIDED]
        if len(decided) >= count:
            return orders
        assert time.monotonic() < deadline, f"review did not decide the orders: {orders}"
        await asyncio.sleep(0.2)


async def test_orders_imported_beside_the_demo_are_reviewed_with_its_rules(
    tmp_path: Path,
) -> None:
    """The demo's rules are in force for every command started in its directory: an
    import from another process is reviewed, and ``ordergraph plugins`` says so."""
    rules = ["credit_limit", "stock", "price_policy", "manual_review"]
    async with running_demo(tmp_path) as shop:
        assert shop.output[0] == (
            "Wrote the demo's review rules to ordergraph.toml; every ordergraph command run "
            "in this directory reads it.\n"
        )
        assert f"Review rules: {', '.join(rules)}.\n" in shop.output

        plugins = await asyncio.to_thread(ordergraph, "plugins", cwd=tmp_path)
        assert plugins.returncode == 0, plugins.stderr
        states = dict(line.split()[:2] for line in plugins.stdout.splitlines())
        enabled = list(demo.DEMO_PLUGINS)  # review, assignment and payment plugins
        assert {name: states[name] for name in enabled} == dict.fromkeys(enabled, "enabled")

        (tmp_path / "orders.csv").write_text(
            csv_orders(**{"CSV-1": ("MUG-001", 2), "CSV-2": ("BAG-TOTE", 5)})
        )
        imported = await asyncio.to_thread(ordergraph, "import", "csv", "orders.csv", cwd=tmp_path)
        assert imported.returncode == 0, imported.stdout + imported.stderr

        orders = await decided_orders(shop, 2)
        assert {ref: order["status"] for ref, order in orders.items()} == {
            "CSV-1": "APPROVED",
            "CSV-2": "REJECTED",  # one tote bag left
        }
        assert [f["rule"] for f in orders["CSV-1"]["reviewFindings"]] == rules

    # No service running: the command leaves the review in the outbox, and the next
    # start of the demo (which reads the file it wrote) runs it.
    (tmp_path / "later.csv").write_text(csv_orders(**{"CSV-3": ("LAMP-DESK", 7)}))
    imported = await asyncio.to_thread(ordergraph, "import", "csv", "later.csv", cwd=tmp_path)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    async with running_demo(tmp_path) as shop:
        assert not any("Wrote" in line for line in shop.output)
        orders = await decided_orders(shop, 3)
        assert orders["CSV-3"]["status"] == "ON_HOLD"  # over 500.00


@pytest.mark.parametrize("command", [["serve"], ["serve", "--demo"]])
def test_serve_on_a_taken_port_says_so_in_one_line_before_anything_else(
    tmp_path: Path, command: list[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = ordergraph(*command, "--port", str(port), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        f"error: cannot listen on 127.0.0.1:{port}: the port is in use; stop what uses it "
        "or choose another with --port\n"
    )
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == [], "nothing is loaded or written before the check"


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


ORDERS_COUNT = "{ orders { totalCount } }"
# `token list` shows instants to the minute.
SHOWN_TO_THE_MINUTE = datetime.timedelta(minutes=1)


async def authenticates(api: Api, token: str) -> bool:
    """Whether the app accepts ``token``: a query that needs a principal, through the app."""
    response = await api.client.post(
        "/graphql", json={"query": ORDERS_COUNT}, headers={"Authorization": f"Bearer {token}"}
    )
    body = response.json()
    if "errors" not in body:
        return True
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"], body
    return False


def listed(output: str) -> dict[str, dict[str, str]]:
    """``ordergraph token list``'s table, by token name: column title -> value."""
    header, *rows = output.splitlines()
    titles = re.split(r"\s{2,}", header.strip())
    return {
        cells[1]: dict(zip(titles, cells, strict=True))
        for cells in (re.split(r"\s{2,}", row.strip()) for row in rows)
    }


async def test_revoked_and_expired_tokens_no_longer_authenticate(
    database_url: str, tmp_path: Path
) -> None:
    def token(*args: str) -> subprocess.CompletedProcess[str]:
        return ordergraph("token", *args, cwd=tmp_path, DATABASE_URL=database_url)

    async with serve_api(make_settings(database_url)) as api:
        created = {
            name: await asyncio.to_thread(token, "create", "--role", "admin", "--name", name, *more)
            for name, more in [
                ("ops", ["--expires-in", "30d"]),
                ("leaver", []),
                ("contractor", ["--expires-at", "2099-01-31T18:00+01:00"]),
            ]
        }
        assert {name: result.returncode for name, result in created.items()} == dict.fromkeys(
            created, 0
        ), {name: result.stderr for name, result in created.items()}
        tokens = {name: result.stdout.strip() for name, result in created.items()}
        for name, value in tokens.items():
            assert await authenticates(api, value), name

        before = await asyncio.to_thread(token, "list")
        assert before.returncode == 0, before.stderr
        shown = listed(before.stdout)
        assert shown["contractor"]["EXPIRES (UTC)"] == "2099-01-31 17:00"
        assert shown["leaver"]["EXPIRES (UTC)"] == "never"
        created_at = datetime.datetime.fromisoformat(shown["ops"]["CREATED (UTC)"])
        expires_at = datetime.datetime.fromisoformat(shown["ops"]["EXPIRES (UTC)"])
        assert abs(expires_at - created_at - datetime.timedelta(days=30)) <= SHOWN_TO_THE_MINUTE
        assert {row["STATE"] for row in shown.values()} == {"active"}
        for value in tokens.values():
            assert value.removeprefix("og_") not in before.stdout
            assert auth.hash_token(value) not in before.stdout

        revoked = await asyncio.to_thread(token, "revoke", shown["leaver"]["ID"])
        assert revoked.returncode == 0, revoked.stderr
        assert revoked.stdout == f"revoked token {shown['leaver']['ID']} (admin leaver)\n"
        again = await asyncio.to_thread(token, "revoke", shown["leaver"]["ID"])
        assert (again.returncode, again.stderr) == (
            2,
            f"error: token {shown['leaver']['ID']} was already revoked\n",
        )
        missing = await asyncio.to_thread(token, "revoke", "999999")
        assert (missing.returncode, missing.stderr) == (2, "error: no token with id 999999\n")

        # The contractor's contract ends: their expiry passes.
        await ApiToken.update(
            {ApiToken.expires_at: db.now() - datetime.timedelta(seconds=1)}
        ).where(ApiToken.name == "contractor")
        assert await authenticates(api, tokens["ops"])
        assert not await authenticates(api, tokens["leaver"])
        assert not await authenticates(api, tokens["contractor"])

        after = await asyncio.to_thread(token, "list")
        assert "ops" in listed(after.stdout)
        assert not {"leaver", "contractor"} & set(listed(after.stdout))
        everything = listed((await asyncio.to_thread(token, "list", "--all")).stdout)
        assert {name: everything[name]["STATE"] for name in tokens} == {
            "ops": "active",
            "leaver": "revoked",
            "contractor": "expired",
        }


async def test_token_create_refuses_a_team_that_does_not_exist(
    database_url: str, tmp_path: Path
) -> None:
    async with serve_api(make_settings(database_url)) as api:
        refused = await asyncio.to_thread(
            ordergraph, "token", "create", "--role", "staff", "--team", "packers",
            cwd=tmp_path, DATABASE_URL=database_url,
        )  # fmt: skip
        assert (refused.returncode, refused.stdout) == (2, "")
        assert refused.stderr == (
            "error: there is no team 'packers': there are no teams yet (define one with "
            "upsertTeam)\n"
        )

        await teams.upsert_team("packers", "", [teams.MemberData("pia", 5)])
        await teams.upsert_team("bulk", "", [teams.MemberData("bo", 5)])
        refused = await asyncio.to_thread(
            ordergraph, "token", "create", "--role", "staff", "--name", "pia",
            "--team", "nosuchteam", cwd=tmp_path, DATABASE_URL=database_url,
        )  # fmt: skip
        assert (refused.returncode, refused.stdout) == (2, "")
        assert refused.stderr == (
            "error: there is no team 'nosuchteam'; the teams are bulk, packers\n"
        )
        assert not await ApiToken.exists().where(ApiToken.team == "nosuchteam")

        created = await asyncio.to_thread(
            ordergraph, "token", "create", "--role", "staff", "--name", "pia",
            "--team", "packers", cwd=tmp_path, DATABASE_URL=database_url,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        assert await authenticates(api, created.stdout.strip())


@pytest.mark.parametrize(
    ("expiry", "complaint"),
    [
        (["--expires-in", "30 days"], "'30 days' is not a duration"),
        (["--expires-in", "0d"], "'0d' is not a duration"),
        (["--expires-at", "next week"], "'next week' is not an ISO 8601 date or time"),
        (
            ["--expires-at", "2020-01-31"],
            "the expiry 2020-01-31T00:00:00+00:00 is not in the future",
        ),
        (["--expires-in", "1d", "--expires-at", "2099-01-01"], "not allowed with argument"),
    ],
)
def test_token_create_refuses_an_expiry_it_cannot_honour(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    expiry: list[str],
    complaint: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "REDIS_URL", "ORDERGRAPH_CONFIG", "ORDERGRAPH_ENV"):
        monkeypatch.delenv(name, raising=False)
    try:
        status = cli.main(["token", "create", "--role", "admin", *expiry])
    except SystemExit as exit:  # argparse's own refusals
        status = exit.code
    printed = capsys.readouterr()
    assert status == 2
    assert complaint in printed.err
    assert printed.out == ""


def test_every_command_and_option_says_what_it_does() -> None:
    """``--help`` of every command, plugins' commands included, explains each entry."""
    unexplained: list[str] = []

    def walk(command: argparse.ArgumentParser) -> None:
        command.format_help()
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    if not choice.help:
                        unexplained.append(f"{command.prog} {choice.dest}")
                for subcommand in action.choices.values():
                    walk(subcommand)
            elif not action.help or action.help == argparse.SUPPRESS:
                unexplained.append(
                    f"{command.prog} {'/'.join(action.option_strings) or action.dest}"
                )

    top = cli.parser(Settings())
    walk(top)
    assert unexplained == []
    commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    assert {"serve", "migrate", "worker", "token", "import"} <= set(commands.choices)


def test_serve_with_workers_needs_redis_and_no_demo(tmp_path: Path) -> None:
    port = str(free_port())
    alone = ordergraph("serve", "--workers", "2", "--port", port, cwd=tmp_path)
    assert alone.returncode == 2
    assert "error: --workers needs REDIS_URL" in alone.stderr
    demo = ordergraph("serve", "--demo", "--workers", "2", "--port", port, cwd=tmp_path)
    assert demo.returncode == 2
    assert "error: --demo runs in one process" in demo.stderr
    assert list(tmp_path.iterdir()) == [], "nothing is loaded or written before the check"


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL is not among the backends")
async def test_serve_with_two_workers_starts_two_api_processes_on_one_port(
    tmp_path: Path, redis_url: str
) -> None:
    """``serve --workers 2``: two API processes share the port and the database, with
    Redis for their events, and ``--access-log`` logs every request."""
    async with new_postgres_database("og_cli") as url:
        await db.connect(url)
        try:
            await migrations.migrate()
            token = await auth.create_token("admin", name="ops")
        finally:
            await db.disconnect()
        port = free_port()
        log = (tmp_path / "serve.log").open("wb")
        server = subprocess.Popen(
            [ORDERGRAPH, "serve", "--workers", "2", "--access-log", "--port", str(port)],
            cwd=tmp_path,
            env=clean_env(DATABASE_URL=url, REDIS_URL=redis_url, PYTHONUNBUFFERED="1"),
            stdout=log,
            stderr=log,
        )
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                deadline = time.monotonic() + DEMO_START_TIMEOUT
                while (tmp_path / "serve.log").read_text().count("startup complete") < 2:
                    assert server.poll() is None, (tmp_path / "serve.log").read_text()
                    assert time.monotonic() < deadline, "serve --workers 2 did not start"
                    await asyncio.sleep(0.1)
                serving = [line for line in (tmp_path / "serve.log").read_text().splitlines()
                           if "Started server process" in line]  # fmt: skip
                health = (await client.get("/health")).json()
                assert health["jobs"] == "workers"
                assert health["redis"] == "ok"
                headers = {"Authorization": f"Bearer {token}"}
                created = await asyncio.gather(
                    *(post_separately(port, headers, f"CLI-{i}@example.com") for i in range(20))
                )
        finally:
            server.terminate()
            server.wait(timeout=60)
            log.close()
    assert len(serving) == 2, "two API processes started"
    assert len(set(created)) == 20
    text = (tmp_path / "serve.log").read_text()
    assert text.count('"POST /graphql HTTP/1.1" 200') == 20


async def post_separately(port: int, headers: dict[str, str], email: str) -> str:
    """Create a customer over a connection of its own, so that requests spread over
    the processes; the new customer's id."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        response = await client.post(
            "/graphql",
            json={
                "query": "mutation($e: String!) { upsertCustomer(input: "
                '{email: $e, name: "C"}) { customer { id } errors { code } } }',
                "variables": {"e": email},
            },
            headers=headers,
        )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["upsertCustomer"]["customer"]["id"]


def test_worker_check_is_arqs_health_check_and_fails_without_a_worker(
    tmp_path: Path, redis_url: str
) -> None:
    # No worker of this database has reported to Redis: arq's check exits 1, as
    # `arq ordergraph.worker.WorkerSettings --check` does.
    url = f"sqlite:///{tmp_path}/og.db"
    checked = ordergraph("worker", "--check", cwd=tmp_path, DATABASE_URL=url, REDIS_URL=redis_url)
    assert checked.returncode == 1, checked.stderr
    assert "Health check failed" in checked.stderr
    arq = str(Path(ORDERGRAPH).with_name("arq"))
    same = subprocess.run(
        [arq, "ordergraph.worker.WorkerSettings", "--check"],
        cwd=tmp_path,
        env=clean_env(DATABASE_URL=url, REDIS_URL=redis_url),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert same.returncode == 1, same.stderr
