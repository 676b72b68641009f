"""Running many long-lived components in one process, each restarted if it fails.

A member cluster and the federation are each one process holding an API server and
a dozen controllers. One controller's bug must not take the others down: each
component runs as a task of one ``asyncio.TaskGroup``, a failure is logged and the
component restarted after a pause, and stopping sets one event every component
watches, then waits for all of them (cancelling stragglers after a timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Protocol

logger = logging.getLogger(__name__)

RESTART_PAUSE = 2.0
STOP_TIMEOUT = 30.0


class Component(Protocol):
    async def run(self, stop: asyncio.Event) -> None: ...


class Components:
    def __init__(self, owner: str, *, restart_pause: float = RESTART_PAUSE) -> None:
        self.owner = owner
        self.restart_pause = restart_pause
        self._stop = asyncio.Event()
        self._group: asyncio.Task[None] | None = None

    def start(self, components: Mapping[str, Component]) -> None:
        self._group = asyncio.create_task(self._run_all(dict(components)), name=self.owner)

    @property
    def running(self) -> bool:
        return self._group is not None and not self._group.done()

    async def _supervise(self, name: str, component: Component) -> None:
        while not self._stop.is_set():
            try:
                await component.run(self._stop)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("%s: component %s failed; restarting in %.0fs", self.owner, name,
                                 self.restart_pause)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.restart_pause)

    async def _run_all(self, components: dict[str, Component]) -> None:
        async with asyncio.TaskGroup() as group:
            for name, component in components.items():
                group.create_task(self._supervise(name, component), name=name)

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        self._stop.set()
        if self._group is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._group), timeout)
        except (TimeoutError, Exception):
            self._group.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._group
        self._group = None
