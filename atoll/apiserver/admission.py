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


NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"


def _is_new_pod(op: Operation, info: ResourceInfo, obj: Obj | None) -> bool:
    return op == "CREATE" and info.group == "" and info.plural == "pods" and obj is not None


def tolerates_node_taint(tolerations: list[Obj], key: str) -> bool:
    """kube's DefaultTolerationSeconds test: a toleration for ``key`` (or every key) with NoExecute (or any effect).

    Operator and value are deliberately not looked at, exactly as kube's plugin does.
    """
    return any((t.get("key") or "") in (key, "") and (t.get("effect") or "") in ("NoExecute", "")
               for t in tolerations if isinstance(t, dict))


class DefaultTolerationSeconds:
    """New pods tolerate not-ready and unreachable nodes for a while (300 s) before taint-based eviction.

    Without it, a pod on a node that loses its kubelet for a moment would be evicted at
    once by the node lifecycle controller's NoExecute taints; with it, the pod waits out
    short outages. Pods that already tolerate a taint (any toleration for that key or for
    every key, with effect NoExecute or none) keep their own.

    Kube also runs this on pod UPDATE (without subresource); here admission does not see
    the subresource and runs after validation, so only CREATE is handled: tolerations
    admitted on create persist, since validation forbids removing them.
    """

    def __init__(self, *, not_ready_seconds: int = 300, unreachable_seconds: int = 300) -> None:
        self.not_ready_seconds = not_ready_seconds
        self.unreachable_seconds = unreachable_seconds

    async def admit(self, op: Operation, info: ResourceInfo, obj: Obj | None, old: Obj | None,
                    ctx: RequestContext) -> None:
        if not _is_new_pod(op, info, obj):
            return
        assert obj is not None
        spec = obj.setdefault("spec", {})
        tolerations = list(spec.get("tolerations") or [])
        added = False
        for key, seconds in ((NOT_READY_TAINT, self.not_ready_seconds), (UNREACHABLE_TAINT, self.unreachable_seconds)):
            if not tolerates_node_taint(tolerations, key):
                tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                    "tolerationSeconds": seconds})
                added = True
        if added:
            spec["tolerations"] = tolerations


class ServiceAccountAdmission:
    """New pods run as a ServiceAccount: ``default`` when they name none (kube's ServiceAccount plugin).

    Only the defaulting half of kube's plugin. Not done here: refusing pods whose
    ServiceAccount does not exist yet (kube retries and then rejects; Atoll admits, so
    namespaces work before the ServiceAccount controller has run), and mounting a
    projected API token volume (Atoll issues no service-account tokens). Mirror pods
    (static pods a kubelet reports) are left as they are, as in kube.
    """

    async def admit(self, op: Operation, info: ResourceInfo, obj: Obj | None, old: Obj | None,
                    ctx: RequestContext) -> None:
        if not _is_new_pod(op, info, obj):
            return
        assert obj is not None
        if MIRROR_POD_ANNOTATION in ((obj.get("metadata") or {}).get("annotations") or {}):
            return
        spec = obj.setdefault("spec", {})
        name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        spec["serviceAccountName"] = name
        spec["serviceAccount"] = name
