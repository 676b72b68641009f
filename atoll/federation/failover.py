"""Failover: taking a workload off a failed cluster, and letting its old copy go once it runs elsewhere.

Three controllers, Karmada's ``pkg/controllers/cluster/taint_manager.go``,
``pkg/controllers/gracefuleviction`` and ``pkg/controllers/applicationfailover``:

- :class:`ClusterTaintManager` — a Cluster with ``NoExecute`` taints (the cluster status
  controller's ``cluster.karmada.io/not-ready`` and ``.../unreachable``, or a user's) loses
  every binding that does not tolerate them: the cluster leaves ``spec.clusters`` and a
  ``spec.gracefulEvictionTasks[]`` entry (reason ``TaintUntolerated``, producer
  ``TaintManager``) records it. Tolerations are the scheduled placement's
  ``clusterTolerations``; a toleration with ``tolerationSeconds`` delays the eviction to
  the taint's ``timeAdded`` plus that many seconds, one without tolerates forever.
- :class:`GracefulEvictionController` — an eviction task stays until the workload is
  Healthy on every cluster it is now scheduled to (``status.aggregatedStatus``, once the
  scheduler has seen the binding's latest generation), or its grace period
  (``gracePeriodSeconds``, else the controller's timeout, 600 s by default) has passed, or
  a user sets ``suppressDeletion: false``. While it stays, the binding controller keeps
  the Work on the evicted cluster (``ObtainBindingSpecExistingClusters``), so the old copy
  serves until the new one is up.
- :class:`ApplicationFailoverController` — a binding with ``spec.failover.application``
  whose workload stays Unhealthy on a cluster for ``decisionConditions.tolerationSeconds``
  is evicted from that cluster (reason ``ApplicationFailure``), with the policy's
  ``purgeMode``: ``Directly`` (the Work goes at once), ``Gracefully`` (a grace period,
  default 600 s) or ``Never`` (``suppressDeletion``: kept until a human decides).

Deviations from Karmada: the ``Failover`` feature gate and NoExecute eviction are on by
default (Karmada ships both off, with no default tolerations, so an untolerated taint
evicts at once here too); a binding without the applied-placement annotation is judged
by its ``spec.placement`` rather than retried until the scheduler writes one; the webhook
that stamps ``creationTimestamp`` on new tasks is replaced by the writers stamping it;
application failover does not also require ``propagateDeps`` (Karmada's webhook forces it
on); a substitute cluster counts as healthy only once it also reports as many available
replicas as its new share; the old purge mode names ``Immediately``/``Graciously`` are read as
``Directly``/``Gracefully``; the per-second eviction rate limit is not implemented.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import orjson

from atoll.api.errors import NotFound
from atoll.client import Client, Resource
from atoll.federation import kinds
from atoll.federation.kinds import CLUSTER_RESOURCE_BINDINGS, CLUSTERS, RESOURCE_BINDINGS
from atoll.federation.status import parse_time, rfc3339
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.events import EventRecorder
from atoll.machinery.informing import Informer, key_of, split_key

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
Clock = Callable[[], float]

APPLIED_PLACEMENT_ANNOTATION = "policy.karmada.io/applied-placement"
DEFAULT_GRACEFUL_EVICTION_TIMEOUT = 600.0
"""Karmada's ``--graceful-eviction-timeout`` (10 minutes)."""
DEFAULT_APPLICATION_TOLERATION_SECONDS = 300
DEFAULT_APPLICATION_GRACE_PERIOD_SECONDS = 600
PURGE_DIRECTLY = "Directly"
PURGE_GRACEFULLY = "Gracefully"
PURGE_NEVER = "Never"
_PURGE_ALIASES = {"Immediately": PURGE_DIRECTLY, "Graciously": PURGE_GRACEFULLY}
RB_APPLICATION_FAILOVER_PRODUCER = "resource-binding-application-failover-controller"
CRB_APPLICATION_FAILOVER_PRODUCER = "cluster-resource-binding-application-failover-controller"
EVENT_EVICT_SUCCEED = "EvictWorkloadFromClusterSucceed"
EVENT_EVICT_FAILED = "EvictWorkloadFromClusterFailed"
MIN_REQUEUE = 0.05


# -- taints and tolerations -----------------------------------------------------------------------------


def no_execute_taints(taints: Iterable[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    return [t for t in taints or [] if t.get("effect") == "NoExecute"]


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """``Toleration.ToleratesTaint``: effect (empty: any), key (empty: any, with Exists), then the operator."""
    if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
        return False
    if toleration.get("key") and toleration.get("key") != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def matching_tolerations(taints: Sequence[Mapping[str, Any]],
                         tolerations: Sequence[Mapping[str, Any]]) -> tuple[bool, list[Mapping[str, Any]]]:
    """``GetMatchingTolerations``: whether every taint is tolerated, and the first toleration for each."""
    if not taints:
        return True, []
    used = []
    for taint in taints:
        match = next((t for t in tolerations if tolerates(t, taint)), None)
        if match is None:
            return False, []
        used.append(match)
    return True, used


def min_toleration_time(taints: Sequence[Mapping[str, Any]], used: Sequence[Mapping[str, Any]],
                        now: float) -> float:
    """``GetMinTolerationTimeWithCurrentTime``: seconds until the first toleration runs out.

    ``-1``: tolerated forever; ``0``: already run out (or nothing tolerates the taints).
    """
    if not taints:
        return -1
    if not used:
        return 0
    triggers = []
    for toleration in used:
        seconds = toleration.get("tolerationSeconds")
        if seconds is None:
            continue
        for taint in taints:
            added = parse_time(taint.get("timeAdded"))
            if added is not None and tolerates(toleration, taint):
                triggers.append(added + int(seconds))
    if not triggers:
        return -1
    first = min(triggers)
    return 0 if first <= now else first - now


def eviction_delay(taints: Sequence[Mapping[str, Any]], tolerations: Sequence[Mapping[str, Any]],
                   now: float) -> float | None:
    """When a binding must leave a cluster with these NoExecute taints: ``0`` now, ``None`` never."""
    if not taints:
        return None
    tolerated, used = matching_tolerations(taints, tolerations)
    if not tolerated:
        return 0
    delay = min_toleration_time(taints, used, now)
    return None if delay < 0 else delay


def applied_placement(binding: Mapping[str, Any]) -> Mapping[str, Any]:
    """The placement the binding was last scheduled with (the scheduler's annotation), else its spec's."""
    text = ((binding.get("metadata") or {}).get("annotations") or {}).get(APPLIED_PLACEMENT_ANNOTATION)
    if text:
        try:
            placement = orjson.loads(text)
        except orjson.JSONDecodeError:
            logger.warning("unreadable %s annotation on %s", APPLIED_PLACEMENT_ANNOTATION, key_of(dict(binding)))
        else:
            if isinstance(placement, dict):
                return placement
    return (binding.get("spec") or {}).get("placement") or {}


# -- graceful eviction tasks ----------------------------------------------------------------------------


def purge_mode(value: object, default: str = PURGE_GRACEFULLY) -> str:
    text = str(value or "")
    text = _PURGE_ALIASES.get(text, text)
    return text if text in (PURGE_DIRECTLY, PURGE_GRACEFULLY, PURGE_NEVER) else default


def cluster_purge_mode(failover: Mapping[str, Any] | None, default: str) -> str:
    """``getPurgeMode``: the binding's ``failover.cluster.purgeMode`` (Gracefully when empty), else the default."""
    cluster = (failover or {}).get("cluster")
    if isinstance(cluster, Mapping):
        return purge_mode(cluster.get("purgeMode"))
    return PURGE_DIRECTLY if default == PURGE_DIRECTLY else PURGE_GRACEFULLY


def in_eviction_tasks(spec: Mapping[str, Any], cluster: str) -> bool:
    return any(t.get("fromCluster") == cluster for t in spec.get("gracefulEvictionTasks") or [])


def graceful_evict_cluster(spec: Mapping[str, Any], cluster: str, *, producer: str, reason: str, now: float,
                           purge: str = PURGE_GRACEFULLY, message: str = "",
                           grace_period_seconds: int | None = None, suppress_deletion: bool | None = None,
                           clusters_before_failover: Sequence[str] | None = None) -> Obj:
    """``GracefulEvictCluster``: the spec without ``cluster`` in its result, plus one eviction task for it.

    A cluster not in ``spec.clusters`` leaves the spec as it is; one already being evicted
    keeps its first task.
    """
    out = copy.deepcopy(dict(spec))
    clusters = list(out.get("clusters") or [])
    target = next((c for c in clusters if c.get("name") == cluster), None)
    if target is None:
        return out
    out["clusters"] = [c for c in clusters if c is not target]
    if in_eviction_tasks(out, cluster):
        return out
    task: Obj = {"fromCluster": cluster, "purgeMode": purge, "reason": reason, "producer": producer,
                 "creationTimestamp": rfc3339(now)}
    if message:
        task["message"] = message
    if int(target.get("replicas") or 0) > 0:
        task["replicas"] = int(target["replicas"])
    if grace_period_seconds is not None:
        task["gracePeriodSeconds"] = int(grace_period_seconds)
    if suppress_deletion is not None:
        task["suppressDeletion"] = suppress_deletion
    if clusters_before_failover:
        task["clustersBeforeFailover"] = list(clusters_before_failover)
    out["gracefulEvictionTasks"] = [*(out.get("gracefulEvictionTasks") or []), task]
    return out


def _serves_share(target: Mapping[str, Any], item: Mapping[str, Any]) -> bool:
    """A replica workload reporting fewer available replicas than its new share is not there yet."""
    share = target.get("replicas")
    status = item.get("status")
    if not isinstance(status, Mapping) or not isinstance(share, int) or share <= 0:
        return True
    available = status.get("availableReplicas")
    return not isinstance(available, int) or available >= share


def all_scheduled_healthy(clusters: Sequence[Mapping[str, Any]], aggregated: Sequence[Mapping[str, Any]]) -> bool:
    """``allScheduledResourceInHealthyState``: every scheduled cluster reports the workload Healthy.

    And, beyond Karmada, with as many available replicas as its new share: right after the
    scheduler moves the evicted replicas, the substitute's status still describes its old
    (smaller, healthy) share, which would let the old copy go before the new ones run.
    """
    items = {str(i.get("clusterName")): i for i in aggregated}
    for target in clusters:
        item = items.get(str(target.get("name")))
        if item is None or item.get("health") != "Healthy" or not _serves_share(target, item):
            return False
    return True


def _task_timeout(task: Mapping[str, Any], default: float) -> float:
    grace = task.get("gracePeriodSeconds")
    return float(grace) if grace is not None else default


def assess_eviction_tasks(tasks: Sequence[Mapping[str, Any]], now: float, *, timeout: float,
                          clusters: Sequence[Mapping[str, Any]], aggregated: Sequence[Mapping[str, Any]],
                          scheduled: bool) -> tuple[list[Obj], list[str]]:
    """``assessEvictionTasks``: the tasks to keep, and the clusters whose tasks are done."""
    kept: list[Obj] = []
    done: list[str] = []
    for task in tasks:
        created = parse_time(task.get("creationTimestamp"))
        if created is None:
            kept.append({**task, "creationTimestamp": rfc3339(now)})  # a new task starts its clock now
            continue
        suppress = task.get("suppressDeletion")
        if suppress is not None:
            # Set by a human (or purgeMode Never): true keeps the copy, false lets it go at once.
            if suppress:
                kept.append(dict(task))
            else:
                done.append(str(task.get("fromCluster")))
            continue
        if now > created + _task_timeout(task, timeout):
            done.append(str(task.get("fromCluster")))
        elif scheduled and all_scheduled_healthy(clusters, aggregated):
            done.append(str(task.get("fromCluster")))
        else:
            kept.append(dict(task))
    return kept, done


def next_retry(tasks: Sequence[Mapping[str, Any]], timeout: float, now: float) -> float | None:
    """``nextRetry``: seconds until the first task times out (``None``: only suppressed tasks, or none)."""
    waits = [created + _task_timeout(t, timeout) - now for t in tasks if t.get("suppressDeletion") is None
             and (created := parse_time(t.get("creationTimestamp"))) is not None]
    return min(waits) if waits else None


def has_been_scheduled(binding: Mapping[str, Any]) -> bool:
    """The scheduler has seen the latest spec, so ``spec.clusters`` is its answer to the eviction."""
    md, status = binding.get("metadata") or {}, binding.get("status") or {}
    return status.get("schedulerObservedGeneration") is not None and int(
        status["schedulerObservedGeneration"]) == int(md.get("generation") or 0)


# -- application failover -------------------------------------------------------------------------------


def unhealthy_and_others(aggregated: Sequence[Mapping[str, Any]],
                         spec: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """``distinguishUnhealthyClustersWithOthers``: Unhealthy clusters not already being evicted; the rest."""
    unhealthy, others = [], []
    for item in aggregated:
        cluster = str(item.get("clusterName"))
        if item.get("health") == "Unhealthy" and not in_eviction_tasks(spec, cluster):
            unhealthy.append(cluster)
        if item.get("health") in ("Healthy", "Unknown"):
            others.append(cluster)
    return unhealthy, others


def application_eviction_options(application: Mapping[str, Any]) -> dict[str, Any]:
    """``buildTaskOptions``: the purge mode and what it implies for the task."""
    mode = purge_mode(application.get("purgeMode"))
    options: dict[str, Any] = {"purge": mode}
    if mode == PURGE_GRACEFULLY:
        grace = application.get("gracePeriodSeconds")
        options["grace_period_seconds"] = int(grace) if grace is not None else DEFAULT_APPLICATION_GRACE_PERIOD_SECONDS
    elif mode == PURGE_NEVER:
        options["suppress_deletion"] = True
    return options


class UnhealthySince:
    """When each binding's workload was first seen Unhealthy on each cluster (``workloadUnhealthyMap``)."""

    def __init__(self) -> None:
        self._since: dict[str, dict[str, float]] = {}

    def detect(self, key: str, unhealthy: Sequence[str], toleration: float, now: float) -> tuple[float | None,
                                                                                                   list[str]]:
        """The clusters whose toleration ran out, and the seconds until the next one would (``None``: none)."""
        seen = self._since.setdefault(key, {})
        wait: float | None = None
        evict = []
        for cluster in unhealthy:
            since = seen.setdefault(cluster, now)
            left = since + toleration - now
            if left <= 0:
                evict.append(cluster)
            elif wait is None or left < wait:
                wait = left
        return wait, evict

    def forget(self, key: str, *, keep: set[str] | None = None, healthy: Iterable[str] = ()) -> None:
        """Drop a binding (``keep=None``), or the clusters no longer scheduled and those healthy again."""
        if keep is None:
            self._since.pop(key, None)
            return
        seen = self._since.get(key)
        if seen is None:
            return
        for cluster in [c for c in seen if c not in keep or c in set(healthy)]:
            del seen[cluster]
        if not seen:
            del self._since[key]

    def tracks(self, key: str) -> bool:
        return key in self._since

    def since(self, key: str, cluster: str) -> float | None:
        return self._since.get(key, {}).get(cluster)


# -- controllers ----------------------------------------------------------------------------------------


def _binding_resource(key: str) -> Resource:
    """A ResourceBinding's key is ``namespace/name``; a ClusterResourceBinding's is its bare name."""
    namespace, _ = split_key(key)
    return RESOURCE_BINDINGS if namespace else CLUSTER_RESOURCE_BINDINGS


def template_ref(binding: Mapping[str, Any]) -> Obj:
    """The template as an event's involved object."""
    ref = (binding.get("spec") or {}).get("resource") or {}
    md = {k: v for k, v in (("name", ref.get("name")), ("namespace", ref.get("namespace")),
                            ("uid", ref.get("uid"))) if v}
    return {"apiVersion": ref.get("apiVersion", ""), "kind": ref.get("kind", ""), "metadata": md}


class _BindingController(Controller):
    """Shared wiring: both binding kinds watched, keys telling them apart, events for evictions."""

    def __init__(self, client: Client, *, clock: Clock) -> None:
        super().__init__()
        self.client = client
        self.clock = clock
        self.recorder = EventRecorder(client, self.NAME)
        self.bindings = Informer(client, RESOURCE_BINDINGS)
        self.cluster_bindings = Informer(client, CLUSTER_RESOURCE_BINDINGS)

    def binding(self, key: str) -> Obj | None:
        namespace, _ = split_key(key)
        return (self.bindings if namespace else self.cluster_bindings).lister.get(key)

    def all_bindings(self) -> list[Obj]:
        return [*self.bindings.lister.list(), *self.cluster_bindings.lister.list()]

    async def record_eviction(self, binding: Obj, cluster: str, error: Exception | None) -> None:
        if error is None:
            message, reason, type_ = f"Evict from cluster {cluster} succeed.", EVENT_EVICT_SUCCEED, "Normal"
        else:
            message, reason, type_ = f"Evict from cluster {cluster} failed.", EVENT_EVICT_FAILED, "Warning"
        await self.recorder.record(binding, type_, reason, message)
        await self.recorder.record(template_ref(binding), type_, reason, message)

    async def write_spec(self, key: str, binding: Obj, spec: Obj) -> Obj:
        """Replace the binding with ``spec`` (optimistic: a stale copy raises Conflict, and is retried)."""
        updated = copy.deepcopy(binding)
        updated["spec"] = spec
        return await self.client.replace(_binding_resource(key), updated)


class ClusterTaintManager(_BindingController):
    """Evicts bindings from clusters whose NoExecute taints they do not tolerate (Karmada's taint-manager).

    ``ClusterTaintManager(client, *, enabled=True, purge_mode="Gracefully", grace_period_seconds=None,
    clock=time.time)``: ``purge_mode`` is ``--no-execute-taint-eviction-purge-mode`` (used when a
    binding has no ``failover.cluster``), ``grace_period_seconds`` is written on each task
    (unset: the graceful eviction controller's timeout applies). Keys are cluster names.
    """

    NAME: ClassVar[str] = "taint-manager"

    def __init__(self, client: Client, *, enabled: bool = True, purge_mode: str = PURGE_GRACEFULLY,
                 grace_period_seconds: int | None = None, clock: Clock = time.time) -> None:
        super().__init__(client, clock=clock)
        self.enabled = enabled
        self.purge_mode = purge_mode
        self.grace_period_seconds = grace_period_seconds
        self.clusters = self.watch(Informer(client, CLUSTERS), key_for=self._tainted_cluster)
        self.watch(self.bindings, key_for=self._tainted_targets)
        self.watch(self.cluster_bindings, key_for=self._tainted_targets)

    def _tainted_cluster(self, cluster: Obj) -> list[str]:
        if no_execute_taints((cluster.get("spec") or {}).get("taints")):
            return [key_of(cluster)]
        return []

    def _tainted_targets(self, binding: Obj) -> list[str]:
        """A binding placed on a tainted cluster (newly scheduled, or its tolerations changed)."""
        out = []
        for target in (binding.get("spec") or {}).get("clusters") or []:
            cluster = self.clusters.lister.get(str(target.get("name")))
            if cluster is not None and self._tainted_cluster(cluster):
                out.append(str(target.get("name")))
        return out

    async def reconcile(self, key: str) -> Result:
        cluster = self.clusters.lister.get(key)
        if cluster is None or not self.enabled:
            return Result()
        taints = no_execute_taints((cluster.get("spec") or {}).get("taints"))
        if not taints:
            return Result()
        now = self.clock()
        wait: float | None = None
        failures: list[str] = []
        for binding in self.all_bindings():
            md, spec = binding.get("metadata") or {}, binding.get("spec") or {}
            if md.get("deletionTimestamp") or not any(c.get("name") == key for c in spec.get("clusters") or []):
                continue
            delay = eviction_delay(taints, applied_placement(binding).get("clusterTolerations") or [], now)
            if delay is None:
                continue  # tolerated forever
            if delay > 0:
                wait = delay if wait is None else min(wait, delay)
                continue
            bkey = key_of(binding)
            new_spec = graceful_evict_cluster(
                spec, key, producer=kinds.EVICTION_PRODUCER_TAINT_MANAGER,
                reason=kinds.EVICTION_REASON_TAINT_UNTOLERATED, now=now,
                purge=cluster_purge_mode(spec.get("failover"), self.purge_mode),
                grace_period_seconds=self.grace_period_seconds)
            try:
                await self.write_spec(bkey, binding, new_spec)
            except NotFound:
                continue
            except Exception as exc:
                await self.record_eviction(binding, key, exc)
                failures.append(f"{bkey}: {exc}")
                continue
            logger.info("%s: evicted %s from cluster %s (untolerated NoExecute taints)", self.NAME, bkey, key)
            await self.record_eviction(binding, key, None)
        if failures:
            raise RuntimeError("; ".join(failures))
        return Result(requeue_after=None if wait is None else max(wait, MIN_REQUEUE))


class GracefulEvictionController(_BindingController):
    """Removes graceful eviction tasks once they are done (Karmada's graceful-eviction-controller).

    ``GracefulEvictionController(client, *, timeout=600.0, clock=time.time)``: ``timeout`` is
    ``--graceful-eviction-timeout``, for tasks without ``gracePeriodSeconds``.
    """

    NAME: ClassVar[str] = "graceful-eviction-controller"

    def __init__(self, client: Client, *, timeout: float = DEFAULT_GRACEFUL_EVICTION_TIMEOUT,
                 clock: Clock = time.time) -> None:
        super().__init__(client, clock=clock)
        self.timeout = timeout
        for informer in (self.bindings, self.cluster_bindings):
            self.watch(informer, key_for=self._with_tasks)

    @staticmethod
    def _with_tasks(binding: Obj) -> list[str]:
        return [key_of(binding)] if (binding.get("spec") or {}).get("gracefulEvictionTasks") else []

    async def reconcile(self, key: str) -> Result:
        binding = self.binding(key)
        if binding is None or (binding.get("metadata") or {}).get("deletionTimestamp"):
            return Result()
        spec, status = binding.get("spec") or {}, binding.get("status") or {}
        tasks = spec.get("gracefulEvictionTasks") or []
        if not tasks:
            return Result()
        now = self.clock()
        kept, done = assess_eviction_tasks(tasks, now, timeout=self.timeout, clusters=spec.get("clusters") or [],
                                           aggregated=status.get("aggregatedStatus") or [],
                                           scheduled=has_been_scheduled(binding))
        if kept != tasks:
            md = binding["metadata"]
            patch = {"metadata": {"resourceVersion": md.get("resourceVersion")},
                     "spec": {"gracefulEvictionTasks": kept}}
            await self.client.patch(_binding_resource(key), md["name"], patch, md.get("namespace"))
            for cluster in done:
                logger.info("%s: eviction of %s from cluster %s is complete", self.NAME, key, cluster)
                await self.record_eviction(binding, cluster, None)
        retry = next_retry(kept, self.timeout, now)
        return Result(requeue_after=None if retry is None else max(retry, MIN_REQUEUE))


class ApplicationFailoverController(_BindingController):
    """Evicts a binding from a cluster where its workload stays Unhealthy (Karmada's application failover).

    ``ApplicationFailoverController(client, *, clock=time.time)``. How long a workload was
    seen Unhealthy is kept in memory, as Karmada does: a restart starts the count afresh.
    """

    NAME: ClassVar[str] = "application-failover-controller"

    def __init__(self, client: Client, *, clock: Clock = time.time) -> None:
        super().__init__(client, clock=clock)
        self.unhealthy = UnhealthySince()
        for informer in (self.bindings, self.cluster_bindings):
            self.watch(informer, key_for=self._with_application_failover)

    def _with_application_failover(self, binding: Obj) -> list[str]:
        """Bindings with ``failover.application``, and those that had it (to forget what was seen)."""
        key = key_of(binding)
        return [key] if self.application_failover(binding) is not None or self.unhealthy.tracks(key) else []

    @staticmethod
    def application_failover(binding: Mapping[str, Any]) -> Mapping[str, Any] | None:
        application = ((binding.get("spec") or {}).get("failover") or {}).get("application")
        return application if isinstance(application, Mapping) else None

    async def reconcile(self, key: str) -> Result:
        binding = self.binding(key)
        application = None if binding is None else self.application_failover(binding)
        aggregated = [] if binding is None else (binding.get("status") or {}).get("aggregatedStatus") or []
        if binding is None or application is None or not aggregated or (binding.get("metadata") or {}).get(
                "deletionTimestamp"):
            self.unhealthy.forget(key)
            return Result()
        spec = binding.get("spec") or {}
        toleration = (application.get("decisionConditions") or {}).get("tolerationSeconds")
        toleration = DEFAULT_APPLICATION_TOLERATION_SECONDS if toleration is None else int(toleration)
        scheduled = {str(c.get("name")) for c in spec.get("clusters") or []}
        unhealthy, others = unhealthy_and_others(aggregated, spec)
        now = self.clock()
        wait, evict = self.unhealthy.detect(key, [c for c in unhealthy if c in scheduled], toleration, now)
        if evict:
            producer = RB_APPLICATION_FAILOVER_PRODUCER if split_key(key)[0] else CRB_APPLICATION_FAILOVER_PRODUCER
            new_spec: Obj = dict(spec)
            for cluster in evict:
                new_spec = graceful_evict_cluster(new_spec, cluster, producer=producer,
                                                  reason=kinds.EVICTION_REASON_APPLICATION_FAILURE, now=now,
                                                  **application_eviction_options(application))
            try:
                await self.write_spec(key, binding, new_spec)
            except Exception as exc:
                for cluster in evict:
                    await self.record_eviction(binding, cluster, exc)
                raise
            for cluster in evict:
                logger.info("%s: evicted %s from cluster %s (unhealthy for %ss)", self.NAME, key, cluster,
                            toleration)
                await self.record_eviction(binding, cluster, None)
                scheduled.discard(cluster)
        self.unhealthy.forget(key, keep=scheduled, healthy=others)
        return Result(requeue_after=None if wait is None else max(math.ceil(wait * 1000) / 1000, MIN_REQUEUE))
