"""Resource limits for container processes: cgroup v2 where the host allows it, else rlimits.

Which mechanism is used is decided once per runtime by :func:`detect` and reported as
it is (the Node annotation ``atoll.io/resource-enforcement`` and a log line):

- ``cgroup2``: ``/sys/fs/cgroup`` is a writable cgroup2 mount with the ``memory`` and
  ``cpu`` controllers available (typically root on a systemd host). Each container gets
  ``<root>/atoll/<node>/pod<uid>/<name>-<attempt>`` with ``memory.max``, ``cpu.max``
  and ``memory.oom.group=1`` (the kernel kills the whole container on OOM, and
  ``memory.events`` tells us it did: reason ``OOMKilled``).
- ``rlimit``: otherwise. Memory is capped with ``RLIMIT_AS`` (address space, not
  resident memory: a stricter, coarser limit; allocation fails inside the process, which
  exits with an error of its own instead of being OOM-killed), CPU is **not** limited
  (``RLIMIT_CPU`` caps total seconds, not a rate, so it is not used).
- ``none``: on hosts without ``resource`` (not Linux).

cgroup v1 hierarchies are deliberately not used: on hosts that still mount them they
usually belong to the container manager the machine runs under.
"""

from __future__ import annotations

import logging
import os
import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from atoll.cluster.kubelet.runtime import Limits

logger = logging.getLogger(__name__)

Mode = Literal["cgroup2", "rlimit", "none"]
CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000
MIN_ADDRESS_SPACE = 32 * 2**20
"""Below this no interpreter starts at all; smaller memory limits are raised to it under rlimits."""


@dataclass(frozen=True, slots=True)
class Enforcement:
    mode: Mode
    memory: bool
    cpu: bool
    detail: str

    def describe(self) -> str:
        what = {"cgroup2": "cgroup v2 (memory.max, cpu.max, memory.oom.group)",
                "rlimit": "rlimits (memory: RLIMIT_AS address space; cpu: not enforced)",
                "none": "none (limits are not enforced)"}[self.mode]
        return f"{what}{'; ' + self.detail if self.detail else ''}"


def _cgroup2_usable(root: Path) -> str:
    """Empty if ``root`` is a writable cgroup2 mount offering memory and cpu; else why not."""
    controllers = root / "cgroup.controllers"
    if not controllers.is_file():
        return f"{root} is not a cgroup2 mount"
    available = set(controllers.read_text().split())
    missing = {"memory", "cpu"} - available
    if missing:
        return f"cgroup2 controllers missing: {', '.join(sorted(missing))}"
    if not os.access(root, os.W_OK):
        return f"{root} is not writable"
    return ""


def detect(root: Path = CGROUP_ROOT) -> Enforcement:
    why = _cgroup2_usable(root)
    if not why:
        return Enforcement("cgroup2", memory=True, cpu=True, detail="")
    if hasattr(resource, "RLIMIT_AS"):
        return Enforcement("rlimit", memory=True, cpu=False, detail=why)
    return Enforcement("none", memory=False, cpu=False, detail=why)


def cpu_max(milli_cpu: int) -> str:
    """``cpu.max`` for a limit in millicores: quota per 100 ms period (kube's CFS quota rule, min 1 ms)."""
    return f"{max(1000, milli_cpu * CPU_PERIOD_US // 1000)} {CPU_PERIOD_US}"


class CgroupTree:
    """The node's cgroup v2 sub-tree: one directory per container instance."""

    def __init__(self, node: str, root: Path = CGROUP_ROOT) -> None:
        self.base = root / "atoll" / node
        self.root = root

    def prepare(self) -> None:
        """Create the node's directory and delegate memory and cpu to its children."""
        path = self.root
        for part in self.base.relative_to(self.root).parts:
            (path / "cgroup.subtree_control").write_text("+memory +cpu")
            path = path / part
            path.mkdir(exist_ok=True)
        (self.base / "cgroup.subtree_control").write_text("+memory +cpu")

    def create(self, pod_uid: str, name: str, attempt: int, limits: Limits) -> Path:
        pod = self.base / f"pod{pod_uid}"
        pod.mkdir(exist_ok=True)
        (pod / "cgroup.subtree_control").write_text("+memory +cpu")
        group = pod / f"{name}-{attempt}"
        group.mkdir(exist_ok=True)
        if limits.memory is not None:
            (group / "memory.max").write_text(str(limits.memory))
            if (group / "memory.swap.max").exists():
                (group / "memory.swap.max").write_text("0")
            (group / "memory.oom.group").write_text("1")
        if limits.milli_cpu is not None:
            (group / "cpu.max").write_text(cpu_max(limits.milli_cpu))
        return group

    @staticmethod
    def oom_killed(group: Path) -> bool:
        try:
            for line in (group / "memory.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except OSError:
            pass
        return False

    @staticmethod
    def remove(group: Path) -> None:
        try:
            group.rmdir()
        except OSError as exc:
            logger.debug("cgroup %s not removed: %s", group, exc)

    def remove_pod(self, pod_uid: str) -> None:
        pod = self.base / f"pod{pod_uid}"
        if not pod.is_dir():
            return
        for child in pod.iterdir():
            if child.is_dir():
                self.remove(child)
        self.remove(pod)


def preexec(enforcement: Enforcement, limits: Limits, cgroup: Path | None) -> Callable[[], None] | None:
    """The function the child runs before ``exec``: join its cgroup, or set its rlimits.

    Joining the cgroup from the child itself (``cgroup.procs`` ← 0) means the limit
    holds from its first instruction, with no window where it runs unlimited.
    """
    if enforcement.mode == "cgroup2" and cgroup is not None:
        procs = str(cgroup / "cgroup.procs")

        def join() -> None:
            with open(procs, "w") as f:
                f.write("0")

        return join
    if enforcement.mode == "rlimit" and limits.memory is not None:
        cap = max(limits.memory, MIN_ADDRESS_SPACE)

        def cap_memory() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

        return cap_memory
    return None
