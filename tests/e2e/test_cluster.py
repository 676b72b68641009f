"""A whole member cluster as a user meets it: `atoll cluster run`, then kubectl and curl.

One cluster process with two nodes on the process runtime; every step goes through the
real kubectl or real HTTP to the Service's ClusterIP, as the issue's walk-through does.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer, require_kubectl, start_cluster, stop_process
from tests.waiting import wait_for

pytestmark = pytest.mark.kubectl


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    require_kubectl()
    state = tmp_path_factory.mktemp("cluster") / "state"
    state.mkdir()
    running = start_cluster(state, name="e2e", nodes=2, runtime="process")
    try:
        yield running
    finally:
        stop_process(running.process)


def kjson(cluster: RunningServer, *args: str) -> Any:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)



def get(url: str, timeout: float = 3.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body: dict[str, Any] = json.loads(resp.read())
        return body


def pods(cluster: RunningServer, selector: str = "app=web") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kjson(cluster, "get", "pods", "-l", selector)["items"]
    return items


def ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def test_deployment_service_logs_restarts_scaling_rollout_and_drain(cluster: RunningServer) -> None:
    k = cluster.kubectl
    assert "e2e-node-0" in k("get", "nodes").stdout
    k("create", "deployment", "web", "--image=atoll/echo", "--replicas=3", "--port=8080")
    k("expose", "deployment", "web", "--port=80", "--target-port=8080")
    k("rollout", "status", "deployment/web", "--timeout=90s", timeout=100)
    svc = kjson(cluster, "get", "service", "web")
    ip = svc["spec"]["clusterIP"]
    assert ip.startswith("127.")
    url = f"http://{ip}:80/hello"

    # Answers from all three pods through the ClusterIP.
    names = {p["metadata"]["name"] for p in pods(cluster)}
    assert len(names) == 3

    def answered_by_all() -> bool:
        seen = {get(url)["pod"] for _ in range(30)}
        return seen == names

    wait_for(answered_by_all, 30)
    one = get(url)
    assert one["cluster"] == "e2e" and one["path"] == "/hello" and one["namespace"] == "default"

    # Logs of a pod show the request it served.
    first = sorted(names)[0]
    wait_for(lambda: "/hello" in k("logs", first).stdout, 20)

    # Kill one pod's process: the kubelet restarts it.
    victim = get(url)
    before = next(p for p in pods(cluster) if p["metadata"]["name"] == victim["pod"])
    restarts = before["status"]["containerStatuses"][0]["restartCount"]
    pids = processes_of("e2e", pod=victim["pod"])
    assert pids, f"no process found for pod {victim['pod']}"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: next((p for p in pods(cluster) if p["metadata"]["name"] == victim["pod"]), {})
             .get("status", {}).get("containerStatuses", [{}])[0].get("restartCount", 0) > restarts, 60)

    # Delete a pod: the ReplicaSet replaces it.
    k("delete", "pod", first, "--wait=true", timeout=90)
    wait_for(lambda: len([p for p in pods(cluster) if ready(p) and p["metadata"]["name"] != first]) == 3, 60)

    # Scale to 5.
    k("scale", "deployment/web", "--replicas=5")
    k("rollout", "status", "deployment/web", "--timeout=90s", timeout=100)
    assert len([p for p in pods(cluster) if ready(p)]) == 5

    # Roll out a new version while a client keeps calling: no request fails.
    failures: list[str] = []
    versions: set[str] = set()
    stop = threading.Event()

    def caller() -> None:
        deadline = time.monotonic() + 150
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                versions.add(get(url)["tag"])
            except (urllib.error.URLError, OSError, ValueError) as exc:
                failures.append(repr(exc))
            time.sleep(0.02)

    thread = threading.Thread(target=caller, daemon=True)
    thread.start()
    try:
        k("set", "image", "deployment/web", "echo=atoll/echo:2")
        k("rollout", "status", "deployment/web", "--timeout=120s", timeout=130)
        wait_for(lambda: "2" in versions, 20)
    finally:
        stop.set()
        thread.join(10)
    assert failures == [], f"{len(failures)} requests failed during the rollout: {failures[:3]}"
    assert {get(url)["tag"] for _ in range(10)} == {"2"}
    history = k("rollout", "history", "deployment/web").stdout
    assert "1" in history and "2" in history

    # Drain a node: its pods are evicted and run on the other node.
    node = "e2e-node-0"
    k("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=90s", timeout=100)
    assert kjson(cluster, "get", "node", node)["spec"].get("unschedulable") is True
    wait_for(lambda: len([p for p in pods(cluster) if ready(p) and p["spec"]["nodeName"] != node]) == 5, 90)
    assert not [p for p in pods(cluster) if p["spec"].get("nodeName") == node]
    k("uncordon", node)


def test_unknown_image_is_reported(cluster: RunningServer) -> None:
    cluster.kubectl("run", "nope", "--image=example.com/does-not-exist:1", "--restart=Never")

    def waiting_reason() -> str:
        st = kjson(cluster, "get", "pod", "nope").get("status", {}).get("containerStatuses") or [{}]
        return str(((st[0].get("state") or {}).get("waiting") or {}).get("reason") or "")

    assert wait_for(lambda: waiting_reason() in ("ErrImagePull", "ImagePullBackOff"), 30)
    described = cluster.kubectl("describe", "pod", "nope").stdout
    assert "not found in the Atoll image catalog" in described


def processes_of(cluster_name: str, *, pod: str = "") -> list[int]:
    """Processes whose environment names the cluster (every pod container gets ATOLL_CLUSTER) and pod."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                env = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"ATOLL_CLUSTER={cluster_name}".encode() in env and (not pod or f"POD_NAME={pod}".encode() in env):
                found.append(int(entry.name))
    return found


def test_cluster_stops_without_leaving_processes(tmp_path: Path) -> None:
    require_kubectl()
    state = tmp_path / "state"
    state.mkdir()
    running = start_cluster(state, name="brief", nodes=1, runtime="process")
    try:
        running.kubectl("run", "sleeper", "--image=busybox", "--restart=Never", "--", "sleep", "300")
        wait_for(lambda: kjson(running, "get", "pod", "sleeper")["status"].get("phase") == "Running", 60)
        assert processes_of("brief"), "the pod's process should be running"
    finally:
        stop_process(running.process)
    wait_for(lambda: not processes_of("brief"), 20)
