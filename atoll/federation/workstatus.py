"""Work status controller: read member objects back into ``Work.status``, and undo drift.

Karmada's ``pkg/controllers/status/work_status_controller.go`` with the default resource
interpreter (``pkg/resourceinterpreter/default/native``):

* for every applied Work, an informer on the member runs for each kind its manifests hold,
  label-selected on ``karmada.io/managed=true`` (one watch per kind and member, whatever
  the number of Works);
* a change of a member object writes ``status.manifestStatuses[]`` of its Work
  (found through the ``work.karmada.io/namespace`` / ``name`` annotations): the
  ``identifier`` (ordinal in the manifests, group, version, kind, namespace, name,
  resource), the object's ``status`` as :func:`reflect_status` picks it per kind, and its
  ``health`` (``Healthy`` / ``Unhealthy`` / ``Unknown``) by :func:`interpret_health`;
* drift is corrected: a managed object someone else deleted is created again, and one
  whose spec or metadata someone else changed is written back from the Work. Our own
  writes are told apart by the resourceVersion the shared
  :class:`~atoll.federation.execution.Applier` recorded; status-only changes (the member's
  controllers at work) are not drift.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any, ClassVar

from atoll.api.errors import APIError, Conflict, NotFound
from atoll.client import Client, Resource
from atoll.federation import kinds
from atoll.federation.clusters.clients import MemberClients, MemberConfigError, MemberInformers
from atoll.federation.execution import (
    MANAGED_LABEL,
    MANAGED_VALUE,
    TEMPLATE_GENERATION_ANNOTATION,
    WORK_NAME_ANNOTATION,
    WORK_NAMESPACE_ANNOTATION,
    Applier,
    cluster_ready,
    desired_object,
    identity,
    manifests,
    prune,
)
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.events import EventRecorder
from atoll.machinery.informing import Handler, Informer, key_of, split_key

logger = logging.getLogger(__name__)

STATUS_COALESCE = 0.25
"""Seconds a member's status changes are gathered before the Work's status is written."""

Obj = dict[str, Any]
HEALTHY, UNHEALTHY, UNKNOWN = "Healthy", "Unhealthy", "Unknown"
MANAGED_SELECTOR = f"{MANAGED_LABEL}={MANAGED_VALUE}"
SEP = "|"


# -- reflecting status ------------------------------------------------------------------------------

def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _pick(status: Obj, fields: tuple[str, ...], *, keep_zero: tuple[str, ...] = ()) -> Obj:
    """The named fields, omitting empty ones as Go's ``omitempty`` does (unless in ``keep_zero``)."""
    out: Obj = {}
    for field in fields:
        value = status.get(field)
        if field in keep_zero:
            out[field] = value if value is not None else 0
        elif value not in (None, 0, "", [], {}):
            out[field] = copy.deepcopy(value)
    return out


def _federated_generation(obj: Obj) -> Obj:
    md = obj.get("metadata") or {}
    out: Obj = {}
    if _int(md.get("generation")):
        out["generation"] = _int(md.get("generation"))
    template = _int((md.get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION))
    if template:
        out["resourceTemplateGeneration"] = template
    return out


def reflect_status(obj: Obj) -> Obj | None:
    """What Karmada's default interpreter reports of a member object's ``.status`` (``None``: nothing yet)."""
    kind = obj.get("kind")
    group = str(obj.get("apiVersion") or "").rpartition("/")[0]
    status = obj.get("status")
    if kind == "Service" and group == "":
        if (obj.get("spec") or {}).get("type") != "LoadBalancer" or not isinstance(status, dict):
            return None
        return {"loadBalancer": copy.deepcopy(status.get("loadBalancer") or {})}
    if not isinstance(status, dict):
        return None
    picked: Obj | None
    if kind == "Deployment" and group == "apps":
        picked = {**_federated_generation(obj), **_pick(status, (
            "observedGeneration", "replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
            "unavailableReplicas"))}
        return picked or None
    if kind == "ReplicaSet" and group == "apps":
        picked = {**_federated_generation(obj), **_pick(status, (
            "replicas", "readyReplicas", "availableReplicas", "observedGeneration"), keep_zero=("replicas",))}
        return picked
    if kind == "StatefulSet" and group == "apps":
        return {**_federated_generation(obj), **_pick(status, (
            "observedGeneration", "replicas", "readyReplicas", "currentReplicas", "updatedReplicas",
            "availableReplicas"), keep_zero=("replicas",))}  # observedGeneration: Karmada omits it, but
        # without it the federated StatefulSet never looks caught up and `rollout status` never ends
    if kind == "DaemonSet" and group == "apps":
        return {**_federated_generation(obj), **_pick(status, (
            "currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady",
            "observedGeneration", "updatedNumberScheduled", "numberAvailable", "numberUnavailable"),
            keep_zero=("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady"))}
    if kind == "Job" and group == "batch":
        return _pick(status, ("conditions", "startTime", "completionTime", "active", "succeeded", "failed"))
    if kind == "PodDisruptionBudget" and group == "policy":
        return _pick(status, ("disruptedPods", "disruptionsAllowed", "currentHealthy", "desiredHealthy",
                              "expectedPods"),
                     keep_zero=("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"))
    if kind == "HorizontalPodAutoscaler" and group == "autoscaling":
        return _pick(status, ("currentReplicas", "desiredReplicas"), keep_zero=("desiredReplicas",))
    return copy.deepcopy(status)


# -- health ---------------------------------------------------------------------------------------------

def _generation_observed(obj: Obj) -> bool:
    md, status = obj.get("metadata") or {}, obj.get("status") or {}
    return _int(status.get("observedGeneration")) == _int(md.get("generation"))


def _workload_healthy(obj: Obj, *, updated_field: str = "updatedReplicas") -> bool:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not _generation_observed(obj):
        return False
    updated, available = _int(status.get(updated_field)), _int(status.get("availableReplicas"))
    if "replicas" in spec and updated < _int(spec.get("replicas")):
        return False
    return available >= updated


def _load_balanced(status: Obj) -> bool:
    return any(i.get("ip") or i.get("hostname") for i in (status.get("loadBalancer") or {}).get("ingress") or [])


def interpret_health(obj: Obj) -> str:
    """Karmada's ``InterpretHealth`` for built-in kinds; kinds it does not know are Healthy."""
    kind = obj.get("kind")
    group = str(obj.get("apiVersion") or "").rpartition("/")[0]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not isinstance(spec, dict) or not isinstance(status, dict):
        return UNKNOWN
    healthy: bool
    if group == "apps" and kind in ("Deployment", "StatefulSet"):
        healthy = _workload_healthy(obj)
    elif group == "apps" and kind == "ReplicaSet":
        healthy = _generation_observed(obj) and not (
            "replicas" in spec and _int(status.get("availableReplicas")) < _int(spec.get("replicas")))
    elif group == "apps" and kind == "DaemonSet":
        healthy = (_generation_observed(obj)
                   and _int(status.get("updatedNumberScheduled")) >= _int(status.get("desiredNumberScheduled"))
                   and _int(status.get("numberAvailable")) >= _int(status.get("updatedNumberScheduled")))
    elif group == "" and kind == "Service":
        healthy = spec.get("type") != "LoadBalancer" or _load_balanced(status)
    elif group == "networking.k8s.io" and kind == "Ingress":
        healthy = _load_balanced(status)
    elif group == "" and kind == "PersistentVolumeClaim":
        healthy = status.get("phase") == "Bound"
    elif group == "" and kind == "Pod":
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        healthy = status.get("phase") == "Succeeded" or (status.get("phase") == "Running" and ready)
    elif group == "policy" and kind == "PodDisruptionBudget":
        healthy = _int(status.get("currentHealthy")) >= _int(status.get("desiredHealthy"))
    else:
        return HEALTHY
    return HEALTHY if healthy else UNHEALTHY


# -- manifest statuses ------------------------------------------------------------------------------------

def manifest_index(work: Obj, obj: Obj) -> int | None:
    """The ordinal of the manifest naming ``obj`` (Karmada's ``GetManifestIndex``)."""
    api_version, kind, namespace, name = identity(obj)
    for i, manifest in enumerate(manifests(work)):
        m_api, m_kind, m_ns, m_name = identity(manifest)
        if (m_api, m_kind, m_name) == (api_version, kind, name) and (m_ns or "") in ((namespace or ""), ""):
            return i
    return None


def manifest_status(work: Obj, obj: Obj, resource: Resource) -> Obj | None:
    """One ``status.manifestStatuses`` entry for a member object (``None``: not in this Work)."""
    ordinal = manifest_index(work, obj)
    if ordinal is None:
        return None
    api_version, kind, namespace, name = identity(obj)
    group, _, version = api_version.rpartition("/")
    identifier: Obj = {"ordinal": ordinal, "group": group, "version": version, "kind": kind, "name": name,
                       "namespace": namespace, "resource": resource.plural}
    entry: Obj = {"identifier": identifier, "health": interpret_health(obj)}
    reflected = reflect_status(obj)
    if reflected is not None:
        entry["status"] = reflected
    return entry


def merge_statuses(current: list[Obj] | None, entry: Obj) -> list[Obj]:
    """Replace the entry with the same identifier (or add it), ordered by ordinal."""
    def ident(e: Obj) -> tuple[Any, ...]:
        i = e.get("identifier") or {}
        return (i.get("group"), i.get("version"), i.get("kind"), i.get("namespace") or "", i.get("name"))

    out = [e for e in current or [] if ident(e) != ident(entry)]
    out.append(entry)
    return sorted(out, key=lambda e: (_int((e.get("identifier") or {}).get("ordinal")), ident(e)))


def without_status(current: list[Obj] | None, obj: Obj) -> list[Obj]:
    api_version, kind, namespace, name = identity(obj)
    group, _, version = api_version.rpartition("/")
    return [e for e in current or [] if (
        (e.get("identifier") or {}).get("group"), (e.get("identifier") or {}).get("version"),
        (e.get("identifier") or {}).get("kind"), (e.get("identifier") or {}).get("namespace") or "",
        (e.get("identifier") or {}).get("name")) != (group, version, kind, namespace, name)]


def content_changed(old: Obj, new: Obj) -> bool:
    """Whether spec or metadata changed (not only status, resourceVersion, managedFields...)."""
    return prune(old) != prune(new)


def work_applied(work: Obj) -> bool:
    return any(c.get("type") == kinds.WORK_APPLIED and c.get("status") == "True"
               for c in (work.get("status") or {}).get("conditions") or [])


def _object_key(cluster: str, resource: Resource, obj: Obj, work_key: str) -> str:
    api_version, kind, namespace, name = identity(obj)
    return SEP.join(("obj", cluster, api_version, resource.plural, str(resource.namespaced), kind, namespace, name,
                     work_key))


# -- the controller ------------------------------------------------------------------------------------

class WorkStatusController(Controller):
    """Reflects member objects into their Works and corrects drift; see the module docstring.

    Wiring: ``WorkStatusController(fed_client, members, applier=execution.applier)`` next to
    an :class:`~atoll.federation.execution.ExecutionController` sharing the same
    :class:`MemberClients` and :class:`Applier`.
    """

    NAME: ClassVar[str] = "work-status-controller"
    workers = 4

    def __init__(self, client: Client, members: MemberClients, *, applier: Applier | None = None) -> None:
        super().__init__()
        self.client = client
        self.members = members
        self.applier = applier or Applier()
        self.events = EventRecorder(client, self.NAME)
        self.works = Informer(client, kinds.WORKS)
        self.works.add_handler(self._on_work)
        self.clusters = Informer(client, kinds.CLUSTERS)
        self.clusters.add_handler(self._on_cluster)
        self.informers += [self.works, self.clusters]
        self.member_informers = MemberInformers(members, self._member_handler)
        self._drifted: set[str] = set()

    # -- events -------------------------------------------------------------------------------------
    def _on_work(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if new is None or kinds.cluster_of_execution_namespace(str(new["metadata"].get("namespace") or "")) is None:
            return
        if event == "MODIFIED" and old is not None and old.get("spec") == new.get("spec") and \
                work_applied(old) == work_applied(new):
            return
        self.queue.add("work" + SEP + key_of(new))

    def _on_cluster(self, _event: str, old: Obj | None, new: Obj | None) -> None:
        if new is not None and cluster_ready(new) and not cluster_ready(old):
            for work in self.works.lister.list(kinds.execution_namespace(str(new["metadata"]["name"]))):
                self.queue.add("work" + SEP + key_of(work))

    def _member_handler(self, cluster: str, resource: Resource) -> Handler:
        def handler(event: str, old: Obj | None, new: Obj | None) -> None:
            obj = new if new is not None else old
            if obj is None:
                return
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
            work_ns, work_name = annotations.get(WORK_NAMESPACE_ANNOTATION), annotations.get(WORK_NAME_ANNOTATION)
            if not work_ns or not work_name or kinds.cluster_of_execution_namespace(work_ns) != cluster:
                return
            key = _object_key(cluster, resource, obj, f"{work_ns}/{work_name}")
            if event == "DELETED":
                self._drifted.add(key)
            elif event == "MODIFIED" and old is not None and new is not None:
                rv = (new.get("metadata") or {}).get("resourceVersion")
                if rv != self.applier.recorded(cluster, new) and content_changed(old, new):
                    self._drifted.add(key)
            if event == "MODIFIED" and key not in self._drifted:
                # A status change: a member reports several in quick succession while it rolls a
                # workload out; reflecting them together costs one Work status write, not one each.
                self.queue.add_after(key, STATUS_COALESCE)
            else:
                self.queue.add(key)

        return handler

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await super().run(stop)
        finally:
            await self.member_informers.close()

    # -- reconciling -------------------------------------------------------------------------------
    async def reconcile(self, key: str) -> Result:
        kind, _, rest = key.partition(SEP)
        if kind == "work":
            return await self._watch_work(rest)
        return await self._sync_object(key, rest.split(SEP))

    async def _member(self, cluster_name: str) -> Client | None:
        cluster = self.clusters.lister.get(cluster_name)
        if not cluster_ready(cluster) or cluster is None:
            return None
        try:
            return await self.members.for_cluster(cluster)
        except MemberConfigError:
            return None

    async def _watch_work(self, work_key: str) -> Result:
        """Make sure the member informers for this Work's kinds run, and sync its objects once."""
        work = self.works.lister.get(work_key)
        if work is None or (work.get("metadata") or {}).get("deletionTimestamp") or not work_applied(work):
            return Result()
        namespace, _ = split_key(work_key)
        cluster = kinds.cluster_of_execution_namespace(namespace or "")
        if cluster is None:
            return Result()
        member = await self._member(cluster)
        if member is None:
            return Result()  # the cluster's becoming Ready brings the Work back
        for manifest in manifests(work):
            resource = await Applier.resource(member, manifest)
            informer = self.member_informers.informer(cluster, member, resource, label_selector=MANAGED_SELECTOR)
            obj = copy.deepcopy(manifest)
            if not resource.namespaced:
                obj.setdefault("metadata", {}).pop("namespace", None)
            elif not (obj.get("metadata") or {}).get("namespace"):
                obj.setdefault("metadata", {})["namespace"] = "default"
            if informer.synced.is_set():
                self.queue.add(_object_key(cluster, resource, obj, work_key))
            else:
                # The informer replays the object as ADDED once synced; a missing one is checked then.
                self.queue.add_after(_object_key(cluster, resource, obj, work_key), 0.5)
        return Result()

    async def _sync_object(self, key: str, parts: list[str]) -> Result:
        try:
            cluster, api_version, plural, namespaced, kind, namespace, name, work_key = parts
        except ValueError:
            return Result()
        resource = Resource(api_version, plural, namespaced == "True", kind)
        informer = self.member_informers.get(cluster, resource, label_selector=MANAGED_SELECTOR)
        if informer is None or not informer.synced.is_set():
            return Result()  # the informer starts with the Work; its events bring the object back
        obj = informer.lister.get(f"{namespace}/{name}" if namespace else name)
        drifted = key in self._drifted
        self._drifted.discard(key)
        work = self.works.lister.get(work_key)
        if work is None or (work.get("metadata") or {}).get("deletionTimestamp"):
            return Result()
        ident: Obj = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}}
        ordinal = manifest_index(work, ident)
        if ordinal is None:
            return Result()  # no longer in the Work
        if drifted and (obj is None or is_managed_by(obj, work_key)):
            await self._correct(work, work_key, manifests(work)[ordinal], cluster, deleted=obj is None)
        return await self._write(work, obj, ident, resource)

    async def _correct(self, work: Obj, work_key: str, manifest: Obj, cluster: str, *, deleted: bool) -> None:
        """Write the Work's manifest back over someone else's change (or deletion)."""
        if not work_applied(work) or (work.get("spec") or {}).get("suspendDispatching"):
            return
        member = await self._member(cluster)
        if member is None:
            return
        outcome = await self.applier.apply(cluster, member, desired_object(work, manifest), force=True)
        what = f"{manifest.get('kind')} {identity(manifest)[3]}"
        logger.info("work %s: %s on cluster %s was %s by someone else: %s again", work_key, what, cluster,
                    "deleted" if deleted else "changed", outcome)
        await self.events.record(work, "Normal", "SyncSucceed",
                                 f"Corrected drift of {what} in cluster {cluster}: {outcome} from the Work")

    async def _write(self, work: Obj, obj: Obj | None, ident: Obj, resource: Resource) -> Result:
        status = work.get("status") or {}
        current = status.get("manifestStatuses") or []
        if obj is None:
            statuses = without_status(current, ident)
        else:
            entry = manifest_status(work, obj, resource)
            if entry is None:
                return Result()
            statuses = merge_statuses(current, entry)
        if statuses == current:
            return Result()
        md = work["metadata"]
        try:
            await self.client.patch_status(kinds.WORKS, md["name"], {
                "metadata": {"resourceVersion": md.get("resourceVersion")},
                "status": {"manifestStatuses": statuses or None}}, md["namespace"])
        except NotFound:
            return Result()
        except Conflict:
            raise  # another object of this Work wrote first: retried on the fresh Work
        except APIError as exc:
            await self.events.record(work, "Warning", "ReflectStatusFailed",
                                     f"Reflect status for object({ident['kind']}/{ident['metadata']['name']}) "
                                     f"failed, err: {exc}.")
            raise
        return Result()


def is_managed_by(obj: Obj, work_key: str) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return f"{annotations.get(WORK_NAMESPACE_ANNOTATION)}/{annotations.get(WORK_NAME_ANNOTATION)}" == work_key
