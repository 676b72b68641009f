"""The scheduler controller's cache and event buffer, driven without an API server.

Informer events are fed by hand (cache updated first, then handlers, as the informer
does), so the cache's bookkeeping is checked exactly: node snapshot rebuilt only when
nodes come or go, pods counted once per node, bursts of node events requeueing the
pending pods once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from atoll.client import Client
from atoll.cluster.scheduler.controller import SchedulerController
from atoll.cluster.scheduler.recording import EventSink
from atoll.cluster.scheduler.resources import Resources
from atoll.machinery.informing import Informer, key_of

Obj = dict[str, Any]


def node(name: str, cpu: str = "4") -> Obj:
    return {"metadata": {"name": name, "resourceVersion": "1"},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "10"}}}


def pod(name: str, cpu: str = "1", node_name: str | None = None, phase: str = "Pending") -> Obj:
    spec: Obj = {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": spec, "status": {"phase": phase}}


def feed(informer: Informer, event: str, obj: Obj) -> None:
    """What the informer does for one watch event: update its cache, then call the handlers."""
    cache = informer.lister._cache
    key = key_of(obj)
    old = cache.get(key)
    if event == "DELETED":
        cache.pop(key, None)
        informer._emit("DELETED", old, None)
    else:
        cache[key] = obj
        informer._emit("ADDED" if old is None else "MODIFIED", old, obj)


def queued(sched: SchedulerController) -> list[str]:
    return list(sched.queue._queue)


@pytest.fixture
def sched() -> SchedulerController:
    return SchedulerController(Client(server="https://127.0.0.1:9"))  # never contacted


async def test_node_snapshot_is_rebuilt_only_when_nodes_come_or_go(sched: SchedulerController) -> None:
    for name in ("b", "a", "c"):
        feed(sched.nodes, "ADDED", node(name))
    first = sched.node_infos()
    assert [n.name for n in first] == ["a", "b", "c"]
    assert sched.node_infos() is first  # cached between cycles
    feed(sched.nodes, "MODIFIED", node("b", cpu="8"))
    assert sched.node_infos() is first and first[1].allocatable.milli_cpu == 8000  # updated in place
    feed(sched.nodes, "DELETED", node("a"))
    assert [n.name for n in sched.node_infos()] == ["b", "c"]
    feed(sched.pods, "ADDED", pod("ghost", node_name="x"))  # bound to a node the informer does not know
    assert [n.name for n in sched.node_infos()] == ["b", "c"]


async def test_pods_count_once_on_their_node(sched: SchedulerController) -> None:
    feed(sched.nodes, "ADDED", node("n"))
    feed(sched.pods, "ADDED", pod("a", "500m", node_name="n"))
    feed(sched.pods, "MODIFIED", pod("a", "500m", node_name="n", phase="Running"))  # status updates
    feed(sched.pods, "MODIFIED", pod("a", "500m", node_name="n", phase="Running"))
    feed(sched.pods, "ADDED", pod("b", "250m", node_name="n"))
    info = sched.node_infos()[0]
    assert info.requested == Resources(750, 0, 2)
    feed(sched.pods, "MODIFIED", pod("b", "250m", node_name="n", phase="Succeeded"))  # terminal: frees its room
    assert info.requested == Resources(500, 0, 1)
    feed(sched.pods, "DELETED", pod("a", "500m", node_name="n"))
    assert info.requested == Resources() and info.pods == []


async def test_a_burst_of_node_events_requeues_pending_pods_once(sched: SchedulerController,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        feed(sched.pods, "ADDED", pod(f"p{i}"))
    assert queued(sched) == ["ns/p0", "ns/p1", "ns/p2"]
    sched.queue._queue.clear()
    sched.queue._dirty.clear()
    walks = 0
    original = sched._pending_keys

    def counting() -> list[str]:
        nonlocal walks
        walks += 1
        return original()

    monkeypatch.setattr(sched, "_pending_keys", counting)
    for i in range(500):
        feed(sched.nodes, "ADDED", node(f"n{i:03d}"))
    assert walks == 0  # deferred to after the burst
    await asyncio.sleep(0)
    assert walks == 1
    assert queued(sched) == ["ns/p0", "ns/p1", "ns/p2"]


async def test_assumed_pods_hold_their_room_until_the_binding_shows(sched: SchedulerController) -> None:
    feed(sched.nodes, "ADDED", node("n", cpu="1"))
    feed(sched.pods, "ADDED", pod("a", "600m"))
    sched._assumed["ns/a"] = ("n", pod("a", "600m"))
    sched._count("ns/a", pod("a", "600m"), "n")
    assert sched.framework.schedule(pod("b", "600m"), sched.node_infos()).node is None  # the room is taken
    feed(sched.pods, "MODIFIED", pod("a", "600m", node_name="n"))  # the binding comes back through the watch
    assert "ns/a" not in sched._assumed and sched.node_infos()[0].requested == Resources(600, 0, 1)
    sched._assumed["ns/c"] = ("n", pod("c", "100m"))
    sched._count("ns/c", pod("c", "100m"), "n")
    sched._forget_assumed("ns/c")  # its binding failed
    assert sched.node_infos()[0].requested == Resources(600, 0, 1)


class Recorder:
    def __init__(self, fail_on: str = "", delay: float = 0.0) -> None:
        self.seen: list[str] = []
        self.fail_on = fail_on
        self.delay = delay

    async def record(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if message == self.fail_on:
            raise RuntimeError("boom")
        self.seen.append(message)


@pytest.mark.parametrize(("capacity", "emitted", "fail_on", "recorded", "dropped"), [
    (10, 5, "", 5, 0),
    (3, 8, "", 3, 5),  # nothing drained yet: beyond the capacity, events are dropped
    (10, 4, "m1", 3, 0),  # a failing write does not stop the writers
])
async def test_event_sink(capacity: int, emitted: int, fail_on: str, recorded: int, dropped: int) -> None:
    recorder = Recorder(fail_on)
    sink = EventSink(recorder, capacity=capacity, workers=2, flush_timeout=2.0)
    stop = asyncio.Event()
    for i in range(emitted):
        sink.emit({"metadata": {"name": "p"}}, "Normal", "Scheduled", f"m{i}")
    task = asyncio.create_task(sink.run(stop))
    stop.set()  # stopping flushes what is queued
    await asyncio.wait_for(task, 5)
    assert (sink.recorded, sink.dropped, sink.pending) == (recorded, dropped, 0)
    assert sorted(recorder.seen) == sorted(f"m{i}" for i in range(min(emitted, capacity)) if f"m{i}" != fail_on)


async def test_event_sink_gives_up_flushing_after_its_timeout() -> None:
    sink = EventSink(Recorder(delay=10), workers=1, flush_timeout=0.1)
    stop = asyncio.Event()
    sink.emit({"metadata": {"name": "p"}}, "Normal", "Scheduled", "slow")
    task = asyncio.create_task(sink.run(stop))
    await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert sink.recorded == 0
