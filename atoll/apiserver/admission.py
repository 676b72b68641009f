"""Admission steps every Atoll API server runs (the defaults of kube-apiserver that matter here)."""

from __future__ import annotations

import logging
from typing import Any

from atoll.api.errors import Forbidden, NotFound
from atoll.api.resources import ResourceInfo
from atoll.apiserver.registry import ObjectRegistry, Operation, RequestContext

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")


class NamespaceLifecycle:
    """No new content in a missing or terminating namespace; system namespaces cannot go."""

    def __init__(self, objects: ObjectRegistry) -> None:
        self.objects = objects

    async def admit(self, op: Operation, info: ResourceInfo, obj: Obj | None, old: Obj | None,
                    ctx: RequestContext) -> None:
        if info.group == "" and info.plural == "namespaces":
            if op == "DELETE" and old is not None and old["metadata"].get("name") in IMMORTAL_NAMESPACES:
                name = old["metadata"]["name"]
                raise Forbidden(f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                                details={"name": name, "kind": "namespaces"})
            return
        if op != "CREATE" or not info.namespaced or obj is None:
            return
        ns_name = obj["metadata"].get("namespace")
        namespaces = self.objects.resources.get("", "v1", "namespaces")
        assert namespaces is not None
        ns = await self._namespace(namespaces, ns_name)
        if ns is None:
            raise NotFound(f'namespaces "{ns_name}" not found', details={"name": ns_name, "kind": "namespaces"})
        if ns["metadata"].get("deletionTimestamp") or (ns.get("status") or {}).get("phase") == "Terminating":
            raise Forbidden(
                f'{info.group_resource} "{obj["metadata"].get("name", "")}" is forbidden: unable to create new '
                f"content in namespace {ns_name} because it is being terminated",
                details={"name": obj["metadata"].get("name", ""), "group": info.group, "kind": info.plural,
                         "causes": [{"reason": "NamespaceTerminating",
                                     "message": f"namespace {ns_name} is being terminated",
                                     "field": "metadata.namespace"}]})

    async def _namespace(self, namespaces: ResourceInfo, name: str) -> Obj | None:
        cache = self.objects.watch_caches.get(namespaces.key_prefix())
        if cache is not None:
            cached = cache.get(namespaces.key(None, name))
            if cached is not None and not cached["metadata"].get("deletionTimestamp"):
                return cached
        return await self.objects.try_get(namespaces, None, name)
