"""Kubernetes REST over HTTP: URL parsing, content negotiation, and the verbs.

Every route funnels into :func:`ResourceHandler.handle`, which parses the Kubernetes
path grammar itself (custom resources appear and disappear at run time, so a static
route table would not do), decodes the body (JSON, YAML or protobuf), calls the
:class:`~atoll.apiserver.registry.ObjectRegistry` and encodes the answer — an object,
a list, a ``Table``, ``PartialObjectMetadata`` or a watch stream. Every failure leaves
as a ``Status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from dataclasses import dataclass
from typing import Any

import orjson
import yaml
from aiohttp import web

from atoll.api.errors import (
    APIError,
    BadRequest,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    RequestEntityTooLarge,
    UnsupportedMediaType,
)
from atoll.api.resources import ResourceInfo
from atoll.apiserver import fieldvalidation, protobuf, tables
from atoll.apiserver.registry import PATCH_TYPES, DeleteOptions, ObjectRegistry, RequestContext
from atoll.apiserver.subresources import Subresources
from atoll.apiserver.watchcache import CachedEvent

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

MAX_BODY = 3 * 1024 * 1024
MIN_WATCH_TIMEOUT = 1800
BOOKMARK_INTERVAL = 60.0


@dataclass(slots=True)
class Target:
    """A parsed resource URL."""

    group: str
    version: str
    namespace: str | None
    plural: str
    name: str | None
    subresource: str
    watch_path: bool = False


def parse_path(path: str) -> Target | None:
    """Parse ``/api/v1/...`` and ``/apis/G/V/...`` resource paths (None if not one)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    watch_path = False
    if rest and rest[0] == "watch":
        watch_path, rest = True, rest[1:]
    if not rest:
        return None
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (group == "" and rest[2] in ("status", "finalize")
                                                            and len(rest) == 3):
        namespace, rest = rest[1], rest[2:]
    plural = rest[0]
    name = rest[1] if len(rest) >= 2 else None
    sub = "/".join(rest[2:]) if len(rest) >= 3 else ""
    return Target(group, version, namespace, plural, name, sub, watch_path)


# -- content negotiation ----------------------------------------------------------------
@dataclass(slots=True)
class Wanted:
    table: bool = False
    partial_metadata: bool = False
    yaml: bool = False


def parse_accept(accept: str) -> Wanted:
    wanted = Wanted()
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        mime = fields[0]
        params = dict(f.partition("=")[::2] for f in fields[1:])
        if params.get("as") == "Table":
            wanted.table = True
            return wanted
        if params.get("as") in ("PartialObjectMetadata", "PartialObjectMetadataList"):
            wanted.partial_metadata = True
            return wanted
        if mime in ("application/json", "*/*", "application/*", "application/vnd.kubernetes.protobuf", ""):
            return wanted
        if mime in ("application/yaml", "application/x-yaml"):
            wanted.yaml = True
            return wanted
    if accept and all(p.split(";")[0].strip() not in ("application/json", "*/*", "application/*", "",
                                                       "application/yaml", "application/vnd.kubernetes.protobuf",
                                                       "application/vnd.kubernetes.protobuf;stream=watch",
                                                       "application/json;stream=watch")
                      for p in accept.split(",")):
        raise NotAcceptable(f"only the following media types are accepted: application/json, application/yaml, "
                            f"application/vnd.kubernetes.protobuf (got {accept})")
    return wanted


def json_response(body: Any, status: int = 200, *, headers: dict[str, str] | None = None,
                  content_type: str = "application/json") -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status,
                        headers={**(headers or {}), "Content-Type": content_type})


def status_response(err: APIError, *, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(err.to_status(), err.code, headers=headers)


async def read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise RequestEntityTooLarge("the request body is too large (limit 3 MiB)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_BODY:
            raise RequestEntityTooLarge("the request body is too large (limit 3 MiB)")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_object(body: bytes, content_type: str) -> Obj:
    ctype = content_type.split(";")[0].strip().lower()
    if not body.strip():
        raise BadRequest("the request body is empty")
    if protobuf.is_protobuf(ctype):
        decoded: Obj = protobuf.decode(body)
        return decoded
    try:
        if ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
            data = yaml.load(body, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        elif ctype in ("application/json", "", "text/plain", "application/octet-stream"):
            data = orjson.loads(body)
        else:
            raise UnsupportedMediaType(f'the body of the request was in an unknown format - accepted media types '
                                       f'include: application/json, application/yaml, '
                                       f'application/vnd.kubernetes.protobuf (got "{ctype}")')
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise BadRequest(f"the object provided is unrecognized or malformed: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("the object provided is not a JSON object")
    return data


def _bool(value: str | None) -> bool:
    return value in ("true", "1", "True")


class ResourceHandler:
    def __init__(self, objects: ObjectRegistry, subresources: Subresources) -> None:
        self.objects = objects
        self.subresources = subresources
        self.resources = objects.resources
        self.active_watches = 0

    def context(self, request: web.Request) -> RequestContext:
        q = request.query
        user = request.get("user")
        ctx = RequestContext(
            user=getattr(user, "name", "system:anonymous"),
            groups=tuple(getattr(user, "groups", ()) or ()),
            field_manager=q.get("fieldManager") or None,
            user_agent=request.headers.get("User-Agent", ""),
            dry_run="All" in q.getall("dryRun", []),
            field_validation=q.get("fieldValidation") or "Warn",
        )
        if ctx.field_validation not in ("Strict", "Warn", "Ignore"):
            raise BadRequest(f"fieldValidation must be one of Strict, Warn, Ignore, got {ctx.field_validation!r}")
        if q.get("dryRun") not in (None, "All"):
            raise BadRequest(f"unsupported dryRun value {q.get('dryRun')!r}: only All is supported")
        return ctx

    def lookup(self, t: Target) -> ResourceInfo:
        info = self.resources.get(t.group, t.version, t.plural)
        if info is None or not info.served:
            raise NotFound("the server could not find the requested resource")
        if t.subresource and t.subresource.split("/")[0] not in info.subresources:
            raise NotFound("the server could not find the requested resource")
        if info.namespaced is False and t.namespace is not None:
            raise NotFound("the server could not find the requested resource")
        return info

    async def handle(self, request: web.Request, t: Target) -> web.StreamResponse:
        info = self.lookup(t)
        method = request.method
        if t.subresource:
            return await self.subresources.handle(request, info, t, self)
        if t.name is None:
            if method == "GET":
                if t.watch_path or _bool(request.query.get("watch")):
                    return await self.watch(request, info, t)
                return await self.list(request, info, t)
            if method == "POST":
                return await self.create(request, info, t)
            if method == "DELETE":
                return await self.delete_collection(request, info, t)
            raise MethodNotAllowed(f"{method} is not allowed on a collection")
        if t.watch_path:
            return await self.watch(request, info, t, name=t.name)
        if method == "GET":
            return self.respond(request, info, await self.objects.get(info, t.namespace, t.name))
        if method == "PUT":
            return await self.update(request, info, t)
        if method == "PATCH":
            return await self.patch(request, info, t)
        if method == "DELETE":
            return await self.delete(request, info, t)
        raise MethodNotAllowed(f"{method} is not allowed on an object")

    # -- encoding ----------------------------------------------------------------------
    def respond(self, request: web.Request, info: ResourceInfo, obj: Obj, status: int = 200,
                warnings: list[str] | None = None) -> web.Response:
        wanted = parse_accept(request.headers.get("Accept", ""))
        headers = {"Warning": ", ".join(warnings)} if warnings else None
        if wanted.table:
            body = tables.to_table(info, [obj], include_object=self._include_object(request),
                                   now=dt.datetime.now(dt.UTC))
            return json_response(body, status, headers=headers)
        if wanted.partial_metadata:
            return json_response(_partial(obj), status, headers=headers)
        if wanted.yaml:
            return web.Response(body=yaml.safe_dump(obj).encode(), status=status,
                                headers={**(headers or {}), "Content-Type": "application/yaml"})
        return json_response(obj, status, headers=headers)

    @staticmethod
    def _include_object(request: web.Request) -> str:
        return request.query.get("includeObject") or "Metadata"

    def _warning_headers(self, ctx: RequestContext) -> list[str]:
        return [f'299 - "{w}"' for w in ctx.warnings]

    # -- verbs ---------------------------------------------------------------------------
    async def list(self, request: web.Request, info: ResourceInfo, t: Target) -> web.Response:
        if "list" not in info.verbs:
            raise MethodNotAllowed(f"list is not supported on {info.group_resource}")
        q = request.query
        limit = q.get("limit")
        try:
            limit_i = int(limit) if limit else None
        except ValueError as exc:
            raise BadRequest(f"invalid limit {limit!r}") from exc
        result = await self.objects.list(
            info, t.namespace,
            label_selector=q.get("labelSelector", ""),
            field_selector=q.get("fieldSelector", ""),
            limit=limit_i if limit_i and limit_i > 0 else None,
            continue_token=q.get("continue") or None,
            resource_version=q.get("resourceVersion"),
            resource_version_match=q.get("resourceVersionMatch"),
        )
        wanted = parse_accept(request.headers.get("Accept", ""))
        list_meta: Obj = {"resourceVersion": result.resource_version}
        if result.continue_token:
            list_meta["continue"] = result.continue_token
        if wanted.table:
            body = tables.to_table(info, result.items, include_object=self._include_object(request),
                                   now=dt.datetime.now(dt.UTC))
            body["metadata"] = list_meta
            return json_response(body)
        if wanted.partial_metadata:
            return json_response({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                                  "metadata": list_meta, "items": [_partial(o) for o in result.items]})
        for item in result.items:
            item.setdefault("apiVersion", info.api_version)
            item.setdefault("kind", info.kind)
        body = {"kind": info.list_kind, "apiVersion": info.api_version, "metadata": list_meta,
                "items": result.items}
        if wanted.yaml:
            return web.Response(body=yaml.safe_dump(body).encode(), headers={"Content-Type": "application/yaml"})
        return json_response(body)

    async def watch(self, request: web.Request, info: ResourceInfo, t: Target, *,
                    name: str | None = None) -> web.StreamResponse:
        if "watch" not in info.verbs:
            raise MethodNotAllowed(f"watch is not supported on {info.group_resource}")
        q = request.query
        field_selector = q.get("fieldSelector", "")
        if name:
            field_selector = ",".join(filter(None, [field_selector, f"metadata.name={name}"]))
        send_initial = _bool(q.get("sendInitialEvents"))
        if send_initial and q.get("resourceVersionMatch") != "NotOlderThan":
            raise BadRequest("sendInitialEvents requires resourceVersionMatch=NotOlderThan")
        bookmarks = _bool(q.get("allowWatchBookmarks"))
        events = await self.objects.watch(
            info, t.namespace,
            label_selector=q.get("labelSelector", ""),
            field_selector=field_selector,
            resource_version=q.get("resourceVersion") or None,
            send_initial_events=send_initial,
            bookmark_interval=BOOKMARK_INTERVAL if bookmarks else None,
        )
        timeout_s = q.get("timeoutSeconds")
        try:
            timeout = float(timeout_s) if timeout_s else MIN_WATCH_TIMEOUT * (1 + random.random())
        except ValueError as exc:
            raise BadRequest(f"invalid timeoutSeconds {timeout_s!r}") from exc
        wanted = parse_accept(request.headers.get("Accept", ""))
        include = self._include_object(request)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                       "Cache-Control": "no-cache, private"})
        resp.enable_chunked_encoding()
        first_table = True
        self.active_watches += 1
        try:
            await resp.prepare(request)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    ev = await asyncio.wait_for(events.next(), remaining)
                except TimeoutError:
                    break
                if ev is None:
                    break
                if ev.type == "BOOKMARK":
                    initial_end = ev.key == "initial-events-end"
                    if bookmarks or initial_end:
                        await resp.write(self._bookmark(info, ev, initial_end=initial_end))
                    continue
                if wanted.table:
                    table = tables.to_table(info, [ev.object], include_object=include,
                                            now=dt.datetime.now(dt.UTC))
                    if not first_table:
                        table["columnDefinitions"] = None
                    first_table = False
                    table.setdefault("metadata", {})["resourceVersion"] = str(ev.revision)
                    await resp.write(orjson.dumps({"type": ev.type, "object": table}) + b"\n")
                elif wanted.partial_metadata:
                    await resp.write(orjson.dumps({"type": ev.type, "object": _partial(ev.object)}) + b"\n")
                else:
                    await resp.write(ev.encoded())
        except APIError as err:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await resp.write(orjson.dumps({"type": "ERROR", "object": err.to_status()}) + b"\n")
        except ConnectionError:
            pass
        finally:
            self.active_watches -= 1
            await events.aclose()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await resp.write_eof()
        return resp

    @staticmethod
    def _bookmark(info: ResourceInfo, ev: CachedEvent, *, initial_end: bool) -> bytes:
        md: Obj = {"resourceVersion": str(ev.revision)}
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        return orjson.dumps({"type": "BOOKMARK", "object": {"kind": info.kind, "apiVersion": info.api_version,
                                                            "metadata": md}}) + b"\n"

    async def _decode(self, request: web.Request, info: ResourceInfo, ctx: RequestContext) -> Obj:
        body = await read_body(request)
        obj = decode_object(body, request.headers.get("Content-Type", "application/json"))
        self.check_fields(info, obj, body, request.headers.get("Content-Type", ""), ctx)
        return obj

    def check_fields(self, info: ResourceInfo, obj: Obj, raw: bytes, content_type: str,
                     ctx: RequestContext) -> None:
        """Field validation (Strict/Warn/Ignore) for unknown and duplicate fields."""
        if ctx.field_validation == "Ignore":
            return
        problems: list[str] = []
        if content_type.split(";")[0].strip() in ("application/json", ""):
            problems += [f'duplicate field "{p}"' for p in fieldvalidation.duplicate_fields(raw)]
        problems += [f'unknown field "{p}"' for p in fieldvalidation.unknown_fields_for(info, obj)]
        if not problems:
            return
        if ctx.field_validation == "Strict":
            raise BadRequest("strict decoding error: " + ", ".join(problems))
        ctx.warnings.extend(problems)

    async def create(self, request: web.Request, info: ResourceInfo, t: Target) -> web.Response:
        if "create" not in info.verbs:
            raise MethodNotAllowed(f"create is not supported on {info.group_resource}")
        ctx = self.context(request)
        obj = await self._decode(request, info, ctx)
        created = await self.objects.create(info, t.namespace, obj, ctx)
        return self.respond(request, info, created, 201, self._warning_headers(ctx))

    async def update(self, request: web.Request, info: ResourceInfo, t: Target, *,
                     subresource: str = "") -> web.Response:
        if "update" not in info.verbs:
            raise MethodNotAllowed(f"update is not supported on {info.group_resource}")
        ctx = self.context(request)
        obj = await self._decode(request, info, ctx)
        assert t.name is not None
        updated = await self.objects.update(info, t.namespace, t.name, obj, ctx, subresource=subresource)
        return self.respond(request, info, updated, 200, self._warning_headers(ctx))

    async def patch(self, request: web.Request, info: ResourceInfo, t: Target, *,
                    subresource: str = "") -> web.Response:
        if "patch" not in info.verbs:
            raise MethodNotAllowed(f"patch is not supported on {info.group_resource}")
        ctx = self.context(request)
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        patch_type = PATCH_TYPES.get(ctype)
        if patch_type is None:
            raise UnsupportedMediaType(f'the body of the request was in an unknown format - accepted media types '
                                       f'include: {", ".join(PATCH_TYPES)} (got "{ctype}")')
        body = await read_body(request)
        if not body.strip():
            raise BadRequest("the patch body is empty")
        assert t.name is not None
        if patch_type in ("merge", "strategic") and ctx.field_validation != "Ignore":
            with contextlib.suppress(orjson.JSONDecodeError):
                doc = orjson.loads(body)
                if isinstance(doc, dict):
                    self.check_fields(info, {**_without_directives(doc), "apiVersion": info.api_version,
                                             "kind": info.kind}, body, "application/json", ctx)
        patched = await self.objects.patch(info, t.namespace, t.name, patch_type, body, ctx,
                                           subresource=subresource, force=_bool(request.query.get("force")))
        return self.respond(request, info, patched, 200, self._warning_headers(ctx))

    async def _delete_options(self, request: web.Request) -> DeleteOptions:
        body = await read_body(request)
        doc: Obj | None = None
        if body.strip():
            doc = decode_object(body, request.headers.get("Content-Type", "application/json"))
        return DeleteOptions.from_body(doc, dict(request.query))

    async def delete(self, request: web.Request, info: ResourceInfo, t: Target) -> web.Response:
        if "delete" not in info.verbs:
            raise MethodNotAllowed(f"delete is not supported on {info.group_resource}")
        ctx = self.context(request)
        options = await self._delete_options(request)
        assert t.name is not None
        obj, gone = await self.objects.delete(info, t.namespace, t.name, options, ctx)
        if gone and not _returns_deleted_object(info):
            return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                  "details": {"name": t.name, "group": info.group, "kind": info.plural,
                                              "uid": obj["metadata"].get("uid")}})
        return self.respond(request, info, obj, 200)

    async def delete_collection(self, request: web.Request, info: ResourceInfo, t: Target) -> web.Response:
        if "deletecollection" not in info.verbs:
            raise MethodNotAllowed(f"deletecollection is not supported on {info.group_resource}")
        ctx = self.context(request)
        options = await self._delete_options(request)
        q = request.query
        deleted = await self.objects.delete_collection(info, t.namespace, label_selector=q.get("labelSelector", ""),
                                                       field_selector=q.get("fieldSelector", ""),
                                                       options=options, ctx=ctx)
        return json_response({"kind": info.list_kind, "apiVersion": info.api_version, "metadata": {},
                              "items": deleted})


_RETURNS_DELETED = {("", "pods"), ("", "services"), ("", "namespaces"), ("", "nodes"),
                    ("", "persistentvolumeclaims"), ("apiextensions.k8s.io", "customresourcedefinitions")}


def _returns_deleted_object(info: ResourceInfo) -> bool:
    return (info.group, info.plural) in _RETURNS_DELETED or info.custom


def _without_directives(value: Any) -> Any:
    """A strategic merge patch minus its ``$patch``/``$setElementOrder/...`` directives."""
    if isinstance(value, dict):
        return {k: _without_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_without_directives(v) for v in value]
    return value


def _partial(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata") or {}}
