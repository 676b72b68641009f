"""Binding status: what every member reports, gathered into the binding and into the template's ``.status``.

Karmada's ``pkg/controllers/status/{rb,crb}_status_controller.go`` with the helpers they
call (``AggregateResourceBindingWorkStatus`` in ``pkg/util/helper/workstatus.go`` and the
native ``AggregateStatus`` interpreters of ``pkg/resourceinterpreter/default/native``):

1. The Works of a binding (found by its permanent-id label) each carry, in
   ``status.manifestStatuses[]``, the member object's reflected status and health. They
   become ``status.aggregatedStatus[]`` of the binding, one item per cluster sorted by
   name, and the ``FullyApplied`` condition is True only when every cluster the binding
   keeps a Work on (scheduled, required-by and gracefully evicted ones) reports Applied.
2. The items are folded into the template's ``.status`` in the federation, through its
   ``/status`` subresource, by one pure function per kind (:data:`AGGREGATORS`). A
   Deployment's ``observedGeneration`` becomes the template's generation only once every
   member reports its own status caught up with a manifest of that template generation
   (``resourcetemplate.karmada.io/generation``), so ``kubectl rollout status`` against the
   federation waits for every member. Kinds Karmada has no aggregator for are left alone.

Deviations: an expected cluster whose Work is missing counts, for the template, as a
member without status (:func:`template_items`), so nothing looks finished before every
member has reported; StatefulSet's catch-up check compares with the template's generation
(Karmada compares the member's template generation with the member's own generation, which
looks like a slip); a Deployment's ``Available``/``Progressing`` conditions are aggregated
from members that report conditions (Karmada's reflected status carries none, so this only
adds).
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from atoll.api.errors import Conflict, NotFound
from atoll.client import Client, Resource
from atoll.federation import kinds
from atoll.federation.kinds import (
    CLUSTER_RESOURCE_BINDINGS,
    RESOURCE_BINDINGS,
    WORKS,
    cluster_of_execution_namespace,
)
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.events import EventRecorder
from atoll.machinery.informing import Informer, key_of, split_key

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
Items = Sequence[Mapping[str, Any]]
Clock = Callable[[], float]

FULLY_APPLIED_SUCCESS_REASON = "FullyAppliedSuccess"
FULLY_APPLIED_FAILED_REASON = "FullyAppliedFailed"
FULLY_APPLIED_SUCCESS_MESSAGE = "All works have been successfully applied"
FULLY_APPLIED_FAILED_MESSAGE = "Failed to apply all works, see status.aggregatedStatus for details"
EVENT_AGGREGATE_SUCCEED = "AggregateStatusSucceed"
EVENT_AGGREGATE_FAILED = "AggregateStatusFailed"
HEALTH_VALUES = ("Healthy", "Unhealthy", "Unknown")


def rfc3339(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> float | None:
    """An RFC 3339 timestamp as epoch seconds (``None`` for a missing or unreadable one)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return 0


def _status(item: Mapping[str, Any]) -> Mapping[str, Any] | None:
    status = item.get("status")
    return status if isinstance(status, Mapping) else None


# -- binding: Works -> aggregatedStatus + FullyApplied ------------------------------------------------------


def _condition(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or () if c.get("type") == type_), None)


def manifest_index(manifests: Sequence[Mapping[str, Any]], ref: Mapping[str, Any]) -> int:
    """``GetManifestIndex``: where the template's copy is among a Work's manifests (-1: absent)."""
    for index, manifest in enumerate(manifests):
        md = manifest.get("metadata") or {}
        if (manifest.get("apiVersion") == ref.get("apiVersion") and manifest.get("kind") == ref.get("kind")
                and (md.get("namespace") or "") == (ref.get("namespace") or "") and md.get("name") == ref.get("name")):
            return index
    return -1


def identifier_matches(identifier: Mapping[str, Any], ordinal: int, ref: Mapping[str, Any]) -> bool:
    """``equalIdentifier``: the manifest status at ``ordinal`` for the same group, version, kind and name."""
    group, _, version = str(ref.get("apiVersion") or "").rpartition("/")
    return (_int(identifier.get("ordinal")) == ordinal and (identifier.get("group") or "") == group
            and identifier.get("version") == version and identifier.get("kind") == ref.get("kind")
            and (identifier.get("namespace") or "") == (ref.get("namespace") or "")
            and identifier.get("name") == ref.get("name"))


def work_status_item(work: Mapping[str, Any], ref: Mapping[str, Any]) -> Obj | None:
    """One ``aggregatedStatus`` item from one Work (``assembleWorkStatus``); ``None`` for a Work to skip."""
    md = work.get("metadata") or {}
    if md.get("deletionTimestamp"):
        return None
    cluster = cluster_of_execution_namespace(str(md.get("namespace") or ""))
    manifests = ((work.get("spec") or {}).get("workload") or {}).get("manifests") or []
    ordinal = manifest_index(manifests, ref)
    if cluster is None or ordinal < 0:
        logger.warning("Work %s/%s holds no manifest of %s %s; skipped", md.get("namespace"), md.get("name"),
                       ref.get("kind"), ref.get("name"))
        return None
    status = work.get("status") or {}
    applied_condition = _condition(status.get("conditions"), kinds.WORK_APPLIED)
    applied = applied_condition is not None and applied_condition.get("status") == "True"
    item: Obj = {"clusterName": cluster, "applied": applied, "health": "Unknown"}
    if not applied:
        message = (applied_condition or {}).get("message")
        if message:
            item["appliedMessage"] = str(message)
        return item
    for manifest_status in status.get("manifestStatuses") or []:
        if identifier_matches(manifest_status.get("identifier") or {}, ordinal, ref):
            if manifest_status.get("status") is not None:
                item["status"] = copy.deepcopy(manifest_status["status"])
            health = manifest_status.get("health")
            item["health"] = health if health in HEALTH_VALUES else "Unknown"
            break
    return item


def assemble_work_status(works: Iterable[Mapping[str, Any]], ref: Mapping[str, Any]) -> list[Obj]:
    """Every Work's item, sorted by cluster name."""
    items = [item for work in works if (item := work_status_item(work, ref)) is not None]
    return sorted(items, key=lambda i: str(i["clusterName"]))


def existing_clusters(spec: Mapping[str, Any]) -> set[str]:
    """``ObtainBindingSpecExistingClusters``: scheduled, required-by and not directly purged evicted clusters."""
    names = {str(c.get("name")) for c in spec.get("clusters") or []}
    for snapshot in spec.get("requiredBy") or []:
        names.update(str(c.get("name")) for c in snapshot.get("clusters") or [])
    for task in spec.get("gracefulEvictionTasks") or []:
        if task.get("purgeMode") != "Directly" and task.get("fromCluster"):
            names.add(str(task["fromCluster"]))
    return names


def works_fully_applied(items: Items, clusters: set[str]) -> bool:
    """``worksFullyApplied``: one applied item per expected cluster, and nothing else."""
    if not clusters or len(items) != len(clusters):
        return False
    return all(item.get("applied") and item.get("clusterName") in clusters for item in items)


def fully_applied_condition(spec: Mapping[str, Any], items: Items) -> Obj:
    if works_fully_applied(items, existing_clusters(spec)):
        return {"type": kinds.BINDING_FULLY_APPLIED, "status": "True", "reason": FULLY_APPLIED_SUCCESS_REASON,
                "message": FULLY_APPLIED_SUCCESS_MESSAGE}
    return {"type": kinds.BINDING_FULLY_APPLIED, "status": "False", "reason": FULLY_APPLIED_FAILED_REASON,
            "message": FULLY_APPLIED_FAILED_MESSAGE}


def set_condition(conditions: Sequence[Mapping[str, Any]] | None, new: Mapping[str, Any], now: str) -> list[Obj]:
    """``meta.SetStatusCondition``: the transition time moves only when the status does."""
    out = [dict(c) for c in conditions or []]
    for existing in out:
        if existing.get("type") == new.get("type"):
            if existing.get("status") != new.get("status"):
                existing["lastTransitionTime"] = now
            existing.update({k: v for k, v in new.items() if k != "lastTransitionTime"})
            existing.setdefault("lastTransitionTime", now)
            return out
    out.append({**new, "lastTransitionTime": new.get("lastTransitionTime") or now})
    return out


# -- template: aggregatedStatus -> .status, per kind ---------------------------------------------------------


Aggregator = Callable[[Mapping[str, Any], Items, str], Obj]
"""``(template, items, now) -> the template's new .status``."""


def _generation(template: Mapping[str, Any]) -> int:
    return _int((template.get("metadata") or {}).get("generation"))


def _summed(template: Mapping[str, Any], items: Items, fields: Sequence[str]) -> Obj:
    """Replica-style kinds: sum ``fields``; ``observedGeneration`` moves once every member caught up."""
    old = dict(template.get("status") or {})
    generation = _generation(template)
    sums = dict.fromkeys(fields, 0)
    caught_up = 0
    for item in items:
        member = _status(item)
        if member is None:
            continue
        # The member's status is about its latest spec, and that spec came from this template generation.
        if (_int(member.get("observedGeneration")) >= _int(member.get("generation"))
                and _int(member.get("resourceTemplateGeneration")) >= generation):
            caught_up += 1
        for field in fields:
            sums[field] += _int(member.get(field))
    new = {**old, **sums}
    new["observedGeneration"] = generation if caught_up == len(items) else old.get("observedGeneration", 0)
    if not new["observedGeneration"]:
        new.pop("observedGeneration")
    return new


def _aggregated_deployment_conditions(old: Sequence[Mapping[str, Any]] | None, items: Items,
                                      now: str) -> list[Obj] | None:
    """Available when every reporting member is; Progressing fails when any member's deadline passed."""
    reported = [m["conditions"] for item in items if (m := _status(item)) is not None and m.get("conditions")]
    if not reported:
        return None
    out = [dict(c) for c in old or []]
    available = [_condition(cs, "Available") for cs in reported]
    progressing = [_condition(cs, "Progressing") for cs in reported]
    if all(c is not None for c in available):
        ok = all(c is not None and c.get("status") == "True" for c in available)
        out = set_condition(out, {"type": "Available", "status": "True" if ok else "False",
                                  "reason": "MinimumReplicasAvailable" if ok else "MinimumReplicasUnavailable",
                                  "message": "Deployment has minimum availability." if ok else
                                  "Deployment does not have minimum availability in every member cluster.",
                                  "lastUpdateTime": now}, now)
    if all(c is not None for c in progressing):
        stuck = [c for c in progressing if c is not None and c.get("reason") == "ProgressDeadlineExceeded"]
        if stuck:
            out = set_condition(out, {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                      "message": str(stuck[0].get("message") or "progress deadline exceeded"),
                                      "lastUpdateTime": now}, now)
        else:
            done = all(c is not None and c.get("reason") == "NewReplicaSetAvailable" for c in progressing)
            out = set_condition(out, {"type": "Progressing", "status": "True",
                                      "reason": "NewReplicaSetAvailable" if done else "ReplicaSetUpdated",
                                      "message": "Every member cluster has progressed." if done else
                                      "Member clusters are progressing.", "lastUpdateTime": now}, now)
    # lastUpdateTime must not alone make the status look changed.
    for cond in out:
        previous = _condition(old, str(cond.get("type")))
        if previous is not None and {k: v for k, v in previous.items() if k != "lastUpdateTime"} == {
                k: v for k, v in cond.items() if k != "lastUpdateTime"}:
            cond["lastUpdateTime"] = previous.get("lastUpdateTime", now)
    return out


def aggregate_deployment(template: Mapping[str, Any], items: Items, now: str) -> Obj:
    new = _summed(template, items, ("replicas", "readyReplicas", "updatedReplicas", "availableReplicas",
                                    "unavailableReplicas"))
    conditions = _aggregated_deployment_conditions((template.get("status") or {}).get("conditions"), items, now)
    if conditions is not None:
        new["conditions"] = conditions
    return new


def aggregate_replicaset(template: Mapping[str, Any], items: Items, now: str) -> Obj:
    return _summed(template, items, ("replicas", "readyReplicas", "availableReplicas"))


def aggregate_statefulset(template: Mapping[str, Any], items: Items, now: str) -> Obj:
    return _summed(template, items, ("availableReplicas", "currentReplicas", "readyReplicas", "replicas",
                                     "updatedReplicas"))


def aggregate_daemonset(template: Mapping[str, Any], items: Items, now: str) -> Obj:
    return _summed(template, items, ("currentNumberScheduled", "desiredNumberScheduled", "numberAvailable",
                                     "numberMisscheduled", "numberReady", "updatedNumberScheduled",
                                     "numberUnavailable"))


def _job_finished(status: Mapping[str, Any]) -> str | None:
    """``GetJobFinishedStatus``: ``Complete``, ``Failed`` or ``None``."""
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def aggregate_job(template: Mapping[str, Any], items: Items, now: str) -> Obj:
    """``ParsingJobStatus``: counts summed; Complete once every member is; Failed when any member failed."""
    old = dict(template.get("status") or {})
    if _job_finished(old):
        return old  # a finished Job's status never changes again
    new: Obj = {"active": 0, "succeeded": 0, "failed": 0}
    failed_in: list[str] = []
    complete = criteria_met = started = completed = 0
    start: tuple[float, str] | None = None
    completion: tuple[float, str] | None = None
    for item in items:
        member = _status(item)
        if member is None:
            continue
        for field in ("active", "succeeded", "failed"):
            new[field] += _int(member.get(field))
        finished = _job_finished(member)
        if finished == "Complete":
            complete += 1
        elif finished == "Failed":
            failed_in.append(str(item.get("clusterName")))
        if any(c.get("type") == "SuccessCriteriaMet" and c.get("status") == "True"
               for c in member.get("conditions") or []):
            criteria_met += 1
        if (t := parse_time(member.get("startTime"))) is not None:
            started += 1
            if start is None or t < start[0]:
                start = (t, str(member["startTime"]))
        if (t := parse_time(member.get("completionTime"))) is not None:
            completed += 1
            if completion is None or t > completion[0]:
                completion = (t, str(member["completionTime"]))
    conditions: list[Obj] = []
    if failed_in:
        conditions.append({"type": "Failed", "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
                           "reason": "JobFailed",
                           "message": f"Job executed failed in member clusters {','.join(failed_in)}"})
    if complete == len(items) and complete > 0:
        conditions.append({"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
                           "reason": "Completed", "message": "Job completed"})
        if criteria_met == len(items):
            conditions.append({"type": "SuccessCriteriaMet", "status": "True", "lastProbeTime": now,
                               "lastTransitionTime": now, "reason": "CompletionsReached",
                               "message": "All member clusters have met success criteria"})
    if conditions:
        new["conditions"] = conditions
    if old.get("startTime"):
        new["startTime"] = old["startTime"]
    elif start is not None and started == len(items):
        new["startTime"] = start[1]
    if completion is not None and completed == len(items):
        new["completionTime"] = completion[1]
    return new


def aggregate_cronjob(template: Mapping[str, Any], items: Items, now: str) -> Obj:
    old = dict(template.get("status") or {})
    active: list[Any] = []
    latest: dict[str, tuple[float, str]] = {}
    for item in items:
        member = _status(item)
        if member is None:
            continue
        active.extend(copy.deepcopy(member.get("active") or []))
        for field in ("lastScheduleTime", "lastSuccessfulTime"):
            t = parse_time(member.get(field))
            if t is not None and (field not in latest or t > latest[field][0]):
                latest[field] = (t, str(member[field]))
    new = {k: v for k, v in old.items() if k not in ("active", "lastScheduleTime", "lastSuccessfulTime")}
    if active:
        new["active"] = active
    for field, (_, text) in latest.items():
        new[field] = text
    return new


def dedupe_load_balancer_ingress(ingresses: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """``DedupeAndSort*LoadBalancerIngress``: one entry per hostname/IP/ipMode, ports merged, all sorted."""
    merged: dict[tuple[str, str, str], Obj] = {}
    ports: dict[tuple[str, str, str], dict[tuple[int, str, str], Obj]] = {}
    for ingress in ingresses:
        key = (str(ingress.get("hostname") or ""), str(ingress.get("ip") or ""), str(ingress.get("ipMode") or ""))
        entry = merged.setdefault(key, {k: copy.deepcopy(v) for k, v in ingress.items() if k != "ports"})
        entry.pop("ports", None)
        bucket = ports.setdefault(key, {})
        for port in ingress.get("ports") or []:
            bucket[(_int(port.get("port")), str(port.get("protocol") or ""), str(port.get("error") or ""))] = dict(port)
    out = []
    for key in sorted(merged):
        entry = merged[key]
        if ports[key]:
            entry["ports"] = [ports[key][k] for k in sorted(ports[key])]
        out.append(entry)
    return out


def _load_balancer(items: Items) -> Obj:
    ingress: list[Mapping[str, Any]] = []
    for item in items:
        member = _status(item)
        if member is not None:
            ingress.extend((member.get("loadBalancer") or {}).get("ingress") or [])
    deduped = dedupe_load_balancer_ingress(ingress)
    return {"ingress": deduped} if deduped else {}


def aggregate_service(template: Mapping[str, Any], items: Items, now: str) -> Obj:
    """Only a LoadBalancer Service has something to gather: every member's ingress points."""
    old = dict(template.get("status") or {})
    if (template.get("spec") or {}).get("type") != "LoadBalancer":
        return old
    return {"loadBalancer": _load_balancer(items)}


def aggregate_ingress(template: Mapping[str, Any], items: Items, now: str) -> Obj:
    return {"loadBalancer": _load_balancer(items)}


_POD_PHASE_ORDER = ("Failed", "Pending", "Running", "Succeeded")
_VOLUME_PHASE_ORDER = ("Failed", "Pending", "Available", "Bound", "Released")


def aggregate_pod(template: Mapping[str, Any], items: Items, now: str) -> Obj:
    """The worst phase wins (Failed, Pending, Running, Succeeded); container readiness and state listed."""
    old = dict(template.get("status") or {})
    if not items:
        return old
    phases: set[str] = set()
    containers: list[Obj] = []
    init_containers: list[Obj] = []
    for item in items:
        member = _status(item)
        if member is None:
            phases.add("Pending")  # not collected yet: assume pending rather than report a better phase
            continue
        phases.add(str(member.get("phase") or ""))
        for key, out in (("containerStatuses", containers), ("initContainerStatuses", init_containers)):
            for cs in member.get(key) or []:
                out.append({"ready": bool(cs.get("ready")), **({"state": copy.deepcopy(cs["state"])}
                                                                 if cs.get("state") else {})})
    new: Obj = {"containerStatuses": containers}
    if init_containers:
        new["initContainerStatuses"] = init_containers
    phase = next((p for p in _POD_PHASE_ORDER if p in phases), None)
    if phase is not None:
        new["phase"] = phase
    return new


def aggregate_persistent_volume(template: Mapping[str, Any], items: Items, now: str) -> Obj:
    phases = {str((_status(item) or {"phase": "Pending"}).get("phase") or "") for item in items}
    phase = next((p for p in _VOLUME_PHASE_ORDER if p in phases), None)
    return {"phase": phase} if phase else {}


def aggregate_persistent_volume_claim(template: Mapping[str, Any], items: Items, now: str) -> Obj:
    """Bound unless a member says otherwise; Lost wins over everything."""
    phase = "Bound"
    for item in items:
        member = _status(item)
        if member is None:
            continue
        member_phase = member.get("phase")
        if member_phase == "Lost":
            phase = "Lost"
            break
        if member_phase and member_phase != "Bound":
            phase = str(member_phase)
    return {"phase": phase}


def aggregate_pod_disruption_budget(template: Mapping[str, Any], items: Items, now: str) -> Obj:
    new: Obj = {"currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0, "disruptionsAllowed": 0,
                "disruptedPods": {}}
    for item in items:
        member = _status(item)
        if member is None:
            continue
        for field in ("currentHealthy", "desiredHealthy", "expectedPods", "disruptionsAllowed"):
            new[field] += _int(member.get(field))
        for pod, when in (member.get("disruptedPods") or {}).items():
            new["disruptedPods"][f"{item.get('clusterName')}/{pod}"] = when
    return new


def aggregate_horizontal_pod_autoscaler(template: Mapping[str, Any], items: Items, now: str) -> Obj:
    new: Obj = {"currentReplicas": 0, "desiredReplicas": 0}
    for item in items:
        member = _status(item)
        if member is not None:
            new["currentReplicas"] += _int(member.get("currentReplicas"))
            new["desiredReplicas"] += _int(member.get("desiredReplicas"))
    return new


AGGREGATORS: dict[tuple[str, str], Aggregator] = {
    ("apps/v1", "Deployment"): aggregate_deployment,
    ("apps/v1", "ReplicaSet"): aggregate_replicaset,
    ("apps/v1", "StatefulSet"): aggregate_statefulset,
    ("apps/v1", "DaemonSet"): aggregate_daemonset,
    ("batch/v1", "Job"): aggregate_job,
    ("batch/v1", "CronJob"): aggregate_cronjob,
    ("v1", "Service"): aggregate_service,
    ("networking.k8s.io/v1", "Ingress"): aggregate_ingress,
    ("v1", "Pod"): aggregate_pod,
    ("v1", "PersistentVolume"): aggregate_persistent_volume,
    ("v1", "PersistentVolumeClaim"): aggregate_persistent_volume_claim,
    ("policy/v1", "PodDisruptionBudget"): aggregate_pod_disruption_budget,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): aggregate_horizontal_pod_autoscaler,
}
"""Karmada's native ``AggregateStatus`` interpreters, by (apiVersion, kind)."""


def template_items(spec: Mapping[str, Any], items: Items) -> list[Obj]:
    """The items with a status-less stand-in for every expected cluster whose Work has not reported yet.

    Karmada folds only the Works it finds, so a template aggregated between the creation
    of two Works looks complete (and a Deployment "observed") with one member missing.
    A stand-in counts as "not caught up", a Pod or volume as Pending, a Job as not done.
    """
    out = [dict(i) for i in items]
    seen = {str(i.get("clusterName")) for i in items}
    out += [{"clusterName": c, "applied": False, "health": "Unknown"}
            for c in sorted(existing_clusters(spec) - seen)]
    return out


def aggregate_status(template: Mapping[str, Any], items: Items, now: str) -> Obj | None:
    """The template's new ``.status`` (``None``: Karmada does not aggregate this kind)."""
    aggregator = AGGREGATORS.get((str(template.get("apiVersion")), str(template.get("kind"))))
    if aggregator is None:
        return None
    return aggregator(template, items, now)


# -- the controller -----------------------------------------------------------------------------------------


def _scheduled(binding: Mapping[str, Any]) -> bool:
    """Only a binding the scheduler has placed has statuses worth gathering (``lastScheduledTime``)."""
    return bool((binding.get("status") or {}).get("lastScheduledTime"))


class BindingStatusController(Controller):
    """Aggregates Work statuses into ResourceBindings and ClusterResourceBindings, then into their templates.

    ``BindingStatusController(client)`` with the federation's client; ``await run(stop)``.
    A ResourceBinding's key is ``namespace/name``, a ClusterResourceBinding's is its bare name.
    """

    NAME: ClassVar[str] = "binding-status-controller"

    def __init__(self, client: Client, *, clock: Clock = time.time) -> None:
        super().__init__()
        self.client = client
        self.clock = clock
        self.recorder = EventRecorder(client, self.NAME)
        self.bindings = Informer(client, RESOURCE_BINDINGS)
        self.cluster_bindings = Informer(client, CLUSTER_RESOURCE_BINDINGS)
        self.works = Informer(client, WORKS)
        for informer in (self.bindings, self.cluster_bindings):
            informer.add_handler(self._on_binding)
        self.works.add_handler(self._index_work)
        self.works.add_handler(self._on_work)
        self.informers += [self.bindings, self.cluster_bindings, self.works]
        self._works_by_id: dict[tuple[str, str], set[str]] = {}
        """(id label, binding permanent id) -> keys of its Works: no scan of every Work per reconcile."""

    # -- event mapping (Karmada's bindingPredicateFn and workPredicateFn) ---------------------------------
    def _on_binding(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "DELETED" or new is None or not _scheduled(new):
            return
        if event == "MODIFIED" and old is not None and _scheduled(old):
            ospec, nspec = old.get("spec") or {}, new.get("spec") or {}
            # The template changed (its resourceVersion), or the clusters expected to report did.
            if ((ospec.get("resource") or {}).get("resourceVersion") == (nspec.get("resource") or {}).get(
                    "resourceVersion") and existing_clusters(ospec) == existing_clusters(nspec)):
                return
        self.queue.add(key_of(new))

    def _index_work(self, event: str, old: Obj | None, new: Obj | None) -> None:
        for obj, add in ((old, False), (new, True)):
            if obj is None:
                continue
            labels = (obj.get("metadata") or {}).get("labels") or {}
            for label in (kinds.RESOURCE_BINDING_PERMANENT_ID_LABEL, kinds.CLUSTER_RESOURCE_BINDING_PERMANENT_ID_LABEL):
                if not labels.get(label):
                    continue
                index = (label, str(labels[label]))
                if add:
                    self._works_by_id.setdefault(index, set()).add(key_of(obj))
                elif index in self._works_by_id:
                    self._works_by_id[index].discard(key_of(obj))
                    if not self._works_by_id[index]:
                        del self._works_by_id[index]

    def _on_work(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "ADDED":
            return  # a new Work has no status yet; its first status update is an event of its own
        if event == "MODIFIED" and old is not None and new is not None and old.get("status") == new.get("status"):
            return
        work = new if new is not None else old
        annotations = ((work or {}).get("metadata") or {}).get("annotations") or {}
        ns, name = annotations.get(kinds.RESOURCE_BINDING_NAMESPACE_ANNOTATION), annotations.get(
            kinds.RESOURCE_BINDING_NAME_ANNOTATION)
        if ns and name:
            self.queue.add(f"{ns}/{name}")
        crb = annotations.get(kinds.CLUSTER_RESOURCE_BINDING_ANNOTATION)
        if crb:
            self.queue.add(str(crb))

    # -- reconcile -------------------------------------------------------------------------------------------
    def _resource_and_lister(self, key: str) -> tuple[Resource, Informer, str]:
        namespace, _ = split_key(key)
        if namespace:
            return RESOURCE_BINDINGS, self.bindings, kinds.RESOURCE_BINDING_PERMANENT_ID_LABEL
        return CLUSTER_RESOURCE_BINDINGS, self.cluster_bindings, kinds.CLUSTER_RESOURCE_BINDING_PERMANENT_ID_LABEL

    def works_of(self, binding: Mapping[str, Any], id_label: str) -> list[Obj]:
        """``GetWorksByBindingID``: Works labelled with the binding's permanent id."""
        bid = ((binding.get("metadata") or {}).get("labels") or {}).get(id_label)
        if not bid:
            return []
        works = (self.works.lister.get(k) for k in sorted(self._works_by_id.get((id_label, str(bid)), ())))
        return [w for w in works if w is not None
                and ((w.get("metadata") or {}).get("labels") or {}).get(id_label) == bid]

    async def reconcile(self, key: str) -> Result:
        resource, informer, id_label = self._resource_and_lister(key)
        binding = informer.lister.get(key)
        if binding is None or (binding.get("metadata") or {}).get("deletionTimestamp"):
            return Result()
        spec = binding.get("spec") or {}
        ref = spec.get("resource") or {}
        items = assemble_work_status(self.works_of(binding, id_label), ref)
        binding = await self._write_binding_status(resource, binding, items)
        await self._write_template_status(binding, template_items(binding.get("spec") or {}, items))
        return Result()

    async def _write_binding_status(self, resource: Resource, binding: Obj, items: list[Obj], *,
                                    attempts: int = 3) -> Obj:
        """``status.aggregatedStatus`` and ``FullyApplied``, with optimistic locking (re-read on a conflict)."""
        md = binding.get("metadata") or {}
        for attempt in range(attempts):
            status = binding.get("status") or {}
            now = rfc3339(self.clock())
            conditions = set_condition(status.get("conditions"), fully_applied_condition(binding.get("spec") or {},
                                                                                          items), now)
            if status.get("aggregatedStatus", []) == items and status.get("conditions") == conditions:
                return binding
            patch = {"metadata": {"resourceVersion": (binding.get("metadata") or {}).get("resourceVersion")},
                     "status": {"aggregatedStatus": items, "conditions": conditions}}
            try:
                updated = await self.client.patch_status(resource, md["name"], patch, md.get("namespace"))
            except Conflict:
                if attempt == attempts - 1:
                    raise
                binding = await self.client.get(resource, md["name"], md.get("namespace"))
                continue
            except Exception as exc:
                await self.recorder.record(binding, "Warning", EVENT_AGGREGATE_FAILED, str(exc))
                raise
            what = f"{md.get('namespace')}/{md.get('name')}" if md.get("namespace") else str(md.get("name"))
            await self.recorder.record(binding, "Normal", EVENT_AGGREGATE_SUCCEED,
                                       f"Update {binding.get('kind')}({what}) with AggregatedStatus successfully.")
            return updated
        return binding

    async def _write_template_status(self, binding: Obj, items: list[Obj], *, attempts: int = 3) -> None:
        """``updateResourceStatus``: the template read fresh from the server, its status put through /status."""
        ref = (binding.get("spec") or {}).get("resource") or {}
        api_version, kind = str(ref.get("apiVersion") or ""), str(ref.get("kind") or "")
        if (api_version, kind) not in AGGREGATORS:
            return
        resource = await self.client.resource_for(api_version, kind)
        namespace = ref.get("namespace") or None
        for attempt in range(attempts):
            try:
                template = await self.client.get(resource, str(ref.get("name")), namespace)
            except NotFound:
                return  # the template is gone; the garbage collector takes the binding
            new_status = aggregate_status(template, items, rfc3339(self.clock()))
            if new_status is None or new_status == (template.get("status") or {}):
                return
            updated = copy.deepcopy(template)
            updated["status"] = new_status
            try:
                await self.client.replace_status(resource, updated, namespace)
            except Conflict:
                if attempt == attempts - 1:
                    await self.recorder.record(template, "Warning", EVENT_AGGREGATE_FAILED,
                                               "the template kept changing while its status was written")
                    raise
                continue
            except NotFound:
                return
            except Exception as exc:
                await self.recorder.record(template, "Warning", EVENT_AGGREGATE_FAILED, str(exc))
                raise
            await self.recorder.record(template, "Normal", EVENT_AGGREGATE_SUCCEED,
                                       "Update Resource with AggregatedStatus successfully.")
            logger.debug("%s: status of %s %s aggregated from %d clusters", self.NAME, kind, ref.get("name"),
                         len(items))
            return
