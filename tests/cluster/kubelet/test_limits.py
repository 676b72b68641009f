"""Resource limits: what the host offers is detected and reported as it is; each mechanism does what it says."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from atoll.cluster.kubelet import limits
from atoll.cluster.kubelet.process import ProcessRuntime
from atoll.cluster.kubelet.runtime import ContainerConfig, Limits


def fake_cgroup2(root: Path, controllers: str = "cpuset cpu io memory pids") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


@pytest.mark.parametrize(("controllers", "mode"), [
    ("cpuset cpu io memory pids", "cgroup2"),
    ("cpuset io pids", "rlimit"),          # memory and cpu not delegated
    (None, "rlimit"),                       # not a cgroup2 mount (e.g. cgroup v1 or a tmpfs)
])
def test_detect(tmp_path: Path, controllers: str | None, mode: str) -> None:
    root = fake_cgroup2(tmp_path / "cg", controllers) if controllers is not None else tmp_path
    found = limits.detect(root)
    assert found.mode == mode
    if mode == "rlimit":
        assert not found.cpu and found.memory and found.detail
        assert "cpu: not enforced" in found.describe()


def test_cgroup_tree_writes_limits(tmp_path: Path) -> None:
    root = fake_cgroup2(tmp_path / "cg")
    tree = limits.CgroupTree("node-1", root)
    tree.prepare()
    assert (root / "cgroup.subtree_control").read_text() == "+memory +cpu"
    group = tree.create("uid-1", "web", 0, Limits(memory=64 * 2**20, milli_cpu=250))
    assert group == root / "atoll" / "node-1" / "poduid-1" / "web-0"
    assert (group / "memory.max").read_text() == str(64 * 2**20)
    assert (group / "cpu.max").read_text() == "25000 100000"
    assert (group / "memory.oom.group").read_text() == "1"
    assert not limits.CgroupTree.oom_killed(group)
    (group / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert limits.CgroupTree.oom_killed(group)
    fn = limits.preexec(limits.Enforcement("cgroup2", True, True, ""), Limits(memory=1), group)
    assert fn is not None


def test_rlimit_caps_the_address_space_of_the_child() -> None:
    enforcement = limits.Enforcement("rlimit", memory=True, cpu=False, detail="test")
    fn = limits.preexec(enforcement, Limits(memory=256 * 2**20), None)
    assert fn is not None
    out = subprocess.run([sys.executable, "-c", "import resource; print(resource.getrlimit(resource.RLIMIT_AS))"],
                         preexec_fn=fn, capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == f"({256 * 2**20}, {256 * 2**20})"
    assert limits.preexec(enforcement, Limits(milli_cpu=500), None) is None  # cpu: nothing to claim


@pytest.mark.skipif(limits.detect().mode != "cgroup2",
                    reason=f"this host offers no cgroup v2 for limits: {limits.detect().detail}")
async def test_cgroup2_memory_limit_oom_kills(tmp_path: Path) -> None:
    runtime = ProcessRuntime(tmp_path, node="oom-test")
    try:
        st = await runtime.start(ContainerConfig(
            pod_uid="u", pod_name="hog", namespace="ns", name="c", attempt=0,
            argv=(sys.executable, "-c", "x = bytearray(512 * 2**20)"), limits=Limits(memory=64 * 2**20)))
        final = await asyncio.wait_for(runtime.wait(st.id), 30)
        assert final.reason == "OOMKilled" and final.exit_code == 137
    finally:
        await runtime.close()
        await runtime.remove_pod("u")
