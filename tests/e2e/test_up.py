"""`atoll up` as a user runs it: the default multi-cloud, the tour of docs/up.md, an outage, and no process left.

The first test starts ``atoll up`` (the shipped three-cloud topology, process runtime) as a
subprocess on a temporary state directory, waits for its ready line, then walks the tour:
kubectl against the federation and every member context, a Deployment divided by static
weights, ``atoll status`` and ``atoll get``, ``atoll kill`` (the member and its pods die, the
federation sees it NotReady, failover moves its replicas), ``atoll revive``, ``atoll down`` —
and then ``ps`` must show nothing of the process tree. The second test resumes a state
directory (same ports, same objects) and stops with Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, require_kubectl

pytestmark = pytest.mark.kubectl

MEMBERS = ("aws-eu-west-1", "gcp-us-central1", "onprem-dc1")
READY_WITHIN = 60.0
"""The issue's promise: the default multi-cloud up and ready in under 60 s on a 2-core machine."""


def failover_wired() -> bool:
    """Whether the federation runs the taint manager yet (another piece of work; see the report)."""
    from atoll.federation import plane

    return "ClusterTaintManager" in Path(plane.__file__).read_text()


@dataclass
class Up:
    """A running ``atoll up`` and everything it printed."""

    proc: subprocess.Popen[str]
    state_dir: Path
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None and not (self.reader and self.reader.is_alive()):
                break
            time.sleep(0.1)
        raise AssertionError(f"no line with {text!r} within {timeout}s; atoll up printed:\n{self.output()}")


def start_up(state_dir: Path, *args: str) -> Up:
    proc = subprocess.Popen([sys.executable, "-m", "atoll.cli.main", "up", "--state-dir", str(state_dir), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    up = Up(proc, state_dir)

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            up.lines.append(line.rstrip("\n"))

    up.reader = threading.Thread(target=read, daemon=True)
    up.reader.start()
    return up


def finish(up: Up) -> None:
    """Whatever happened in the test: nothing of this tree may outlive it."""
    if up.proc.poll() is None:
        up.proc.send_signal(signal.SIGTERM)
        try:
            up.proc.wait(60)
        except subprocess.TimeoutExpired:
            up.proc.kill()
            up.proc.wait(10)
    for pid in tree_processes(up.state_dir):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def atoll(state_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "atoll.cli.main", *args, "--state-dir", str(state_dir)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def kubectl(up: Up, context: str, *args: str, input: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["kubectl", "--kubeconfig", str(up.kubeconfig), "--context", context, *args],
                          input=input, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl --context {context} {' '.join(args)}: {proc.stderr}")
    return proc


def kjson(up: Up, context: str, *args: str) -> Any:
    return json.loads(kubectl(up, context, *args, "-o", "json").stdout)


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not reached within {timeout}s; last: {last!r}")


def tree_processes(state_dir: Path) -> list[int]:
    """Every process of an ``atoll up`` tree: supervisor, API servers (their argv names the state directory)
    and pods (their working directory is inside it)."""
    root = str(state_dir.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if root in argv or cwd == root or cwd.startswith(root + os.sep):
            found.append(int(entry.name))
    return found


def ps_lines(state_dir: Path) -> list[str]:
    """What ``ps`` says about processes naming the state directory."""
    out = subprocess.run(["ps", "-eo", "pid,stat,args"], capture_output=True, text=True, timeout=10).stdout
    return [line for line in out.splitlines() if str(state_dir.resolve()) in line and " Z " not in line]


def running_ready(pods: list[dict[str, Any]]) -> int:
    return sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in p["status"].get("conditions") or []))


def member_pods(up: Up, member: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kjson(up, member, "get", "pods", "-l", "app=web", "-n", "default")["items"]
    return items


APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: echo, image: atoll/echo, ports: [{containerPort: 8080}]}]
---
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: web, namespace: default}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: web}]
  placement:
    clusterAffinity: {clusterNames: [aws-eu-west-1, gcp-us-central1, onprem-dc1]}
    clusterTolerations:
      - {key: cluster.karmada.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 5}
      - {key: cluster.karmada.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 5}
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Weighted
      weightPreference:
        staticWeightList:
          - {targetCluster: {clusterNames: [aws-eu-west-1]}, weight: 1}
          - {targetCluster: {clusterNames: [gcp-us-central1]}, weight: 1}
          - {targetCluster: {clusterNames: [onprem-dc1]}, weight: 1}
"""


@pytest.fixture
def multicloud(tmp_path: Path) -> Iterator[Up]:
    require_kubectl()
    started = time.monotonic()
    up = start_up(tmp_path / "state")
    try:
        up.wait_for_line("atoll up: ready", READY_WITHIN)
        print(f"atoll up ready after {time.monotonic() - started:.1f}s (wall clock, from process start)")
        yield up
    finally:
        finish(up)


def cluster_ready(up: Up, name: str) -> str:
    obj = kjson(up, "atoll", "get", "cluster", name)
    return next((c["status"] for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"),
                "Unknown")


def test_up_tour_outage_and_down(multicloud: Up) -> None:
    up = multicloud
    state = up.state_dir
    ready_line = up.wait_for_line("atoll up: ready", 1)
    assert "3 clusters (6 nodes) joined" in ready_line and str(up.kubeconfig) in ready_line
    for text in ("export KUBECONFIG=", "kubectl get clusters", "atoll demo", *MEMBERS):
        assert text in up.output()

    # The kubeconfig: the federation is current, one context per member.
    contexts = kubectl(up, "atoll", "config", "get-contexts", "-o", "name").stdout.split()
    assert sorted(contexts) == sorted(["atoll", *MEMBERS])
    assert yaml.safe_load(up.kubeconfig.read_text())["current-context"] == "atoll"
    clusters = kjson(up, "atoll", "get", "clusters")["items"]
    assert sorted(c["metadata"]["name"] for c in clusters) == sorted(MEMBERS)
    wait_for(lambda: all(cluster_ready(up, m) == "True" for m in MEMBERS), 30, "every member Ready")
    nodes = kjson(up, "aws-eu-west-1", "get", "nodes")["items"]
    assert {n["metadata"]["labels"]["topology.kubernetes.io/region"] for n in nodes} == {"eu-west-1"}

    # A Deployment divided by static weights: two replicas on every cloud.
    kubectl(up, "atoll", "apply", "-f", "-", input=APP)
    wait_for(lambda: [running_ready(member_pods(up, m)) for m in MEMBERS] == [2, 2, 2], 60,
             "2 Ready pods on every member")

    status = atoll(state, "status", "-o", "json")
    assert status.returncode == 0, status.stderr
    rows = {r["name"]: r for r in json.loads(status.stdout)}
    assert {n: (r["provider"], r["ready"], r["process"]) for n, r in rows.items()} == {
        "aws-eu-west-1": ("aws", "True", "running"), "gcp-us-central1": ("gcp", "True", "running"),
        "onprem-dc1": ("onprem", "True", "running")}
    assert all(r["costPerHour"] > 0 and r["nodes"] == {"ready": 2, "total": 2} for r in rows.values())
    got = atoll(state, "get", "deployment", "web", "-o", "json")
    assert got.returncode == 0, got.stderr
    placement = json.loads(got.stdout)
    assert {c["name"]: c["replicas"] for c in placement["clusters"]} == dict.fromkeys(MEMBERS, 2)
    table = atoll(state, "get", "deployments").stdout
    assert "deployment/web" in table and "aws-eu-west-1" in table

    # An outage: the member's process and every pod of it die at once.
    victim = "aws-eu-west-1"
    supervisor_state = json.loads((state / "supervisor.json").read_text())
    victim_pid = next(m["pid"] for m in supervisor_state["members"] if m["name"] == victim)
    victim_dir = str((state / victim).resolve())
    assert [p for p in tree_processes(state / victim) if p != victim_pid], "the victim's pods should be running"
    killed = atoll(state, "kill", victim)
    assert killed.returncode == 0, killed.stderr
    assert f"{victim} killed" in killed.stdout
    assert not Path(f"/proc/{victim_pid}").exists() or "Z" in Path(f"/proc/{victim_pid}/stat").read_text().split()[2]
    wait_for(lambda: not [p for p in tree_processes(state / victim)], 10, f"no process of {victim} left")
    assert not [ln for ln in ps_lines(state) if victim_dir in ln]
    up.wait_for_line(f"{victim} killed", 10)
    wait_for(lambda: cluster_ready(up, victim) == "False", 30, f"{victim} NotReady on the federation")
    down_row = {r["name"]: r for r in json.loads(atoll(state, "status", "-o", "json").stdout)}[victim]
    assert (down_row["ready"], down_row["process"]) == ("False", "killed")
    if failover_wired():
        def moved() -> bool:
            return sum(running_ready(member_pods(up, m)) for m in MEMBERS if m != victim) == 6

        wait_for(moved, 90, "the victim's replicas Ready on the other clouds (failover)")
    else:
        # TODO(lead): the federation does not run the taint manager yet (atoll/federation/plane.py); once it
        # does, the branch above asserts that the replicas fail over. Nothing to change here.
        warnings.warn("failover not wired into the federation yet: replica failover not asserted", stacklevel=1)

    # The outage ends: the member comes back on its port, with its data, and joins again.
    revived = atoll(state, "revive", victim)
    assert revived.returncode == 0, revived.stderr
    assert f"{victim} revived" in revived.stdout
    wait_for(lambda: cluster_ready(up, victim) == "True", 30, f"{victim} Ready again")
    assert kjson(up, victim, "get", "nodes")["items"], "the revived member kept its nodes"

    # Down: nothing of the tree is left, as ps sees it.
    down = atoll(state, "down")
    assert down.returncode == 0, down.stderr
    assert up.proc.wait(30) == 0
    wait_for(lambda: not tree_processes(state), 15, "no process of the multi-cloud left")
    assert ps_lines(state) == []
    assert "nothing left running" in up.output()
    again = atoll(state, "down")
    assert again.returncode == 3 and "nothing is running" in again.stderr


SMALL = """
apiVersion: atoll.dev/v1alpha1
kind: Topology
clusters:
  - {name: east, provider: aws, region: us-east-1, runtime: simulated, nodes: [{costPerHour: 0.1}]}
  - {name: west, provider: gcp, region: us-west1, runtime: simulated, nodes: [{costPerHour: 0.1}]}
"""


def test_resume_keeps_ports_and_objects_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    require_kubectl()
    topology = tmp_path / "small.yaml"
    topology.write_text(SMALL)
    state = tmp_path / "state"
    first = start_up(state, "--topology", str(topology))
    try:
        first.wait_for_line("atoll up: ready", READY_WITHIN)
        ports = {m["name"]: m["port"] for m in json.loads((state / "supervisor.json").read_text())["members"]}
        kubectl(first, "atoll", "create", "configmap", "kept", "--from-literal=a=1")
        # A member that dies on its own is reported, not restarted; the others go on.
        east_pid = next(m["pid"] for m in json.loads((state / "supervisor.json").read_text())["members"]
                        if m["name"] == "east")
        os.kill(east_pid, signal.SIGKILL)
        assert "atoll revive east" in first.wait_for_line("east exited unexpectedly (code -9", 10)
        rows = {r["name"]: r for r in json.loads(atoll(state, "status", "-o", "json").stdout)}
        assert (rows["east"]["process"], rows["west"]["process"]) == ("exited", "running")
        assert atoll(state, "revive", "east").returncode == 0
        second = atoll(state, "up")
        assert second.returncode == 4 and second.stderr.count("\n") == 1 and "already running" in second.stderr
        first.proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert first.proc.wait(60) == 0
        wait_for(lambda: not tree_processes(state), 15, "nothing left after Ctrl-C")
    finally:
        finish(first)

    resumed = start_up(state)  # no --topology: the one the state directory runs
    try:
        resumed.wait_for_line("atoll up: ready", READY_WITHIN)
        again = {m["name"]: m["port"] for m in json.loads((state / "supervisor.json").read_text())["members"]}
        assert again == ports
        assert kjson(resumed, "atoll", "get", "configmap", "kept")["data"] == {"a": "1"}
        assert sorted(c["metadata"]["name"] for c in kjson(resumed, "atoll", "get", "clusters")["items"]) == \
            ["east", "west"]
        resumed.proc.send_signal(signal.SIGTERM)
        assert resumed.proc.wait(60) == 0
        wait_for(lambda: not tree_processes(state), 15, "nothing left after SIGTERM")
    finally:
        finish(resumed)


def test_a_member_that_cannot_start_is_one_error_line_and_nothing_is_left(tmp_path: Path) -> None:
    topology = tmp_path / "small.yaml"
    topology.write_text(SMALL)
    state = tmp_path / "state"
    state.mkdir()
    (state / "west").write_text("a file where west's state directory belongs")
    proc = subprocess.run([sys.executable, "-m", "atoll.cli.main", "up", "--state-dir", str(state), "--topology",
                           str(topology)], capture_output=True, text=True, timeout=90, cwd=ROOT)
    assert proc.returncode == 1
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: west did not start: "), proc.stderr
    assert str(state / "logs" / "west.log") in errors[0]
    assert "nothing left running" in proc.stdout
    assert not tree_processes(state)


@pytest.mark.etcd
def test_one_etcd_shared_by_every_api_server_under_its_own_prefix(tmp_path: Path) -> None:
    import asyncio

    from atoll.storage import open_store
    from atoll.storage.etcd_server import EtcdServer
    from tests.conftest import require_etcd

    require_kubectl()
    require_etcd()
    topology = tmp_path / "small.yaml"
    topology.write_text(SMALL)
    state = tmp_path / "state"

    async def scenario() -> None:
        async with EtcdServer(tmp_path / "etcd") as endpoint:
            up = start_up(state, "--topology", str(topology), "--storage", endpoint)
            try:
                await asyncio.to_thread(up.wait_for_line, "atoll up: ready", READY_WITHIN)
                kubectl(up, "east", "create", "configmap", "only-in-east", "--from-literal=a=1")
                assert kubectl(up, "west", "get", "configmap", "only-in-east", check=False).returncode != 0
                raw = await open_store(endpoint)
                try:
                    keys = [kv.key for kv in (await raw.range("/atoll/")).kvs]
                finally:
                    await raw.close()
                assert {"/".join(k.split("/")[:3]) for k in keys} == {"/atoll/federation", "/atoll/east",
                                                                      "/atoll/west"}
                assert any(k.startswith("/atoll/east/") and k.endswith("/only-in-east") for k in keys)
                up.proc.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(up.proc.wait, 60) == 0
            finally:
                finish(up)

    asyncio.run(scenario())
    assert not tree_processes(state)
