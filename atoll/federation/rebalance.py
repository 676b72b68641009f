"""WorkloadRebalancer: ask the scheduler to place some workloads again from scratch.

Karmada's ``apps.karmada.io/v1alpha1`` WorkloadRebalancer (``pkg/apis/apps/v1alpha1``) and
its ``workload-rebalancer`` controller (``pkg/controllers/workloadrebalancer``). A
rebalancer lists workloads (apiVersion, kind, namespace, name); for each, the controller
sets ``spec.rescheduleTriggeredAt`` of its (Cluster)ResourceBinding to the rebalancer's
creation time — a time later than the binding's ``status.lastScheduledTime`` makes the
scheduler recompute the placement instead of keeping what it can. Each workload's result
is reported in ``status.observedWorkloads[]``: ``Successful``, or ``Failed`` with reason
``ReferencedBindingNotFound``; other errors are retried. Once every workload has a result
``status.finishTime`` is set, and ``spec.ttlSecondsAfterFinished`` later the rebalancer
deletes itself.

A binding is triggered once per rebalancer: one whose ``rescheduleTriggeredAt`` is already
at or after the rebalancer's creation is left alone, so re-running the controller (or
adding a workload to the list) never reschedules the same workload twice.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final

from atoll.api.errors import NotFound
from atoll.client import Client, Resource
from atoll.federation.crds import Definition
from atoll.federation.crds.schema import Schema, array, date_time, int32, int64, obj, root, string
from atoll.federation.detector import binding_name
from atoll.federation.kinds import CLUSTER_RESOURCE_BINDINGS, RESOURCE_BINDINGS
from atoll.federation.status import parse_time, rfc3339
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.informing import Informer

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
Clock = Callable[[], float]

APPS_GROUP: Final = "apps.karmada.io"
APPS_V1ALPHA1: Final = f"{APPS_GROUP}/v1alpha1"
WORKLOAD_REBALANCERS: Final = Resource(APPS_V1ALPHA1, "workloadrebalancers", False, "WorkloadRebalancer")
RESULT_SUCCESSFUL: Final = "Successful"
RESULT_FAILED: Final = "Failed"
REASON_BINDING_NOT_FOUND: Final = "ReferencedBindingNotFound"


def _object_reference(doc: str) -> Schema:
    return obj(doc, {
        "apiVersion": string("APIVersion represents the API version of the target resource."),
        "kind": string("Kind represents the Kind of the target resource."),
        "name": string("Name of the target resource."),
        "namespace": string("Namespace of the target resource. Default is empty, which means it is a "
                            "non-namespacescoped resource."),
    }, required=("apiVersion", "kind", "name"))


def workload_rebalancer_schema() -> Schema:
    """Transcribed from Karmada's ``workloadrebalancer_types.go``."""
    spec = obj("Spec represents the specification of the desired behavior of WorkloadRebalancer.", {
        "ttlSecondsAfterFinished": int32(
            "TTLSecondsAfterFinished limits the lifetime of a WorkloadRebalancer that has finished execution "
            "(means each target workload is finished with result of Successful or Failed). If this field is set, "
            "ttlSecondsAfterFinished after the WorkloadRebalancer finishes, it is eligible to be automatically "
            "deleted. If this field is unset, the WorkloadRebalancer won't be automatically deleted. If this "
            "field is set to zero, the WorkloadRebalancer becomes eligible to be deleted immediately after it "
            "finishes."),
        "workloads": array("Workloads used to specify the list of expected resource. Nil or empty list is not "
                           "allowed.", _object_reference("ObjectReference the expected resource."), minItems=1),
    }, required=("workloads",))
    status = obj("Status represents the status of WorkloadRebalancer.", {
        "finishTime": date_time("FinishTime represents the finish time of rebalancer."),
        "observedGeneration": int64("ObservedGeneration is the generation(.metadata.generation) observed by the "
                                    "controller. If ObservedGeneration is less than the generation in metadata "
                                    "means the controller hasn't confirmed the rebalance result or hasn't done "
                                    "the rebalance yet."),
        "observedWorkloads": array(
            "ObservedWorkloads contains information about the execution states and messages of target resources.",
            obj("ObservedWorkload the observed resource.", {
                "reason": string("Reason represents a machine-readable description of why this resource "
                                 "rebalanced failed."),
                "result": string("Result the observed rebalance result of resource."),
                "workload": _object_reference("Workload the observed resource."),
            }, required=("workload",))),
    })
    return root("WorkloadRebalancer represents the desired behavior and status of a job which can enforces a "
                "resource rebalance.", spec=spec, status=status)


DEFINITION: Final = Definition(WORKLOAD_REBALANCERS, "workloadrebalancer", workload_rebalancer_schema,
                               categories=(), status=True)
"""Install with ``await atoll.federation.crds.install(client, definitions=[DEFINITION])``."""


# -- pure helpers ---------------------------------------------------------------------------------------


def workload_ref(workload: Mapping[str, Any]) -> Obj:
    """An ObjectReference as Karmada compares them: the four fields, namespace omitted when empty."""
    ref = {"apiVersion": str(workload.get("apiVersion") or ""), "kind": str(workload.get("kind") or ""),
           "name": str(workload.get("name") or "")}
    if workload.get("namespace"):
        ref["namespace"] = str(workload["namespace"])
    return ref


def _ref_key(ref: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (str(ref.get("apiVersion") or ""), str(ref.get("kind") or ""), str(ref.get("namespace") or ""),
            str(ref.get("name") or ""))


def rebalance_request(workloads: Iterable[Mapping[str, Any]], *, name: str | None = None,
                      ttl_seconds_after_finished: int | None = None) -> Obj:
    """A WorkloadRebalancer for ``workloads`` (template objects or references), ready to create.

    Without ``name`` the server generates one (``generateName: rebalance-``). Duplicates
    are listed once. Raises ``ValueError`` for an empty list or a reference without a
    kind, apiVersion or name.
    """
    refs: dict[tuple[str, str, str, str], Obj] = {}
    for workload in workloads:
        md = workload.get("metadata")
        source = {**workload, **({"name": md.get("name"), "namespace": md.get("namespace")}
                                 if isinstance(md, Mapping) else {})}
        ref = workload_ref(source)
        if not (ref["apiVersion"] and ref["kind"] and ref["name"]):
            raise ValueError(f"a workload needs apiVersion, kind and name: {dict(workload)!r}")
        refs.setdefault(_ref_key(ref), ref)
    if not refs:
        raise ValueError("a WorkloadRebalancer needs at least one workload")
    spec: Obj = {"workloads": list(refs.values())}
    if ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = int(ttl_seconds_after_finished)
    metadata: Obj = {"name": name} if name else {"generateName": "rebalance-"}
    return {"apiVersion": APPS_V1ALPHA1, "kind": "WorkloadRebalancer", "metadata": metadata, "spec": spec}


def observed_workloads(spec: Mapping[str, Any], status: Mapping[str, Any]) -> list[Obj]:
    """``syncWorkloadsFromSpecToStatus``: results kept for listed workloads (and successes of removed ones).

    New workloads start without a result; the list is sorted by apiVersion, kind, namespace, name.
    """
    wanted = {_ref_key(r): workload_ref(r) for r in spec.get("workloads") or []}
    out: list[Obj] = []
    for item in status.get("observedWorkloads") or []:
        key = _ref_key(item.get("workload") or {})
        if key in wanted:
            out.append(copy.deepcopy(dict(item)))
            del wanted[key]
        elif item.get("result") == RESULT_SUCCESSFUL:
            out.append(copy.deepcopy(dict(item)))
    out.extend({"workload": ref} for ref in wanted.values())
    return sorted(out, key=lambda i: " ".join(_ref_key(i.get("workload") or {})))


def needs_trigger(created: float | None, triggered_at: object) -> bool:
    """``needTriggerReschedule``: never triggered, or triggered before this rebalancer was created."""
    triggered = parse_time(triggered_at)
    return triggered is None or (created is not None and created > triggered)


def time_left(status: Mapping[str, Any], ttl: int, now: float) -> float | None:
    """Seconds until a finished rebalancer expires (``None``: not finished)."""
    finished = parse_time(status.get("finishTime"))
    return None if finished is None else finished + ttl - now


# -- the controller -------------------------------------------------------------------------------------


class RebalancerController(Controller):
    """Triggers rescheduling of the workloads each WorkloadRebalancer lists (Karmada's workload-rebalancer).

    ``RebalancerController(client, *, clock=time.time)`` on the federation's client, after
    :data:`DEFINITION` is installed. Bindings are read from the server, not a cache, since
    each is touched once.
    """

    NAME: ClassVar[str] = "workload-rebalancer"

    def __init__(self, client: Client, *, clock: Clock = time.time) -> None:
        super().__init__()
        self.client = client
        self.clock = clock
        self.rebalancers = Informer(client, WORKLOAD_REBALANCERS)
        self.rebalancers.add_handler(self._on_rebalancer)
        self.informers.append(self.rebalancers)

    def _on_rebalancer(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """Created, or its spec changed (status updates are the controller's own)."""
        if new is None or event == "DELETED":
            return
        if event == "MODIFIED" and old is not None and old.get("spec") == new.get("spec"):
            return
        self.queue.add(str(new["metadata"]["name"]))

    async def _trigger(self, ref: Mapping[str, Any], created: float | None, created_text: str) -> str | None:
        """Set the binding's ``rescheduleTriggeredAt``: its result, or ``None`` for a failure to retry."""
        namespace = ref.get("namespace") or None
        resource = RESOURCE_BINDINGS if namespace else CLUSTER_RESOURCE_BINDINGS
        name = binding_name(str(ref.get("kind")), str(ref.get("name")))
        try:
            binding = await self.client.get(resource, name, namespace)
            if needs_trigger(created, (binding.get("spec") or {}).get("rescheduleTriggeredAt")):
                updated = copy.deepcopy(binding)
                updated.setdefault("spec", {})["rescheduleTriggeredAt"] = created_text
                await self.client.replace(resource, updated, namespace)
                logger.info("%s: rescheduling of %s %s triggered", self.NAME, ref.get("kind"),
                            f"{namespace}/{ref.get('name')}" if namespace else ref.get("name"))
        except NotFound:
            return RESULT_FAILED
        except Exception as exc:
            logger.info("%s: triggering %s %s failed (%s); retrying", self.NAME, ref.get("kind"), ref.get("name"), exc)
            return None
        return RESULT_SUCCESSFUL

    async def reconcile(self, key: str) -> Result:
        rebalancer = self.rebalancers.lister.get(key)
        if rebalancer is None:
            return Result()
        md, spec = rebalancer.get("metadata") or {}, rebalancer.get("spec") or {}
        if md.get("deletionTimestamp"):
            return Result()
        old_status = rebalancer.get("status") or {}
        created_text = str(md.get("creationTimestamp") or rfc3339(self.clock()))
        created = parse_time(created_text)
        observed = observed_workloads(spec, old_status)
        retries = 0
        for item in observed:
            if item.get("result") in (RESULT_SUCCESSFUL, RESULT_FAILED):
                continue
            result = await self._trigger(item["workload"], created, created_text)
            if result is None:
                retries += 1
                continue
            item["result"] = result
            if result == RESULT_FAILED:
                item["reason"] = REASON_BINDING_NOT_FOUND
        status: Obj = {"observedWorkloads": observed, "observedGeneration": int(md.get("generation") or 0)}
        if old_status.get("finishTime"):
            status["finishTime"] = old_status["finishTime"]
        if status != old_status and retries == 0:
            status["finishTime"] = rfc3339(self.clock())
        if status != old_status:
            patch = {"metadata": {"resourceVersion": md.get("resourceVersion")}, "status": status}
            rebalancer = await self.client.patch_status(WORKLOAD_REBALANCERS, key, patch)
        if retries:
            raise RuntimeError(f"{retries} workload(s) of WorkloadRebalancer {key} could not be triggered yet")
        return await self._expire(rebalancer)

    async def _expire(self, rebalancer: Obj) -> Result:
        """``ttlSecondsAfterFinished``: delete a finished rebalancer once its time is up."""
        md, spec = rebalancer.get("metadata") or {}, rebalancer.get("spec") or {}
        ttl = spec.get("ttlSecondsAfterFinished")
        if ttl is None:
            return Result()
        left = time_left(rebalancer.get("status") or {}, int(ttl), self.clock())
        if left is None:
            return Result()
        if left > 0:
            return Result(requeue_after=left)
        try:
            # Preconditioned on the version read: a rebalancer edited meanwhile is looked at again.
            await self.client.delete(WORKLOAD_REBALANCERS, str(md.get("name")),
                                     resource_version=md.get("resourceVersion"))
            logger.info("%s: WorkloadRebalancer %s finished %ss ago; deleted", self.NAME, md.get("name"), ttl)
        except NotFound:
            pass
        return Result()


def finished(rebalancer: Mapping[str, Any]) -> bool:
    """Whether every workload has a result (``status.finishTime`` is set)."""
    return bool((rebalancer.get("status") or {}).get("finishTime"))


def results(rebalancer: Mapping[str, Any]) -> Sequence[tuple[Obj, str, str]]:
    """``(workload, result, reason)`` of each observed workload, for the CLI to print."""
    return [(dict(i.get("workload") or {}), str(i.get("result") or ""), str(i.get("reason") or ""))
            for i in (rebalancer.get("status") or {}).get("observedWorkloads") or []]
