"""API discovery: the legacy documents and the aggregated v2 one, from the registry.

kubectl 1.32 asks ``/api`` and ``/apis`` for ``apidiscovery.k8s.io/v2``
``APIGroupDiscoveryList`` first and falls back to the legacy ``APIVersions``/
``APIGroupList``/``APIResourceList`` documents, so both are served from the same data.
Documents are cached per registry generation (CRDs change them at run time).
"""

from __future__ import annotations

import hashlib
from typing import Any

from atoll.api.resources import Registry, ResourceInfo

Obj = dict[str, Any]

AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"

_SUB_KIND: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    # subresource: (group, version, kind, verbs); "" kind means "the resource's own kind"
    "status": ("", "", "", ("get", "patch", "update")),
    "scale": ("autoscaling", "v1", "Scale", ("get", "patch", "update")),
    "binding": ("", "v1", "Binding", ("create",)),
    "eviction": ("policy", "v1", "Eviction", ("create",)),
    "log": ("", "v1", "Pod", ("get",)),
    "exec": ("", "v1", "PodExecOptions", ("create", "get")),
    "attach": ("", "v1", "PodAttachOptions", ("create", "get")),
    "portforward": ("", "v1", "PodPortForwardOptions", ("create", "get")),
    "proxy": ("", "v1", "", ("create", "delete", "get", "patch", "update")),
    "finalize": ("", "", "", ("update",)),
    "token": ("authentication.k8s.io", "v1", "TokenRequest", ("create",)),
    "ephemeralcontainers": ("", "", "", ("get", "patch", "update")),
    "resize": ("", "", "", ("get", "patch", "update")),
    "approval": ("", "", "", ("get", "patch", "update")),
}

_PROXY_KINDS = {"pods": "PodProxyOptions", "nodes": "NodeProxyOptions", "services": "ServiceProxyOptions"}


def _sub_kind(info: ResourceInfo, sub: str) -> tuple[str, str, str, list[str]]:
    group, version, kind, verbs = _SUB_KIND.get(sub, ("", "", "", ("get",)))
    if sub == "proxy":
        kind = _PROXY_KINDS.get(info.plural, "")
    if not kind:
        group, version, kind = info.group, info.version, info.kind
    return group, version, kind, list(verbs)


def storage_version_hash(info: ResourceInfo) -> str:
    raw = f"{info.group}/{info.version}/{info.kind}".encode()
    import base64

    return base64.b64encode(hashlib.sha256(raw).digest()[:8]).decode()


class Discovery:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._generation = -1
        self._cache: dict[str, Obj] = {}

    def _cached(self, key: str, build: Any) -> Obj:
        if self._generation != self._registry.generation:
            self._cache.clear()
            self._generation = self._registry.generation
        doc = self._cache.get(key)
        if doc is None:
            doc = build()
            self._cache[key] = doc
        return doc

    # -- legacy ------------------------------------------------------------------------
    def api_versions(self, server_address: str) -> Obj:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        }

    def _group_doc(self, group: str, versions: list[str]) -> Obj:
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}

    def api_group_list(self) -> Obj:
        def build() -> Obj:
            groups = [self._group_doc(g, vs) for g, vs in self._registry.groups() if g]
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

        return self._cached("groups", build)

    def api_group(self, group: str) -> Obj | None:
        for g, vs in self._registry.groups():
            if g == group and g:
                return {"kind": "APIGroup", "apiVersion": "v1", **self._group_doc(g, vs)}
        return None

    def resource_list(self, group: str, version: str) -> Obj | None:
        def build() -> Obj:
            infos = [i for i in self._registry.resources(group, version) if i.served]
            resources: list[Obj] = []
            for info in infos:
                entry: Obj = {
                    "name": info.plural,
                    "singularName": info.singular,
                    "namespaced": info.namespaced,
                    "kind": info.kind,
                    "verbs": list(info.verbs),
                    "storageVersionHash": storage_version_hash(info),
                }
                if info.short_names:
                    entry["shortNames"] = list(info.short_names)
                if info.categories:
                    entry["categories"] = list(info.categories)
                resources.append(entry)
                for sub in info.subresources:
                    sgroup, sversion, skind, verbs = _sub_kind(info, sub)
                    sentry: Obj = {"name": f"{info.plural}/{sub}", "singularName": "",
                                   "namespaced": info.namespaced, "kind": skind, "verbs": verbs}
                    if (sgroup, sversion) != (info.group, info.version):
                        sentry["group"], sentry["version"] = sgroup, sversion
                    resources.append(sentry)
            gv = f"{group}/{version}" if group else version
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}

        if not self._registry.resources(group, version):
            return None
        return self._cached(f"rl:{group}/{version}", build)

    # -- aggregated v2 ---------------------------------------------------------------------
    def aggregated(self, *, core: bool, api_version: str = "apidiscovery.k8s.io/v2") -> Obj:
        def build() -> Obj:
            items: list[Obj] = []
            for group, versions in self._registry.groups():
                if (group == "") != core:
                    continue
                vdocs: list[Obj] = []
                for version in versions:
                    res_docs = [self._aggregated_resource(i) for i in self._registry.resources(group, version)
                                if i.served]
                    vdocs.append({"version": version, "resources": res_docs, "freshness": "Current"})
                items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": vdocs})
            return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}

        return self._cached(f"agg:{core}:{api_version}", build)

    def _aggregated_resource(self, info: ResourceInfo) -> Obj:
        doc: Obj = {
            "resource": info.plural,
            "responseKind": {"group": info.group, "version": info.version, "kind": info.kind},
            "scope": "Namespaced" if info.namespaced else "Cluster",
            "singularResource": info.singular,
            "verbs": list(info.verbs),
        }
        if info.short_names:
            doc["shortNames"] = list(info.short_names)
        if info.categories:
            doc["categories"] = list(info.categories)
        subs = []
        for sub in info.subresources:
            sgroup, sversion, skind, verbs = _sub_kind(info, sub)
            subs.append({"subresource": sub, "responseKind": {"group": sgroup, "version": sversion, "kind": skind},
                         "verbs": verbs})
        if subs:
            doc["subresources"] = subs
        return doc


def wants_aggregated(accept: str) -> str | None:
    """The aggregated discovery content type the client accepts, if any (v2 preferred)."""
    for part in accept.split(","):
        params = {p.strip().partition("=")[0]: p.strip().partition("=")[2] for p in part.split(";")[1:]}
        if params.get("as") == "APIGroupDiscoveryList" and params.get("g") == "apidiscovery.k8s.io":
            if params.get("v") == "v2":
                return AGGREGATED_CONTENT_TYPE
            if params.get("v") == "v2beta1":
                return AGGREGATED_V2BETA1_CONTENT_TYPE
    return None
