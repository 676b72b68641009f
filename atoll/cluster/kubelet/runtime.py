"""The seam between the kubelet and whatever runs containers (``ContainerRuntime``).

The kubelet decides *what* should run (pod workers, restart rules, probes, status);
a runtime only starts, watches, signals and execs into container instances, as CRI
does for kube's kubelet. Values crossing the seam are frozen dataclasses so a runtime
can never change the kubelet's view behind its back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NewType, Protocol

ContainerID = NewType("ContainerID", str)


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of one container: bytes of memory and millicores of CPU (None: unlimited)."""

    memory: int | None = None
    milli_cpu: int | None = None


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    """Everything needed to start one instance (``attempt``) of a pod's container."""

    pod_uid: str
    pod_name: str
    namespace: str
    name: str
    attempt: int
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: Path | None = None
    limits: Limits = Limits()


@dataclass(frozen=True, slots=True)
class ContainerState:
    """One container instance as the runtime sees it; ``exit_code is None`` while it runs."""

    id: ContainerID
    pod_uid: str
    name: str
    attempt: int
    pid: int
    started_at: float
    log_path: Path
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str = ""
    """Completed, Error, OOMKilled or StartError once it has exited."""
    message: str = ""

    @property
    def running(self) -> bool:
        return self.exit_code is None


class StartError(Exception):
    """The instance could not be started (no such executable, bad working directory...)."""


class ContainerRuntime(Protocol):
    """What the kubelet needs from a runtime; one runtime per node."""

    name: str
    """For ``containerID`` (``<name>://<id>``) and the node's ``containerRuntimeVersion``."""
    version: str
    root: Path
    """Per-node state: logs, pid files and pods' working directories live under it."""
    enforcement: str
    """How limits are enforced, in words (reported on the Node, never more than is true)."""

    async def start(self, config: ContainerConfig) -> ContainerState:
        """Start the instance; raises :class:`StartError` if it cannot run at all."""
        ...

    def state(self, cid: ContainerID) -> ContainerState | None: ...

    def log_file(self, namespace: str, pod_name: str, pod_uid: str, container: str, attempt: int) -> Path:
        """Where the log of that instance is (or was) kept, whether or not this run started it."""
        ...

    async def wait(self, cid: ContainerID) -> ContainerState:
        """Until the instance has exited; its final state."""
        ...

    async def stop(self, cid: ContainerID, grace: float) -> ContainerState:
        """SIGTERM to the instance's process group, SIGKILL after ``grace`` seconds; its final state."""
        ...

    async def exec(self, cid: ContainerID, command: list[str], *, tty: bool = False
                   ) -> asyncio.subprocess.Process:
        """Run ``command`` in the instance's context (env, working directory, limits)."""
        ...

    async def remove_pod(self, pod_uid: str) -> None:
        """Forget a pod's instances (all exited) and delete its logs and working directory."""
        ...

    async def cleanup_stale(self) -> int:
        """Kill processes left by an earlier run of this node (pid files); how many were killed."""
        ...

    async def close(self) -> None:
        """Kill every instance still running and release the runtime's tasks."""
        ...
