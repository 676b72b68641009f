"""Deployment controller: pure rollout arithmetic, then whole rollouts over a real API server and kubectl."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from atoll.api.errors import AlreadyExists, Conflict, NotFound
from atoll.client import Client, Resource
from atoll.cluster.controllers import rollout as ro
from atoll.cluster.controllers.deployment import DEPLOYMENTS, DeploymentController, HashCollision
from atoll.cluster.controllers.replicaset import PODS, REPLICASETS, ReplicaSetController
from atoll.cluster.kubelet.simulated import NodeSpec, SimulatedNodes, Stages
from atoll.cluster.scheduler.controller import SchedulerController
from tests.conftest import RunningServer, require_kubectl
from tests.waiting import eventually

Obj = dict[str, Any]
NSS = Resource("v1", "namespaces", namespaced=False)
EVENTS = Resource("v1", "events", True, "Event")
NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


# -- pure helpers: builders ---------------------------------------------------------------------


def dep(replicas: int = 10, *, surge: Any = "25%", unavailable: Any = "25%", strategy: str = "RollingUpdate",
        generation: int = 1, status: Obj | None = None, history: int | None = 10, deadline: int | None = 600,
        image: str = "v1") -> Obj:
    spec: Obj = {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": image}]}},
                 "strategy": {"type": strategy}}
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    if history is not None:
        spec["revisionHistoryLimit"] = history
    if deadline is not None:
        spec["progressDeadlineSeconds"] = deadline
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "d-uid", "generation": generation},
            "spec": spec, "status": status or {}}


def rs(name: str, replicas: int, available: int | None = None, *, created: str = "2026-01-01T00:00:00Z",
       revision: int | None = None, max_replicas: int | None = None, desired: int | None = None,
       image: str = "v1", status_replicas: int | None = None) -> Obj:
    ann: Obj = {}
    if revision is not None:
        ann[ro.REVISION] = str(revision)
    if max_replicas is not None:
        ann[ro.MAX_REPLICAS] = str(max_replicas)
    if desired is not None:
        ann[ro.DESIRED_REPLICAS] = str(desired)
    available = replicas if available is None else available
    return {"metadata": {"name": name, "uid": f"{name}-uid", "creationTimestamp": created, "annotations": ann,
                         "generation": 1},
            "spec": {"replicas": replicas,
                     "template": {"metadata": {"labels": {"app": "web", ro.HASH_LABEL: name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}},
            "status": {"replicas": replicas if status_replicas is None else status_replicas,
                       "readyReplicas": available, "availableReplicas": available, "observedGeneration": 1}}


# -- the pod-template hash ----------------------------------------------------------------------


def test_safe_encoding_uses_kubes_alphabet() -> None:
    # '0' is byte 48: 48 % 27 = 21 -> '4'; '9' is 57 -> 3 -> 'f'
    assert ro.safe_encode("0") == "4"
    assert ro.safe_encode("9") == "f"
    assert ro.fnv32a(b"") == 0x811C9DC5 and ro.fnv32a(b"a") == 0xE40C292C  # FNV-1a test vectors


@pytest.mark.parametrize(("change", "same"), [
    (lambda t: None, True),
    (lambda t: t["metadata"].setdefault("annotations", {}).update(x="1"), False),
    (lambda t: t["spec"]["containers"][0].update(image="v2"), False),
    (lambda t: t["metadata"]["labels"].update(tier="db"), False),
])
def test_template_hash_is_stable_and_follows_the_template(change: Any, same: bool) -> None:
    base = dep()["spec"]["template"]
    other = dep()["spec"]["template"]
    change(other)
    h = ro.template_hash(base)
    assert ro.template_hash(dep()["spec"]["template"]) == h
    assert (ro.template_hash(other) == h) is same
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(h) <= 10


def test_collision_count_moves_the_hash() -> None:
    t = dep()["spec"]["template"]
    hashes = {ro.template_hash(t), ro.template_hash(t, 0), ro.template_hash(t, 1), ro.template_hash(t, 2)}
    assert len(hashes) == 4


def test_equal_ignore_hash_ignores_the_label_and_empty_fields() -> None:
    a = dep()["spec"]["template"]
    b = rs("web-abc", 1)["spec"]["template"]
    b["metadata"]["creationTimestamp"] = None
    b["spec"]["containers"][0]["resources"] = {}
    assert ro.equal_ignore_hash(a, b)
    b["spec"]["containers"][0]["image"] = "v2"
    assert not ro.equal_ignore_hash(a, b)


# -- surge and unavailability -------------------------------------------------------------------


@pytest.mark.parametrize(("surge", "unavailable", "replicas", "expected"), [
    ("25%", "25%", 10, (3, 2)),      # surge rounds up, unavailable rounds down
    ("25%", "25%", 4, (1, 1)),
    ("25%", "25%", 1, (1, 0)),
    (0, "10%", 5, (0, 1)),           # both would be 0: unavailable becomes 1
    ("0%", "0%", 3, (0, 1)),
    (2, 1, 10, (2, 1)),
    ("100%", "100%", 3, (3, 3)),
    ("30%", "30%", 10, (3, 3)),
    ("1%", "99%", 10, (1, 9)),
    (None, None, 4, (0, 1)),
])
def test_resolve_fenceposts(surge: Any, unavailable: Any, replicas: int, expected: tuple[int, int]) -> None:
    assert ro.resolve_fenceposts(surge, unavailable, replicas) == expected


@pytest.mark.parametrize(("d", "surge", "unavailable"), [
    (dep(10), 3, 2),
    (dep(0), 0, 0),                                       # no replicas: nothing may be unavailable
    (dep(2, surge=0, unavailable=5), 0, 2),               # capped at the replicas
    (dep(10, strategy="Recreate"), 0, 0),
])
def test_max_surge_and_unavailable_of_a_deployment(d: Obj, surge: int, unavailable: int) -> None:
    assert (ro.max_surge(d), ro.max_unavailable(d)) == (surge, unavailable)


def test_percentage_must_be_a_percentage() -> None:
    with pytest.raises(ValueError):
        ro.scaled_value("5", 10, round_up=True)


# -- a rolling update, step by step -------------------------------------------------------------


def rolling_step(d: Obj, new: Obj, olds: list[Obj]) -> bool:
    """One sync of rolloutRolling over in-memory ReplicaSets; returns whether anything changed."""
    replicas = ro.spec_replicas(d)
    all_rss = [*olds, new]
    if ro.spec_replicas(new) != replicas:
        target = replicas if ro.spec_replicas(new) > replicas else ro.new_rs_replicas(d, all_rss, new)
        if target != ro.spec_replicas(new):
            new["spec"]["replicas"] = target
            return True
    changes = ro.old_rs_targets(d, all_rss, ro.active(olds), new)
    for target_rs, size in changes:
        target_rs["spec"]["replicas"] = size
    return bool(changes)


def settle(rss: list[Obj], ready: bool = True) -> None:
    """The ReplicaSet controller and kubelets catch up: pods exist (and are available if ``ready``)."""
    for x in rss:
        n = x["spec"]["replicas"]
        old_avail = x["status"]["availableReplicas"]
        x["status"]["replicas"] = n
        x["status"]["availableReplicas"] = n if ready else min(n, old_avail)


@pytest.mark.parametrize(("replicas", "surge", "unavailable", "steps"), [
    (4, 1, 1, [(1, 4), (1, 2), (3, 2), (3, 0), (4, 0)]),
    (4, 0, 1, [(0, 3), (1, 3), (1, 2), (2, 2), (2, 1), (3, 1), (3, 0), (4, 0)]),
    (3, "100%", 0, [(3, 3), (3, 0)]),
    (10, "25%", "25%", [(3, 10), (3, 5), (8, 5), (8, 0), (10, 0)]),
])
def test_rolling_update_steps(replicas: int, surge: Any, unavailable: Any,
                              steps: list[tuple[int, int]]) -> None:
    d = dep(replicas, surge=surge, unavailable=unavailable)
    old = rs("web-old", replicas, created="2026-01-01T00:00:00Z")
    new = rs("web-new", 0, created="2026-01-02T00:00:00Z")
    seen = []
    for _ in range(50):
        if not rolling_step(d, new, [old]):
            break
        seen.append((new["spec"]["replicas"], old["spec"]["replicas"]))
        # Invariants kube promises at every step.
        assert new["spec"]["replicas"] + old["spec"]["replicas"] <= replicas + ro.max_surge(d)
        settle([old, new])
        assert ro.total_status([old, new], "availableReplicas") >= replicas - ro.max_unavailable(d)
    assert seen == steps


def test_unhealthy_old_replicas_are_cleaned_up_first() -> None:
    # 2 of the old ReplicaSet's 5 are unavailable: they go, though no available pod may.
    d = dep(5, surge=2, unavailable=0)
    old = rs("web-old", 5, available=3)
    new = rs("web-new", 2, created="2026-01-02T00:00:00Z")
    targets = ro.old_rs_targets(d, [old, new], [old], new)
    assert [(t["metadata"]["name"], n) for t, n in targets] == [("web-old", 3)]
    # Without surge room the budget (all pods - minAvailable) caps the cleanup.
    assert ro.old_rs_targets(dep(5, surge=0, unavailable=1), [old], [old], None) == [(old, 4)]


def test_no_scale_down_while_new_pods_are_unavailable() -> None:
    d = dep(4, surge=1, unavailable=0)
    old = rs("web-old", 4)
    new = rs("web-new", 1, available=0, created="2026-01-02T00:00:00Z")
    assert ro.old_rs_targets(d, [old, new], [old], new) == []
    new["status"]["availableReplicas"] = 1
    assert [(t["metadata"]["name"], n) for t, n in ro.old_rs_targets(d, [old, new], [old], new)] == [
        ("web-old", 3)]


def test_oldest_replica_sets_scale_down_first() -> None:
    d = dep(6, surge=0, unavailable=3)
    older = rs("web-a", 2, created="2026-01-01T00:00:00Z")
    old = rs("web-b", 4, created="2026-01-02T00:00:00Z")
    new = rs("web-c", 0, created="2026-01-03T00:00:00Z")
    got = [(t["metadata"]["name"], n) for t, n in ro.old_rs_targets(d, [older, old, new], [older, old], new)]
    assert got == [("web-a", 0), ("web-b", 3)]


# -- proportional scaling -----------------------------------------------------------------------


@pytest.mark.parametrize(("replicas", "sizes", "expected"), [
    # kube's documented example: 10 replicas, surge 3, mid-rollout (8 old + 5 new), scaled to 15.
    (15, {"old": 8, "new": 5}, {"old": 11, "new": 7}),
    # scaled down mid-rollout: the larger loses most, leftovers to the largest.
    (5, {"old": 8, "new": 5}, {"old": 5, "new": 3}),
    # scaled to zero: everything goes.
    (0, {"old": 8, "new": 5}, {"old": 0, "new": 0}),
])
def test_proportional_scaling(replicas: int, sizes: dict[str, int], expected: dict[str, int]) -> None:
    d = dep(replicas, surge=3, unavailable=2, status={"replicas": 13})
    old = rs("web-old", sizes["old"], max_replicas=13, desired=10)
    new = rs("web-new", sizes["new"], available=0, max_replicas=13, desired=10, created="2026-01-02T00:00:00Z")
    got = {t["metadata"]["name"].removeprefix("web-"): n for t, n, _ in ro.scale_targets(d, new, [old])}
    assert got == expected
    total = sum(got.values())
    assert total <= replicas + ro.max_surge(d)


@pytest.mark.parametrize(("new", "olds", "expected"), [
    (rs("new", 3), [rs("old", 0)], {"new": 7}),                         # one active: it takes all
    (None, [rs("a", 0), rs("b", 0, created="2026-01-05T00:00:00Z")], {"b": 7}),  # none active: the newest
    (rs("new", 7, desired=7), [rs("old", 2)], {"old": 0}),              # saturated new: old go to 0
    (rs("new", 7, desired=7), [], {}),                                  # nothing to do
])
def test_scale_picks_the_replica_set(new: Obj | None, olds: list[Obj], expected: dict[str, int]) -> None:
    d = dep(7)
    assert {t["metadata"]["name"]: n for t, n, _ in ro.scale_targets(d, new, olds)} == expected


# -- revisions and history ----------------------------------------------------------------------


def test_new_and_old_replica_sets() -> None:
    d = dep(3, image="v2")
    a, b = rs("web-a", 0, image="v1"), rs("web-b", 3, image="v2", created="2026-01-03T00:00:00Z")
    c = rs("web-c", 1, image="v0", created="2026-01-02T00:00:00Z")
    assert ro.find_new(d, [a, b, c]) is b
    required, every = ro.find_old(d, [a, b, c])
    assert [x["metadata"]["name"] for x in required] == ["web-c"]
    assert {x["metadata"]["name"] for x in every} == {"web-a", "web-c"}
    assert ro.find_new(dep(3, image="v9"), [a, b, c]) is None


@pytest.mark.parametrize(("before", "new_revision", "exists", "after", "history"), [
    (None, 1, False, "1", None),          # a fresh ReplicaSet
    ("3", 3, True, "3", None),            # already current: nothing to do
    ("1", 4, True, "4", "1"),             # rolled back to: old revision kept in history
    ("5", 4, True, "5", None),            # never lowered
])
def test_revision_annotations(before: str | None, new_revision: int, exists: bool, after: str,
                              history: str | None) -> None:
    d = dep(3)
    d["metadata"]["annotations"] = {ro.CHANGE_CAUSE: "kubectl set image", ro.REVISION: "9", ro.LAST_APPLIED: "{}"}
    x = rs("web-a", 3)
    if before is not None:
        x["metadata"]["annotations"][ro.REVISION] = before
    ro.set_new_rs_annotations(d, x, new_revision, exists=exists)
    ann = x["metadata"]["annotations"]
    assert ann[ro.REVISION] == after
    assert ann.get(ro.REVISION_HISTORY) == history
    assert ann[ro.CHANGE_CAUSE] == "kubectl set image" and ro.LAST_APPLIED not in ann
    assert (ro.DESIRED_REPLICAS in ann) is not exists
    if not exists:
        assert ann[ro.DESIRED_REPLICAS] == "3" and ann[ro.MAX_REPLICAS] == "4"


def test_revision_history_is_appended() -> None:
    x = rs("web-a", 1, revision=4)
    x["metadata"]["annotations"][ro.REVISION_HISTORY] = "1,2"
    ro.set_new_rs_annotations(dep(1), x, 7, exists=True)
    assert x["metadata"]["annotations"][ro.REVISION_HISTORY] == "1,2,4"
    assert ro.max_revision([x, rs("b", 0, revision=2), None, rs("c", 0)]) == 7


@pytest.mark.parametrize(("limit", "olds", "cleaned"), [
    (10, [rs("a", 0, revision=1), rs("b", 0, revision=2)], []),
    (1, [rs("a", 0, revision=1), rs("b", 0, revision=2), rs("c", 0, revision=3)], ["a", "b"]),
    (0, [rs("a", 0, revision=2), rs("b", 0, revision=1)], ["b", "a"]),
    (0, [rs("a", 1, revision=1), rs("b", 0, revision=2, status_replicas=1)], []),   # busy ones stay
    (None, [rs("a", 0, revision=1)], []),
])
def test_history_cleanup(limit: int | None, olds: list[Obj], cleaned: list[str]) -> None:
    d = dep(1, history=limit)
    assert [x["metadata"]["name"] for x in ro.history_to_clean(d, olds)] == cleaned


# -- status and conditions ----------------------------------------------------------------------


def test_status_counts_and_available_condition() -> None:
    d = dep(4, surge=1, unavailable=1, generation=3)
    old, new = rs("old", 2), rs("new", 3, available=1, created="2026-01-02T00:00:00Z")
    status = ro.calculate_status([old, new], new, d, NOW)
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "observedGeneration": 3, "replicas": 5, "updatedReplicas": 3, "readyReplicas": 3,
        "availableReplicas": 3, "unavailableReplicas": 2}
    assert ro.get_condition(status, ro.AVAILABLE) == {
        "type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
        "message": "Deployment has minimum availability.", "lastUpdateTime": "2026-01-01T12:00:00Z",
        "lastTransitionTime": "2026-01-01T12:00:00Z"}
    status = ro.calculate_status([old, rs("new", 3, available=0)], new, d, NOW)
    assert ro.get_condition(status, ro.AVAILABLE)["reason"] == "MinimumReplicasUnavailable"  # type: ignore[index]


def progressing(reason: str, status: str = "True", updated: str = "2026-01-01T11:59:00Z") -> Obj:
    return {"type": "Progressing", "status": status, "reason": reason, "message": "m",
            "lastUpdateTime": updated, "lastTransitionTime": "2026-01-01T11:00:00Z"}


@pytest.mark.parametrize(("old_status", "new_avail", "reason", "cond_status", "message"), [
    # all new replicas available: complete
    ({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 2, "conditions": [progressing("ReplicaSetUpdated")]},
     3, "NewReplicaSetAvailable", "True", 'ReplicaSet "new" has successfully progressed.'),
    # more available than before: progressing (transition time kept)
    ({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 1, "conditions": [progressing("NewReplicaSetCreated")]},
     2, "ReplicaSetUpdated", "True", 'ReplicaSet "new" is progressing.'),
    # no progress for longer than the deadline: timed out
    ({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 2, "readyReplicas": 2,
      "conditions": [progressing("ReplicaSetUpdated", updated="2026-01-01T11:49:00Z")]},
     2, "ProgressDeadlineExceeded", "False", 'ReplicaSet "new" has timed out progressing.'),
    # no progress, deadline not reached: unchanged
    ({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 2, "readyReplicas": 2,
      "conditions": [progressing("ReplicaSetUpdated", updated="2026-01-01T11:59:00Z")]},
     2, "ReplicaSetUpdated", "True", "m"),
])
def test_progressing_condition(old_status: Obj, new_avail: int, reason: str, cond_status: str,
                               message: str) -> None:
    d = dep(3, surge=1, unavailable=0, status=old_status)
    d["status"]["observedGeneration"] = 1
    new = rs("new", 3, available=new_avail)
    status, recheck = ro.rollout_status(d, [new], new, NOW)
    cond = ro.get_condition(status, ro.PROGRESSING)
    assert cond is not None and (cond["reason"], cond["status"], cond["message"]) == (reason, cond_status, message)
    if reason == "ReplicaSetUpdated" and message != "m":
        assert cond["lastTransitionTime"] == "2026-01-01T11:00:00Z"
        assert cond["lastUpdateTime"] == "2026-01-01T12:00:00Z"
    if message == "m":  # stuck: look again when the deadline passes (+1 s)
        assert recheck == pytest.approx(541.0)


def test_no_progress_condition_without_deadline() -> None:
    d = dep(1, deadline=ro.MAX_INT32, status={"conditions": [progressing("ReplicaSetUpdated")]})
    status, recheck = ro.rollout_status(d, [rs("new", 1)], None, NOW)
    assert ro.get_condition(status, ro.PROGRESSING) is None and recheck is None


def test_same_status_ignores_zero_counts() -> None:
    assert ro.same_status({"replicas": 0, "conditions": []}, {})
    assert not ro.same_status({"replicas": 1}, {})
    assert not ro.same_status({"collisionCount": 0}, {})


# -- the reconciler over a fake client and a fake clock -----------------------------------------


class FakeClient:
    """Just enough of :class:`Client` for one reconcile: an in-memory store that records writes."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.rv = 100

    def _bump(self, obj: Obj) -> Obj:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(obj)

    async def get(self, res: Resource, name: str, namespace: str | None = None, **_: Any) -> Obj:
        try:
            return copy.deepcopy(self.objects[(res.plural, namespace or "", name)])
        except KeyError:
            raise NotFound(f'{res.plural} "{name}" not found') from None

    async def create(self, res: Resource, obj: Obj, namespace: str | None = None, **_: Any) -> Obj:
        obj = copy.deepcopy(obj)
        md = obj["metadata"]
        md.setdefault("name", f"{md.get('generateName', 'x')}{len(self.objects)}")
        key = (res.plural, md.get("namespace") or namespace or "", md["name"])
        if key in self.objects:
            raise AlreadyExists(f'{res.plural} "{md["name"]}" already exists')
        md.update(uid=f"uid-{md['name']}", creationTimestamp="2026-01-01T12:00:00Z", generation=1)
        self.objects[key] = obj
        self.writes.append(("create", res.plural, md["name"]))
        return self._bump(obj)

    async def replace(self, res: Resource, obj: Obj, namespace: str | None = None, *, subresource: str = "",
                      **_: Any) -> Obj:
        md = obj["metadata"]
        key = (res.plural, md.get("namespace") or "", md["name"])
        current = self.objects[key]
        if current["metadata"].get("resourceVersion") != md.get("resourceVersion"):
            raise Conflict("the object has been modified")
        self.objects[key] = copy.deepcopy(obj)
        self.writes.append(("replace" + (f"/{subresource}" if subresource else ""), res.plural, md["name"]))
        return self._bump(self.objects[key])

    async def replace_status(self, res: Resource, obj: Obj, namespace: str | None = None) -> Obj:
        return await self.replace(res, obj, namespace, subresource="status")

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None, **_: Any) -> Obj:
        key = (res.plural, namespace or "", name)
        if key not in self.objects:
            raise NotFound(f'{res.plural} "{name}" not found')
        self.writes.append(("patch", res.plural, name))
        return copy.deepcopy(self.objects[key])

    async def delete(self, res: Resource, name: str, namespace: str | None = None, **_: Any) -> None:
        self.objects.pop((res.plural, namespace or "", name), None)
        self.writes.append(("delete", res.plural, name))

    async def list_and_watch(self, res: Resource, namespace: str | None = None, *, stop: asyncio.Event | None = None,
                             **_: Any) -> AsyncIterator[tuple[str, Obj]]:
        """The initial list only; later writes stay in the store (the tests read them there)."""
        yield "SYNC", {"items": [copy.deepcopy(o) for (p, _, _), o in self.objects.items() if p == res.plural]}
        if stop is not None:
            await stop.wait()

    def events(self) -> list[str]:
        return [o["message"] for (plural, _, _), o in self.objects.items() if plural == "events"]


@contextlib.asynccontextmanager
async def fake_controller(fake: FakeClient, *objects: Obj) -> AsyncIterator[DeploymentController]:
    """A controller at a fixed time whose informers have synced ``objects`` (also in the fake store)."""
    controller = DeploymentController(fake, now=lambda: NOW)  # type: ignore[arg-type]
    for obj in objects:
        obj["metadata"].setdefault("namespace", "ns")
        obj["metadata"].setdefault("resourceVersion", "1")
        plural = {"Deployment": "deployments", "ReplicaSet": "replicasets", "Pod": "pods"}[obj["kind"]]
        fake.objects[(plural, "ns", obj["metadata"]["name"])] = copy.deepcopy(obj)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(informer.run(stop)) for informer in controller.informers]
    try:
        async with asyncio.timeout(5):
            await asyncio.gather(*(informer.synced.wait() for informer in controller.informers))
        yield controller
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


def owned_rs(name: str, replicas: int, *, image: str = "v1", status_replicas: int | None = None, **kw: Any) -> Obj:
    x = rs(name, replicas, image=image, status_replicas=status_replicas, **kw)
    x["kind"] = "ReplicaSet"
    x["metadata"]["labels"] = {"app": "web", ro.HASH_LABEL: name}
    x["metadata"]["ownerReferences"] = [{"kind": "Deployment", "name": "web", "uid": "d-uid", "controller": True}]
    x["spec"]["selector"] = {"matchLabels": {"app": "web", ro.HASH_LABEL: name}}
    return x


def typed_dep(**kw: Any) -> Obj:
    return {"kind": "Deployment", "apiVersion": "apps/v1", **dep(**kw)}


async def test_reconcile_creates_the_first_replica_set() -> None:
    fake = FakeClient()
    d = typed_dep(replicas=4, surge=1, unavailable=1)
    async with fake_controller(fake, d) as controller:
        await controller.reconcile("ns/web")
    name = f"web-{ro.template_hash(d['spec']['template'])}"
    created = fake.objects[("replicasets", "ns", name)]
    assert created["spec"]["replicas"] == 4
    assert created["spec"]["selector"]["matchLabels"] == {"app": "web", ro.HASH_LABEL: name[4:]}
    assert created["spec"]["template"]["metadata"]["labels"][ro.HASH_LABEL] == name[4:]
    assert {k: v for k, v in created["metadata"]["annotations"].items()} == {
        ro.REVISION: "1", ro.DESIRED_REPLICAS: "4", ro.MAX_REPLICAS: "5"}
    assert created["metadata"]["ownerReferences"][0]["uid"] == "d-uid"
    stored = fake.objects[("deployments", "ns", "web")]
    assert stored["metadata"]["annotations"][ro.REVISION] == "1"
    cond = ro.get_condition(stored["status"], ro.PROGRESSING)
    assert cond is not None and (cond["reason"], cond["message"], cond["lastUpdateTime"]) == (
        "NewReplicaSetCreated", f'Created new replica set "{name}"', "2026-01-01T12:00:00Z")
    assert fake.events() == [f"Scaled up replica set {name} from 0 to 4"]


@pytest.mark.parametrize(("old_status_replicas", "old_pod_phase", "creates"), [
    (2, None, False),          # the old ReplicaSet still reports pods
    (0, "Running", False),     # its pods are still there (being deleted)
    (0, "Succeeded", True),    # only finished pods left: go
    (0, None, True),           # all gone: create the new ReplicaSet at full size
])
async def test_recreate_waits_for_old_pods(old_status_replicas: int, old_pod_phase: str | None,
                                           creates: bool) -> None:
    fake = FakeClient()
    d = typed_dep(replicas=3, strategy="Recreate", image="v2")
    old = owned_rs("web-old", 0, status_replicas=old_status_replicas, revision=1)
    objects = [d, old]
    if old_pod_phase:
        objects.append({"kind": "Pod", "metadata": {"name": "web-old-x", "labels": {"app": "web"},
                                                     "ownerReferences": [{"kind": "ReplicaSet", "name": "web-old",
                                                                          "uid": "web-old-uid", "controller": True}]},
                        "status": {"phase": old_pod_phase}})
    async with fake_controller(fake, *objects) as controller:
        await controller.reconcile("ns/web")
    new = [o for (plural, _, n), o in fake.objects.items() if plural == "replicasets" and n != "web-old"]
    assert bool(new) is creates
    if creates:
        assert new[0]["spec"]["replicas"] == 3 and new[0]["metadata"]["annotations"][ro.REVISION] == "2"


async def test_recreate_scales_old_down_first() -> None:
    fake = FakeClient()
    async with fake_controller(fake, typed_dep(replicas=3, strategy="Recreate", image="v2"),
                               owned_rs("web-old", 3, revision=1)) as controller:
        await controller.reconcile("ns/web")
    assert fake.objects[("replicasets", "ns", "web-old")]["spec"]["replicas"] == 0
    assert [w for w in fake.writes if w[0] == "create" and w[1] == "replicasets"] == []
    assert fake.events() == ["Scaled down replica set web-old from 3 to 0"]


async def test_paused_deployment_gets_no_new_replica_set_but_scales() -> None:
    fake = FakeClient()
    d = typed_dep(replicas=5, image="v2")
    d["spec"]["paused"] = True
    async with fake_controller(fake, d, owned_rs("web-old", 3, revision=1, desired=3)) as controller:
        await controller.reconcile("ns/web")
    assert [n for (p, _, n) in fake.objects if p == "replicasets"] == ["web-old"]
    assert fake.objects[("replicasets", "ns", "web-old")]["spec"]["replicas"] == 5
    stored = fake.objects[("deployments", "ns", "web")]
    cond = ro.get_condition(stored["status"], ro.PROGRESSING)
    assert cond is not None and (cond["status"], cond["reason"], cond["message"]) == (
        "Unknown", "DeploymentPaused", "Deployment is paused")
    assert fake.events() == ["Scaled up replica set web-old from 3 to 5"]


async def test_hash_collision_bumps_collision_count() -> None:
    fake = FakeClient()
    d = typed_dep(replicas=1)
    squatter = rs(f"web-{ro.template_hash(d['spec']['template'])}", 0, image="other")
    squatter["kind"] = "ReplicaSet"
    squatter["metadata"]["labels"] = {"app": "other"}
    async with fake_controller(fake, d, squatter) as controller:
        with pytest.raises(HashCollision):
            await controller.reconcile("ns/web")
    assert fake.objects[("deployments", "ns", "web")]["status"]["collisionCount"] == 1


async def test_stuck_rollout_times_out_on_the_fake_clock() -> None:
    fake = FakeClient()
    status = {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 1,
              "availableReplicas": 1, "unavailableReplicas": 1,
              "conditions": [progressing("ReplicaSetUpdated", updated="2026-01-01T11:49:59Z")]}
    d = typed_dep(replicas=2, surge=1, unavailable=0, status=status)
    new = owned_rs(f"web-{ro.template_hash(d['spec']['template'])}", 2, available=1, revision=1, desired=2,
                   max_replicas=3)
    d["metadata"]["annotations"] = {ro.REVISION: "1"}
    async with fake_controller(fake, d, new) as controller:
        result = await controller.reconcile("ns/web")
    cond = ro.get_condition(fake.objects[("deployments", "ns", "web")]["status"], ro.PROGRESSING)
    assert cond is not None and (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert result.requeue_after is None
    # One second earlier it was not stuck yet: a recheck is scheduled for when the deadline passes.
    fake2 = FakeClient()
    unavailable = ro.new_condition(ro.AVAILABLE, "False", ro.MIN_UNAVAILABLE,
                                   "Deployment does not have minimum availability.", NOW)
    d["status"]["conditions"] = [unavailable, progressing("ReplicaSetUpdated", updated="2026-01-01T11:50:30Z")]
    async with fake_controller(fake2, d, copy.deepcopy(new)) as controller:
        result = await controller.reconcile("ns/web")
    assert [w for w in fake2.writes if w[1] == "deployments"] == []
    assert result.requeue_after == pytest.approx(31.0)


# -- integration: whole rollouts over the real API server ---------------------------------------


@contextlib.asynccontextmanager
async def running_cluster(client: Client, namespace: str, *, start: float = 0.1) -> AsyncIterator[None]:
    """Namespace, simulated nodes, scheduler, ReplicaSet and Deployment controllers in this loop."""
    await client.create(NSS, {"metadata": {"name": namespace}})
    stop = asyncio.Event()
    sim = SimulatedNodes(client, [NodeSpec(f"dep-node-{i}") for i in range(2)], stages=Stages(start=start),
                         renew_interval=2)
    controllers = [SchedulerController(client), ReplicaSetController(client), DeploymentController(client)]
    tasks = [asyncio.create_task(sim.run(stop))] + [asyncio.create_task(c.run(stop)) for c in controllers]
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await client.delete(NSS, namespace)
        stop.set()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(t, 10)


def deployment(namespace: str, *, name: str = "web", replicas: int = 4, image: str = "v1",
               strategy: Obj | None = None, extra: Obj | None = None, pod_spec: Obj | None = None) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "strategy": strategy or {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}], **(pod_spec or {})}},
                     **(extra or {})}}


async def kubectl(server: RunningServer, *args: str, check: bool = True) -> str:
    """Real kubectl, off the event loop so the controllers keep running meanwhile."""
    proc = await asyncio.to_thread(server.kubectl, *args, check=check, timeout=60)
    return proc.stdout + proc.stderr


async def replica_sets(client: Client, namespace: str) -> list[Obj]:
    items: list[Obj] = (await client.list(REPLICASETS, namespace))["items"]
    return items


async def sample_while(client: Client, namespace: str, done: Any, timeout: float = 30) -> list[list[Obj]]:
    """List the ReplicaSets every 50 ms until ``done()``; every snapshot is returned."""
    samples: list[list[Obj]] = []

    async def check() -> bool:
        samples.append(await replica_sets(client, namespace))
        return bool(await done())

    await eventually(check, timeout=timeout)
    return samples


async def test_rolling_update_history_and_undo(apiserver: RunningServer) -> None:
    require_kubectl()
    ns = "dep-rolling"
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client, running_cluster(client, ns):
        await client.create(DEPLOYMENTS, deployment(ns, replicas=4))
        out = await kubectl(apiserver, "-n", ns, "rollout", "status", "deployment/web", "--timeout=30s")
        assert 'deployment "web" successfully rolled out' in out
        d = await client.get(DEPLOYMENTS, "web", ns)
        assert d["metadata"]["annotations"][ro.REVISION] == "1"
        first = (await replica_sets(client, ns))[0]
        pod_hash = first["metadata"]["labels"][ro.HASH_LABEL]
        assert first["metadata"]["name"] == f"web-{pod_hash}"
        assert first["spec"]["selector"]["matchLabels"] == {"app": "web", ro.HASH_LABEL: pod_hash}
        assert first["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
        assert first["metadata"]["annotations"][ro.DESIRED_REPLICAS] == "4"
        assert first["metadata"]["annotations"][ro.MAX_REPLICAS] == "5"
        pods = (await client.list(PODS, ns))["items"]
        assert len(pods) == 4 and all(p["metadata"]["labels"][ro.HASH_LABEL] == pod_hash for p in pods)
        status = d["status"]
        assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"],
                status["availableReplicas"], status["observedGeneration"]) == (4, 4, 4, 4, d["metadata"]["generation"])
        assert {c["type"]: c["reason"] for c in status["conditions"]} == {
            "Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}

        # Update the image with a change cause; sample the ReplicaSets during the rollout.
        await client.patch(DEPLOYMENTS, "web", {"metadata": {"annotations": {ro.CHANGE_CAUSE: "image v2"}},
                                                "spec": {"template": {"spec": {"containers": [
                                                    {"name": "c", "image": "v2"}]}}}}, ns, patch_type="strategic")

        async def rolled() -> bool:
            cur = await client.get(DEPLOYMENTS, "web", ns)
            st = cur.get("status") or {}
            return (st.get("observedGeneration") == cur["metadata"]["generation"] and st.get("updatedReplicas") == 4
                    and st.get("availableReplicas") == 4 and st.get("replicas") == 4)

        samples = await sample_while(client, ns, rolled)
        assert len(samples) >= 3
        for snapshot in samples:
            wanted = sum(x["spec"]["replicas"] for x in snapshot)
            available = sum((x.get("status") or {}).get("availableReplicas", 0) for x in snapshot)
            assert wanted <= 4 + 1, snapshot            # maxSurge 1
            assert available >= 4 - 1, snapshot         # maxUnavailable 1
        out = await kubectl(apiserver, "-n", ns, "rollout", "status", "deployment/web", "--timeout=30s")
        assert "successfully rolled out" in out
        rss = {x["metadata"]["name"]: x for x in await replica_sets(client, ns)}
        assert len(rss) == 2 and rss[first["metadata"]["name"]]["spec"]["replicas"] == 0
        second = next(x for n, x in rss.items() if n != first["metadata"]["name"])
        assert second["metadata"]["annotations"][ro.REVISION] == "2"
        assert second["metadata"]["annotations"][ro.CHANGE_CAUSE] == "image v2"
        history = await kubectl(apiserver, "-n", ns, "rollout", "history", "deployment/web")
        assert "image v2" in history and "1 " in history and "2 " in history
        detail = await kubectl(apiserver, "-n", ns, "rollout", "history", "deployment/web", "--revision=2")
        assert "with revision #2" in detail and "Image:\tv2" in detail
        table = await kubectl(apiserver, "-n", ns, "get", "deployment", "web", "--no-headers")
        assert table.split()[1:4] == ["4/4", "4", "4"]

        # kubectl's client-side undo to revision 1: the first ReplicaSet comes back as revision 3.
        out = await kubectl(apiserver, "-n", ns, "rollout", "undo", "deployment/web", "--to-revision=1")
        assert "rolled back" in out
        out = await kubectl(apiserver, "-n", ns, "rollout", "status", "deployment/web", "--timeout=30s")
        assert "successfully rolled out" in out

        async def reused() -> bool:
            cur = {x["metadata"]["name"]: x for x in await replica_sets(client, ns)}
            back = cur.get(first["metadata"]["name"]) or {}
            return (len(cur) == 2 and (back.get("spec") or {}).get("replicas") == 4
                    and (back.get("metadata") or {}).get("annotations", {}).get(ro.REVISION) == "3")

        await eventually(reused)
        rss = {x["metadata"]["name"]: x for x in await replica_sets(client, ns)}
        assert rss[first["metadata"]["name"]]["metadata"]["annotations"][ro.REVISION_HISTORY] == "1"
        d = await client.get(DEPLOYMENTS, "web", ns)
        assert d["metadata"]["annotations"][ro.REVISION] == "3"
        assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "v1"
        # A plain undo goes to the previous revision (2), which becomes revision 4.
        await kubectl(apiserver, "-n", ns, "rollout", "undo", "deployment/web")
        await kubectl(apiserver, "-n", ns, "rollout", "status", "deployment/web", "--timeout=30s")

        async def back_to_v2() -> bool:
            cur = await client.get(REPLICASETS, second["metadata"]["name"], ns)
            ann = ro.annotations_of(cur)
            return cur["spec"]["replicas"] == 4 and ann.get(ro.REVISION) == "4" and ann.get(ro.REVISION_HISTORY) == "2"

        await eventually(back_to_v2)
        assert (await client.get(DEPLOYMENTS, "web", ns))["metadata"]["annotations"][ro.CHANGE_CAUSE] == "image v2"

        # Events kube emits, visible in kubectl describe.
        described = await kubectl(apiserver, "-n", ns, "describe", "deployment", "web")
        assert f"Scaled up replica set {second['metadata']['name']} from 0 to 1" in described
        assert f"Scaled down replica set {first['metadata']['name']} from 4 to 3" in described
        assert "NewReplicaSetAvailable" in described


async def test_recreate_never_runs_old_and_new_pods_together(apiserver: RunningServer) -> None:
    ns = "dep-recreate"
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client, running_cluster(client, ns):
        await client.create(DEPLOYMENTS, deployment(ns, replicas=3, strategy={"type": "Recreate"}))

        async def complete(image: str) -> bool:
            cur = await client.get(DEPLOYMENTS, "web", ns)
            st = cur.get("status") or {}
            return (st.get("observedGeneration") == cur["metadata"]["generation"] and st.get("updatedReplicas") == 3
                    and st.get("availableReplicas") == 3 and st.get("replicas") == 3
                    and cur["spec"]["template"]["spec"]["containers"][0]["image"] == image)

        await eventually(lambda: complete("v1"))
        await client.patch(DEPLOYMENTS, "web", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "v2"}]}}}}, ns, patch_type="strategic")
        mixed: list[set[str]] = []
        hashes_seen: set[str] = set()

        async def done() -> bool:
            pods = (await client.list(PODS, ns))["items"]
            hashes = {p["metadata"]["labels"][ro.HASH_LABEL] for p in pods}
            hashes_seen.update(hashes)
            if len(hashes) > 1:
                mixed.append(hashes)
            return await complete("v2")

        await eventually(done, timeout=30)
        assert not mixed
        assert len(hashes_seen) == 2
        rss = await replica_sets(client, ns)
        assert sorted(x["spec"]["replicas"] for x in rss) == [0, 3]


async def test_pause_resume_and_scaling_mid_rollout(apiserver: RunningServer) -> None:
    require_kubectl()
    ns = "dep-pause"
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client, running_cluster(client, ns, start=0.5):
        await client.create(DEPLOYMENTS, deployment(ns, replicas=4, extra={"revisionHistoryLimit": 1}))
        await kubectl(apiserver, "-n", ns, "rollout", "status", "deployment/web", "--timeout=30s")
        await kubectl(apiserver, "-n", ns, "rollout", "pause", "deployment/web")

        async def progressing(reason: str) -> bool:
            cond = ro.get_condition((await client.get(DEPLOYMENTS, "web", ns)).get("status") or {}, ro.PROGRESSING)
            return cond is not None and cond["reason"] == reason

        await eventually(lambda: progressing("DeploymentPaused"))
        await kubectl(apiserver, "-n", ns, "set", "image", "deployment/web", "c=v2")
        # Paused: no new ReplicaSet, but scaling still works.
        await kubectl(apiserver, "-n", ns, "scale", "deployment/web", "--replicas=6")

        async def scaled() -> bool:
            rss = await replica_sets(client, ns)
            return len(rss) == 1 and rss[0]["spec"]["replicas"] == 6 and (rss[0].get("status") or {}).get(
                "availableReplicas") == 6

        await eventually(scaled)
        await asyncio.sleep(0.3)
        assert len(await replica_sets(client, ns)) == 1

        # Resume, and pause again as soon as the new ReplicaSet has surged (its pods are slow).
        await client.patch(DEPLOYMENTS, "web", {"spec": {"strategy": {"rollingUpdate": {
            "maxSurge": 3, "maxUnavailable": 0}}}}, ns, patch_type="strategic")
        await client.patch(DEPLOYMENTS, "web", {"spec": {"paused": False}}, ns)

        async def two_replica_sets() -> bool:
            rss = await replica_sets(client, ns)
            return len(rss) == 2 and all(x["spec"]["replicas"] > 0 for x in rss)

        await eventually(two_replica_sets)
        await client.patch(DEPLOYMENTS, "web", {"spec": {"paused": True}}, ns)
        await eventually(lambda: progressing("DeploymentPaused"))

        async def annotated() -> list[Obj] | None:
            # The paused sync records the current size (6 + surge 3) on both, as kube's scale() does.
            rss = await replica_sets(client, ns)
            return rss if all(ro.annotations_of(x).get(ro.MAX_REPLICAS) == "9" for x in rss) else None

        before = await eventually(annotated)
        d = await client.get(DEPLOYMENTS, "web", ns)
        new_rs = ro.find_new(d, before)
        assert new_rs is not None and len(before) == 2
        old_rs = next(x for x in before if x is not new_rs)
        # Scaled mid-rollout: both grow in proportion to the size they were made for (kube's arithmetic).
        d["spec"]["replicas"] = 12
        expected = {x["metadata"]["name"]: n for x, n, _ in ro.scale_targets(d, new_rs, [old_rs])}
        assert sum(expected.values()) == 12 + 3
        await kubectl(apiserver, "-n", ns, "scale", "deployment/web", "--replicas=12")

        async def proportional() -> bool:
            return {x["metadata"]["name"]: x["spec"]["replicas"] for x in await replica_sets(client, ns)} == expected

        await eventually(proportional)
        assert expected[new_rs["metadata"]["name"]] > new_rs["spec"]["replicas"]
        assert expected[old_rs["metadata"]["name"]] > old_rs["spec"]["replicas"]

        await kubectl(apiserver, "-n", ns, "rollout", "resume", "deployment/web")

        async def complete() -> bool:
            cur = await client.get(DEPLOYMENTS, "web", ns)
            st = cur.get("status") or {}
            return (st.get("observedGeneration") == cur["metadata"]["generation"] and st.get("updatedReplicas") == 12
                    and st.get("availableReplicas") == 12 and st.get("replicas") == 12)

        samples = await sample_while(client, ns, complete, timeout=40)
        best = 0
        for snapshot in samples:
            assert sum(x["spec"]["replicas"] for x in snapshot) <= 12 + 3, snapshot
            # maxUnavailable 0: once available, never fewer (up to the 12 wanted).
            available = sum((x.get("status") or {}).get("availableReplicas", 0) for x in snapshot)
            assert available >= min(best, 12), (best, snapshot)
            best = max(best, available)
        out = await kubectl(apiserver, "-n", ns, "rollout", "status", "deployment/web", "--timeout=30s")
        assert "successfully rolled out" in out
        # revisionHistoryLimit 1: one old ReplicaSet kept after a third rollout.
        await kubectl(apiserver, "-n", ns, "set", "image", "deployment/web", "c=v3")
        await kubectl(apiserver, "-n", ns, "rollout", "status", "deployment/web", "--timeout=30s")

        async def cleaned() -> bool:
            names = {x["metadata"]["name"] for x in await replica_sets(client, ns)}
            return len(names) == 2 and old_rs["metadata"]["name"] not in names

        await eventually(cleaned)
        assert await progressing("NewReplicaSetAvailable")


async def test_progress_deadline_exceeded(apiserver: RunningServer) -> None:
    require_kubectl()
    ns = "dep-deadline"
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client, running_cluster(client, ns):
        # Pods that no node accepts: the rollout makes no progress and must time out.
        await client.create(DEPLOYMENTS, deployment(ns, replicas=2, extra={"progressDeadlineSeconds": 1},
                                                    pod_spec={"nodeSelector": {"disk": "none"}}))

        async def timed_out() -> Obj | None:
            st = (await client.get(DEPLOYMENTS, "web", ns)).get("status") or {}
            cond = ro.get_condition(st, ro.PROGRESSING)
            return cond if cond is not None and cond["reason"] == "ProgressDeadlineExceeded" else None

        cond = await eventually(timed_out, timeout=15)
        name = (await replica_sets(client, ns))[0]["metadata"]["name"]
        assert cond["status"] == "False" and cond["message"] == f'ReplicaSet "{name}" has timed out progressing.'
        st = (await client.get(DEPLOYMENTS, "web", ns))["status"]
        assert ro.get_condition(st, ro.AVAILABLE)["reason"] == "MinimumReplicasUnavailable"  # type: ignore[index]
        assert st["unavailableReplicas"] == 2 and st.get("availableReplicas", 0) == 0
        out = await kubectl(apiserver, "-n", ns, "rollout", "status", "deployment/web", "--timeout=10s", check=False)
        assert 'deployment "web" exceeded its progress deadline' in out


async def test_adoption_collisions_and_deletion(apiserver: RunningServer) -> None:
    ns = "dep-adopt"
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client, running_cluster(client, ns):
        # An orphan ReplicaSet with the Deployment's template is adopted and becomes its new ReplicaSet.
        template = deployment(ns, name="adopt")["spec"]["template"]
        await client.create(REPLICASETS, {
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "adopt-orphan", "namespace": ns,
                                                                        "labels": {"app": "adopt"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "adopt"}}, "template": template}})
        created = await client.create(DEPLOYMENTS, deployment(ns, name="adopt", replicas=3))

        async def adopted() -> Obj | None:
            items = [x for x in await replica_sets(client, ns) if x["metadata"]["name"].startswith("adopt")]
            x = items[0] if len(items) == 1 else None
            ok = (x is not None and x["spec"]["replicas"] == 3 and (x.get("status") or {}).get("availableReplicas") == 3
                  and (x["metadata"].get("ownerReferences") or [{}])[0].get("uid") == created["metadata"]["uid"])
            return x if ok else None

        x = await eventually(adopted)
        assert x["metadata"]["name"] == "adopt-orphan" and x["metadata"]["annotations"][ro.REVISION] == "1"

        # A ReplicaSet squatting on the new ReplicaSet's name: collisionCount goes up, another name is used.
        await client.create(DEPLOYMENTS, deployment(ns, name="clash", replicas=1, extra={"paused": True}))
        stored = await client.get(DEPLOYMENTS, "clash", ns)
        first_hash = ro.template_hash(stored["spec"]["template"])
        other = deployment(ns, name="other", image="other")["spec"]["template"]
        await client.create(REPLICASETS, {
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": f"clash-{first_hash}", "namespace": ns},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "other"}}, "template": other}})
        await client.patch(DEPLOYMENTS, "clash", {"spec": {"paused": False}}, ns)

        async def resolved() -> Obj | None:
            d = await client.get(DEPLOYMENTS, "clash", ns)
            st = d.get("status") or {}
            return d if st.get("collisionCount") == 1 and st.get("availableReplicas") == 1 else None

        d = await eventually(resolved)
        second_hash = ro.template_hash(d["spec"]["template"], 1)
        assert second_hash != first_hash
        owned = await client.get(REPLICASETS, f"clash-{second_hash}", ns)
        assert owned["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
        squatter = await client.get(REPLICASETS, f"clash-{first_hash}", ns)
        assert not squatter["metadata"].get("ownerReferences")

        # Deleting a Deployment takes its ReplicaSets and pods with it (ownerReferences, GC).
        await client.delete(DEPLOYMENTS, "adopt", ns)

        async def gone() -> bool:
            rss = [x for x in await replica_sets(client, ns) if x["metadata"]["name"].startswith("adopt")]
            pods = (await client.list(PODS, ns, label_selector="app=adopt"))["items"]
            return not rss and not pods

        await eventually(gone)
