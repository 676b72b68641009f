"""Informers: list + watch one resource into a local cache and tell handlers what changed.

Controllers read from the cache (through :class:`Lister`) and only enqueue keys from
the handlers, as client-go's shared informers are used. After a relist (a watch that
fell behind compaction) the handlers see the difference: adds, updates and deletes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import Any

from atoll.api.selectors import LabelSelector
from atoll.client import Client, Resource

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
SourceKey = tuple[str, str, str, str, str]
"""(apiVersion, plural, namespace, label selector, field selector)."""
Handler = Callable[[str, Obj | None, Obj | None], None]
"""``handler(event, old, new)`` with event ``ADDED``/``MODIFIED``/``DELETED``."""


def key_of(obj: Obj) -> str:
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{ns}/{md.get('name')}" if ns else str(md.get("name"))


def split_key(key: str) -> tuple[str | None, str]:
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else (None, ns)


class Lister:
    def __init__(self, cache: dict[str, Obj]) -> None:
        self._cache = cache

    def get(self, key: str) -> Obj | None:
        return self._cache.get(key)

    def list(self, namespace: str | None = None, selector: LabelSelector | None = None) -> list[Obj]:
        out = []
        for obj in self._cache.values():
            md = obj.get("metadata") or {}
            if namespace is not None and md.get("namespace") != namespace:
                continue
            if selector is not None and not selector.matches(md.get("labels") or {}):
                continue
            out.append(obj)
        return out


class _Source:
    """One list+watch and one cache, shared by every informer for the same query on one client.

    client-go's shared informers: each controller gets its own handlers, but a process
    holds each resource once, however many controllers watch it. The source runs while
    at least one informer runs; an informer that joins late first sees every cached
    object as ``ADDED``, as client-go replays to a handler added after the start.
    """

    def __init__(self, client: Client, resource: Resource, namespace: str | None, label_selector: str,
                 field_selector: str, registry: dict[SourceKey, _Source], key: SourceKey) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.cache: dict[str, Obj] = {}
        self.synced = False
        self.users: list[Informer] = []
        self._registry = registry
        self._key = key
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def attach(self, informer: Informer) -> None:
        self.users.append(informer)
        if self.synced:
            for obj in list(self.cache.values()):
                informer._emit("ADDED", None, obj)
            informer.synced.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer-{self.resource.plural}")

    async def detach(self, informer: Informer) -> None:
        with contextlib.suppress(ValueError):
            self.users.remove(informer)
        if self.users or self._task is None:
            return
        if self._registry.get(self._key) is self:
            del self._registry[self._key]
        self._stop.set()
        task, self._task = self._task, None
        try:
            await asyncio.wait_for(task, 5)
        except (TimeoutError, asyncio.CancelledError, Exception):
            task.cancel()

    def _emit(self, event: str, old: Obj | None, new: Obj | None) -> None:
        for informer in list(self.users):
            informer._emit(event, old, new)

    async def _run(self) -> None:
        feed = self.client.list_and_watch(self.resource, self.namespace, label_selector=self.label_selector,
                                          field_selector=self.field_selector, stop=self._stop)
        try:
            async for event, obj in feed:
                if event == "SYNC":
                    self._replace(obj["items"])
                    self.synced = True
                    for informer in list(self.users):
                        informer.synced.set()
                    continue
                key = key_of(obj)
                old = self.cache.get(key)
                if event == "DELETED":
                    self.cache.pop(key, None)
                    self._emit("DELETED", old, None)
                else:
                    self.cache[key] = obj
                    self._emit("ADDED" if old is None else "MODIFIED", old, obj)
        finally:
            aclose = getattr(feed, "aclose", None)
            if aclose is not None:
                await aclose()

    def _replace(self, items: list[Obj]) -> None:
        fresh = {key_of(o): o for o in items}
        for key, old in list(self.cache.items()):
            if key not in fresh:
                del self.cache[key]
                self._emit("DELETED", old, None)
        for key, item in fresh.items():
            previous = self.cache.get(key)
            self.cache[key] = item
            if previous is None:
                self._emit("ADDED", None, item)
            elif (previous.get("metadata") or {}).get("resourceVersion") != (item.get("metadata") or {}).get(
                    "resourceVersion"):
                self._emit("MODIFIED", previous, item)


_SOURCES: weakref.WeakKeyDictionary[Client, dict[SourceKey, _Source]] = weakref.WeakKeyDictionary()


class Informer:
    """A controller's view of one resource: its own handlers over a cache shared per client.

    Objects in the cache are shared with other controllers of the process: copy before
    changing one (as with client-go's listers).
    """

    def __init__(self, client: Client, resource: Resource, *, namespace: str | None = None,
                 label_selector: str = "", field_selector: str = "") -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        key = (resource.api_version, resource.plural, namespace or "", label_selector, field_selector)
        sources = _SOURCES.setdefault(client, {})
        source = sources.get(key)
        if source is None:
            source = sources[key] = _Source(client, resource, namespace, label_selector, field_selector,
                                            sources, key)
        self._source = source
        self.lister = Lister(source.cache)
        self._handlers: list[Handler] = []
        self.synced = asyncio.Event()

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def _emit(self, event: str, old: Obj | None, new: Obj | None) -> None:
        for h in self._handlers:
            try:
                h(event, old, new)
            except Exception:
                logger.exception("informer handler for %s failed", self.resource.plural)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver events to this informer's handlers until ``stop`` is set."""
        self.synced.clear()
        source = self._source
        if source._task is None and source not in _SOURCES.get(self.client, {}).values():
            # The source was released by its last user (a stopped controller): start afresh.
            fresh = Informer(self.client, self.resource, namespace=self.namespace,
                             label_selector=self.label_selector, field_selector=self.field_selector)
            self._source = source = fresh._source
            self.lister = Lister(source.cache)
        source.attach(self)
        try:
            await stop.wait()
        finally:
            await source.detach(self)
