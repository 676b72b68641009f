"""SQLite's in-memory current values: ``get`` and preconditions never see an older value
than a write already acknowledged, stay bounded, and agree with the file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from atoll.api.errors import AlreadyExists, Conflict, NotFound
from atoll.storage.protocol import KeyValue
from atoll.storage.sqlite import SqliteStore, _RecentValues


def kv(key: str, value: bytes, rev: int) -> KeyValue:
    return KeyValue(key, value, rev, rev)


@pytest.mark.parametrize(("steps", "expected"), [
    # A read that began before a commit must not put back the value that commit replaced.
    ([("read_epoch",), ("commit", "a", b"new"), ("remember", "a", b"old")], b"new"),
    ([("read_epoch",), ("remember", "a", b"v")], b"v"),
    # Remembering never overwrites what a commit put there.
    ([("commit", "a", b"committed"), ("read_epoch",), ("remember", "a", b"other")], b"committed"),
    ([("commit", "a", b"v"), ("delete", "a")], None),
    ([("read_epoch",), ("delete", "b"), ("remember", "a", b"old")], None),
])
def test_recent_values_epochs(steps: list[tuple[object, ...]], expected: bytes | None) -> None:
    recent = _RecentValues(1 << 20)
    epoch = 0
    rev = 0
    for step in steps:
        rev += 1
        if step[0] == "read_epoch":
            epoch = recent.epoch
        elif step[0] == "commit":
            recent.committed([(str(step[1]), kv(str(step[1]), bytes(step[2]), rev))])  # type: ignore[arg-type]
        elif step[0] == "delete":
            recent.committed([(str(step[1]), None)])
        else:
            recent.remember(kv(str(step[1]), bytes(step[2]), rev), epoch)  # type: ignore[arg-type]
    got = recent.get("a")
    assert (got.value if got is not None else None) == expected


def test_recent_values_are_bounded_by_bytes() -> None:
    recent = _RecentValues(1000)
    recent.committed([(f"k{i}", kv(f"k{i}", b"x" * 100, i + 1)) for i in range(50)])
    assert len(recent) == 10
    assert recent.get("k0") is None and recent.get("k49") is not None


async def test_get_follows_writes_and_survives_eviction(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", recent_values_bytes=64)
    try:
        created = await store.create("/a", b"1" * 40)
        await store.create("/b", b"2" * 40)  # pushes /a out of the 64-byte memo
        got = await store.get("/a")
        assert got == created
        updated = await store.update("/a", b"3", expected_revision=created.mod_revision)
        assert await store.get("/a") == updated
        with pytest.raises(Conflict):
            await store.update("/a", b"4", expected_revision=created.mod_revision)
        await store.delete("/a", expected_revision=updated.mod_revision)
        assert await store.get("/a") is None
        with pytest.raises(NotFound):
            await store.update("/a", b"5")
    finally:
        await store.close()


async def test_one_batch_sees_its_own_earlier_writes(tmp_path: Path) -> None:
    """Ops on one key submitted together commit in one transaction, in order."""
    store = SqliteStore(tmp_path / "s.db")
    try:
        first = await store.create("/k", b"0")
        results = await asyncio.gather(
            store.update("/k", b"1", expected_revision=first.mod_revision),
            store.update("/k", b"2", expected_revision=first.mod_revision),
            store.create("/k", b"x"),
            store.delete("/k"),
            store.create("/k", b"again"),
            return_exceptions=True)
        assert isinstance(results[0], KeyValue) and results[0].value == b"1"
        assert isinstance(results[1], Conflict)
        assert isinstance(results[2], AlreadyExists)
        assert isinstance(results[3], KeyValue)
        assert isinstance(results[4], KeyValue) and results[4].value == b"again"
        assert await store.get("/k") == results[4]
    finally:
        await store.close()
    reopened = SqliteStore(tmp_path / "s.db")
    try:
        again = await reopened.get("/k")
        assert again is not None and again.value == b"again"
        assert again.mod_revision == results[4].mod_revision  # type: ignore[union-attr]
    finally:
        await reopened.close()
