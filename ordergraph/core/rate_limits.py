"""Counting the uses of a ``RateLimit`` (declared in ``limits``) per key, in a sliding
window: in Redis across every process of a deployment when it has Redis, otherwise in
the one process. A use over a limit is refused with RATE_LIMITED and says when to retry.
"""

from __future__ import annotations

import collections
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.events import UNREACHABLE, channel_for
from ordergraph.core.limits import RateLimit

if TYPE_CHECKING:
    from ordergraph.core.runtime import Runtime

Use = tuple[RateLimit, str]
"""One limit and the key counted against it."""


class Counter(Protocol):
    async def wait(self, uses: tuple[Use, ...], count: bool) -> tuple[float, int]:
        """Seconds until the first full key has room again and its place in ``uses``
        (0 seconds: every key has room). With ``count``, each key in turn is counted up
        to the first full one."""


@dataclass
class ProcessCounter:
    """The counts of a service that runs as one process (no Redis)."""

    hits: dict[str, collections.deque[float]] = field(default_factory=dict)

    async def wait(self, uses: tuple[Use, ...], count: bool) -> tuple[float, int]:
        now = time.monotonic()
        for i, (limit, key) in enumerate(uses):
            hits = self.hits.setdefault(f"{limit.name}:{key}", collections.deque())
            while hits and hits[0] <= now - limit.window_seconds:
                hits.popleft()
            if len(hits) >= limit.count:
                return hits[0] + limit.window_seconds - now, i
            if count:
                hits.append(now)
        return 0.0, 0


# The same window in one atomic step for every process: per key, drop the hits older
# than its window, answer the wait when the key is full, else add this hit. Redis's
# clock is the one clock all processes share. ARGV: count (1 or 0), then per key its
# limit and window in ms, then this hit's member.
SLIDING_WINDOW_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return {math.max(1, tonumber(oldest[2]) + window - now), i - 1}
  end
  if ARGV[1] == '1' then
    redis.call('ZADD', key, now, ARGV[#ARGV])
    redis.call('PEXPIRE', key, window)
  end
end
return {0, 0}
"""


@dataclass
class RedisCounter:
    """The counts shared by every process of a deployment, kept in Redis; counted by
    this process alone (``fallback``) while Redis cannot be reached."""

    redis: Any
    prefix: str
    fallback: ProcessCounter

    async def wait(self, uses: tuple[Use, ...], count: bool) -> tuple[float, int]:
        keys = [f"{self.prefix}:{limit.name}:{key}" for limit, key in uses]
        sizes = [n for limit, _ in uses for n in (limit.count, int(limit.window_seconds * 1000))]
        try:
            waited, full = await self.redis.eval(
                SLIDING_WINDOW_SCRIPT, len(keys), *keys, int(count), *sizes, uuid.uuid4().hex
            )
        except UNREACHABLE:
            return await self.fallback.wait(uses, count)
        return int(waited) / 1000, int(full)


_process_counters: dict[int, ProcessCounter] = {}


def _counter(rt: Runtime) -> Counter:
    in_process = _process_counters.setdefault(id(rt), ProcessCounter())
    if rt.bus.redis is not None:
        prefix = channel_for(rt.settings.database_url, "rate-limits")
        return RedisCounter(rt.bus.redis, prefix, in_process)
    return in_process


def _later(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, math.ceil(seconds))} seconds"
    minutes = math.ceil(seconds / 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


async def check(rt: Runtime, field: str, *uses: Use, count: bool = True) -> None:
    """Count one use of every key (``count=False``: only look); RATE_LIMITED, naming
    ``field`` and when to retry, when a key is full. A use refused by a later key still
    counts for the earlier ones."""
    waited, full = await _counter(rt).wait(uses, count)
    if waited > 0:
        limit = uses[full][0]
        raise DomainError.of(
            ErrorCode.RATE_LIMITED,
            f"Too many {limit.what}; try again in {_later(waited)}.",
            field,
        )
