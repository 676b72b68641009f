"""The cluster status computations, table-driven: summaries, quantities, thresholds, taints, member configs."""

from __future__ import annotations

import base64
from fractions import Fraction
from typing import Any

import pytest

from atoll.federation.clusters.clients import MemberConfigError, fingerprint, member_config
from atoll.federation.clusters.status import (
    CLUSTER_NOT_REACHABLE,
    CLUSTER_NOT_READY,
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    ConditionCache,
    api_enablements,
    desired_taints,
    format_quantity,
    node_summary,
    pod_requests,
    ready_condition,
    resource_summary,
    set_condition,
)


def node(name: str, *, ready: bool = True, **allocatable: str) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "status": {"allocatable": allocatable,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(*requests: dict[str, str], node_name: str = "", phase: str = "Pending",
        init: tuple[dict[str, str], ...] = (), overhead: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "resources": {"requests": r}}
                                           for i, r in enumerate(requests)]}
    if init:
        spec["initContainers"] = [{"name": f"i{i}", "resources": {"requests": r}} for i, r in enumerate(init)]
    if overhead:
        spec["overhead"] = overhead
    if node_name:
        spec["nodeName"] = node_name
    return {"spec": spec, "status": {"phase": phase}}


@pytest.mark.parametrize(("item", "expected"), [
    (pod({"cpu": "100m"}, {"cpu": "250m", "memory": "64Mi"}), {"cpu": Fraction(35, 100), "memory": 64 * 2**20}),
    (pod({"cpu": "100m"}, init=({"cpu": "1"}, {"cpu": "500m"})), {"cpu": Fraction(1)}),   # the largest init wins
    (pod({"cpu": "2"}, init=({"cpu": "1"},)), {"cpu": Fraction(2)}),
    (pod({"cpu": "1"}, overhead={"cpu": "100m"}), {"cpu": Fraction(11, 10)}),
    (pod(), {}),
])
def test_pod_requests(item: dict[str, Any], expected: dict[str, Any]) -> None:
    assert pod_requests(item) == expected


@pytest.mark.parametrize(("name", "value", "text"), [
    ("cpu", Fraction(6), "6"), ("cpu", Fraction(3, 2), "1500m"), ("cpu", Fraction(1, 3), "334m"),
    ("memory", Fraction(12 * 2**30), "12Gi"), ("memory", Fraction(1536 * 2**20), "1536Mi"),
    ("memory", Fraction(1000), "1k"), ("memory", Fraction(1500), "1500"), ("pods", Fraction(120), "120"),
    ("pods", Fraction(1000), "1k"), ("nvidia.com/gpu", Fraction(2), "2"), ("hugepages-2Mi", Fraction(2**21), "2Mi"),
    ("cpu", Fraction(0), "0"),
])
def test_format_quantity(name: str, value: Fraction, text: str) -> None:
    assert format_quantity(name, value) == text


@pytest.mark.parametrize(("nodes", "pods", "expected"), [
    ([node("a", cpu="4", memory="8Gi", pods="110"), node("b", cpu="2", memory="4Gi", pods="10")], [],
     {"allocatable": {"cpu": "6", "memory": "12Gi", "pods": "120"}}),
    ([node("a", cpu="4", pods="110")],
     [pod({"cpu": "500m"}), pod({"cpu": "1"}, node_name="a", phase="Running"),
      pod({"cpu": "2"}, node_name="a", phase="Succeeded"), pod({"cpu": "2"}, node_name="a", phase="Failed"),
      pod({"cpu": "250m", "memory": "1Gi"}, node_name="a", phase="Pending")],
     {"allocatable": {"cpu": "4", "pods": "110"},
      "allocating": {"cpu": "500m", "pods": "1"},                           # not bound yet
      "allocated": {"cpu": "1250m", "memory": "1Gi", "pods": "2"}}),         # bound and not finished
    ([], [], {}),
])
def test_resource_summary(nodes: list[dict[str, Any]], pods: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    assert resource_summary(nodes, pods) == expected


def test_node_summary() -> None:
    assert node_summary([node("a"), node("b", ready=False), {"metadata": {"name": "c"}}]) == {"totalNum": 3,
                                                                                             "readyNum": 1}


def test_api_enablements_drop_subresources_and_sort() -> None:
    out = api_enablements([("v1", [{"name": "pods", "kind": "Pod"}, {"name": "pods/status", "kind": "Pod"},
                                   {"name": "configmaps", "kind": "ConfigMap"}]),
                           ("apps/v1", [{"name": "deployments", "kind": "Deployment"}])])
    assert out == [{"groupVersion": "apps/v1", "resources": [{"name": "deployments", "kind": "Deployment"}]},
                   {"groupVersion": "v1", "resources": [{"name": "configmaps", "kind": "ConfigMap"},
                                                        {"name": "pods", "kind": "Pod"}]}]


@pytest.mark.parametrize(("online", "healthy", "status", "reason"), [
    (True, True, "True", "ClusterReady"), (True, False, "False", CLUSTER_NOT_READY),
    (False, False, "False", CLUSTER_NOT_REACHABLE),
])
def test_ready_condition(online: bool, healthy: bool, status: str, reason: str) -> None:
    c = ready_condition(online, healthy)
    assert (c["type"], c["status"], c["reason"]) == ("Ready", status, reason)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


# (seconds since start, observed ready?, published ready?) with failure 6 s, success 2 s.
OUTAGE = [(0, True, True), (1, False, True), (5, False, True), (7, False, False), (8, True, False),
          (9, True, False), (10.5, True, True), (11, False, True), (12, True, True), (20, False, True)]


def test_condition_cache_thresholds() -> None:
    clock = Clock()
    cache = ConditionCache(success_threshold=2, failure_threshold=6, clock=clock)
    published: dict[str, Any] | None = None
    start = clock.t
    for at, observed, expected in OUTAGE:
        clock.t = start + at
        published = cache.adjust("c", published, ready_condition(True, observed) if observed
                                 else ready_condition(False, False))
        assert (published["status"] == "True") is expected, (at, published)


def test_condition_cache_publishes_the_first_observation_at_once() -> None:
    cache = ConditionCache(success_threshold=2, failure_threshold=6, clock=Clock())
    assert cache.adjust("new", None, ready_condition(False, False))["status"] == "False"


def test_set_condition_keeps_transition_time_while_status_holds() -> None:
    first = set_condition([], ready_condition(True, True), "t1")
    same = set_condition(first, ready_condition(True, True), "t2")
    flipped = set_condition(same, ready_condition(False, False), "t3")
    assert first[0]["lastTransitionTime"] == same[0]["lastTransitionTime"] == "t1"
    assert flipped[0]["lastTransitionTime"] == "t3" and flipped[0]["reason"] == CLUSTER_NOT_REACHABLE


USER = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.mark.parametrize(("current", "ready", "no_execute", "expected"), [
    ([], ready_condition(False, False), True, [(TAINT_UNREACHABLE, "NoSchedule"), (TAINT_UNREACHABLE, "NoExecute")]),
    ([], ready_condition(True, False), True, [(TAINT_NOT_READY, "NoSchedule"), (TAINT_NOT_READY, "NoExecute")]),
    ([], ready_condition(True, False), False, [(TAINT_NOT_READY, "NoSchedule")]),
    # unreachable -> reachable but unhealthy: the taint key swaps
    ([{"key": TAINT_UNREACHABLE, "effect": "NoSchedule"}], ready_condition(True, False), False,
     [(TAINT_NOT_READY, "NoSchedule")]),
    ([USER, {"key": TAINT_NOT_READY, "effect": "NoSchedule"}], ready_condition(True, True), True,
     [("dedicated", "NoSchedule")]),                                       # recovery keeps the user's taint
    ([USER], None, False, [("dedicated", "NoSchedule"), (TAINT_NOT_READY, "NoSchedule")]),  # never probed
])
def test_desired_taints(current: list[dict[str, Any]], ready: dict[str, Any] | None, no_execute: bool,
                        expected: list[tuple[str, str]]) -> None:
    taints = desired_taints(current, ready, "2026-01-01T00:00:00Z", no_execute=no_execute)
    assert [(t["key"], t["effect"]) for t in taints] == expected


def test_desired_taints_keep_time_added() -> None:
    old = {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2025-01-01T00:00:00Z"}
    taints = desired_taints([old], ready_condition(False, False), "2026-01-01T00:00:00Z")
    assert old in taints and {"key": TAINT_UNREACHABLE, "effect": "NoSchedule",
                              "timeAdded": "2026-01-01T00:00:00Z"} in taints


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def cluster(endpoint: str = "https://127.0.0.1:6443", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "m"}, "spec": {"apiEndpoint": endpoint, "secretRef": {
        "namespace": "karmada-cluster", "name": "m"}, **spec}}


@pytest.mark.parametrize(("obj", "data", "error"), [
    (cluster(""), {"token": b64("t")}, "api endpoint of cluster m is empty"),
    (cluster(), None, "does not have a secret"),
    (cluster(), {"caBundle": b64("ca")}, 'missing a non-empty value for "token"'),
    (cluster(), {"token": b64("t")}, 'missing the CA data key "caBundle"'),
    (cluster(), {"token": "%%%"}, "not valid base64"),
])
def test_member_config_errors(obj: dict[str, Any], data: dict[str, str] | None, error: str) -> None:
    with pytest.raises(MemberConfigError, match=error):
        member_config(obj, None if data is None else {"data": data})


def test_member_config_token_certificate_and_insecure() -> None:
    token = member_config(cluster("127.0.0.1:6443"), {"data": {"token": b64("tok\n"), "caBundle": b64("CA")}})
    assert (token.server, token.token, token.ca_data) == ("https://127.0.0.1:6443", "tok", b"CA")
    cert = member_config(cluster(), {"data": {"tls.crt": b64("C"), "tls.key": b64("K"), "caBundle": b64("CA")}})
    assert (cert.token, cert.cert_data, cert.key_data) == (None, b"C", b"K")
    insecure = member_config(cluster(insecureSkipTLSVerification=True), {"data": {"token": b64("t")}})
    assert insecure.insecure and insecure.ca_data is None
    rotated = member_config(cluster("127.0.0.1:6443"), {"data": {"token": b64("new"), "caBundle": b64("CA")}})
    assert fingerprint(token) != fingerprint(rotated)
    assert fingerprint(token) == fingerprint(member_config(cluster("https://127.0.0.1:6443/"), {
        "data": {"token": b64("tok"), "caBundle": b64("CA")}}))
