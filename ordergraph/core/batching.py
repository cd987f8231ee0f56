"""Calls that go together: many callers, one round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batched(Generic[T, R]):
    """A call whose runs are done together: while one batch runs, the calls that come
    wait and then go as the next batch.

    It hands the items of a batch to ``run_many`` in one call, which returns for each
    item, in order, its result or the exception that failed that call alone; an
    exception it raises fails them all. The first call after a quiet spell goes once
    the event loop comes round again, with the calls made in the same turn. Which
    calls go together is only a matter of speed: ``run_many`` must do for each item
    what it would do for it alone, and batches go one after another, in the order
    their calls came.

    Review jobs are made one (a job runner runs such jobs outside its slots of
    concurrency: one batch at a time, whatever its size, is what they take), and so
    are the Redis bus's publishing, the reads of a submission and each request's token
    (``db.select_in``).
    """

    def __init__(self, run_many: Callable[[list[T]], Awaitable[list[R | BaseException]]]) -> None:
        self.run_many = run_many
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._running: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        if self._running is None:
            self._running = loop.create_task(self._run_batches())
        return await future

    async def _run_batches(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                await self._run_batch(batch)
        finally:
            self._running = None

    async def _run_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        outcomes: list[R | BaseException]
        try:
            outcomes = await self.run_many([item for item, _ in batch])
        except Exception as exc:
            outcomes = [exc] * len(batch)
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # its caller was cancelled meanwhile
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
