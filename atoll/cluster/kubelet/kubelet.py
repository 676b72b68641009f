"""The kubelet: one node agent running its pods' containers through a :class:`ContainerRuntime`.

Shaped after kube's ``pkg/kubelet``:

- **Node**: registered with capacity, allocatable, labels (``kubernetes.io/hostname``...),
  taints, ``spec.podCIDR``, addresses and ``nodeInfo`` (``containerRuntimeVersion:
  atoll-process://1``); conditions are heartbeated every ``status_interval`` (their
  ``lastTransitionTime`` only moves on a change) and the node's Lease in
  ``kube-node-lease`` is renewed every ``renew_interval``. How resource limits are
  enforced is stated in the annotation ``atoll.io/resource-enforcement``.
- **Pod workers**: one task per pod (watched with ``spec.nodeName=<node>``), woken by pod
  updates, container exits, probe results and back-off timers; each sync does what
  ``computePodActions`` would: init containers in order, then the containers, restarting
  exited ones per ``restartPolicy`` with CrashLoopBackOff (``backoff_base`` doubling to
  ``backoff_max``; see :class:`~atoll.cluster.kubelet.podstatus.Backoff`), killing ones
  whose liveness or startup probe failed.
- **Status manager**: the status is recomputed after every sync and written through
  ``pods/status`` only when it changed; the phase and conditions follow kube's rules
  (:mod:`atoll.cluster.kubelet.podstatus`).
- **Termination**: a pod with a ``deletionTimestamp`` gets its preStop hooks, SIGTERM,
  and SIGKILL after its grace period; its final status is written and the deletion is
  confirmed with grace 0 and the pod's uid as precondition.
- **Restart of the kubelet's process**: pods bound to the node whose containers are
  gone are started again with ``restartCount + 1`` (what kube does after a node reboot);
  processes the previous run left behind are killed first (pid files of the runtime).
- Also: sidecars (init containers with ``restartPolicy: Always``), ``activeDeadlineSeconds``
  (``DeadlineExceeded``), ``hostNetwork`` (the node's address), postStart/preStop hooks
  (exec, httpGet, sleep), readiness gates, and the Node's ``status.images`` from the catalog.

Many kubelets run in one process (one per node); they share nothing but the client.
A kubelet also serves the node side of ``pods/log`` and ``pods/exec`` (the ``PodAccess``
protocol of :mod:`atoll.cluster.kubelet.connector`): :meth:`Kubelet.log_path`,
:meth:`Kubelet.is_running`, :meth:`Kubelet.exec`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import os
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atoll.api.errors import AlreadyExists, BadRequest, Conflict, NotFound
from atoll.client import Client, Resource
from atoll.cluster.kubelet import environment
from atoll.cluster.kubelet.images.catalog import Image, ImageCatalog
from atoll.cluster.kubelet.podstatus import (
    Backoff,
    go_duration,
    is_restartable_init,
    keep_transition_times,
    pod_conditions,
    pod_phase,
)
from atoll.cluster.kubelet.probes import Kind, Prober, ProbeSpec, http_get
from atoll.cluster.kubelet.runtime import (
    ContainerConfig,
    ContainerID,
    ContainerRuntime,
    ContainerState,
    Limits,
    StartError,
)
from atoll.cluster.kubelet.simulated import KUBELET_VERSION, NodeSpec, PodIPs
from atoll.cluster.scheduler.resources import milli, whole
from atoll.machinery.events import EventRecorder
from atoll.machinery.informing import Informer

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
NODES = Resource("v1", "nodes", False, "Node")
PODS = Resource("v1", "pods", True, "Pod")
LEASES = Resource("coordination.k8s.io/v1", "leases", True, "Lease")
CONFIGMAPS = Resource("v1", "configmaps", True, "ConfigMap")
SECRETS = Resource("v1", "secrets", True, "Secret")
ENFORCEMENT_ANNOTATION = "atoll.io/resource-enforcement"
COMPONENT = "kubelet"
DEFAULT_GRACE = 30
CONFIG_RETRY = 2.0
EVENT_MAX_DELAY = 2.0
POST_START_TIMEOUT = 30.0
DONE_REMEMBERED = 4096
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
HOST_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


def rfc3339(at: float | None = None) -> str:
    t = dt.datetime.fromtimestamp(time.time() if at is None else at, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pod_label(pod: Obj) -> str:
    """``name_namespace(uid)``, kube's ``format.Pod`` used in kubelet messages."""
    md = pod.get("metadata") or {}
    return f"{md.get('name')}_{md.get('namespace')}({md.get('uid')})"


def qos_class(pod: Obj) -> str:
    """Guaranteed, Burstable or BestEffort (kube's ``qos.GetPodQOS``, without pod-level resources)."""
    containers = [*((pod.get("spec") or {}).get("containers") or []),
                  *((pod.get("spec") or {}).get("initContainers") or [])]
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        if limits or requests:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in limits:
                guaranteed = False
            elif r in requests and str(requests[r]) != str(limits[r]):
                try:
                    if milli(requests[r]) != milli(limits[r]):
                        guaranteed = False
                except ValueError:
                    guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def should_restart(policy: str, exit_code: int | None) -> bool:
    if policy == "Never":
        return False
    if policy == "OnFailure":
        return exit_code != 0
    return True


def limits_of(container: Obj) -> Limits:
    lim = (container.get("resources") or {}).get("limits") or {}
    return Limits(memory=whole(lim["memory"]) if "memory" in lim else None,
                  milli_cpu=milli(lim["cpu"]) if "cpu" in lim else None)


def terminated_state(st: ContainerState, runtime_name: str) -> Obj:
    out: Obj = {"exitCode": st.exit_code if st.exit_code is not None else 0, "reason": st.reason or "Error",
                "startedAt": rfc3339(st.started_at), "finishedAt": rfc3339(st.finished_at)}
    if st.message:
        out["message"] = st.message
    if st.id:
        out["containerID"] = f"{runtime_name}://{st.id}"
    return out


@dataclass
class _Container:
    """The kubelet's record of one container of a pod, across its instances."""

    spec: Obj
    init: bool
    restart_count: int = 0
    current: ContainerState | None = None
    previous: ContainerState | None = None
    restored_last: Obj | None = None
    """``lastState`` carried over from before a kubelet restart (no instance of ours yet)."""
    restored_log: Path | None = None
    """That earlier instance's log, still on disk: ``kubectl logs --previous`` after a restart."""
    waiting: tuple[str, str] | None = None
    image: Image | None = None
    ready: bool = False
    started: bool = False
    kill_reason: str = ""
    """Set by a failed liveness/startup probe: the Killing event's message."""
    pull_failed_at: float | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    probers: dict[str, Prober] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.current is not None and self.current.running

    @property
    def succeeded(self) -> bool:
        return self.current is not None and self.current.exit_code == 0

    def stop_tasks(self) -> None:
        for t in self.tasks:
            t.cancel()
        self.tasks.clear()
        self.probers.clear()


class _PodWorker:
    """Drives one pod towards its spec; see :meth:`Kubelet` for what a sync does."""

    def __init__(self, kubelet: Kubelet, pod: Obj) -> None:
        self.kubelet = kubelet
        self.pod = pod
        md = pod["metadata"]
        self.uid: str = md["uid"]
        self.wake = asyncio.Event()
        self.deleted = False
        self.containers: dict[str, _Container] = {}
        self.ip: str | None = None
        self.written: Obj | None = None
        self.written_rv: str | None = None
        self.written_seen = False
        self.start_time: str | None = (pod.get("status") or {}).get("startTime")
        self.adopted_terminal = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        """A pod that was already over before this kubelet started: nothing to run or report."""
        self.final_phase: str | None = None
        self.pod_reason: tuple[str, str] | None = None
        """The pod-level ``status.reason``/``message`` (DeadlineExceeded)."""
        self.started_mono: float | None = None
        self.next_wake: float | None = None
        self._restore(pod)

    # -- records ------------------------------------------------------------------------------
    def _restore(self, pod: Obj) -> None:
        """Carry restart counts over from the API status (containers of an earlier kubelet run)."""
        spec, status, md = pod.get("spec") or {}, pod.get("status") or {}, pod["metadata"]
        old = {s.get("name"): s for s in [*(status.get("initContainerStatuses") or []),
                                           *(status.get("containerStatuses") or [])]}
        for init, specs in ((True, spec.get("initContainers") or []), (False, spec.get("containers") or [])):
            for c in specs:
                rec = _Container(spec=c, init=init)
                before = old.get(c["name"])
                if before is not None and not self.adopted_terminal:
                    state = before.get("state") or {}
                    last = (before.get("lastState") or {}).get("terminated")
                    if "running" in state:
                        rec.restored_last = {"exitCode": 255, "reason": "Unknown",
                                             "startedAt": state["running"].get("startedAt"),
                                             "finishedAt": rfc3339()}
                    elif "terminated" in state:
                        rec.restored_last = dict(state["terminated"])
                    elif last is not None:
                        rec.restored_last = dict(last)
                    rec.restart_count = int(before.get("restartCount") or 0)
                    if rec.restored_last is not None:
                        log = self.kubelet.runtime.log_file(md.get("namespace") or "default", md["name"], self.uid,
                                                            c["name"], rec.restart_count)
                        rec.restored_log = log if log.is_file() else None
                self.containers[c["name"]] = rec

    def update(self, pod: Obj) -> None:
        self.pod = pod
        if self.written_rv is not None and pod["metadata"].get("resourceVersion") == self.written_rv:
            self.written_seen = True
        self.wake.set()

    def _api_differs(self, status: Obj) -> bool:
        """Whether someone else changed the status we own since our last write came back to us.

        Kube's status manager re-syncs from the API server the same way; before our own
        write has come back through the watch, the cached pod is simply older, not changed.
        """
        if not self.written_seen or self.pod["metadata"].get("resourceVersion") == self.written_rv:
            return False
        api = self.pod.get("status") or {}
        return any(api.get(k) != v for k, v in status.items())

    def all(self, *, init: bool) -> list[_Container]:
        return [c for c in self.containers.values() if c.init == init]

    @property
    def policy(self) -> str:
        return str((self.pod.get("spec") or {}).get("restartPolicy") or "Always")

    # -- the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            while True:
                self.wake.clear()
                self.next_wake = None
                try:
                    with self.kubelet.syncing():
                        if await self.sync():
                            return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.warning("%s: pod %s: sync failed: %s", self.kubelet.node_name, pod_label(self.pod), exc,
                                   exc_info=not isinstance(exc, (NotFound, Conflict)))
                    self.next_wake = time.monotonic() + 1.0
                timeout = None if self.next_wake is None else max(0.0, self.next_wake - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout)
        finally:
            for c in self.containers.values():
                c.stop_tasks()

    def _wake_at(self, at: float) -> None:
        self.next_wake = at if self.next_wake is None else min(self.next_wake, at)

    async def sync(self) -> bool:
        """One pass; True when the pod is gone and the worker can end."""
        pod = self.pod
        md = pod["metadata"]
        if self.deleted or md.get("deletionTimestamp"):
            await self._terminate()
            return True
        if self.adopted_terminal:
            return False
        if self.final_phase is not None:
            # Over (Succeeded/Failed): what still runs — sidecars — is stopped, nothing restarts.
            await asyncio.gather(*(self._kill(c, f"Stopping container {c.name}") for c in self.containers.values()
                                   if c.running))
            await self._write_status()
            return False
        if self.ip is None:  # hostNetwork pods share the node's address, as in kube
            host_network = bool((self.pod.get("spec") or {}).get("hostNetwork"))
            self.ip = self.kubelet.spec.address if host_network else self.kubelet.ips.allocate(self.uid)
        if self.start_time is None:
            self.start_time = rfc3339()
            self.started_mono = time.monotonic()
        deadline = (self.pod.get("spec") or {}).get("activeDeadlineSeconds")
        if deadline is not None and self.started_mono is not None:
            left = self.started_mono + float(deadline) - time.monotonic()
            if left <= 0:
                await self._deadline_exceeded()
                return False
            self._wake_at(time.monotonic() + left)
        if await self._sync_init():
            await self._sync_containers()
        await self._write_status()
        return False

    async def _deadline_exceeded(self) -> None:
        """``activeDeadlineSeconds`` ran out: kill everything, the pod Fails (kubelet's active deadline handler)."""
        self.kubelet.event(self.pod, "Normal", "DeadlineExceeded", DEADLINE_MESSAGE)
        self.pod_reason = ("DeadlineExceeded", DEADLINE_MESSAGE)
        await asyncio.gather(*(self._kill(c, f"Stopping container {c.name}") for c in self.containers.values()
                               if c.running))
        for c in self.containers.values():
            c.stop_tasks()
            if c.current is None or c.waiting is not None:
                c.waiting = None
        self.final_phase = "Failed"
        await self._write_status()

    async def _sync_init(self) -> bool:
        """Run init containers in order; True once all have succeeded.

        A restartable init container (``restartPolicy: Always``, a sidecar) only has to
        have *started* (its startup probe passed) for the next one to run; it keeps
        running, and is restarted whenever it exits, for the pod's whole life.
        """
        for c in self.all(init=True):
            if c.kill_reason and c.running:
                await self._kill(c, c.kill_reason)
            if is_restartable_init(c.spec):
                if not c.running:
                    await self._start(c)
                if c.running and c.started:
                    continue
                return False
            if c.running:
                return False
            if c.current is not None and c.current.exit_code == 0:
                continue
            if c.current is not None and self.policy == "Never":
                return False  # a failed init container fails the pod
            await self._start(c)
            return False
        return True

    async def _sync_containers(self) -> None:
        for c in self.all(init=False):
            if c.kill_reason and c.running:
                await self._kill(c, c.kill_reason)
            if c.running:
                continue
            if c.current is not None and not should_restart(self.policy, c.current.exit_code):
                continue
            await self._start(c)

    # -- starting ------------------------------------------------------------------------------
    async def _start(self, c: _Container) -> None:
        k = self.kubelet
        spec = c.spec
        image_ref = str(spec.get("image") or "")
        image = k.catalog.resolve(image_ref)
        if image is None and spec.get("command"):
            image = Image(name=image_ref)
        if image is None:
            self._pull_failed(c, image_ref)
            return
        if c.pull_failed_at is not None:
            c.pull_failed_at = None
            k.backoff.forget(f"{self.uid}/pull/{c.name}")
        c.image = image
        # The restart back-off, as kuberuntime's doBackOff: measured from the last exit.
        key = f"{self.uid}/{c.name}"
        if c.current is not None:
            finished = c.current.finished_at or time.time()
            since = time.monotonic() - (time.time() - finished)
            if k.backoff.in_backoff_since(key, since):
                delay = k.backoff.get(key)
                waiting = ("CrashLoopBackOff", f"back-off {go_duration(delay)} restarting failed "
                                               f"container={c.name} pod={pod_label(self.pod)}")
                if c.waiting != waiting:  # once per back-off, not once per sync
                    k.event(self.pod, "Warning", "BackOff",
                            f"Back-off restarting failed container {c.name} in pod {pod_label(self.pod)}")
                c.waiting = waiting
                self._wake_at(time.monotonic() + k.backoff.remaining(key, since) + 0.01)
                return
            k.backoff.next(key, since)
        try:
            env = await self._env(c, image)
        except environment.ConfigError as exc:
            if c.waiting != ("CreateContainerConfigError", str(exc)):
                k.event(self.pod, "Warning", "Failed", f"Error: {exc}")
            c.waiting = ("CreateContainerConfigError", str(exc))
            self._wake_at(time.monotonic() + CONFIG_RETRY)
            return
        argv = environment.command_line(image.entrypoint, image.cmd, spec, env)
        working_dir = spec.get("workingDir") or image.working_dir
        attempt = c.restart_count + (1 if (c.current is not None or c.restored_last is not None) else 0)
        config = ContainerConfig(pod_uid=self.uid, pod_name=self.pod["metadata"]["name"],
                                 namespace=self.pod["metadata"].get("namespace") or "default", name=c.name,
                                 attempt=attempt, argv=argv, env=env,
                                 working_dir=Path(working_dir) if working_dir else None, limits=limits_of(spec))
        k.event(self.pod, "Normal", "Pulled", f'Container image "{image_ref}" already present on machine')
        k.event(self.pod, "Normal", "Created", f"Created container: {c.name}")
        try:
            state = await k.runtime.start(config)
        except StartError as exc:
            now = time.time()
            state = ContainerState(id=ContainerID(""), pod_uid=self.uid, name=c.name, attempt=attempt, pid=0,
                                   started_at=now, log_path=Path(os.devnull), finished_at=now, exit_code=128,
                                   reason="StartError", message=str(exc))
            k.event(self.pod, "Warning", "Failed", f"Error: {exc}")
        else:
            k.event(self.pod, "Normal", "Started", f"Started container {c.name}")
        self._rotate(c, state, attempt)
        if state.running:
            self._watch(c, state)
            post_start = (spec.get("lifecycle") or {}).get("postStart")
            if post_start:  # like kube, the pod's sync waits for it
                await self._post_start(c, state, post_start)

    def _rotate(self, c: _Container, state: ContainerState, attempt: int) -> None:
        """The new instance becomes current, the current one previous; an older log is removed."""
        dropped = c.previous
        if c.current is not None:
            c.previous = c.current
        if dropped is not None and dropped is not c.previous and dropped.log_path.name != os.devnull:
            with contextlib.suppress(OSError):
                dropped.log_path.unlink()
        c.restart_count = attempt
        c.current = state
        c.waiting = None
        c.kill_reason = ""
        c.stop_tasks()
        probes = {kind: c.spec.get(f"{kind}Probe") for kind in ("startup", "liveness", "readiness")}
        c.started = state.running and not probes["startup"]
        c.ready = c.started and not probes["readiness"]

    def _watch(self, c: _Container, state: ContainerState) -> None:
        k = self.kubelet

        async def exited() -> None:
            final = await k.runtime.wait(state.id)
            if c.current is state:
                c.current = final
                c.ready = False
                c.started = False
                for t in c.tasks:
                    if t is not asyncio.current_task():
                        t.cancel()
            self.wake.set()

        c.tasks.append(k.spawn(exited(), f"wait-{c.name}"))
        kinds: tuple[Kind, ...] = ("startup", "liveness", "readiness")
        for kind in kinds:
            probe = c.spec.get(f"{kind}Probe")
            if not probe:
                continue
            prober = Prober(kind, ProbeSpec.parse(probe, kind), pod_ip=self.ip or "", container=c.spec,
                            exec_=functools.partial(k.exec_output, state.id),
                            on_change=functools.partial(self._probe_changed, c), on_failure=self._probe_failed)
            c.probers[kind] = prober
            if kind == "startup" or "startup" not in c.probers:
                prober.enabled.set()
            c.tasks.append(k.spawn(prober.run(), f"probe-{kind}-{c.name}"))

    def _probe_failed(self, p: Prober, message: str) -> None:
        self.kubelet.event(self.pod, "Warning", "Unhealthy", f"{p.kind.capitalize()} probe failed: {message}")

    def _probe_changed(self, c: _Container, p: Prober) -> None:
        kind: Kind = p.kind
        if kind == "readiness":
            c.ready = p.result and c.started
        elif kind == "startup":
            if p.result:
                c.started = True
                c.ready = "readiness" not in c.probers
                for other in c.probers.values():
                    other.enabled.set()
            else:
                c.kill_reason = f"Container {c.name} failed startup probe, will be restarted"
        elif kind == "liveness" and not p.result:
            c.kill_reason = f"Container {c.name} failed liveness probe, will be restarted"
        self.wake.set()

    def _pull_failed(self, c: _Container, image_ref: str) -> None:
        k = self.kubelet
        key = f"{self.uid}/pull/{c.name}"
        reason = k.catalog.not_found_message(image_ref)
        pull_msg = f'Failed to pull image "{image_ref}": {reason}'
        if c.pull_failed_at is not None and k.backoff.in_backoff_since(key, c.pull_failed_at):
            if c.waiting is None or c.waiting[0] != "ImagePullBackOff":
                k.event(self.pod, "Normal", "BackOff", f'Back-off pulling image "{image_ref}"')
                k.event(self.pod, "Warning", "Failed", "Error: ImagePullBackOff")
            c.waiting = ("ImagePullBackOff", f'Back-off pulling image "{image_ref}": ErrImagePull: {pull_msg}')
            self._wake_at(time.monotonic() + k.backoff.remaining(key, c.pull_failed_at) + 0.01)
            return
        c.pull_failed_at = time.monotonic()
        k.backoff.next(key, c.pull_failed_at)
        c.waiting = ("ErrImagePull", pull_msg)
        k.event(self.pod, "Normal", "Pulling", f'Pulling image "{image_ref}"')
        k.event(self.pod, "Warning", "Failed", pull_msg)
        k.event(self.pod, "Warning", "Failed", "Error: ErrImagePull")
        self._wake_at(time.monotonic() + 0.05)  # ErrImagePull is shown once, then the back-off starts

    async def _env(self, c: _Container, image: Image) -> dict[str, str]:
        k = self.kubelet
        md = self.pod["metadata"]
        pod = {**self.pod, "status": {**(self.pod.get("status") or {}), "podIP": self.ip,
                                      "podIPs": [{"ip": self.ip}], "hostIP": k.spec.address,
                                      "hostIPs": [{"ip": k.spec.address}]}}
        base = {name: os.environ[name] for name in HOST_ENV if name in os.environ}
        base.update(image.env)
        base.update({"HOSTNAME": md["name"], "POD_IP": self.ip or "", "POD_NAME": md["name"],
                     "POD_NAMESPACE": md.get("namespace") or "default", "NODE_NAME": k.node_name,
                     "ATOLL_CLUSTER": k.cluster_name, "ATOLL_IMAGE": str(c.spec.get("image") or "")})
        ctx = environment.EnvContext(pod=pod, container=c.spec, base=base, allocatable=k.allocatable)
        return await environment.container_env(ctx, k.read_source)

    # -- stopping ------------------------------------------------------------------------------
    def _grace(self) -> float:
        md, spec = self.pod["metadata"], self.pod.get("spec") or {}
        grace = md.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds")
        return float(DEFAULT_GRACE if grace is None else grace)

    async def _kill(self, c: _Container, message: str, grace: float | None = None) -> None:
        k = self.kubelet
        if c.current is None or not c.current.running:
            return
        grace = self._grace() if grace is None else grace
        k.event(self.pod, "Normal", "Killing", message)
        c.stop_tasks()
        c.ready = False
        deadline = time.monotonic() + grace
        pre_stop = ((c.spec.get("lifecycle") or {}).get("preStop"))
        if pre_stop and grace > 0:
            await self._pre_stop(c, c.current, pre_stop, grace)
        state = await k.runtime.stop(c.current.id, max(0.0, deadline - time.monotonic()))
        c.current = state
        c.started = False
        c.kill_reason = ""

    async def _run_hook(self, c: _Container, state: ContainerState, hook: Obj, timeout: float) -> str:
        """Run a lifecycle handler (exec, httpGet, sleep); empty on success, else why it failed."""
        k = self.kubelet
        try:
            async with asyncio.timeout(timeout):
                if hook.get("exec"):
                    cmd = [str(x) for x in hook["exec"].get("command") or []]
                    code, out = await k.exec_output(state.id, cmd, timeout)
                    if code != 0:
                        return f"command {' '.join(cmd)!r} exited with {code}: {out.strip()}"
                elif hook.get("httpGet"):
                    ok, msg = await http_get(hook["httpGet"], self.ip or "", c.spec, timeout)
                    if not ok:
                        return msg
                elif hook.get("sleep"):
                    await asyncio.sleep(float(hook["sleep"].get("seconds") or 0))
        except TimeoutError:
            return f"timed out after {go_duration(timeout)}"
        except Exception as exc:
            return str(exc) or type(exc).__name__
        return ""

    async def _pre_stop(self, c: _Container, state: ContainerState, hook: Obj, grace: float) -> None:
        """A failing preStop hook is reported; the termination goes on regardless."""
        failure = await self._run_hook(c, state, hook, grace)
        if failure:
            self.kubelet.event(self.pod, "Warning", "FailedPreStopHook", f"PreStopHook failed: {failure}")

    async def _post_start(self, c: _Container, state: ContainerState, hook: Obj) -> None:
        """Run the postStart hook; if it fails the container is killed (and restarted per policy)."""
        failure = await self._run_hook(c, state, hook, POST_START_TIMEOUT)
        if failure and c.current is state and state.running:
            self.kubelet.event(self.pod, "Warning", "FailedPostStartHook", f"PostStartHook failed: {failure}")
            await self._kill(c, "FailedPostStartHook")

    async def _terminate(self) -> None:
        """Kill every container (regular ones first), write the final status, confirm the deletion."""
        k = self.kubelet
        grace = self._grace()
        for group in (self.all(init=False), self.all(init=True)):
            await asyncio.gather(*(self._kill(c, f"Stopping container {c.name}", grace)
                                   for c in group if c.running))
        for c in self.containers.values():
            c.stop_tasks()
            c.waiting = None if c.current is not None else c.waiting
        md = self.pod["metadata"]
        if not self.deleted:
            try:
                await self._write_status(terminal=True)
            except (NotFound, Conflict) as exc:
                logger.info("%s: final status of pod %s not written: %s", k.node_name, pod_label(self.pod), exc)
            with contextlib.suppress(NotFound, Conflict):
                await k.client.delete(PODS, md["name"], md.get("namespace"), grace_period_seconds=0,
                                      uid=self.uid)
        await k.runtime.remove_pod(self.uid)
        k.ips.release(self.uid)

    # -- status --------------------------------------------------------------------------------
    def _container_status(self, c: _Container, *, init_pending: bool, terminal: bool) -> Obj:
        k = self.kubelet
        rt = k.runtime.name
        out: Obj = {"name": c.name, "image": c.spec.get("image", ""),
                    "imageID": c.image.id if c.image is not None and c.current is not None else "",
                    "ready": c.ready and c.running and not terminal, "started": c.started and c.running,
                    "restartCount": c.restart_count}
        last: Obj | None = None
        cur = c.current
        if c.waiting is not None:
            out["state"] = {"waiting": {"reason": c.waiting[0], "message": c.waiting[1]}}
            if cur is not None and not cur.running:
                last = terminated_state(cur, rt)
            elif c.previous is not None:
                last = terminated_state(c.previous, rt)
            else:
                last = c.restored_last
        elif cur is None:
            reason = "PodInitializing" if (init_pending and not c.init) else "ContainerCreating"
            out["state"] = {"waiting": {"reason": reason}}
            last = c.restored_last
        elif cur.running:
            out["state"] = {"running": {"startedAt": rfc3339(cur.started_at)}}
            last = terminated_state(c.previous, rt) if c.previous is not None else c.restored_last
        else:
            out["state"] = {"terminated": terminated_state(cur, rt)}
            last = terminated_state(c.previous, rt) if c.previous is not None else c.restored_last
        out["lastState"] = {"terminated": last} if last else {}
        if cur is not None and cur.id:
            out["containerID"] = f"{rt}://{cur.id}"
        return out

    def status(self, *, terminal: bool = False) -> Obj:
        k = self.kubelet
        spec = self.pod.get("spec") or {}
        old = self.pod.get("status") or {}
        init_pending = not all(c.succeeded for c in self.all(init=True))
        inits = [self._container_status(c, init_pending=init_pending, terminal=terminal)
                 for c in self.all(init=True)]
        regular = [self._container_status(c, init_pending=init_pending, terminal=terminal)
                   for c in self.all(init=False)]
        phase = self.final_phase or pod_phase(spec, inits, regular, terminal=terminal)
        if phase in ("Succeeded", "Failed"):
            terminal = True
            for st in [*inits, *regular]:
                st["ready"] = False
        conditions = pod_conditions(self.pod, inits, regular, phase, sandbox_ready=self.ip is not None
                                    and not terminal)
        status: Obj = {"phase": phase, "conditions": keep_transition_times(conditions, old.get("conditions") or [],
                                                                          rfc3339()),
                       "hostIP": k.spec.address, "hostIPs": [{"ip": k.spec.address}],
                       "podIP": self.ip, "podIPs": [{"ip": self.ip}] if self.ip else [],
                       "startTime": self.start_time, "qosClass": qos_class(self.pod),
                       "containerStatuses": regular}
        if inits:
            status["initContainerStatuses"] = inits
        if self.pod_reason is not None:
            status["reason"], status["message"] = self.pod_reason
        return status

    async def _write_status(self, *, terminal: bool = False) -> None:
        if self.adopted_terminal:
            return
        status = self.status(terminal=terminal)
        if self.final_phase is None and status["phase"] in ("Succeeded", "Failed"):
            self.final_phase = status["phase"]
            for c in self.containers.values():
                c.stop_tasks()
            self.wake.set()  # the next sync stops what still runs (sidecars)
        if status == self.written and not self._api_differs(status):
            return
        md = self.pod["metadata"]
        patch = dict(status)
        for key in (self.written or self.pod.get("status") or {}):
            if key not in patch:
                patch[key] = None
        answer = await self.kubelet.client.patch_status(PODS, md["name"], {"status": patch}, md.get("namespace"))
        self.written = status
        self.written_rv = (answer.get("metadata") or {}).get("resourceVersion")
        self.written_seen = False

    # -- node-served subresources ----------------------------------------------------------------
    def instance(self, container: str, *, previous: bool = False) -> ContainerState | None:
        c = self.containers.get(container)
        if c is None:
            return None
        return c.previous if previous else c.current


class Kubelet:
    """One node's agent; ``await Kubelet(client, NodeSpec("node-1"), runtime=..., pod_cidr=...).run(stop)``."""

    def __init__(self, client: Client, spec: NodeSpec, *, runtime: ContainerRuntime, pod_cidr: str,
                 cluster_name: str = "", renew_interval: float = 10.0, lease_seconds: int = 40,
                 status_interval: float = 10.0, backoff_base: float = 10.0, backoff_max: float = 300.0,
                 catalog: ImageCatalog | None = None) -> None:
        self.client = client
        self.spec = spec
        self.node_name = spec.name
        self.runtime = runtime
        self.pod_cidr = pod_cidr
        self.cluster_name = cluster_name
        self.renew_interval = renew_interval
        self.lease_seconds = lease_seconds
        self.status_interval = status_interval
        self.backoff = Backoff(backoff_base, backoff_max)
        self.catalog = catalog or ImageCatalog()
        self.ips = PodIPs(pod_cidr)
        self.allocatable = {"cpu": spec.cpu, "memory": spec.memory, "pods": str(spec.pods),
                            "ephemeral-storage": "100Gi"}
        self.recorder = EventRecorder(client, COMPONENT, host=spec.name)
        self.pods = Informer(client, PODS, field_selector=f"spec.nodeName={spec.name}")
        self.pods.add_handler(self._on_pod)
        self.registered = asyncio.Event()
        self._workers: dict[str, _PodWorker] = {}
        self._worker_tasks: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._events: asyncio.Queue[tuple[Obj, str, str, str]] = asyncio.Queue()
        self._node_conditions: list[Obj] = []
        self._done_uids: dict[str, None] = {}
        """Pods whose worker terminated them (oldest first), until their DELETED event."""
        self._syncs = 0
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._running = False

    # -- helpers for workers -------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.node_name}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def event(self, pod: Obj, type_: str, reason: str, message: str) -> None:
        """Queue an Event; a single task sends them in order so no sync waits on it."""
        ref = {"kind": "Pod", "apiVersion": "v1", "metadata": pod.get("metadata") or {}}
        self._events.put_nowait((ref, type_, reason, message))

    @contextlib.contextmanager
    def syncing(self) -> Iterator[None]:
        """Count a pod sync in progress (events wait for a quiet moment, see :meth:`_send_events`)."""
        self._syncs += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._syncs -= 1
            if not self._syncs:
                self._quiet.set()

    async def _send_events(self) -> None:
        """Send queued Events, after pod syncs: status writes go first when many pods start at once.

        Events are advice, pod status is state; on a busy API server a burst of starting pods
        would otherwise wait behind their own Pulled/Created/Started events. An event waits
        at most ``EVENT_MAX_DELAY`` seconds for the syncs to quiet down.
        """
        while True:
            obj, type_, reason, message = await self._events.get()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._quiet.wait(), EVENT_MAX_DELAY)
            await self.recorder.record(obj, type_, reason, message)

    async def read_source(self, kind: str, namespace: str, name: str) -> Obj:
        res = CONFIGMAPS if kind == "ConfigMap" else SECRETS
        return await self.client.get(res, name, namespace)

    async def exec_output(self, cid: ContainerID, command: list[str], timeout: float) -> tuple[int, str]:
        """Run a command in a container and collect its output (probes, hooks)."""
        try:
            proc = await self.runtime.exec(cid, command)
        except (NotFound, BadRequest) as exc:
            return 126, str(exc)
        try:
            async with asyncio.timeout(timeout):
                out, err = await proc.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            await proc.wait()
            return 124, f"command timed out after {go_duration(timeout)}"
        return proc.returncode or 0, (out or b"").decode(errors="replace") + (err or b"").decode(errors="replace")

    # -- pods ------------------------------------------------------------------------------------
    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        if obj is None or not self._running:
            return
        uid = (obj.get("metadata") or {}).get("uid")
        if not uid:
            return
        worker = self._workers.get(uid)
        if event == "DELETED":
            self._done_uids.pop(uid, None)
            if worker is not None:
                worker.deleted = True
                worker.wake.set()
            return
        if uid in self._done_uids:
            return  # terminated and confirmed: late events of a pod that is going away
        if (obj.get("spec") or {}).get("nodeName") != self.node_name:
            return
        if worker is not None:
            worker.update(obj)
            return
        worker = _PodWorker(self, obj)
        self._workers[uid] = worker
        task = self.spawn(worker.run(), f"pod-{obj['metadata'].get('name')}")
        self._worker_tasks[uid] = task

        def done(t: asyncio.Task[None], uid: str = uid) -> None:
            self._workers.pop(uid, None)
            self._worker_tasks.pop(uid, None)
            if not t.cancelled():
                self._done_uids[uid] = None
                while len(self._done_uids) > DONE_REMEMBERED:
                    self._done_uids.pop(next(iter(self._done_uids)))

        task.add_done_callback(done)

    def _worker_for(self, pod_uid: str) -> _PodWorker:
        worker = self._workers.get(pod_uid)
        if worker is None:
            raise NotFound(f"pod {pod_uid} is not running on node {self.node_name}")
        return worker

    # -- PodAccess (logs and exec served by the node) --------------------------------------------
    def log_path(self, pod_uid: str, container: str, *, previous: bool = False) -> Path | None:
        worker = self._workers.get(pod_uid)
        if worker is None:
            return None
        inst = worker.instance(container, previous=previous)
        if inst is None:
            rec = worker.containers.get(container)
            restored = rec.restored_log if rec is not None and previous else None
            return restored if restored is not None and restored.is_file() else None
        if not inst.log_path.is_file():
            return None
        return inst.log_path

    def is_running(self, pod_uid: str, container: str) -> bool:
        worker = self._workers.get(pod_uid)
        inst = worker.instance(container) if worker is not None else None
        return inst is not None and inst.running

    async def exec(self, pod_uid: str, container: str, command: list[str], *, tty: bool = False
                   ) -> asyncio.subprocess.Process:
        worker = self._worker_for(pod_uid)
        if container not in worker.containers:
            raise NotFound(f"container {container} is not valid for pod {worker.pod['metadata']['name']}")
        inst = worker.instance(container)
        if inst is None or not inst.running:
            raise BadRequest(f"container {container} is not running")
        return await self.runtime.exec(inst.id, command, tty=tty)

    # -- the node --------------------------------------------------------------------------------
    def node_object(self) -> Obj:
        s = self.spec
        labels = {"kubernetes.io/hostname": s.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                  "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64", **s.labels}
        spec: Obj = {"podCIDR": self.pod_cidr, "podCIDRs": [self.pod_cidr]}
        if s.taints:
            spec["taints"] = list(s.taints)
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": s.name, "labels": labels,
                             "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                             ENFORCEMENT_ANNOTATION: self.runtime.enforcement}},
                "spec": spec}

    def node_status(self) -> Obj:
        s = self.spec
        now = rfc3339()
        fresh = [("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                 ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                 ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                 ("Ready", "True", "KubeletReady", "kubelet is posting ready status")]
        before = {c["type"]: c for c in self._node_conditions}
        conditions = []
        for type_, status, reason, message in fresh:
            prev = before.get(type_)
            since = prev["lastTransitionTime"] if prev is not None and prev["status"] == status else now
            conditions.append({"type": type_, "status": status, "reason": reason, "message": message,
                               "lastHeartbeatTime": now, "lastTransitionTime": since})
        self._node_conditions = conditions
        capacity = {"cpu": s.cpu, "memory": s.memory, "pods": str(s.pods), "ephemeral-storage": "100Gi"}
        return {"capacity": capacity, "allocatable": dict(self.allocatable), "conditions": conditions,
                "addresses": [{"type": "InternalIP", "address": s.address}, {"type": "Hostname", "address": s.name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "images": [{"names": sorted(names), "sizeBytes": 0} for names, _ in self.catalog.names_by_image()],
                "nodeInfo": {"kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": KUBELET_VERSION,
                             "operatingSystem": "linux", "architecture": "amd64",
                             "containerRuntimeVersion": f"{self.runtime.name}://{self.runtime.version}",
                             "osImage": "Atoll process runtime", "kernelVersion": os.uname().release,
                             "machineID": s.name, "systemUUID": s.name, "bootID": s.name}}

    async def register(self) -> None:
        obj = self.node_object()
        try:
            await self.client.create(NODES, obj)
        except AlreadyExists:
            await self.client.patch(NODES, self.node_name, {"metadata": obj["metadata"], "spec": obj["spec"]})
        await self.client.patch_status(NODES, self.node_name, {"status": self.node_status()})
        await self._renew_lease()
        self.registered.set()

    async def _renew_lease(self) -> None:
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": self.node_name, "namespace": "kube-node-lease"},
                 "spec": {"holderIdentity": self.node_name, "leaseDurationSeconds": self.lease_seconds,
                          "renewTime": micro_now()}}
        await self.client.apply(LEASES, lease, force=True, field_manager="atoll-kubelet")

    async def _every(self, interval: float, what: str, fn: Any, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("%s: %s failed: %s", self.node_name, what, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def _update_node_status(self) -> None:
        await self.client.patch_status(NODES, self.node_name, {"status": self.node_status()})

    async def run(self, stop: asyncio.Event) -> None:
        """Register, then run pods until ``stop``; every container is stopped before returning."""
        killed = await self.runtime.cleanup_stale()
        if killed:
            logger.warning("%s: killed %d container process(es) left by an earlier run", self.node_name, killed)
        logger.info("%s: kubelet starting (runtime %s://%s, pod CIDR %s, resource limits: %s)", self.node_name,
                    self.runtime.name, self.runtime.version, self.pod_cidr, self.runtime.enforcement)
        self.pods = Informer(self.client, PODS, field_selector=f"spec.nodeName={self.node_name}")
        self.pods.add_handler(self._on_pod)  # a fresh cache: a second run() sees every pod as new again
        self._running = True
        background = [asyncio.create_task(self._send_events(), name=f"{self.node_name}-events")]
        try:
            while not stop.is_set():
                try:
                    await self.register()
                    break
                except Exception as exc:
                    logger.warning("%s: node registration failed: %s; retrying", self.node_name, exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
            if stop.is_set():
                return
            background += [
                asyncio.create_task(self.pods.run(stop), name=f"{self.node_name}-pods"),
                asyncio.create_task(self._every(self.renew_interval, "lease renewal", self._renew_lease, stop),
                                    name=f"{self.node_name}-lease"),
                asyncio.create_task(self._every(self.status_interval, "node status", self._update_node_status,
                                                stop), name=f"{self.node_name}-node-status")]
            await stop.wait()
        finally:
            self._running = False
            workers = list(self._worker_tasks.values())
            for t in workers:
                t.cancel()
            for t in workers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await self.runtime.close()
            for t in [*background, *self._tasks]:
                t.cancel()
            for t in [*background, *list(self._tasks)]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
