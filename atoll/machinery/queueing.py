"""A work queue with client-go's guarantees.

* A key waiting in the queue is queued once, however often it is added.
* A key being processed is never handed to a second worker; adding it meanwhile
  marks it dirty, and it is queued again when the first worker calls ``done``.
* Failed keys come back with per-key exponential backoff (``add_rate_limited``) until
  ``forget`` resets it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class ShutDown(Exception):
    """The queue was shut down; workers should return."""


class WorkQueue(Generic[K]):
    def __init__(self, *, base_delay: float = 0.005, max_delay: float = 60.0,
                 clock: Callable[[], float] | None = None) -> None:
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._cond = asyncio.Condition()
        self._shutdown = False
        self._base, self._max = base_delay, max_delay
        self._waiting: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        """Keys waiting for a delayed add: when they become ready, and their timer (client-go's delaying queue)."""
        del clock

    def __len__(self) -> int:
        return len(self._queue)

    def _add_now(self, key: K) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._wake()

    def _wake(self) -> None:
        async def notify() -> None:
            async with self._cond:
                self._cond.notify()

        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(notify())

    def add(self, key: K) -> None:
        self._add_now(key)

    def add_after(self, key: K, delay: float) -> None:
        """Add ``key`` once ``delay`` has passed; a key already waiting keeps the earlier of the two times.

        So many delayed adds of one key within a short time cost one reconcile: a controller can
        coalesce a burst of events (client-go's delaying queue does the same).
        """
        if delay <= 0:
            self._add_now(key)
            return
        loop = asyncio.get_running_loop()
        ready_at = loop.time() + delay
        waiting = self._waiting.get(key)
        if waiting is not None:
            if waiting[0] <= ready_at:
                return
            waiting[1].cancel()

        def fire() -> None:
            self._waiting.pop(key, None)
            self._add_now(key)

        self._waiting[key] = (ready_at, loop.call_at(ready_at, fire))

    def backoff(self, key: K) -> float:
        delay: float = self._base * (2.0 ** self._failures.get(key, 0))
        return min(delay, self._max)

    def add_rate_limited(self, key: K) -> None:
        delay = self.backoff(key)
        self._failures[key] = self._failures.get(key, 0) + 1
        self.add_after(key, delay)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> K:
        async with self._cond:
            while not self._queue:
                if self._shutdown:
                    raise ShutDown
                await self._cond.wait()
            key = self._queue.popleft()
            self._processing.add(key)
            self._dirty.discard(key)
            return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake()

    async def shut_down(self) -> None:
        self._shutdown = True
        for _, handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()
        async with self._cond:
            self._cond.notify_all()
