"""Shared fixtures: real API server processes and a kubectl runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RunningServer:
    url: str
    kubeconfig: Path
    state_dir: Path
    process: subprocess.Popen[str]

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc


def start_atoll(args: list[str], state_dir: Path, *, timeout: float = 90) -> RunningServer:
    """Start an ``atoll`` command that prints ``... ready at URL ...`` and serves STATE_DIR/kubeconfig.

    Its stderr goes to ``<state_dir>.log`` beside the state directory; it runs in its own session, so a
    test can kill it (and only it) as an outage would.
    """
    log_path = state_dir.parent / f"{state_dir.name}.log"
    log = open(log_path, "a")
    proc = subprocess.Popen([sys.executable, "-m", "atoll.cli.main", *args], stdout=subprocess.PIPE, stderr=log,
                            text=True, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "ready at" in line or not line:
            break
    if "ready at" not in line:
        proc.kill()
        log.close()
        raise RuntimeError(f"atoll {' '.join(args[:2])} did not start: {line!r}; see {log_path}:\n"
                           + log_path.read_text()[-3000:])
    url = line.split("ready at ", 1)[1].split(" ", 1)[0]
    return RunningServer(url=url, kubeconfig=state_dir / "kubeconfig", state_dir=state_dir, process=proc)


def start_apiserver(state_dir: Path, *, storage: str = "", name: str = "atoll",
                    timeout: float = 60) -> RunningServer:
    """Start ``atoll apiserver`` as a real process on a free loopback port."""
    args = ["apiserver", "--listen", "127.0.0.1:0", "--state-dir", str(state_dir), "--name", name]
    if storage:
        args += ["--storage", storage]
    return start_atoll(args, state_dir, timeout=timeout)


def start_cluster(state_dir: Path, *, name: str = "atoll", nodes: int = 2, runtime: str = "process",
                  extra: tuple[str, ...] = (), timeout: float = 90) -> RunningServer:
    """Start ``atoll cluster run`` (a whole member cluster) as a real process; returns when nodes are Ready."""
    return start_atoll(["cluster", "run", "--name", name, "--nodes", str(nodes), "--runtime", runtime,
                        "--state-dir", str(state_dir), *extra], state_dir, timeout=timeout)


def start_federation(state_dir: Path, *, listen: str = "127.0.0.1:0", extra: tuple[str, ...] = (),
                     timeout: float = 90) -> RunningServer:
    """Start ``atoll federation run`` as a real process."""
    return start_atoll(["federation", "run", "--listen", listen, "--state-dir", str(state_dir), *extra], state_dir,
                       timeout=timeout)


def stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    state = tmp_path_factory.mktemp("apiserver") / "state"
    state.mkdir()
    server = start_apiserver(state)
    try:
        yield server
    finally:
        stop_process(server.process)


def require_kubectl() -> None:
    if shutil.which("kubectl") is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is required in CI")
        pytest.skip("kubectl not installed")


def require_etcd() -> None:
    if shutil.which("etcd") is None:
        if os.environ.get("CI"):
            pytest.fail("etcd is required in CI (Debian etcd-server)")
        pytest.skip("etcd not installed")
