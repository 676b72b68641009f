"""Which events queue which bindings (karmada-scheduler's event handlers), without a server.

The informers' caches are filled by hand; nothing is listed or watched.
"""

from __future__ import annotations

from typing import Any

import pytest

from atoll.client import Client
from atoll.federation.scheduler.controller import SchedulerController, condition_for, set_condition
from atoll.federation.scheduler.framework import FitError, SchedulingError, UnschedulableError

Obj = dict[str, Any]


def rb(name: str, placement: Obj, *, generation: int = 1, observed: int = 1, scheduled: bool = True,
       scheduler: str = "", suspended: bool = False, affinity_name: str = "") -> Obj:
    spec: Obj = {"placement": placement, "replicas": 1}
    if scheduler:
        spec["schedulerName"] = scheduler
    if suspended:
        spec["suspension"] = {"scheduling": True}
    status: Obj = {"schedulerObservedGeneration": observed,
                   "conditions": [{"type": "Scheduled", "status": "True" if scheduled else "False"}]}
    if affinity_name:
        status["schedulerObservingAffinityName"] = affinity_name
    return {"metadata": {"name": name, "namespace": "ns", "generation": generation}, "spec": spec, "status": status}


def cl(name: str, *, labels: dict[str, str] | None = None, generation: int = 1, deleting: bool = False) -> Obj:
    md: Obj = {"name": name, "labels": labels or {}, "generation": generation}
    if deleting:
        md["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": md, "spec": {}}


@pytest.fixture
def controller() -> SchedulerController:
    return SchedulerController(Client(server="https://127.0.0.1:9"))


def queued(c: SchedulerController) -> set[str]:
    return set(c.queue._queue)


def drain(c: SchedulerController) -> None:
    c.queue._queue.clear()
    c.queue._dirty.clear()


def fill(c: SchedulerController, *bindings: Obj) -> None:
    for b in bindings:
        c.bindings._source.cache[f"ns/{b['metadata']['name']}"] = b


async def test_binding_events(controller: SchedulerController) -> None:
    a = rb("a", {})
    controller._on_binding("rb:", "ADDED", None, a)
    controller._on_binding("rb:", "ADDED", None, rb("other", {}, scheduler="my-scheduler"))
    controller._on_binding("rb:", "ADDED", None, rb("paused", {}, suspended=True))
    assert queued(controller) == {"rb:ns/a"}
    drain(controller)
    controller._on_binding("rb:", "MODIFIED", a, rb("a", {}))                      # a status write
    assert queued(controller) == set()
    controller._on_binding("rb:", "MODIFIED", a, rb("a", {}, generation=2))
    controller._on_binding("crb:", "ADDED", None, {"metadata": {"name": "c"}, "spec": {}})
    assert queued(controller) == {"rb:ns/a", "crb:c"}


async def test_cluster_events_queue_the_bindings_they_affect(controller: SchedulerController) -> None:
    fill(controller,
         rb("any", {}),
         rb("named", {"clusterAffinity": {"clusterNames": ["m1"]}}),
         rb("elsewhere", {"clusterAffinity": {"clusterNames": ["m2"]}}),
         rb("prod", {"clusterAffinities": [{"affinityName": "p", "labelSelector": {"matchLabels": {"env": "prod"}}},
                                           {"affinityName": "q", "clusterNames": ["m1"]}]}, affinity_name="p"),
         rb("stale", {"clusterAffinities": [{"affinityName": "p", "clusterNames": ["m9"]}]}, generation=3),
         rb("waiting", {"clusterAffinity": {"clusterNames": ["m1"]}}, scheduled=False))
    old, new = cl("m1"), cl("m1", labels={"env": "prod"})
    controller._on_cluster("MODIFIED", old, new)
    assert queued(controller) == {"rb:ns/any", "rb:ns/named", "rb:ns/prod", "rb:ns/stale", "rb:ns/waiting"}
    drain(controller)
    # A status-only change (same generation and labels) retries only what is not scheduled yet.
    controller._on_cluster("MODIFIED", new, {**new, "status": {"conditions": []}})
    assert queued(controller) == {"rb:ns/waiting"}
    drain(controller)
    controller._on_cluster("MODIFIED", new, cl("m1", labels={"env": "prod"}, deleting=True))
    assert "rb:ns/named" in queued(controller)


@pytest.mark.parametrize(("error", "reason", "status", "final"), [
    (None, "Success", "True", True),
    (FitError(1, {}), "NoClusterFit", "False", True),
    (UnschedulableError("short"), "Unschedulable", "False", False),
    (SchedulingError("boom"), "SchedulerError", "False", False),
])
def test_condition_for(error: SchedulingError | None, reason: str, status: str, final: bool) -> None:
    condition, is_final = condition_for(error)
    assert (condition["type"], condition["reason"], condition["status"], is_final) == ("Scheduled", reason, status,
                                                                                        final)


def test_set_condition_moves_the_transition_time_only_on_a_status_change() -> None:
    first = set_condition([], {"type": "Scheduled", "status": "False", "reason": "NoClusterFit", "message": "m"}, "t1")
    same = set_condition(first, {"type": "Scheduled", "status": "False", "reason": "X", "message": "n"}, "t2")
    assert same[0]["lastTransitionTime"] == "t1" and same[0]["reason"] == "X"
    flipped = set_condition(same, {"type": "Scheduled", "status": "True", "reason": "Success", "message": ""}, "t3")
    assert flipped[0]["lastTransitionTime"] == "t3"
