"""Dependencies distributor: ConfigMaps, Secrets, ServiceAccounts and PVCs follow the workload using them.

Karmada's ``pkg/dependenciesdistributor`` with the default interpreter's GetDependencies.
When a binding's policy says ``propagateDeps: true``, every object its workload's pod
template refers to (volumes, env and envFrom, imagePullSecrets, a non-default
serviceAccountName; an Ingress's TLS Secrets) gets an *attached* ResourceBinding: named
like any binding of that object, owned by it, labelled
``resourcebinding.karmada.io/depended-by-<hash of the parent>`` with the parent's id, and
carrying the parent and its clusters in ``spec.requiredBy``. The binding controller
writes Works for the clusters of ``requiredBy`` as for scheduled ones, so a ConfigMap
lands wherever the Deployment mounting it runs. The parent's dependencies are recorded in
its ``resourcebinding.karmada.io/dependencies`` annotation; an object no longer referred
to, a parent deleted or a parent turning ``propagateDeps`` off drops out of
``requiredBy`` (and its label), so the dependency's Works go once nothing requires them.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import orjson

from atoll.api.errors import AlreadyExists, NotFound
from atoll.client import Client, Resource
from atoll.federation.binding import fnv32a, safe_encode
from atoll.federation.detector import (
    RB_FINALIZER,
    RB_ID_LABEL,
    binding_name,
    object_reference,
    owner_reference,
)
from atoll.federation.kinds import RESOURCE_BINDINGS
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.events import EventRecorder
from atoll.machinery.informing import Informer, key_of

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

DEPENDENCIES_ANNOTATION = "resourcebinding.karmada.io/dependencies"
DEPENDED_BY_PREFIX = "resourcebinding.karmada.io/depended-by-"
DISTRIBUTOR_FINALIZER = "karmada.io/binding-dependencies-distributor"

DEPENDENCY_RESOURCES: tuple[Resource, ...] = (
    Resource("v1", "configmaps", True, "ConfigMap"),
    Resource("v1", "secrets", True, "Secret"),
    Resource("v1", "serviceaccounts", True, "ServiceAccount"),
    Resource("v1", "persistentvolumeclaims", True, "PersistentVolumeClaim"),
)
_BY_KIND = {r.kind: r for r in DEPENDENCY_RESOURCES}

_SECRET_VOLUME_REFS = ("azureFile", "cephfs", "cinder", "flexVolume", "rbd", "scaleIO", "iscsi", "storageos")


# -- discovery of dependencies --------------------------------------------------------------


def _all_containers(pod_spec: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod_spec.get(key) or []


def secret_names(pod_spec: Mapping[str, Any]) -> set[str]:
    """``VisitPodSecretNames``: pull secrets, env/envFrom and every volume source naming a Secret."""
    names = {str(r.get("name")) for r in pod_spec.get("imagePullSecrets") or [] if r.get("name")}
    for c in _all_containers(pod_spec):
        names |= {str((e.get("secretRef") or {}).get("name")) for e in c.get("envFrom") or []
                  if (e.get("secretRef") or {}).get("name")}
        names |= {str(((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")) for e in c.get("env") or []
                  if ((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")}
    for volume in pod_spec.get("volumes") or []:
        if (volume.get("secret") or {}).get("secretName"):
            names.add(str(volume["secret"]["secretName"]))
        if (volume.get("azureFile") or {}).get("secretName"):
            names.add(str(volume["azureFile"]["secretName"]))
        for key in _SECRET_VOLUME_REFS:
            ref = (volume.get(key) or {}).get("secretRef") or {}
            if ref.get("name"):
                names.add(str(ref["name"]))
        csi_ref = (volume.get("csi") or {}).get("nodePublishSecretRef") or {}
        if csi_ref.get("name"):
            names.add(str(csi_ref["name"]))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if (source.get("secret") or {}).get("name"):
                names.add(str(source["secret"]["name"]))
    return names


def configmap_names(pod_spec: Mapping[str, Any]) -> set[str]:
    """``VisitPodConfigmapNames``: env/envFrom, configMap and projected volumes."""
    names: set[str] = set()
    for c in _all_containers(pod_spec):
        names |= {str((e.get("configMapRef") or {}).get("name")) for e in c.get("envFrom") or []
                  if (e.get("configMapRef") or {}).get("name")}
        names |= {str(((e.get("valueFrom") or {}).get("configMapKeyRef") or {}).get("name"))
                  for e in c.get("env") or [] if ((e.get("valueFrom") or {}).get("configMapKeyRef") or {}).get("name")}
    for volume in pod_spec.get("volumes") or []:
        if (volume.get("configMap") or {}).get("name"):
            names.add(str(volume["configMap"]["name"]))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if (source.get("configMap") or {}).get("name"):
                names.add(str(source["configMap"]["name"]))
    return names


def pvc_names(pod_spec: Mapping[str, Any]) -> set[str]:
    return {str(v["persistentVolumeClaim"]["claimName"]) for v in pod_spec.get("volumes") or []
            if (v.get("persistentVolumeClaim") or {}).get("claimName")}


def pod_template_dependencies(pod_spec: Mapping[str, Any], namespace: str) -> list[Obj]:
    """``GetDependenciesFromPodTemplate``: ConfigMaps, Secrets, ServiceAccount, PVCs (each sorted by name)."""
    refs: list[Obj] = []
    for kind, names in (("ConfigMap", configmap_names(pod_spec)), ("Secret", secret_names(pod_spec))):
        refs += [{"apiVersion": "v1", "kind": kind, "namespace": namespace, "name": n} for n in sorted(names)]
    sa = pod_spec.get("serviceAccountName")
    if sa and sa != "default":
        refs.append({"apiVersion": "v1", "kind": "ServiceAccount", "namespace": namespace, "name": str(sa)})
    refs += [{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": namespace, "name": n}
             for n in sorted(pvc_names(pod_spec))]
    return refs


def get_dependencies(obj: Mapping[str, Any]) -> list[Obj] | None:
    """Karmada's default GetDependencies, or None for a kind it does not interpret."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    spec = obj.get("spec") or {}
    namespace = str((obj.get("metadata") or {}).get("namespace") or "")
    if api_version == "apps/v1" and kind in ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet"):
        deps = pod_template_dependencies((spec.get("template") or {}).get("spec") or {}, namespace)
        if kind == "StatefulSet":
            claim_templates = {str((t.get("metadata") or {}).get("name")) for t in spec.get("volumeClaimTemplates") or []}
            deps = [d for d in deps if d["kind"] != "PersistentVolumeClaim" or d["name"] not in claim_templates]
        return deps
    if api_version == "batch/v1" and kind == "Job":
        return pod_template_dependencies((spec.get("template") or {}).get("spec") or {}, namespace)
    if api_version == "batch/v1" and kind == "CronJob":
        job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        return pod_template_dependencies((job_spec.get("template") or {}).get("spec") or {}, namespace)
    if api_version == "v1" and kind == "Pod":
        return pod_template_dependencies(spec, namespace)
    if api_version == "networking.k8s.io/v1" and kind == "Ingress":
        return [{"apiVersion": "v1", "kind": "Secret", "namespace": namespace, "name": str(t.get("secretName") or "")}
                for t in spec.get("tls") or []]
    return None


def depended_by_label(namespace: str, name: str) -> str:
    """``generateBindingDependedLabelKey``: one label per parent binding, keyed by a hash of its name."""
    key = f"{namespace}/{name}" if namespace else name
    return DEPENDED_BY_PREFIX + safe_encode(str(fnv32a(key.encode())))


def build_attached_binding(parent: Mapping[str, Any], dependency: Mapping[str, Any]) -> Obj:
    """``buildAttachedBinding``: a binding for ``dependency`` required by ``parent`` (no placement of its own)."""
    pmd, pspec = parent.get("metadata") or {}, parent.get("spec") or {}
    md = dependency.get("metadata") or {}
    labels = {depended_by_label(str(pmd.get("namespace") or ""), str(pmd.get("name"))):
              str((pmd.get("labels") or {}).get(RB_ID_LABEL) or "")}
    spec: Obj = {"resource": object_reference(dependency),
                 "requiredBy": [{"namespace": pmd.get("namespace"), "name": pmd.get("name"),
                                 "clusters": copy.deepcopy(pspec.get("clusters") or [])}],
                 "conflictResolution": pspec.get("conflictResolution") or "Abort"}
    if pspec.get("preserveResourcesOnDeletion") is not None:
        spec["preserveResourcesOnDeletion"] = pspec["preserveResourcesOnDeletion"]
    return {"apiVersion": RESOURCE_BINDINGS.api_version, "kind": "ResourceBinding",
            "metadata": {"name": binding_name(str(dependency.get("kind")), str(md.get("name"))),
                         "namespace": pmd.get("namespace"), "labels": labels,
                         "ownerReferences": [owner_reference(dependency)], "finalizers": [RB_FINALIZER]},
            "spec": spec}


def merge_snapshots(existing: list[Obj], new: list[Obj]) -> list[Obj]:
    """``mergeBindingSnapshot``: a parent already listed gets its clusters refreshed, a new one is appended."""
    out = [dict(s) for s in existing]
    for snap in new:
        for s in out:
            if s.get("namespace") == snap.get("namespace") and s.get("name") == snap.get("name"):
                s["clusters"] = copy.deepcopy(snap.get("clusters") or [])
                break
        else:
            out.append(copy.deepcopy(snap))
    return out


def effective_strategy(parents: Iterable[Mapping[str, Any]]) -> tuple[str, bool]:
    """(conflictResolution, preserveResourcesOnDeletion) for a dependency shared by several parents.

    Overwrite wins over Abort and preserving over deleting: the more careful reading of
    the parents' wishes (``detectAndResolveConflictResolution``/``PreserveOnDeletion``).
    """
    specs = [p.get("spec") or {} for p in parents]
    overwrite = any((s.get("conflictResolution") or "Abort") == "Overwrite" for s in specs)
    preserve = any(bool(s.get("preserveResourcesOnDeletion")) for s in specs)
    return ("Overwrite" if overwrite else "Abort"), preserve


def dependencies_json(deps: list[Obj]) -> str:
    """The annotation value: Go's field order (apiVersion, kind, namespace, name)."""
    ordered = [{k: d[k] for k in ("apiVersion", "kind", "namespace", "name", "labelSelector") if d.get(k)}
               for d in deps]
    return orjson.dumps(ordered).decode()


# -- the controller -------------------------------------------------------------------------


class DependenciesDistributor(Controller):
    """Keeps the attached bindings of every ``propagateDeps`` ResourceBinding."""

    NAME: ClassVar[str] = "dependencies-distributor"

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client
        self.recorder = EventRecorder(client, self.NAME)
        self.bindings = self.watch(Informer(client, RESOURCE_BINDINGS))
        self.objects = {r.kind: self.watch(Informer(client, r), key_for=self._parents_of) for r in DEPENDENCY_RESOURCES}

    def _parents_of(self, obj: Obj) -> list[str]:
        """Bindings whose recorded dependencies name this object (it may just have been created)."""
        md = obj.get("metadata") or {}
        ns, name, kind = md.get("namespace"), md.get("name"), obj.get("kind")
        out = []
        for binding in self.bindings.lister.list(ns):
            recorded = ((binding.get("metadata") or {}).get("annotations") or {}).get(DEPENDENCIES_ANNOTATION)
            if not recorded:
                continue
            try:
                deps = orjson.loads(recorded)
            except orjson.JSONDecodeError:
                continue
            if any(d.get("kind") == kind and d.get("name") == name for d in deps if isinstance(d, dict)):
                out.append(key_of(binding))
        return out

    def _attached_to(self, parent: Mapping[str, Any]) -> list[Obj]:
        pmd = parent.get("metadata") or {}
        label = depended_by_label(str(pmd.get("namespace") or ""), str(pmd.get("name")))
        return [b for b in self.bindings.lister.list(pmd.get("namespace")) if label in (
            (b.get("metadata") or {}).get("labels") or {})]

    async def reconcile(self, key: str) -> Result:
        binding = self.bindings.lister.get(key)
        if binding is None:
            return Result()
        md, spec = binding.get("metadata") or {}, binding.get("spec") or {}
        if not spec.get("propagateDeps") or md.get("deletionTimestamp"):
            await self._detach(binding, self._attached_to(binding))
            if DISTRIBUTOR_FINALIZER in (md.get("finalizers") or []):
                await self._set_finalizers(binding, [f for f in md.get("finalizers") or [] if f != DISTRIBUTOR_FINALIZER])
            return Result()
        ref = spec.get("resource") or {}
        try:
            res = await self.client.resource_for(str(ref.get("apiVersion")), str(ref.get("kind")))
            workload = await self.client.get(res, str(ref.get("name")), ref.get("namespace") or None)
        except NotFound:
            return Result()
        deps = get_dependencies(workload)
        if deps is None:
            return Result()
        deps = [d for d in deps if d["kind"] in _BY_KIND and d.get("name")]
        binding = await self._record(binding, deps)
        wanted = {(d["kind"], d["name"]) for d in deps}
        orphans = [b for b in self._attached_to(binding)
                   if ((b.get("spec") or {}).get("resource") or {}).get("kind", "") not in _BY_KIND
                   or (b["spec"]["resource"]["kind"], b["spec"]["resource"].get("name")) not in wanted]
        await self._detach(binding, orphans)
        for dep in deps:
            obj = self.objects[dep["kind"]].lister.get(f"{dep['namespace']}/{dep['name']}")
            if obj is not None and not (obj.get("metadata") or {}).get("deletionTimestamp"):
                await self._attach(binding, obj)
        return Result()

    async def _set_finalizers(self, binding: Mapping[str, Any], finalizers: list[str]) -> Obj:
        md = binding.get("metadata") or {}
        updated: Obj = await self.client.patch(RESOURCE_BINDINGS, str(md["name"]), {"metadata": {
            "finalizers": finalizers, "resourceVersion": md.get("resourceVersion")}}, md.get("namespace"))
        return updated

    async def _record(self, binding: Obj, deps: list[Obj]) -> Obj:
        """The finalizer and the dependencies annotation on the parent (one write, when anything differs)."""
        md = binding.get("metadata") or {}
        value = dependencies_json(deps)
        finalizers = list(md.get("finalizers") or [])
        if (md.get("annotations") or {}).get(DEPENDENCIES_ANNOTATION) == value and DISTRIBUTOR_FINALIZER in finalizers:
            return binding
        if DISTRIBUTOR_FINALIZER not in finalizers:
            finalizers.append(DISTRIBUTOR_FINALIZER)
        updated: Obj = await self.client.patch(RESOURCE_BINDINGS, str(md["name"]), {"metadata": {
            "annotations": {DEPENDENCIES_ANNOTATION: value}, "finalizers": finalizers,
            "resourceVersion": md.get("resourceVersion")}}, md.get("namespace"))
        return updated

    def _parents(self, snapshots: list[Obj]) -> list[Obj]:
        out = []
        for snap in snapshots:
            parent = self.bindings.lister.get(f"{snap.get('namespace')}/{snap.get('name')}")
            if parent is not None:
                out.append(parent)
        return out

    async def _attach(self, parent: Obj, dependency: Obj) -> None:
        desired = build_attached_binding(parent, dependency)
        md = desired["metadata"]
        existing = self.bindings.lister.get(f"{md['namespace']}/{md['name']}")
        if existing is None:
            desired["metadata"]["labels"][RB_ID_LABEL] = str(uuid.uuid4())
            try:
                await self.client.create(RESOURCE_BINDINGS, desired, md["namespace"])
                logger.info("%s: attached %s/%s to %s", self.NAME, md["namespace"], md["name"], key_of(parent))
                return
            except AlreadyExists:
                existing = await self.client.get(RESOURCE_BINDINGS, md["name"], md["namespace"])
        owner = next((r for r in (existing.get("metadata") or {}).get("ownerReferences") or [] if r.get("controller")),
                     None)
        if owner is not None and owner.get("uid") != (dependency.get("metadata") or {}).get("uid"):
            raise RuntimeError(f"ResourceBinding {md['name']} belongs to an older {owner.get('kind')}; "
                               "waiting for garbage collection")
        merged = copy.deepcopy(existing)
        mspec = merged.setdefault("spec", {})
        mspec["requiredBy"] = merge_snapshots(mspec.get("requiredBy") or [], desired["spec"]["requiredBy"])
        if mspec.get("placement") is None:  # made by us, not claimed by a policy: strategy follows the parents
            resolution, preserve = effective_strategy(self._parents(mspec["requiredBy"]) or [parent])
            mspec["conflictResolution"] = resolution
            mspec["preserveResourcesOnDeletion"] = preserve
        mspec["resource"] = desired["spec"]["resource"]
        mmd = merged.setdefault("metadata", {})
        mmd["labels"] = {**(mmd.get("labels") or {}), **md["labels"]}
        if merged != existing:
            await self.client.replace(RESOURCE_BINDINGS, merged, md["namespace"])

    async def _detach(self, parent: Mapping[str, Any], attached: list[Obj]) -> None:
        """``removeScheduleResultFromAttachedBindings``: the parent leaves each binding's requiredBy."""
        pmd = parent.get("metadata") or {}
        label = depended_by_label(str(pmd.get("namespace") or ""), str(pmd.get("name")))
        for binding in attached:
            merged = copy.deepcopy(binding)
            mmd, mspec = merged.setdefault("metadata", {}), merged.setdefault("spec", {})
            (mmd.get("labels") or {}).pop(label, None)
            remaining = [s for s in mspec.get("requiredBy") or []
                         if not (s.get("namespace") == pmd.get("namespace") and s.get("name") == pmd.get("name"))]
            mspec["requiredBy"] = remaining
            if mspec.get("placement") is None:
                if not remaining:
                    mspec.pop("conflictResolution", None)
                    mspec.pop("preserveResourcesOnDeletion", None)
                else:
                    resolution, preserve = effective_strategy(self._parents(remaining))
                    mspec["conflictResolution"], mspec["preserveResourcesOnDeletion"] = resolution, preserve
            if merged != binding:
                try:
                    await self.client.replace(RESOURCE_BINDINGS, merged, mmd.get("namespace"))
                except NotFound:
                    pass
