"""The object registry: what happens to an object between the HTTP layer and the store.

It plays the role of kube-apiserver's generic registry ``Store``: names and UIDs,
defaulting and validation through each kind's strategy, admission, optimistic
concurrency (``resourceVersion`` preconditions, retried read-modify-write for
unconditional updates and patches), generation bumps, managedFields, graceful deletion
with finalizers, and the resourceVersion rules of list and watch. The HTTP handlers and
the in-process controllers (garbage collector, namespace lifecycle, CRDs) both go
through it, so every write follows the same rules.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

from atoll.api import meta
from atoll.api.errors import (
    AlreadyExists,
    APIError,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    MethodNotAllowed,
    NotFound,
    Timeout,
    field_error,
    invalid,
)
from atoll.api.resources import Registry, ResourceInfo
from atoll.api.selectors import FieldSelector, LabelSelector
from atoll.api.strategies import strategy_for
from atoll.apiserver import fieldvalidation, patching
from atoll.apiserver.patching import structured
from atoll.apiserver.watchcache import StoreWatchStream, WatchCache, WatchStream, decode_kv
from atoll.storage.protocol import KeyValue, Store

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjList = list[Obj]
Operation = Literal["CREATE", "UPDATE", "DELETE"]

MAX_RETRIES = 20
WRITTEN_KEYS = 100_000
"""How many keys' latest write revisions the registry remembers (to skip stale cached copies)."""
PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+json": "apply",
    "application/apply-patch+cbor": "apply",
}


@dataclass(slots=True)
class RequestContext:
    """Who asks, and how: carried from the HTTP request to admission and managedFields."""

    user: str = "system:admin"
    groups: tuple[str, ...] = ("system:masters",)
    field_manager: str | None = None
    user_agent: str = ""
    dry_run: bool = False
    field_validation: str = "Strict"
    warnings: list[str] = field(default_factory=list)

    def manager(self, default_prefix: str = "") -> str:
        if self.field_manager:
            return self.field_manager
        agent = (self.user_agent or "unknown").split("/", 1)[0]
        return (default_prefix + agent)[:128]


@dataclass(slots=True)
class DeleteOptions:
    propagation_policy: str | None = None
    grace_period_seconds: int | None = None
    preconditions_uid: str | None = None
    preconditions_resource_version: str | None = None
    orphan_dependents: bool | None = None
    dry_run: bool = False

    @classmethod
    def from_body(cls, body: Obj | None, query: dict[str, str]) -> DeleteOptions:
        body = body or {}
        pre = body.get("preconditions") or {}
        grace = body.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
        policy = body.get("propagationPolicy") or query.get("propagationPolicy")
        orphan = body.get("orphanDependents")
        if orphan is None and "orphanDependents" in query:
            orphan = query["orphanDependents"] == "true"
        dry = body.get("dryRun") or ([query["dryRun"]] if "dryRun" in query else [])
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise BadRequest(f'unsupported propagationPolicy "{policy}": must be Orphan, Background or Foreground')
        try:
            grace_i = int(grace) if grace is not None else None
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"invalid gracePeriodSeconds: {grace!r}") from exc
        return cls(
            propagation_policy=policy,
            grace_period_seconds=grace_i,
            preconditions_uid=pre.get("uid"),
            preconditions_resource_version=pre.get("resourceVersion"),
            orphan_dependents=orphan,
            dry_run="All" in dry,
        )


@dataclass(slots=True)
class ListResult:
    items: list[Obj]
    resource_version: str
    continue_token: str = ""
    remaining: int | None = None


class Admission(Protocol):
    """A mutating/validating step before an object is written (after defaulting)."""

    async def admit(self, op: Operation, info: ResourceInfo, obj: Obj | None, old: Obj | None,
                    ctx: RequestContext) -> None: ...


AfterWrite = Callable[[str, ResourceInfo, Obj | None, Obj | None], Awaitable[None]]


_now_cache: tuple[int, str] = (-1, "")


def now_rfc3339() -> str:
    """The current second in RFC 3339 (formatted once per second: every write asks, twice)."""
    global _now_cache
    second = int(time.time())
    if _now_cache[0] != second:
        _now_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _now_cache[1]


def clone(obj: Obj) -> Obj:
    """A deep copy of a JSON object, through orjson (several times faster than ``copy.deepcopy``).

    Objects that came from the store are plain JSON, so the round trip is exact; anything
    orjson cannot encode (a request body decoded from YAML, say) takes ``deepcopy``.
    """
    try:
        out: Obj = orjson.loads(orjson.dumps(obj))
        return out
    except (TypeError, orjson.JSONEncodeError):
        return copy.deepcopy(obj)


def _prune_changed(info: ResourceInfo, new: Obj, current: Obj) -> None:
    """``prune_builtin`` on the top-level parts of ``new`` that differ from ``current``.

    The stored object was pruned when it was written, so a part equal to it has nothing
    to prune; a status write then walks only metadata and status, not the whole spec.
    """
    same = {k for k, v in new.items() if k in current and structured.same_json(v, current[k])}
    if not same:
        fieldvalidation.prune_builtin(info, new)
        return
    view = {k: v for k, v in new.items() if k not in same}
    fieldvalidation.prune_builtin(info, view)
    for k in [k for k in new if k not in same and k not in view]:
        del new[k]


class _MaybeStale(Exception):
    """An update found nothing to change, but on a cached copy that may be out of date."""


def _encode(obj: Obj) -> bytes:
    md = obj.get("metadata")
    if md and "resourceVersion" in md:
        stripped = dict(obj)
        stripped["metadata"] = {k: v for k, v in md.items() if k != "resourceVersion"}
        return orjson.dumps(stripped)
    return orjson.dumps(obj)


def _with_rv(obj: Obj, kv: KeyValue) -> Obj:
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


def _encode_continue(rev: int, last_key: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rev, "start": last_key})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        return int(data["rv"]), str(data["start"])
    except Exception as exc:
        raise BadRequest("continue key is not valid: incorrect encoded start resourceVersion "
                         "(version meta.k8s.io/v1)") from exc


def _parse_rv(value: str | None, what: str = "resourceVersion") -> int | None:
    if value in (None, ""):
        return None
    try:
        rv = int(value)  # type: ignore[arg-type]
    except ValueError as exc:
        raise BadRequest(f'invalid {what} "{value}"') from exc
    if rv < 0:
        raise BadRequest(f'invalid {what} "{value}"')
    return rv


class ObjectRegistry:
    """All object operations of one API server, over one :class:`Store`."""

    def __init__(self, store: Store, resources: Registry) -> None:
        self.store = store
        self.resources = resources
        self._caches: dict[str, WatchCache] = {}
        self._cache_lock = asyncio.Lock()
        self.admission: list[Admission] = []
        self.after_write: list[AfterWrite] = []
        self._written: OrderedDict[str, int] = OrderedDict()
        """Revision of this registry's latest write per key (bounded): a cached copy older than
        that is known stale, so an update does not start from it."""

    async def close(self) -> None:
        for cache in list(self._caches.values()):
            await cache.stop()
        self._caches.clear()

    # -- caches ---------------------------------------------------------------------
    async def cache_for(self, info: ResourceInfo) -> WatchCache:
        prefix = info.key_prefix()
        cache = self._caches.get(prefix)
        if cache is None:
            async with self._cache_lock:
                cache = self._caches.get(prefix)
                if cache is None:
                    cache = WatchCache(self.store, prefix)
                    self._caches[prefix] = cache
        await cache.start()
        return cache

    @property
    def watch_caches(self) -> dict[str, WatchCache]:
        return self._caches

    # -- reads ----------------------------------------------------------------------
    async def get(self, info: ResourceInfo, namespace: str | None, name: str) -> Obj:
        kv = await self.store.get(info.key(namespace, name))
        if kv is None:
            raise self.not_found(info, name)
        return decode_kv(kv)

    async def try_get(self, info: ResourceInfo, namespace: str | None, name: str) -> Obj | None:
        kv = await self.store.get(info.key(namespace, name))
        return decode_kv(kv) if kv is not None else None

    def not_found(self, info: ResourceInfo, name: str) -> NotFound:
        err = NotFound.for_object(f'{info.group_resource} "{name}" not found', kind=info.plural,
                                  name=name, group=info.group)
        assert isinstance(err, NotFound)
        return err

    async def list(
        self,
        info: ResourceInfo,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
        resource_version_match: str | None = None,
    ) -> ListResult:
        matches = self.matcher(info, label_selector, field_selector)
        prefix = info.key_prefix(namespace)
        rv = _parse_rv(resource_version)
        if resource_version_match not in (None, "", "NotOlderThan", "Exact"):
            raise BadRequest(f'unsupported resourceVersionMatch "{resource_version_match}"')
        if resource_version_match and resource_version in (None, ""):
            raise Invalid("resourceVersionMatch is forbidden unless resourceVersion is provided")
        if continue_token:
            if resource_version not in (None, "", "0"):
                raise BadRequest("specifying resource version is not allowed when using continue")
            at, start_after = _decode_continue(continue_token)
            return await self._list_store(prefix, matches, limit=limit, revision=at, start_after=start_after,
                                          continuing=True)
        if rv == 0 and resource_version_match != "Exact" and not limit:
            # resourceVersion=0: any version is fine, so the watch cache answers.
            cache = await self.cache_for(info)
            items, cache_rev = cache.list(prefix, matches)
            return ListResult([clone(i) for i in items], str(cache_rev))
        if rv is not None and resource_version_match == "Exact":
            return await self._list_store(prefix, matches, limit=limit, revision=rv, start_after=None)
        result = await self._list_store(prefix, matches, limit=limit, revision=None, start_after=None)
        if rv is not None and int(result.resource_version) < rv:
            raise Timeout(f"Too large resource version: {rv}, current: {result.resource_version}",
                          details={"causes": [{"reason": "ResourceVersionTooLarge",
                                               "message": "Too large resource version"}],
                                   "retryAfterSeconds": 1})
        return result

    async def _list_store(self, prefix: str, matches: Callable[[Obj], bool], *, limit: int | None,
                          revision: int | None, start_after: str | None, continuing: bool = False) -> ListResult:
        items: list[Obj] = []
        at = revision
        cursor = start_after
        page = max(limit, 500) if limit else None
        try:
            while True:
                res = await self.store.range(prefix, revision=at, limit=page, start_after=cursor)
                if at is None:
                    at = res.revision
                for i, kv in enumerate(res.kvs):
                    cursor = kv.key
                    obj = decode_kv(kv)
                    if matches(obj):
                        items.append(obj)
                        if limit and len(items) >= limit:
                            more = res.more or i < len(res.kvs) - 1
                            token = _encode_continue(at, cursor) if more else ""
                            return ListResult(items, str(at), token)
                if not res.more:
                    return ListResult(items, str(at))
        except Gone as exc:
            if continuing:
                raise Gone("The provided continue parameter is too old to display a consistent list "
                           "result. You can start a new list without the continue parameter.") from exc
            raise

    def matcher(self, info: ResourceInfo, label_selector: str, field_selector: str) -> Callable[[Obj], bool]:
        labels = LabelSelector.parse(label_selector) if label_selector else None
        fields = FieldSelector.parse(field_selector, info) if field_selector else None
        if labels is None and fields is None:
            return lambda _o: True

        def matches(obj: Obj) -> bool:
            if labels is not None and not labels.matches((obj.get("metadata") or {}).get("labels") or {}):
                return False
            return fields is None or fields.matches(obj)

        return matches

    async def watch(
        self,
        info: ResourceInfo,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str | None = None,
        send_initial_events: bool = False,
        bookmark_interval: float | None = None,
    ) -> WatchStream | StoreWatchStream:
        matches = self.matcher(info, label_selector, field_selector)
        cache = await self.cache_for(info)
        rv = _parse_rv(resource_version)
        if rv is None and not send_initial_events:
            # "Most recent": start from the state the store has now, as kube does.
            rv = 0
        return await cache.watch(resource_version=rv, prefix=info.key_prefix(namespace),
                           filter_=matches, send_initial_events=send_initial_events,
                           bookmark_interval=bookmark_interval)

    # -- writes ---------------------------------------------------------------------
    def _check_type(self, info: ResourceInfo, obj: Obj) -> None:
        if not isinstance(obj, dict):
            raise BadRequest("the object provided is not a JSON object")
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not kind and not api_version:
            obj["apiVersion"], obj["kind"] = info.api_version, info.kind
            return
        if kind != info.kind or api_version != info.api_version:
            raise BadRequest(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({info.api_version})" if api_version != info.api_version else
                f"the kind in the data ({kind}) does not match the expected kind ({info.kind})")

    def _check_namespace(self, info: ResourceInfo, namespace: str | None, obj: Obj) -> None:
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise BadRequest("metadata must be an object")
        if info.namespaced:
            ns = md.get("namespace")
            if ns and namespace and ns != namespace:
                raise BadRequest("the namespace of the provided object does not match the namespace sent on "
                                 "the request")
            if namespace:
                md["namespace"] = namespace
            elif not ns:
                raise BadRequest("the server could not find the requested resource: namespace is required")
        else:
            md.pop("namespace", None)

    async def _admit(self, op: Operation, info: ResourceInfo, obj: Obj | None, old: Obj | None,
                     ctx: RequestContext) -> None:
        for step in self.admission:
            await step.admit(op, info, obj, old, ctx)

    async def _after(self, op: str, info: ResourceInfo, obj: Obj | None, old: Obj | None) -> None:
        for hook in self.after_write:
            try:
                await hook(op, info, obj, old)
            except Exception:
                logger.exception("after-write hook failed for %s %s", op, info.group_resource)

    def _validate(self, info: ResourceInfo, obj: Obj, old: Obj | None, *, status: bool = False) -> None:
        strategy = strategy_for(info)
        if old is None:
            causes = (meta.validate_object_meta(obj, namespaced=info.namespaced,
                                                kube_finalizers=strategy.kube_finalizers)
                      + strategy.validate(obj))
        else:
            causes = (meta.validate_object_meta_update(obj, old, namespaced=info.namespaced,
                                                       kube_finalizers=strategy.kube_finalizers)
                      + (strategy.validate_status_update(obj, old) if status else strategy.validate_update(obj, old)))
        if causes:
            name = (obj.get("metadata") or {}).get("name") or ""
            raise invalid(info.kind, name, causes, group=info.group)

    async def create(self, info: ResourceInfo, namespace: str | None, obj: Obj, ctx: RequestContext,
                     *, manager_operation: str = "Update") -> Obj:
        self._check_type(info, obj)
        self._check_namespace(info, namespace, obj)
        md = obj["metadata"]
        if not md.get("name"):
            if md.get("generateName"):
                md["name"] = meta.generate_name(md["generateName"])
            else:
                raise invalid(info.kind, "", [field_error("metadata.name", "Required value: name or generateName is "
                                                          "required", reason="FieldValueRequired")],
                              group=info.group)
        strategy = strategy_for(info)
        for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            md.pop(k, None)
        md["uid"] = meta.new_uid()
        md["creationTimestamp"] = now_rfc3339()
        md.pop("generation", None)  # the kind's prepare_for_create sets 1 where kube tracks generations
        fieldvalidation.prune_builtin(info, obj)
        strategy.prepare_for_create(obj)
        strategy.default(obj)
        self._validate(info, obj, None)
        await self._admit("CREATE", info, obj, None, ctx)
        if manager_operation != "Apply":
            obj = patching.update_managed_fields(
                None, obj, manager=ctx.manager(), operation="Update", subresource="", now=now_rfc3339(),
                resolver=patching.resolver_for(info),
                reset_fields=patching.reset_fields_for(info.subresources, ""))
        key = info.key(md.get("namespace"), md["name"])
        if ctx.dry_run:
            if await self.store.get(key) is not None:
                raise self._already_exists(info, md["name"])
            return obj
        try:
            kv = await self.store.create(key, _encode(obj))
        except AlreadyExists:
            raise self._already_exists(info, md["name"]) from None
        _with_rv(obj, kv)
        self._wrote(key, kv)
        await self._after("CREATE", info, obj, None)
        return obj

    def _already_exists(self, info: ResourceInfo, name: str) -> AlreadyExists:
        err = AlreadyExists.for_object(f'{info.group_resource} "{name}" already exists', kind=info.plural,
                                       name=name, group=info.group)
        assert isinstance(err, AlreadyExists)
        return err

    def _conflict(self, info: ResourceInfo, name: str) -> Conflict:
        err = Conflict.for_object(
            f'Operation cannot be fulfilled on {info.group_resource} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again",
            kind=info.plural, name=name, group=info.group)
        assert isinstance(err, Conflict)
        return err

    async def update(self, info: ResourceInfo, namespace: str | None, name: str, obj: Obj,
                     ctx: RequestContext, *, subresource: str = "") -> Obj:
        """PUT: replace the object (or, on ``status``, only its status)."""
        self._check_type(info, obj)
        self._check_namespace(info, namespace, obj)
        md = obj["metadata"]
        if md.get("name") and md["name"] != name:
            raise BadRequest(f"the name of the object ({md['name']}) does not match the name on the URL ({name})")
        md["name"] = name
        wanted_rv = md.get("resourceVersion") or None

        def mutate(current: Obj) -> Obj:
            if wanted_rv is not None and current["metadata"].get("resourceVersion") != str(wanted_rv):
                raise self._conflict(info, name)
            return copy.deepcopy(obj)

        return await self.guaranteed_update(info, namespace, name, mutate, ctx, subresource=subresource,
                                            conditional=wanted_rv is not None)

    async def patch(self, info: ResourceInfo, namespace: str | None, name: str, patch_type: str,
                    body: bytes, ctx: RequestContext, *, subresource: str = "", force: bool = False) -> Obj:
        patching.validate_patch_options(patch_type, field_manager=ctx.field_manager or "",
                                        force=force if patch_type == "apply" else None)
        if patch_type == "apply":
            return await self._apply(info, namespace, name, body, ctx, subresource=subresource, force=force)
        resolver = patching.resolver_for(info)
        try:
            patch_doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"error decoding patch: {exc}") from exc
        if patch_type == "strategic" and info.custom:
            from atoll.api.errors import UnsupportedMediaType
            raise UnsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")

        def mutate(current: Obj) -> Obj:
            base = clone(current)
            if patch_type == "json":
                patched = patching.json_patch(base, patch_doc, in_place=True)
            elif patch_type == "merge":
                patched = patching.merge_patch(base, patch_doc, in_place=True)
            else:
                patched = patching.strategic_merge_patch(base, patch_doc, resolver, in_place=True)
            if not isinstance(patched, dict):
                raise BadRequest("patch did not produce an object")
            patched_md = patched.get("metadata") or {}
            rv = patched_md.get("resourceVersion")
            if rv and rv != current["metadata"].get("resourceVersion"):
                raise self._conflict(info, name)
            return patched

        return await self.guaranteed_update(info, namespace, name, mutate, ctx, subresource=subresource)

    async def _apply(self, info: ResourceInfo, namespace: str | None, name: str, body: bytes,
                     ctx: RequestContext, *, subresource: str, force: bool) -> Obj:
        patching.validate_patch_options("apply", field_manager=ctx.field_manager or "", force=force)
        try:
            import yaml

            config = yaml.load(body, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except Exception as exc:
            raise BadRequest(f"error decoding YAML: {exc}") from exc
        if not isinstance(config, dict):
            raise BadRequest("apply patch must be a YAML/JSON object")
        self._check_type(info, config)
        cmd = config.get("metadata") or {}
        if cmd.get("name") and cmd["name"] != name:
            raise BadRequest(f"the name of the object ({cmd['name']}) does not match the name on the URL ({name})")
        resolver = patching.resolver_for(info)
        reset = patching.reset_fields_for(info.subresources, subresource)
        for _attempt in range(MAX_RETRIES):
            current = await self.try_get(info, namespace, name)
            if current is None:
                if subresource:
                    raise self.not_found(info, name)
                new = patching.apply(None, config, manager=ctx.field_manager or "", force=force,
                                     resolver=resolver, now=now_rfc3339(), subresource=subresource,
                                     reset_fields=reset, name=name, namespace=namespace)
                new.setdefault("metadata", {})["name"] = name
                try:
                    return await self.create(info, namespace, new, ctx, manager_operation="Apply")
                except AlreadyExists:
                    continue
            new = patching.apply(clone(current), config, manager=ctx.field_manager or "", force=force,
                                 resolver=resolver, now=now_rfc3339(), subresource=subresource,
                                 reset_fields=reset, name=name, namespace=namespace)
            try:
                return await self._write_update(info, current, new, ctx, subresource=subresource,
                                                manager_done=True)
            except Conflict:
                continue
        raise self._conflict(info, name)

    async def guaranteed_update(self, info: ResourceInfo, namespace: str | None, name: str,
                                mutate: Callable[[Obj], Obj], ctx: RequestContext, *, subresource: str = "",
                                conditional: bool = False) -> Obj:
        """Read, mutate, write with a revision precondition; retry on races unless ``conditional``.

        ``mutate`` gets the current object, which it must not change (it returns a copy).
        Like kube-apiserver's GuaranteedUpdate, the first attempt starts from the watch
        cache's copy when there is one: a suggestion, possibly stale, that saves a store
        read on the hot paths (status writes, bindings, patches). The store write's revision
        precondition keeps that correct: a stale copy makes the write fail, and any error or
        no-op on a copy not known to be current is retried from a fresh store read, so the
        caller sees exactly what an update of the current object gives.
        """
        current: Obj | None = None if ctx.dry_run else self._suggestion(info, info.key(namespace, name))
        fresh = current is None
        if current is None:
            current = await self.get(info, namespace, name)
        for _attempt in range(MAX_RETRIES):
            try:
                new = mutate(current)
            except Exception:
                if fresh:
                    raise
                current, fresh = await self.get(info, namespace, name), True
                continue
            try:
                return await self._write_update(info, current, new, ctx, subresource=subresource,
                                                current_is_fresh=fresh)
            except _MaybeStale:
                pass
            except Conflict:
                if fresh and conditional:
                    raise
            except APIError:
                if fresh:
                    raise
            current, fresh = await self.get(info, namespace, name), True
        raise self._conflict(info, name)

    def _suggestion(self, info: ResourceInfo, key: str) -> Obj | None:
        """The watch cache's copy of ``key``, if the resource has a running cache (read-only)
        and the copy is not older than a write this registry already made to the key (a
        client updating the same object twice in a row would otherwise always start from
        a stale copy when the cache is a few milliseconds behind, as over etcd)."""
        cache = self._caches.get(info.key_prefix())
        if cache is None or not cache.ready:
            return None
        obj = cache.get(key)
        if obj is None:
            return None
        written = self._written.get(key)
        if written is not None and int(obj["metadata"]["resourceVersion"]) < written:
            return None
        return obj

    def _wrote(self, key: str, kv: KeyValue) -> None:
        self._written[key] = kv.mod_revision
        self._written.move_to_end(key)
        if len(self._written) > WRITTEN_KEYS:
            self._written.popitem(last=False)

    async def _write_update(self, info: ResourceInfo, current: Obj, new: Obj, ctx: RequestContext, *,
                            subresource: str = "", manager_done: bool = False, current_is_fresh: bool = True) -> Obj:
        """Write ``new`` over ``current`` (which stays unchanged: it may be the watch cache's)."""
        strategy = strategy_for(info)
        name = current["metadata"]["name"]
        new.setdefault("metadata", {})
        new["apiVersion"], new["kind"] = info.api_version, info.kind
        nmd, cmd = new["metadata"], current["metadata"]
        # Fields the server owns cannot be changed through an update.
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                  "generation", "namespace", "name"):
            if k in cmd:
                nmd[k] = cmd[k]
            else:
                nmd.pop(k, None)
        if subresource not in ("binding", "finalize"):
            # binding and finalize build ``new`` from the stored object, which was pruned when
            # it was written, plus fields the kind has: nothing to prune.
            _prune_changed(info, new, current)
        if subresource == "status":
            strategy.prepare_for_status_update(new, current)
        elif subresource in ("", "scale"):
            strategy.prepare_for_update(new, current)
            strategy.default(new)
        elif subresource == "finalize":
            finalize = getattr(strategy, "prepare_for_finalize_update", None)
            if finalize is not None:
                finalize(new, current)
        if cmd.get("deletionTimestamp"):
            added = set(nmd.get("finalizers") or ()) - set(cmd.get("finalizers") or ())
            if added:
                raise Forbidden(f'{info.group_resource} "{name}" is being deleted: no new finalizers can be added '
                                "if the object is being deleted, found new finalizers "
                                + str(sorted(added)))
        if subresource not in ("binding", "finalize"):
            # binding and finalize are server-side mutations that the kind's own update
            # rules (e.g. an immutable pod spec) must not block.
            self._validate(info, new, current, status=subresource == "status")
        if subresource in ("", "scale") and strategy.spec_changed(new, current):
            nmd["generation"] = int(cmd.get("generation") or 1) + 1
        await self._admit("UPDATE", info, new, current, ctx)
        if not manager_done:
            sub = subresource if subresource == "status" else ""
            new = patching.update_managed_fields(
                current, new, manager=ctx.manager(), operation="Update", subresource=sub, now=now_rfc3339(),
                resolver=patching.resolver_for(info),
                reset_fields=patching.reset_fields_for(info.subresources, sub))
            nmd = new["metadata"]
        if self._semantically_equal(new, current):
            if not current_is_fresh:
                raise _MaybeStale()
            return current
        key = info.key(nmd.get("namespace"), name)
        rev = int(cmd["resourceVersion"])
        if ctx.dry_run:
            return new
        if cmd.get("deletionTimestamp") and not nmd.get("finalizers") and not self._has_spec_finalizers(info, new):
            # The last finalizer is gone: the deletion finishes now.
            try:
                kv = await self.store.delete(key, expected_revision=rev)
            except Conflict:
                raise self._conflict(info, name) from None
            except NotFound:
                raise self.not_found(info, name) from None
            _with_rv(new, kv)
            self._wrote(key, kv)
            await self._after("DELETE", info, None, new)
            return new
        try:
            kv = await self.store.update(key, _encode(new), expected_revision=rev)
        except Conflict:
            raise self._conflict(info, name) from None
        except NotFound:
            raise self.not_found(info, name) from None
        _with_rv(new, kv)
        self._wrote(key, kv)
        await self._after("UPDATE", info, new, current)
        return new

    @staticmethod
    def _semantically_equal(a: Obj, b: Obj) -> bool:
        def strip(o: Obj) -> Obj:
            o = dict(o)
            md = dict(o.get("metadata") or {})
            md.pop("resourceVersion", None)
            mf = md.pop("managedFields", None)
            if mf:
                md["managedFields"] = [{k: v for k, v in e.items() if k != "time"} for e in mf]
            o["metadata"] = md
            return o

        return strip(a) == strip(b)

    @staticmethod
    def _has_spec_finalizers(info: ResourceInfo, obj: Obj) -> bool:
        return info.group == "" and info.plural == "namespaces" and bool((obj.get("spec") or {}).get("finalizers"))

    async def delete(self, info: ResourceInfo, namespace: str | None, name: str, options: DeleteOptions,
                     ctx: RequestContext) -> tuple[Obj, bool]:
        """Delete (or start deleting) one object; returns it and whether it is gone now."""
        for _attempt in range(MAX_RETRIES):
            current = await self.get(info, namespace, name)
            md = current["metadata"]
            if options.preconditions_uid and options.preconditions_uid != md.get("uid"):
                raise Conflict.for_object(
                    f"Precondition failed: UID in precondition: {options.preconditions_uid}, UID in object meta: "
                    f"{md.get('uid')}", kind=info.plural, name=name, group=info.group)
            if (options.preconditions_resource_version
                    and options.preconditions_resource_version != md.get("resourceVersion")):
                raise Conflict.for_object(
                    f"Precondition failed: ResourceVersion in precondition: "
                    f"{options.preconditions_resource_version}, ResourceVersion in object meta: "
                    f"{md.get('resourceVersion')}", kind=info.plural, name=name, group=info.group)
            await self._admit("DELETE", info, None, current, ctx)
            new = clone(current)
            nmd = new["metadata"]
            finalizers: list[str] = list(nmd.get("finalizers") or [])
            policy = options.propagation_policy
            if policy is None and options.orphan_dependents is not None:
                policy = "Orphan" if options.orphan_dependents else "Background"
            if policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers = [f for f in finalizers if f != "orphan"] + ["foregroundDeletion"]
            elif policy == "Orphan" and "orphan" not in finalizers:
                finalizers = [f for f in finalizers if f != "foregroundDeletion"] + ["orphan"]
            elif policy == "Background":
                finalizers = [f for f in finalizers if f not in ("orphan", "foregroundDeletion")]
            grace = self._grace_period(info, current, options)
            pending = bool(finalizers) or self._has_spec_finalizers(info, current) or grace > 0
            dry = options.dry_run or ctx.dry_run
            if not pending:
                if dry:
                    return current, True
                try:
                    kv = await self.store.delete(info.key(md.get("namespace"), name),
                                                 expected_revision=int(md["resourceVersion"]))
                except Conflict:
                    continue
                except NotFound:
                    raise self.not_found(info, name) from None
                _with_rv(current, kv)
                self._wrote(info.key(md.get("namespace"), name), kv)
                await self._after("DELETE", info, None, current)
                return current, True
            # Graceful: mark the object; finalizers' owners (or the kubelet) finish the job.
            if md.get("deletionTimestamp"):
                old_grace = md.get("deletionGracePeriodSeconds")
                if finalizers == list(md.get("finalizers") or []) and (old_grace is None or grace >= old_grace):
                    return current, False
            now = dt.datetime.now(dt.UTC)
            if not md.get("deletionTimestamp") or grace < int(md.get("deletionGracePeriodSeconds") or 0):
                nmd["deletionTimestamp"] = (now + dt.timedelta(seconds=grace)).strftime("%Y-%m-%dT%H:%M:%SZ")
                nmd["deletionGracePeriodSeconds"] = grace
            if finalizers:
                nmd["finalizers"] = finalizers
            else:
                nmd.pop("finalizers", None)
            if info.group == "" and info.plural == "namespaces":
                new.setdefault("status", {})["phase"] = "Terminating"
            if dry:
                return new, False
            try:
                kv = await self.store.update(info.key(md.get("namespace"), name), _encode(new),
                                             expected_revision=int(md["resourceVersion"]))
            except Conflict:
                continue
            _with_rv(new, kv)
            self._wrote(info.key(md.get("namespace"), name), kv)
            await self._after("UPDATE", info, new, current)
            return new, False
        raise self._conflict(info, name)

    @staticmethod
    def _grace_period(info: ResourceInfo, obj: Obj, options: DeleteOptions) -> int:
        """Only pods bound to a node get a grace period; their kubelet confirms the kill."""
        if not (info.group == "" and info.plural == "pods"):
            return 0
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        if options.grace_period_seconds is not None:
            return max(0, options.grace_period_seconds)
        return int(spec.get("terminationGracePeriodSeconds", 30) or 0)

    async def delete_collection(self, info: ResourceInfo, namespace: str | None, *, label_selector: str,
                                field_selector: str, options: DeleteOptions, ctx: RequestContext) -> ObjList:
        listed = await self.list(info, namespace, label_selector=label_selector, field_selector=field_selector)
        out: ObjList = []
        for obj in listed.items:
            md = obj["metadata"]
            try:
                deleted, _ = await self.delete(info, md.get("namespace"), md["name"], options, ctx)
                out.append(deleted)
            except NotFound:
                continue
        return out

    # -- helpers for in-process controllers ------------------------------------------
    async def remove_finalizer(self, info: ResourceInfo, namespace: str | None, name: str,
                               finalizer: str) -> None:
        def mutate(current: Obj) -> Obj:
            new = clone(current)
            fins = [f for f in new["metadata"].get("finalizers") or [] if f != finalizer]
            if fins:
                new["metadata"]["finalizers"] = fins
            else:
                new["metadata"].pop("finalizers", None)
            return new

        try:
            await self.guaranteed_update(info, namespace, name, mutate, RequestContext(user="system:gc",
                                                                                      field_manager="atoll"))
        except NotFound:
            pass


def ensure_method(info: ResourceInfo, verb: str) -> None:
    if verb not in info.verbs:
        raise MethodNotAllowed(f"{verb} is not supported on resources of kind {info.group_resource}")


__all__ = [
    "PATCH_TYPES",
    "APIError",
    "DeleteOptions",
    "ListResult",
    "ObjectRegistry",
    "RequestContext",
    "ensure_method",
    "now_rfc3339",
]
