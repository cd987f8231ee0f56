"""arq as the carrier of the outbox's jobs in the deployment with Redis.

The outbox stays the record: a job is a row written in the transaction of the change
that causes it, and its outcome (done, or failed with its error) is written back to
that row. arq carries the rows to the worker processes:

* the process that commits jobs enqueues them right after the commit (``Carrier``):
  all of a commit's jobs, and those of the commits of the same moment, in one script
  call, one round trip, under arq job ids made from the row ids
  (``prefix:000000000042``), so that a row sent twice runs once: the script, like
  ``ArqRedis.enqueue_job``, sends nothing for an id whose job or result exists;
* a relay in every worker sends the unfinished rows that are not in Redis ``RELAY_AFTER``
  seconds after their commit (the committing process died between its commit and its
  enqueue, or Redis was down). It looks when the outbox tells of a commit (PostgreSQL's
  NOTIFY, a change of the SQLite file), and once a minute anyway;
* ``OutboxJobs`` is what a worker runs: one arq function per job name, which keeps the
  jobs of one order (and each kind of event job) in the order they were written, runs
  ``job_concurrency`` jobs at once and the review jobs (``Batched``) beside them, as the
  embedded runner does, records the jobs that succeed in one statement for all that end
  together, and a failure on its row at once: retried with backoff (``arq.Retry``), or
  ``failed`` after its last attempt;
* periodic work runs on arq's cron, each job once per run across workers (the cron's
  job id) and once per period (the claim on its ``periodic_jobs`` row).

A result is kept ``KEEP_RESULT_SECONDS``: the relay sends a row at most
``RELAY_SEND_WITHIN`` after it read it unfinished, so a row whose job has just ended
finds its result there and is not sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis.asyncio as redis
from arq.connections import ArqRedis, create_pool
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from arq.cron import CronJob, cron
from arq.jobs import serialize_job
from arq.worker import Function, Retry, Worker, func
from redis.asyncio.client import Pipeline

from ordergraph.core import db, jobs, periodic
from ordergraph.core.batching import Batched
from ordergraph.core.events import channel_for
from ordergraph.core.jobs import UnknownJob, purge_done
from ordergraph.core.waiting import wait_until_set

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime

log = logging.getLogger(__name__)

KEEP_RESULT_SECONDS = 600
RELAY_AFTER = datetime.timedelta(seconds=2)
RELAY_SEND_WITHIN = 60.0
RELAY_IDLE_SECONDS = 60.0
# With Redis, commits notify at most once a second (migration 0015).
NOTIFIED_EVERY_SECONDS = 1.0
RELAY_BATCH = 2000
# arq's own limit on tries; the outbox row's max_attempts is the one that counts.
MAX_TRIES = 1000
# Room for recording a job's outcome after its own timeout, before arq's.
RECORD_SECONDS = 5.0
PURGE_EVERY_SECONDS = 3600
GATHER_SECONDS = 0.05
_UNFINISHED = "\"status\" IN ('pending', 'running')"

# KEYS: the queue, then each job's key and result key; ARGV: the wake-up channel, then
# each job's id, score, expiry (ms) and body. Enqueues the jobs that have neither.
_ENQUEUE = """
local sent = 0
for i = 0, (#KEYS - 1) / 2 - 1 do
  if redis.call('EXISTS', KEYS[2 + 2 * i], KEYS[3 + 2 * i]) == 0 then
    redis.call('PSETEX', KEYS[2 + 2 * i], ARGV[4 + 4 * i], ARGV[5 + 4 * i])
    redis.call('ZADD', KEYS[1], ARGV[3 + 4 * i], ARGV[2 + 4 * i])
    sent = sent + 1
  end
end
if sent > 0 then
  redis.call('PUBLISH', ARGV[1], sent)
end
return sent
"""
# How long an enqueued job may wait for a worker (arq's default).
EXPIRES_EXTRA_MS = 86_400_000


@dataclass(frozen=True)
class Names:
    """The Redis names of one deployment (Redis may be shared: they name its database)."""

    queue: str
    jobs: str
    wake: str

    @classmethod
    def of(cls, database_url: str) -> Names:
        return cls(
            queue=channel_for(database_url, "queue"),
            jobs=channel_for(database_url, "job"),
            wake=channel_for(database_url, "jobs-committed"),
        )

    def job_id(self, outbox_id: int) -> str:
        """The arq job id of an outbox row: zero-padded, so that jobs enqueued in the same
        millisecond are taken in the order they were written."""
        return f"{self.jobs}:{outbox_id:012d}"

    def outbox_ids(self, job_ids: list[str]) -> list[int]:
        """The outbox rows of those of ``job_ids`` that carry one (not the cron's)."""
        ours = self.jobs + ":"
        return [int(job_id[len(ours) :]) for job_id in job_ids if job_id.startswith(ours)]


def _ms(instant: Any) -> int:
    if isinstance(instant, str):  # SQLite
        instant = datetime.datetime.fromisoformat(instant)
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=datetime.UTC)
    return int(instant.timestamp() * 1000)


class Carrier:
    """Enqueues committed outbox rows to arq (``jobs.carry_with``)."""

    def __init__(self, redis_url: str, database_url: str) -> None:
        self.names = Names.of(database_url)
        self.redis = redis.Redis.from_url(redis_url)
        self._script = self.redis.register_script(_ENQUEUE)
        self._send = Batched(self._send_many)
        self._carried: jobs.Carrier | None = None

    async def send(self, rows: list[dict[str, Any]]) -> None:
        """Enqueue committed rows; a Redis that fails is logged (the relay sends them)."""
        try:
            await self._send(rows)
        except Exception:
            log.exception("enqueuing %s jobs failed; the relay will send them", len(rows))

    async def enqueue(self, rows: list[dict[str, Any]]) -> int:
        """Enqueue rows whose job and result are not in Redis, in one call; how many."""
        if not rows:
            return 0
        now = int(time.time() * 1000)
        keys, args = [self.names.queue], [self.names.wake]
        for row in rows:
            job_id = self.names.job_id(row["id"])
            score = max(_ms(row["run_after"]), now)
            body = serialize_job(
                row["name"], (row["id"], row["payload"], row["max_attempts"]), {}, None, now
            )
            keys += [job_key_prefix + job_id, result_key_prefix + job_id]
            args += [job_id, score, score - now + EXPIRES_EXTRA_MS, body]
        return int(await self._script(keys=keys, args=args))

    async def _send_many(self, batches: list[list[dict[str, Any]]]) -> list[None]:
        await self.enqueue([row for rows in batches for row in rows])
        return [None] * len(batches)

    async def missing(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows of which Redis has neither the job nor its result (one round trip)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for row in rows:
                job_id = self.names.job_id(row["id"])
                pipe.exists(job_key_prefix + job_id, result_key_prefix + job_id)
            found = await pipe.execute()
        return [row for row, count in zip(rows, found, strict=True) if not count]

    async def start(self) -> None:
        """Take this process's committed jobs from now on."""
        self._carried = jobs.carry_with(self.send)

    async def stop(self) -> None:
        jobs.carry_with(self._carried)
        await self.redis.aclose()


async def relay_once(carrier: Carrier, after_id: int = 0) -> tuple[int, int]:
    """Send the unfinished rows after ``after_id`` committed ``RELAY_AFTER`` ago or
    earlier that are not in Redis: how many were sent, and the last id looked at."""
    read_at = time.monotonic()
    rows = await db.raw(
        'SELECT "id", "name", "payload", "run_after", "max_attempts" FROM "outbox" '
        f'WHERE {_UNFINISHED} AND "id" > {{}} AND "created_at" <= {{}} ORDER BY "id" LIMIT {{}}',
        after_id,
        db.now() - RELAY_AFTER,
        RELAY_BATCH,
    )
    if not rows:
        return 0, after_id
    last = rows[-1]["id"]
    for row in rows:
        if not isinstance(row["payload"], str):
            row["payload"] = json.dumps(row["payload"])
    missing = await carrier.missing(rows)
    if not missing:
        return 0, last
    if time.monotonic() - read_at > RELAY_SEND_WITHIN:
        return 0, after_id  # a row read this long ago may have finished since: read again
    sent = await carrier.enqueue(missing)
    if sent:
        log.warning("relayed %s committed jobs that had not been enqueued", sent)
    return sent, last


@dataclass
class _Take:
    """Jobs a worker took from the queue together: those not arrived yet, and set once
    every one has."""

    waiting: set[int]
    complete: asyncio.Event = field(default_factory=asyncio.Event)


class JobAbandoned(RuntimeError):
    """A job whose attempts all ended without an outcome (its workers were killed)."""


class OutboxJobs:
    """What an arq worker runs: the outbox's jobs, the relay and the periodic work."""

    def __init__(self, rt: Runtime, carrier: Carrier) -> None:
        self.rt = rt
        self.carrier = carrier
        self.names = carrier.names
        self.concurrency = rt.settings.job_concurrency
        self.timeout = rt.settings.job_timeout_seconds
        self._slots = asyncio.Semaphore(self.concurrency)
        # The jobs in hand by ordering key: id -> ended.
        self._in_hand: dict[tuple[str, Any], dict[int, asyncio.Future[None]]] = {}
        self._record_done = Batched(self._mark_done)
        # The takes of jobs from the queue of which some have not reached ``run`` yet
        # (arq reads each one's body first, and they arrive in any order), by job.
        self._arrivals: dict[int, _Take] = {}
        self._batched_in_hand = 0
        self._relay_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def functions(self) -> list[Function]:
        return [
            func(self._function(name), name=name, keep_result=KEEP_RESULT_SECONDS)
            for name in self.rt.job_handlers
        ]

    def cron_jobs(self) -> list[CronJob]:
        """A cron job per periodic job, on the clock's times (UTC) of its step, and once
        when the worker starts (run only if the work is due: never run, or overdue)."""
        made = []
        for name, work in periodic.collect(self.rt).items():
            step, times = schedule(work.every)
            made.append(
                cron(
                    self._periodic(name, work, step),
                    name=f"periodic:{name}",
                    run_at_startup=True,
                    **times,
                )
            )
        return made

    def _function(self, name: str) -> Callable[..., Awaitable[None]]:
        async def run(ctx: dict[str, Any], outbox_id: int, payload: str, max_attempts: int) -> None:
            await self.run(name, outbox_id, json.loads(payload), max_attempts, ctx["job_try"])

        run.__qualname__ = name
        return run

    def _periodic(
        self, name: str, work: periodic.Periodic, step: int
    ) -> Callable[[dict[str, Any]], Awaitable[None]]:
        async def run(ctx: dict[str, Any]) -> None:
            # The run's time is the clock time it was due at (its job id ends in it; the
            # run at start-up takes the last one before it), so that one period later
            # the next run finds the work due to the millisecond.
            at_ms = int(ctx["job_id"].rsplit(":", 1)[1])
            due = datetime.datetime.fromtimestamp(at_ms // (step * 1000) * step, datetime.UTC)
            await periodic.run_due(self.rt, {name: work}, due)

        return run

    def holding_batch(self, in_hand: list[str]) -> bool:
        """Whether jobs run together (``Batched``, the review) are in hand, or may be:
        jobs of ``in_hand`` (arq job ids) that have not reached ``run`` yet."""
        if self._batched_in_hand:
            return True
        reached = {outbox_id for hand in self._in_hand.values() for outbox_id in hand}
        return any(outbox_id not in reached for outbox_id in self.names.outbox_ids(in_hand))

    def taken(self, job_ids: list[str]) -> None:
        """The worker took these jobs from the queue together (``WakingWorker``)."""
        take = _Take(set(self.names.outbox_ids(job_ids)))
        for outbox_id in take.waiting:
            self._arrivals[outbox_id] = take

    async def _arrive(self, outbox_id: int) -> None:
        """This job reached ``run``: wait until the jobs taken with it, and those taken
        before it, have too. Then the jobs of its order among them are in hand (it runs
        after them), and it starts in the same turn of the event loop as the others of
        its take (the review jobs among them go as one batch)."""
        take = self._arrivals.pop(outbox_id, None)
        if take is not None:
            take.waiting.discard(outbox_id)
            if not take.waiting:
                take.complete.set()
        waits = {id(t): t for other, t in self._arrivals.items() if other < outbox_id}
        if take is not None:
            waits[id(take)] = take
        for waiting in waits.values():
            if waiting.complete.is_set():
                continue
            try:
                async with asyncio.timeout(GATHER_SECONDS):
                    await waiting.complete.wait()
            except TimeoutError:
                # A taken job that never arrives (expired, say) holds nobody up again.
                for other in waiting.waiting:
                    self._arrivals.pop(other, None)
                waiting.waiting.clear()
                waiting.complete.set()
                return
        # Go with the jobs that the last arrival woke: they run in the next turn.
        await asyncio.sleep(0)

    async def run(
        self, name: str, outbox_id: int, payload: dict[str, Any], max_attempts: int, attempt: int
    ) -> None:
        """Run one outbox job after the earlier jobs in hand of its order (or kind), and
        record its outcome on its row."""
        job = jobs.ClaimedJob(outbox_id, name, payload, attempt, max_attempts)
        hand = self._in_hand.setdefault(job.ordering_key, {})
        ended = hand[outbox_id] = asyncio.get_running_loop().create_future()
        handler = self.rt.job_handlers.get(name)
        together = isinstance(handler, Batched)
        self._batched_in_hand += together
        try:
            await self._arrive(outbox_id)
            earlier = [done for other, done in hand.items() if other < outbox_id]
            if earlier:
                await asyncio.wait(earlier)
            if attempt > max_attempts:
                error = f"JobAbandoned: none of its {max_attempts} attempts ended"
                await self._record_failure(job, error, final=True)
                raise JobAbandoned(error)
            try:
                async with contextlib.nullcontext() if together else self._slots:
                    if handler is None:
                        raise UnknownJob(f"no job named {name!r} is registered")
                    async with asyncio.timeout(self.timeout):
                        await handler(payload)
            except Exception as exc:
                retry = await self._failed(job, exc)
                if retry is None:
                    raise
                raise retry from exc
            await self._record_done((outbox_id, attempt))
        finally:
            self._batched_in_hand -= together
            ended.set_result(None)
            del hand[outbox_id]
            if not hand:
                self._in_hand.pop(job.ordering_key, None)

    async def _failed(self, job: jobs.ClaimedJob, exc: Exception) -> Retry | None:
        """Record a failed attempt; arq's retry after the backoff, or None after the last
        attempt (the job fails for good, in arq's result too)."""
        error = f"{type(exc).__name__}: {exc}"
        final = job.attempts >= job.max_attempts
        log.warning("job %s (%s) attempt %s failed: %s", job.id, job.name, job.attempts, error)
        delay = min(self.rt.settings.job_retry_base_seconds * 2 ** (job.attempts - 1), 3600)
        await self._record_failure(job, error, final=final, delay=delay)
        return None if final else Retry(defer=delay)

    async def _record_failure(
        self, job: jobs.ClaimedJob, error: str, *, final: bool, delay: float = 0
    ) -> None:
        now = db.now()
        await db.raw(
            'UPDATE "outbox" SET "status" = {}, "attempts" = {}, "last_error" = {}, '
            f'"run_after" = {{}}, "finished_at" = {{}} WHERE "id" = {{}} AND {_UNFINISHED}',
            "failed" if final else "pending",
            job.attempts,
            error,
            now + datetime.timedelta(seconds=delay),
            now if final else None,
            job.id,
        )

    async def _mark_done(self, done: list[tuple[int, int]]) -> list[None]:
        """Mark the jobs that ended at the same moment done: one statement per attempt
        number among them (nearly always one)."""
        by_attempt: dict[int, list[int]] = {}
        for outbox_id, attempt in done:
            by_attempt.setdefault(attempt, []).append(outbox_id)
        for attempt, ids in sorted(by_attempt.items()):
            among, listed = db.one_of('"id"', ids)
            await db.raw(
                'UPDATE "outbox" SET "status" = \'done\', "finished_at" = {}, "attempts" = {} '
                f"WHERE {among} AND {_UNFINISHED}",
                db.now(),
                attempt,
                listed,
            )
        return [None] * len(done)

    async def start(self) -> None:
        """Start the relay (and the hourly purge of done rows)."""
        self._tasks = [asyncio.create_task(self._relay(), name="outbox-relay")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _relay(self) -> None:
        database = db.current()
        wakeups: jobs.Notifications | jobs.FileWatch = (
            jobs.FileWatch(database.engine.path, self._relay_wake.set)  # type: ignore[attr-defined]
            if database.is_sqlite
            else jobs.Notifications(database.url, self._relay_wake.set)
        )
        await wakeups.start()
        next_purge = next_full = 0.0
        # After a commit the relay looks at the rows after the last it looked at; once
        # a minute at all unfinished ones (a long transaction's, a Redis that lost jobs).
        looked_at = 0
        look_again_until = 0.0
        try:
            while True:
                if self._relay_wake.is_set():
                    # The commits of the second after a notification may not notify
                    # (migration 0015): look until their rows are RELAY_AFTER old.
                    look_again_until = (
                        time.monotonic() + NOTIFIED_EVERY_SECONDS + RELAY_AFTER.total_seconds()
                    )
                self._relay_wake.clear()
                wakeups.seen()
                try:
                    if time.monotonic() >= next_full:
                        next_full = time.monotonic() + RELAY_IDLE_SECONDS
                        looked_at = 0
                    _, looked_at = await relay_once(self.carrier, looked_at)
                    if time.monotonic() >= next_purge:
                        next_purge = time.monotonic() + PURGE_EVERY_SECONDS
                        retention = datetime.timedelta(days=self.rt.settings.outbox_retention_days)
                        await purge_done(retention)
                except Exception:
                    log.exception("the outbox relay failed; trying again")
                if time.monotonic() >= look_again_until:
                    await wait_until_set(self._relay_wake, RELAY_IDLE_SECONDS)
                # A commit: its process has RELAY_AFTER to enqueue its jobs itself.
                await asyncio.sleep(RELAY_AFTER.total_seconds())
        finally:
            await wakeups.stop()


_SECONDS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
_STEPS = (
    *((n, "second") for n in _SECONDS),
    *((n * 60, "minute") for n in _SECONDS),
    *((n * 3600, "hour") for n in (1, 2, 3, 4, 6, 8, 12)),
    (86400, "day"),
)


def schedule(every: datetime.timedelta) -> tuple[int, dict[str, Any]]:
    """The step (seconds) and arq's cron times for work due every ``every``: the longest
    step of the clock that divides it (the claim on ``periodic_jobs`` lets one run in
    each period through)."""
    seconds = max(int(every.total_seconds()), 1)
    step, unit = next((step, unit) for step, unit in reversed(_STEPS) if seconds % step == 0)
    if unit == "second":
        return step, {"second": set(range(0, 60, step))}
    if unit == "minute":
        return step, {"minute": set(range(0, 60, step // 60)), "second": 0}
    if unit == "hour":
        return step, {"hour": set(range(0, 24, step // 3600)), "minute": 0, "second": 0}
    return step, {"hour": 0, "minute": 0, "second": 0}


# KEYS: the queue; ARGV: now (ms), the in-progress timeout (ms), how many to take,
# the prefix of in-progress keys, how many due ids to look at. Takes (marks in
# progress) the first due jobs not in progress, as arq's worker does one at a time with
# a transaction of four round trips each; their ids and scores.
_TAKE = """
local taken = {}
local room = tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[5])
for i = 1, #due, 2 do
  if room <= 0 then break end
  local in_progress = ARGV[4] .. due[i]
  if redis.call('EXISTS', in_progress) == 0 then
    redis.call('PSETEX', in_progress, ARGV[2], '1')
    table.insert(taken, due[i])
    table.insert(taken, due[i + 1])
    room = room - 1
  end
end
return taken
"""


class _JoinedPipeline(Pipeline):
    """A transaction (``MULTI`` ... ``EXEC``) that goes to Redis with the others made at
    the same moment, as one: arq's worker sends two per job (taking it, ending it)."""

    def __init__(self, joined: Batched[Any, list[Any]], *args: Any) -> None:
        super().__init__(*args)
        self._joined = joined

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        if self.watching or self.explicit_transaction or self.scripts or not self.command_stack:
            return await super().execute(raise_on_error)
        try:
            results = await self._joined(self.command_stack)
        finally:
            await self.reset()
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results


class JoiningRedis(ArqRedis):
    """arq's Redis, whose plain transactions made at the same moment go in one: the
    commands of each in the order they were made, all of them at once (a transaction
    with ``WATCH``, as in ``enqueue_job``, goes alone)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._joined: Batched[Any, list[Any]] = Batched(self._run_joined)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        if not transaction:
            return super().pipeline(transaction, shard_hint)
        return _JoinedPipeline(
            self._joined, self.connection_pool, self.response_callbacks, True, shard_hint
        )

    async def _run_joined(self, stacks: list[list[Any]]) -> list[list[Any] | BaseException]:
        async with super().pipeline(transaction=True) as joined:
            for stack in stacks:
                for args, options in stack:
                    joined.pipeline_execute_command(*args, **options)
            results = await joined.execute(raise_on_error=False)
        each: list[list[Any] | BaseException] = []
        for stack in stacks:
            each.append(results[: len(stack)])
            results = results[len(stack) :]
        return each


class WakingWorker(Worker):
    """arq's worker, with two changes of how it takes jobs.

    * It looks at the queue when a committing process publishes on the deployment's
      wake-up channel (the enqueue script does), when a job in hand ends (a slot is
      free), and every ``idle_poll`` seconds anyway (jobs deferred by a retry or a delay,
      the cron), instead of every ``poll_delay``.
    * It takes the due jobs it has room for in one script call, instead of a
      transaction of four round trips per job, and starts them together: review jobs
      taken together are reviewed together, and two workers do not race for each job.

    Running a job and recording its result are arq's, on a ``JoiningRedis`` (``main``)."""

    def __init__(
        self,
        *args: Any,
        wake_channel: str,
        idle_poll: float,
        on_taken: Callable[[list[str]], None],
        holding_batch: Callable[[list[str]], bool],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, poll_delay=0, **kwargs)
        self.on_taken = on_taken
        self.holding_batch = holding_batch
        self.wake_channel = wake_channel
        self.idle_poll = idle_poll
        self._woken = asyncio.Event()
        self._look = True  # whether jobs may be due that were not there at the last take
        self._listener: asyncio.Task[None] | None = None
        self._take: Any = None

    async def main(self) -> None:
        """arq's, on a Redis that joins the transactions made at the same moment (those
        of the jobs taken together, and of the jobs that end together)."""
        if self._pool is None:
            made = await create_pool(
                self.redis_settings,
                job_deserializer=self.job_deserializer,
                job_serializer=self.job_serializer,
                default_queue_name=self.queue_name,
                expires_extra_ms=self.expires_extra_ms,
            )
            self._pool = JoiningRedis(
                made.connection_pool,
                job_deserializer=self.job_deserializer,
                job_serializer=self.job_serializer,
                default_queue_name=self.queue_name,
                expires_extra_ms=self.expires_extra_ms,
            )
        await super().main()

    async def _poll_iteration(self) -> None:
        """arq's, taking jobs with ``_take_due`` (without arq's burst mode and aborting
        of jobs, which the outbox's jobs do not use), then waiting for a reason to look
        again."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="arq-wake-ups")
        if self._woken.is_set():
            self._woken.clear()
            self._look = True
        if self.allow_pick_jobs and self._look and self._may_take():
            self._look = False
            if await self._take_due():
                self._look = True  # it took all it had room for: more may be due
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # what went wrong in arq's run_job is raised here, as in arq
        await self.heart_beat()
        waits: list[asyncio.Future[Any]] = [t for t in self.tasks.values() if not t.done()]
        woken = asyncio.ensure_future(self._woken.wait())
        if self.allow_pick_jobs and self._may_take():
            waits.append(woken)
        try:
            done, _ = await asyncio.wait(
                waits or [woken], timeout=self.idle_poll, return_when="FIRST_COMPLETED"
            )
        finally:
            woken.cancel()
        if not done:
            self._look = True  # a retry's or a delayed job's time may have come

    def _may_take(self) -> bool:
        """Whether to take jobs now: not while more than half of the room is in hand
        (as the outbox runner claims), nor while a batch of review jobs is in hand.
        Review jobs that come meanwhile wait in the queue, to be taken, and reviewed,
        together once the batch ends (or by another worker), instead of a few at a time
        in batches after it, each costing its statements."""
        if self.job_counter > self.max_jobs // 2:
            return False
        return not self.holding_batch([j for j, task in self.tasks.items() if not task.done()])

    async def _take_due(self) -> bool:
        """Take the due jobs there is room for, in one script call, and start them;
        whether they filled the room."""
        room = self.max_jobs - self.job_counter
        if room <= 0:
            return True
        if self._take is None:
            self._take = self.pool.register_script(_TAKE)
        taken = await self._take(
            keys=[self.queue_name],
            args=[
                int(time.time() * 1000),
                int(self.in_progress_timeout_s * 1000),
                room,
                in_progress_key_prefix,
                self.queue_read_limit,
            ],
        )
        job_ids = [job_id.decode() for job_id in taken[::2]]
        self.on_taken(job_ids)
        for job_id, score in zip(job_ids, taken[1::2], strict=True):
            await self.sem.acquire()
            self.job_counter += 1
            task = self.loop.create_task(self.run_job(job_id, int(float(score))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task
        return len(job_ids) >= room

    async def _listen(self) -> None:
        while True:
            pubsub = self.pool.pubsub()
            try:
                await pubsub.subscribe(self.wake_channel)
                self._woken.set()  # whatever was committed while nobody listened
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        self._woken.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lost the jobs' wake-ups; listening again")
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await super().close()
