"""The ``ordergraph`` command."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import errno
import re
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ordergraph.core import assembly, db, migrations
from ordergraph.core.auth import TOKEN_ROLES
from ordergraph.core.errors import Problem
from ordergraph.core.limits import utc_instant
from ordergraph.core.settings import Settings
from ordergraph.stages.analytics.export import KPIS as KPI_NAMES
from ordergraph.stages.analytics.kpis import GroupBy

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
    if args.workers > 1 and args.demo:
        print("error: --demo runs in one process: leave out --workers", file=sys.stderr)
        return 2
    if args.workers > 1 and not settings.redis_url:
        print(
            "error: --workers needs REDIS_URL: subscription events reach every API process "
            "through Redis, and `ordergraph worker` processes run the jobs",
            file=sys.stderr,
        )
        return 2
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
    # Built here also with --workers, where each process builds its own: a plugin or
    # status graph that does not load stops the command before uvicorn starts.
    app = create_app(settings, on_startup=on_startup)
    # Say what is wrong with the database before uvicorn starts, not inside its traceback.
    asyncio.run(_with_db(settings, migrations.ensure_current, migrated=False))
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": "info",
        # A log line per request costs more than some requests; off unless asked for.
        "access_log": args.access_log,
        # Open /track live streams would hold a shutdown up for minutes; 10 s is enough
        # for the requests in flight.
        "timeout_graceful_shutdown": 10,
    }
    if args.workers > 1:
        # uvicorn starts each process from an import string; create_app reads the
        # same settings from the environment there.
        uvicorn.run("ordergraph.app:create_app", factory=True, workers=args.workers, **options)
    else:
        uvicorn.run(app, **options)
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

    from ordergraph.worker import check, run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.check:
        return check(settings)
    # arq logs two lines per job at INFO; the outbox and arq's results keep the record.
    logging.getLogger("arq.worker").setLevel(logging.WARNING)
    asyncio.run(run_worker(settings))
    return 0


def _positive(text: str) -> int:
    """``--workers``: a whole number of at least 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


_DURATION = re.compile(r"([1-9][0-9]{0,3})([mhdw])")
_DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _duration(text: str) -> datetime.timedelta:
    """``--expires-in``: a number and a unit, m(inutes), h(ours), d(ays) or w(eeks)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: a number up to 9999 and a unit, "
            "m, h, d or w (30m, 12h, 30d, 2w)"
        )
    return datetime.timedelta(**{_DURATION_UNITS[match[2]]: int(match[1])})


def _instant(text: str) -> datetime.datetime:
    """``--expires-at``: an ISO 8601 date or date and time; without an offset, UTC."""
    try:
        value = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date or time (2027-01-31, 2027-01-31T18:00+01:00)"
        ) from None
    problems: list[Problem] = []
    instant = utc_instant(value, "--expires-at", problems)
    if instant is None:
        raise argparse.ArgumentTypeError(problems[0].message)
    return instant


def _token_create(args: argparse.Namespace, settings: Settings) -> int:
    from ordergraph.core.auth import create_token
    from ordergraph.stages.fulfilment.teams import unknown_team

    expires_at = args.expires_at
    if args.expires_in is not None:
        expires_at = db.now() + args.expires_in

    async def work() -> str:
        if args.team is not None and (problem := await unknown_team(args.team)):
            raise ValueError(problem)
        return await create_token(args.role, name=args.name, customer_id=args.customer,
                                  team=args.team, expires_at=expires_at)  # fmt: skip

    try:
        print(asyncio.run(_with_db(settings, work)))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _shown_instant(value: datetime.datetime | None, empty: str) -> str:
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M") if value else empty


def _token_list(args: argparse.Namespace, settings: Settings) -> int:
    from ordergraph.core.auth import list_tokens

    tokens = asyncio.run(_with_db(settings, lambda: list_tokens(include_dead=args.all)))
    now = db.now()
    rows = [("ID", "NAME", "ROLE", "TEAM", "CUSTOMER", "CREATED (UTC)", "EXPIRES (UTC)", "STATE")]
    for token in tokens:
        rows.append((
            str(token.id), token.name, token.role, token.team or "-",
            "-" if token.customer_id is None else str(token.customer_id),
            _shown_instant(token.created_at, "-"), _shown_instant(token.expires_at, "never"),
            token.state(now),
        ))  # fmt: skip
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def _token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from ordergraph.core.auth import revoke_token

    try:
        token = asyncio.run(_with_db(settings, lambda: revoke_token(args.id)))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"revoked token {token.id} ({token.role} {token.name})")
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


def _analytics_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from ordergraph.stages.analytics.rollups import rebuild

    events = asyncio.run(_with_db(settings, rebuild))
    print(f"rebuilt the analytics rollups from {events} order events")
    return 0


def _day(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-12-31") from None


def _report(args: argparse.Namespace, settings: Settings) -> int:
    from ordergraph.core.errors import DomainError
    from ordergraph.stages.analytics import export, kpis

    wanted = kpis.Filter(team=args.team)

    async def work() -> kpis.Report:
        return await kpis.report(
            args.start, args.end, kpis.GroupBy(args.group_by), wanted, total=None, previous=None
        )

    try:
        found = asyncio.run(_with_db(settings, work))
    except DomainError as error:
        print(f"error: {error.problems[0].message}", file=sys.stderr)
        return 2
    columns, rows = export.table(args.kpi, found.groups)
    print((export.to_csv if args.format == "csv" else export.to_text)(columns, rows), end="")
    return 0


TOKEN_EXAMPLES = """\
examples:
  ordergraph token create --role admin --name ops
  ordergraph token create --role staff --name pia --team packers --expires-in 30d
  ordergraph token create --role customer --customer 1 --expires-at 2027-01-31
  ordergraph token list
  ordergraph token revoke 4
"""


def parser(settings: Settings | None = None) -> argparse.ArgumentParser:
    """The command line; with ``settings``, enabled plugins add their commands to it."""
    p = argparse.ArgumentParser(
        prog="ordergraph",
        description="An order management system. Every command reads DATABASE_URL (default: "
        "the SQLite file ordergraph.db here), REDIS_URL and ORDERGRAPH_CONFIG.",
        epilog="Run `ordergraph COMMAND --help` for a command's options.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the API (GraphQL at /graphql)",
        description="Run the API: GraphQL at /graphql over HTTP and websockets, and "
        "GraphiQL there in a browser unless in production.",
        epilog="example: ordergraph serve --demo --port 8080",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="load the demo shop into an empty database, write its review rules to "
        "ordergraph.toml when there is no config file, and print tokens to try it with",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default: 127.0.0.1, this machine only; "
        "0.0.0.0 for every interface)",
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="the TCP port to listen on (default: 8000)"
    )
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="API processes sharing the port (default: 1); more than one needs REDIS_URL",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request (default: off)")
    serve.set_defaults(run=_serve)

    sub.add_parser(
        "migrate",
        help="apply pending database migrations",
        description="Apply the database migrations not yet applied, and print their names "
        "(PostgreSQL: run it before starting a new version; SQLite is migrated on start).",
        epilog="example: DATABASE_URL=postgresql://og@db/og ordergraph migrate",
    ).set_defaults(run=_migrate)
    worker = sub.add_parser(
        "worker",
        help="run background jobs (an arq worker; needs REDIS_URL)",
        description="Run background jobs and periodic work from the deployment's arq queue; "
        "start as many as the load needs, beside `ordergraph serve`.",
        epilog="example: REDIS_URL=redis://127.0.0.1:6379/0 ordergraph worker",
    )
    worker.add_argument(
        "--check",
        action="store_true",
        help="arq's health check: exit 0 if a worker reported in the last minute, else 1",
    )
    worker.set_defaults(run=_worker)

    token = sub.add_parser(
        "token",
        help="create, list and revoke API tokens",
        description="Manage the bearer tokens clients send as Authorization: Bearer <token>.",
        epilog=TOKEN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_sub.add_parser(
        "create",
        help="create a token and print it",
        description="Create a token and print it; it is shown once and cannot be recovered.",
        epilog=TOKEN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    create.add_argument(
        "--role",
        required=True,
        choices=[r.value for r in TOKEN_ROLES],
        help="what the token may do: admin everything, staff operate orders, customer "
        "their own orders, integrator a channel's imports",
    )
    create.add_argument(
        "--customer", type=int, metavar="ID", help="the customer id (required for customer tokens)"
    )
    create.add_argument(
        "--name", help="who the token is for; shown as the actor (default: the role)"
    )
    create.add_argument("--team", help="the team of a staff member; must be an existing team")
    expiry = create.add_mutually_exclusive_group()
    expiry.add_argument(
        "--expires-in",
        type=_duration,
        metavar="DURATION",
        help="the token stops working after this long: 30m, 12h, 30d, 2w (default: never)",
    )
    expiry.add_argument(
        "--expires-at",
        type=_instant,
        metavar="WHEN",
        help="the token stops working at this ISO 8601 date or time; without an offset, "
        "UTC (2027-01-31, 2027-01-31T18:00+01:00)",
    )
    create.set_defaults(run=_token_create)
    listing = token_sub.add_parser(
        "list",
        help="list the tokens that work (never the tokens themselves)",
        description="List tokens: id, name, role, team, customer, when created and when "
        "they expire. The tokens themselves are never stored, so never shown.",
    )
    listing.add_argument("--all", action="store_true", help="include revoked and expired tokens")
    listing.set_defaults(run=_token_list)
    revoke = token_sub.add_parser(
        "revoke",
        help="revoke a token: it stops working at once",
        description="Revoke a token: requests that send it are refused as UNAUTHENTICATED.",
        epilog="example: ordergraph token revoke 4   (the ID column of `ordergraph token list`)",
    )
    revoke.add_argument("id", type=int, help="the token's id, from `ordergraph token list`")
    revoke.set_defaults(run=_token_revoke)

    sub.add_parser(
        "plugins",
        help="list installed plugins",
        description="List installed plugins: name, enabled or disabled, category, description.",
    ).set_defaults(run=_plugins)
    graph = sub.add_parser(
        "graph",
        help="print the merged status graph",
        description="Print the status graph with the states and transitions plugins add.",
        epilog="example: ordergraph graph --format dot | dot -Tsvg > graph.svg",
    )
    graph.add_argument(
        "--format",
        choices=["mermaid", "dot"],
        default="mermaid",
        help="mermaid (a stateDiagram for Markdown) or dot (Graphviz); default: mermaid",
    )
    graph.set_defaults(run=_graph)
    sub.add_parser(
        "hooks",
        help="print the hook reference (Markdown)",
        description="Print the reference of every hook a plugin may implement, in Markdown.",
    ).set_defaults(run=_hooks)
    analytics = sub.add_parser(
        "analytics",
        help="maintain the statistics' rollups",
        description="The rollups behind the statistics are kept as orders move; rebuild "
        "recomputes them from the orders' timelines.",
    )
    analytics_sub = analytics.add_subparsers(
        dest="analytics_command", required=True, metavar="ACTION"
    )
    analytics_sub.add_parser(
        "rebuild",
        help="recompute every rollup from the order events",
        description="Recompute every rollup and per-order fact from the order events, in "
        "one transaction (after restoring a backup, or to check the live ones).",
    ).set_defaults(run=_analytics_rebuild)
    report = sub.add_parser(
        "report",
        help="print a KPI as CSV or a table",
        description="Print a KPI for the days FROM to TO (UTC, inclusive), one row per "
        "group; docs/analytics.md defines every figure.",
        epilog="example: ordergraph report money --from 2026-11-01 --to 2026-11-30 "
        "--group-by channel --format table",
    )
    report.add_argument("kpi", choices=sorted(KPI_NAMES), help="the KPI to print")
    report.add_argument("--from", dest="start", type=_day, required=True, help="the first day")
    report.add_argument("--to", dest="end", type=_day, required=True, help="the last day")
    report.add_argument(
        "--group-by",
        choices=[g.value for g in GroupBy],
        default="day",
        help="one row per day, week, month, team, channel, person, order_type, priority, "
        "carrier or country (default: day)",
    )
    report.add_argument("--team", help="only the orders this team holds")
    report.add_argument(
        "--format", choices=["table", "csv"], default="table", help="default: table"
    )
    report.set_defaults(run=_report)
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
