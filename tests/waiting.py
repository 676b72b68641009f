"""Bounded polling for tests: wait for a condition, fail with a clear message after a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Await ``check()`` until it returns something truthy (returned), or raise after ``timeout`` s."""
    last: Any = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                last = await check()
                if last:
                    return last
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"condition not met within {timeout}s (last result: {last!r})") from None


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition",
             interval: float = 0.3) -> Any:
    """The blocking twin of :func:`eventually`, for end-to-end tests that drive processes."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not reached within {timeout}s; last: {last!r}")
