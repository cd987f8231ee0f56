"""Orders from submission over HTTP to a review decision, beside the floor and the
in-process pipeline, and the service's CPU per order by layer.

    .venv/bin/python benchmarks/api_throughput.py [--orders N] [--concurrency C]
        [--rounds R] [--workers 1 2] [--profile] [--before DIR]
    .venv/bin/python benchmarks/api_throughput.py --reads 1000000 [--requests R] [--before DIR]

On temporary PostgreSQL databases (on the server of TEST_POSTGRES_URL) it measures,
each round, in turn:

* ``API``: the real service, ``ordergraph serve`` started as a subprocess with the
  four review rules of ``review_throughput.py`` on and its embedded job runner deciding.
  This process, as a client over HTTP, sends N orders of 3 lines through
  ``submitOrder`` on C kept-alive connections and stops the clock when every
  order is APPROVED and no job is left ("answered s": when the last order was
  answered). The service's CPU time (user + system, from ``/proc``, its uvicorn worker
  processes included) is divided by N, and so is this client's.
* ``in process``: the same N orders through ``submit_order`` from C tasks in this
  process, the embedded runner deciding (``review_throughput.py``); its CPU per order is
  this process's.
* ``floor``: the same rows in two plain transactions per order (``review_throughput.py``).

With ``--workers 1 2`` the API is measured once per count of ``serve --workers``, with
``REDIS_URL`` (default redis://127.0.0.1:6379/8) and one ``ordergraph worker`` running
the jobs (its CPU per order in a column of its own), as a deployment of several API
processes must. ``--profile`` adds one API run under ``py-spy`` (sampling, outside
the process) and splits the service's CPU per order into HTTP (uvicorn, starlette, the
GraphQL view's request handling), GraphQL (strawberry and graphql-core: parse, validate,
execute, serialize), API code (``ordergraph.graphql``), core and database (the stages,
the kernel, piccolo, asyncpg) and the rest (the event loop, the garbage collector, the
standard library).
``--before DIR`` also runs the service from another checkout (the code before a change)
in every round, just before this one's, as "API before"; the in-process pipeline and the
floor always run this checkout.

``--reads N`` instead loads N orders with ``scale_reads.py``'s loader, starts
``ordergraph serve`` on them and sends ``orders(first: 50)`` with lines and customers
over HTTP R times, one after the other, and prints p50 and p99 (with ``--before``, the
two services take turns on the same data, ``--rounds`` times each).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from common import ADDRESS, EMAIL, fresh_database, markdown_table
from review_throughput import (
    RULES,
    SKUS,
    WARM_UP,
    check_floor,
    concurrently,
    pipeline,
    postgres_floor,
    seed,
)

from ordergraph.core import assembly, auth, db
from ordergraph.core.settings import Settings
from ordergraph.core.tables import Order, OutboxJob

SUBMIT = """
mutation Submit($input: SubmitOrderInput!) {
  submitOrder(input: $input) { created order { id status } errors { field code message } }
}
"""
PAGE = (
    "{ orders(first: 50) { totalCount edges { node { id number status total "
    "lines { sku quantity unitPrice } customer { email name } } } pageInfo { endCursor } } }"
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Where a sampled stack's CPU goes: the innermost frame from one of these decides.
# py-spy names a frame "function (path/of/module.py:line)", the path from its sys.path entry.
LAYERS = (
    (
        "HTTP",
        re.compile(
            r"(^|/)(uvicorn|starlette|h11|httptools|cross_web|strawberry/http|"
            r"strawberry/asgi)/|(^|/)ordergraph/(app\.py|web/)"
        ),
    ),
    ("API code", re.compile(r"(^|/)ordergraph/graphql/")),
    ("GraphQL", re.compile(r"(^|/)(strawberry|graphql)/")),
    ("core + DB", re.compile(r"(^|/)(ordergraph|plugins|piccolo|asyncpg|redis)/")),
)
# The process's entry point, at the bottom of every stack: no layer of its own.
ENTRY = re.compile(r"(^|/)(ordergraph/cli\.py|uvicorn/(main|server|_compat)\.py)")
OTHER = "rest (event loop, GC, stdlib)"


@dataclass
class Run:
    kind: str
    orders: int
    seconds: float
    cpu_seconds: float | None = None
    layers: dict[str, float] = field(default_factory=dict)  # share of the samples
    client_cpu_seconds: float | None = None
    worker_cpu_seconds: float | None = None  # the ordergraph worker beside it, if any
    submitted_seconds: float | None = None  # until the last order was answered

    @property
    def rate(self) -> float:
        return self.orders / self.seconds

    @property
    def cpu_ms(self) -> float | None:
        return None if self.cpu_seconds is None else self.cpu_seconds * 1000 / self.orders


# -- The service as a subprocess --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's worker processes)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children[ppid].append(int(entry))
    tree, todo = [], [pid]
    while todo:
        tree.append(current := todo.pop())
        todo += children[current]
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    base_url: str
    helpers: list[subprocess.Popen[bytes]]

    def pids(self) -> list[int]:
        return process_tree(self.process.pid)


@contextlib.asynccontextmanager
async def served(
    url: str, *, rules: bool, workers: int = 1, redis_url: str | None = None, tree: str = ""
) -> AsyncIterator[Service]:
    """``ordergraph serve`` on ``url`` (with one ``ordergraph worker`` when ``redis_url``)."""
    with tempfile.TemporaryDirectory(prefix="og_api_") as directory:
        config = Path(directory) / "ordergraph.toml"
        config.write_text(
            "".join(f"[plugins.{name}]\nenabled = true\n\n" for name in RULES) if rules else ""
        )
        env = {**os.environ, "DATABASE_URL": url, "ORDERGRAPH_CONFIG": str(config)}
        env["ORDERGRAPH_ENV"] = "production"
        if tree:
            env["PYTHONPATH"] = os.pathsep.join([tree, env.get("PYTHONPATH", "")])
        env.pop("REDIS_URL", None)
        if redis_url:
            env["REDIS_URL"] = redis_url
        port = free_port()
        command = [sys.executable, "-m", "ordergraph.cli", "serve", "--port", str(port)]
        if workers > 1:
            command += ["--workers", str(workers)]
        log = (Path(directory) / "serve.log").open("wb")
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=directory)
        helpers = []
        if redis_url:
            helpers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "ordergraph.cli", "worker"],
                    env=env,
                    stdout=log,
                    stderr=log,
                    cwd=directory,
                )
            )
        try:
            base_url = f"http://127.0.0.1:{port}"
            await until_healthy(process, base_url, Path(directory) / "serve.log")
            yield Service(process, base_url, helpers)
        finally:
            for started in [process, *helpers]:
                started.send_signal(signal.SIGTERM)
            for started in [process, *helpers]:
                started.wait(timeout=60)
            log.close()


async def until_healthy(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
        for _ in range(600):
            if process.poll() is not None:
                raise RuntimeError(f"ordergraph serve stopped:\n{log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/health")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"ordergraph serve did not answer:\n{log.read_text()}")


@contextlib.contextmanager
def sampled(service: Service, workers: int, keep: str = "") -> Iterator[dict[str, float]]:
    """py-spy samples the service (and its worker processes) meanwhile; each layer's
    share of the samples fills the dict given."""
    with tempfile.TemporaryDirectory(prefix="og_spy_") as directory:
        output = Path(directory) / "profile.txt"
        command = ["py-spy", "record", "--format", "raw", "--nonblocking", "--rate", "250"]
        command += ["--output", str(output), "--pid", str(service.process.pid)]
        if workers > 1:
            command.append("--subprocesses")
        spy = subprocess.Popen(
            [str(Path(sys.executable).with_name(command[0])), *command[1:]],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)  # py-spy attaches
        shares: dict[str, float] = {}
        try:
            yield shares
        finally:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        shares.update(layer_shares(output))
        if keep:
            shutil.copyfile(output, keep)


def layer_shares(profile: Path) -> dict[str, float]:
    """Each layer's share of the samples of a ``py-spy --format raw`` file."""
    counts: collections.Counter[str] = collections.Counter()
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        layer = OTHER
        for frame in reversed(frames):
            path = frame.rpartition(" (")[2]
            if ENTRY.search(path):
                continue
            found = next((name for name, where in LAYERS if where.search(path)), None)
            if found:
                layer = found
                break
        counts[layer] += int(count)
    total = sum(counts.values()) or 1
    return {name: counts[name] / total for name, _ in (*LAYERS, (OTHER, None))}


# -- Submitting over HTTP ---------------------------------------------------------------


def order_input(external_id: str) -> dict:
    return {
        "externalId": external_id,
        "customerEmail": EMAIL,
        "lines": [{"sku": sku, "quantity": i + 1} for i, sku in enumerate(SKUS)],
        "shippingAddress": ADDRESS,
    }


class Connection:
    """One kept-alive HTTP/1.1 connection that POSTs GraphQL and reads the JSON answer:
    a client that costs little CPU, as the service's clients run on machines of their
    own (httpx spent 1.5 ms of CPU per order here, half of what the service spends)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base_url: str) -> Connection:
        host, port = base_url.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def post(self, body: dict, token: str) -> tuple[int, dict]:
        data = orjson.dumps(body)
        self.writer.write(
            b"POST /graphql HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {token}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])
        return status, orjson.loads(await self.reader.readexactly(length))

    def close(self) -> None:
        self.writer.close()


async def submit_all(base_url: str, token: str, prefix: str, orders: int, concurrency: int) -> None:
    queue = iter(range(orders))

    async def client() -> None:
        connection = await Connection.open(base_url)
        try:
            for i in queue:
                body = {"query": SUBMIT, "variables": {"input": order_input(f"{prefix}-{i}")}}
                status, answer = await connection.post(body, token)
                payload = (answer.get("data") or {}).get("submitOrder")
                if status != 200 or not payload or payload["errors"]:
                    raise RuntimeError(f"order {prefix}-{i} was refused: {answer}")
        finally:
            connection.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))


async def decided(total: int, timeout: float = 600) -> None:
    """Until ``total`` orders are APPROVED and no job is left unfinished."""
    async with asyncio.timeout(timeout):
        while True:
            approved = await Order.count().where(Order.status == "APPROVED")
            if approved == total and not await OutboxJob.count().where(
                OutboxJob.status.is_in(["pending", "running"])
            ):
                return
            await asyncio.sleep(0.01)


async def api_run(
    orders: int,
    concurrency: int,
    *,
    workers: int = 1,
    redis_url: str | None = None,
    profile: bool = False,
    keep: str = "",
    tree: str = "",
) -> Run:
    async with fresh_database("postgresql") as url:
        await db.connect(url)
        try:
            await seed(orders)
            token = await auth.create_token("integrator", name="benchmark")
            async with served(
                url, rules=True, workers=workers, redis_url=redis_url, tree=tree
            ) as svc:
                await submit_all(svc.base_url, token, "warm", WARM_UP, concurrency)
                await decided(WARM_UP)
                pids = svc.pids()
                helper_pids = [helper.pid for helper in svc.helpers]
                with contextlib.ExitStack() as stack:
                    profiled = stack.enter_context(sampled(svc, workers, keep)) if profile else None
                    cpu_before = cpu_seconds(pids)
                    helpers_before = cpu_seconds(helper_pids)
                    client_before = time.process_time()
                    started = time.perf_counter()
                    await submit_all(svc.base_url, token, "bench", orders, concurrency)
                    submitted = time.perf_counter() - started
                    await decided(WARM_UP + orders)
                    seconds = time.perf_counter() - started
                    cpu = cpu_seconds(pids) - cpu_before
                    client_cpu = time.process_time() - client_before
                    helpers_cpu = cpu_seconds(helper_pids) - helpers_before
                layers = profiled or {}
        finally:
            await db.disconnect()
    kind = "API" if workers == 1 and not redis_url else f"API, serve --workers {workers}"
    kind += " before" if tree else ""
    run = Run(kind + (" (profiled)" if profile else ""), orders, seconds, cpu, layers, client_cpu)
    run.worker_cpu_seconds = helpers_cpu if redis_url else None
    run.submitted_seconds = submitted
    return run


async def in_process(orders: int, concurrency: int) -> tuple[Run, Run]:
    """The in-process pipeline and the floor (``review_throughput.py``), on one database."""
    async with fresh_database("postgresql") as url:
        rt = assembly.build(Settings(database_url=url, plugins=RULES))
        await rt.open(run_jobs=True)
        try:
            customer_id = await seed(orders)
            await pipeline(rt, "warm", WARM_UP, concurrency)
            cpu_before = time.process_time()
            seconds = await pipeline(rt, "bench", orders, concurrency)
            cpu = time.process_time() - cpu_before
            async with postgres_floor(url, customer_id) as one:
                floor_seconds = await concurrently(orders, concurrency, one)
            await check_floor(orders)
        finally:
            await rt.close()
    return Run("in process", orders, seconds, cpu), Run("floor", orders, floor_seconds)


def per_order_ms(run: Run, seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000 / run.orders:.2f}"


def throughput_table(runs: list[Run], floors: list[Run]) -> str:
    floor = statistics.median(r.rate for r in floors)
    rows = [
        (
            r.kind,
            str(r.orders),
            f"{r.seconds:.2f}",
            "-" if r.submitted_seconds is None else f"{r.submitted_seconds:.2f}",
            f"{r.rate:.1f}",
            f"{r.rate / floor:.0%}",
            per_order_ms(r, r.cpu_seconds),
            per_order_ms(r, r.client_cpu_seconds),
            per_order_ms(r, r.worker_cpu_seconds),
        )
        for r in runs
    ]
    header = ("run", "orders", "seconds", "answered s", "orders/s", "of the median floor",
              "CPU ms / order", "client CPU ms / order", "job worker CPU ms / order")  # fmt: skip
    return markdown_table(header, rows)


def medians_table(runs: list[Run]) -> str:
    kinds = list(dict.fromkeys(r.kind for r in runs if "profiled" not in r.kind))
    floor = statistics.median(r.rate for r in runs if r.kind == "floor")
    inner = [r.cpu_ms for r in runs if r.kind == "in process" and r.cpu_ms is not None]
    rows = []
    for kind in kinds:
        mine = [r for r in runs if r.kind == kind]
        rate = statistics.median(r.rate for r in mine)
        cpu = [r.cpu_ms for r in mine if r.cpu_ms is not None]
        rows.append(
            (
                kind,
                str(len(mine)),
                f"{rate:.1f}",
                f"{rate / floor:.0%}",
                f"{statistics.median(cpu):.2f}" if cpu else "-",
                f"{statistics.median(cpu) / statistics.median(inner):.2f}"
                if cpu and inner
                else "-",
            )
        )
    header = ("run", "rounds", "median orders/s", "/ floor", "median CPU ms / order",
              "CPU / in process")  # fmt: skip
    return markdown_table(header, rows)


def layers_table(profiled: list[Run]) -> str:
    """The CPU per order of each profiled run, split by the shares of its samples."""
    names = list(profiled[0].layers)
    rows = [
        (
            name,
            *(f"{r.layers[name]:.0%} = {r.layers[name] * (r.cpu_ms or 0):.2f}" for r in profiled),
        )
        for name in names
    ]
    rows.append(("total", *(f"100% = {r.cpu_ms or 0:.2f}" for r in profiled)))
    header = ("service layer", *(f"{r.kind}: share = CPU ms / order" for r in profiled))
    return markdown_table(header, rows)


# -- Reads at scale ---------------------------------------------------------------------


async def reads(
    orders: int, requests: int, rounds: int, before: str
) -> list[tuple[str, list[float]]]:
    """The latencies of the page over HTTP, for each turn of a service on the same data."""
    from scale_reads import generate, load_postgres

    async with fresh_database("postgresql") as url:
        print(f"generating and loading {orders:,} orders...", file=sys.stderr)
        await load_postgres(url, generate(orders))
        await db.connect(url)
        try:
            token = await auth.create_token("admin", name="bench")
        finally:
            await db.disconnect()
        turns = [("before", before), ("now", "")] if before else [("now", "")]
        measured = []
        for _ in range(rounds):
            for name, tree in turns:
                async with (
                    served(url, rules=False, tree=tree) as svc,
                    httpx.AsyncClient(base_url=svc.base_url, timeout=120) as client,
                ):
                    measured.append((name, await page_latencies(client, token, requests)))
    return measured


async def page_latencies(client: httpx.AsyncClient, token: str, requests: int) -> list[float]:
    headers = {"Authorization": f"Bearer {token}"}
    latencies = []
    for i in range(requests + 10):  # the first ten warm up
        started = time.perf_counter()
        response = await client.post("/graphql", json={"query": PAGE}, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        body = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise RuntimeError(f"the page failed: {body}")
        if i >= 10:
            latencies.append(elapsed)
    return latencies


def reads_table(orders: int, measured: list[tuple[str, list[float]]]) -> str:
    rows = []
    for name, latencies in measured:
        cut = statistics.quantiles(latencies, n=100, method="inclusive")
        rows.append((name, f"{orders:,}", str(len(latencies)), f"{cut[49]:.1f}", f"{cut[98]:.1f}"))
    header = ("service", "orders", "requests", "p50 ms", "p99 ms")
    return "orders(first: 50) with lines and customers, over HTTP\n\n" + markdown_table(
        header, rows
    )


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1000, help="orders per run (1000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests at once (16)")
    parser.add_argument("--rounds", type=int, default=3, help="turns of every run (3)")
    parser.add_argument(
        "--workers", type=int, nargs="+", help="serve --workers counts, with REDIS_URL"
    )
    parser.add_argument("--profile", action="store_true", help="one more API run under py-spy")
    parser.add_argument("--profile-file", default="", help="keep py-spy's raw samples there")
    parser.add_argument("--before", default="", help="also run the service from this checkout")
    parser.add_argument("--reads", type=int, help="orders to load for the read latency instead")
    parser.add_argument("--requests", type=int, default=200, help="page requests (200)")
    args = parser.parse_args(argv)
    if min(args.orders, args.concurrency, args.rounds, *(args.workers or [1])) < 1:
        parser.error("every count must be at least 1")
    before = str(Path(args.before).resolve()) if args.before else ""
    if args.reads:
        print(reads_table(args.reads, await reads(args.reads, args.requests, args.rounds, before)))
        return 0
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/8")
    deployments = [(count, redis_url) for count in args.workers or []] or [(1, None)]
    trees = [before, ""] if before else [""]
    runs: list[Run] = []
    for round in range(args.rounds):
        print(f"round {round + 1}: {args.orders} orders, C={args.concurrency}", file=sys.stderr)
        first = len(runs)
        for count, redis in deployments:
            for tree in trees if count == 1 else [""]:  # --workers is new
                runs.append(
                    await api_run(
                        args.orders, args.concurrency, workers=count, redis_url=redis, tree=tree
                    )
                )
        runs += await in_process(args.orders, args.concurrency)
        print(throughput_table(runs[first:], runs[-1:]), file=sys.stderr)
    profiled = []
    if args.profile:
        count, redis = deployments[-1]
        for tree in trees if count == 1 else [""]:
            profiled.append(
                await api_run(
                    args.orders,
                    args.concurrency,
                    workers=count,
                    redis_url=redis,
                    profile=True,
                    keep=args.profile_file if not tree else "",
                    tree=tree,
                )
            )
    floors = [r for r in runs if r.kind == "floor"]
    print(throughput_table(runs + profiled, floors))
    print()
    print(medians_table(runs))
    if profiled:
        print()
        print(layers_table(profiled))
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"\nload average over the last 1, 5, 15 minutes: {load} ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
