"""karmada-scheduler as a controller: watch bindings and clusters, write placements into ``spec.clusters``.

What it does follows ``pkg/scheduler/scheduler.go``:

- A (Cluster)ResourceBinding is queued when it appears and when its generation changes
  (status writes never queue it); one for another ``schedulerName`` or with
  ``spec.suspension.scheduling`` is left alone. (Karmada also ignores bindings without a
  policy's permanent-id or managed-by label; Atoll schedules every binding it is named for.)
- It is scheduled when its placement differs from the one it was last scheduled with
  (the ``policy.karmada.io/applied-placement`` annotation; for ordered
  ``clusterAffinities`` only the term in use counts), when its replicas no longer add up
  (Divided) or match (Duplicated), when a reschedule was triggered
  (``spec.rescheduleTriggeredAt``), always when Duplicated or not a workload, and when a
  cluster it runs on is being deleted (Atoll adds: or is gone). Otherwise only
  ``status.schedulerObservedGeneration`` is brought up to date.
- A Cluster whose labels or generation (spec: taints, provider, region...) change, or
  that starts terminating, queues the bindings whose current affinity selects it. Atoll
  also queues them when a cluster is added or deleted, queues the bindings not yet
  scheduled when a cluster's status changes (its API enablements arrive after it joins),
  and retries a binding no cluster fits every minute (Karmada's newer scheduling queue
  retries unschedulable bindings on its own; its legacy queue never does).
- The result: ``spec.clusters`` and the annotation (one merge patch), then
  ``status.schedulerObservingAffinityName``, an Event on the binding and on the resource
  template (``ScheduleBindingSucceed`` / ``ScheduleBindingFailed``) and the ``Scheduled``
  condition — ``Success``; ``NoClusterFit`` (not retried: a cluster change requeues it,
  and the old placement is cleared); ``Unschedulable`` and ``SchedulerError`` (retried
  with backoff). On success ``schedulerObservedGeneration`` and ``lastScheduledTime``
  are set.
- ``self.metrics`` is a prometheus registry with Karmada's
  ``karmada_scheduler_e2e_scheduling_duration_seconds`` and
  ``karmada_scheduler_schedule_attempts_total`` (labels ``result``, ``schedule_type``).
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram

from atoll.client import Client, Resource
from atoll.federation.scheduler.assignment import reschedule_required
from atoll.federation.scheduler.framework import FitError, SchedulingError, UnschedulableError
from atoll.federation.scheduler.placement import (
    DIVIDED,
    DUPLICATED,
    affinity_index,
    cluster_matches,
    cluster_name,
    is_workload,
    replica_scheduling,
    replica_scheduling_type,
    sum_replicas,
)
from atoll.federation.scheduler.scheduling import GenericScheduler, Outcome
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.events import EventRecorder
from atoll.machinery.informing import Informer, key_of

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
CLUSTERS = Resource("cluster.karmada.io/v1alpha1", "clusters", False, "Cluster")
RESOURCE_BINDINGS = Resource("work.karmada.io/v1alpha2", "resourcebindings", True, "ResourceBinding")
CLUSTER_RESOURCE_BINDINGS = Resource("work.karmada.io/v1alpha2", "clusterresourcebindings", False,
                                     "ClusterResourceBinding")

DEFAULT_SCHEDULER = "default-scheduler"
APPLIED_PLACEMENT = "policy.karmada.io/applied-placement"
SCHEDULED = "Scheduled"
REASON_SUCCESS = "Success"
REASON_NO_CLUSTER_FIT = "NoClusterFit"
REASON_UNSCHEDULABLE = "Unschedulable"
REASON_SCHEDULER_ERROR = "SchedulerError"
EVENT_SUCCEED = "ScheduleBindingSucceed"
EVENT_FAILED = "ScheduleBindingFailed"
SUCCESS_MESSAGE = "Binding has been scheduled successfully."
UNSCHEDULABLE_RETRY = 60.0
"""Seconds before a binding no cluster fits is tried again (besides cluster events)."""

RB_PREFIX = "rb:"
CRB_PREFIX = "crb:"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def placement_json(placement: Mapping[str, Any]) -> str:
    return orjson.dumps(placement).decode()


def _affinities_changed(terms: list[Obj] | None, applied_terms: list[Obj] | None, observed: str) -> bool:
    """Only the term being used matters: editing a fallback term does not move the workload."""
    if not observed:
        return True
    term = next((t for t in terms or [] if t.get("affinityName") == observed), None)
    applied = next((t for t in applied_terms or [] if t.get("affinityName") == observed), None)
    if term is None or applied is None:
        return True
    return term != applied


def placement_changed(placement: Mapping[str, Any], applied_text: str, observed_affinity: str) -> bool:
    """``placementChanged``: the placement differs from the one last scheduled with."""
    if not applied_text:
        return True
    try:
        applied = orjson.loads(applied_text)
    except orjson.JSONDecodeError:
        logger.error("unreadable %s annotation: %r", APPLIED_PLACEMENT, applied_text[:200])
        return False
    if not isinstance(applied, dict) or dict(placement) == applied:
        return False
    for field in ("clusterAffinity", "clusterTolerations", "spreadConstraints", "replicaScheduling"):
        if placement.get(field) != applied.get(field):
            return True
    return _affinities_changed(placement.get("clusterAffinities"), applied.get("clusterAffinities"),
                               observed_affinity)


def replicas_changed(spec: Mapping[str, Any]) -> bool:
    """``IsBindingReplicasChanged``: the current placement no longer matches ``spec.replicas``."""
    placement = spec.get("placement") or {}
    if replica_scheduling(placement) is None:
        return False
    replicas = int(spec.get("replicas") or 0)
    clusters = spec.get("clusters") or []
    kind = replica_scheduling_type(placement)
    if kind == DUPLICATED:
        return any(int(c.get("replicas") or 0) != replicas for c in clusters)
    if kind == DIVIDED:
        return sum_replicas(clusters) != replicas
    return False


def condition_for(error: SchedulingError | None) -> tuple[Obj, bool]:
    """``getConditionByError``: the ``Scheduled`` condition, and whether the attempt is final (no retry)."""
    if error is None:
        return _condition("True", REASON_SUCCESS, SUCCESS_MESSAGE), True
    if isinstance(error, UnschedulableError):
        return _condition("False", REASON_UNSCHEDULABLE, str(error)), False
    if isinstance(error, FitError):
        return _condition("False", REASON_NO_CLUSTER_FIT, str(error)), True
    return _condition("False", REASON_SCHEDULER_ERROR, str(error)), False


def _condition(status: str, reason: str, message: str) -> Obj:
    return {"type": SCHEDULED, "status": status, "reason": reason, "message": message}


def set_condition(conditions: list[Obj], new: Obj, now: str) -> list[Obj]:
    """``meta.SetStatusCondition``: the transition time moves only when the status does."""
    out = [dict(c) for c in conditions]
    for c in out:
        if c.get("type") == new["type"]:
            if c.get("status") != new["status"]:
                c["lastTransitionTime"] = now
            c.update(status=new["status"], reason=new["reason"], message=new["message"])
            return out
    out.append({**new, "lastTransitionTime": now})
    return out


def target_clusters_string(clusters: list[Obj]) -> str:
    return ", ".join(f"{c['name']}:{int(c.get('replicas') or 0)}" for c in clusters)


def as_target_clusters(result: list[Obj]) -> list[Obj]:
    """``TargetCluster`` as JSON: ``replicas`` omitted when 0 (``omitempty``)."""
    return [{"name": c["name"], "replicas": int(c["replicas"])} if int(c.get("replicas") or 0) else {"name": c["name"]}
            for c in result]


def _is_scheduled(status: Mapping[str, Any]) -> bool:
    return any(c.get("type") == SCHEDULED and c.get("status") == "True" for c in status.get("conditions") or [])


class SchedulerError(SchedulingError):
    """Raised from ``reconcile`` so the work queue retries the binding with backoff."""


class SchedulerController(Controller):
    NAME: ClassVar[str] = "karmada-scheduler"
    workers = 1  # one decision at a time, as karmada-scheduler's single worker

    def __init__(self, client: Client, *, scheduler: GenericScheduler | None = None,
                 scheduler_name: str = DEFAULT_SCHEDULER, registry: CollectorRegistry | None = None,
                 unschedulable_retry: float = UNSCHEDULABLE_RETRY) -> None:
        super().__init__()
        self.unschedulable_retry = unschedulable_retry
        self.client = client
        self.scheduler = scheduler or GenericScheduler()
        self.scheduler_name = scheduler_name
        self.events = EventRecorder(client, scheduler_name)
        self.bindings = Informer(client, RESOURCE_BINDINGS)
        self.cluster_bindings = Informer(client, CLUSTER_RESOURCE_BINDINGS)
        self.clusters = Informer(client, CLUSTERS)
        self.bindings.add_handler(lambda e, o, n: self._on_binding(RB_PREFIX, e, o, n))
        self.cluster_bindings.add_handler(lambda e, o, n: self._on_binding(CRB_PREFIX, e, o, n))
        self.clusters.add_handler(self._on_cluster)
        self.informers += [self.bindings, self.cluster_bindings, self.clusters]
        self.metrics = registry or CollectorRegistry()
        buckets = [0.001 * 2**i for i in range(15)]
        self.e2e_latency = Histogram("karmada_scheduler_e2e_scheduling_duration_seconds",
                                     "E2e scheduling latency in seconds", ["result", "schedule_type"],
                                     buckets=buckets, registry=self.metrics)
        self.attempts = Counter("karmada_scheduler_schedule_attempts_total",
                                "Number of attempts to schedule a ResourceBinding or ClusterResourceBinding",
                                ["result", "schedule_type"], registry=self.metrics)

    # -- event handlers: only enqueue -----------------------------------------------------------
    def _responsible(self, binding: Obj) -> bool:
        spec = binding.get("spec") or {}
        if (spec.get("schedulerName") or DEFAULT_SCHEDULER) != self.scheduler_name:
            return False
        return (spec.get("suspension") or {}).get("scheduling") is not True

    def _on_binding(self, prefix: str, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "DELETED" or new is None or not self._responsible(new):
            return
        if event == "MODIFIED" and old is not None and \
                (old.get("metadata") or {}).get("generation") == (new.get("metadata") or {}).get("generation"):
            return
        self.queue.add(prefix + key_of(new))

    def _on_cluster(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "MODIFIED" and old is not None and new is not None:
            omd, nmd = old.get("metadata") or {}, new.get("metadata") or {}
            terminating = not omd.get("deletionTimestamp") and nmd.get("deletionTimestamp")
            if not (terminating or omd.get("labels") != nmd.get("labels")
                    or omd.get("generation") != nmd.get("generation")):
                # A status update (conditions, API enablements, resource summary): Karmada does not
                # reschedule on it; only bindings still waiting for a cluster get another try.
                self._enqueue_affected(new, unscheduled_only=True)
                return
            self._enqueue_affected(old)
            self._enqueue_affected(new)
            return
        cluster = new if new is not None else old
        if cluster is not None:
            self._enqueue_affected(cluster)

    def _enqueue_affected(self, cluster: Obj, *, unscheduled_only: bool = False) -> None:
        """Queue the bindings whose current affinity could select ``cluster`` (``enqueueAffectedBindings``)."""
        for prefix, informer in ((RB_PREFIX, self.bindings), (CRB_PREFIX, self.cluster_bindings)):
            for binding in informer.lister.list():
                if not self._responsible(binding):
                    continue
                spec, status = binding.get("spec") or {}, binding.get("status") or {}
                if unscheduled_only and _is_scheduled(status):
                    continue
                placement = spec.get("placement")
                if placement is None:
                    continue
                terms = placement.get("clusterAffinities")
                affinity: Obj | None
                if terms is not None:
                    generation = (binding.get("metadata") or {}).get("generation")
                    if status.get("schedulerObservedGeneration") != generation or not terms:
                        self.queue.add(prefix + key_of(binding))
                        continue
                    term = terms[affinity_index(terms, status.get("schedulerObservingAffinityName") or "")]
                    affinity = term
                else:
                    affinity = placement.get("clusterAffinity")
                if affinity is None or cluster_matches(cluster, affinity):
                    self.queue.add(prefix + key_of(binding))

    # -- reconcile ----------------------------------------------------------------------------------
    def _cluster_objects(self) -> list[Obj]:
        return sorted(self.clusters.lister.list(), key=cluster_name)

    async def reconcile(self, key: str) -> Result:
        if key.startswith(RB_PREFIX):
            res, informer, rest = RESOURCE_BINDINGS, self.bindings, key[len(RB_PREFIX):]
        elif key.startswith(CRB_PREFIX):
            res, informer, rest = CLUSTER_RESOURCE_BINDINGS, self.cluster_bindings, key[len(CRB_PREFIX):]
        else:
            return Result()
        cached = informer.lister.get(rest)
        if cached is None or not self._responsible(cached):
            return Result()
        md = cached.get("metadata") or {}
        if md.get("deletionTimestamp"):
            what = "resourceBinding" if res is RESOURCE_BINDINGS else "clusterResourceBinding"
            await self.events.record(cached, "Warning", EVENT_FAILED, f"skip schedule deleting {what}: {rest}")
            return Result()
        binding = copy.deepcopy(cached)
        spec: Obj = binding.setdefault("spec", {})
        status: Obj = binding.get("status") or {}
        placement = spec.get("placement")
        if placement is None:
            raise SchedulerError(f"failed to get placement from {res.kind}({rest})")
        applied = ((md.get("annotations") or {}).get(APPLIED_PLACEMENT)) or ""
        if placement_changed(placement, applied, status.get("schedulerObservingAffinityName") or ""):
            logger.info("%s: scheduling %s %s: placement changed", self.NAME, res.kind, rest)
            return await self._schedule(res, binding, "ReconcileSchedule")
        if replicas_changed(spec):
            logger.info("%s: rescheduling %s %s: replicas scaled", self.NAME, res.kind, rest)
            return await self._schedule(res, binding, "ScaleSchedule")
        if reschedule_required(spec, status):
            logger.info("%s: rescheduling %s %s: triggered", self.NAME, res.kind, rest)
            return await self._schedule(res, binding, "ReconcileSchedule")
        if not is_workload(spec) or replica_scheduling_type(placement) == DUPLICATED:
            return await self._schedule(res, binding, "ReconcileSchedule")
        if self._targets_terminating_or_gone(spec):
            logger.info("%s: rescheduling %s %s: a target cluster is deleted", self.NAME, res.kind, rest)
            return await self._schedule(res, binding, "ReconcileSchedule")
        if md.get("generation") != status.get("schedulerObservedGeneration"):
            await self.client.patch_status(res, md["name"], {"status": {
                "schedulerObservedGeneration": md.get("generation")}}, md.get("namespace"))
        return Result()

    def _targets_terminating_or_gone(self, spec: Obj) -> bool:
        clusters = {cluster_name(c): c for c in self.clusters.lister.list()}
        for target in spec.get("clusters") or []:
            cluster = clusters.get(str(target.get("name")))
            if cluster is None or (cluster.get("metadata") or {}).get("deletionTimestamp"):
                return True
        return False

    async def _schedule(self, res: Resource, binding: Obj, schedule_type: str) -> Result:
        start = time.perf_counter()
        md = binding["metadata"]
        name, namespace = md["name"], md.get("namespace")
        outcome: Outcome = self.scheduler.decide(binding, self._cluster_objects())
        for failure in outcome.term_failures:
            await self._event(res, binding, None, failure)
        error: SchedulingError | None = outcome.error
        try:
            if outcome.clusters is not None:
                await self._patch_result(res, binding, as_target_clusters(outcome.clusters))
            observed = (binding.get("status") or {}).get("schedulerObservingAffinityName") or ""
            if outcome.affinity_name is not None and outcome.affinity_name != observed:
                await self.client.patch_status(res, name, {"status": {
                    "schedulerObservingAffinityName": outcome.affinity_name}}, namespace)
        except Exception as exc:
            await self._event(res, binding, None, f"{error}; {exc}" if error else str(exc))
            self._observe(start, False, schedule_type)
            raise
        await self._event(res, binding, as_target_clusters(outcome.clusters or []) if error is None else None,
                          str(error) if error is not None else None)
        condition, final = condition_for(error)
        await self._patch_condition(res, binding, condition)
        self._observe(start, error is None, schedule_type)
        if error is not None and not final:
            raise SchedulerError(str(error))
        if isinstance(error, FitError):
            # Karmada's scheduling queue retries unschedulable bindings now and then; so does Atoll.
            return Result(requeue_after=self.unschedulable_retry)
        return Result()

    def _observe(self, start: float, ok: bool, schedule_type: str) -> None:
        result = "scheduled" if ok else "error"
        self.e2e_latency.labels(result, schedule_type).observe(time.perf_counter() - start)
        self.attempts.labels(result, schedule_type).inc()

    async def _patch_result(self, res: Resource, binding: Obj, clusters: list[Obj]) -> None:
        md, spec = binding["metadata"], binding["spec"]
        placement = placement_json(spec.get("placement") or {})
        current = spec.get("clusters") or []
        if (md.get("annotations") or {}).get(APPLIED_PLACEMENT) == placement and current == clusters:
            return
        patch = {"metadata": {"annotations": {APPLIED_PLACEMENT: placement}},
                 "spec": {"clusters": clusters or None}}
        await self.client.patch(res, md["name"], patch, md.get("namespace"))

    async def _patch_condition(self, res: Resource, binding: Obj, condition: Obj) -> None:
        md = binding["metadata"]
        status: Obj = binding.get("status") or {}
        now = _now()
        update: Obj = {"conditions": set_condition(list(status.get("conditions") or []), condition, now)}
        if condition["status"] == "True":
            update["schedulerObservedGeneration"] = md.get("generation")
            update["lastScheduledTime"] = now
        if all(status.get(k) == v for k, v in update.items()):
            return
        await self.client.patch_status(res, md["name"], {"status": update}, md.get("namespace"))

    async def _event(self, res: Resource, binding: Obj, result: list[Obj] | None, error: str | None) -> None:
        """On the binding and on its resource template, as Karmada records both."""
        resource = (binding.get("spec") or {}).get("resource") or {}
        template = {"kind": resource.get("kind", ""), "apiVersion": resource.get("apiVersion", ""),
                    "metadata": {"name": resource.get("name", ""), "namespace": resource.get("namespace", ""),
                                 "uid": resource.get("uid", "")}}
        bound = {**binding, "kind": res.kind, "apiVersion": res.api_version}
        if error is None:
            sep = "Result:" if res is RESOURCE_BINDINGS else "Result"
            message = f"{SUCCESS_MESSAGE} {sep} {{{target_clusters_string(result or [])}}}"
            kind, reason = "Normal", EVENT_SUCCEED
        else:
            message, kind, reason = error, "Warning", EVENT_FAILED
        await self.events.record(bound, kind, reason, message)
        if template["metadata"]["name"]:
            await self.events.record(template, kind, reason, message)
