"""The watch cache: one store watch per resource, shared by every API watcher.

kube-apiserver's ``cacher`` keeps, per resource, the current objects and a window of
recent events so that N watchers cost one storage watch and every event is decoded once
and encoded once. This is the same idea:

* ``start()`` lists the resource prefix at revision R, then watches the store from R.
* Each store event is decoded once into a :class:`CachedEvent`; its JSON encoding
  (``{"type":..., "object":...}``) is computed at most once, lazily, and shared.
* A watcher asking for ``resourceVersion=X`` is replayed the window's events with
  revision > X, then follows live events. X older than the window → ``Gone`` (410).
* ``resourceVersion=0``/unset watchers first get synthetic ADDED events for the
  current state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from atoll.api.errors import Gone
from atoll.storage.protocol import KeyValue, Store, WatchEvent

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

DEFAULT_WINDOW = 10_000
"""How many recent events a cache keeps for watchers resuming from an older resourceVersion."""


def decode_kv(kv: KeyValue) -> Obj:
    obj: Obj = orjson.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


@dataclass(slots=True)
class CachedEvent:
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK
    key: str
    object: Obj
    revision: int
    prev: Obj | None = None
    _encoded: bytes | None = field(default=None, repr=False)

    def encoded(self) -> bytes:
        """``{"type":..,"object":..}\\n`` serialised once for all watchers."""
        if self._encoded is None:
            self._encoded = orjson.dumps({"type": self.type, "object": self.object}) + b"\n"
        return self._encoded


Filter = Callable[[Obj], bool]


class _Watcher:
    __slots__ = ("closed", "filter", "overflowed", "queue", "start_after")

    def __init__(self, filter_: Filter | None, start_after: int, capacity: int) -> None:
        self.filter = filter_
        self.start_after = start_after
        self.queue: asyncio.Queue[CachedEvent | None] = asyncio.Queue(maxsize=capacity)
        self.closed = False
        self.overflowed = False


class _Stream:
    """Async iteration over ``next()``, which returns None at the end of the watch."""

    async def next(self) -> CachedEvent | None:
        raise NotImplementedError

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> CachedEvent:
        ev = await self.next()
        if ev is None:
            raise StopAsyncIteration
        return ev


class WatchStream(_Stream):
    """One watcher's events; ``next()`` is safe to cancel (nothing is lost)."""

    def __init__(self, cache: WatchCache, watcher: _Watcher, head: list[CachedEvent], prefix: str,
                 filter_: Filter, bookmark_interval: float | None) -> None:
        self._cache = cache
        self._w = watcher
        self._head = deque(head)
        self._prefix = prefix
        self._filter = filter_
        self._bookmark_interval = bookmark_interval

    async def next(self) -> CachedEvent | None:
        """The next event, or None once the watch has ended (closed or overflowed)."""
        if self._head:
            return self._head.popleft()
        while True:
            if self._bookmark_interval is None:
                ev = await self._w.queue.get()
            else:
                try:
                    ev = await asyncio.wait_for(self._w.queue.get(), self._bookmark_interval)
                except TimeoutError:
                    return CachedEvent("BOOKMARK", "", {}, self._cache.revision)
            if ev is None:
                if self._w.overflowed:
                    logger.info("watch on %s closed: watcher too slow", self._cache.prefix)
                return None
            out = WatchCache._filter_event(ev, self._prefix, self._filter)
            if out is not None:
                return out

    async def aclose(self) -> None:
        self._cache._close_watcher(self._w)


class StoreWatchStream(_Stream):
    """A watch served straight from the store, for a resourceVersion older than the cache
    window that the store still has (e.g. just after the cache started)."""

    def __init__(self, events: Any, prefix: str, filter_: Filter) -> None:
        self._events = events
        self._prefix = prefix
        self._filter = filter_
        self._iter = events.__aiter__()

    async def next(self) -> CachedEvent | None:
        while True:
            try:
                ev: WatchEvent = await self._iter.__anext__()
            except StopAsyncIteration:
                return None
            prev = decode_kv(ev.prev) if ev.prev is not None and ev.prev.value else None
            if ev.type == "DELETE":
                obj = decode_kv(ev.kv) if ev.kv.value else {"metadata": {}}
                obj["metadata"]["resourceVersion"] = str(ev.revision)
                cached = CachedEvent("DELETED", ev.kv.key, obj, ev.revision, prev)
            else:
                cached = CachedEvent("MODIFIED" if prev is not None else "ADDED", ev.kv.key, decode_kv(ev.kv),
                                     ev.revision, prev)
            out = WatchCache._filter_event(cached, self._prefix, self._filter)
            if out is not None:
                return out

    async def aclose(self) -> None:
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


class WatchCache:
    """Current state and recent history of one key prefix (one group/resource)."""

    def __init__(self, store: Store, prefix: str, *, window: int = DEFAULT_WINDOW,
                 watcher_capacity: int = 10_000) -> None:
        self._store = store
        self.prefix = prefix
        self._objects: dict[str, Obj] = {}
        self._events: deque[CachedEvent] = deque(maxlen=window)
        self._window_start = 0
        """Revisions strictly greater than this are all in ``_events``."""
        self.revision = 0
        """The newest store revision this cache has applied."""
        self._watchers: set[_Watcher] = set()
        self._watcher_capacity = watcher_capacity
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._failed: BaseException | None = None

    # -- lifecycle --------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Listed and following the store (until then ``get`` knows nothing)."""
        return self._ready.is_set() and self._failed is None and self._task is not None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"watchcache:{self.prefix}")
        await self._ready.wait()
        if self._failed is not None:
            raise self._failed

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        for w in list(self._watchers):
            self._close_watcher(w)

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            try:
                await self._relist()
                self._ready.set()
                backoff = 0.05
                watch = self._store.watch(self.prefix, after_revision=self.revision)
                try:
                    async for ev in watch:
                        self._apply(ev)
                finally:
                    aclose = getattr(watch, "aclose", None)
                    if aclose is not None:
                        with contextlib.suppress(Exception):
                            await aclose()
            except asyncio.CancelledError:
                raise
            except Gone:
                logger.warning("watch cache %s fell behind compaction; relisting", self.prefix)
                # Watchers cannot be resumed consistently across a relist: end them so
                # their clients relist too (exactly what a 410 tells them to do).
                for w in list(self._watchers):
                    self._close_watcher(w)
            except Exception as exc:  # store unavailable: keep trying, surface first failure
                if not self._ready.is_set():
                    self._failed = exc
                    self._ready.set()
                    return
                logger.warning("watch cache %s: store watch failed (%s); retrying", self.prefix, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _relist(self) -> None:
        result = await self._store.range(self.prefix)
        self._objects = {kv.key: decode_kv(kv) for kv in result.kvs}
        self.revision = result.revision
        self._events.clear()
        self._window_start = result.revision

    def _apply(self, ev: WatchEvent) -> None:
        key = ev.kv.key
        prev = self._objects.get(key)
        if ev.type == "DELETE":
            obj = self._objects.pop(key, None)
            if obj is None:
                obj = decode_kv(ev.kv) if ev.kv.value else {"metadata": {}}
            obj = dict(obj)
            obj["metadata"] = dict(obj.get("metadata") or {})
            obj["metadata"]["resourceVersion"] = str(ev.revision)
            cached = CachedEvent("DELETED", key, obj, ev.revision, prev)
        else:
            obj = decode_kv(ev.kv)
            self._objects[key] = obj
            cached = CachedEvent("ADDED" if prev is None else "MODIFIED", key, obj, ev.revision, prev)
        if len(self._events) == self._events.maxlen and self._events:
            self._window_start = self._events[0].revision
        self._events.append(cached)
        self.revision = max(self.revision, ev.revision)
        for w in list(self._watchers):
            self._offer(w, cached)

    # -- reads --------------------------------------------------------------------
    def list(self, prefix: str | None = None, filter_: Filter | None = None) -> tuple[list[Obj], int]:
        """Current objects under ``prefix`` (sorted by key) and the cache revision."""
        p = prefix or self.prefix
        keys = sorted(k for k in self._objects if k.startswith(p))
        items = [self._objects[k] for k in keys]
        if filter_ is not None:
            items = [o for o in items if filter_(o)]
        return items, self.revision

    def get(self, key: str) -> Obj | None:
        """The cached object at ``key``; shared with every watcher, so never change it in place."""
        return self._objects.get(key)

    # -- watch ----------------------------------------------------------------------
    def _offer(self, w: _Watcher, ev: CachedEvent) -> None:
        if w.closed or ev.revision <= w.start_after:
            return
        try:
            w.queue.put_nowait(ev)
        except asyncio.QueueFull:
            # A watcher that cannot keep up is terminated, as kube-apiserver does;
            # the client re-watches from its last resourceVersion.
            w.overflowed = True
            self._close_watcher(w)

    def _close_watcher(self, w: _Watcher) -> None:
        if w.closed:
            return
        w.closed = True
        self._watchers.discard(w)
        while True:
            try:
                w.queue.put_nowait(None)
                break
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    w.queue.get_nowait()

    async def watch(
        self,
        *,
        resource_version: int | None,
        prefix: str | None = None,
        filter_: Filter | None = None,
        send_initial_events: bool = False,
        bookmark_interval: float | None = None,
    ) -> WatchStream | StoreWatchStream:
        """Events after ``resource_version``, as a :class:`WatchStream`.

        ``None``/0, or ``send_initial_events``: the current state first, as ADDED events;
        with ``send_initial_events`` a ``BOOKMARK`` follows them (the caller marks it
        ``k8s.io/initial-events-end``). With ``bookmark_interval``, a quiet watch gets a
        ``BOOKMARK`` at the cache's revision that often. Raises ``Gone`` at once for a
        resourceVersion older than the window, before anything is streamed.
        """
        await self.start()
        p = prefix or self.prefix
        f: Filter = filter_ or (lambda _o: True)
        head: list[CachedEvent] = []
        if resource_version in (None, 0) or send_initial_events:
            replay_from = self.revision
            for key in sorted(self._objects):
                o = self._objects[key]
                if key.startswith(p) and f(o):
                    head.append(CachedEvent("ADDED", key, o, replay_from))
            if send_initial_events:
                head.append(CachedEvent("BOOKMARK", "initial-events-end", {}, replay_from))
        else:
            replay_from = int(resource_version)
            if replay_from < self._window_start:
                if replay_from + 1 < await self._store.compacted_revision():
                    raise Gone(f"too old resource version: {replay_from} ({self._window_start})")
                # Older than this cache's window but still in the store's history.
                return StoreWatchStream(self._store.watch(p, after_revision=replay_from), p, f)
            for e in self._events:
                if e.revision > replay_from:
                    out = self._filter_event(e, p, f)
                    if out is not None:
                        head.append(out)
                    replay_from = e.revision
        # Registering right after taking the backlog, with no await in between, means no
        # event can fall between the replay and the live stream.
        w = _Watcher(None, replay_from, self._watcher_capacity)
        self._watchers.add(w)
        return WatchStream(self, w, head, p, f, bookmark_interval)

    @staticmethod
    def _filter_event(ev: CachedEvent, prefix: str, f: Filter) -> CachedEvent | None:
        if not ev.key.startswith(prefix):
            return None
        if ev.type == "DELETED":
            return ev if f(ev.object) else None
        now_match = f(ev.object)
        was_match = ev.prev is not None and f(ev.prev)
        if now_match and (was_match or ev.type == "ADDED"):
            return ev
        if now_match and not was_match:
            return CachedEvent("ADDED", ev.key, ev.object, ev.revision, ev.prev)
        if was_match and not now_match:
            return CachedEvent("DELETED", ev.key, ev.object, ev.revision, ev.prev)
        return None

    @property
    def watcher_count(self) -> int:
        return len(self._watchers)
