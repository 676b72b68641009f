"""Test harness for the federation's member side: member API server processes and running controllers.

A member is a real ``atoll apiserver`` process (HTTPS, client-certificate kubeconfig);
it can be stopped and started again on the same port and state, which is how a cluster
outage is simulated. :func:`federation` runs the cluster status, execution and work
status controllers against a federation API server with the Karmada CRDs installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atoll.api.errors import AlreadyExists
from atoll.client import Client, Resource
from atoll.federation import crds
from atoll.federation.clusters.clients import MemberClients
from atoll.federation.clusters.status import ClusterStatusController
from atoll.federation.execution import ExecutionController
from atoll.federation.workstatus import WorkStatusController
from tests.conftest import ROOT, RunningServer, stop_process

NAMESPACES = Resource("v1", "namespaces", False, "Namespace")


def start_member(state_dir: Path, *, name: str, port: int = 0, timeout: float = 60) -> RunningServer:
    """``atoll apiserver`` on 127.0.0.1:``port`` (0: a free one), keeping its state across restarts."""
    state_dir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "atoll.cli.main", "apiserver", "--listen", f"127.0.0.1:{port}",
            "--state-dir", str(state_dir), "--name", name]
    log = open(state_dir.parent / f"{state_dir.name}.log", "a")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "ready at" in line or not line:
            break
    if "ready at" not in line:
        proc.kill()
        raise RuntimeError(f"member apiserver did not start: {line!r}")
    url = line.split("ready at ", 1)[1].split(" ", 1)[0]
    return RunningServer(url=url, kubeconfig=state_dir / "kubeconfig", state_dir=state_dir, process=proc)


def port_of(server: RunningServer) -> int:
    return int(server.url.rsplit(":", 1)[1].rstrip("/"))


@contextlib.contextmanager
def member_process(state_dir: Path, name: str) -> Iterator[RunningServer]:
    server = start_member(state_dir, name=name)
    try:
        yield server
    finally:
        stop_process(server.process)


@dataclass
class Federation:
    client: Client
    members: MemberClients
    status: ClusterStatusController
    execution: ExecutionController
    workstatus: WorkStatusController
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


async def ensure_namespace(client: Client, name: str) -> None:
    with contextlib.suppress(AlreadyExists):
        await client.create(NAMESPACES, {"metadata": {"name": name}})


@contextlib.asynccontextmanager
async def federation(fed: RunningServer, *, interval: float = 0.3, failure_threshold: float = 1.0,
                     success_threshold: float = 0.3, not_ready_retry: float = 1.0,
                     conflict_retry: float = 1.0) -> AsyncIterator[Federation]:
    """The member-side federation controllers, running until the block ends."""
    async with Client.from_kubeconfig(fed.kubeconfig) as client:
        await crds.install(client)
        members = MemberClients(client, timeout=5, connect_timeout=2)
        status = ClusterStatusController(client, members, interval=interval, failure_threshold=failure_threshold,
                                         success_threshold=success_threshold, probe_timeout=2)
        execution = ExecutionController(client, members, not_ready_retry=not_ready_retry,
                                        conflict_retry=conflict_retry)
        workstatus = WorkStatusController(client, members, applier=execution.applier)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(c.run(stop)) for c in (members, status, execution, workstatus)]
        try:
            yield Federation(client, members, status, execution, workstatus, tasks)
        finally:
            stop.set()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 10)
