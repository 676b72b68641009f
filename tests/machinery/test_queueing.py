"""Work queue guarantees (table-driven where it is sequence logic)."""

from __future__ import annotations

import asyncio

import pytest

from atoll.machinery.queueing import ShutDown, WorkQueue


async def drain(q: WorkQueue[str]) -> list[str]:
    out = []
    while len(q):
        key = await q.get()
        out.append(key)
        q.done(key)
    return out


@pytest.mark.parametrize(("adds", "expected"), [
    (["a"], ["a"]),
    (["a", "a", "a"], ["a"]),
    (["a", "b", "a", "c"], ["a", "b", "c"]),
])
async def test_dedupe_while_waiting(adds: list[str], expected: list[str]) -> None:
    q: WorkQueue[str] = WorkQueue()
    for k in adds:
        q.add(k)
    assert await drain(q) == expected


async def test_key_in_processing_is_not_handed_out_twice() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")  # arrives while "a" is being processed
    assert len(q) == 0
    q.add("b")
    assert await q.get() == "b"
    q.done("b")
    q.done(key)  # now "a" comes back, once
    assert await drain(q) == ["a"]


async def test_rate_limited_backoff_and_forget() -> None:
    q: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=0.04)
    delays = []
    for _ in range(4):
        delays.append(q.backoff("a"))
        q.add_rate_limited("a")
    assert delays == [0.01, 0.02, 0.04, 0.04]
    assert q.failures("a") == 4
    assert await asyncio.wait_for(q.get(), 1) == "a"
    q.forget("a")
    assert q.failures("a") == 0 and q.backoff("a") == 0.01


async def test_add_after_and_shutdown() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("later", 0.05)
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), 1) == "later"
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    await q.shut_down()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(waiter, 1)


async def test_delayed_adds_of_one_key_coalesce_and_keep_the_earliest_time() -> None:
    q: WorkQueue[str] = WorkQueue()
    loop = asyncio.get_running_loop()
    start = loop.time()
    q.add_after("k", 5.0)
    q.add_after("k", 0.1)   # earlier: replaces the 5 s wait
    for _ in range(10):
        q.add_after("k", 0.2)  # later than the wait already there: no effect
    assert await asyncio.wait_for(q.get(), 2) == "k"
    assert loop.time() - start < 1.0
    q.done("k")
    await asyncio.sleep(0.3)
    assert len(q) == 0  # one reconcile for the whole burst
    await q.shut_down()
