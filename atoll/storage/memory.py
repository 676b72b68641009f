"""In-memory store for unit tests: the same semantics as SQLite and etcd, nothing durable."""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator

from atoll.api.errors import AlreadyExists, Conflict, Gone, NotFound
from atoll.storage.fanout import Fanout
from atoll.storage.protocol import KeyValue, RangeResult, WatchEvent


class MemoryStore:
    def __init__(self) -> None:
        self._current: dict[str, KeyValue] = {}
        self._keys: list[str] = []
        self._log: list[WatchEvent] = []
        self._revision = 0
        self._compacted = 0
        self._fanout = Fanout()

    async def get(self, key: str) -> KeyValue | None:
        return self._current.get(key)

    def _commit(self, ev: WatchEvent) -> None:
        self._log.append(ev)
        self._fanout.publish([ev])

    async def create(self, key: str, value: bytes) -> KeyValue:
        if key in self._current:
            raise AlreadyExists(f"key {key} already exists")
        self._revision += 1
        kv = KeyValue(key, value, self._revision, self._revision)
        self._current[key] = kv
        bisect.insort(self._keys, key)
        self._commit(WatchEvent("PUT", kv, self._revision))
        return kv

    async def update(self, key: str, value: bytes, *, expected_revision: int | None = None) -> KeyValue:
        old = self._current.get(key)
        if old is None:
            raise NotFound(f"key {key} not found")
        if expected_revision is not None and old.mod_revision != expected_revision:
            raise Conflict(f"key {key} was modified (revision {old.mod_revision}, expected {expected_revision})")
        self._revision += 1
        kv = KeyValue(key, value, old.create_revision, self._revision)
        self._current[key] = kv
        self._commit(WatchEvent("PUT", kv, self._revision, old))
        return kv

    async def delete(self, key: str, *, expected_revision: int | None = None) -> KeyValue:
        old = self._current.get(key)
        if old is None:
            raise NotFound(f"key {key} not found")
        if expected_revision is not None and old.mod_revision != expected_revision:
            raise Conflict(f"key {key} was modified (revision {old.mod_revision}, expected {expected_revision})")
        self._revision += 1
        del self._current[key]
        self._keys.pop(bisect.bisect_left(self._keys, key))
        gone = KeyValue(key, old.value, old.create_revision, self._revision)
        self._commit(WatchEvent("DELETE", gone, self._revision, old))
        return gone

    def _snapshot(self, revision: int) -> dict[str, KeyValue]:
        state: dict[str, KeyValue] = {}
        for ev in self._log:
            if ev.revision > revision:
                break
            if ev.type == "PUT":
                state[ev.kv.key] = ev.kv
            else:
                state.pop(ev.kv.key, None)
        return state

    async def range(self, prefix: str, *, revision: int | None = None, limit: int | None = None,
                    start_after: str | None = None) -> RangeResult:
        if revision is not None and revision < self._compacted:
            raise Gone(f"required revision {revision} has been compacted (compacted at {self._compacted})")
        if revision is None or revision >= self._revision:
            at = self._revision
            keys = self._keys
            source = self._current
        else:
            at = revision
            source = self._snapshot(revision)
            keys = sorted(source)
        lo = bisect.bisect_right(keys, start_after) if start_after else bisect.bisect_left(keys, prefix)
        matched = []
        for k in keys[lo:]:
            if not k.startswith(prefix):
                if k > prefix:
                    break
                continue
            matched.append(source[k])
        total = len(matched)
        more = False
        if limit and total > limit:
            matched, more = matched[:limit], True
        return RangeResult(matched, at, more, total)

    async def _history(self, prefix: str, after: int) -> list[WatchEvent]:
        idx = bisect.bisect_right([e.revision for e in self._log], after)
        return [e for e in self._log[idx:] if e.kv.key.startswith(prefix)]

    def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[WatchEvent]:
        if after_revision < self._compacted - 1:
            raise Gone(f"required revision {after_revision + 1} has been compacted")
        return self._fanout.watch(prefix, after_revision, self._history)

    async def current_revision(self) -> int:
        return self._revision

    async def compacted_revision(self) -> int:
        return self._compacted

    async def compact(self, revision: int) -> None:
        if revision <= self._compacted:
            return
        if revision > self._revision:
            raise Gone(f"cannot compact to future revision {revision}")
        # Keep the state at the compaction point (for reads at it) and the events after it.
        self._log = self._compact_log(revision)
        self._compacted = revision

    def _compact_log(self, revision: int) -> list[WatchEvent]:
        base = self._snapshot(revision)
        kept = [WatchEvent("PUT", kv, kv.mod_revision) for kv in sorted(base.values(), key=lambda k: k.mod_revision)]
        return kept + [e for e in self._log if e.revision > revision]

    async def close(self) -> None:
        self._fanout.close()
