"""The management commands as a user meets their mistakes: one ``error:`` line and an exit code that means
something; ``status`` and ``get`` against a real API server standing in for the federation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from atoll.cli import supervisor as sv
from tests.conftest import ROOT, RunningServer


def atoll(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "atoll.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or ROOT, env={**os.environ, "ATOLL_STATE_DIR": ""})


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got: {proc.stderr!r}"
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(("topology", "message"), [
    ("clusters: [{name: A, nodes: [{}]}]", r"clusters\[0\].name: must be a DNS label"),
    ("clusters: [{name: a, nodes: [{memory: lots}]}]", r"nodes\[0\].memory: must be a Kubernetes quantity"),
    ("clusters: [", "not valid YAML at line 1"),
    ("clusters: [{name: logs, nodes: [{}]}]", "reserved by atoll up"),
])
def test_up_with_a_bad_topology_exits_2_with_one_line(tmp_path: Path, topology: str, message: str) -> None:
    import re

    path = tmp_path / "topology.yaml"
    path.write_text(topology)
    proc = atoll("up", "--topology", str(path), "--state-dir", str(tmp_path / "state"))
    assert proc.returncode == sv.EXIT_USAGE
    assert re.search(message, one_error_line(proc))
    assert not (tmp_path / "state").exists()  # nothing started, nothing written


@pytest.mark.parametrize(("args", "code", "message"), [
    (["up", "--topology", "/no/such.yaml"], sv.EXIT_USAGE, "cannot read topology /no/such.yaml"),
    (["up", "--runtime", "docker"], sv.EXIT_USAGE, "--runtime must be one of process, simulated"),
    (["up", "--storage", "mysql://x"], sv.EXIT_USAGE, "--storage must be sqlite or etcd://"),
    (["down"], sv.EXIT_NOT_RUNNING, "nothing is running from"),
    (["kill", "aws-eu-west-1"], sv.EXIT_NOT_RUNNING, "no multi-cloud is running from"),
    (["revive", "aws-eu-west-1"], sv.EXIT_NOT_RUNNING, "no multi-cloud is running from"),
    (["status"], sv.EXIT_NOT_RUNNING, "no multi-cloud in"),
    (["get", "deployments"], sv.EXIT_NOT_RUNNING, "no multi-cloud in"),
    (["demo"], sv.EXIT_NOT_RUNNING, "no multi-cloud in"),
    (["status", "-o", "xml"], sv.EXIT_USAGE, "-o must be one of table, json, yaml"),
])
def test_commands_without_a_multi_cloud(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    proc = atoll(*args, "--state-dir", str(tmp_path / "state"))
    assert proc.returncode == code, proc.stderr
    assert message in one_error_line(proc)


def test_every_command_has_help_with_examples() -> None:
    for command in ("up", "down", "kill", "revive", "status", "get", "demo"):
        proc = atoll(command, "--help")
        assert proc.returncode == 0, proc.stderr
        assert "Examples" in proc.stdout and f"atoll {command}" in proc.stdout.replace("  ", " ")


@pytest.fixture
def held(tmp_path: Path) -> Iterator[sv.Supervisor]:
    """A supervisor that holds its state directory (lock, pid file, state) without starting processes."""
    state = tmp_path / "state"
    sup = sv.Supervisor(state, topology_text="clusters: [{name: aws, nodes: [{}]}]")
    sup.acquire()
    try:
        yield sup
    finally:
        sup.release()


def test_second_up_on_a_running_state_directory_exits_4(held: sv.Supervisor) -> None:
    proc = atoll("up", "--state-dir", str(held.state_dir))
    assert proc.returncode == sv.EXIT_ALREADY_RUNNING
    line = one_error_line(proc)
    assert f"already running from {held.state_dir} (supervisor pid {os.getpid()})" in line
    assert "atoll down" in line


def test_kill_of_an_unknown_cluster_names_the_known_ones(held: sv.Supervisor) -> None:
    proc = atoll("kill", "gcp", "--state-dir", str(held.state_dir))
    assert proc.returncode == sv.EXIT_USAGE
    assert one_error_line(proc) == "error: no cluster named 'gcp' (have: aws, federation)"


def test_down_after_a_vanished_supervisor_stops_the_recorded_processes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    leftover = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        sv.save_state(state, sv.SupervisorState(state_dir=str(state), members={"aws": sv.ProcessRecord(
            "aws", pid=leftover.pid, start_time=sv.start_time(leftover.pid), state="running")}))
        proc = atoll("down", "--state-dir", str(state))
        assert proc.returncode == 0, proc.stderr
        assert "the supervisor was gone; stopped what it left: aws" in proc.stdout
        leftover.wait(10)
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait(5)


@pytest.fixture
def fake_multicloud(apiserver: RunningServer, tmp_path: Path) -> Path:
    """A state directory whose `atoll` context is a real API server (with Karmada's CRDs), as after `atoll up`."""
    import asyncio

    from atoll.client import Client
    from atoll.federation import crds

    async def install() -> None:
        async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
            await crds.install(client)

    asyncio.run(install())
    state = tmp_path / "state"
    state.mkdir()
    sv.write_kubeconfig(state / sv.KUBECONFIG_FILE, {"atoll": apiserver.kubeconfig})
    (state / sv.TOPOLOGY_FILE).write_text("clusters: [{name: aws, provider: aws, region: eu-west-1, "
                                          "nodes: [{costPerHour: 0.2}]}]\n")
    return state


def test_status_and_get_against_an_api_server(apiserver: RunningServer, fake_multicloud: Path) -> None:
    state = str(fake_multicloud)
    apiserver.kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "aws"},
        "spec": {"provider": "aws", "region": "eu-west-1", "apiEndpoint": "https://127.0.0.1:1",
                 "syncMode": "Push"}}))
    apiserver.kubectl("create", "namespace", "cli-get")
    apiserver.kubectl("create", "deployment", "web", "--image=atoll/echo", "--replicas=3", "-n", "cli-get")

    status = atoll("status", "--state-dir", state, "-o", "json")
    assert status.returncode == 0, status.stderr
    rows = json.loads(status.stdout)
    assert [(r["name"], r["provider"], r["joined"], r["costPerHour"]) for r in rows] == [("aws", "aws", True, 0.2)]
    table = atoll("status", "--state-dir", state)
    assert "aws" in table.stdout and "eu-west-1" in table.stdout and "$0.20" in table.stdout

    got = atoll("get", "deploy", "web", "-n", "cli-get", "--state-dir", state, "-o", "yaml")
    assert got.returncode == 0, got.stderr
    doc = yaml.safe_load(got.stdout)
    assert (doc["kind"], doc["name"], doc["replicas"], doc["scheduled"]) == ("Deployment", "web", 3, False)
    listed = atoll("get", "deployments.apps", "-A", "--state-dir", state)
    assert "cli-get" in listed.stdout and "deployment/web" in listed.stdout and "not scheduled" in listed.stdout

    unknown = atoll("get", "frobnicators", "--state-dir", state)
    assert unknown.returncode == sv.EXIT_USAGE
    assert one_error_line(unknown) == 'error: the federation has no resource type "frobnicators"'
    missing = atoll("get", "deploy", "nope", "-n", "cli-get", "--state-dir", state)
    assert missing.returncode == sv.EXIT_FAILED
    assert one_error_line(missing) == 'error: deploy "nope" not found in namespace cli-get'


def test_status_when_the_federation_does_not_answer(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    port = sv.pick_port()
    kc = tmp_path / "fed.kubeconfig"
    kc.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "atoll",
                                  "clusters": [{"name": "atoll", "cluster": {"server": f"https://127.0.0.1:{port}",
                                                                             "insecure-skip-tls-verify": True}}],
                                  "users": [{"name": "u", "user": {"token": "t"}}],
                                  "contexts": [{"name": "atoll", "context": {"cluster": "atoll", "user": "u"}}]}))
    sv.write_kubeconfig(state / sv.KUBECONFIG_FILE, {"atoll": kc})
    proc = atoll("status", "--state-dir", str(state))
    assert proc.returncode == sv.EXIT_NOT_RUNNING
    assert one_error_line(proc) == (f"error: the federation at https://127.0.0.1:{port} does not answer "
                                    "(is `atoll up` running?)")
