"""OpenAPI v3 documents: the index at ``/openapi/v3`` and one document per group-version.

kubectl reads them for ``explain`` and to decide on server-side field validation (it
looks for the ``fieldValidation`` parameter on a kind's PATCH operation). Schemas come
from the published Kubernetes definitions (converted from JSON-Schema style to
OpenAPI 3) and, for custom resources, from their CRD's ``openAPIV3Schema``.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import orjson

from atoll.api import schemas
from atoll.api.resources import Registry, ResourceInfo

Obj = dict[str, Any]
COMPONENTS = "#/components/schemas/"
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
ALWAYS = (META + "ObjectMeta", META + "Status", META + "DeleteOptions", META + "Patch", META + "WatchEvent",
          META + "APIResourceList", META + "ListMeta")


def custom_schema_name(info: ResourceInfo) -> str:
    """kube names a custom kind's schema by its reversed group, version and kind."""
    return ".".join([*reversed(info.group.split(".")), info.version, info.kind])


def _convert(node: Any) -> Any:
    """JSON-Schema flavoured node → OpenAPI 3 (refs to components, no "null" in types)."""
    if isinstance(node, list):
        return [_convert(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: Obj = {}
    for k, v in node.items():
        if k == "$ref":
            continue
        if k == "type" and isinstance(v, list):
            kinds = [t for t in v if t != "null"]
            out["type"] = kinds[0] if kinds else "object"
        elif k in ("properties", "patternProperties"):
            out[k] = {name: _convert(sub) for name, sub in v.items()}
        elif k == "enum" and isinstance(v, list):
            out[k] = [e for e in v if e is not None]
        else:
            out[k] = _convert(v)
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(schemas.REF_PREFIX):
        target = {"$ref": COMPONENTS + ref[len(schemas.REF_PREFIX):]}
        if out:
            out["allOf"] = [target]
            return out
        return target
    return out


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(schemas.REF_PREFIX):
            found.add(ref[len(schemas.REF_PREFIX):])
        for v in node.values():
            _refs(v, found)
    elif isinstance(node, list):
        for v in node:
            _refs(v, found)


@functools.cache
def _closure(name: str) -> frozenset[str]:
    defs = schemas.definitions()
    seen: set[str] = set()
    todo = [name]
    while todo:
        cur = todo.pop()
        if cur in seen or cur not in defs:
            continue
        seen.add(cur)
        found: set[str] = set()
        _refs(defs[cur], found)
        todo.extend(found - seen)
    return frozenset(seen)


@functools.cache
def _component(name: str) -> Obj:
    raw = schemas.definitions()[name]
    if name.endswith("intstr.IntOrString"):
        return {"description": raw.get("description", ""), "type": "string", "format": "int-or-string"}
    if name.endswith("resource.Quantity"):
        return {"description": raw.get("description", ""), "type": "string"}
    if name.endswith("runtime.RawExtension"):
        return {"description": raw.get("description", ""), "type": "object"}
    converted: Obj = _convert(raw)
    return converted


def _param(name: str, where: str, description: str, *, required: bool = False, typ: str = "string") -> Obj:
    p: Obj = {"name": name, "in": where, "description": description, "schema": {"type": typ, "uniqueItems": True}}
    if required:
        p["required"] = True
    return p


WRITE_PARAMS = [
    _param("dryRun", "query", "When present, indicates that modifications should not be persisted."),
    _param("fieldManager", "query", "fieldManager is a name associated with the actor or entity that is "
                                    "making these changes."),
    _param("fieldValidation", "query", "fieldValidation instructs the server on how to handle objects in the "
                                       "request containing unknown or duplicate fields. Valid values are: Ignore, "
                                       "Warn (default), Strict."),
]
LIST_PARAMS = [_param(n, "query", d) for n, d in (
    ("allowWatchBookmarks", "allowWatchBookmarks requests watch events with type BOOKMARK."),
    ("continue", "The continue option should be set when retrieving more results from the server."),
    ("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
    ("labelSelector", "A selector to restrict the list of returned objects by their labels."),
    ("limit", "limit is a maximum number of responses to return for a list call."),
    ("resourceVersion", "resourceVersion sets a constraint on what resource versions a request may be served "
                        "from."),
    ("resourceVersionMatch", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
    ("sendInitialEvents", "`sendInitialEvents=true` may be set together with `watch=true`."),
    ("timeoutSeconds", "Timeout for the list/watch call."),
    ("watch", "Watch for changes to the described resources and return them as a stream."),
)]


class OpenAPIBuilder:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._generation = -1
        self._docs: dict[str, bytes] = {}

    def _refresh(self) -> None:
        if self._generation != self._registry.generation:
            self._docs.clear()
            self._generation = self._registry.generation

    def _gv_paths(self) -> list[tuple[str, str, str]]:
        out: list[tuple[str, str, str]] = []
        for group, versions in self._registry.groups():
            for version in versions:
                out.append((f"api/{version}" if not group else f"apis/{group}/{version}", group, version))
        return out

    def index(self) -> Obj:
        self._refresh()
        paths: Obj = {}
        for path, _, _ in self._gv_paths():
            doc = self.group_version_document(path)
            assert doc is not None
            digest = hashlib.sha512(doc).hexdigest()[:64].upper()
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
        return {"paths": paths}

    def group_version_document(self, path: str) -> bytes | None:
        self._refresh()
        path = path.strip("/")
        cached = self._docs.get(path)
        if cached is not None:
            return cached
        for gv_path, group, version in self._gv_paths():
            if gv_path == path:
                doc = orjson.dumps(self._build(group, version), option=orjson.OPT_SORT_KEYS)
                self._docs[path] = doc
                return doc
        return None

    def _build(self, group: str, version: str) -> Obj:
        infos = [i for i in self._registry.resources(group, version) if i.served]
        components: Obj = {}
        names: set[str] = set()
        for base in ALWAYS:
            names |= _closure(base)
        kind_refs: dict[str, str] = {}
        for info in infos:
            if info.custom:
                name = custom_schema_name(info)
                components[name] = self._custom_component(info)
                kind_refs[info.plural] = name
                continue
            name = schemas.definition_name(info.group, info.version, info.kind) or ""
            if name:
                names |= _closure(name)
                kind_refs[info.plural] = name
                list_name = schemas.definition_name(info.group, info.version, info.list_kind)
                if list_name:
                    names |= _closure(list_name)
        if any("scale" in i.subresources for i in infos):
            names |= _closure("io.k8s.api.autoscaling.v1.Scale")
        for name in sorted(names):
            components[name] = _component(name)
        paths: Obj = {}
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        for info in infos:
            self._paths_for(info, prefix, kind_refs.get(info.plural), paths)
        title = "Kubernetes"
        return {"openapi": "3.0.0", "info": {"title": title, "version": "v1.32.0"}, "paths": paths,
                "components": {"schemas": components}}

    @staticmethod
    def _custom_component(info: ResourceInfo) -> Obj:
        base: Obj = _convert(info.schema or {"type": "object"})
        props = dict(base.get("properties") or {})
        props["apiVersion"] = {"type": "string", "description": "APIVersion defines the versioned schema of this "
                                                                "representation of an object."}
        props["kind"] = {"type": "string", "description": "Kind is a string value representing the REST resource "
                                                          "this object represents."}
        props["metadata"] = {"allOf": [{"$ref": COMPONENTS + META + "ObjectMeta"}],
                             "description": "Standard object's metadata."}
        base["properties"] = props
        base.setdefault("type", "object")
        base["x-kubernetes-group-version-kind"] = [{"group": info.group, "version": info.version, "kind": info.kind}]
        return base

    @staticmethod
    def _paths_for(info: ResourceInfo, prefix: str, schema_name: str | None, paths: Obj) -> None:
        gvk = {"group": info.group, "version": info.version, "kind": info.kind}
        ref: Obj = {"$ref": COMPONENTS + schema_name} if schema_name else {"type": "object"}
        body = {"content": {"application/json": {"schema": ref}, "application/yaml": {"schema": ref}},
                "required": True}
        ok = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
        patch_body = {"content": {t: {"schema": {"$ref": COMPONENTS + META + "Patch"}} for t in (
            "application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json",
            "application/strategic-merge-patch+json")}, "required": True}

        def op(action: str, verb: str, extra: list[Obj] | None = None, with_body: Obj | None = None) -> Obj:
            o: Obj = {"description": f"{verb} {info.kind}", "operationId": f"{verb}{info.kind}",
                      "tags": [info.group or "core"], "responses": ok, "x-kubernetes-action": action,
                      "x-kubernetes-group-version-kind": gvk}
            if extra:
                o["parameters"] = extra
            if with_body is not None:
                o["requestBody"] = with_body
            return o

        ns_param = [_param("namespace", "path", "object name and auth scope", required=True)] if info.namespaced \
            else []
        name_param = [_param("name", "path", f"name of the {info.kind}", required=True)]
        base = f"{prefix}/namespaces/{{namespace}}/{info.plural}" if info.namespaced else f"{prefix}/{info.plural}"
        collection: Obj = {"parameters": ns_param}
        if "list" in info.verbs:
            collection["get"] = op("list", "list", LIST_PARAMS)
        if "create" in info.verbs:
            collection["post"] = op("post", "create", WRITE_PARAMS, body)
        if "deletecollection" in info.verbs:
            collection["delete"] = op("deletecollection", "deletecollection", LIST_PARAMS)
        paths[base] = collection
        item: Obj = {"parameters": name_param + ns_param}
        if "get" in info.verbs:
            item["get"] = op("get", "read")
        if "update" in info.verbs:
            item["put"] = op("put", "replace", WRITE_PARAMS, body)
        if "patch" in info.verbs:
            item["patch"] = op("patch", "patch", [*WRITE_PARAMS, _param("force", "query", "Force is going to "
                                                                       "\"force\" Apply requests.", typ="boolean")],
                               patch_body)
        if "delete" in info.verbs:
            item["delete"] = op("delete", "delete")
        paths[f"{base}/{{name}}"] = item
        for sub in info.subresources:
            if sub not in ("status", "scale"):
                continue
            sub_ref = ref if sub == "status" else {"$ref": COMPONENTS + "io.k8s.api.autoscaling.v1.Scale"}
            sub_item: Obj = {"parameters": name_param + ns_param,
                             "get": {**op("get", "read"), "responses": {"200": {"description": "OK", "content": {
                                 "application/json": {"schema": sub_ref}}}}},
                             "put": op("put", "replace", WRITE_PARAMS, body),
                             "patch": op("patch", "patch", WRITE_PARAMS, patch_body)}
            paths[f"{base}/{{name}}/{sub}"] = sub_item
        if "watch" in info.verbs:
            paths[f"{prefix}/watch/{info.plural}"] = {"get": op("watchlist", "watch", LIST_PARAMS)}
