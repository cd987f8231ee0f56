"""The event bus that feeds GraphQL subscriptions.

Order events reach the bus right after commit, from the process that committed
them (``core.orders.announce``). ``InProcessBus`` fans them out to this process's subscribers;
``RedisBus`` publishes through Redis pub/sub so that every process with subscribers
receives every event and fans it out to its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ordergraph.core.batching import Batched

log = logging.getLogger(__name__)
QUEUE_SIZE = 1000
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
"""What a Redis that cannot be reached raises: callers that can do without it degrade."""
CONNECT_TIMEOUT_SECONDS = 2.0


def channel_for(database_url: str, purpose: str = "order-events") -> str:
    """The Redis pub/sub channel (or key prefix, for another ``purpose``) of the
    deployment that uses ``database_url``.

    Pub/sub ignores Redis database numbers, so two deployments sharing one Redis are
    kept apart by naming their database (server and name, or the SQLite file) in it.
    """
    parsed = urlparse(database_url)
    if parsed.scheme == "sqlite":
        where = str(Path(database_url.removeprefix("sqlite:///") or parsed.path).resolve())
    else:
        where = f"{parsed.hostname or 'localhost'}:{parsed.port or 5432}{parsed.path}"
    return f"ordergraph:{purpose}:{where}"


# End markers put on a subscriber's queue (compared by identity).
_TOO_SLOW: dict[str, Any] = {}
_CLOSED: dict[str, Any] = {}


class SubscriberTooSlow(RuntimeError):
    """A subscriber fell more than ``QUEUE_SIZE`` events behind and was dropped."""


class InProcessBus:
    redis: Any = None
    """The Redis client other shared state may use (None: one process, no Redis)."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[dict[str, Any]]] = set()

    async def start(self) -> None:
        pass

    async def unreachable(self) -> str | None:
        """Why the shared state (Redis) cannot be reached now; None when it can, or
        when there is none."""
        return None

    async def stop(self) -> None:
        for queue in list(self._queues):
            self._close(queue, _CLOSED)

    async def publish(self, message: dict[str, Any]) -> None:
        self._deliver(message)

    async def publish_many(self, messages: list[dict[str, Any]]) -> None:
        """Publish several messages, in order."""
        for message in messages:
            self._deliver(message)

    def _deliver(self, message: dict[str, Any]) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                log.warning("dropping a subscriber that is %s events behind", QUEUE_SIZE)
                self._close(queue, _TOO_SLOW)

    def _close(self, queue: asyncio.Queue[dict[str, Any]], end: dict[str, Any]) -> None:
        self._queues.discard(queue)
        if queue.full():
            # Make room for the end marker: a full queue must not leave its reader
            # waiting forever for messages that no longer come.
            queue.get_nowait()
        queue.put_nowait(end)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Receive every message published from now on, until the block ends."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)

        async def messages() -> AsyncIterator[dict[str, Any]]:
            while True:
                message = await queue.get()
                if message is _TOO_SLOW:
                    raise SubscriberTooSlow("the event stream fell behind; resubscribe")
                if message is _CLOSED:
                    return
                yield message

        try:
            yield messages()
        finally:
            self._queues.discard(queue)


class RedisBus(InProcessBus):
    """Publishes on a Redis channel, and delivers what the channel carries to this
    process's subscribers.

    A process listens to the channel from its first subscriber on (a worker, which has
    none, never does), and the publishes of concurrent callers that come while one is
    on its way to Redis go together in the next pipeline.
    """

    def __init__(self, url: str, channel: str) -> None:
        super().__init__()
        self.url = url
        self.channel = channel
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._publish = Batched(self._publish_together)

    async def start(self) -> None:
        import redis.asyncio as redis

        self.redis = redis.Redis.from_url(self.url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS)
        # Without Redis the service still serves what the database can: say so in one
        # line; the client reconnects by itself once Redis answers.
        problem = await self.unreachable()
        if problem is not None:
            log.warning(
                "%s; starting without it: live events reach only this process's "
                "subscribers and /track lookups are counted per process until it answers",
                problem,
            )

    async def unreachable(self) -> str | None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                await self.redis.ping()
        except UNREACHABLE as exc:
            parsed = urlparse(self.url)
            where = f"{parsed.hostname}:{parsed.port or 6379}{parsed.path}"
            reason = str(exc).rstrip(".") or type(exc).__name__
            return f"Redis at {where} (REDIS_URL) is unreachable: {reason}"
        return None

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
            self._ready.clear()
        await self.redis.aclose()
        await super().stop()

    async def publish(self, message: dict[str, Any]) -> None:
        await self.publish_many([message])

    async def publish_many(self, messages: list[dict[str, Any]]) -> None:
        """Publish the messages, in order, in one round trip to Redis, shared with the
        publishes of other callers meanwhile; while Redis cannot be reached, to this
        process's subscribers only."""
        try:
            await self._publish(messages)
        except UNREACHABLE as exc:
            log.warning("Redis is unreachable (%s): events stay in this process", exc)
            for message in messages:
                self._deliver(message)

    async def _publish_together(
        self, batches: list[list[dict[str, Any]]]
    ) -> list[BaseException | None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for messages in batches:
                for message in messages:
                    pipe.publish(self.channel, json.dumps(message, default=str))
            await pipe.execute()
        return [None] * len(batches)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Receive every message published from now on (by any process), until the
        block ends."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="redis-bus")
        # While Redis is away, this process's own events still come (see publish_many).
        if self._ready.is_set() or await self.unreachable() is None:
            async with asyncio.timeout(10):
                await self._ready.wait()
        async with super().subscribe() as messages:
            yield messages

    async def _listen(self) -> None:
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._ready.set()
                    async for item in pubsub.listen():
                        if item["type"] == "message":
                            self._deliver(json.loads(item["data"]))
            except asyncio.CancelledError:
                raise
            except UNREACHABLE as exc:
                log.warning("lost the Redis event subscription (%s); reconnecting", exc)
                await asyncio.sleep(1)
            except Exception:
                log.exception("lost the Redis event subscription; reconnecting")
                await asyncio.sleep(1)
