"""Events off the scheduling path: a bounded buffer drained in the background.

kube-scheduler records its ``Scheduled`` events through client-go's events broadcaster:
recording only queues the event (a bounded queue that drops when full,
``DropIfChannelFull``) and goroutines write them to the API server, throttled by the
client's rate limit. A binding never waits for its event, and a burst of bindings is
not slowed down by as many event writes: the events trail behind and catch up once the
burst is over. :class:`EventSink` does the same over
:class:`~atoll.machinery.events.EventRecorder` (which aggregates repeats), with a few
writers so that events take a bounded share of the API server while pods are waiting
to be bound, and a buffer large enough for a burst of 10,000 pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
MAX_QUEUED_EVENTS = 10_000
"""Beyond this many unwritten events new ones are dropped (counted in ``dropped``)."""


class Recorder(Protocol):
    async def record(self, obj: Obj, type_: str, reason: str, message: str) -> None: ...


class EventSink:
    """Queue events now, write them later with ``workers`` concurrent writers; drop when full."""

    def __init__(self, recorder: Recorder, *, capacity: int = MAX_QUEUED_EVENTS, workers: int = 4,
                 flush_timeout: float = 5.0) -> None:
        self.recorder = recorder
        self.workers = workers
        self.flush_timeout = flush_timeout
        self._queue: asyncio.Queue[tuple[Obj, str, str, str]] = asyncio.Queue(capacity)
        self.recorded = 0
        self.dropped = 0

    def emit(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        """Never blocks: an event is advice, and a full buffer means the API server is behind."""
        try:
            self._queue.put_nowait((obj, type_, reason, message))
        except asyncio.QueueFull:
            self.dropped += 1
            logger.debug("event buffer full: dropped %s for %s", reason, (obj.get("metadata") or {}).get("name"))

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def drained(self) -> None:
        """Return once every queued event has been written (or given up on)."""
        await self._queue.join()

    async def _drain(self) -> None:
        while True:
            obj, type_, reason, message = await self._queue.get()
            try:
                await self.recorder.record(obj, type_, reason, message)
                self.recorded += 1
            except Exception as exc:  # a recorder should not raise; if one does, the writer lives on
                logger.warning("event %s not recorded: %s", reason, exc)
            finally:
                self._queue.task_done()

    async def run(self, stop: asyncio.Event) -> None:
        """Write events until ``stop``; then give what is still queued ``flush_timeout`` seconds."""
        async with asyncio.TaskGroup() as tg:
            writers = [tg.create_task(self._drain(), name=f"scheduler-events-{i}") for i in range(self.workers)]
            await stop.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained(), self.flush_timeout)
            for writer in writers:
                writer.cancel()
