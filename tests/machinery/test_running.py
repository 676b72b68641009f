"""Components in one process: a failing one is restarted, stop ends them all."""

from __future__ import annotations

import asyncio

from atoll.machinery.running import Components
from tests.waiting import eventually


class Flaky:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.starts = 0
        self.stopped = False

    async def run(self, stop: asyncio.Event) -> None:
        self.starts += 1
        if self.starts <= self.failures:
            raise RuntimeError("boom")
        await stop.wait()
        self.stopped = True


async def test_failed_components_restart_and_stop_ends_all() -> None:
    flaky, steady = Flaky(failures=2), Flaky(failures=0)
    group = Components("test", restart_pause=0.01)
    group.start({"flaky": flaky, "steady": steady})
    await eventually(lambda: asyncio.sleep(0, flaky.starts == 3), 5)
    assert steady.starts == 1 and group.running
    await group.stop(timeout=5)
    assert flaky.stopped and steady.stopped and not group.running


class Stubborn:
    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.sleep(3600)  # ignores stop


async def test_stop_cancels_a_component_that_does_not_stop() -> None:
    group = Components("test")
    group.start({"stubborn": Stubborn()})
    await asyncio.sleep(0.05)
    await asyncio.wait_for(group.stop(timeout=0.2), 5)
    assert not group.running
