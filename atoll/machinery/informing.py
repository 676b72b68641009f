"""Informers: list + watch one resource into a local cache and tell handlers what changed.

Controllers read from the cache (through :class:`Lister`) and only enqueue keys from
the handlers, as client-go's shared informers are used. After a relist (a watch that
fell behind compaction) the handlers see the difference: adds, updates and deletes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from atoll.api.selectors import LabelSelector
from atoll.client import Client, Resource

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
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


class Informer:
    def __init__(self, client: Client, resource: Resource, *, namespace: str | None = None,
                 label_selector: str = "", field_selector: str = "") -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self._cache: dict[str, Obj] = {}
        self.lister = Lister(self._cache)
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
        feed = self.client.list_and_watch(self.resource, self.namespace, label_selector=self.label_selector,
                                          field_selector=self.field_selector, stop=stop)
        try:
            async for event, obj in feed:
                if event == "SYNC":
                    self._replace(obj["items"])
                    self.synced.set()
                    continue
                key = key_of(obj)
                old = self._cache.get(key)
                if event == "DELETED":
                    self._cache.pop(key, None)
                    self._emit("DELETED", old, None)
                else:
                    self._cache[key] = obj
                    self._emit("ADDED" if old is None else "MODIFIED", old, obj)
        finally:
            aclose = getattr(feed, "aclose", None)
            if aclose is not None:
                await aclose()

    def _replace(self, items: list[Obj]) -> None:
        fresh = {key_of(o): o for o in items}
        for key, old in list(self._cache.items()):
            if key not in fresh:
                del self._cache[key]
                self._emit("DELETED", old, None)
        for key, item in fresh.items():
            previous = self._cache.get(key)
            self._cache[key] = item
            if previous is None:
                self._emit("ADDED", None, item)
            elif (previous.get("metadata") or {}).get("resourceVersion") != (item.get("metadata") or {}).get(
                    "resourceVersion"):
                self._emit("MODIFIED", previous, item)
