"""The federation end to end: a federation process and three member-cluster processes.

Karmada's own samples go in through the real kubectl; what the members run is read back
from each member's own API server. Members use simulated nodes (the process runtime is
covered by tests/e2e/test_cluster.py), so placement, overrides, scaling, deletion,
failover after a member's death and a federation restart are what is tested here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, RunningServer, require_kubectl, start_cluster, start_federation, stop_process
from tests.waiting import wait_for

pytestmark = pytest.mark.kubectl
SAMPLES = ROOT / "tests" / "federation" / "samples"
MEMBERS = ("member1", "member2", "member3")


@dataclass
class Multicloud:
    federation: RunningServer
    members: dict[str, RunningServer]
    root: Path

    def fed(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.federation.kubectl(*args, check=check, input=input)

    def member(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.members[name].kubectl(*args, check=check)

    def restart_federation(self, *, kill: bool) -> None:
        proc = self.federation.process
        if kill:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        else:
            stop_process(proc)
        listen = self.federation.url.removeprefix("https://")
        self.federation = start_federation(self.federation.state_dir, listen=listen, extra=FAST)


FAST = ("--cluster-status-interval", "1", "--cluster-failure-threshold", "3")


def member_replicas(mc: Multicloud, name: str, deployment: str, namespace: str = "default") -> int | None:
    proc = mc.member(name, "get", "deployment", deployment, "-n", namespace, "-o", "json", check=False)
    if proc.returncode != 0:
        return None
    return int(json.loads(proc.stdout)["spec"]["replicas"])


def member_ready(mc: Multicloud, name: str, deployment: str) -> int:
    proc = mc.member(name, "get", "deployment", deployment, "-o", "json", check=False)
    if proc.returncode != 0:
        return 0
    return int((json.loads(proc.stdout).get("status") or {}).get("readyReplicas") or 0)



@pytest.fixture(scope="module")
def multicloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Multicloud]:
    require_kubectl()
    root = tmp_path_factory.mktemp("multicloud")
    members: dict[str, RunningServer] = {}
    fed = start_federation(root / "federation", extra=FAST)
    try:
        for i, name in enumerate(MEMBERS):
            (root / name).mkdir()
            members[name] = start_cluster(root / name, name=name, nodes=2, runtime="simulated",
                                          extra=("--pod-cidr", f"127.{40 + i}.0.0/16",
                                                 "--service-cidr", f"127.{90 + i}.0.0/16"))
        for name, member in members.items():
            subprocess.run([sys.executable, "-m", "atoll.cli.main", "join", name, "--kubeconfig",
                            str(member.kubeconfig), "--federation-kubeconfig", str(fed.kubeconfig),
                            "--provider", "aws" if name != "member3" else "onprem", "--region", f"region-{name}"],
                           check=True, capture_output=True, text=True, cwd=ROOT, timeout=60)
        mc = Multicloud(fed, members, root)
        wait_for(lambda: mc.fed("get", "clusters").stdout.count(" True ") == 3, 30)
        yield mc
    finally:
        for member in members.values():
            stop_process(member.process)
        stop_process(fed.process)
        if "mc" in locals():
            stop_process(mc.federation.process)  # the federation as restarted by a test


def test_karmada_samples_place_override_scale_and_delete(multicloud: Multicloud) -> None:
    mc = multicloud
    mc.fed("apply", "-f", str(SAMPLES / "quickstart-nginx.yaml"))
    # Karmada's documented result: 2 replicas weighted 1:1 over member1 and member2, none on member3.
    wait_for(lambda: (member_replicas(mc, "member1", "nginx"), member_replicas(mc, "member2", "nginx")) == (1, 1))
    assert member_replicas(mc, "member3", "nginx") is None
    rb = json.loads(mc.fed("get", "resourcebinding", "nginx-deployment", "-o", "json").stdout)
    assert sorted((c["name"], c["replicas"]) for c in rb["spec"]["clusters"]) == [("member1", 1), ("member2", 1)]

    # The OverridePolicy sample: labels on member2, annotations on member1.
    mc.fed("apply", "-f", str(SAMPLES / "overridepolicy-nginx.yaml"))

    def overridden() -> bool:
        m2 = json.loads(mc.member("member2", "get", "deployment", "nginx", "-o", "json").stdout)["metadata"]
        m1 = json.loads(mc.member("member1", "get", "deployment", "nginx", "-o", "json").stdout)["metadata"]
        return (m2.get("labels") or {}).get("env") == "skoala-dev" and \
            (m1.get("annotations") or {}).get("env") == "skoala-stage"

    wait_for(overridden, 30)

    # Scale on the federation: the members share the new count, and the template's status sums them.
    mc.fed("scale", "deployment/nginx", "--replicas=6")
    wait_for(lambda: (member_replicas(mc, "member1", "nginx"), member_replicas(mc, "member2", "nginx")) == (3, 3))
    wait_for(lambda: member_ready(mc, "member1", "nginx") + member_ready(mc, "member2", "nginx") == 6, 60)

    # A rebalance schedules it afresh: same policy, same placement, reported per workload.
    rebalanced = subprocess.run([sys.executable, "-m", "atoll.cli.main", "rebalance", "deployment/nginx",
                                 "--state-dir", str(mc.federation.state_dir)],
                                capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert rebalanced.returncode == 0, rebalanced.stderr
    assert "deployment/nginx" in rebalanced.stdout and "Successful" in rebalanced.stdout
    wait_for(lambda: (member_replicas(mc, "member1", "nginx"), member_replicas(mc, "member2", "nginx")) == (3, 3))

    # Delete the template: gone from every member.
    mc.fed("delete", "-f", str(SAMPLES / "overridepolicy-nginx.yaml"))
    mc.fed("delete", "deployment", "nginx")
    wait_for(lambda: all(member_replicas(mc, m, "nginx") is None for m in MEMBERS), 30)
    mc.fed("delete", "propagationpolicy", "nginx-propagation")


SPREAD = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: NAME, labels: {app: NAME}}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: NAME}}
  template:
    metadata: {labels: {app: NAME}}
    spec: {containers: [{name: web, image: atoll/echo}]}
---
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: NAME}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: NAME}]
  placement:
    clusterAffinity: {clusterNames: [member1, member2, member3]}
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Weighted
      weightPreference:
        staticWeightList:
          - {targetCluster: {clusterNames: [member1]}, weight: 1}
          - {targetCluster: {clusterNames: [member2]}, weight: 1}
          - {targetCluster: {clusterNames: [member3]}, weight: 1}
"""


def spread(name: str, replicas: int) -> str:
    return SPREAD.replace("NAME", name).replace("REPLICAS", str(replicas))


def test_federation_restart_mid_propagation_loses_and_duplicates_nothing(multicloud: Multicloud) -> None:
    mc = multicloud
    names = [f"burst-{i}" for i in range(12)]
    mc.fed("apply", "-f", "-", input="\n---\n".join(spread(n, 3) for n in names))
    mc.restart_federation(kill=True)  # SIGKILL while the controllers are propagating
    for n in names:
        wait_for(lambda n=n: all(member_replicas(mc, m, n) == 1 for m in MEMBERS), 90)
    works = json.loads(mc.fed("get", "works", "-A", "-o", "json").stdout)["items"]
    per_cluster: dict[tuple[str, str], int] = {}
    for w in works:
        manifest = w["spec"]["workload"]["manifests"][0]
        if manifest["metadata"]["name"].startswith("burst-"):
            key = (w["metadata"]["namespace"], manifest["metadata"]["name"])
            per_cluster[key] = per_cluster.get(key, 0) + 1
    assert len(per_cluster) == len(names) * 3 and set(per_cluster.values()) == {1}, per_cluster
    for n in names:
        mc.fed("delete", "deployment", n, "--wait=false")
        mc.fed("delete", "propagationpolicy", n, "--wait=false")


def test_a_dead_member_fails_over(multicloud: Multicloud) -> None:
    mc = multicloud
    mc.fed("apply", "-f", "-", input=spread("survivor", 6))
    wait_for(lambda: all(member_ready(mc, m, "survivor") == 2 for m in MEMBERS), 60)
    victim = mc.members["member3"]
    os.killpg(victim.process.pid, signal.SIGKILL)  # the cloud goes dark
    victim.process.wait(10)
    wait_for(lambda: "False" in mc.fed("get", "cluster", "member3").stdout
             or "Unknown" in mc.fed("get", "cluster", "member3").stdout, 30)
    # Its replicas are rescheduled onto the living members and become Ready there.
    wait_for(lambda: member_ready(mc, "member1", "survivor") + member_ready(mc, "member2", "survivor") == 6, 90)
