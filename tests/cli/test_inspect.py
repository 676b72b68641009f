"""``atoll status`` and ``atoll get`` rows: from Cluster objects, bindings and member objects to tables and data."""

from __future__ import annotations

from typing import Any

import pytest

from atoll import topology
from atoll.cli import inspect
from atoll.cli import supervisor as sv

TOPOLOGY = topology.parse("""
clusters:
  - {name: aws, provider: aws, region: eu-west-1, zones: [a, b], nodes: [{count: 2, costPerHour: 0.25}]}
  - {name: onprem, provider: onprem, region: dc1, nodes: [{costPerHour: 0.1}]}
""")


def cluster(name: str, *, ready: str = "True", reason: str = "ClusterReady", provider: str = "aws",
            nodes: tuple[int, int] = (2, 2), allocated: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"provider": provider, "region": "eu-west-1",
                                                 "apiEndpoint": f"https://{name}"},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": reason}],
                       "kubernetesVersion": "v1.32.0", "nodeSummary": {"totalNum": nodes[1], "readyNum": nodes[0]},
                       "resourceSummary": {"allocatable": {"cpu": "8", "memory": "32Gi", "pods": "220"},
                                           "allocated": allocated or {}}}}


def test_status_rows_join_federation_topology_and_supervisor_views() -> None:
    state = sv.SupervisorState(state_dir="/s", members={"aws": sv.ProcessRecord("aws", state="killed"),
                                                        "onprem": sv.ProcessRecord("onprem", state="running")})
    rows = inspect.status_rows([cluster("aws", ready="False", reason="ClusterNotReachable",
                                        allocated={"cpu": "1500m", "memory": "1536Mi", "pods": "3"})],
                               TOPOLOGY, state)
    assert [r["name"] for r in rows] == ["aws", "onprem"]
    aws, onprem = rows
    assert aws["ready"] == "False" and aws["reason"] == "ClusterNotReachable" and aws["process"] == "killed"
    assert aws["costPerHour"] == 0.5 and aws["cpu"] == {"allocated": "1500m", "allocatable": "8"}
    assert onprem["joined"] is False and onprem["reason"] == "NotJoined" and onprem["provider"] == "onprem"
    table = inspect.status_table(rows)
    assert table[0][:4] == ["CLUSTER", "PROVIDER", "REGION", "STATUS"]
    assert table[1][3] == "NotReady (killed)"
    assert table[1][6:9] == ["1.5/8", "1.5/32Gi", "3/220"]
    assert table[2][3] == "NotJoined"
    assert table[-1] == ["total", "", "", "", "", "", "", "", "", "$0.60"]


@pytest.mark.parametrize(("ready", "joined", "process", "shown"), [
    ("True", True, "running", "Ready"),
    ("False", True, "running", "NotReady"),
    ("False", True, "exited", "NotReady (exited)"),
    ("Unknown", True, "", "Unknown"),
    ("Unknown", False, "stopped", "NotJoined (stopped)"),
])
def test_health_column(ready: str, joined: bool, process: str, shown: str) -> None:
    assert inspect.health_of({"ready": ready, "joined": joined, "process": process}) == shown


DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default",
                                                                          "generation": 2},
              "spec": {"replicas": 6}}


def binding(clusters: list[tuple[str, int]], aggregated: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"spec": {"clusters": [{"name": n, "replicas": r} for n, r in clusters]},
            "status": {"aggregatedStatus": aggregated or []}}


def member(ready: int, replicas: int, *, observed: int = 2) -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": replicas},
            "status": {"readyReplicas": ready, "updatedReplicas": ready, "observedGeneration": observed}}


@pytest.mark.parametrize(("rb", "members", "unreachable", "expected", "total"), [
    # Not scheduled yet: no binding.
    (None, None, frozenset(), [], (None, "Unknown", False)),
    # Aggregated status from the federation.
    (binding([("a", 4), ("b", 2)], [{"clusterName": "a", "applied": True, "health": "Healthy",
                                     "status": {"readyReplicas": 4}},
                                    {"clusterName": "b", "applied": True, "health": "Unhealthy",
                                     "status": {"readyReplicas": 1}}]), None, frozenset(),
     [("a", 4, 4, "Healthy", "federation"), ("b", 2, 1, "Unhealthy", "federation")], (5, "Unhealthy", True)),
    # No aggregated status: asked of the members.
    (binding([("a", 3), ("b", 3)]), {"a": member(3, 3), "b": member(3, 3, observed=1)}, frozenset(),
     [("a", 3, 3, "Healthy", "member"), ("b", 3, 3, "Unhealthy", "member")], (6, "Unhealthy", True)),
    # A member that does not answer, one that has no copy, one never asked.
    (binding([("a", 2), ("b", 2), ("c", 2)]), {"b": None}, frozenset({"a"}),
     [("a", 2, None, "Unknown", "unreachable"), ("b", 2, None, "Unknown", "member"),
      ("c", 2, None, "Unknown", "none")], (0, "Unhealthy", True)),
])
def test_placement_of_a_deployment(rb: dict[str, Any] | None, members: dict[str, Any] | None,
                                   unreachable: frozenset[str], expected: list[tuple[Any, ...]],
                                   total: tuple[Any, ...]) -> None:
    p = inspect.placement(DEPLOYMENT, rb, members, unreachable)
    assert [(c["name"], c["replicas"], c["readyReplicas"], c["health"], c["source"]) for c in p["clusters"]] \
        == expected
    assert (p["readyReplicas"] if p["clusters"] else None, p["health"], p["scheduled"]) == total
    assert p["replicas"] == 6 and p["kind"] == "Deployment" and p["namespace"] == "default"


def test_a_not_ready_cluster_is_unknown_whatever_it_last_reported() -> None:
    rb = binding([("a", 2), ("b", 2)], [{"clusterName": c, "applied": True, "health": "Healthy",
                                         "status": {"readyReplicas": 2}} for c in ("a", "b")])
    p = inspect.placement(DEPLOYMENT, rb, not_ready=frozenset({"a"}))
    assert [(c["name"], c["health"], c["source"]) for c in p["clusters"]] == [
        ("a", "Unknown", "cluster NotReady"), ("b", "Healthy", "federation")]
    assert p["health"] == "Unhealthy"
    assert inspect.get_table([p])[2] == ["", "a", "2/2", "Unknown (cluster NotReady)", "yes"]


def test_non_workloads_have_no_replicas() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": {}}
    p = inspect.placement(svc, binding([("a", 0)]), {"a": {"kind": "Service", "spec": {}}})
    assert p["replicas"] is None and p["clusters"][0]["readyReplicas"] is None
    assert p["clusters"][0]["replicas"] is None and p["health"] == "Healthy"
    rows = inspect.get_table([p])
    assert rows[1] == ["service/web", "1 cluster", "-", "Healthy", ""]
    assert rows[2] == ["", "a", "-", "Healthy (member)", "yes"]


def test_get_table_with_and_without_namespaces() -> None:
    p = inspect.placement(DEPLOYMENT, binding([("a", 6)], [{"clusterName": "a", "applied": True,
                                                            "health": "Healthy", "status": {"readyReplicas": 6}}]))
    assert inspect.get_table([p]) == [["NAME", "CLUSTER", "READY", "HEALTH", "APPLIED"],
                                      ["deployment/web", "1 cluster", "6/6", "Healthy", ""],
                                      ["", "a", "6/6", "Healthy", "yes"]]
    wide = inspect.get_table([p], all_namespaces=True)
    assert wide[0][0] == "NAMESPACE" and wide[1][0] == "default" and wide[2][0] == ""
    unscheduled = inspect.get_table([inspect.placement(DEPLOYMENT, None)])
    assert unscheduled[1] == ["deployment/web", "not scheduled", "0/6", "Unknown", ""]


@pytest.mark.parametrize(("obj", "expected"), [
    ({"kind": "Deployment", "spec": {"replicas": 3}}, 3),
    ({"kind": "Deployment", "spec": {}}, 1),
    ({"kind": "StatefulSet", "spec": {"replicas": 0}}, 0),
    ({"kind": "ConfigMap"}, None),
])
def test_desired_replicas(obj: dict[str, Any], expected: int | None) -> None:
    assert inspect.desired_replicas(obj) == expected
