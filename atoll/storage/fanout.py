"""In-process watch fan-out shared by the memory and SQLite stores.

A store that owns its data in this process publishes every committed change here, in
revision order. ``watch`` subscribes *before* replaying history from the backend, and
then skips live events it already replayed, so no change can fall in the gap between
the replay and the live stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from atoll.storage.protocol import WatchEvent

_CLOSED = object()


class Fanout:
    def __init__(self, queue_size: int = 100_000) -> None:
        self._subscribers: set[asyncio.Queue[object]] = set()
        self._queue_size = queue_size

    def publish(self, events: list[WatchEvent]) -> None:
        for q in list(self._subscribers):
            for ev in events:
                try:
                    q.put_nowait(ev)
                except asyncio.QueueFull:
                    # A subscriber this far behind is cut off; it sees the end of its watch.
                    self._subscribers.discard(q)
                    with contextlib.suppress(asyncio.QueueFull):
                        q.get_nowait()
                        q.put_nowait(_CLOSED)
                    break

    def close(self) -> None:
        for q in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(_CLOSED)
        self._subscribers.clear()

    async def watch(
        self,
        prefix: str,
        after_revision: int,
        history: Callable[[str, int], Awaitable[list[WatchEvent]]],
    ) -> AsyncIterator[WatchEvent]:
        q: asyncio.Queue[object] = asyncio.Queue(maxsize=self._queue_size)
        self._subscribers.add(q)
        try:
            last = after_revision
            for ev in await history(prefix, after_revision):
                if ev.revision > last:
                    last = ev.revision
                yield ev
            while True:
                item = await q.get()
                if item is _CLOSED:
                    return
                assert isinstance(item, WatchEvent)
                if item.revision <= last or not item.kv.key.startswith(prefix):
                    continue
                last = item.revision
                yield item
        finally:
            self._subscribers.discard(q)
