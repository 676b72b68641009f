"""The controller runtime: informers that enqueue keys, a work queue, and reconcilers.

A controller subclass names itself (``NAME``), declares what it watches in
``setup()`` (informers plus the functions mapping their events to keys) and implements
``async def reconcile(key) -> Result``. NotFound while reconciling means the object is
gone, which is success; other errors are retried with per-key backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import ClassVar

from atoll.api.errors import NotFound
from atoll.machinery.informing import Informer
from atoll.machinery.queueing import ShutDown, WorkQueue

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Result:
    requeue_after: float | None = None


class Controller:
    NAME: ClassVar[str] = "controller"
    workers: int = 2

    def __init__(self) -> None:
        self.queue: WorkQueue[str] = WorkQueue()
        self.informers: list[Informer] = []

    def watch(self, informer: Informer, *, key_for: object = None) -> Informer:
        """Enqueue the key of every object the informer reports (or ``key_for(obj)``'s keys)."""
        from atoll.machinery.informing import key_of

        def handler(_event: str, old: dict[str, object] | None, new: dict[str, object] | None) -> None:
            obj = new if new is not None else old
            if obj is None:
                return
            keys = key_for(obj) if callable(key_for) else [key_of(obj)]
            for key in keys or ():
                self.queue.add(key)

        informer.add_handler(handler)
        self.informers.append(informer)
        return informer

    async def reconcile(self, key: str) -> Result:
        raise NotImplementedError

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                result = await self.reconcile(key)
                self.queue.forget(key)
                if result.requeue_after is not None:
                    self.queue.add_after(key, result.requeue_after)
            except NotFound:
                self.queue.forget(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.info("%s: reconcile %s failed (%s); retrying in %.2fs", self.NAME, key, exc,
                            self.queue.backoff(key))
                self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; then stop informers and workers (in that order)."""
        informers = [asyncio.create_task(inf.run(stop), name=f"{self.NAME}-informer-{inf.resource.plural}")
                     for inf in self.informers]
        workers: list[asyncio.Task[None]] = []
        try:
            synced: asyncio.Future[list[bool]] = asyncio.gather(*(inf.synced.wait() for inf in self.informers))
            stopped: asyncio.Future[bool] = asyncio.ensure_future(stop.wait())
            waiting: list[asyncio.Future[object]] = [synced, stopped]  # type: ignore[list-item]
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if not stop.is_set():
                workers = [asyncio.create_task(self._worker(), name=f"{self.NAME}-worker")
                           for _ in range(self.workers)]
                await stopped
            synced.cancel()
            stopped.cancel()
        finally:
            await self.queue.shut_down()
            for task in (*informers, *workers):
                task.cancel()
            for task in (*informers, *workers):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
