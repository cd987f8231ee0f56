"""The review pipeline with the embedded job runner beside the same with worker processes.

    .venv/bin/python benchmarks/workers_throughput.py [--orders N] [--concurrency C]
        [--workers 2] [--idle 60] [--rounds 1]

On a temporary PostgreSQL database (on the server of TEST_POSTGRES_URL) and the Redis
of REDIS_URL (default redis://127.0.0.1:6379/0), with the workload of
``review_throughput.py`` (the four review rules on, N orders of 3 lines submitted
through ``submit_order`` from C concurrent tasks), it measures two deployments:

* ``embedded``: one process submits and runs the jobs (no Redis);
* ``N workers``: the process submits with ``REDIS_URL`` set, so it runs no job, and
  N ``ordergraph worker`` processes run them.

The clock stops when every order is APPROVED and no job is left unfinished. For the
embedded runner, which runs the same code as a worker, it also counts the statements
that claimed jobs (a claim also records the jobs finished since the last one done)
and those that recorded finished jobs alone, and, staying idle for ``--idle`` seconds after,
the statements sent meanwhile (on PostgreSQL each also costs the pool's reset). For
both it reads how many of the machine's cores were idle, on average, while timed
(from ``/proc/stat``, on Linux).
With ``--rounds`` the two take turns that many times (the idle period is measured in
the first round), so that a busy machine slows both alike; the last table is the median
of each over the rounds.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/workers_throughput.py --before DIR \
        [--orders N] [--workers 2] [--idle 60] [--rounds 5]

compares worker deployments instead: the workers of the tree in DIR (a worktree of an
earlier commit: its ``ordergraph`` on the path of the submitting process and of its
workers) against this tree's, the same workload in turns (A B A B ...), each run in a
process of its own. ``--before outbox`` compares this tree's arq workers with this tree's
outbox runner (``core/jobs.py``, the embedded runner) run in worker processes as the
workers before arq ran it: each claims jobs from the outbox on PostgreSQL's NOTIFY, the
submitting process enqueues nothing to Redis, and events still go through Redis; the
same stages on both sides, so that only the engine differs. Staying idle after the
first run of each, it also counts the statements per minute of one more worker of that
tree, run in the benchmark's process, and the Redis commands per minute per worker
(``MONITOR``, those on the Redis database of REDIS_URL, divided among the workers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as redis
from common import fresh_database, markdown_table
from review_throughput import RULES, WARM_UP, draft, seed

from ordergraph.core import assembly, db, runtime
from ordergraph.core.auth import Principal, Role
from ordergraph.core.orders import submit_order
from ordergraph.core.settings import Settings
from ordergraph.core.tables import Order, OutboxJob
from ordergraph.worker import run_worker

ORDERGRAPH = str(Path(sys.executable).with_name("ordergraph"))
# A claim (which may also record finished jobs done), and a finish sent alone.
CLAIMS = ('UPDATE "outbox" SET "status" = \'running\'', 'UPDATE "outbox" SET "status" = CASE')
OUTBOX_UPDATE = 'UPDATE "outbox"'


@dataclass
class Result:
    runner: str
    orders: int
    jobs: int
    seconds: float
    idle_per_minute: float | None
    idle_cores: float | None = None
    claims: int | None = None
    finishes: int | None = None
    idle_statements_per_worker_minute: float | None = None
    idle_redis_per_worker_minute: float | None = None

    def row(self) -> tuple[str, ...]:
        per_job = (
            f"{self.claims / self.jobs:.2f} + {self.finishes / self.jobs:.2f}"
            if self.claims is not None and self.finishes is not None
            else "-"
        )
        return (
            self.runner,
            str(self.orders),
            f"{self.seconds:.2f}",
            f"{self.orders / self.seconds:.1f}",
            f"{self.jobs / self.seconds:.1f}",
            per_job,
            "-" if self.idle_per_minute is None else f"{self.idle_per_minute:.1f}",
            "-" if self.idle_cores is None else f"{self.idle_cores:.2f}",
        )


async def submit_all(rt: runtime.Runtime, prefix: str, orders: int, concurrency: int) -> None:
    principal = Principal(Role.INTEGRATOR, "benchmark")
    queue = iter(range(orders))

    async def client() -> None:
        for i in queue:
            await submit_order(rt, draft(f"{prefix}-{i}"), principal)

    await asyncio.gather(*(client() for _ in range(concurrency)))


async def decided(total: int, timeout: float = 600) -> None:
    """Wait until ``total`` orders are APPROVED and no job is left unfinished."""
    async with asyncio.timeout(timeout):
        while True:
            unfinished = await OutboxJob.count().where(
                OutboxJob.status.is_in(["pending", "running"])
            )
            if not unfinished and await Order.count().where(Order.status == "APPROVED") == total:
                return
            await asyncio.sleep(0.02)


def idle_seconds() -> float | None:
    """CPU time the machine's cores have spent idle since boot (Linux), or None."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    return int(fields[4]) / os.sysconf("SC_CLK_TCK")


async def idle_per_minute(log: db.StatementLog, seconds: float) -> float:
    """Statements this process sent while nothing happened for ``seconds``."""
    mark = len(log.statements)
    await asyncio.sleep(seconds)
    return (len(log.statements) - mark) * 60 / seconds


async def measure(
    rt: runtime.Runtime,
    name: str,
    orders: int,
    concurrency: int,
    idle: float | None,
    log: db.StatementLog | None = None,
) -> Result:
    """Warm up, then time ``orders``; ``log`` (this process's statements) gives the
    claims and finishes of the timed run."""
    await seed(orders)
    await submit_all(rt, "warm", WARM_UP, concurrency)
    await decided(WARM_UP)
    first_job = (await OutboxJob.select(OutboxJob.id).order_by(OutboxJob.id, ascending=False)
                 .first())["id"]  # fmt: skip
    mark = len(log.statements) if log else 0
    idle_before = idle_seconds()
    started = time.perf_counter()
    await submit_all(rt, "bench", orders, concurrency)
    await decided(WARM_UP + orders)
    seconds = time.perf_counter() - started
    idle_after = idle_seconds()
    timed = log.statements[mark:] if log else []
    jobs = await OutboxJob.count().where(OutboxJob.id > first_job)
    idle_rate = None if idle is None or log is None else await idle_per_minute(log, idle)
    result = Result(name, orders, jobs, seconds, idle_rate)
    if idle_before is not None and idle_after is not None:
        result.idle_cores = (idle_after - idle_before) / seconds
    if log is not None:
        result.claims = sum(s.startswith(CLAIMS) for s in timed)
        result.finishes = sum(
            s.startswith(OUTBOX_UPDATE) and not s.startswith(CLAIMS) and "finished_at" in s
            for s in timed
        )
    return result


async def embedded(orders: int, concurrency: int, idle: float | None, slots: int) -> Result:
    async with fresh_database("postgresql") as url:
        rt = assembly.build(Settings(database_url=url, plugins=RULES, job_concurrency=slots))
        # The runner's tasks start in open(): they record into a log entered before it.
        with db.count_statements() as log:
            await rt.open(run_jobs=True)
            try:
                return await measure(rt, "embedded", orders, concurrency, idle, log)
            finally:
                await rt.close()


def rules_config(directory: Path, slots: int) -> Path:
    path = directory / "ordergraph.toml"
    path.write_text(
        f"[ordergraph]\njob_concurrency = {slots}\n\n"
        + "".join(f"[plugins.{name}]\nenabled = true\n\n" for name in RULES),
    )
    return path


@contextlib.contextmanager
def worker_processes(
    count: int, env: dict[str, str], directory: Path, outbox_runner: bool
) -> Iterator[None]:
    command = (
        [sys.executable, __file__, "--outbox-worker"] if outbox_runner else [ORDERGRAPH, "worker"]
    )
    started = []
    try:
        for n in range(count):
            with (directory / f"worker-{n}.log").open("wb") as log:
                started.append(subprocess.Popen(command, env=env, stdout=log, stderr=log))
        yield
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait(timeout=30)


async def run_outbox_runner(
    settings: Settings, *, stop: asyncio.Event, started: asyncio.Event | None = None
) -> None:
    """This tree's outbox runner as a worker of ``--before outbox``, with the Redis
    event bus, until ``stop`` is set."""
    rt = assembly.build(settings)
    rt.make_carrier = None
    await rt.open(run_jobs=True)
    if started is not None:
        started.set()
    try:
        await stop.wait()
    finally:
        await rt.close()


async def outbox_worker() -> int:
    """A worker process of ``--before outbox``, until SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await run_outbox_runner(Settings.from_env(dict(os.environ)), stop=stop)
    return 0


@contextlib.asynccontextmanager
async def with_workers(
    count: int, url: str, redis_url: str, slots: int, outbox_runner: bool = False
) -> AsyncIterator[runtime.Runtime]:
    with tempfile.TemporaryDirectory(prefix="og_workers_") as directory:
        config = rules_config(Path(directory), slots)
        env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url}
        env["ORDERGRAPH_CONFIG"] = str(config)
        rt = assembly.build(Settings.from_env(env))
        if outbox_runner:
            rt.make_carrier = None  # the jobs stay in the outbox for the runners to claim
        await rt.open(run_jobs=False)
        assert rt.runner is None
        try:
            with worker_processes(count, env, Path(directory), outbox_runner):
                yield rt
        finally:
            await rt.close()


async def workers(
    count: int,
    redis_url: str,
    orders: int,
    concurrency: int,
    idle: float | None,
    slots: int,
    name: str = "",
    outbox_runner: bool = False,
) -> Result:
    async with (
        fresh_database("postgresql") as url,
        with_workers(count, url, redis_url, slots, outbox_runner) as rt,
    ):
        result = await measure(rt, name or f"{count} workers", orders, concurrency, None)
        if idle:
            result.idle_statements_per_worker_minute, commands = await idle_deployment(
                rt.settings, redis_url, idle, outbox_runner
            )
            result.idle_redis_per_worker_minute = commands / (count + 1)
        return result


async def idle_deployment(
    settings: Settings, redis_url: str, seconds: float, outbox_runner: bool
) -> tuple[float, float]:
    """Statements per minute of one more worker (an arq worker, or this tree's outbox
    runner), run in this process, and commands per minute the Redis database of
    ``redis_url`` receives, while the deployment stays idle for ``seconds`` (after the
    first 10 s, in which the new worker starts)."""
    client = redis.Redis.from_url(redis_url)
    database = client.connection_pool.connection_kwargs.get("db", 0)

    async def count_commands(counted: list[int]) -> None:
        async with client.monitor() as monitor:
            async for command in monitor.listen():
                if command.get("db") == database:
                    counted.append(1)

    stop, started = asyncio.Event(), asyncio.Event()
    worker = run_outbox_runner if outbox_runner else run_worker
    with db.count_statements() as log:
        running = asyncio.create_task(worker(settings, stop=stop, started=started))
    try:
        await asyncio.wait_for(started.wait(), 60)
        await asyncio.sleep(10)
        mark = len(log.statements)
        counted: list[int] = []
        monitoring = asyncio.create_task(count_commands(counted))
        await asyncio.sleep(seconds)
        statements = len(log.statements) - mark
        monitoring.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await monitoring
    finally:
        stop.set()
        await running
        await client.aclose()
    return statements * 60 / seconds, len(counted) * 60 / seconds


async def child(args: argparse.Namespace, redis_url: str) -> int:
    """One run of ``--before``'s comparison, in this process: its result as JSON."""
    result = await workers(
        args.workers,
        redis_url,
        args.orders,
        args.concurrency,
        args.idle or None,
        args.job_concurrency,
        args.child,
        args.outbox_runner,
    )
    print(json.dumps(dataclasses.asdict(result)))
    return 0


def compare(args: argparse.Namespace) -> int:
    """The workers of ``args.before``'s tree against this tree's, in turns."""
    here = str(Path(__file__).resolve().parents[1])
    if args.before == "outbox":
        trees = {"outbox runner (this tree)": here, "arq (this tree)": here}
    else:
        trees = {"outbox runner (before)": args.before, "arq (this tree)": here}
    results = []
    for round in range(args.rounds):
        for name, tree in trees.items():
            print(f"round {round + 1}: {name}...", file=sys.stderr)
            command = [sys.executable, __file__, "--child", name]
            if name.startswith("outbox") and args.before == "outbox":
                command.append("--outbox-runner")
            command += ["--orders", str(args.orders), "--concurrency", str(args.concurrency)]
            command += ["--workers", str(args.workers), "--job-concurrency"]
            command += [str(args.job_concurrency), "--idle", str(args.idle if round == 0 else 0)]
            env = {**os.environ, "PYTHONPATH": tree}
            out = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
            results.append(Result(**json.loads(out.stdout.strip().splitlines()[-1])))
    header = ("jobs run by", "orders", "seconds", "orders/s", "jobs/s",
              "idle statements/min per worker", "idle Redis commands/min per worker",
              "idle cores")  # fmt: skip
    print(markdown_table(header, [
        (r.runner, str(r.orders), f"{r.seconds:.2f}", f"{r.orders / r.seconds:.1f}",
         f"{r.jobs / r.seconds:.1f}",
         "-" if r.idle_statements_per_worker_minute is None
         else f"{r.idle_statements_per_worker_minute:.1f}",
         "-" if r.idle_redis_per_worker_minute is None
         else f"{r.idle_redis_per_worker_minute:.1f}",
         "-" if r.idle_cores is None else f"{r.idle_cores:.2f}")
        for r in results
    ]))  # fmt: skip
    print()
    medians = {
        name: statistics.median(r.orders / r.seconds for r in results if r.runner == name)
        for name in trees
    }
    before, after = medians.values()
    print(markdown_table(("jobs run by", "median orders/s"),
                         [(name, f"{rate:.1f}") for name, rate in medians.items()]))  # fmt: skip
    print(f"\narq's median is {100 * after / before:.0f} % of the outbox runner's")
    return 0


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=500, help="orders per run (default 500)")
    parser.add_argument("--concurrency", type=int, default=16, help="submitting tasks (16)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument(
        "--idle", type=float, default=60, help="idle seconds measured (60; 0: not measured)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="turns of both runs (1)")
    parser.add_argument(
        "--job-concurrency", type=int, default=8, help="jobs at once per runner (8)"
    )
    parser.add_argument(
        "--before",
        help="compare the workers of the tree in this directory with this tree's"
        " ('outbox': this tree's outbox runner in worker processes)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--outbox-runner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--outbox-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.outbox_worker:
        return await outbox_worker()
    counts = (args.orders, args.concurrency, args.workers, args.rounds, args.job_concurrency)
    if min(counts) < 1 or args.idle < 0:
        parser.error("every count must be positive, and --idle not negative")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if args.child:
        return await child(args, redis_url)
    if args.before:
        return compare(args)
    results = []
    for round in range(args.rounds):
        idle = args.idle if round == 0 and args.idle else None
        print(f"embedded: {args.orders} orders, {args.concurrency} tasks...", file=sys.stderr)
        results.append(await embedded(args.orders, args.concurrency, idle, args.job_concurrency))
        print(f"{args.workers} workers...", file=sys.stderr)
        results.append(
            await workers(
                args.workers, redis_url, args.orders, args.concurrency, idle, args.job_concurrency
            )
        )
    header = ("jobs run by", "orders", "seconds", "orders/s", "jobs/s",
              "statements per job (claims + finishes alone)", "idle statements/min",
              "idle cores")  # fmt: skip
    print(markdown_table(header, [r.row() for r in results]))
    print()
    medians = {
        name: statistics.median(r.orders / r.seconds for r in results if r.runner == name)
        for name in dict.fromkeys(r.runner for r in results)
    }
    print(markdown_table(("jobs run by", "median orders/s"),
                         [(name, f"{rate:.1f}") for name, rate in medians.items()]))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
