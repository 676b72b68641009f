"""Binding controller: turn a scheduled (Cluster)ResourceBinding into one Work per target cluster.

Karmada's ``pkg/controllers/binding``. For every cluster in ``spec.clusters`` (and the
clusters of the bindings listed in ``spec.requiredBy``, for dependencies), the template
is copied, its replica count set to that cluster's share (``ReviseReplica``: the
Deployment/ReplicaSet/StatefulSet ``spec.replicas``, a Job's ``parallelism``, and a Job's
``completions`` divided by the same weights), the Override policies for that cluster
applied last, and the result — cleaned of what the federation's API server put there
(uid, resourceVersion, status...) and labelled back to its binding — written as the only
manifest of Work ``<name>-<hash>`` in namespace ``karmada-es-<cluster>``. Works of
clusters no longer targeted are deleted; a binding being deleted first deletes all its
Works, then lets go of its ``karmada.io/binding-controller`` finalizer.

Names, labels and annotations are Karmada's, so tools reading Works (``karmadactl``,
dashboards) and the execution controller find what they expect.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from atoll.api.errors import AlreadyExists, Conflict, NotFound
from atoll.client import Client, Resource
from atoll.federation.detector import CRB_FINALIZER, CRB_ID_LABEL, RB_FINALIZER, RB_ID_LABEL
from atoll.federation.kinds import (
    CLUSTER_OVERRIDE_POLICIES,
    CLUSTER_RESOURCE_BINDINGS,
    CLUSTERS,
    OVERRIDE_POLICIES,
    RESOURCE_BINDINGS,
    WORK_V1ALPHA1,
    WORKS,
    cluster_of_execution_namespace,
    execution_namespace,
)
from atoll.federation.overrides import (
    APPLIED_CLUSTER_OVERRIDES,
    APPLIED_OVERRIDES,
    OverrideError,
    OverrideResult,
    apply_overrides,
    matches_selectors,
)
from atoll.federation.scheduler.webster import spread_by_target_clusters
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.events import EventRecorder
from atoll.machinery.informing import Informer, key_of

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
NAMESPACES = Resource("v1", "namespaces", False, "Namespace")

EXECUTION_FINALIZER = "karmada.io/execution-controller"
WORK_ID_LABEL = "work.karmada.io/permanent-id"
WORK_NAME_ANNOTATION = "work.karmada.io/name"
WORK_NAMESPACE_ANNOTATION = "work.karmada.io/namespace"
RB_NAMESPACE_ANNOTATION = "resourcebinding.karmada.io/namespace"
RB_NAME_ANNOTATION = "resourcebinding.karmada.io/name"
CRB_NAME_ANNOTATION = "clusterresourcebinding.karmada.io/name"
TEMPLATE_GENERATION_ANNOTATION = "resourcetemplate.karmada.io/generation"
TEMPLATE_UID_ANNOTATION = "resourcetemplate.karmada.io/uid"
MANAGED_LABELS_ANNOTATION = "resourcetemplate.karmada.io/managed-labels"
MANAGED_ANNOTATIONS_ANNOTATION = "resourcetemplate.karmada.io/managed-annotations"
CONFLICT_RESOLUTION_ANNOTATION = "work.karmada.io/conflict-resolution"
MANAGED_BY_LABEL = "karmada.io/managed"

DIRECT_PURGE_RECHECK = 5.0
"""Seconds before looking again whether Works of a Directly-purged cluster are gone."""
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
_DEPLOYMENT_REVISION_ANNOTATIONS = ("deployment.kubernetes.io/revision", "deployment.kubernetes.io/revision-history")


# -- pure helpers ---------------------------------------------------------------------------


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """``rand.SafeEncodeString``: each byte mapped onto letters and digits that spell no words."""
    return "".join(_ALPHANUMS[b % len(_ALPHANUMS)] for b in text.encode())


def work_name(kind: str, name: str, namespace: str) -> str:
    """``names.GenerateWorkName``: ``<name>-<hash of namespace, name and kind>`` (lower case)."""
    name = name.replace(":", ".").lower()
    full = f"{name}-{kind}".lower() if not namespace else f"{namespace}-{name}-{kind}".lower()
    return f"{name}-{safe_encode(str(fnv32a(full.encode())))}"


def prune(manifest: Obj) -> Obj:
    """``prune.RemoveIrrelevantFields`` (+ a Job's TTL): what the federation's API server set, or a member must.

    Fields a member allocates or a controller there fills (a Service's clusterIP, a Job's
    generated selector, a Deployment's revision, a token Secret's data...) must not be
    carried over.
    """
    out = copy.deepcopy(manifest)
    md = out.setdefault("metadata", {})
    for key in ("creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation",
                "managedFields", "resourceVersion", "selfLink", "uid", "ownerReferences", "finalizers"):
        md.pop(key, None)
    out.pop("status", None)
    kind, spec = out.get("kind"), out.get("spec")
    annotations = md.get("annotations")
    if kind == "Deployment" and isinstance(annotations, dict):
        for key in _DEPLOYMENT_REVISION_ANNOTATIONS:
            annotations.pop(key, None)
    elif kind == "Job" and isinstance(spec, dict):
        spec.pop("ttlSecondsAfterFinished", None)
        if not spec.get("manualSelector"):
            match = (spec.get("selector") or {}).get("matchLabels")
            if isinstance(match, dict):
                for key in ("controller-uid", "batch.kubernetes.io/controller-uid"):
                    match.pop(key, None)
            labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
            if isinstance(labels, dict):
                for key in ("controller-uid", "job-name", "batch.kubernetes.io/controller-uid",
                            "batch.kubernetes.io/job-name"):
                    labels.pop(key, None)
    elif kind == "Service" and isinstance(spec, dict):
        if "clusterIP" in spec and spec.get("clusterIP") != "None":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
    elif kind == "ServiceAccount" and isinstance(out.get("secrets"), list):
        prefix = f"{md.get('name')}-token-"
        out["secrets"] = [s for s in out["secrets"] if not str((s or {}).get("name", "")).startswith(prefix)]
    elif kind == "Secret" and out.get("type") == "kubernetes.io/service-account-token":
        if isinstance(annotations, dict):
            annotations.pop("kubernetes.io/service-account.uid", None)
        out["data"] = None
    elif kind == "PersistentVolumeClaim" and isinstance(annotations, dict):
        if annotations.get("volume.kubernetes.io/selected-node"):
            annotations.pop("volume.kubernetes.io/selected-node", None)
    return out


def replica_field(manifest: Mapping[str, Any]) -> str | None:
    """The field ``ReviseReplica`` sets for this kind (None: the kind has no replicas to revise)."""
    api_version, kind = manifest.get("apiVersion"), manifest.get("kind")
    if api_version == "apps/v1" and kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        return "replicas"
    if api_version == "batch/v1" and kind == "Job":
        return "parallelism"
    return None


def revise_replicas(manifest: Obj, replicas: int) -> Obj:
    """Set the cluster's share (``helper.ApplyReplica``: only a field the template has is set)."""
    out = copy.deepcopy(manifest)
    field = replica_field(out)
    spec = out.get("spec")
    if field is not None and isinstance(spec, dict) and field in spec and spec[field] is not None:
        spec[field] = int(replicas)
    return out


def target_clusters(spec: Mapping[str, Any]) -> list[Obj]:
    """``mergeTargetClusters``: the scheduled clusters, then those the requiring bindings run on."""
    out = [dict(c) for c in spec.get("clusters") or []]
    names = {c.get("name") for c in out}
    for snapshot in spec.get("requiredBy") or []:
        for cluster in snapshot.get("clusters") or []:
            if cluster.get("name") not in names:
                names.add(cluster.get("name"))
                out.append(dict(cluster))
    return out


def expected_clusters(spec: Mapping[str, Any]) -> set[str]:
    """``ObtainBindingSpecExistingClusters``: clusters whose Works must stay (gracefully evicted ones too)."""
    names = {str(c.get("name")) for c in target_clusters(spec)}
    for task in spec.get("gracefulEvictionTasks") or []:
        if task.get("purgeMode") != "Directly" and task.get("fromCluster"):
            names.add(str(task["fromCluster"]))
    return names


def directly_purged_clusters(spec: Mapping[str, Any]) -> set[str]:
    """Clusters being evicted with ``purgeMode: Directly`` (``ObtainClustersWithPurgeModeDirectly``)."""
    return {str(t["fromCluster"]) for t in spec.get("gracefulEvictionTasks") or []
            if t.get("purgeMode") == "Directly" and t.get("fromCluster")}


def is_workload(spec: Mapping[str, Any]) -> bool:
    return int(spec.get("replicas") or 0) > 0 or spec.get("replicaRequirements") is not None or bool(
        spec.get("components"))


def is_divided(placement: Mapping[str, Any] | None) -> bool:
    """``ReplicaSchedulingType()``: Divided only when said so (no strategy means Duplicated)."""
    strategy = (placement or {}).get("replicaScheduling") or {}
    return bool(strategy) and strategy.get("replicaSchedulingType") == "Divided"


def job_completions(template: Mapping[str, Any], spec: Mapping[str, Any], clusters: list[Obj]) -> dict[str, int]:
    """A divided Job's ``completions`` spread with each cluster's parallelism share as its weight."""
    if template.get("kind") != "Job" or int(spec.get("replicas") or 0) <= 0 or not is_divided(spec.get("placement")):
        return {}
    completions = (template.get("spec") or {}).get("completions")
    if completions is None:
        return {}
    uid = str((template.get("metadata") or {}).get("uid") or "")
    spread = spread_by_target_clusters(int(completions), clusters, None, uid)
    return {str(c["name"]): int(c["replicas"]) for c in spread}


def suspend_dispatching(suspension: Mapping[str, Any] | None, cluster: str) -> bool:
    if not suspension:
        return False
    if suspension.get("dispatching"):
        return True
    return cluster in ((suspension.get("dispatchingOnClusters") or {}).get("clusterNames") or [])


def conflict_resolution(template: Mapping[str, Any], binding_policy: str | None) -> str:
    """``mergeConflictResolution``: the template's own annotation wins, else the binding's policy."""
    own = ((template.get("metadata") or {}).get("annotations") or {}).get(CONFLICT_RESOLUTION_ANNOTATION)
    if own in ("overwrite", "abort"):
        return str(own)
    return "overwrite" if binding_policy == "Overwrite" else "abort"


def _merge(md: Obj, key: str, values: Mapping[str, str]) -> None:
    md[key] = {**(md.get(key) or {}), **values}


def build_work(binding: Mapping[str, Any], template: Mapping[str, Any], target: Mapping[str, Any], *,
               cluster: Mapping[str, Any], override_policies: list[Obj], cluster_override_policies: list[Obj],
               completions: Mapping[str, int] | None = None, work_id: str = "") -> Obj:
    """The Work for one target cluster, as ``ensureWork`` + ``CreateOrUpdateWork`` build it.

    ``work_id`` is the Work's permanent id (Karmada's webhook sets it once, at creation).
    Raises ``OverrideError`` when an override policy cannot be applied.
    """
    bmd, spec = binding.get("metadata") or {}, binding.get("spec") or {}
    namespaced = binding.get("kind") != "ClusterResourceBinding"
    cluster_name = str(target.get("name"))
    workload = copy.deepcopy(dict(template))
    if is_workload(spec):
        workload = revise_replicas(workload, int(target.get("replicas") or 0))
    if completions and cluster_name in completions:
        job_spec = workload.get("spec")
        if isinstance(job_spec, dict) and job_spec.get("completions") is not None:
            job_spec["completions"] = completions[cluster_name]
    result: OverrideResult = apply_overrides(workload, cluster, cluster_policies=cluster_override_policies,
                                             policies=override_policies)
    workload = result.manifest
    wmd = workload.setdefault("metadata", {})
    name = work_name(str(workload.get("kind")), str(wmd.get("name")), str(wmd.get("namespace") or ""))
    work_namespace = execution_namespace(cluster_name)
    # mergeLabel / mergeAnnotations: the manifest and the Work both point back at the binding.
    id_label = RB_ID_LABEL if namespaced else CRB_ID_LABEL
    binding_id = str((bmd.get("labels") or {}).get(id_label) or "")
    work_labels = {id_label: binding_id}
    _merge(wmd, "labels", work_labels)
    if int(wmd.get("generation") or 0) > 0:
        _merge(wmd, "annotations", {TEMPLATE_GENERATION_ANNOTATION: str(wmd["generation"])})
    if namespaced:
        work_annotations = {RB_NAMESPACE_ANNOTATION: str(bmd.get("namespace") or ""),
                            RB_NAME_ANNOTATION: str(bmd.get("name"))}
    else:
        work_annotations = {CRB_NAME_ANNOTATION: str(bmd.get("name"))}
    _merge(wmd, "annotations", work_annotations)
    resolution = conflict_resolution(template, spec.get("conflictResolution"))
    work_annotations[CONFLICT_RESOLUTION_ANNOTATION] = resolution
    work_annotations.update(result.annotations())
    # CreateOrUpdateWork: managed-by label, pointers to the Work, then pruning.
    _merge(wmd, "labels", {MANAGED_BY_LABEL: "true"})
    _merge(wmd, "annotations", {TEMPLATE_UID_ANNOTATION: str(wmd.get("uid") or ""), WORK_NAME_ANNOTATION: name,
                                WORK_NAMESPACE_ANNOTATION: work_namespace,
                                CONFLICT_RESOLUTION_ANNOTATION: resolution})
    workload = prune(workload)
    wmd = workload["metadata"]
    if work_id:
        work_labels[WORK_ID_LABEL] = work_id
        _merge(wmd, "labels", {WORK_ID_LABEL: work_id})
    # RecordManagedAnnotations / RecordManagedLabels: what the member may treat as ours.
    annotations = wmd.setdefault("annotations", {})
    managed = sorted({*annotations.keys(), MANAGED_ANNOTATIONS_ANNOTATION, MANAGED_LABELS_ANNOTATION})
    annotations[MANAGED_ANNOTATIONS_ANNOTATION] = ",".join(managed)
    annotations[MANAGED_LABELS_ANNOTATION] = ",".join(sorted((wmd.get("labels") or {}).keys()))
    return {"apiVersion": WORK_V1ALPHA1, "kind": "Work",
            "metadata": {"name": name, "namespace": work_namespace, "labels": work_labels,
                         "annotations": work_annotations, "finalizers": [EXECUTION_FINALIZER]},
            "spec": {"workload": {"manifests": [workload]},
                     "suspendDispatching": suspend_dispatching(spec.get("suspension"), cluster_name),
                     "preserveResourcesOnDeletion": bool(spec.get("preserveResourcesOnDeletion"))}}


def merge_work(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> Obj:
    """The stored Work updated to ``desired``: labels/annotations merged, finalizers added, spec replaced."""
    out = copy.deepcopy(dict(existing))
    md, dmd = out.setdefault("metadata", {}), desired.get("metadata") or {}
    md["labels"] = {**(md.get("labels") or {}), **(dmd.get("labels") or {})}
    md["annotations"] = {**(md.get("annotations") or {}), **(dmd.get("annotations") or {})}
    finalizers = list(md.get("finalizers") or [])
    md["finalizers"] = finalizers + [f for f in dmd.get("finalizers") or [] if f not in finalizers]
    out["spec"] = copy.deepcopy(desired.get("spec") or {})
    return out


# -- the controller -------------------------------------------------------------------------


class BindingController(Controller):
    """Keeps the Works of ResourceBindings (or, with ``cluster_scoped=True``, ClusterResourceBindings).

    Wire one of each: ``BindingController(client)`` and ``ClusterResourceBindingController(client)``.
    """

    NAME: ClassVar[str] = "binding-controller"

    def __init__(self, client: Client, *, cluster_scoped: bool = False) -> None:
        super().__init__()
        self.client = client
        self.cluster_scoped = cluster_scoped
        self.recorder = EventRecorder(client, self.NAME)
        self.binding_resource = CLUSTER_RESOURCE_BINDINGS if cluster_scoped else RESOURCE_BINDINGS
        self.finalizer = CRB_FINALIZER if cluster_scoped else RB_FINALIZER
        self.id_label = CRB_ID_LABEL if cluster_scoped else RB_ID_LABEL
        self.bindings = Informer(client, self.binding_resource)
        self.bindings.add_handler(self._on_binding)
        self.works = Informer(client, WORKS)
        self.works.add_handler(self._on_work)
        self.clusters = Informer(client, CLUSTERS)
        self.clusters.add_handler(self._on_cluster)
        self.override_policies = self.watch(Informer(client, OVERRIDE_POLICIES), key_for=self._bindings_for_policy)
        self.cluster_override_policies = self.watch(Informer(client, CLUSTER_OVERRIDE_POLICIES),
                                                    key_for=self._bindings_for_policy)
        self.informers += [self.bindings, self.works, self.clusters]
        self._namespaces: set[str] = set()

    # -- event mapping ----------------------------------------------------------------------
    def _on_binding(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """Like Karmada's GenerationChangedPredicate, plus deletion and label changes (the binding id)."""
        obj = new if new is not None else old
        if obj is None:
            return
        if event == "MODIFIED" and old is not None and new is not None:
            omd, nmd = old.get("metadata") or {}, new.get("metadata") or {}
            if (omd.get("generation") == nmd.get("generation") and old.get("spec") == new.get("spec")
                    and omd.get("deletionTimestamp") == nmd.get("deletionTimestamp")
                    and omd.get("labels") == nmd.get("labels")):
                return
        self.queue.add(key_of(obj))

    def _binding_key_of_work(self, work: Mapping[str, Any]) -> str | None:
        annotations = (work.get("metadata") or {}).get("annotations") or {}
        if self.cluster_scoped:
            name = annotations.get(CRB_NAME_ANNOTATION)
            return str(name) if name else None
        ns, name = annotations.get(RB_NAMESPACE_ANNOTATION), annotations.get(RB_NAME_ANNOTATION)
        return f"{ns}/{name}" if ns and name else None

    def _on_work(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """A Work changed by someone else (or deleted) is put back: only spec and deletion matter."""
        obj = new if new is not None else old
        if obj is None:
            return
        if event == "MODIFIED" and old is not None and new is not None and old.get("spec") == new.get("spec") \
                and (old.get("metadata") or {}).get("deletionTimestamp") == (new.get("metadata") or {}).get(
                    "deletionTimestamp"):
            return
        key = self._binding_key_of_work(obj)
        if key is not None:
            self.queue.add(key)

    def _on_cluster(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """Only what override rules look at (labels and spec) matters, not the status heartbeats."""
        obj = new if new is not None else old
        if obj is None:
            return
        if event == "MODIFIED" and old is not None and new is not None and old.get("spec") == new.get("spec") \
                and (old.get("metadata") or {}).get("labels") == (new.get("metadata") or {}).get("labels"):
            return
        for key in self._bindings_on_cluster(obj):
            self.queue.add(key)

    def _bindings_on_cluster(self, cluster: Obj) -> list[str]:
        name = (cluster.get("metadata") or {}).get("name")
        return [key_of(b) for b in self.bindings.lister.list()
                if any(c.get("name") == name for c in target_clusters(b.get("spec") or {}))]

    def _bindings_for_policy(self, policy: Obj) -> list[str]:
        """Bindings whose template an override policy may select (``newOverridePolicyFunc``).

        The templates are not cached here, so a label selector is taken to match (the
        reconcile applies the exact rules); a name or kind that differs does not.
        """
        md = policy.get("metadata") or {}
        namespace = md.get("namespace")
        if namespace and self.cluster_scoped:
            return []
        selectors = (policy.get("spec") or {}).get("resourceSelectors") or []
        out = []
        for binding in self.bindings.lister.list(namespace or None):
            ref = (binding.get("spec") or {}).get("resource") or {}
            if not selectors:
                out.append(key_of(binding))
                continue
            stand_in = {"apiVersion": ref.get("apiVersion"), "kind": ref.get("kind"),
                        "metadata": {"name": ref.get("name"), "namespace": ref.get("namespace", "")}}
            for s in selectors:
                loose = {k: v for k, v in s.items() if k != "labelSelector"}
                if matches_selectors(stand_in, [loose]):
                    out.append(key_of(binding))
                    break
        return out

    # -- reconcile --------------------------------------------------------------------------
    def _works_of(self, binding: Mapping[str, Any]) -> list[Obj]:
        """Works labelled with this binding's permanent id (``GetWorksByBindingID``)."""
        bid = ((binding.get("metadata") or {}).get("labels") or {}).get(self.id_label)
        if not bid:
            return []
        return [w for w in self.works.lister.list() if ((w.get("metadata") or {}).get("labels") or {}).get(
            self.id_label) == bid]

    async def _delete_works(self, works: list[Obj]) -> None:
        for work in works:
            md = work["metadata"]
            if md.get("deletionTimestamp"):
                continue
            try:
                await self.client.delete(WORKS, md["name"], md["namespace"])
                logger.info("%s: deleted Work %s/%s", self.NAME, md["namespace"], md["name"])
            except NotFound:
                pass

    async def reconcile(self, key: str) -> Result:
        binding = self.bindings.lister.get(key)
        if binding is None:
            return Result()
        md = binding.get("metadata") or {}
        if md.get("deletionTimestamp"):
            await self._delete_works(self._works_of(binding))
            if self.finalizer in (md.get("finalizers") or []):
                try:
                    await self.client.patch(self.binding_resource, md["name"], {"metadata": {
                        "finalizers": [f for f in md.get("finalizers") or [] if f != self.finalizer],
                        "resourceVersion": md.get("resourceVersion")}}, md.get("namespace"))
                except NotFound:
                    pass
            return Result()
        spec = binding.get("spec") or {}
        expected = expected_clusters(spec)
        orphans = [w for w in self._works_of(binding)
                   if cluster_of_execution_namespace(str(w["metadata"].get("namespace"))) not in expected]
        await self._delete_works(orphans)
        purging = directly_purged_clusters(spec)
        if purging and any(cluster_of_execution_namespace(str(w["metadata"].get("namespace"))) in purging
                           for w in self._works_of(binding)):
            # checkDirectPurgeOrphanWorks: an eviction with purgeMode Directly must be gone from the
            # old cluster (its Work deleted, finalizer and all) before the new placement is written.
            return Result(requeue_after=DIRECT_PURGE_RECHECK)
        ref = spec.get("resource") or {}
        try:
            res = await self.client.resource_for(str(ref.get("apiVersion")), str(ref.get("kind")))
            template = await self.client.get(res, str(ref.get("name")), ref.get("namespace") or None)
        except NotFound:
            return Result()  # the template is gone; the garbage collector takes the binding
        try:
            changed = await self._ensure_works(binding, template)
        except Exception as exc:
            await self.recorder.record(binding, "Warning", "SyncWorkFailed", str(exc))
            await self.recorder.record(template, "Warning", "SyncWorkFailed", str(exc))
            raise
        if changed:
            what = f"{md.get('namespace')}/{md.get('name')}" if md.get("namespace") else str(md.get("name"))
            message = f"Sync work of {binding.get('kind')}({what}) successful."
            await self.recorder.record(binding, "Normal", "SyncWorkSucceed", message)
            await self.recorder.record(template, "Normal", "SyncWorkSucceed", message)
        return Result()

    async def _ensure_namespace(self, name: str) -> None:
        if name in self._namespaces:
            return
        try:
            await self.client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        except AlreadyExists:
            pass
        self._namespaces.add(name)

    async def _ensure_works(self, binding: Obj, template: Obj) -> bool:
        """Create or update the Work of every target cluster; True when anything was written."""
        spec = binding.get("spec") or {}
        targets = target_clusters(spec)
        completions = job_completions(template, spec, targets)
        namespace = (template.get("metadata") or {}).get("namespace")
        override_policies = self.override_policies.lister.list(namespace) if namespace else []
        cluster_override_policies = self.cluster_override_policies.lister.list()
        changed = False
        errors: list[str] = []
        for target in targets:
            cluster = self.clusters.lister.get(str(target.get("name")))
            if cluster is None:
                errors.append(f"cluster {target.get('name')} not found")
                continue
            try:
                desired = build_work(binding, template, target, cluster=cluster, override_policies=override_policies,
                                     cluster_override_policies=cluster_override_policies, completions=completions)
            except OverrideError as exc:
                await self.recorder.record(template, "Warning", "ApplyOverridePolicyFailed",
                                           f"Apply override policies for cluster({target.get('name')}) failed: {exc}")
                errors.append(f"cluster {target.get('name')}: {exc}")
                continue
            try:
                written = await self._write_work(desired)
            except Conflict:
                raise
            except Exception as exc:
                errors.append(f"cluster {target.get('name')}: {exc}")
                continue
            changed |= written
            if written:
                await self._record_overrides(template, desired, str(target.get("name")))
        if errors:
            raise RuntimeError("; ".join(errors))
        return changed

    async def _record_overrides(self, template: Obj, work: Obj, cluster: str) -> None:
        """``ApplyOverridePolicySucceed`` on the template for each policy that changed this cluster's manifest."""
        annotations = work["metadata"].get("annotations") or {}
        namespace = (template.get("metadata") or {}).get("namespace")
        for key, scope in ((APPLIED_CLUSTER_OVERRIDES, "cluster override policy"), (APPLIED_OVERRIDES, "override policy")):
            for item in orjson.loads(annotations.get(key) or "[]"):
                name = item.get("policyName")
                what = f"{namespace}/{name}" if scope == "override policy" and namespace else name
                await self.recorder.record(template, "Normal", "ApplyOverridePolicySucceed",
                                           f"Apply {scope}({what}) for cluster({cluster}) succeed.")

    async def _write_work(self, desired: Obj) -> bool:
        md = desired["metadata"]
        existing = self.works.lister.get(f"{md['namespace']}/{md['name']}")
        manifest_md = desired["spec"]["workload"]["manifests"][0]["metadata"]
        if existing is None:
            work_id = str(uuid.uuid4())
            self._set_work_id(desired, work_id)
            await self._ensure_namespace(md["namespace"])
            try:
                await self.client.create(WORKS, desired, md["namespace"])
                logger.info("%s: created Work %s/%s", self.NAME, md["namespace"], md["name"])
                return True
            except AlreadyExists:
                existing = await self.client.get(WORKS, md["name"], md["namespace"])
        if (existing.get("metadata") or {}).get("deletionTimestamp"):
            raise RuntimeError(f"work {md['namespace']}/{md['name']} is being deleted")
        work_id = ((existing.get("metadata") or {}).get("labels") or {}).get(WORK_ID_LABEL) or str(uuid.uuid4())
        if manifest_md.get("labels", {}).get(WORK_ID_LABEL) != work_id:
            self._set_work_id(desired, str(work_id))
        merged = merge_work(existing, desired)
        if merged == existing:
            return False
        await self.client.replace(WORKS, merged, md["namespace"])
        logger.info("%s: updated Work %s/%s", self.NAME, md["namespace"], md["name"])
        return True

    @staticmethod
    def _set_work_id(work: Obj, work_id: str) -> None:
        """The Work's permanent id on the Work and its manifest (Karmada's webhook + SetLabelsAndAnnotationsForWorkload)."""
        work["metadata"]["labels"][WORK_ID_LABEL] = work_id
        for manifest in work["spec"]["workload"]["manifests"]:
            mmd = manifest.setdefault("metadata", {})
            mmd.setdefault("labels", {})[WORK_ID_LABEL] = work_id
            annotations = mmd.setdefault("annotations", {})
            annotations[MANAGED_LABELS_ANNOTATION] = ",".join(sorted(mmd["labels"].keys()))


class ClusterResourceBindingController(BindingController):
    """The same for ClusterResourceBindings (Karmada's cluster-resource-binding-controller)."""

    NAME: ClassVar[str] = "cluster-resource-binding-controller"

    def __init__(self, client: Client) -> None:
        super().__init__(client, cluster_scoped=True)
