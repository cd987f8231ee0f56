"""The ``ordergraph`` command."""

from __future__ import annotations

import argparse
import asyncio
import errno
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from ordergraph.core import assembly, db, migrations
from ordergraph.core.auth import TOKEN_ROLES
from ordergraph.core.settings import Settings

T = TypeVar("T")


# Where ``serve --demo`` writes its configuration: the file every process started in the
# same directory reads when ORDERGRAPH_CONFIG is not set.
DEMO_CONFIG_FILE = Path("ordergraph.toml")


def _cannot_listen(host: str, port: int) -> str | None:
    """Why the API could not listen on ``host:port`` (every address it resolves to, as
    uvicorn binds them), or None when it can."""
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        return f"{host} is not a host name or address of this machine ({exc.strerror})"
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            # As asyncio's server does: a port left in TIME_WAIT is free, a listener is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return "the port is in use; stop what uses it or choose another with --port"
                return exc.strerror or str(exc)
    return None


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from ordergraph.app import create_app

    where = f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}"
    # Before anything is loaded or printed: a taken port is one line, not a demo that
    # announces itself and then fails.
    problem = _cannot_listen(args.host, args.port)
    if problem is not None:
        print(f"error: cannot listen on {where}: {problem}", file=sys.stderr)
        return 2
    url = f"http://{where}/graphql"
    on_startup = []
    if args.demo:
        from ordergraph import demo
        from ordergraph.core.runtime import Runtime

        if settings.config_path is None:
            # The review rules go in a file, not in this process alone, so that an
            # `ordergraph import csv` run beside the demo enqueues the reviews it runs.
            try:
                if demo.write_config(DEMO_CONFIG_FILE):
                    print(
                        f"Wrote the demo's review rules to {DEMO_CONFIG_FILE}; every "
                        "ordergraph command run in this directory reads it."
                    )
            except OSError as exc:
                print(f"error: cannot write {DEMO_CONFIG_FILE}: {exc.strerror}", file=sys.stderr)
                return 2
            settings = Settings.from_env()

        async def load_demo(rt: Runtime) -> None:
            if await demo.seed(rt):
                print(f"Loaded the demo shop (customers, products and {len(demo.ORDERS)} orders).")
            if rt.review_rules:
                print(f"Review rules: {', '.join(rt.review_rules)}.")
            print(f"\nordergraph is running: open {url}\n")
            print("Send one of these tokens as the header Authorization: Bearer <token>")
            for who, token in (await demo.demo_tokens()).items():
                print(f"  {who:<16} {token}")
            print(flush=True)

        on_startup.append(load_demo)
    app = create_app(settings, on_startup=on_startup)
    # Say what is wrong with the database before uvicorn starts, not inside its traceback.
    asyncio.run(_with_db(settings, migrations.ensure_current, migrated=False))
    # Open /track live streams would hold a shutdown up for minutes; 10 s is enough for
    # the requests in flight.
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=10)
    return 0


async def _with_db(
    settings: Settings, work: Callable[[], Awaitable[T]], *, migrated: bool = True
) -> T:
    """Run ``work`` connected to the database (after checking its migrations, if ``migrated``)."""
    await db.connect(settings.database_url)
    try:
        if migrated:
            await migrations.ensure_current()
        return await work()
    finally:
        await db.disconnect()


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    applied = asyncio.run(_with_db(settings, migrations.migrate, migrated=False))
    print("applied: " + ", ".join(applied) if applied else "the database is up to date")
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    from ordergraph.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run_worker(settings))
    return 0


def _token_create(args: argparse.Namespace, settings: Settings) -> int:
    from ordergraph.core.auth import create_token

    async def work() -> str:
        return await create_token(args.role, name=args.name, customer_id=args.customer,
                                  team=args.team)  # fmt: skip

    try:
        print(asyncio.run(_with_db(settings, work)))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _plugins(args: argparse.Namespace, settings: Settings) -> int:
    manager = assembly.load_plugins(settings)
    for plugin in manager.plugins.values():
        state = "enabled " if plugin.enabled else "disabled"
        print(f"{plugin.name:<20} {state}  {plugin.info.category:<12} {plugin.info.description}")
    return 0


def _graph(args: argparse.Namespace, settings: Settings) -> int:
    graph = assembly.build_graph(assembly.load_plugins(settings))
    print(graph.to_mermaid() if args.format == "mermaid" else graph.to_dot(), end="")
    return 0


def _hooks(args: argparse.Namespace, settings: Settings) -> int:
    from ordergraph.core.hookdoc import hook_reference

    print(hook_reference(), end="")
    return 0


def parser(settings: Settings | None = None) -> argparse.ArgumentParser:
    """The command line; with ``settings``, enabled plugins add their commands to it."""
    p = argparse.ArgumentParser(prog="ordergraph", description="An order management system.")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API (GraphQL at /graphql)")
    serve.add_argument("--demo", action="store_true", help="load demo data and print tokens")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(run=_serve)

    sub.add_parser("migrate", help="apply pending database migrations").set_defaults(run=_migrate)
    sub.add_parser("worker", help="run background jobs (needs REDIS_URL)").set_defaults(run=_worker)

    token = sub.add_parser("token", help="manage API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a token and print it")
    create.add_argument("--role", required=True, choices=[r.value for r in TOKEN_ROLES])
    create.add_argument("--customer", type=int, help="the customer id (customer tokens)")
    create.add_argument("--name", help="who the token is for; shown as the actor")
    create.add_argument("--team", help="the team of a staff member")
    create.set_defaults(run=_token_create)

    sub.add_parser("plugins", help="list installed plugins").set_defaults(run=_plugins)
    graph = sub.add_parser("graph", help="print the merged status graph")
    graph.add_argument("--format", choices=["mermaid", "dot"], default="mermaid")
    graph.set_defaults(run=_graph)
    sub.add_parser("hooks", help="print the hook reference (Markdown)").set_defaults(run=_hooks)
    if settings is not None:
        assembly.load_plugins(settings).call_sync("register_commands", commands=sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings.from_env()
        args = parser(settings).parse_args(argv)
        return args.run(args, settings)
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
