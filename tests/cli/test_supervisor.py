"""The supervisor's pure parts and its process hygiene: kubeconfig merging, the state file, storage URLs,
ports, the control socket address, and killing what a member's kubelets left (pid files, start times)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from atoll.cli import supervisor as sv

KC = """
apiVersion: v1
kind: Config
current-context: {ctx}
clusters:
- name: {cluster}
  cluster: {{server: "{server}", certificate-authority: {ca}}}
users:
- name: {user}
  user: {user_body}
contexts:
- name: {ctx}
  context: {{cluster: {cluster}, user: {user}{ns}}}
- name: other
  context: {{cluster: {cluster}, user: {user}}}
"""


def write_kc(path: Path, *, ctx: str = "dev", cluster: str = "dev", user: str = "admin", server: str = "https://x:1",
             ca: str = "pki/ca.crt", user_body: str = "{client-certificate: pki/a.crt, client-key: /abs/a.key}",
             ns: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(KC.format(ctx=ctx, cluster=cluster, user=user, server=server, ca=ca, user_body=user_body,
                              ns=f", namespace: {ns}" if ns else ""))
    return path


def test_merged_kubeconfig_has_one_context_per_server_and_the_federation_current(tmp_path: Path) -> None:
    fed = write_kc(tmp_path / "federation" / "kubeconfig", ctx="atoll", cluster="atoll", user="atoll-admin",
                   server="https://127.0.0.1:1000", user_body="{token: secret}")
    aws = write_kc(tmp_path / "aws" / "kubeconfig", ctx="aws", cluster="aws", server="https://127.0.0.1:2000",
                   ns="web")
    gcp = write_kc(tmp_path / "gcp" / "kubeconfig", ctx="dev", cluster="same-name", server="https://127.0.0.1:3000")
    doc = sv.merge_kubeconfigs({"atoll": fed, "aws-eu-west-1": aws, "gcp-us-central1": gcp})
    assert doc["current-context"] == "atoll"
    assert [c["name"] for c in doc["contexts"]] == ["atoll", "aws-eu-west-1", "gcp-us-central1"]
    assert {c["name"]: c["cluster"]["server"] for c in doc["clusters"]} == {
        "atoll": "https://127.0.0.1:1000", "aws-eu-west-1": "https://127.0.0.1:2000",
        "gcp-us-central1": "https://127.0.0.1:3000"}
    contexts = {c["name"]: c["context"] for c in doc["contexts"]}
    assert contexts["aws-eu-west-1"] == {"cluster": "aws-eu-west-1", "user": "aws-eu-west-1-admin", "namespace": "web"}
    users = {u["name"]: u["user"] for u in doc["users"]}
    assert users["atoll-admin"] == {"token": "secret"}
    # Relative paths were relative to each source file; the merged file lives elsewhere.
    aws_cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == "aws-eu-west-1")
    assert aws_cluster["certificate-authority"] == str(tmp_path / "aws" / "pki" / "ca.crt")
    assert users["aws-eu-west-1-admin"] == {"client-certificate": str(tmp_path / "aws" / "pki" / "a.crt"),
                                            "client-key": "/abs/a.key"}


def test_written_kubeconfig_is_private_and_kubectl_shaped(tmp_path: Path) -> None:
    fed = write_kc(tmp_path / "f" / "kubeconfig", ctx="atoll", cluster="atoll")
    out = tmp_path / "kubeconfig"
    sv.write_kubeconfig(out, {"atoll": fed})
    assert out.stat().st_mode & 0o777 == 0o600
    doc = yaml.safe_load(out.read_text())
    assert doc["apiVersion"] == "v1" and doc["kind"] == "Config" and doc["current-context"] == "atoll"


@pytest.mark.parametrize(("text", "message"), [
    ("", "no context"),
    ("current-context: x\ncontexts: [{name: x, context: {cluster: nope}}]", "names no cluster"),
    ("[1, 2]", "is not a kubeconfig"),
    ("a: [", "cannot read the kubeconfig of m"),
])
def test_unusable_member_kubeconfigs_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    with pytest.raises(sv.SupervisorError, match=message):
        sv.merge_kubeconfigs({"m": path})


def test_state_file_round_trips(tmp_path: Path) -> None:
    state = sv.SupervisorState(
        state_dir=str(tmp_path), supervisor_pid=10, supervisor_start_time="99", socket="/s", storage="etcd://h:1",
        runtime="simulated", federation=sv.ProcessRecord("federation", port=1000, pid=11, start_time="5",
                                                         url="https://127.0.0.1:1000", state="running"),
        members={"aws": sv.ProcessRecord("aws", port=2000, pid=12, state="killed", exit_code=-9)})
    sv.save_state(tmp_path, state)
    assert (tmp_path / sv.STATE_FILE).stat().st_mode & 0o777 == 0o600
    assert sv.load_state(tmp_path) == state
    assert sv.load_state(tmp_path / "nothing-here") is None


@pytest.mark.parametrize(("doc", "message"), [
    ("not json", "not valid JSON"),
    ("[]", "expected a JSON object"),
    ('{"version": 7}', "unsupported version 7"),
    ('{"version": 1, "members": {"a": 1}}', "members: expected a list"),
    ('{"version": 1, "members": [{"pid": 1}]}', r"members\[0\]: expected a process record"),
    ('{"version": 1, "members": [{"name": "a", "pid": "x"}]}', r"members\[0\].pid: expected a number"),
    ('{"version": 1, "federation": {"name": "federation", "state": "dancing"}}', "unknown state 'dancing'"),
])
def test_damaged_state_files_are_named_errors(tmp_path: Path, doc: str, message: str) -> None:
    (tmp_path / sv.STATE_FILE).write_text(doc)
    with pytest.raises(sv.SupervisorError, match=message):
        sv.load_state(tmp_path)


@pytest.mark.parametrize(("storage", "name", "expected"), [
    ("", "aws", ""),
    ("sqlite", "aws", ""),
    ("etcd://127.0.0.1:2379", "aws", "etcd://127.0.0.1:2379/atoll/aws"),
    ("etcd://a:1,b:2", "federation", "etcd://a:1,b:2/atoll/federation"),
    ("etcd://a:1/team/", "gcp", "etcd://a:1/team/gcp"),
])
def test_every_api_server_gets_its_own_storage(storage: str, name: str, expected: str) -> None:
    assert sv.member_storage(storage, name) == expected


def test_unknown_storage_is_a_usage_error() -> None:
    with pytest.raises(sv.SupervisorError, match="--storage must be sqlite or etcd://") as info:
        sv.member_storage("mysql://x", "a")
    assert info.value.code == sv.EXIT_USAGE


def test_recorded_ports_are_reused_when_free_and_replaced_when_taken() -> None:
    import socket

    free = sv.pick_port()
    assert sv.pick_port(free) == free
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        other = sv.pick_port(busy)
        assert other != busy and sv.port_free(other)
    assert sv.pick_port(free, taken=[free]) != free


def test_control_socket_falls_back_to_an_abstract_name_for_long_directories(tmp_path: Path) -> None:
    assert sv.socket_address(tmp_path) == str(tmp_path.resolve() / sv.SOCKET_FILE)
    deep = tmp_path / ("d" * 120)
    address = sv.socket_address(deep)
    assert address.startswith("\0atoll-supervisor-") and address == sv.socket_address(deep)


def test_a_missing_supervisor_is_not_running(tmp_path: Path) -> None:
    assert sv.running_supervisor(tmp_path) == 0
    with pytest.raises(sv.SupervisorError) as info:
        sv.request(str(tmp_path / "nope.sock"), "ping")
    assert info.value.code == sv.EXIT_NOT_RUNNING


def _sleeper(cwd: Path) -> subprocess.Popen[bytes]:
    """A stand-in for a pod: its own session, like the process runtime's containers."""
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(["sleep", "60"], cwd=cwd, start_new_session=True)


def _gone(proc: subprocess.Popen[bytes]) -> bool:
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        return False
    return True


def test_kill_pods_kills_recorded_containers_but_never_a_reused_pid(tmp_path: Path) -> None:
    member = tmp_path / "aws"
    run = member / "kubelet" / "aws-node-0" / "run"
    run.mkdir(parents=True)
    pod = _sleeper(member / "kubelet" / "aws-node-0" / "pods" / "default_web_1" / "work")
    bystander = _sleeper(tmp_path / "elsewhere")
    try:
        (run / "a.pid").write_text(f"{pod.pid} {sv.start_time(pod.pid)}\n")
        (run / "b.pid").write_text(f"{bystander.pid} 1\n")  # same pid, another start time: not ours
        (run / "c.pid").write_text("garbage\n")
        assert sv.kill_pods(member) == 1
        assert _gone(pod) and pod.returncode == -signal.SIGKILL
        assert bystander.poll() is None
        assert not (run / "a.pid").exists() and not (run / "b.pid").exists()
    finally:
        for p in (pod, bystander):
            if p.poll() is None:
                p.kill()
                p.wait(5)


def test_leftovers_of_a_dead_supervisor_are_stopped(tmp_path: Path) -> None:
    member_proc = _sleeper(tmp_path / "x")
    pod = _sleeper(tmp_path / "aws" / "kubelet" / "n0" / "pods" / "p" / "work")
    try:
        state = sv.SupervisorState(state_dir=str(tmp_path), members={"aws": sv.ProcessRecord(
            "aws", pid=member_proc.pid, start_time=sv.start_time(member_proc.pid), state="running")})
        stopped = sv.clean_leftovers(tmp_path, state)
        assert "aws" in stopped
        assert _gone(member_proc) and _gone(pod)  # the pod had no pid file: found by its working directory
        assert sv.clean_leftovers(tmp_path, state) == []
    finally:
        for p in (member_proc, pod):
            if p.poll() is None:
                p.kill()
                p.wait(5)


@pytest.mark.parametrize(("log", "expected"), [
    ("starting\nerror: cannot serve on 127.0.0.1:5: Address already in use\n",
     "error: cannot serve on 127.0.0.1:5: Address already in use"),
    ("a\nValueError: bad\nTraceback\nlast line\n", "ValueError: bad"),
    ("one\ntwo\n", "two"),
    ("", "no output"),
])
def test_the_line_that_explains_a_failed_start(tmp_path: Path, log: str, expected: str) -> None:
    path = tmp_path / "x.log"
    path.write_text(log)
    assert sv.last_error(path) == expected


async def test_control_requests_name_unknown_clusters_and_operations(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    sup = sv.Supervisor(tmp_path / "state", topology_text="clusters: [{name: a, nodes: [{}]}]")
    sup._plan(None)
    unknown: dict[str, Any] = await sup.control("kill", "b")
    assert unknown == {"ok": False, "message": "no cluster named 'b' (have: a, federation)", "code": sv.EXIT_USAGE}
    assert (await sup.control("explode"))["code"] == sv.EXIT_USAGE
    assert (await sup.control("ping"))["ok"]
    down = await sup.control("down")
    assert down["ok"] and sup.stop_event.is_set()
    saved = json.loads((tmp_path / "state" / sv.STATE_FILE).read_text())
    assert [m["name"] for m in saved["members"]] == ["a"] and saved["federation"]["port"] > 0


def test_reserved_cluster_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(sv.SupervisorError, match="reserved") as info:
        sv.Supervisor(tmp_path, topology_text="clusters: [{name: federation, nodes: [{}]}]")
    assert info.value.code == sv.EXIT_USAGE


def test_alive_needs_the_same_start_time() -> None:
    me = os.getpid()
    assert sv.alive(me, sv.start_time(me))
    assert not sv.alive(me, "1")
    assert not sv.alive(0, "")
    deadline = time.monotonic() + 5
    p = subprocess.Popen(["true"])
    started = sv.start_time(p.pid)
    while p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not sv.alive(p.pid, started)
