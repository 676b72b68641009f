"""Events: what a controller decided, recorded so ``kubectl describe`` shows it.

Repeated events (same object, reason and message) are aggregated as kube's event
recorder does: the first is created, later ones bump ``count`` and ``lastTimestamp``.
Recording never fails the caller: an event is advice, not state.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from atoll.api.errors import NotFound
from atoll.client import Client, Resource

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
EVENTS = Resource("v1", "events", True, "Event")
MAX_REMEMBERED = 4096


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def involved(obj: Obj) -> Obj:
    md = obj.get("metadata") or {}
    ref = {"kind": obj.get("kind", ""), "apiVersion": obj.get("apiVersion", ""), "name": md.get("name", ""),
           "namespace": md.get("namespace", ""), "uid": md.get("uid", ""),
           "resourceVersion": md.get("resourceVersion", "")}
    return {k: v for k, v in ref.items() if v}


class EventRecorder:
    """Records core/v1 Events for one component (``source.component``), optionally for one host."""

    def __init__(self, client: Client, component: str, *, host: str = "") -> None:
        self.client = client
        self.component = component
        self.host = host
        self._seen: dict[tuple[str, str, str, str], tuple[str, int]] = {}
        """(uid, reason, message, type) → (event name, count)."""

    async def record(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        """``type_`` is ``Normal`` or ``Warning``; ``obj`` needs kind, apiVersion and metadata."""
        md = obj.get("metadata") or {}
        namespace = md.get("namespace") or "default"
        now = _now()
        key = (str(md.get("uid") or md.get("name")), reason, message, type_)
        try:
            seen = self._seen.get(key)
            if seen is not None:
                name, count = seen
                try:
                    await self.client.patch(EVENTS, name, {"count": count + 1, "lastTimestamp": now}, namespace)
                    self._seen[key] = (name, count + 1)
                    return
                except NotFound:
                    self._seen.pop(key, None)
            source: Obj = {"component": self.component}
            if self.host:
                source["host"] = self.host
            event = {"apiVersion": "v1", "kind": "Event",
                     "metadata": {"generateName": f"{md.get('name', 'object')}.", "namespace": namespace},
                     "involvedObject": involved(obj), "reason": reason, "message": message, "type": type_,
                     "count": 1, "firstTimestamp": now, "lastTimestamp": now, "source": source,
                     "reportingComponent": self.component, "reportingInstance": self.host or self.component}
            created = await self.client.create(EVENTS, event)
            if len(self._seen) >= MAX_REMEMBERED:
                self._seen.clear()
            self._seen[key] = (created["metadata"]["name"], 1)
        except Exception as exc:  # an API error or an unreachable server: an event is not worth failing for
            logger.debug("%s: event %s for %s not recorded: %s", self.component, reason, md.get("name"), exc)
