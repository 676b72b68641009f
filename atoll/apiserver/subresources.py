"""Subresources: status, scale, pods/binding, pods/eviction, pods/log, namespaces/finalize.

``/status`` and ``/scale`` reuse the registry's update path with the subresource's
rules (status writes keep the spec; scale writes only ``spec.replicas``), so
optimistic concurrency, managedFields and watch events behave as for the object itself.
Node-served subresources (``log``, ``exec``...) go to a pluggable ``NodeConnector`` that
the member cluster supplies; without one they answer 404 like an API server whose node
does not serve them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from aiohttp import web

from atoll.api.errors import BadRequest, Conflict, MethodNotAllowed, NotFound, TooManyRequests
from atoll.api.resources import ResourceInfo, ScalePaths
from atoll.api.selectors import LabelSelector
from atoll.apiserver import patching
from atoll.apiserver.registry import (
    PATCH_TYPES,
    DeleteOptions,
    ObjectRegistry,
    RequestContext,
    clone,
    now_rfc3339,
)

if TYPE_CHECKING:
    from atoll.apiserver.handlers import ResourceHandler, Target

logger = logging.getLogger(__name__)

Obj = dict[str, Any]


class NodeConnector(Protocol):
    """Serves node-backed pod subresources (logs, exec) for a member cluster."""

    async def handle(self, request: web.Request, pod: Obj, subresource: str) -> web.StreamResponse: ...


def _get_path(obj: Obj, path: str) -> Any:
    cur: Any = obj
    for part in [p for p in path.split(".") if p]:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _set_path(obj: Obj, path: str, value: Any) -> None:
    parts = [p for p in path.split(".") if p]
    cur = obj
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value


def scale_of(info: ResourceInfo, obj: Obj) -> Obj:
    """The autoscaling/v1 Scale view of a scalable object."""
    paths = info.scale or ScalePaths()
    md = obj["metadata"]
    selector = ""
    if info.custom:
        if paths.label_selector:
            selector = str(_get_path(obj, paths.label_selector) or "")
    else:
        sel = (obj.get("spec") or {}).get("selector")
        if isinstance(sel, dict):
            selector = LabelSelector.from_dict(sel).to_string()
    status: Obj = {"replicas": int(_get_path(obj, paths.status_replicas) or 0)}
    if selector:
        status["selector"] = selector
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in md},
        "spec": {"replicas": int(_get_path(obj, paths.spec_replicas) or 0)},
        "status": status,
    }


class Subresources:
    def __init__(self, objects: ObjectRegistry) -> None:
        self.objects = objects
        self.node_connector: NodeConnector | None = None

    async def handle(self, request: web.Request, info: ResourceInfo, t: Target,
                     handler: ResourceHandler) -> web.StreamResponse:
        from atoll.apiserver.handlers import json_response

        sub = t.subresource
        method = request.method
        assert t.name is not None
        if sub == "status":
            if method == "GET":
                return handler.respond(request, info, await self.objects.get(info, t.namespace, t.name))
            if method == "PUT":
                return await handler.update(request, info, t, subresource="status")
            if method == "PATCH":
                return await handler.patch(request, info, t, subresource="status")
        elif sub == "scale":
            if method == "GET":
                return json_response(scale_of(info, await self.objects.get(info, t.namespace, t.name)))
            if method in ("PUT", "PATCH"):
                return json_response(await self._write_scale(request, info, t, handler))
        elif sub == "binding" and method == "POST":
            body = await self._body(request)
            await self.bind(t.namespace, t.name, body, handler.context(request))
            return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                  "code": 201}, 201)
        elif sub == "eviction" and method == "POST":
            body = await self._body(request)
            await self.evict(info, t.namespace, t.name, body, handler.context(request))
            return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                  "code": 201}, 201)
        elif sub == "finalize" and method == "PUT":
            body = await self._body(request)
            return handler.respond(request, info, await self.finalize_namespace(t.name, body,
                                                                                handler.context(request)))
        elif sub in ("log", "exec", "attach", "portforward", "proxy") and info.plural == "pods":
            pod = await self.objects.get(info, t.namespace, t.name)
            if self.node_connector is None:
                raise NotFound(f"the server could not find the requested resource ( pods/{sub} {t.name})")
            return await self.node_connector.handle(request, pod, sub)
        else:
            raise NotFound("the server could not find the requested resource")
        raise MethodNotAllowed(f"{method} is not supported on {info.plural}/{sub}")

    @staticmethod
    async def _body(request: web.Request) -> Obj:
        from atoll.apiserver.handlers import decode_object, read_body

        return decode_object(await read_body(request), request.headers.get("Content-Type", "application/json"))

    async def _write_scale(self, request: web.Request, info: ResourceInfo, t: Target,
                           handler: ResourceHandler) -> Obj:
        from atoll.apiserver.handlers import read_body

        assert t.name is not None
        ctx = handler.context(request)
        raw = await read_body(request)
        paths = info.scale or ScalePaths()
        if request.method == "PUT":
            from atoll.apiserver.handlers import decode_object

            wanted = decode_object(raw, request.headers.get("Content-Type", "application/json"))
        else:
            ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
            ptype = PATCH_TYPES.get(ctype)
            if ptype is None or ptype == "apply":
                raise BadRequest(f"unsupported patch type for scale: {ctype}")
            current = await self.objects.get(info, t.namespace, t.name)
            doc = orjson.loads(raw)
            base = scale_of(info, current)
            if ptype == "json":
                wanted = patching.json_patch(base, doc)
            elif ptype == "merge":
                wanted = patching.merge_patch(base, doc)
            else:
                wanted = patching.strategic_merge_patch(base, doc, None)
        replicas = (wanted.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            from atoll.api.errors import field_error, invalid

            raise invalid("Scale", t.name, [field_error("spec.replicas", f"Invalid value: {replicas!r}: must be "
                                                        "greater than or equal to 0")], group="autoscaling")
        wanted_rv = (wanted.get("metadata") or {}).get("resourceVersion") if request.method == "PUT" else None

        def mutate(current: Obj) -> Obj:
            if wanted_rv and current["metadata"].get("resourceVersion") != wanted_rv:
                raise self.objects._conflict(info, t.name or "")
            new = clone(current)
            _set_path(new, paths.spec_replicas, replicas)
            return new

        updated = await self.objects.guaranteed_update(info, t.namespace, t.name, mutate, ctx, subresource="scale",
                                                       conditional=bool(wanted_rv))
        return scale_of(info, updated)

    async def bind(self, namespace: str | None, name: str, binding: Obj, ctx: RequestContext) -> Obj:
        target = binding.get("target") or {}
        node = target.get("name")
        if not node:
            raise BadRequest("binding target name is required")
        pods = self.objects.resources.get("", "v1", "pods")
        assert pods is not None

        def mutate(current: Obj) -> Obj:
            spec = current.get("spec") or {}
            if current["metadata"].get("deletionTimestamp"):
                raise Conflict(f"pod {name} is being deleted, cannot be assigned to a host")
            if spec.get("nodeName"):
                raise Conflict(f"pod {name} is already assigned to node \"{spec['nodeName']}\"")
            new = clone(current)
            new["spec"]["nodeName"] = node
            status = new.setdefault("status", {})
            conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                          "lastTransitionTime": now_rfc3339()})
            status["conditions"] = conds
            for k, v in ((binding.get("metadata") or {}).get("annotations") or {}).items():
                new["metadata"].setdefault("annotations", {})[k] = v
            return new

        return await self.objects.guaranteed_update(pods, namespace, name, mutate, ctx, subresource="binding")

    async def evict(self, info: ResourceInfo, namespace: str | None, name: str, eviction: Obj,
                    ctx: RequestContext) -> None:
        pod = await self.objects.get(info, namespace, name)
        phase = (pod.get("status") or {}).get("phase")
        if phase not in ("Succeeded", "Failed", "Pending") and not pod["metadata"].get("deletionTimestamp"):
            pdbs = self.objects.resources.get("policy", "v1", "poddisruptionbudgets")
            if pdbs is not None:
                listed = await self.objects.list(pdbs, namespace)
                labels = pod["metadata"].get("labels") or {}
                for pdb in listed.items:
                    sel = (pdb.get("spec") or {}).get("selector")
                    if not isinstance(sel, dict) or not LabelSelector.from_dict(sel).matches(labels):
                        continue
                    allowed = int((pdb.get("status") or {}).get("disruptionsAllowed") or 0)
                    if allowed < 1:
                        raise TooManyRequests(
                            "Cannot evict pod as it would violate the pod's disruption budget.",
                            details={"causes": [{"reason": "DisruptionBudget", "message":
                                                 f"The disruption budget {pdb['metadata']['name']} needs "
                                                 f"{(pdb.get('status') or {}).get('desiredHealthy', 0)} healthy "
                                                 f"pods and has {(pdb.get('status') or {}).get('currentHealthy', 0)}"
                                                 " currently"}]})
        options = DeleteOptions.from_body(eviction.get("deleteOptions") or None, {})
        await self.objects.delete(info, namespace, name, options, ctx)

    async def finalize_namespace(self, name: str, body: Obj, ctx: RequestContext) -> Obj:
        namespaces = self.objects.resources.get("", "v1", "namespaces")
        assert namespaces is not None
        finalizers = list((body.get("spec") or {}).get("finalizers") or [])

        def mutate(current: Obj) -> Obj:
            new = clone(current)
            new.setdefault("spec", {})["finalizers"] = finalizers
            if not finalizers:
                new["spec"].pop("finalizers")
            return new

        return await self.objects.guaranteed_update(namespaces, None, name, mutate, ctx, subresource="finalize")
