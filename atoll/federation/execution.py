"""Execution controller: apply each Work's manifests to its member cluster, remove them when it goes.

Karmada's ``pkg/controllers/execution`` and ``pkg/util/objectwatcher``:

* a Work in ``karmada-es-<cluster>`` is applied to that member: each manifest is created,
  or updated if the member copy is managed by Karmada (label ``karmada.io/managed:
  "true"``). An existing object Karmada does not manage is a conflict, resolved by the
  ``work.karmada.io/conflict-resolution`` annotation (on the manifest or the Work):
  ``abort`` (the default) leaves it alone and reports ``Applied=False``; ``overwrite``
  takes it over;
* the member copy carries the managed labels and annotations (``karmada.io/managed``,
  ``work.karmada.io/permanent-id``, ``work.karmada.io/name`` / ``namespace``) by which the
  work status controller finds its way back to the Work;
* on update, what the member owns is kept (:func:`retain`): resourceVersion, finalizers,
  ownerReferences, labels and annotations added there, a Service's clusterIP(s) and node
  ports, a Pod's nodeName, serviceAccountName and volumes, a PVC's volumeName, a Job's
  generated selector, a ServiceAccount's secrets, replicas of a workload an HPA scales
  (``resourcetemplate.karmada.io/retain-replicas``);
* ``spec.suspendDispatching`` stops applying (the ``Dispatching`` condition says so);
* a deleted Work (finalizer ``karmada.io/execution-controller``) deletes its objects from
  the member — or, with ``spec.preserveResourcesOnDeletion``, only strips the managed
  labels and annotations so that the member keeps them as its own;
* a cluster that is not Ready is retried after ``not_ready_retry`` seconds and again as
  soon as it becomes Ready, never in a busy loop;
* the ``Applied`` condition (``AppliedSuccessful`` / ``AppliedFailed``) and Events
  (``SyncSucceed`` / ``SyncFailed``) tell the outcome.

Atoll extension: a manifest whose namespace does not exist in the member gets it created
(Karmada propagates namespaces with a separate controller that Atoll does not have).
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any, ClassVar

from atoll.api.errors import AlreadyExists, APIError, Conflict, NotFound
from atoll.client import Client, Resource
from atoll.federation import kinds
from atoll.federation.clusters.clients import MemberClients, MemberConfigError
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.events import EventRecorder
from atoll.machinery.informing import Informer, key_of, split_key

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
NAMESPACES = Resource("v1", "namespaces", False, "Namespace")

MANAGED_LABEL = "karmada.io/managed"
MANAGED_VALUE = "true"
WORK_PERMANENT_ID_LABEL = "work.karmada.io/permanent-id"
RB_PERMANENT_ID_LABEL = "resourcebinding.karmada.io/permanent-id"
CRB_PERMANENT_ID_LABEL = "clusterresourcebinding.karmada.io/permanent-id"
WORK_NAME_ANNOTATION = "work.karmada.io/name"
WORK_NAMESPACE_ANNOTATION = "work.karmada.io/namespace"
CONFLICT_ANNOTATION = "work.karmada.io/conflict-resolution"
CONFLICT_OVERWRITE = "overwrite"
CONFLICT_ABORT = "abort"
RETAIN_REPLICAS_LABEL = "resourcetemplate.karmada.io/retain-replicas"
MANAGED_LABELS_ANNOTATION = "resourcetemplate.karmada.io/managed-labels"
MANAGED_ANNOTATIONS_ANNOTATION = "resourcetemplate.karmada.io/managed-annotations"
TEMPLATE_UID_ANNOTATION = "resourcetemplate.karmada.io/uid"
TEMPLATE_GENERATION_ANNOTATION = "resourcetemplate.karmada.io/generation"
EXECUTION_FINALIZER = "karmada.io/execution-controller"

MANAGED_RESOURCE_LABELS = (RB_PERMANENT_ID_LABEL, CRB_PERMANENT_ID_LABEL, WORK_PERMANENT_ID_LABEL, MANAGED_LABEL)
MANAGED_RESOURCE_ANNOTATIONS = (
    MANAGED_ANNOTATIONS_ANNOTATION, MANAGED_LABELS_ANNOTATION, "resourcebinding.karmada.io/namespace",
    "resourcebinding.karmada.io/name", "clusterresourcebinding.karmada.io/name", TEMPLATE_UID_ANNOTATION,
    TEMPLATE_GENERATION_ANNOTATION, WORK_NAME_ANNOTATION, WORK_NAMESPACE_ANNOTATION)
POLICY_CLAIM_PREFIXES = ("propagationpolicy.karmada.io/", "clusterpropagationpolicy.karmada.io/")
"""Claim labels/annotations of (Cluster)PropagationPolicies, removed with the managed ones on release."""

DEPLOYMENT_REVISION_ANNOTATIONS = ("deployment.kubernetes.io/revision", "deployment.kubernetes.io/revision-history")
JOB_GENERATED_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")
JOB_GENERATED_TEMPLATE_LABELS = (*JOB_GENERATED_LABELS, "job-name", "batch.kubernetes.io/job-name")


class ConflictingResource(APIError):
    """The member already has an object of that name that Karmada does not manage (conflict ``abort``)."""

    code = 409
    reason = "AlreadyExists"


# -- pure object rules ---------------------------------------------------------------------------------

def identity(obj: Obj) -> tuple[str, str, str, str]:
    """(apiVersion, kind, namespace, name) of a manifest or member object."""
    md = obj.get("metadata") or {}
    return (str(obj.get("apiVersion") or ""), str(obj.get("kind") or ""), str(md.get("namespace") or ""),
            str(md.get("name") or ""))


def describe(obj: Obj) -> str:
    _, kind, namespace, name = identity(obj)
    return f"{kind}({namespace}/{name})" if namespace else f"{kind}({name})"


def prune(obj: Obj) -> Obj:
    """Karmada's ``RemoveIrrelevantFields``: what the member's API server owns is not propagated."""
    out = copy.deepcopy(obj)
    md = out.setdefault("metadata", {})
    for field in ("creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation",
                  "managedFields", "resourceVersion", "selfLink", "uid", "ownerReferences", "finalizers"):
        md.pop(field, None)
    out.pop("status", None)
    kind = out.get("kind")
    spec = out.get("spec") if isinstance(out.get("spec"), dict) else None
    if kind == "Deployment":
        annotations = md.get("annotations") or {}
        for key in DEPLOYMENT_REVISION_ANNOTATIONS:
            annotations.pop(key, None)
    elif kind == "Job" and spec is not None:
        spec.pop("ttlSecondsAfterFinished", None)
        if not spec.get("manualSelector"):
            match = (spec.get("selector") or {}).get("matchLabels")
            if isinstance(match, dict):
                for key in JOB_GENERATED_LABELS:
                    match.pop(key, None)
            labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
            if isinstance(labels, dict):
                for key in JOB_GENERATED_TEMPLATE_LABELS:
                    labels.pop(key, None)
    elif kind == "Service" and spec is not None:
        if spec.get("clusterIP") not in (None, "None"):
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
    elif kind == "ServiceAccount":
        prefix = f"{md.get('name')}-token-"
        if isinstance(out.get("secrets"), list):
            out["secrets"] = [s for s in out["secrets"] if not str((s or {}).get("name", "")).startswith(prefix)]
    elif kind == "Secret" and out.get("type") == "kubernetes.io/service-account-token":
        (md.get("annotations") or {}).pop("kubernetes.io/service-account.uid", None)
        out.pop("data", None)
    elif kind == "PersistentVolumeClaim":
        annotations = md.get("annotations") or {}
        for key in ("pv.kubernetes.io/bind-completed", "pv.kubernetes.io/bound-by-controller",
                    "volume.kubernetes.io/selected-node", "volume.beta.kubernetes.io/storage-provisioner",
                    "volume.kubernetes.io/storage-provisioner"):
            annotations.pop(key, None)
    return out


def permanent_id(work: Obj) -> str:
    md = work.get("metadata") or {}
    return str((md.get("labels") or {}).get(WORK_PERMANENT_ID_LABEL) or md.get("uid") or "")


def desired_object(work: Obj, manifest: Obj) -> Obj:
    """What the member should hold for one manifest of a Work: pruned, with Karmada's managed metadata."""
    out = prune(manifest)
    md = out["metadata"]
    wmd = work.get("metadata") or {}
    labels = dict(md.get("labels") or {})
    labels[MANAGED_LABEL] = MANAGED_VALUE
    pid = permanent_id(work)
    if pid:
        labels[WORK_PERMANENT_ID_LABEL] = pid
    md["labels"] = labels
    annotations = dict(md.get("annotations") or {})
    annotations[WORK_NAME_ANNOTATION] = str(wmd.get("name") or "")
    annotations[WORK_NAMESPACE_ANNOTATION] = str(wmd.get("namespace") or "")
    resolution = (wmd.get("annotations") or {}).get(CONFLICT_ANNOTATION)
    if resolution and CONFLICT_ANNOTATION not in annotations:
        annotations[CONFLICT_ANNOTATION] = str(resolution)
    md["annotations"] = annotations
    return out


def is_managed(obj: Obj) -> bool:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(MANAGED_LABEL) == MANAGED_VALUE


def conflict_resolution(desired: Obj) -> str:
    value = ((desired.get("metadata") or {}).get("annotations") or {}).get(CONFLICT_ANNOTATION, "")
    return CONFLICT_OVERWRITE if str(value).lower() == CONFLICT_OVERWRITE else CONFLICT_ABORT


def may_update(desired: Obj, observed: Obj) -> bool:
    """Karmada's ``allowUpdate``: a managed member object, or an unmanaged one with conflict ``overwrite``."""
    return is_managed(observed) or conflict_resolution(desired) == CONFLICT_OVERWRITE


def _recorded_keys(observed_md: Obj, annotation: str) -> set[str]:
    return {k for k in str((observed_md.get("annotations") or {}).get(annotation) or "").split(",") if k}


def _retain_map(desired_md: Obj, observed_md: Obj, field: str, record: str) -> None:
    """Keep what the member added; drop what the template managed and no longer has."""
    desired = dict(desired_md.get(field) or {})
    deleted = _recorded_keys(observed_md, record) - set(desired)
    for key, value in (observed_md.get(field) or {}).items():
        if key in deleted or key in desired:
            continue
        desired[key] = value
    if desired:
        desired_md[field] = desired


def _retain_service(desired: Obj, observed: Obj) -> None:
    spec, seen = desired.setdefault("spec", {}), observed.get("spec") or {}
    if seen.get("healthCheckNodePort") and not spec.get("healthCheckNodePort"):
        spec["healthCheckNodePort"] = seen["healthCheckNodePort"]
    if seen.get("clusterIP") and not spec.get("clusterIP"):
        spec["clusterIP"] = seen["clusterIP"]
    if seen.get("clusterIPs") and not spec.get("clusterIPs") and spec.get("clusterIP") == seen.get("clusterIP"):
        spec["clusterIPs"] = list(seen["clusterIPs"])
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        def port_key(p: Obj) -> tuple[Any, str]:
            return (p.get("port"), str(p.get("protocol") or "TCP"))

        allocated = {port_key(p): p.get("nodePort") for p in seen.get("ports") or [] if p.get("nodePort")}
        for port in spec.get("ports") or []:
            if not port.get("nodePort") and port_key(port) in allocated:
                port["nodePort"] = allocated[port_key(port)]


def _retain_pod(desired: Obj, observed: Obj) -> None:
    spec, seen = desired.setdefault("spec", {}), observed.get("spec") or {}
    for field in ("nodeName", "serviceAccountName", "volumes"):
        if field in seen:
            spec[field] = copy.deepcopy(seen[field])
    for group in ("containers", "initContainers"):
        mounts = {c.get("name"): c.get("volumeMounts") for c in seen.get(group) or []}
        for container in spec.get(group) or []:
            if container.get("name") in mounts and mounts[container.get("name")] is not None:
                container["volumeMounts"] = copy.deepcopy(mounts[container.get("name")])


def _retain_service_account(desired: Obj, observed: Obj) -> None:
    for field in ("secrets", "imagePullSecrets"):
        merged: list[Obj] = []
        names: set[str] = set()
        for entry in [*(desired.get(field) or []), *(observed.get(field) or [])]:
            name = str((entry or {}).get("name") or "")
            if name and name not in names:
                names.add(name)
                merged.append(entry)
        if merged:
            desired[field] = merged


def _retain_job(desired: Obj, observed: Obj) -> None:
    spec, seen = desired.setdefault("spec", {}), observed.get("spec") or {}
    match = (seen.get("selector") or {}).get("matchLabels")
    if match is not None:
        spec.setdefault("selector", {})["matchLabels"] = dict(match)
    labels = ((seen.get("template") or {}).get("metadata") or {}).get("labels")
    if labels is not None:
        spec.setdefault("template", {}).setdefault("metadata", {})["labels"] = dict(labels)


def retain(desired: Obj, observed: Obj) -> Obj:
    """Karmada's ``retainClusterFields`` and the per-kind retention interpreters (a new object)."""
    out = copy.deepcopy(desired)
    md, seen_md = out.setdefault("metadata", {}), observed.get("metadata") or {}
    md["resourceVersion"] = seen_md.get("resourceVersion")
    for field in ("finalizers", "ownerReferences"):
        if seen_md.get(field):
            md[field] = copy.deepcopy(seen_md[field])
        else:
            md.pop(field, None)
    _retain_map(md, seen_md, "annotations", MANAGED_ANNOTATIONS_ANNOTATION)
    _retain_map(md, seen_md, "labels", MANAGED_LABELS_ANNOTATION)
    kind, seen_spec = out.get("kind"), observed.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "ReplicaSet") and (md.get("labels") or {}).get(
            RETAIN_REPLICAS_LABEL) == "true" and "replicas" in seen_spec:
        out.setdefault("spec", {})["replicas"] = seen_spec["replicas"]
    elif kind == "Pod":
        _retain_pod(out, observed)
    elif kind == "Service":
        _retain_service(out, observed)
    elif kind == "ServiceAccount":
        _retain_service_account(out, observed)
    elif kind == "PersistentVolumeClaim" and seen_spec.get("volumeName"):
        out.setdefault("spec", {})["volumeName"] = seen_spec["volumeName"]
    elif kind == "PersistentVolume" and "claimRef" in seen_spec:
        out.setdefault("spec", {})["claimRef"] = copy.deepcopy(seen_spec["claimRef"])
    elif kind == "Job":
        _retain_job(out, observed)
    elif kind == "Secret" and out.get("type") == "kubernetes.io/service-account-token" and "data" in observed:
        out["data"] = copy.deepcopy(observed["data"])
    return out


def contained(desired: Any, observed: Any) -> bool:
    """Whether every field of ``desired`` has that value in ``observed`` (which may hold defaults more)."""
    if isinstance(desired, dict):
        return isinstance(observed, dict) and all(
            contained(v, observed.get(k)) for k, v in desired.items() if v is not None)
    if isinstance(desired, list):
        return isinstance(observed, list) and len(desired) == len(observed) and all(
            contained(d, o) for d, o in zip(desired, observed, strict=True))
    if isinstance(desired, bool) or isinstance(observed, bool):
        return desired is observed
    if isinstance(desired, int | float) and isinstance(observed, int | float):
        return float(desired) == float(observed)
    return bool(desired == observed)


def released(observed: Obj) -> Obj:
    """A member object handed over to the member: Karmada's managed and claim metadata removed."""
    out = copy.deepcopy(observed)
    md = out.setdefault("metadata", {})
    for field, names in (("labels", MANAGED_RESOURCE_LABELS), ("annotations", MANAGED_RESOURCE_ANNOTATIONS)):
        values = {k: v for k, v in (md.get(field) or {}).items()
                  if k not in names and not k.startswith(POLICY_CLAIM_PREFIXES)}
        md[field] = values
    return out


def manifests(work: Obj) -> list[Obj]:
    return [m for m in ((work.get("spec") or {}).get("workload") or {}).get("manifests") or []
            if isinstance(m, dict)]


def cluster_ready(cluster: Obj | None) -> bool:
    return cluster is not None and any(
        c.get("type") == kinds.CLUSTER_READY and c.get("status") == "True"
        for c in (cluster.get("status") or {}).get("conditions") or [])


# -- applying ------------------------------------------------------------------------------------------

VersionKey = tuple[str, str, str, str, str]
"""(cluster, apiVersion, kind, namespace, name)."""


class Applier:
    """Karmada's ObjectWatcher: create, update and delete member objects, remembering what it wrote.

    The resourceVersion of each object last written is recorded, so that the work status
    controller can tell its own writes from someone else's (drift). Share one Applier
    between the execution and work status controllers.
    """

    def __init__(self) -> None:
        self.versions: dict[VersionKey, str] = {}

    def _key(self, cluster: str, obj: Obj) -> VersionKey:
        return (cluster, *identity(obj))

    def record(self, cluster: str, obj: Obj) -> None:
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv:
            self.versions[self._key(cluster, obj)] = str(rv)

    def recorded(self, cluster: str, obj: Obj) -> str | None:
        return self.versions.get(self._key(cluster, obj))

    def forget(self, cluster: str, obj: Obj | None = None) -> None:
        if obj is not None:
            self.versions.pop(self._key(cluster, obj), None)
            return
        for key in [k for k in self.versions if k[0] == cluster]:
            del self.versions[key]

    @staticmethod
    async def resource(member: Client, obj: Obj) -> Resource:
        """The member's REST resource for a manifest's kind (discovery, cached per member client)."""
        api_version, kind = str(obj.get("apiVersion") or ""), str(obj.get("kind") or "")
        try:
            return await member.resource_for(api_version, kind)
        except NotFound as exc:
            raise NotFound(f"the member cluster does not serve kind {kind} in {api_version}") from exc

    async def apply(self, cluster: str, member: Client, desired: Obj, *, force: bool = False,
                    attempts: int = 4) -> str:
        """Create or update one object; returns ``created``, ``updated`` or ``unchanged``.

        Raises :class:`ConflictingResource` for an unmanaged object without ``overwrite``.
        ``force`` writes even when the member copy already holds every desired field (to
        undo fields someone added there).
        """
        res = await self.resource(member, desired)
        md = desired.setdefault("metadata", {})
        if not res.namespaced:
            md.pop("namespace", None)
        elif not md.get("namespace"):
            md["namespace"] = "default"
        namespace = md.get("namespace") if res.namespaced else None
        for _ in range(attempts):
            try:
                observed = await member.get(res, md["name"], namespace)
            except NotFound:
                try:
                    created = await member.create(res, desired, namespace)
                except AlreadyExists:
                    continue
                except NotFound:
                    if not namespace:
                        raise
                    await self._ensure_namespace(member, namespace)
                    continue
                self.record(cluster, created)
                logger.info("created %s on cluster %s", describe(desired), cluster)
                return "created"
            if (observed.get("metadata") or {}).get("deletionTimestamp"):
                raise Conflict(f"{describe(desired)} is being deleted on cluster {cluster}; applying it again "
                               "once it is gone")
            if not may_update(desired, observed):
                raise ConflictingResource(
                    f"{describe(desired)} already exists in the cluster {cluster} and the {CONFLICT_ANNOTATION} "
                    "strategy value is empty, Karmada will not manage this resource")
            body = retain(desired, observed)
            if not force and contained(body, observed):
                self.record(cluster, observed)
                return "unchanged"
            try:
                updated = await member.replace(res, body, namespace)
            except Conflict:
                continue
            self.record(cluster, updated)
            if (updated.get("metadata") or {}).get("resourceVersion") == (observed.get("metadata") or {}).get(
                    "resourceVersion"):
                return "unchanged"
            logger.info("updated %s on cluster %s", describe(desired), cluster)
            return "updated"
        raise Conflict(f"{describe(desired)} kept changing on cluster {cluster} while being applied")

    @staticmethod
    async def _ensure_namespace(member: Client, namespace: str) -> None:
        try:
            await member.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": namespace}})
        except AlreadyExists:
            pass

    async def delete(self, cluster: str, member: Client, manifest: Obj) -> bool:
        """Delete a managed member object (in the background, so a Job's pods go too); ``False`` if none."""
        try:
            res = await self.resource(member, manifest)
        except NotFound:
            return False  # the member does not even serve the kind
        _, _, namespace, name = identity(manifest)
        ns = (namespace or "default") if res.namespaced else None
        try:
            observed = await member.get(res, name, ns)
        except NotFound:
            self.forget(cluster, manifest)
            return False
        if not is_managed(observed):
            logger.info("not deleting %s on cluster %s: not managed by Karmada", describe(manifest), cluster)
            return False
        try:
            await member.delete(res, name, ns, propagation_policy="Background",
                                uid=(observed.get("metadata") or {}).get("uid"))
        except NotFound:
            pass
        self.forget(cluster, manifest)
        logger.info("deleted %s on cluster %s", describe(manifest), cluster)
        return True

    async def release(self, cluster: str, member: Client, manifest: Obj, attempts: int = 4) -> None:
        """Strip the managed labels and annotations, leaving the object to the member."""
        try:
            res = await self.resource(member, manifest)
        except NotFound:
            return
        _, _, namespace, name = identity(manifest)
        ns = (namespace or "default") if res.namespaced else None
        for _ in range(attempts):
            try:
                observed = await member.get(res, name, ns)
            except NotFound:
                break
            body = released(observed)
            if body == observed:
                break
            try:
                await member.replace(res, body, ns)
                break
            except Conflict:
                continue
        self.forget(cluster, manifest)


# -- conditions -------------------------------------------------------------------------------------

def set_work_condition(conditions: Iterable[Obj] | None, new: Obj, now: str) -> list[Obj]:
    out = [dict(c) for c in conditions or []]
    for i, c in enumerate(out):
        if c.get("type") == new["type"]:
            same = c.get("status") == new["status"]
            out[i] = {**c, **new, "lastTransitionTime": (c.get("lastTransitionTime") or now) if same else now}
            return out
    out.append({**new, "lastTransitionTime": now})
    return out


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_signature(work: Obj) -> tuple[Any, ...]:
    md = work.get("metadata") or {}
    return (repr(work.get("spec")), md.get("deletionTimestamp"), tuple(md.get("finalizers") or ()),
            repr(md.get("annotations")), repr(md.get("labels")))


# -- the controller --------------------------------------------------------------------------------

class ExecutionController(Controller):
    """Applies Works to members; see the module docstring.

    Wiring: ``ExecutionController(fed_client, members)`` with a shared
    :class:`~atoll.federation.clusters.clients.MemberClients`; pass the same ``applier`` to
    :class:`~atoll.federation.workstatus.WorkStatusController` so drift is told from our
    own writes.
    """

    NAME: ClassVar[str] = "execution-controller"
    workers = 5
    """Karmada's ``--concurrent-work-syncs`` default."""

    def __init__(self, client: Client, members: MemberClients, *, applier: Applier | None = None,
                 not_ready_retry: float = 10.0, conflict_retry: float = 30.0) -> None:
        super().__init__()
        self.client = client
        self.members = members
        self.applier = applier or Applier()
        self.not_ready_retry = not_ready_retry
        self.conflict_retry = conflict_retry
        self.events = EventRecorder(client, self.NAME)
        self.works = Informer(client, kinds.WORKS)
        self.works.add_handler(self._on_work)
        self.clusters = Informer(client, kinds.CLUSTERS)
        self.clusters.add_handler(self._on_cluster)
        self.informers += [self.works, self.clusters]

    def _on_work(self, event: str, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        if obj is None or kinds.cluster_of_execution_namespace(
                str((obj.get("metadata") or {}).get("namespace") or "")) is None:
            return
        if event == "MODIFIED" and old is not None and new is not None and \
                _spec_signature(old) == _spec_signature(new):
            return  # a status write (ours or the work status controller's)
        self.queue.add(key_of(obj))

    def _on_cluster(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if new is None:
            return
        became_ready = cluster_ready(new) and not cluster_ready(old)
        deleting = bool((new.get("metadata") or {}).get("deletionTimestamp")) and not (
            old is not None and (old.get("metadata") or {}).get("deletionTimestamp"))
        if event == "ADDED" or became_ready or deleting:
            namespace = kinds.execution_namespace(str(new["metadata"]["name"]))
            for work in self.works.lister.list(namespace):
                self.queue.add(key_of(work))

    async def reconcile(self, key: str) -> Result:
        cached = self.works.lister.get(key)
        if cached is None:
            return Result()
        work = copy.deepcopy(cached)  # the cache is shared: conditions are updated on a copy
        namespace, _ = split_key(key)
        cluster_name = kinds.cluster_of_execution_namespace(namespace or "")
        if cluster_name is None:
            return Result()
        cluster = self.clusters.lister.get(cluster_name)
        md = work.get("metadata") or {}
        if md.get("deletionTimestamp"):
            return await self._finalize(work, cluster_name, cluster)
        if cluster is None:
            return Result()  # the Cluster's ADDED event brings this Work back
        if EXECUTION_FINALIZER not in (md.get("finalizers") or []):
            work = await self.client.patch(kinds.WORKS, md["name"], {"metadata": {
                "finalizers": [*(md.get("finalizers") or []), EXECUTION_FINALIZER],
                "resourceVersion": md.get("resourceVersion")}}, namespace)
        spec = work.get("spec") or {}
        suspended = bool(spec.get("suspendDispatching"))
        await self._dispatching_condition(work, suspended)
        if suspended or (cluster.get("metadata") or {}).get("deletionTimestamp"):
            return Result()
        if not cluster_ready(cluster):
            logger.debug("work %s: cluster %s not ready; retrying in %.0fs", key, cluster_name, self.not_ready_retry)
            return Result(requeue_after=self.not_ready_retry)
        try:
            member = await self.members.for_cluster(cluster)
        except MemberConfigError as exc:
            await self._applied_condition(work, False, f"Failed to apply all manifests (0/{len(manifests(work))}): "
                                                       f"{exc}")
            return Result(requeue_after=self.not_ready_retry)
        return await self._sync(work, cluster_name, member)

    async def _sync(self, work: Obj, cluster: str, member: Client) -> Result:
        errors: list[Exception] = []
        listed = manifests(work)
        for manifest in listed:
            desired = desired_object(work, manifest)
            try:
                await self.applier.apply(cluster, member, desired)
            except APIError as exc:
                errors.append(exc)
                await self.events.record(work, "Warning", "SyncFailed",
                                         f"Failed to create or update resource({describe(desired)}) in member "
                                         f"cluster({cluster}): {exc}")
        if errors:
            message = (f"Failed to apply all manifests ({len(listed) - len(errors)}/{len(listed)}): "
                       + "; ".join(str(e) for e in errors))
            await self._applied_condition(work, False, message)
            if all(isinstance(e, ConflictingResource) for e in errors):
                return Result(requeue_after=self.conflict_retry)
            transient = next((e for e in errors if not isinstance(e, ConflictingResource | NotFound)), None)
            if transient is None:  # a kind the member does not serve (yet): not worth a fast retry
                return Result(requeue_after=self.not_ready_retry)
            raise transient
        await self._applied_condition(work, True, "Manifest has been successfully applied")
        await self.events.record(work, "Normal", "SyncSucceed",
                                 f"Sync work({work['metadata']['namespace']}/{work['metadata']['name']}) to "
                                 f"cluster({cluster}) successful.")
        return Result()

    async def _finalize(self, work: Obj, cluster_name: str, cluster: Obj | None) -> Result:
        md = work["metadata"]
        if EXECUTION_FINALIZER not in (md.get("finalizers") or []):
            return Result()
        preserve = bool((work.get("spec") or {}).get("preserveResourcesOnDeletion"))
        if cluster is not None:
            if cluster_ready(cluster):
                member = await self.members.for_cluster(cluster)
                for manifest in manifests(work):
                    if preserve:
                        await self.applier.release(cluster_name, member, manifest)
                    else:
                        await self.applier.delete(cluster_name, member, manifest)
            elif not (cluster.get("metadata") or {}).get("deletionTimestamp"):
                # Not reachable and not leaving: the member objects must not be forgotten.
                return Result(requeue_after=self.not_ready_retry)
        finalizers = [f for f in md.get("finalizers") or [] if f != EXECUTION_FINALIZER]
        try:
            await self.client.patch(kinds.WORKS, md["name"], {"metadata": {
                "finalizers": finalizers or None, "resourceVersion": md.get("resourceVersion")}}, md["namespace"])
        except NotFound:
            pass
        return Result()

    async def _set_condition(self, work: Obj, new: Obj) -> None:
        status = work.get("status") or {}
        current = next((c for c in status.get("conditions") or [] if c.get("type") == new["type"]), None)
        if current is not None and all(current.get(k) == new[k] for k in ("status", "reason", "message")):
            return
        conditions = set_work_condition(status.get("conditions"), new, _now())
        md = work["metadata"]
        try:
            await self.client.patch_status(kinds.WORKS, md["name"], {"status": {"conditions": conditions}},
                                           md["namespace"])
        except NotFound:
            pass

    async def _applied_condition(self, work: Obj, ok: bool, message: str) -> None:
        await self._set_condition(work, {"type": kinds.WORK_APPLIED, "status": "True" if ok else "False",
                                         "reason": "AppliedSuccessful" if ok else "AppliedFailed",
                                         "message": message[:32000]})

    async def _dispatching_condition(self, work: Obj, suspended: bool) -> None:
        if suspended:
            new = {"type": kinds.WORK_DISPATCHING, "status": "False", "reason": "SuspendDispatching",
                   "message": "Work dispatching is in a suspended state."}
        else:
            new = {"type": kinds.WORK_DISPATCHING, "status": "True", "reason": "Dispatching",
                   "message": "Work is being dispatched to member clusters."}
        before = next((c for c in (work.get("status") or {}).get("conditions") or []
                       if c.get("type") == kinds.WORK_DISPATCHING), None)
        if before is not None and before.get("status") == new["status"]:
            return
        await self._set_condition(work, new)
        await self.events.record(work, "Normal", "WorkDispatching", new["message"])
        # The cached Work lacks the condition just written: the Applied write below merges onto it.
        work.setdefault("status", {})["conditions"] = set_work_condition(
            (work.get("status") or {}).get("conditions"), new, _now())
