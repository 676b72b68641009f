"""Async Kubernetes client over aiohttp: the one client every Atoll controller uses.

It talks to any conformant API server (Atoll's own, kind, EKS...) through plain REST.
Resources are addressed by :class:`Resource` (apiVersion + plural + scope), resolved
from a kind through discovery when needed. Every non-2xx answer raises the
``atoll.api.errors`` class matching its ``Status`` — the same classes the server and
the stores raise — so ``except NotFound`` means the same everywhere. A server that
cannot be reached (or breaks off its answer) raises ``ServiceUnavailable``, a request
that takes too long ``Timeout``: callers handle one error tree, never aiohttp's.

Watches read the stream chunk by chunk and split lines themselves: aiohttp's
``readline`` refuses lines longer than its buffer, and one event carries a whole object
(a CRD with its schema is easily hundreds of kilobytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, NamedTuple

import aiohttp
import orjson

from atoll.api.errors import APIError, Gone, InternalError, NotFound, ServiceUnavailable, Timeout
from atoll.client.kubeconfig import ClusterConfig, KubeconfigPaths

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjList = list[Obj]
Params = Mapping[str, str | int | bool | None]
PatchType = Literal["json", "merge", "strategic", "apply"]
PATCH_CONTENT_TYPES: dict[str, str] = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


@dataclass(frozen=True, slots=True)
class Resource:
    """A REST resource: ``("apps/v1", "deployments")``, namespaced or not."""

    api_version: str
    plural: str
    namespaced: bool = True
    kind: str = ""

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

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


class WatchEvent(NamedTuple):
    """One watch event; unpacks as ``(type, object)``."""

    type: str
    object: Obj


def _query(params: Params | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None or value == "" or value is False:
            continue
        out[key] = "true" if value is True else str(value)
    return out


def _error(status: int, raw: bytes) -> APIError:
    """The error class for a non-2xx answer: from its ``Status`` body, else from the HTTP code."""
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        body = {"message": raw.decode(errors="replace").strip()[:500] or f"HTTP {status}", "code": status}
    if not isinstance(body, dict) or body.get("kind") not in (None, "Status"):
        body = {"message": f"HTTP {status}", "code": status}
    return APIError.from_status(body, status)


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Non-empty lines of a stream, however long (aiohttp's readline caps the line length)."""
    buf = bytearray()
    async for chunk in content.iter_any():
        scan = len(buf)  # what is left from earlier chunks holds no newline
        buf += chunk
        start = 0
        while (end := buf.find(b"\n", scan)) >= 0:
            line = bytes(buf[start:end])
            start = scan = end + 1
            if line.strip():
                yield line
        if start:
            del buf[:start]  # once per chunk, not once per line
    if bytes(buf).strip():
        yield bytes(buf)


def _event(line: bytes) -> WatchEvent:
    try:
        ev = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InternalError(f"malformed watch event: {line[:200]!r}") from exc
    if not isinstance(ev, dict) or not isinstance(ev.get("type"), str) or not isinstance(ev.get("object"), dict):
        raise InternalError(f"malformed watch event: {line[:200]!r}")
    if ev["type"] == "ERROR":
        status: Obj = ev["object"]
        raise APIError.from_status(status, status.get("code"))
    return WatchEvent(ev["type"], ev["object"])


class Client:
    """An API server connection: a pooled aiohttp session plus kube's REST verbs.

    Build it from a :class:`ClusterConfig` (usually :meth:`from_kubeconfig`) or from an
    explicit ``server=`` with optional ``ssl_context=`` and ``token=``.
    """

    def __init__(self, config: ClusterConfig | None = None, *, server: str | None = None,
                 ssl_context: ssl.SSLContext | bool | None = None, token: str | None = None,
                 timeout: float = 30.0, connect_timeout: float | None = 10.0, user_agent: str = "atoll/0.1",
                 field_manager: str = "atoll", pool_size: int = 100) -> None:
        if config is None:
            if not server:
                raise ValueError("Client needs a ClusterConfig or a server URL")
            config = ClusterConfig(server=server.rstrip("/"), token=token)
        elif token is not None:
            config = dataclasses.replace(config, token=token)
        self.config = config
        self.field_manager = field_manager
        self._ssl = ssl_context
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._pool_size = pool_size
        headers = {"User-Agent": user_agent, "Accept": "application/json"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        elif config.username is not None:
            headers["Authorization"] = aiohttp.BasicAuth(config.username, config.password or "").encode()
        self._headers = headers
        self._extra: dict[str, Any] = {"server_hostname": config.tls_server_name} if config.tls_server_name else {}
        self._session: aiohttp.ClientSession | None = None
        self._discovery: dict[str, ObjList] = {}

    @classmethod
    def from_kubeconfig(cls, path: KubeconfigPaths = None, *, context: str | None = None, **kwargs: Any) -> Client:
        from atoll.client import kubeconfig

        return cls(kubeconfig.load(path, context=context), **kwargs)

    @property
    def server(self) -> str:
        return self.config.server

    @property
    def namespace(self) -> str:
        """The context's namespace (``default`` when it names none)."""
        return self.config.namespace

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            ssl_arg = self._ssl if self._ssl is not None else self.config.ssl_context()
            connector = aiohttp.TCPConnector(ssl=ssl_arg, limit=self._pool_size, enable_cleanup_closed=True)
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

    def _client_timeout(self, total: float | None) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=total, sock_connect=self._connect_timeout)

    # -- raw ---------------------------------------------------------------------------
    async def request(self, method: str, path: str, *, params: Params | None = None, body: Any = None,
                      content_type: str = "application/json", headers: Mapping[str, str] | None = None,
                      timeout: float | None = None, raw: bool = False) -> Any:
        """One request; decoded JSON (or text, or ``raw`` bytes), ``None`` for an empty body."""
        data: bytes | None = None
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
        sent = dict(headers or {})
        if data is not None:
            sent["Content-Type"] = content_type
        try:
            async with self.session.request(method, path, params=_query(params), data=data, headers=sent or None,
                                            timeout=self._client_timeout(timeout or self._timeout),
                                            **self._extra) as resp:
                payload = await resp.read()
                if resp.status >= 400:
                    raise _error(resp.status, payload)
                if raw:
                    return payload
                if not payload:
                    return None
                if resp.content_type.endswith("json") or payload[:1] in (b"{", b"["):
                    return orjson.loads(payload)
                return payload.decode()
        except TimeoutError as exc:
            raise Timeout(f"{method} {self.config.server}{path} timed out") from exc
        except aiohttp.ClientError as exc:
            raise _unavailable(self.config.server, exc) from exc

    async def version(self) -> Obj:
        result: Obj = await self.request("GET", "/version")
        return result

    # -- discovery -----------------------------------------------------------------------
    async def api_resources(self, api_version: str) -> ObjList:
        """The discovery list of ``/api/v1`` or ``/apis/G/V``, cached until invalidated."""
        if api_version not in self._discovery:
            path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            doc = await self.request("GET", path)
            self._discovery[api_version] = list((doc or {}).get("resources") or [])
        return self._discovery[api_version]

    async def resource_for(self, api_version: str, kind: str) -> Resource:
        for entry in await self.api_resources(api_version):
            if entry.get("kind") == kind and "/" not in entry.get("name", ""):
                return Resource(api_version, entry["name"], bool(entry.get("namespaced")), kind)
        self._discovery.pop(api_version, None)  # a CRD may have appeared since: ask again next time
        raise NotFound(f'no resource for kind "{kind}" in {api_version}')

    def invalidate_discovery(self) -> None:
        self._discovery.clear()

    # -- reads -----------------------------------------------------------------------------
    async def get(self, res: Resource, name: str, namespace: str | None = None, *, subresource: str = "",
                  params: Params | None = None) -> Obj:
        result: Obj = await self.request("GET", res.path(namespace, name, subresource), params=params)
        return result

    async def get_status(self, res: Resource, name: str, namespace: str | None = None) -> Obj:
        return await self.get(res, name, namespace, subresource="status")

    async def list(self, res: Resource, namespace: str | None = None, *, label_selector: str = "",
                   field_selector: str = "", limit: int | None = None, continue_token: str = "",
                   resource_version: str = "", resource_version_match: str = "") -> Obj:
        """One page: ``{"items": [...], "metadata": {"resourceVersion", "continue"?}}``."""
        result: Obj = await self.request("GET", res.path(namespace), params={
            "labelSelector": label_selector, "fieldSelector": field_selector, "limit": limit or None,
            "continue": continue_token, "resourceVersion": resource_version,
            "resourceVersionMatch": resource_version_match})
        return result

    async def list_all(self, res: Resource, namespace: str | None = None, *, page: int = 500,
                       label_selector: str = "", field_selector: str = "") -> tuple[ObjList, str]:
        """Every item, paging with ``continue``; returns the items and the list resourceVersion."""
        items: ObjList = []
        token = ""
        while True:
            doc = await self.list(res, namespace, limit=page, continue_token=token, label_selector=label_selector,
                                  field_selector=field_selector)
            items.extend(doc.get("items") or [])
            meta = doc.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    # -- writes ----------------------------------------------------------------------------
    async def create(self, res: Resource, obj: Obj, namespace: str | None = None, *, name: str | None = None,
                     subresource: str = "", dry_run: bool = False, field_manager: str | None = None) -> Obj:
        """POST a new object; with ``subresource`` (``eviction``, ``binding``...) POST to it."""
        md = obj.get("metadata") or {}
        ns = namespace or md.get("namespace")
        target = res.path(ns, name or md.get("name"), subresource) if subresource else res.path(ns)
        result: Obj = await self.request("POST", target, body=obj, params={
            "fieldManager": field_manager or self.field_manager, "dryRun": "All" if dry_run else None})
        return result

    async def replace(self, res: Resource, obj: Obj, namespace: str | None = None, *, subresource: str = "",
                      dry_run: bool = False, field_manager: str | None = None) -> Obj:
        md = obj.get("metadata") or {}
        if not md.get("name"):
            raise ValueError("replace needs metadata.name")
        result: Obj = await self.request(
            "PUT", res.path(namespace or md.get("namespace"), md["name"], subresource), body=obj,
            params={"fieldManager": field_manager or self.field_manager, "dryRun": "All" if dry_run else None})
        return result

    async def replace_status(self, res: Resource, obj: Obj, namespace: str | None = None) -> Obj:
        return await self.replace(res, obj, namespace, subresource="status")

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None, *,
                    patch_type: PatchType = "merge", subresource: str = "", force: bool = False,
                    field_manager: str | None = None, dry_run: bool = False) -> Obj:
        """PATCH with a JSON patch (a list), a merge or strategic-merge patch, or server-side apply."""
        if patch_type not in PATCH_CONTENT_TYPES:
            raise ValueError(f"unknown patch type {patch_type!r}")
        params: dict[str, str | None] = {"fieldManager": field_manager or self.field_manager,
                                         "dryRun": "All" if dry_run else None}
        if patch_type == "apply" and force:
            params["force"] = "true"
        body = patch if isinstance(patch, bytes) else orjson.dumps(patch)
        result: Obj = await self.request("PATCH", res.path(namespace, name, subresource), body=body,
                                         content_type=PATCH_CONTENT_TYPES[patch_type], params=params)
        return result

    async def patch_status(self, res: Resource, name: str, patch: Any, namespace: str | None = None, *,
                           patch_type: PatchType = "merge", force: bool = False,
                           field_manager: str | None = None) -> Obj:
        return await self.patch(res, name, patch, namespace, patch_type=patch_type, subresource="status",
                                force=force, field_manager=field_manager)

    async def apply(self, res: Resource, obj: Obj, *, force: bool = False, field_manager: str | None = None,
                    subresource: str = "") -> Obj:
        """Server-side apply of a whole (partial) object, the way ``kubectl apply --server-side`` does."""
        md = obj.get("metadata") or {}
        return await self.patch(res, md["name"], obj, md.get("namespace"), patch_type="apply", force=force,
                                field_manager=field_manager, subresource=subresource)

    @staticmethod
    def _delete_options(*, propagation_policy: str | None, grace_period_seconds: int | None, uid: str | None,
                        resource_version: str | None, dry_run: bool) -> Obj:
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
        if preconditions:
            body["preconditions"] = preconditions
        if dry_run:
            body["dryRun"] = ["All"]
        return body

    async def delete(self, res: Resource, name: str, namespace: str | None = None, *,
                     propagation_policy: str | None = None, grace_period_seconds: int | None = None,
                     uid: str | None = None, resource_version: str | None = None,
                     dry_run: bool = False) -> Obj | None:
        """DELETE one object; the answer is the object (still finalizing) or a success ``Status``."""
        body = self._delete_options(propagation_policy=propagation_policy, grace_period_seconds=grace_period_seconds,
                                    uid=uid, resource_version=resource_version, dry_run=dry_run)
        result: Obj | None = await self.request("DELETE", res.path(namespace, name), body=body)
        return result

    async def delete_collection(self, res: Resource, namespace: str | None = None, *, label_selector: str = "",
                                field_selector: str = "", propagation_policy: str | None = None,
                                grace_period_seconds: int | None = None) -> Obj | None:
        body = self._delete_options(propagation_policy=propagation_policy, grace_period_seconds=grace_period_seconds,
                                    uid=None, resource_version=None, dry_run=False)
        result: Obj | None = await self.request("DELETE", res.path(namespace), body=body, params={
            "labelSelector": label_selector, "fieldSelector": field_selector})
        return result

    # -- watch -----------------------------------------------------------------------------
    async def watch(self, res: Resource, namespace: str | None = None, *, resource_version: str = "",
                    label_selector: str = "", field_selector: str = "", timeout_seconds: int | None = 300,
                    bookmarks: bool = True, stop: asyncio.Event | None = None
                    ) -> AsyncGenerator[WatchEvent, None]:
        """One watch request: events until the server ends it (or ``stop`` is set).

        ``BOOKMARK`` events are yielded (their object carries only a resourceVersion); an
        ``ERROR`` event raises its ``Status`` as an error — ``Gone`` for a 410.
        """
        params = _query({"watch": True, "resourceVersion": resource_version, "labelSelector": label_selector,
                         "fieldSelector": field_selector, "timeoutSeconds": timeout_seconds,
                         "allowWatchBookmarks": bookmarks})
        read_timeout = timeout_seconds + 30 if timeout_seconds else None
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout, sock_read=read_timeout)
        try:
            resp_cm = self.session.get(res.path(namespace), params=params, timeout=timeout, **self._extra)
            async with resp_cm as resp:
                if resp.status >= 400:
                    raise _error(resp.status, await resp.read())
                stopper = _close_on(stop, resp)
                try:
                    async for line in _lines(resp.content):
                        yield _event(line)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    if stop is not None and stop.is_set():
                        return
                    if isinstance(exc, TimeoutError):
                        raise Timeout(f"watch of {res.plural} went silent for {read_timeout}s") from exc
                    raise _unavailable(self.config.server, exc) from exc
                finally:
                    if stopper is not None:
                        stopper.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await stopper
        except aiohttp.ClientConnectionError as exc:
            raise _unavailable(self.config.server, exc) from exc

    async def list_and_watch(self, res: Resource, namespace: str | None = None, *, label_selector: str = "",
                             field_selector: str = "", stop: asyncio.Event | None = None, page: int = 500,
                             timeout_seconds: int = 300, max_backoff: float = 10.0
                             ) -> AsyncGenerator[tuple[str, Obj], None]:
        """An informer's feed: ``("SYNC", {"items", "resourceVersion"})`` first, then ``(type, object)``.

        When a watch ends it resumes from the last resourceVersion seen (bookmarks
        included, they are not passed on); on ``Gone`` it lists again and yields a new
        ``SYNC``; while the server fails or is unreachable it retries with backoff. It
        ends when ``stop`` is set.
        """
        backoff = 0.2
        rv = ""
        while stop is None or not stop.is_set():
            try:
                if not rv:
                    items, rv = await self.list_all(res, namespace, page=page, label_selector=label_selector,
                                                    field_selector=field_selector)
                    yield "SYNC", {"items": items, "resourceVersion": rv}
                async for ev in self.watch(res, namespace, resource_version=rv, label_selector=label_selector,
                                           field_selector=field_selector, timeout_seconds=timeout_seconds,
                                           stop=stop):
                    rv = str((ev.object.get("metadata") or {}).get("resourceVersion") or rv)
                    backoff = 0.2
                    if ev.type != "BOOKMARK":
                        yield ev.type, ev.object
            except Gone:
                logger.debug("watch of %s expired at resourceVersion %s: listing again", res.plural, rv)
                rv = ""
            except (APIError, aiohttp.ClientError, TimeoutError) as exc:
                logger.info("watch of %s failed: %s; retrying in %.1fs", res.plural, exc, backoff)
                if stop is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), backoff)
                else:
                    await asyncio.sleep(backoff)
                backoff = min(backoff * 2, max_backoff)


def _unavailable(server: str, exc: aiohttp.ClientError) -> ServiceUnavailable:
    if isinstance(exc, aiohttp.ClientConnectionError):
        return ServiceUnavailable(f"cannot reach {server}: {exc}")
    return ServiceUnavailable(f"broken answer from {server}: {exc}")


def _close_on(stop: asyncio.Event | None, resp: aiohttp.ClientResponse) -> asyncio.Task[None] | None:
    """A task closing ``resp`` once ``stop`` is set, so a quiet watch ends at once."""
    if stop is None:
        return None

    async def waiter() -> None:
        await stop.wait()
        resp.close()

    return asyncio.get_running_loop().create_task(waiter(), name="watch-stop")


__all__ = ["PATCH_CONTENT_TYPES", "Client", "Obj", "ObjList", "PatchType", "Resource", "WatchEvent"]
