"""SQLite store: the embedded default. Durable, MVCC-enough for Kubernetes, fast under load.

* WAL journal with ``synchronous=FULL``: a write is acknowledged only after its
  transaction is on disk, so it survives ``kill -9`` and power loss.
* **Group commit**: one writer thread drains every pending operation into a single
  transaction, so 64 concurrent creates cost one fsync, not 64. Each operation still
  succeeds or fails on its own (preconditions are checked in order inside the batch).
* ``kv`` holds the current value of each key; ``log`` holds every revision (with
  tombstones) for reads at a past revision and for watch replay until compaction.
* One process owns the file: live watch events are fanned out in-process after commit.
* Because it owns the file, it also keeps the **current values of recently written or
  read keys** in memory (:class:`_RecentValues`, bounded by bytes). ``get`` is then a
  dict lookup on the event loop instead of a SQLite query, and the writer checks
  preconditions without a SELECT. The memo changes only after a COMMIT succeeded and
  before the write is acknowledged, so a read never sees an older value than a write
  that was already acknowledged (the read-modify-write loops of the API server rely on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from atoll.api.errors import AlreadyExists, APIError, Conflict, Gone, NotFound, ServiceUnavailable
from atoll.storage.fanout import Fanout
from atoll.storage.protocol import KeyValue, RangeResult, WatchEvent

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
  key TEXT PRIMARY KEY,
  value BLOB NOT NULL,
  create_rev INTEGER NOT NULL,
  mod_rev INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
  rev INTEGER PRIMARY KEY,
  key TEXT NOT NULL,
  value BLOB,
  create_rev INTEGER NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0,
  prev_rev INTEGER
);
CREATE INDEX IF NOT EXISTS log_key_rev ON log (key, rev);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

MAX_BATCH = 512
RECENT_VALUES_BYTES = 64 * 1024 * 1024
"""Memory for current values kept out of SQLite (values only; keys and overhead are small)."""


class _RecentValues:
    """Current ``KeyValue`` of recently used keys, least recently used dropped first.

    Shared by the event loop (``get``) and the writer thread (commits), under one lock.
    A value read from SQLite is only remembered if no commit happened since the read
    began (``epoch``); otherwise a commit racing the read could be overwritten by the
    older value it replaced.
    """

    def __init__(self, max_bytes: int) -> None:
        self._values: OrderedDict[str, KeyValue] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes
        self._lock = threading.Lock()
        self.epoch = 0
        """Bumped by every commit; a read that saw another epoch does not remember."""

    def get(self, key: str) -> KeyValue | None:
        with self._lock:
            kv = self._values.get(key)
            if kv is not None:
                self._values.move_to_end(key)
            return kv

    def remember(self, kv: KeyValue, epoch: int) -> None:
        """Keep ``kv``, read from SQLite when the epoch was ``epoch``, unless a commit came since."""
        with self._lock:
            if epoch == self.epoch and kv.key not in self._values:
                self._put(kv)

    def committed(self, changes: Iterable[tuple[str, KeyValue | None]]) -> None:
        """Apply a committed transaction's changes (``None``: the key is gone)."""
        with self._lock:
            self.epoch += 1
            for key, kv in changes:
                if kv is None:
                    old = self._values.pop(key, None)
                    if old is not None:
                        self._bytes -= len(old.value)
                else:
                    self._put(kv)

    def _put(self, kv: KeyValue) -> None:
        old = self._values.pop(kv.key, None)
        if old is not None:
            self._bytes -= len(old.value)
        self._values[kv.key] = kv
        self._bytes += len(kv.value)
        while self._bytes > self._max and self._values:
            _, dropped = self._values.popitem(last=False)
            self._bytes -= len(dropped.value)

    def __len__(self) -> int:
        return len(self._values)


@dataclass(slots=True)
class _Op:
    kind: Literal["create", "update", "delete", "compact"]
    key: str
    value: bytes | None
    expected: int | None
    future: Future[KeyValue | None]


def _prefix_end(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    return prefix + "\U0010ffff"


class SqliteStore:
    def __init__(self, path: str | Path, *, recent_values_bytes: int = RECENT_VALUES_BYTES) -> None:
        self.path = str(path)
        self._recent = _RecentValues(recent_values_bytes)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer_conn = self._connect()
        self._writer_conn.executescript(SCHEMA)
        self._reader = self._connect()
        self._local = threading.local()
        self._revision = self._meta(self._writer_conn, "revision")
        self._compacted = self._meta(self._writer_conn, "compacted")
        self._fanout = Fanout()
        self._ops: queue.Queue[_Op | None] = queue.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._writer, name=f"sqlite-writer:{Path(self.path).name}",
                                        daemon=True)
        self._thread.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _thread_conn(self) -> sqlite3.Connection:
        """A read connection per worker thread (reads run off the event loop)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @staticmethod
    def _meta(conn: sqlite3.Connection, name: str) -> int:
        row = conn.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return int(row[0]) if row else 0

    # -- writer thread -----------------------------------------------------------------
    def _writer(self) -> None:
        conn = self._writer_conn
        while True:
            first = self._ops.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._ops.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._ops.put(None)
                    break
                batch.append(nxt)
            self._run_batch(conn, batch)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        results: list[tuple[_Op, KeyValue | None, BaseException | None]] = []
        events: list[WatchEvent] = []
        rev = self._revision
        # What this transaction has written so far: later ops in the batch must see it.
        written: dict[str, KeyValue | None] = {}
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                try:
                    if op.kind == "compact":
                        self._do_compact(conn, int(op.expected or 0))
                        results.append((op, None, None))
                        continue
                    if op.key in written:
                        current = written[op.key]
                    else:
                        current = self._recent.get(op.key)
                        if current is None:
                            row = conn.execute("SELECT value, create_rev, mod_rev FROM kv WHERE key=?",
                                               (op.key,)).fetchone()
                            current = KeyValue(op.key, bytes(row[0]), int(row[1]), int(row[2])) if row else None
                    if op.kind == "create":
                        if current is not None:
                            raise AlreadyExists(f"key {op.key} already exists")
                        rev += 1
                        assert op.value is not None
                        conn.execute("INSERT INTO kv VALUES (?,?,?,?)", (op.key, op.value, rev, rev))
                        conn.execute("INSERT INTO log VALUES (?,?,?,?,0,NULL)", (rev, op.key, op.value, rev))
                        kv = KeyValue(op.key, op.value, rev, rev)
                        written[op.key] = kv
                        events.append(WatchEvent("PUT", kv, rev))
                        results.append((op, kv, None))
                        continue
                    if current is None:
                        raise NotFound(f"key {op.key} not found")
                    old = current
                    if op.expected is not None and old.mod_revision != op.expected:
                        raise Conflict(f"key {op.key} was modified (revision {old.mod_revision}, "
                                       f"expected {op.expected})")
                    rev += 1
                    if op.kind == "update":
                        assert op.value is not None
                        conn.execute("UPDATE kv SET value=?, mod_rev=? WHERE key=?", (op.value, rev, op.key))
                        conn.execute("INSERT INTO log VALUES (?,?,?,?,0,?)",
                                     (rev, op.key, op.value, old.create_revision, old.mod_revision))
                        kv = KeyValue(op.key, op.value, old.create_revision, rev)
                        written[op.key] = kv
                        events.append(WatchEvent("PUT", kv, rev, old))
                    else:
                        conn.execute("DELETE FROM kv WHERE key=?", (op.key,))
                        conn.execute("INSERT INTO log VALUES (?,?,NULL,?,1,?)",
                                     (rev, op.key, old.create_revision, old.mod_revision))
                        kv = KeyValue(op.key, old.value, old.create_revision, rev)
                        written[op.key] = None
                        events.append(WatchEvent("DELETE", kv, rev, old))
                    results.append((op, kv, None))
                except APIError as exc:
                    results.append((op, None, exc))
            if rev != self._revision:
                conn.execute("INSERT INTO meta VALUES ('revision', ?) ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                             (rev,))
            conn.execute("COMMIT")
        except Exception as exc:  # the whole transaction failed (disk full, I/O error...)
            logger.error("sqlite commit failed: %s", exc)
            with contextlib.suppress(Exception):
                conn.execute("ROLLBACK")
            err = ServiceUnavailable(f"storage write failed: {exc}")
            for op in batch:
                if not op.future.done():
                    op.future.set_exception(err)
            return
        self._revision = rev
        if written:
            self._recent.committed(written.items())
        # Acknowledge only now that COMMIT has returned; publish events in order on the loop.
        loop = self._loop
        if loop is not None and events and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._fanout.publish, events)
        for op, result, failure in results:
            if failure is not None:
                op.future.set_exception(failure)
            else:
                op.future.set_result(result)

    def _do_compact(self, conn: sqlite3.Connection, revision: int) -> None:
        if revision <= self._compacted:
            return
        # Keep, for every key, its newest entry at or below the compaction revision (so
        # reads at that revision still work), and everything after it.
        conn.execute(
            "DELETE FROM log WHERE rev < ? AND rev NOT IN "
            "(SELECT MAX(rev) FROM log WHERE rev <= ? GROUP BY key)", (revision, revision))
        conn.execute("DELETE FROM log WHERE rev < ? AND deleted = 1", (revision,))
        conn.execute("INSERT INTO meta VALUES ('compacted', ?) ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                     (revision,))
        self._compacted = revision

    async def _submit(self, kind: Literal["create", "update", "delete", "compact"], key: str,
                      value: bytes | None = None, expected: int | None = None) -> KeyValue | None:
        if self._closed:
            raise ServiceUnavailable("store is closed")
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        fut: Future[KeyValue | None] = Future()
        self._ops.put(_Op(kind, key, value, expected, fut))
        return await asyncio.wrap_future(fut)

    # -- Store protocol -------------------------------------------------------------------
    async def get(self, key: str) -> KeyValue | None:
        kv = self._recent.get(key)
        if kv is not None:
            return kv
        epoch = self._recent.epoch
        row = self._reader.execute("SELECT value, create_rev, mod_rev FROM kv WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        kv = KeyValue(key, bytes(row[0]), int(row[1]), int(row[2]))
        self._recent.remember(kv, epoch)
        return kv

    async def create(self, key: str, value: bytes) -> KeyValue:
        kv = await self._submit("create", key, value)
        assert kv is not None
        return kv

    async def update(self, key: str, value: bytes, *, expected_revision: int | None = None) -> KeyValue:
        kv = await self._submit("update", key, value, expected_revision)
        assert kv is not None
        return kv

    async def delete(self, key: str, *, expected_revision: int | None = None) -> KeyValue:
        kv = await self._submit("delete", key, None, expected_revision)
        assert kv is not None
        return kv

    async def range(self, prefix: str, *, revision: int | None = None, limit: int | None = None,
                    start_after: str | None = None) -> RangeResult:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return await asyncio.to_thread(self._range, prefix, revision, limit, start_after)

    def _range(self, prefix: str, revision: int | None, limit: int | None, start_after: str | None) -> RangeResult:
        conn = self._thread_conn()
        try:
            conn.execute("BEGIN")
            current = self._meta(conn, "revision")
            compacted = self._meta(conn, "compacted")
            lo = start_after if start_after and start_after >= prefix else None
            hi = _prefix_end(prefix)
            if revision is not None and revision < compacted:
                raise Gone(f"required revision {revision} has been compacted (compacted at {compacted})")
            if revision is not None and revision > current:
                raise Gone(f"required revision {revision} is a future revision (current {current})")
            if revision is None or revision == current:
                at = current
                where = "key > ? AND key < ?" if lo is not None else "key >= ? AND key < ?"
                args: tuple[object, ...] = (lo if lo is not None else prefix, hi)
                count = conn.execute("SELECT COUNT(*) FROM kv WHERE key >= ? AND key < ?", (prefix, hi)).fetchone()[0]
                sql = f"SELECT key, value, create_rev, mod_rev FROM kv WHERE {where} ORDER BY key"
                if limit:
                    sql += f" LIMIT {int(limit) + 1}"
                rows = conn.execute(sql, args).fetchall()
            else:
                at = revision
                where = "key > ? AND key < ?" if lo is not None else "key >= ? AND key < ?"
                args = (lo if lo is not None else prefix, hi, revision)
                sql = (f"SELECT l.key, l.value, l.create_rev, l.rev FROM log l JOIN "
                       f"(SELECT key, MAX(rev) AS rev FROM log WHERE {where} AND rev <= ? GROUP BY key) m "
                       f"ON l.rev = m.rev WHERE l.deleted = 0 ORDER BY l.key")
                rows = conn.execute(sql, args).fetchall()
                count = len(rows)
                if limit:
                    rows = rows[: int(limit) + 1]
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")
        more = bool(limit) and len(rows) > int(limit or 0)
        if more:
            rows = rows[: int(limit or 0)]
        kvs = [KeyValue(r[0], bytes(r[1]), int(r[2]), int(r[3])) for r in rows]
        return RangeResult(kvs, at, more, int(count))

    async def _history(self, prefix: str, after: int) -> list[WatchEvent]:
        return await asyncio.to_thread(self._history_sync, prefix, after)

    def _history_sync(self, prefix: str, after: int) -> list[WatchEvent]:
        conn = self._thread_conn()
        rows = conn.execute(
                "SELECT l.rev, l.key, l.value, l.create_rev, l.deleted, l.prev_rev, p.value FROM log l "
                "LEFT JOIN log p ON p.rev = l.prev_rev "
                "WHERE l.rev > ? AND l.key >= ? AND l.key < ? ORDER BY l.rev",
                (after, prefix, _prefix_end(prefix))).fetchall()
        events: list[WatchEvent] = []
        for rev, key, value, create_rev, deleted, prev_rev, prev_value in rows:
            prev = (KeyValue(key, bytes(prev_value), int(create_rev), int(prev_rev))
                    if prev_rev is not None and prev_value is not None else None)
            if deleted:
                gone = KeyValue(key, prev.value if prev else b"", int(create_rev), int(rev))
                events.append(WatchEvent("DELETE", gone, int(rev), prev))
            else:
                events.append(WatchEvent("PUT", KeyValue(key, bytes(value), int(create_rev), int(rev)), int(rev),
                                         prev))
        return events

    def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[WatchEvent]:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if after_revision < self._compacted - 1:
            raise Gone(f"required revision {after_revision + 1} has been compacted (compacted at {self._compacted})")
        return self._fanout.watch(prefix, after_revision, self._history)

    async def current_revision(self) -> int:
        return self._revision

    async def compacted_revision(self) -> int:
        return self._compacted

    async def compact(self, revision: int) -> None:
        if revision > self._revision:
            raise Gone(f"cannot compact to future revision {revision}")
        await self._submit("compact", "", None, revision)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ops.put(None)
        await asyncio.to_thread(self._thread.join, 30)
        self._fanout.close()
        with contextlib.suppress(Exception):
            self._writer_conn.close()
            self._reader.close()
