"""Job controller: counting, backoff and deadline decisions table-driven, then Jobs over a real API server."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from atoll.client import Client, Resource
from atoll.cluster.controllers.cronjob import (
    CRONJOBS,
    CronJobController,
    Schedule,
    job_name,
    most_recent,
    to_delete,
)
from atoll.cluster.controllers.job import (
    INDEX_ENV,
    INDEX_KEY,
    JOBS,
    PODS,
    TRACKING_FINALIZER,
    JobController,
    backoff_remaining,
    ensure_condition,
    format_indexes,
    is_complete,
    is_pod_failed,
    match_failure_policy,
    match_success_policy,
    parse_indexes,
    past_backoff_limit_on_failure,
    past_deadline,
    pending_indexes,
    want_active,
    with_index,
)
from atoll.cluster.kubelet.simulated import NODES, NodeSpec, SimulatedNodes, Stages
from atoll.cluster.scheduler.controller import SchedulerController
from atoll.machinery.controlling import Controller
from atoll.machinery.informing import Lister
from tests.conftest import RunningServer, require_kubectl
from tests.waiting import eventually

NSS = Resource("v1", "namespaces", namespaced=False)
EVENTS = Resource("v1", "events", True, "Event")


@pytest.mark.parametrize(("failures", "elapsed", "remaining"), [
    (0, 0.0, 0.0), (1, 0.0, 10.0), (2, 0.0, 20.0), (3, 5.0, 35.0), (6, 0.0, 320.0), (7, 0.0, 360.0),
    (30, 0.0, 360.0), (1, 15.0, 0.0)])
def test_backoff_doubles_and_caps(failures: int, elapsed: float, remaining: float) -> None:
    assert backoff_remaining(failures, 100.0, 100.0 + elapsed) == pytest.approx(remaining)


def test_backoff_base_is_configurable() -> None:
    assert backoff_remaining(3, 0.0, 0.0, base=0.1, cap=1.0) == pytest.approx(0.4)


@pytest.mark.parametrize(("completions", "parallelism", "succeeded", "active", "want", "complete"), [
    (None, 3, 0, 0, 3, False),       # work queue: parallelism until the first success
    (None, 3, 1, 2, 2, False),       # then leave the running ones running
    (None, 3, 1, 0, 0, True),
    (5, 2, 0, 0, 2, False),
    (5, 2, 4, 1, 1, False),          # never more than the remaining completions
    (5, 2, 5, 0, 0, True),
    (5, 0, 0, 0, 0, False),
    (3, 5, 4, 0, 0, True),
])
def test_wanted_active_and_completion(completions: int | None, parallelism: int, succeeded: int, active: int,
                                      want: int, complete: bool) -> None:
    assert want_active(completions=completions, parallelism=parallelism, succeeded=succeeded, active=active) == want
    assert is_complete(completions=completions, succeeded=succeeded, active=active) is complete


@pytest.mark.parametrize(("text", "indexes"), [("", set()), ("0", {0}), ("1,3-5", {1, 3, 4, 5}),
                                               ("0-2,7,9-10", {0, 1, 2, 7, 9, 10})])
def test_completed_indexes_round_trip(text: str, indexes: set[int]) -> None:
    assert parse_indexes(text) == indexes
    assert format_indexes(indexes) == text


@pytest.mark.parametrize(("completions", "succeeded", "active", "count", "expected"), [
    (5, set(), set(), 2, [0, 1]), (5, {0}, {1}, 2, [2, 3]), (3, {0, 2}, set(), 5, [1]), (3, {0, 1, 2}, set(), 1, [])])
def test_pending_indexes(completions: int, succeeded: set[int], active: set[int], count: int,
                         expected: list[int]) -> None:
    assert pending_indexes(completions, succeeded=succeeded, active=active, count=count) == expected


@pytest.mark.parametrize(("phase", "deleting", "policy", "failed"), [
    ("Failed", False, "TerminatingOrFailed", True), ("Running", False, "TerminatingOrFailed", False),
    ("Running", True, "TerminatingOrFailed", True), ("Succeeded", True, "TerminatingOrFailed", False),
    ("Running", True, "Failed", False), ("Failed", True, "Failed", True)])
def test_pod_failure(phase: str, deleting: bool, policy: str, failed: bool) -> None:
    pod = {"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {}, "status": {"phase": phase}}
    assert is_pod_failed(pod, {"spec": {"podReplacementPolicy": policy}}) is failed


@pytest.mark.parametrize(("spec", "started", "over"), [
    ({"activeDeadlineSeconds": 10}, 15, 5.0), ({"activeDeadlineSeconds": 10}, 4, -6.0), ({}, 100, None),
    ({"activeDeadlineSeconds": 10, "suspend": True}, 100, None)])
def test_past_deadline(spec: dict[str, Any], started: int, over: float | None) -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    start = (now - dt.timedelta(seconds=started)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert past_deadline({"spec": spec, "status": {"startTime": start}}, now) == over


@pytest.mark.parametrize(("conditions", "status", "changed", "count"), [
    ([], "False", False, 0),
    ([], "True", True, 1),
    ([{"type": "Suspended", "status": "True", "reason": "JobSuspended", "message": "Job suspended"}], "True",
     False, 1),
    ([{"type": "Suspended", "status": "True", "reason": "JobSuspended", "message": "Job suspended"}], "False",
     True, 1),
])
def test_ensure_condition(conditions: list[dict[str, Any]], status: str, changed: bool, count: int) -> None:
    reason, message = ("JobSuspended", "Job suspended") if status == "True" else ("JobResumed", "Job resumed")
    out, did = ensure_condition(conditions, "Suspended", status, reason, message, "2026-01-01T00:00:00Z")
    assert did is changed and len(out) == count
    if count:
        assert out[0]["status"] == status


POLICY = {"rules": [
    {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
    {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}},
]}


def failed_pod(*codes: tuple[str, int], conditions: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": "Failed", "conditions": [{"type": c, "status": "True"} for c in conditions],
                       "containerStatuses": [{"name": n, "state": {"terminated": {"exitCode": code}}}
                                             for n, code in codes]}}


@pytest.mark.parametrize(("pod", "action", "message"), [
    (failed_pod(("main", 42)), "FailJob",
     "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 0"),
    (failed_pod(("side", 42)), "Count", "Container side for pod ns/p failed with exit code 42 matching Count rule "
                                        "at index 2"),
    (failed_pod(("main", 1), conditions=("DisruptionTarget",)), "Ignore",
     "Pod ns/p has condition DisruptionTarget matching Ignore rule at index 1"),
    (failed_pod(("main", 1)), None, ""),
    (failed_pod(("main", 0), ("side", 2)), None, ""),   # exit code 0 never matches
])
def test_pod_failure_policy(pod: dict[str, Any], action: str | None, message: str) -> None:
    assert match_failure_policy(POLICY, pod) == (action, message)


@pytest.mark.parametrize(("restart_policy", "limit", "restarts", "past"), [
    ("OnFailure", 2, 2, True), ("OnFailure", 2, 1, False), ("OnFailure", 0, 1, True), ("Never", 0, 5, False)])
def test_backoff_limit_counts_restarts_on_failure(restart_policy: str, limit: int, restarts: int, past: bool) -> None:
    job_ = {"spec": {"backoffLimit": limit, "template": {"spec": {"restartPolicy": restart_policy}}}}
    pod = {"status": {"phase": "Running", "containerStatuses": [{"name": "c", "restartCount": restarts}]}}
    assert past_backoff_limit_on_failure(job_, [pod]) is past


@pytest.mark.parametrize(("rules", "succeeded", "message"), [
    ([{"succeededIndexes": "0,2-3"}], {0, 2}, None),
    ([{"succeededIndexes": "0,2-3"}], {0, 2, 3}, "Matched rules at index 0"),
    ([{"succeededIndexes": "0-3", "succeededCount": 2}], {1, 4}, None),
    ([{"succeededIndexes": "0-3", "succeededCount": 2}], {1, 3}, "Matched rules at index 0"),
    ([{"succeededIndexes": "9"}, {"succeededCount": 2}], {0, 1}, "Matched rules at index 1"),   # 9 >= completions
    ([], {0, 1, 2}, None),
])
def test_success_policy(rules: list[dict[str, Any]], succeeded: set[int], message: str | None) -> None:
    assert match_success_policy({"rules": rules}, 5, succeeded) == message


def test_indexed_template() -> None:
    t = with_index({"spec": {"containers": [{"name": "a"}, {"name": "b", "env": [{"name": "X", "value": "1"}]}]}},
                   "job", 4)
    assert t["metadata"]["annotations"][INDEX_KEY] == "4" and t["metadata"]["labels"][INDEX_KEY] == "4"
    assert t["spec"]["hostname"] == "job-4"
    for c in t["spec"]["containers"]:
        env = {e["name"]: e for e in c["env"]}
        assert env[INDEX_ENV]["valueFrom"]["fieldRef"]["fieldPath"] == f"metadata.annotations['{INDEX_KEY}']"


# -- the reconciler over a fake client -------------------------------------------------------------


class FakeClient:
    """Just enough of :class:`Client` for the reconciler: writes are recorded and applied to ``objects``."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = {(o["kind"], o["metadata"]["name"]): o for o in objects}
        self.calls: list[tuple[str, str, str]] = []
        self.version = 100

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None, **kw: Any) -> Any:
        self.calls.append(("patch", res.kind, name))
        obj = self.objects.get((res.kind, name))
        if obj is None:
            from atoll.api.errors import NotFound

            raise NotFound(name)
        if kw.get("subresource") == "status":
            obj["status"] = copy.deepcopy(patch["status"])
        drop = (patch.get("metadata") or {}).get("$deleteFromPrimitiveList/finalizers") or []
        obj["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers") or [] if f not in drop]
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(obj)

    async def create(self, res: Resource, obj: dict[str, Any], namespace: str | None = None, **kw: Any) -> Any:
        self.calls.append(("create", res.kind, obj["metadata"].get("name") or obj["metadata"].get("generateName")))
        return {**obj, "metadata": {**obj["metadata"], "name": obj["metadata"].get("name") or "made", "uid": "new"}}

    async def delete(self, res: Resource, name: str, namespace: str | None = None, **kw: Any) -> None:
        self.calls.append(("delete", res.kind, name))


def tracked_pod(name: str, phase: str, *, finalizer: bool = True) -> dict[str, Any]:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "1",
                         "finalizers": [TRACKING_FINALIZER] if finalizer else [],
                         "ownerReferences": [{"kind": "Job", "name": "j", "uid": "job-uid", "controller": True}]},
            "spec": {"nodeName": "n"}, "status": {"phase": phase}}


def fake_job(**status: Any) -> dict[str, Any]:
    return {"kind": "Job", "apiVersion": "batch/v1",
            "metadata": {"name": "j", "namespace": "ns", "uid": "job-uid", "resourceVersion": "50"},
            "spec": {"completions": 3, "parallelism": 1, "backoffLimit": 6,
                     "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]}}},
            "status": {"startTime": "2026-01-01T00:00:00Z", **status}}


async def run_once(client: FakeClient, job_: dict[str, Any], pods: list[dict[str, Any]],
                   controller: JobController | None = None) -> JobController:
    controller = controller or JobController(client)  # type: ignore[arg-type]
    controller.jobs.lister = Lister({"ns/j": copy.deepcopy(job_)})  # what the informers would hold
    controller.pods.lister = Lister({f"ns/{p['metadata']['name']}": copy.deepcopy(p) for p in pods})
    await controller.reconcile("ns/j")
    return controller


async def test_interrupted_sync_counts_uncounted_pods_exactly_once() -> None:
    # An earlier sync recorded "a" as uncounted and removed its finalizer, then stopped before counting it.
    job_ = fake_job(succeeded=1, uncountedTerminatedPods={"succeeded": ["uid-a"], "failed": []})
    a, b = tracked_pod("a", "Succeeded", finalizer=False), tracked_pod("b", "Succeeded")
    client = FakeClient(job_, a, b)
    controller = await run_once(client, job_, [a, b])
    st = client.objects[("Job", "j")]["status"]
    assert st["succeeded"] == 3 and st["uncountedTerminatedPods"] == {"succeeded": [], "failed": []}
    assert ("patch", "Pod", "b") in client.calls and ("patch", "Pod", "a") not in client.calls
    # A stale cache still showing b's finalizer must not count b again.
    again = copy.deepcopy(client.objects[("Job", "j")])
    await run_once(client, again, [a, b], controller)
    assert client.objects[("Job", "j")]["status"]["succeeded"] == 3


async def test_finished_pods_are_recorded_before_their_finalizers_go() -> None:
    job_ = fake_job()
    failed = tracked_pod("f", "Failed")
    client = FakeClient(job_, failed)
    order: list[str] = []
    real_patch = client.patch

    async def spy(res: Resource, name: str, patch: Any, namespace: str | None = None, **kw: Any) -> Any:
        if res.kind == "Job":
            order.append(f"status:{patch['status']['uncountedTerminatedPods']['failed']}:{patch['status'].get('failed')}")
        else:
            order.append(f"finalizer:{name}")
        return await real_patch(res, name, patch, namespace, **kw)

    client.patch = spy  # type: ignore[method-assign]
    await run_once(client, job_, [failed])
    assert order[:3] == ["status:['uid-f']:None", "finalizer:f", "status:[]:1"]


# -- over a real API server ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def cluster(apiserver: RunningServer, namespace: str, *, run_pods: bool = True,
                  clock: Callable[[], dt.datetime] | None = None) -> AsyncIterator[Client]:
    """A namespace, one simulated node pool only its own pods use, the scheduler and a fast-backoff JobController.

    Without ``run_pods`` the nodes are registered but no kubelet runs their pods: they stay
    Pending (active) until the test moves them, which is how failures are staged here.
    """
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(NSS, {"metadata": {"name": namespace}})
        stop = asyncio.Event()
        nodes = [NodeSpec(f"{namespace}-node-{i}", labels={"pool": namespace}) for i in range(2)]
        sim = SimulatedNodes(client, nodes, stages=Stages(complete=0.2), renew_interval=1)
        controllers: list[Controller] = [SchedulerController(client),
                                         JobController(client, backoff_base=0.2, backoff_max=1.0)]
        if clock is not None:
            controllers.append(CronJobController(client, clock=clock))
        tasks = [asyncio.create_task(c.run(stop)) for c in controllers]
        if run_pods:
            tasks.append(asyncio.create_task(sim.run(stop)))
        else:
            await sim.register()
        try:
            yield client
        finally:
            stop.set()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(t, 10)
            for n in nodes:
                with contextlib.suppress(Exception):
                    await client.delete(NODES, n.name)


def job(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "nodeSelector": {"pool": ns},
                                           "containers": [{"name": "c", "image": "work"}]}}, **spec}}


def conditions_of(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


async def pods_of(client: Client, ns: str, name: str) -> list[dict[str, Any]]:
    return list((await client.list(PODS, ns, label_selector=f"batch.kubernetes.io/job-name={name}"))["items"])


async def test_job_runs_to_completion_and_counts_survive_pod_deletion(apiserver: RunningServer) -> None:
    require_kubectl()
    ns = "job-basic"
    async with cluster(apiserver, ns) as client:
        await client.create(JOBS, job("work", ns, completions=4, parallelism=2))
        peak = 0

        async def watch_peak() -> None:
            nonlocal peak
            while True:
                active = [p for p in await pods_of(client, ns, "work")
                          if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
                peak = max(peak, len(active))
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(watch_peak())
        try:
            out = await asyncio.to_thread(apiserver.kubectl, "wait", "--for=condition=complete", "job/work", "-n", ns,
                                          "--timeout=40s", timeout=50)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        assert "condition met" in out.stdout
        assert peak <= 2  # parallelism
        table = await asyncio.to_thread(apiserver.kubectl, "get", "job/work", "-n", ns)
        assert "Complete" in table.stdout and "4/4" in table.stdout
        got = await client.get(JOBS, "work", ns)
        st = got["status"]
        assert st["succeeded"] == 4 and st["failed"] == 0 and st["active"] == 0
        assert st["startTime"] and st["completionTime"]
        assert st["uncountedTerminatedPods"] == {"succeeded": [], "failed": []}
        conds = conditions_of(got)
        assert conds["Complete"]["status"] == "True" and conds["Complete"]["reason"] == "CompletionsReached"
        assert conds["SuccessCriteriaMet"]["status"] == "True"
        pods = await pods_of(client, ns, "work")
        assert len(pods) == 4
        uid = got["metadata"]["uid"]
        for p in pods:
            labels = p["metadata"]["labels"]
            assert labels["batch.kubernetes.io/controller-uid"] == labels["controller-uid"] == uid
            assert labels["job-name"] == "work"
            assert TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or [])
        # The counts are in the Job now, not in the pods.
        for p in pods:
            await client.delete(PODS, p["metadata"]["name"], ns)
        await eventually(lambda: _no_pods(client, ns, "work"), timeout=20)
        assert (await client.get(JOBS, "work", ns))["status"]["succeeded"] == 4
        reasons = {e["reason"] for e in (await client.list(EVENTS, ns))["items"]
                   if e["involvedObject"].get("name") == "work"}
        assert {"SuccessfulCreate", "Completed"} <= reasons


async def _no_pods(client: Client, ns: str, name: str) -> bool:
    return not await pods_of(client, ns, name)


async def test_indexed_job_and_ttl_after_finished(apiserver: RunningServer) -> None:
    ns = "job-indexed"
    async with cluster(apiserver, ns) as client:
        await client.create(JOBS, job("idx", ns, completions=3, parallelism=3, completionMode="Indexed"))

        async def complete(name: str) -> dict[str, Any] | None:
            obj = await client.get(JOBS, name, ns)
            return obj if conditions_of(obj).get("Complete", {}).get("status") == "True" else None

        done = await eventually(lambda: complete("idx"), timeout=30)
        assert done["status"]["completedIndexes"] == "0-2" and done["status"]["succeeded"] == 3
        pods = await pods_of(client, ns, "idx")
        by_index = {p["metadata"]["annotations"][INDEX_KEY]: p for p in pods}
        assert set(by_index) == {"0", "1", "2"}
        for ix, p in by_index.items():
            assert p["metadata"]["labels"][INDEX_KEY] == ix
            assert p["metadata"]["name"].startswith(f"idx-{ix}-")
            assert p["spec"]["hostname"] == f"idx-{ix}"
            assert any(e["name"] == INDEX_ENV for e in p["spec"]["containers"][0]["env"])

        # ttlSecondsAfterFinished deletes the finished Job (and the garbage collector its pods).
        await client.create(JOBS, job("short", ns, ttlSecondsAfterFinished=1))

        async def gone() -> bool:
            try:
                await client.get(JOBS, "short", ns)
            except Exception:
                return True
            return False

        await eventually(gone, timeout=20)
        await eventually(lambda: _no_pods(client, ns, "short"), timeout=20)


async def test_failures_back_off_then_exceed_the_limit(apiserver: RunningServer) -> None:
    ns = "job-fail"
    async with cluster(apiserver, ns, run_pods=False) as client:
        await client.create(JOBS, job("flaky", ns, backoffLimit=1))

        async def scheduled(exclude: set[str]) -> dict[str, Any] | None:
            for p in await pods_of(client, ns, "flaky"):
                if p["metadata"]["uid"] not in exclude and p["spec"].get("nodeName") \
                        and not p["metadata"].get("deletionTimestamp"):
                    return p
            return None

        failed_uids: set[str] = set()
        first = await eventually(lambda: scheduled(failed_uids), timeout=20)
        assert TRACKING_FINALIZER in first["metadata"]["finalizers"]
        loop = asyncio.get_running_loop()
        failed_at = loop.time()
        await client.patch(PODS, first["metadata"]["name"], {"status": {"phase": "Failed"}}, ns, subresource="status")
        failed_uids.add(first["metadata"]["uid"])
        second = await eventually(lambda: scheduled(failed_uids), timeout=20, interval=0.02)
        assert loop.time() - failed_at >= 0.2  # the replacement waited out the (test-sized) 0.2 s backoff
        assert (await client.get(JOBS, "flaky", ns))["status"]["failed"] == 1
        await client.patch(PODS, second["metadata"]["name"], {"status": {"phase": "Failed"}}, ns,
                           subresource="status")

        async def failed() -> dict[str, Any] | None:
            obj = await client.get(JOBS, "flaky", ns)
            return obj if conditions_of(obj).get("Failed", {}).get("status") == "True" else None

        obj = await eventually(failed, timeout=20)
        conds = conditions_of(obj)
        assert conds["Failed"]["reason"] == conds["FailureTarget"]["reason"] == "BackoffLimitExceeded"
        assert conds["Failed"]["message"] == "Job has reached the specified backoff limit"
        assert obj["status"]["failed"] == 2 and obj["status"]["active"] == 0
        assert "completionTime" not in obj["status"] or not obj["status"]["completionTime"]
        assert len(await pods_of(client, ns, "flaky")) == 2  # no third attempt


async def test_deadline_and_suspend(apiserver: RunningServer) -> None:
    ns = "job-deadline"
    async with cluster(apiserver, ns, run_pods=False) as client:
        await client.create(JOBS, job("slow", ns, activeDeadlineSeconds=1, parallelism=2, completions=2))

        async def failed() -> dict[str, Any] | None:
            obj = await client.get(JOBS, "slow", ns)
            return obj if conditions_of(obj).get("Failed", {}).get("status") == "True" else None

        obj = await eventually(failed, timeout=20)
        assert conditions_of(obj)["Failed"]["reason"] == "DeadlineExceeded"
        assert obj["status"]["active"] == 0
        await eventually(lambda: _no_live_pods(client, ns, "slow"), timeout=20)

        # A suspended Job starts nothing until resumed; resuming starts the clock.
        await client.create(JOBS, job("later", ns, suspend=True, parallelism=2, completions=2))
        await asyncio.sleep(0.5)
        obj = await client.get(JOBS, "later", ns)
        assert not await pods_of(client, ns, "later")
        assert conditions_of(obj)["Suspended"]["status"] == "True" and not obj["status"].get("startTime")
        await client.patch(JOBS, "later", {"spec": {"suspend": False}}, ns)

        async def active(n: int) -> dict[str, Any] | None:
            obj = await client.get(JOBS, "later", ns)
            return obj if (obj.get("status") or {}).get("active") == n else None

        obj = await eventually(lambda: active(2), timeout=20)
        assert conditions_of(obj)["Suspended"]["status"] == "False"
        assert conditions_of(obj)["Suspended"]["reason"] == "JobResumed" and obj["status"]["startTime"]
        # Suspending again removes the running pods without counting them as failures.
        await client.patch(JOBS, "later", {"spec": {"suspend": True}}, ns)
        obj = await eventually(lambda: active(0), timeout=20)
        await eventually(lambda: _no_live_pods(client, ns, "later"), timeout=20)
        obj = await client.get(JOBS, "later", ns)
        assert obj["status"].get("failed", 0) == 0
        assert conditions_of(obj)["Suspended"]["status"] == "True"


async def _no_live_pods(client: Client, ns: str, name: str) -> bool:
    return not [p for p in await pods_of(client, ns, name) if not p["metadata"].get("deletionTimestamp")]


async def test_deleting_a_job_releases_its_pods(apiserver: RunningServer) -> None:
    ns = "job-delete"
    async with cluster(apiserver, ns, run_pods=False) as client:
        await client.create(JOBS, job("doomed", ns, parallelism=3, completions=3))

        async def three() -> list[dict[str, Any]] | None:
            pods = await pods_of(client, ns, "doomed")
            return pods if len(pods) == 3 else None

        pods = await eventually(three, timeout=20)
        assert all(TRACKING_FINALIZER in p["metadata"]["finalizers"] for p in pods)
        await client.delete(JOBS, "doomed", ns, propagation_policy="Background")
        # The garbage collector deletes the pods; the controller drops the finalizers of a Job that is gone.
        await eventually(lambda: _no_pods(client, ns, "doomed"), timeout=20)


# -- CronJob -------------------------------------------------------------------------------------


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@pytest.mark.parametrize(("spec", "after", "expected"), [
    ("*/15 * * * *", "2026-01-01T00:07:30", "2026-01-01T00:15:00"),
    ("*/15 * * * *", "2026-01-01T00:15:00", "2026-01-01T00:30:00"),           # strictly after
    ("0 9 * * mon-fri", "2026-01-03T10:00:00", "2026-01-05T09:00:00"),        # Saturday -> Monday
    ("@hourly", "2026-01-01T10:30:00", "2026-01-01T11:00:00"),
    ("@daily", "2026-01-31T23:59:00", "2026-02-01T00:00:00"),
    ("0 0 1 jan *", "2026-03-01T00:00:00", "2027-01-01T00:00:00"),
    ("0 0 1,15 * fri", "2026-01-01T00:00:00", "2026-01-02T00:00:00"),         # day-of-month OR day-of-week
    ("30 4 * * 7", "2026-01-01T00:00:00", "2026-01-04T04:30:00"),             # 7 is Sunday too
    ("5-10/5 1 * * *", "2026-01-01T01:05:00", "2026-01-01T01:10:00"),
    ("@every 90s", "2026-01-01T00:00:10", "2026-01-01T00:01:40"),
    ("0 0 31 2 *", "2026-01-01T00:00:00", None),                              # never
])
def test_schedule_next(spec: str, after: str, expected: str | None) -> None:
    got = Schedule.parse(spec).next(t(after))
    assert got == (t(expected) if expected else None)


def test_schedule_in_a_time_zone() -> None:
    import zoneinfo

    ny = zoneinfo.ZoneInfo("America/New_York")
    got = Schedule.parse("0 9 * * *").next(t("2026-01-01T00:00:00").astimezone(ny))
    assert got is not None and got.astimezone(dt.UTC) == t("2026-01-01T14:00:00")


@pytest.mark.parametrize(("earliest", "now", "latest", "count"), [
    ("2026-01-01T00:00:00", "2026-01-01T00:35:00", "2026-01-01T00:30:00", 3),
    ("2026-01-01T00:00:00", "2026-01-01T00:09:59", None, 0),
    ("2026-01-01T00:30:00", "2026-01-01T00:30:00", None, 0),
])
def test_most_recent_schedule_time(earliest: str, now: str, latest: str | None, count: int) -> None:
    got, n = most_recent(Schedule.parse("*/10 * * * *"), earliest=t(earliest), now=t(now))
    assert (got, n) == ((t(latest) if latest else None), count)


def test_job_names_and_history() -> None:
    assert job_name("nightly", t("2026-01-01T00:00:00")) == f"nightly-{int(t('2026-01-01T00:00:00').timestamp()) // 60}"
    jobs = [{"metadata": {"name": n}, "status": {"startTime": s}} for n, s in
            (("b", "2026-01-02T00:00:00Z"), ("a", "2026-01-01T00:00:00Z"), ("c", "2026-01-03T00:00:00Z"))]
    assert [j["metadata"]["name"] for j in to_delete(jobs, 1)] == ["a", "b"]
    assert to_delete(jobs, 3) == []


class FakeClock:
    """Real time plus an offset the test moves forward, so minutes pass in a second."""

    def __init__(self) -> None:
        real = dt.datetime.now(dt.UTC)
        boundary = real.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        self.offset = boundary - real - dt.timedelta(seconds=0.7)

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    def skip_minute(self) -> None:
        self.offset += dt.timedelta(minutes=1)


def cronjob(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    template = job(name, ns)["spec"]
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "namespace": ns},
            "spec": {"schedule": "* * * * *", "jobTemplate": {"metadata": {"labels": {"cron": name}},
                                                               "spec": template}, **spec}}


async def cron_jobs(client: Client, ns: str, name: str) -> dict[str, dict[str, Any]]:
    return {j["metadata"]["name"]: j for j in (await client.list(JOBS, ns, label_selector=f"cron={name}"))["items"]
            if not j["metadata"].get("deletionTimestamp")}


async def poke(client: Client, ns: str, name: str, n: int) -> None:
    """Any change brings the CronJob back to its controller (instead of waiting a real minute)."""
    await client.patch(CRONJOBS, name, {"metadata": {"annotations": {"poke": str(n)}}}, ns)


async def test_cronjob_runs_on_schedule_and_keeps_history(apiserver: RunningServer) -> None:
    ns = "cron"
    clock = FakeClock()
    async with cluster(apiserver, ns, clock=clock) as client:
        await client.create(CRONJOBS, cronjob("tick", ns, successfulJobsHistoryLimit=1))

        async def completed_runs(n: int) -> dict[str, dict[str, Any]] | None:
            jobs = await cron_jobs(client, ns, "tick")
            done = {k: j for k, j in jobs.items() if conditions_of(j).get("Complete", {}).get("status") == "True"}
            return jobs if len(done) >= n else None

        first = await eventually(lambda: completed_runs(1), timeout=20)
        (name, run), = first.items()
        scheduled = dt.datetime.fromisoformat(run["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-"
                                                                           "timestamp"])
        assert name == job_name("tick", scheduled) and scheduled.second == 0
        assert run["metadata"]["ownerReferences"][0]["kind"] == "CronJob"

        async def settled() -> dict[str, Any] | None:
            st = (await client.get(CRONJOBS, "tick", ns)).get("status") or {}
            return st if st.get("lastSuccessfulTime") and not st.get("active") else None

        st = await eventually(settled, timeout=20)
        assert parse(st["lastScheduleTime"]) == scheduled
        clock.skip_minute()
        await poke(client, ns, "tick", 1)

        async def replaced_history() -> dict[str, dict[str, Any]] | None:
            jobs = await completed_runs(1)
            return jobs if jobs and name not in jobs else None

        second = await eventually(replaced_history, timeout=20)  # history limit 1: the first run is deleted
        (later,) = second
        assert later != name


def parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_cronjob_concurrency_policies(apiserver: RunningServer) -> None:
    ns = "cron-policy"
    clock = FakeClock()
    async with cluster(apiserver, ns, run_pods=False, clock=clock) as client:  # runs never finish here
        await client.create(CRONJOBS, cronjob("long", ns, concurrencyPolicy="Forbid"))
        first = await eventually(lambda: cron_jobs(client, ns, "long"), timeout=20)
        assert len(first) == 1

        async def active_is(names: list[str]) -> bool:
            st = (await client.get(CRONJOBS, "long", ns)).get("status") or {}
            return [r["name"] for r in st.get("active") or []] == names

        await eventually(lambda: active_is(list(first)), timeout=10)
        clock.skip_minute()
        await poke(client, ns, "long", 1)
        await asyncio.sleep(1.0)
        assert set(await cron_jobs(client, ns, "long")) == set(first)  # Forbid: no second run

        await client.patch(CRONJOBS, "long", {"spec": {"concurrencyPolicy": "Replace"}}, ns)

        async def replaced() -> dict[str, dict[str, Any]] | None:
            jobs = await cron_jobs(client, ns, "long")
            return jobs if len(jobs) == 1 and set(jobs) != set(first) else None

        now = await eventually(replaced, timeout=20)
        await eventually(lambda: active_is(list(now)), timeout=10)


async def test_pod_failure_policy_ignores_disruptions_and_fails_on_exit_codes(apiserver: RunningServer) -> None:
    ns = "job-policy"
    async with cluster(apiserver, ns, run_pods=False) as client:
        spec = job("strict", ns, backoffLimit=0, podFailurePolicy=POLICY)
        spec["spec"]["template"]["spec"]["containers"][0]["name"] = "main"
        await client.create(JOBS, spec)

        async def scheduled(exclude: set[str]) -> dict[str, Any] | None:
            return next((p for p in await pods_of(client, ns, "strict")
                         if p["metadata"]["uid"] not in exclude and p["spec"].get("nodeName")), None)

        first = await eventually(lambda: scheduled(set()), timeout=20)
        # A disruption matches the Ignore rule: replaced, not counted, although backoffLimit is 0.
        await client.patch(PODS, first["metadata"]["name"], {"status": {
            "phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True"}]}}, ns,
            subresource="status")
        second = await eventually(lambda: scheduled({first["metadata"]["uid"]}), timeout=20)
        obj = await client.get(JOBS, "strict", ns)
        assert obj["status"].get("failed", 0) == 0 and "Failed" not in conditions_of(obj)
        # Exit code 42 of the main container matches FailJob.
        await client.patch(PODS, second["metadata"]["name"], {"status": {"phase": "Failed", "containerStatuses": [
            {"name": "main", "image": "work", "imageID": "", "ready": False, "restartCount": 0,
             "state": {"terminated": {"exitCode": 42, "reason": "Error"}}}]}}, ns, subresource="status")

        async def failed() -> dict[str, Any] | None:
            obj = await client.get(JOBS, "strict", ns)
            return obj if conditions_of(obj).get("Failed", {}).get("status") == "True" else None

        obj = await eventually(failed, timeout=20)
        cond = conditions_of(obj)["Failed"]
        assert cond["reason"] == "PodFailurePolicy"
        assert cond["message"] == (f"Container main for pod {ns}/{second['metadata']['name']} failed with exit code "
                                   "42 matching FailJob rule at index 0")
        assert obj["status"]["failed"] == 1


async def test_success_policy_completes_an_indexed_job_early(apiserver: RunningServer) -> None:
    ns = "job-success"
    async with cluster(apiserver, ns, run_pods=False) as client:
        await client.create(JOBS, job("leader", ns, completions=4, parallelism=4, completionMode="Indexed",
                                      successPolicy={"rules": [{"succeededIndexes": "0"}]}))

        async def four() -> list[dict[str, Any]] | None:
            pods = await pods_of(client, ns, "leader")
            return pods if len(pods) == 4 and all(p["spec"].get("nodeName") for p in pods) else None

        pods = await eventually(four, timeout=20)
        leader = next(p for p in pods if p["metadata"]["annotations"][INDEX_KEY] == "0")
        await client.patch(PODS, leader["metadata"]["name"], {"status": {"phase": "Succeeded"}}, ns,
                           subresource="status")

        async def complete() -> dict[str, Any] | None:
            obj = await client.get(JOBS, "leader", ns)
            return obj if conditions_of(obj).get("Complete", {}).get("status") == "True" else None

        obj = await eventually(complete, timeout=20)
        conds = conditions_of(obj)
        assert conds["SuccessCriteriaMet"]["reason"] == conds["Complete"]["reason"] == "SuccessPolicy"
        assert conds["Complete"]["message"] == "Matched rules at index 0"
        assert obj["status"]["completedIndexes"] == "0" and obj["status"]["active"] == 0

        async def only_the_leader() -> bool:
            return [p["metadata"]["name"] for p in await pods_of(client, ns, "leader")] == [leader["metadata"]["name"]]

        await eventually(only_the_leader, timeout=20)  # the other indexes' pods were removed


async def test_jobs_managed_elsewhere_are_left_alone(apiserver: RunningServer) -> None:
    ns = "job-managed"
    async with cluster(apiserver, ns, run_pods=False) as client:
        await client.create(JOBS, job("external", ns, managedBy="example.com/batch"))
        await client.create(JOBS, job("ours", ns))
        await eventually(lambda: pods_of(client, ns, "ours"), timeout=20)
        await asyncio.sleep(0.3)
        assert not await pods_of(client, ns, "external")
        assert not (await client.get(JOBS, "external", ns)).get("status", {}).get("startTime")
