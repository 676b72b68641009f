"""One conformance suite for every Store backend: memory, SQLite and a real etcd."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atoll.api.errors import AlreadyExists, Conflict, Gone, NotFound
from atoll.storage import open_store
from atoll.storage.etcd_server import EtcdServer
from atoll.storage.protocol import Store, WatchEvent
from tests.conftest import require_etcd

BACKENDS = ["memory", "sqlite", "etcd"]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "memory":
        s = await open_store("memory://")
    elif request.param == "sqlite":
        s = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
    else:
        require_etcd()
        async with EtcdServer(tmp_path / "etcd") as endpoint:
            s = await open_store(endpoint)
            try:
                yield s
            finally:
                await s.close()
            return
    try:
        yield s
    finally:
        await s.close()


async def collect(it: AsyncIterator[WatchEvent], n: int, timeout: float = 10.0) -> list[WatchEvent]:
    out: list[WatchEvent] = []
    async with asyncio.timeout(timeout):
        async for ev in it:
            out.append(ev)
            if len(out) >= n:
                break
    with contextlib.suppress(Exception):
        await it.aclose()  # type: ignore[attr-defined]
    return out


async def test_create_get_update_delete_with_preconditions(store: Store) -> None:
    a = await store.create("/t/a", b"1")
    assert (a.create_revision, a.mod_revision) == (a.mod_revision, a.create_revision)
    with pytest.raises(AlreadyExists):
        await store.create("/t/a", b"again")
    got = await store.get("/t/a")
    assert got is not None and got.value == b"1" and got.mod_revision == a.mod_revision
    b = await store.update("/t/a", b"2", expected_revision=a.mod_revision)
    assert b.mod_revision > a.mod_revision and b.create_revision == a.create_revision
    with pytest.raises(Conflict):
        await store.update("/t/a", b"3", expected_revision=a.mod_revision)
    c = await store.update("/t/a", b"3")  # unconditional
    assert c.value == b"3"
    with pytest.raises(Conflict):
        await store.delete("/t/a", expected_revision=b.mod_revision)
    gone = await store.delete("/t/a", expected_revision=c.mod_revision)
    assert gone.value == b"3" and gone.mod_revision > c.mod_revision
    assert await store.get("/t/a") is None
    with pytest.raises(NotFound):
        await store.update("/t/a", b"x")
    with pytest.raises(NotFound):
        await store.delete("/t/a")


async def test_revisions_are_global_and_monotonic(store: Store) -> None:
    start = await store.current_revision()
    revs = [(await store.create(f"/r/{i}", b"v")).mod_revision for i in range(5)]
    revs.append((await store.update("/r/0", b"w")).mod_revision)
    revs.append((await store.delete("/r/1")).mod_revision)
    assert revs == sorted(revs) and len(set(revs)) == len(revs)
    assert revs[0] > start
    assert await store.current_revision() == revs[-1]


async def test_range_prefix_limit_continue_and_past_revision(store: Store) -> None:
    for name in ("b", "a", "c", "d"):
        await store.create(f"/p/x/{name}", name.encode())
    await store.create("/p/y/a", b"other")
    await store.create("/p/xz", b"not-under-x/")
    res = await store.range("/p/x/")
    assert [kv.key for kv in res.kvs] == ["/p/x/a", "/p/x/b", "/p/x/c", "/p/x/d"]
    assert res.count == 4 and not res.more
    page = await store.range("/p/x/", limit=2)
    assert [kv.key for kv in page.kvs] == ["/p/x/a", "/p/x/b"] and page.more
    rest = await store.range("/p/x/", revision=page.revision, start_after="/p/x/b")
    assert [kv.key for kv in rest.kvs] == ["/p/x/c", "/p/x/d"]
    snapshot = page.revision
    await store.update("/p/x/a", b"changed")
    await store.delete("/p/x/b")
    await store.create("/p/x/e", b"e")
    old = await store.range("/p/x/", revision=snapshot)
    assert [(kv.key, kv.value) for kv in old.kvs] == [("/p/x/a", b"a"), ("/p/x/b", b"b"), ("/p/x/c", b"c"),
                                                     ("/p/x/d", b"d")]
    now = await store.range("/p/x/")
    assert [(kv.key, kv.value) for kv in now.kvs] == [("/p/x/a", b"changed"), ("/p/x/c", b"c"),
                                                     ("/p/x/d", b"d"), ("/p/x/e", b"e")]


async def test_watch_replays_then_follows_live(store: Store) -> None:
    a = await store.create("/w/a", b"1")
    await store.create("/other/z", b"ignored")
    await store.update("/w/a", b"2")
    watch = store.watch("/w/", after_revision=a.mod_revision - 1)
    task = asyncio.create_task(collect(watch, 4))
    await asyncio.sleep(0.3)
    await store.delete("/w/a")
    await store.create("/w/b", b"3")
    events = await task
    assert [(e.type, e.kv.key) for e in events] == [("PUT", "/w/a"), ("PUT", "/w/a"), ("DELETE", "/w/a"),
                                                    ("PUT", "/w/b")]
    assert [e.revision for e in events] == sorted(e.revision for e in events)
    assert events[1].prev is not None and events[1].prev.value == b"1"
    assert events[2].kv.value == b"2" and events[2].prev is not None


async def test_many_watchers_see_every_event(store: Store) -> None:
    rev = await store.current_revision()
    watchers = [asyncio.create_task(collect(store.watch("/m/", after_revision=rev), 20)) for _ in range(10)]
    await asyncio.sleep(0.3)
    for i in range(20):
        await store.create(f"/m/{i:02d}", b"v")
    results = await asyncio.gather(*watchers)
    for events in results:
        assert [e.kv.key for e in events] == [f"/m/{i:02d}" for i in range(20)]


async def test_concurrent_creates_lose_nothing(store: Store) -> None:
    kvs = await asyncio.gather(*(store.create(f"/c/{i:03d}", str(i).encode()) for i in range(200)))
    assert len({kv.mod_revision for kv in kvs}) == 200
    res = await store.range("/c/")
    assert res.count == 200 and {kv.value for kv in res.kvs} == {str(i).encode() for i in range(200)}


async def test_concurrent_conditional_updates_one_winner(store: Store) -> None:
    base = await store.create("/cas/k", b"0")
    results = await asyncio.gather(*(store.update("/cas/k", str(i).encode(), expected_revision=base.mod_revision)
                                     for i in range(10)), return_exceptions=True)
    assert sum(1 for r in results if not isinstance(r, Exception)) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, Exception))


async def test_compaction_makes_old_revisions_gone(store: Store) -> None:
    a = await store.create("/k/a", b"1")
    b = await store.update("/k/a", b"2")
    await store.create("/k/b", b"x")
    c = await store.update("/k/a", b"3")
    await store.compact(c.mod_revision)
    with pytest.raises(Gone):
        await store.range("/k/", revision=a.mod_revision)
    with pytest.raises(Gone):
        it = store.watch("/k/", after_revision=a.mod_revision)
        await collect(it, 1, timeout=5)
    # Reading at the compaction revision itself still works.
    at = await store.range("/k/", revision=c.mod_revision)
    assert [(kv.key, kv.value) for kv in at.kvs] == [("/k/a", b"3"), ("/k/b", b"x")]
    assert await store.compacted_revision() >= c.mod_revision
    del b


async def test_sqlite_reopen_keeps_data_and_revision(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    s = await open_store(url)
    kv = await s.create("/keep/a", b"1")
    await s.update("/keep/a", b"2")
    rev = await s.current_revision()
    await s.close()
    s2 = await open_store(url)
    try:
        assert (await s2.get("/keep/a")) is not None
        assert await s2.current_revision() == rev
        nxt = await s2.create("/keep/b", b"x")
        assert nxt.mod_revision == rev + 1 > kv.mod_revision
    finally:
        await s2.close()


def test_bad_url_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown storage URL"):
        asyncio.run(open_store("mysql://x"))
    with pytest.raises(ValueError, match="etcd://HOST:PORT"):
        asyncio.run(open_store("etcd://nohost"))
