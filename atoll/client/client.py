"""Async Kubernetes client over aiohttp: the one client every Atoll controller uses.

It talks to any conformant API server (Atoll's own, kind, EKS...) through plain REST.
Resources are addressed by :class:`Resource` (apiVersion + plural + scope), resolved
from a kind through discovery when needed. Every non-2xx answer raises the
``atoll.api.errors`` class matching its ``Status`` — the same classes the server and
the stores raise — so ``except NotFound`` means the same everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from atoll.api.errors import APIError, Gone, NotFound
from atoll.client.kubeconfig import ClusterConfig

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjList = list[Obj]
PATCH_CONTENT_TYPES = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


@dataclass(frozen=True, slots=True)
class Resource:
    api_version: str
    plural: str
    namespaced: bool = True
    kind: str = ""

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str = "") -> str:
        base = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str
    object: Obj


class Client:
    def __init__(self, config: ClusterConfig, *, timeout: float = 30.0, user_agent: str = "atoll/0.1",
                 field_manager: str = "atoll") -> None:
        self.config = config
        self.field_manager = field_manager
        self._timeout = timeout
        headers = {"User-Agent": user_agent, "Accept": "application/json"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None
        self._discovery: dict[str, ObjList] = {}

    @classmethod
    def from_kubeconfig(cls, path: Any = None, *, context: str | None = None, **kwargs: Any) -> Client:
        from atoll.client import kubeconfig

        return cls(kubeconfig.load(path, context=context), **kwargs)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.config.ssl_context(), limit=100,
                                             enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(base_url=self.config.server, headers=self._headers,
                                                  connector=connector)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- raw ---------------------------------------------------------------------------
    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      body: Any = None, content_type: str = "application/json",
                      timeout: float | None = None) -> Any:
        data: bytes | None = None
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            async with self.session.request(
                    method, path, params=clean, data=data,
                    headers={"Content-Type": content_type} if data is not None else None,
                    timeout=aiohttp.ClientTimeout(total=timeout or self._timeout)) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise _error(resp.status, raw)
                if not raw:
                    return None
                if resp.content_type.endswith("json") or raw[:1] in (b"{", b"["):
                    return orjson.loads(raw)
                return raw.decode()
        except aiohttp.ClientConnectionError as exc:
            from atoll.api.errors import ServiceUnavailable

            raise ServiceUnavailable(f"cannot reach {self.config.server}: {exc}") from exc
        except TimeoutError as exc:
            from atoll.api.errors import Timeout

            raise Timeout(f"request to {self.config.server}{path} timed out") from exc

    # -- discovery -----------------------------------------------------------------------
    async def api_resources(self, api_version: str) -> ObjList:
        if api_version not in self._discovery:
            path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            doc = await self.request("GET", path)
            self._discovery[api_version] = list(doc.get("resources") or [])
        return self._discovery[api_version]

    async def resource_for(self, api_version: str, kind: str) -> Resource:
        for entry in await self.api_resources(api_version):
            if entry.get("kind") == kind and "/" not in entry.get("name", ""):
                return Resource(api_version, entry["name"], bool(entry.get("namespaced")), kind)
        self._discovery.pop(api_version, None)  # a CRD may have appeared since: ask again next time
        raise NotFound(f'no resource for kind "{kind}" in {api_version}')

    def invalidate_discovery(self) -> None:
        self._discovery.clear()

    # -- verbs -----------------------------------------------------------------------------
    async def get(self, res: Resource, name: str, namespace: str | None = None, *, subresource: str = "") -> Obj:
        result: Obj = await self.request("GET", res.path(namespace, name, subresource))
        return result

    async def list(self, res: Resource, namespace: str | None = None, *, label_selector: str = "",
                   field_selector: str = "", limit: int | None = None, continue_token: str = "",
                   resource_version: str = "") -> Obj:
        result: Obj = await self.request("GET", res.path(namespace), params={
            "labelSelector": label_selector, "fieldSelector": field_selector,
            "limit": str(limit) if limit else "", "continue": continue_token, "resourceVersion": resource_version})
        return result

    async def list_all(self, res: Resource, namespace: str | None = None, *, page: int = 500,
                       **selectors: str) -> tuple[ObjList, str]:
        """Every item, paging with ``continue``; returns the items and the list resourceVersion."""
        items: ObjList = []
        token = ""
        while True:
            doc = await self.list(res, namespace, limit=page, continue_token=token, **selectors)
            items.extend(doc.get("items") or [])
            token = (doc.get("metadata") or {}).get("continue") or ""
            if not token:
                return items, (doc.get("metadata") or {}).get("resourceVersion", "")

    async def create(self, res: Resource, obj: Obj, namespace: str | None = None, *,
                     dry_run: bool = False) -> Obj:
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        result: Obj = await self.request("POST", res.path(ns), body=obj, params={
            "fieldManager": self.field_manager, "dryRun": "All" if dry_run else ""})
        return result

    async def replace(self, res: Resource, obj: Obj, namespace: str | None = None, *, subresource: str = "") -> Obj:
        md = obj.get("metadata") or {}
        ns = namespace or md.get("namespace")
        result: Obj = await self.request("PUT", res.path(ns, md["name"], subresource), body=obj,
                                         params={"fieldManager": self.field_manager})
        return result

    async def replace_status(self, res: Resource, obj: Obj) -> Obj:
        return await self.replace(res, obj, subresource="status")

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None, *,
                    patch_type: str = "merge", subresource: str = "", force: bool = False,
                    field_manager: str | None = None) -> Obj:
        params = {"fieldManager": field_manager or self.field_manager}
        if patch_type == "apply" and force:
            params["force"] = "true"
        body = patch if isinstance(patch, bytes) else (json.dumps(patch).encode() if patch_type == "apply"
                                                       else orjson.dumps(patch))
        result: Obj = await self.request("PATCH", res.path(namespace, name, subresource), body=body,
                                         content_type=PATCH_CONTENT_TYPES[patch_type], params=params)
        return result

    async def apply(self, res: Resource, obj: Obj, *, force: bool = False, field_manager: str | None = None) -> Obj:
        md = obj.get("metadata") or {}
        return await self.patch(res, md["name"], obj, md.get("namespace"), patch_type="apply", force=force,
                                field_manager=field_manager)

    async def delete(self, res: Resource, name: str, namespace: str | None = None, *,
                     propagation_policy: str | None = None, grace_period_seconds: int | None = None,
                     uid: str | None = None) -> Obj | None:
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if uid:
            body["preconditions"] = {"uid": uid}
        result: Obj | None = await self.request("DELETE", res.path(namespace, name), body=body)
        return result

    async def watch(self, res: Resource, namespace: str | None = None, *, resource_version: str = "",
                    label_selector: str = "", field_selector: str = "", timeout_seconds: int = 300,
                    bookmarks: bool = True) -> AsyncIterator[WatchEvent]:
        """One watch request: events until the server ends it. ``ERROR`` 410 raises ``Gone``."""
        params = {"watch": "true", "resourceVersion": resource_version, "labelSelector": label_selector,
                  "fieldSelector": field_selector, "timeoutSeconds": str(timeout_seconds),
                  "allowWatchBookmarks": "true" if bookmarks else ""}
        clean = {k: v for k, v in params.items() if v}
        async with self.session.get(res.path(namespace), params=clean,
                                    timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30)
                                    ) as resp:
            if resp.status >= 400:
                raise _error(resp.status, await resp.read())
            async for line in resp.content:
                if not line.strip():
                    continue
                ev = orjson.loads(line)
                if ev.get("type") == "ERROR":
                    raise APIError.from_status(ev.get("object") or {}, (ev.get("object") or {}).get("code"))
                yield WatchEvent(ev["type"], ev["object"])

    async def list_and_watch(self, res: Resource, namespace: str | None = None, *, label_selector: str = "",
                             field_selector: str = "", stop: asyncio.Event | None = None
                             ) -> AsyncIterator[tuple[str, Obj]]:
        """An informer's feed: ``("SYNC", list)`` first (and again after a 410), then events.

        Resumes from the last resourceVersion seen when a watch ends, relists on ``Gone``
        and backs off while the server is unreachable.
        """
        backoff = 0.2
        rv = ""
        while stop is None or not stop.is_set():
            try:
                if not rv:
                    items, rv = await self.list_all(res, namespace, label_selector=label_selector,
                                                    field_selector=field_selector)
                    yield "SYNC", {"items": items, "resourceVersion": rv}
                async for ev in self.watch(res, namespace, resource_version=rv, label_selector=label_selector,
                                           field_selector=field_selector):
                    rv = (ev.object.get("metadata") or {}).get("resourceVersion") or rv
                    backoff = 0.2
                    if ev.type != "BOOKMARK":
                        yield ev.type, ev.object
            except Gone:
                rv = ""
            except (APIError, aiohttp.ClientError, TimeoutError) as exc:
                logger.info("watch %s failed: %s; retrying in %.1fs", res.plural, exc, backoff)
                with contextlib.suppress(TimeoutError):
                    if stop is not None:
                        await asyncio.wait_for(stop.wait(), backoff)
                    else:
                        await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)


def _error(status: int, raw: bytes) -> APIError:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = {"message": raw.decode(errors="replace")[:500] or f"HTTP {status}", "code": status}
    if not isinstance(body, dict):
        body = {"message": str(body), "code": status}
    return APIError.from_status(body, status)
