"""Pure rules for a pod's status: phase, conditions, and the restart back-off.

These mirror kube's kubelet (``getPhase``, ``status.Generate*Condition``, and
``flowcontrol.Backoff`` as ``kuberuntime`` uses it for CrashLoopBackOff) so a pod reads the
same in ``kubectl get``/``describe`` as on a kube node. They take and return the API's
plain dicts, which keeps them table-testable without processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


def go_duration(seconds: float) -> str:
    """A duration as Go's ``time.Duration.String`` prints it: ``10s``, ``1m20s``, ``5m0s``, ``200ms``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:g}ms" if ms >= 1 else f"{seconds * 1e6:g}µs"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text


@dataclass
class _Entry:
    delay: float
    last_update: float


class Backoff:
    """Per-key exponential back-off with kube's ``flowcontrol.Backoff`` semantics.

    The first failure restarts at once and arms ``base``; each restart after a back-off
    doubles it up to ``cap``; an entry untouched for ``2 * cap`` (10 minutes with kube's
    defaults, so a container that ran that long) starts over from ``base``.
    """

    def __init__(self, base: float, cap: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.base = base
        self.cap = cap
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def _expired(self, at: float, entry: _Entry) -> bool:
        return at - entry.last_update > 2 * self.cap

    def get(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry.delay if entry is not None else 0.0

    def next(self, key: str, event_time: float) -> float:
        """Record a restart after an event at ``event_time``; the delay armed for the next one."""
        entry = self._entries.get(key)
        if entry is None or self._expired(event_time, entry):
            entry = self._entries[key] = _Entry(self.base, self.clock())
        else:
            entry.delay = min(entry.delay * 2, self.cap)
            entry.last_update = self.clock()
        return entry.delay

    def in_backoff_since(self, key: str, event_time: float) -> bool:
        entry = self._entries.get(key)
        if entry is None:
            return False
        now = self.clock()
        if self._expired(now, entry):
            return False
        return now - event_time < entry.delay

    def remaining(self, key: str, event_time: float) -> float:
        """Seconds until a back-off since ``event_time`` is over (0 if none)."""
        if not self.in_backoff_since(key, event_time):
            return 0.0
        return max(0.0, event_time + self.get(key) - self.clock())

    def forget(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]


def _status_of(statuses: Iterable[Obj], name: str) -> Obj | None:
    return next((s for s in statuses if s.get("name") == name), None)


def is_restartable_init(container: Obj) -> bool:
    return container.get("restartPolicy") == "Always"


def pod_phase(spec: Obj, init_statuses: list[Obj], statuses: list[Obj], *, terminal: bool = False) -> str:
    """The pod phase from its container statuses (kubelet's ``getPhase``)."""
    pending_init = failed_init = 0
    for c in spec.get("initContainers") or []:
        if is_restartable_init(c):
            continue
        st = _status_of(init_statuses, c["name"])
        state = (st or {}).get("state") or {}
        last = ((st or {}).get("lastState") or {}).get("terminated")
        if st is None or "running" in state:
            pending_init += 1
        elif "terminated" in state:
            if state["terminated"].get("exitCode", 0) != 0:
                failed_init += 1
        elif "waiting" in state:
            if last is not None:
                if last.get("exitCode", 0) != 0:
                    failed_init += 1
            else:
                pending_init += 1
        else:
            pending_init += 1
    unknown = running = waiting = stopped = succeeded = 0
    for c in spec.get("containers") or []:
        st = _status_of(statuses, c["name"])
        state = (st or {}).get("state") or {}
        if st is None:
            unknown += 1
        elif "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode", 0) == 0:
                succeeded += 1
        elif "waiting" in state:
            if ((st.get("lastState") or {}).get("terminated")) is not None:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1
    policy = spec.get("restartPolicy") or "Always"
    if failed_init > 0 and policy == "Never":
        return "Failed"
    if pending_init > 0 or waiting > 0:
        return "Pending"
    if running > 0 and unknown == 0:
        return "Running"
    if running == 0 and stopped > 0 and unknown == 0:
        if terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(type_: str, ok: bool, reason: str = "", message: str = "") -> Obj:
    cond: Obj = {"type": type_, "status": "True" if ok else "False"}
    if not ok and reason:
        cond["reason"] = reason
    if not ok and message:
        cond["message"] = message
    return cond


def pod_conditions(pod: Obj, init_statuses: list[Obj], statuses: list[Obj], phase: str, *,
                   sandbox_ready: bool) -> list[Obj]:
    """Kube's pod conditions, without timestamps (see :func:`keep_transition_times`)."""
    spec = pod.get("spec") or {}
    completed = phase in ("Succeeded", "Failed")
    incomplete = []
    for c in spec.get("initContainers") or []:
        st = _status_of(init_statuses, c["name"]) or {}
        term = (st.get("state") or {}).get("terminated")
        if is_restartable_init(c):
            if not st.get("started"):
                incomplete.append(c["name"])
        elif term is None or term.get("exitCode") != 0:
            incomplete.append(c["name"])
    initialized = _condition("Initialized", not incomplete, "ContainersNotInitialized",
                             f"containers with incomplete status: [{' '.join(incomplete)}]")
    unready = [c["name"] for c in spec.get("initContainers") or []  # sidecars count, as in kube
               if is_restartable_init(c) and not (_status_of(init_statuses, c["name"]) or {}).get("ready")]
    unready += [c["name"] for c in spec.get("containers") or []
                if not (_status_of(statuses, c["name"]) or {}).get("ready")]
    if completed:
        containers_ready = _condition("ContainersReady", False, "PodCompleted")
    elif incomplete and spec.get("initContainers"):
        containers_ready = _condition("ContainersReady", False, "ContainersNotReady",
                                      f"containers with unready status: [{' '.join(unready)}]")
    else:
        containers_ready = _condition("ContainersReady", not unready, "ContainersNotReady",
                                      f"containers with unready status: [{' '.join(unready)}]")
    ready = dict(containers_ready)
    ready["type"] = "Ready"
    if ready["status"] == "True":
        existing = {c.get("type"): c.get("status") for c in (pod.get("status") or {}).get("conditions") or []}
        gates = [g.get("conditionType") for g in spec.get("readinessGates") or []]
        missing = [g for g in gates if existing.get(g) != "True"]
        if missing:
            ready = _condition("Ready", False, "ReadinessGatesNotReady",
                               f"corresponding condition of pod readiness gate \"{missing[0]}\" does not exist.")
    return [_condition("PodReadyToStartContainers", sandbox_ready), initialized, ready, containers_ready,
            _condition("PodScheduled", True)]


def keep_transition_times(new: list[Obj], old: list[Obj], now: str) -> list[Obj]:
    """Give each condition its previous ``lastTransitionTime`` unless its status changed.

    Conditions other components own (readiness gates, DisruptionTarget...) are kept as they are.
    """
    previous = {c.get("type"): c for c in old}
    out = []
    for cond in new:
        before = previous.get(cond["type"])
        cond = dict(cond)
        if before is not None and before.get("status") == cond["status"] and before.get("lastTransitionTime"):
            cond["lastTransitionTime"] = before["lastTransitionTime"]
        else:
            cond["lastTransitionTime"] = now
        cond.setdefault("lastProbeTime", None)
        out.append(cond)
    ours = {c["type"] for c in new}
    out.extend(c for c in old if c.get("type") not in ours)
    return out
