"""Job controller: run pods to completion, count them exactly once, finish with kube's conditions.

Counting survives pod deletion the way kube's "tracking with finalizers" does: every
pod is created with the ``batch.kubernetes.io/job-tracking`` finalizer; a finished pod
(Succeeded, Failed, or — with ``podReplacementPolicy: TerminatingOrFailed`` — deleted
before it succeeded) is first recorded by UID in ``status.uncountedTerminatedPods``,
then its finalizer is removed, then it moves into ``succeeded``/``failed``. Whatever
step a crash interrupts, the next sync finishes it without losing or double-counting a
pod. (For Indexed Jobs the completed indexes, ``status.completedIndexes``, already make
succeeded pods idempotent.)

Decisions, as ``syncJob``/``manageJob`` make them:

* ``parallelism``/``completions``: keep ``min(parallelism, completions - succeeded)``
  pods active (``parallelism`` until the first success without ``completions``);
  Indexed Jobs create the lowest pending indexes (annotation and label
  ``batch.kubernetes.io/job-completion-index``, env ``JOB_COMPLETION_INDEX``, hostname
  ``<job>-<index>``) and remove duplicates.
* Failures back off before replacements: ``base * 2**(failures-1)`` capped (kube: 10 s
  to 6 min; ``backoff_base``/``backoff_max`` make it fast in tests); a success resets it.
* More failures than ``backoffLimit`` → ``FailureTarget`` (``BackoffLimitExceeded``);
  past ``activeDeadlineSeconds`` → ``FailureTarget`` (``DeadlineExceeded``); active pods
  are deleted and ``Failed`` follows once none is left terminating. Enough successes →
  ``SuccessCriteriaMet`` then ``Complete`` (reason ``CompletionsReached``) with
  ``completionTime``. This is kube 1.32's delayed terminal condition.
* ``podFailurePolicy``: a failed pod matching a ``FailJob`` rule (exit codes or pod
  conditions) fails the Job at once (reason ``PodFailurePolicy``); ``Ignore`` replaces it
  without counting; ``Count`` is the default. With ``restartPolicy: OnFailure`` container
  restarts count against ``backoffLimit``.
* ``successPolicy`` (Indexed Jobs): the first rule met (``succeededIndexes`` and/or
  ``succeededCount``) gives ``SuccessCriteriaMet`` (reason ``SuccessPolicy``), lingering
  pods are removed, then ``Complete``.
* ``spec.managedBy`` other than ``kubernetes.io/job-controller``: the Job is left alone.
* ``suspend`` deletes active pods (uncounted: their finalizer goes first), sets
  ``Suspended``; resuming resets ``startTime`` so the deadline counts active time only.
* ``ttlSecondsAfterFinished`` deletes a finished Job (foreground, as kube's TTL
  controller does) that long after it finished.

The controller also keeps kube's "expectations": it does not create or delete again
for a Job until the pods it created, deleted or un-finalized show up so in its cache,
and it ignores a cached Job older than its own last status write.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from atoll.api.errors import AlreadyExists, Conflict, NotFound
from atoll.client import Client, Resource
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.events import EventRecorder
from atoll.machinery.informing import Informer, split_key

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS = Resource("v1", "pods", True, "Pod")
JOBS = Resource("batch/v1", "jobs", True, "Job")
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
MANAGED_BY = "kubernetes.io/job-controller"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
INDEX_ENV = "JOB_COMPLETION_INDEX"
DEFAULT_BACKOFF = 10.0
MAX_BACKOFF = 360.0
MAX_PODS_PER_SYNC = 500
PARALLEL_REQUESTS = 16
EXPECTATION_TIMEOUT = 300.0
"""Give up waiting for the cache to show our own writes after this long (kube: 5 min)."""


# -- pure decisions ----------------------------------------------------------------------------


def parse_time(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def backoff_remaining(failures: int, last_failure: float, now: float, *, base: float = DEFAULT_BACKOFF,
                      cap: float = MAX_BACKOFF) -> float:
    """Seconds until the next pod may be created after ``failures`` consecutive failures."""
    if failures <= 0:
        return 0.0
    delay: float = min(cap, base * 2.0 ** min(failures - 1, 32))
    return max(0.0, last_failure + delay - now)


def want_active(*, completions: int | None, parallelism: int, succeeded: int, active: int) -> int:
    if completions is None:
        return active if succeeded > 0 else parallelism
    return max(0, min(parallelism, completions - succeeded))


def is_complete(*, completions: int | None, succeeded: int, active: int) -> bool:
    if completions is None:
        return succeeded > 0 and active == 0
    return succeeded >= completions and active == 0


def past_deadline(job: Obj, now: dt.datetime) -> float | None:
    """Seconds past ``activeDeadlineSeconds`` (>= 0 means exceeded); None without a deadline or while suspended."""
    spec, status = job.get("spec") or {}, job.get("status") or {}
    deadline = spec.get("activeDeadlineSeconds")
    start = parse_time(status.get("startTime"))
    if deadline is None or start is None or spec.get("suspend"):
        return None
    return (now - start).total_seconds() - float(deadline)


def parse_indexes(text: str) -> set[int]:
    """``"1,3-5"`` → {1, 3, 4, 5} (``status.completedIndexes``)."""
    out: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            out.update(range(int(low), int(high or low) + 1))
        except ValueError:
            continue
    return out


def format_indexes(indexes: Iterable[int]) -> str:
    ordered = sorted(set(indexes))
    runs: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        runs.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(runs)


def pending_indexes(completions: int, *, succeeded: set[int], active: set[int], count: int) -> list[int]:
    """The lowest ``count`` indexes neither completed nor running (kube's ``firstPendingIndexes``)."""
    out: list[int] = []
    for ix in range(completions):
        if len(out) >= count:
            break
        if ix not in succeeded and ix not in active:
            out.append(ix)
    return out


def index_of(pod: Obj) -> int | None:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(INDEX_KEY)
    try:
        return int(value) if value is not None and str(value).isdigit() else None
    except ValueError:
        return None


def is_terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_active(pod: Obj) -> bool:
    return not is_terminating(pod) and phase(pod) not in ("Succeeded", "Failed")


def is_pod_failed(pod: Obj, job: Obj) -> bool:
    """Failed, or deleted before succeeding unless ``podReplacementPolicy: Failed`` waits for the phase."""
    if phase(pod) == "Failed":
        return True
    if ((job.get("spec") or {}).get("podReplacementPolicy") or "TerminatingOrFailed") == "Failed":
        return False
    return is_terminating(pod) and phase(pod) != "Succeeded"


def match_failure_policy(policy: Obj | None, pod: Obj) -> tuple[str | None, str]:
    """The action of the first ``podFailurePolicy`` rule the failed pod matches, with kube's message.

    ``(None, "")`` when no rule matches: the failure counts toward ``backoffLimit``.
    Successful container exits (code 0) never match ``onExitCodes``.
    """
    md, status = pod.get("metadata") or {}, pod.get("status") or {}
    where = f"{md.get('namespace')}/{md.get('name')}"
    for i, rule in enumerate((policy or {}).get("rules") or []):
        action = str(rule.get("action") or "")
        on_exit = rule.get("onExitCodes")
        if on_exit:
            wanted = {int(v) for v in on_exit.get("values") or []}
            for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
                if on_exit.get("containerName") and cs.get("name") != on_exit["containerName"]:
                    continue
                code = ((cs.get("state") or {}).get("terminated") or {}).get("exitCode")
                if code is None or int(code) == 0:
                    continue
                if (int(code) in wanted) == (on_exit.get("operator") == "In"):
                    return action, (f"Container {cs.get('name')} for pod {where} failed with exit code {code} "
                                    f"matching {action} rule at index {i}")
        for pattern in rule.get("onPodConditions") or []:
            for c in status.get("conditions") or []:
                if c.get("type") == pattern.get("type") and c.get("status") == (pattern.get("status") or "True"):
                    return action, f"Pod {where} has condition {c.get('type')} matching {action} rule at index {i}"
    return None, ""


def fail_job_message(job: Obj, pods: list[Obj]) -> str | None:
    """The message of the first failed pod that matches a ``FailJob`` rule (kube's ``getFailJobMessage``)."""
    policy = (job.get("spec") or {}).get("podFailurePolicy")
    if not policy:
        return None
    for p in pods:
        if is_pod_failed(p, job):
            action, message = match_failure_policy(policy, p)
            if action == "FailJob":
                return message
    return None


def match_success_policy(policy: Obj | None, completions: int, succeeded: set[int]) -> str | None:
    """kube's ``matchSuccessPolicy`` for Indexed Jobs: the message of the first rule met, else None.

    A rule with ``succeededIndexes`` needs those indexes done (or ``succeededCount`` of them);
    a rule with only ``succeededCount`` needs that many indexes done.
    """
    for i, rule in enumerate((policy or {}).get("rules") or []):
        count = rule.get("succeededCount")
        if rule.get("succeededIndexes") is not None:
            required = {ix for ix in parse_indexes(str(rule["succeededIndexes"])) if ix < completions}
            if not required:
                continue
            done = len(required & succeeded)
            if done >= (int(count) if count is not None else len(required)):
                return f"Matched rules at index {i}"
        elif count is not None and len(succeeded) >= int(count):
            return f"Matched rules at index {i}"
    return None


def past_backoff_limit_on_failure(job: Obj, pods: list[Obj]) -> bool:
    """``restartPolicy: OnFailure``: the kubelet restarts containers in place, so restarts are the failures."""
    spec = job.get("spec") or {}
    if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") != "OnFailure":
        return False
    restarts = sum(int(cs.get("restartCount") or 0) for p in pods if phase(p) in ("Running", "Pending")
                   for cs in [*((p.get("status") or {}).get("initContainerStatuses") or []),
                              *((p.get("status") or {}).get("containerStatuses") or [])])
    limit = int(spec.get("backoffLimit", 6))
    return restarts > 0 if limit == 0 else restarts >= limit


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def has_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or [])


def removal_rank(pod: Obj) -> tuple[int, int, int, float]:
    """Pods to remove first: unscheduled, pending, not ready, newest (kube's ``ActivePods`` order)."""
    spec = pod.get("spec") or {}
    created = parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
    return (1 if spec.get("nodeName") else 0, 1 if phase(pod) == "Running" else 0, 1 if is_ready(pod) else 0,
            -created.timestamp() if created else 0.0)


def condition(conditions: list[Obj], type_: str) -> Obj | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def ensure_condition(conditions: list[Obj], type_: str, status: str, reason: str, message: str,
                     now: str) -> tuple[list[Obj], bool]:
    """kube's ``ensureJobConditionStatus``: update or append (never append a False one)."""
    out = [dict(c) for c in conditions]
    current = condition(out, type_)
    if current is None:
        if status == "False":
            return out, False
        out.append({"type": type_, "status": status, "lastProbeTime": now, "lastTransitionTime": now,
                    "reason": reason, "message": message})
        return out, True
    if current.get("status") == status and current.get("reason") == reason and current.get("message") == message:
        return out, False
    if current.get("status") != status:
        current["lastTransitionTime"] = now
    current.update({"status": status, "reason": reason, "message": message, "lastProbeTime": now})
    return out, True


def finished_condition(job: Obj) -> Obj | None:
    """The terminal condition (Complete or Failed, True) if the Job has one."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            found: Obj = c
            return found
    return None


def controller_of(obj: Obj) -> Obj | None:
    return next((r for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if r.get("controller")), None)


def with_index(template: Obj, job_name: str, ix: int) -> Obj:
    """The pod template for completion index ``ix`` (annotation, label, env, hostname)."""
    template = copy.deepcopy(template)
    md = template.setdefault("metadata", {})
    md.setdefault("annotations", {})[INDEX_KEY] = str(ix)
    md.setdefault("labels", {})[INDEX_KEY] = str(ix)
    spec = template.setdefault("spec", {})
    spec["hostname"] = f"{job_name}-{ix}"
    env = {"name": INDEX_ENV, "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}}
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if not any(e.get("name") == INDEX_ENV for e in c.get("env") or []):
                c["env"] = [*(c.get("env") or []), dict(env)]
    return template


# -- the controller ----------------------------------------------------------------------------


@dataclass
class Expectations:
    """What this controller wrote for one Job and waits to see in its caches."""

    creates: set[str] = field(default_factory=set)
    deletes: set[str] = field(default_factory=set)
    finalizers: set[str] = field(default_factory=set)
    """UIDs whose tracking finalizer was removed (not to be counted again from a stale cache)."""
    job_version: str = ""
    since: float = 0.0

    def reconcile_with(self, pods: list[Obj]) -> None:
        by_name = {p["metadata"]["name"]: p for p in pods}
        by_uid = {p["metadata"].get("uid"): p for p in pods}
        self.creates = {n for n in self.creates if n not in by_name}
        self.deletes = {u for u in self.deletes if u in by_uid and not is_terminating(by_uid[u])}
        self.finalizers = {u for u in self.finalizers if u in by_uid and has_finalizer(by_uid[u])}

    @property
    def pods_settled(self) -> bool:
        return (not self.creates and not self.deletes) or time.monotonic() - self.since > EXPECTATION_TIMEOUT


@dataclass
class BackoffRecord:
    failures: int = 0
    last_failure: float = 0.0


def version_older(cached: str, written: str) -> bool:
    try:
        return int(cached) < int(written)
    except ValueError:
        return False


class JobController(Controller):
    NAME: ClassVar[str] = "job-controller"

    def __init__(self, client: Client, *, backoff_base: float = DEFAULT_BACKOFF,
                 backoff_max: float = MAX_BACKOFF) -> None:
        super().__init__()
        self.client = client
        self.events = EventRecorder(client, self.NAME)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._expectations: dict[str, Expectations] = {}
        self._backoff: dict[str, BackoffRecord] = {}
        self.jobs = self.watch(Informer(client, JOBS))
        self.pods = self.watch(Informer(client, PODS), key_for=self._owner_keys)

    @staticmethod
    def _owner_keys(pod: Obj) -> list[str]:
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "Job":
            return []
        return [f"{(pod.get('metadata') or {}).get('namespace')}/{ref['name']}"]

    def _pods_of(self, namespace: str | None, name: str) -> list[Obj]:
        return [p for p in self.pods.lister.list(namespace)
                if (ref := controller_of(p)) is not None and ref.get("kind") == "Job" and ref.get("name") == name]

    async def reconcile(self, key: str) -> Result:
        ns, name = split_key(key)
        job = self.jobs.lister.get(key)
        if job is not None and (job.get("spec") or {}).get("managedBy") not in (None, MANAGED_BY):
            return Result()  # another controller (a federation, a batch system) runs this Job
        candidates = self._pods_of(ns, name)
        uid = (job or {}).get("metadata", {}).get("uid")
        strays = [p for p in candidates if (controller_of(p) or {}).get("uid") != uid and has_finalizer(p)]
        if strays:
            # Pods of a deleted (or replaced) Job: nothing will count them, so let them go.
            await self._remove_finalizers(strays)
        if job is None:
            self._expectations.pop(key, None)
            self._backoff.pop(key, None)
            return Result()
        pods = [p for p in candidates if (controller_of(p) or {}).get("uid") == uid]
        expect = self._expectations.setdefault(key, Expectations())
        expect.reconcile_with(pods)
        if expect.job_version and version_older(str(job["metadata"].get("resourceVersion") or ""),
                                                 expect.job_version):
            return Result()  # our own last status write has not reached the cache; its event brings us back
        done = finished_condition(job)
        if done is not None:
            self._backoff.pop(key, None)
            leftovers = [p for p in pods if has_finalizer(p)]
            if leftovers:
                await self._remove_finalizers(leftovers)
            return await self._expire(job, done)
        return await self._sync(key, copy.deepcopy(job), pods, expect)

    async def _sync(self, key: str, job: Obj, pods: list[Obj], expect: Expectations) -> Result:
        md, spec = job["metadata"], job.get("spec") or {}
        status: Obj = job.setdefault("status", {})
        original = copy.deepcopy(status)
        now_dt = dt.datetime.now(dt.UTC)
        now = rfc3339(now_dt)
        indexed = spec.get("completionMode") == "Indexed"
        completions = spec.get("completions")
        completions = int(completions) if completions is not None else None
        parallelism = int(spec.get("parallelism", 1) or 0)
        uncounted = status.get("uncountedTerminatedPods") or {}
        unc_succeeded: list[str] = list(uncounted.get("succeeded") or [])
        unc_failed: list[str] = list(uncounted.get("failed") or [])
        requeue: float | None = None

        def valid_index(p: Obj) -> bool:
            ix = index_of(p)
            return not indexed or (ix is not None and completions is not None and ix < completions)

        tracked = [p for p in pods if has_finalizer(p) and p["metadata"].get("uid") not in expect.finalizers]
        fresh = [p for p in tracked if p["metadata"]["uid"] not in unc_succeeded + unc_failed and valid_index(p)]
        new_succeeded = [p for p in fresh if phase(p) == "Succeeded"]
        new_failed = [p for p in fresh if is_pod_failed(p, job)]
        active_pods = [p for p in pods if is_active(p)]
        terminating = sum(1 for p in pods if is_terminating(p) and phase(p) not in ("Succeeded", "Failed"))
        ready = sum(1 for p in active_pods if is_ready(p))
        succeeded = int(status.get("succeeded") or 0) + len(new_succeeded) + len(unc_succeeded)
        failure_policy = spec.get("podFailurePolicy")

        def counts(p: Obj) -> bool:
            return match_failure_policy(failure_policy, p)[0] != "Ignore" if failure_policy else True

        failed = int(status.get("failed") or 0) + sum(1 for p in new_failed if counts(p)) + len(unc_failed)
        succeeded_ix: set[int] = set()
        if indexed and completions is not None:
            succeeded_ix = {ix for ix in parse_indexes(str(status.get("completedIndexes") or ""))
                            if ix < completions}
            succeeded_ix |= {ix for p in pods if phase(p) == "Succeeded" and valid_index(p)
                             and (ix := index_of(p)) is not None}
            succeeded = len(succeeded_ix)
        suspended = bool(spec.get("suspend"))
        if not status.get("startTime") and not suspended:
            status["startTime"] = now

        record = self._backoff.setdefault(key, BackoffRecord())
        if new_failed:
            record.failures += len(new_failed)
            record.last_failure = time.monotonic()
        elif new_succeeded:
            record.failures = 0

        conditions: list[Obj] = list(status.get("conditions") or [])
        finishing: Obj | None = None  # the interim condition: SuccessCriteriaMet or FailureTarget
        met = condition(conditions, "SuccessCriteriaMet")
        target = condition(conditions, "FailureTarget")
        if met is not None and met.get("status") == "True":
            finishing = met
        elif target is not None and target.get("status") == "True":
            finishing = target
        elif (fail_job := fail_job_message(job, pods)) is not None:
            finishing = {"type": "FailureTarget", "reason": "PodFailurePolicy", "message": fail_job}
        elif failed > int(spec.get("backoffLimit", 6)) or past_backoff_limit_on_failure(job, pods):
            finishing = {"type": "FailureTarget", "reason": "BackoffLimitExceeded",
                         "message": "Job has reached the specified backoff limit"}
        else:
            over = past_deadline(job, now_dt)
            if over is not None and over >= 0:
                finishing = {"type": "FailureTarget", "reason": "DeadlineExceeded",
                             "message": "Job was active longer than specified deadline"}
            elif over is not None:
                requeue = -over
        if finishing is None and indexed and completions is not None and (
                matched := match_success_policy(spec.get("successPolicy"), completions, succeeded_ix)) is not None:
            finishing = {"type": "SuccessCriteriaMet", "reason": "SuccessPolicy", "message": matched}

        active = len(active_pods)
        if finishing is not None:  # finishing either way: no new pods, lingering ones go (and are counted)
            deleted = await self._delete_pods(job, active_pods, keep_finalizer=True, expect=expect)
            active -= deleted
            terminating += deleted
            ready -= sum(1 for p in active_pods[:deleted] if is_ready(p))
        elif md.get("deletionTimestamp") is None and expect.pods_settled:
            active, ready, terminating, wait = await self._manage(
                job, active_pods, completions=completions, parallelism=parallelism, succeeded=succeeded,
                succeeded_ix=succeeded_ix, terminating=terminating, ready=ready, record=record, expect=expect)
            if wait:
                requeue = min(requeue or wait, wait)
            if finishing is None and is_complete(completions=completions, succeeded=succeeded, active=active):
                finishing = {"type": "SuccessCriteriaMet", "reason": "CompletionsReached",
                             "message": "Reached expected number of succeeded pods"}
            elif finishing is None:
                if suspended:
                    conditions, changed = ensure_condition(conditions, "Suspended", "True", "JobSuspended",
                                                           "Job suspended", now)
                    if changed:
                        await self.events.record(job, "Normal", "Suspended", "Job suspended")
                else:
                    conditions, changed = ensure_condition(conditions, "Suspended", "False", "JobResumed",
                                                           "Job resumed", now)
                    if changed:
                        await self.events.record(job, "Normal", "Resumed", "Job resumed")
                        status["startTime"] = now  # the deadline counts time spent active
        status.update({"active": active, "ready": ready, "terminating": terminating})

        # Record finished pods as uncounted, then drop their finalizers, then count them.
        job_failing = finishing is not None and finishing["type"] == "FailureTarget"
        to_release: list[Obj] = []
        for p in tracked:
            pod_failed = is_pod_failed(p, job)
            if not (finishing is not None or phase(p) == "Succeeded" or pod_failed):
                continue
            uid_ = p["metadata"]["uid"]
            to_release.append(p)
            if phase(p) == "Succeeded" and uid_ not in unc_failed:
                if not indexed and uid_ not in unc_succeeded:
                    unc_succeeded.append(uid_)
            elif (pod_failed or job_failing) and uid_ not in unc_failed and valid_index(p) \
                    and (not pod_failed or counts(p)):
                unc_failed.append(uid_)  # an Ignore rule releases the pod without counting it
        if indexed:
            status["completedIndexes"] = format_indexes(succeeded_ix)
            status["succeeded"] = len(succeeded_ix)
        status["uncountedTerminatedPods"] = {"succeeded": unc_succeeded, "failed": unc_failed}
        final: Obj | None = None
        if finishing is not None:
            if condition(conditions, finishing["type"]) is None:
                conditions.append({"type": finishing["type"], "status": "True", "lastProbeTime": now,
                                   "lastTransitionTime": now, "reason": finishing.get("reason", ""),
                                   "message": finishing.get("message", "")})
            final = {"type": "Failed" if finishing["type"] == "FailureTarget" else "Complete",
                     "reason": finishing.get("reason", ""), "message": finishing.get("message", "")}
        status["conditions"] = conditions
        job = await self._flush(job, original)
        flushed = copy.deepcopy(job["status"])
        status = job["status"]
        released = await self._remove_finalizers(to_release, expect=expect)
        unc = status.get("uncountedTerminatedPods") or {}
        # Still uncounted: pods that keep their finalizer. Those without one (released now, by an
        # interrupted earlier sync, or gone) are counted — kube's cleanUncountedPodsWithoutFinalizers.
        holding = {p["metadata"]["uid"] for p in tracked} - released
        still_s = [u for u in unc.get("succeeded") or [] if u in holding]
        still_f = [u for u in unc.get("failed") or [] if u in holding]
        if not indexed:
            status["succeeded"] = int(status.get("succeeded") or 0) + len(unc.get("succeeded") or []) - len(still_s)
        status["failed"] = int(status.get("failed") or 0) + len(unc.get("failed") or []) - len(still_f)
        status["uncountedTerminatedPods"] = {"succeeded": still_s, "failed": still_f}
        finished_now = final is not None and not still_s and not still_f and not status.get("terminating")
        if finished_now and final is not None:
            status["conditions"], _ = ensure_condition(list(status.get("conditions") or []), final["type"], "True",
                                                       final["reason"], final["message"], now)
            if final["type"] == "Complete":
                status["completionTime"] = now
        job = await self._flush(job, flushed)
        if finished_now and final is not None:
            if final["type"] == "Complete":
                await self.events.record(job, "Normal", "Completed", "Job completed")
            else:
                await self.events.record(job, "Warning", final["reason"], final["message"])
            ttl = spec.get("ttlSecondsAfterFinished")
            if ttl is not None:
                requeue = min(requeue, float(ttl)) if requeue is not None else float(ttl)
        return Result(requeue_after=requeue)

    async def _manage(self, job: Obj, active_pods: list[Obj], *, completions: int | None, parallelism: int,
                      succeeded: int, succeeded_ix: set[int], terminating: int, ready: int, record: BackoffRecord,
                      expect: Expectations) -> tuple[int, int, int, float | None]:
        """Create or delete pods toward the wanted number; returns (active, ready, terminating, retry in)."""
        spec = job.get("spec") or {}
        active = len(active_pods)
        indexed = spec.get("completionMode") == "Indexed" and completions is not None
        if spec.get("suspend"):
            deleted = await self._delete_pods(job, active_pods, keep_finalizer=False, expect=expect)
            return (active - deleted, ready - sum(1 for p in active_pods[:deleted] if is_ready(p)),
                    terminating + deleted, None)
        wanted = want_active(completions=completions, parallelism=parallelism, succeeded=succeeded, active=active)
        doomed: list[Obj] = []
        if indexed and completions is not None:
            seen: set[int] = set()
            for p in sorted(active_pods, key=removal_rank, reverse=True):  # keep the most advanced pod per index
                ix = index_of(p)
                if ix is None or ix >= completions or ix in seen or ix in succeeded_ix:
                    doomed.append(p)
                else:
                    seen.add(ix)
        rest = [p for p in active_pods if p not in doomed]
        excess = active - len(doomed) - wanted
        if excess > 0:
            doomed += sorted(rest, key=removal_rank)[:excess]
        if doomed:
            doomed = doomed[:MAX_PODS_PER_SYNC]
            deleted = await self._delete_pods(job, doomed, keep_finalizer=False, expect=expect)
            return (active - deleted, ready - sum(1 for p in doomed[:deleted] if is_ready(p)),
                    terminating + deleted, None)
        holding = terminating if (spec.get("podReplacementPolicy") or "") == "Failed" else 0
        diff = min(wanted - holding - active, MAX_PODS_PER_SYNC)
        if diff <= 0:
            return active, ready, terminating, None
        wait = backoff_remaining(record.failures, record.last_failure, time.monotonic(), base=self.backoff_base,
                                 cap=self.backoff_max)
        if wait > 0:
            return active, ready, terminating, wait
        indexes: list[int | None] = [None] * diff
        if indexed and completions is not None:
            running = {ix for p in active_pods if (ix := index_of(p)) is not None}
            indexes = list(pending_indexes(completions, succeeded=succeeded_ix, active=running, count=diff))
        active += await self._create_pods(job, indexes, expect)
        return active, ready, terminating, None

    async def _create_pods(self, job: Obj, indexes: list[int | None], expect: Expectations) -> int:
        """Create in slow-start batches (1, 2, 4, ...), as kube does: a quota or admission error
        that rejects every pod stops after a few attempts instead of hundreds."""
        created, batch, pending = 0, 1, list(indexes)
        while pending:
            now, pending = pending[:batch], pending[batch:]
            results = await asyncio.gather(*(self._create_pod(job, ix, expect) for ix in now), return_exceptions=True)
            created += sum(1 for r in results if r is True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                raise errors[0]
            batch = min(batch * 2, 2 * PARALLEL_REQUESTS)
        return created

    async def _create_pod(self, job: Obj, ix: int | None, expect: Expectations) -> bool:
        md = job["metadata"]
        template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
        if ix is not None:
            template = with_index(template, md["name"], ix)
        pod_md = template.get("metadata") or {}
        pod_md.pop("name", None)
        pod_md["generateName"] = f"{md['name']}-{ix}-" if ix is not None else f"{md['name']}-"
        pod_md["namespace"] = md.get("namespace")
        pod_md["finalizers"] = [*[f for f in pod_md.get("finalizers") or [] if f != TRACKING_FINALIZER],
                                TRACKING_FINALIZER]
        pod_md["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": md["name"], "uid": md["uid"],
                                      "controller": True, "blockOwnerDeletion": True}]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_md, "spec": template.get("spec") or {}}
        try:
            created = await self.client.create(PODS, pod)
        except AlreadyExists:
            return False
        expect.creates.add(created["metadata"]["name"])
        expect.since = time.monotonic()
        await self.events.record(job, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
        return True

    async def _delete_pods(self, job: Obj, pods: list[Obj], *, keep_finalizer: bool, expect: Expectations) -> int:
        """Delete pods; without ``keep_finalizer`` their finalizer goes first, so they are never counted."""
        deleted = 0
        for p in pods:
            pmd = p["metadata"]
            try:
                if not keep_finalizer and has_finalizer(p):
                    await self._remove_finalizer(p)
                    expect.finalizers.add(pmd["uid"])
                await self.client.delete(PODS, pmd["name"], pmd.get("namespace"), uid=pmd.get("uid"))
            except NotFound:
                deleted += 1
                continue
            except Conflict:
                continue
            deleted += 1
            expect.deletes.add(pmd["uid"])
            expect.since = time.monotonic()
            await self.events.record(job, "Normal", "SuccessfulDelete", f"Deleted pod: {pmd['name']}")
        return deleted

    async def _remove_finalizer(self, pod: Obj) -> None:
        pmd = pod["metadata"]
        await self.client.patch(PODS, pmd["name"], {"metadata": {
            "$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}}, pmd.get("namespace"),
            patch_type="strategic")

    async def _remove_finalizers(self, pods: list[Obj], *, expect: Expectations | None = None) -> set[str]:
        """UIDs whose finalizer is gone (removed now, or the pod is gone)."""
        done: set[str] = set()
        failures: list[Exception] = []
        gate = asyncio.Semaphore(PARALLEL_REQUESTS)

        async def one(p: Obj) -> None:
            async with gate:
                try:
                    await self._remove_finalizer(p)
                except NotFound:
                    pass
                except Exception as exc:
                    failures.append(exc)
                    return
            done.add(p["metadata"]["uid"])
            if expect is not None:
                expect.finalizers.add(p["metadata"]["uid"])

        await asyncio.gather(*(one(p) for p in pods))
        if failures and not done:
            raise failures[0]
        return done

    async def _flush(self, job: Obj, previous: Obj) -> Obj:
        """Write ``job.status`` if it changed, guarded by resourceVersion; returns the Job as written."""
        status = job.get("status") or {}
        if status == previous:
            return job
        md = job["metadata"]
        written = await self.client.patch(JOBS, md["name"], {"metadata": {"resourceVersion": md.get("resourceVersion")},
                                                             "status": status}, md.get("namespace"),
                                          subresource="status")
        key = f"{md.get('namespace')}/{md['name']}"
        self._expectations.setdefault(key, Expectations()).job_version = str(
            written["metadata"].get("resourceVersion") or "")
        written.setdefault("status", {})
        return written

    async def _expire(self, job: Obj, done: Obj) -> Result:
        """``ttlSecondsAfterFinished``: delete the finished Job (and, in the foreground, its pods)."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None or job["metadata"].get("deletionTimestamp"):
            return Result()
        finished = parse_time((job.get("status") or {}).get("completionTime")) or parse_time(
            done.get("lastTransitionTime")) or dt.datetime.now(dt.UTC)
        left = (finished - dt.datetime.now(dt.UTC)).total_seconds() + float(ttl)
        if left > 0:
            return Result(requeue_after=left)
        md = job["metadata"]
        try:
            await self.client.delete(JOBS, md["name"], md.get("namespace"), propagation_policy="Foreground",
                                     uid=md.get("uid"))
        except (NotFound, Conflict):
            pass
        return Result()
