"""Waiting for a wake-up, for the loops that run until they are stopped."""

from __future__ import annotations

import asyncio


async def wait_until_set(event: asyncio.Event, timeout: float) -> None:
    """Return when ``event`` is set or ``timeout`` seconds have passed.

    ``asyncio.wait_for`` on Python 3.11 drops a cancellation that arrives as the event
    is set (python/cpython#86296): a worker told to stop while a commit woke it went
    on waiting forever. ``asyncio.timeout`` keeps it.
    """
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        pass
