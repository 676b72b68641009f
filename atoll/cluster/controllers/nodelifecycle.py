"""Node lifecycle controller: notice dead kubelets, taint their nodes, evict what cannot stay.

Kube's pkg/controller/nodelifecycle plus the taint-eviction controller
(pkg/controller/tainteviction), on one work queue keyed by node name:

* **Health.** A kubelet proves it is alive by renewing its Lease in ``kube-node-lease``
  and by posting node status. As in kube, the controller times those signals with its
  own clock (when it *saw* a renewal or a new heartbeat), never with the kubelet's
  timestamps, so clock skew between machines cannot kill or revive a node. A node not
  heard from for ``grace_period`` seconds gets its Ready and pressure conditions set
  to ``Unknown`` (``NodeStatusUnknown``, "Kubelet stopped posting node status."), a
  ``NodeNotReady`` Event, and its pods' Ready condition set False, so endpoints stop
  sending them traffic. A node first seen gets a full grace period.
* **Taints** follow the conditions: Ready Unknown → ``node.kubernetes.io/unreachable``,
  Ready False → ``node.kubernetes.io/not-ready`` (each NoSchedule and NoExecute, the
  NoExecute one stamped ``timeAdded``), pressure conditions → their NoSchedule taints,
  and ``spec.unschedulable`` (``kubectl cordon``/``drain``) →
  ``node.kubernetes.io/unschedulable:NoSchedule``. Taints the controller does not own
  are never touched; its own go away when the condition clears.
* **Eviction.** A pod on a node with NoExecute taints stays only if it tolerates all
  of them; it is evicted at once if it does not, never if its tolerations have no
  ``tolerationSeconds``, and otherwise after the smallest ``tolerationSeconds`` counted
  from when the controller first saw it on the tainted node (the
  ``DefaultTolerationSeconds`` admission gives every pod 300 s). Eviction marks the pod
  with a ``DisruptionTarget`` condition, records ``TaintManagerEviction`` and deletes it
  with its own grace period. If the taints go before the time is up, the eviction is
  cancelled.

* **Full disruption.** When no node at all is Ready, the fault is more likely between
  the nodes and the control plane than in every node at once: like kube, the controller
  then takes the NoExecute taints off and evicts nothing, and when a node is Ready again
  every node gets a fresh grace period. (Kube's per-zone eviction *rate limits* for
  partial disruptions are not implemented: NoExecute taints are added at once.)

A node that never posted status is timed from its creation with
``startup_grace_period``. A newly seen node gets a ``RegisteredNode`` Event.
Each node is re-examined every ``monitor_period`` seconds (and sooner when a pending
eviction falls due); changes to the node, its Lease or its pods bring it forward.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from atoll.api.errors import Conflict, NotFound
from atoll.client import Client, Resource
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.events import EventRecorder
from atoll.machinery.informing import Informer, key_of

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
NODES = Resource("v1", "nodes", False, "Node")
PODS = Resource("v1", "pods", True, "Pod")
LEASES = Resource("coordination.k8s.io/v1", "leases", True, "Lease")
LEASE_NAMESPACE = "kube-node-lease"
EXCLUDE_DISRUPTION_LABEL = "node.kubernetes.io/exclude-disruption"

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
CONDITION_TAINTS: dict[str, str] = {
    "MemoryPressure": "node.kubernetes.io/memory-pressure",
    "DiskPressure": "node.kubernetes.io/disk-pressure",
    "PIDPressure": "node.kubernetes.io/pid-pressure",
    "NetworkUnavailable": "node.kubernetes.io/network-unavailable",
}
"""Conditions that, when True, keep new pods away (NoSchedule)."""
OWNED_TAINTS: frozenset[tuple[str, str]] = frozenset(
    {(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute"), (UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute"),
     (UNSCHEDULABLE, "NoSchedule"), *((key, "NoSchedule") for key in CONDITION_TAINTS.values())})
"""Every (key, effect) this controller adds and removes; any other taint is someone else's."""
UNKNOWN_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
"""The kubelet-owned conditions set Unknown when the kubelet goes silent."""

STOPPED_POSTING = "Kubelet stopped posting node status."
NEVER_POSTED = "Kubelet never posted node status."
DISRUPTION_TARGET = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                     "message": "Taint manager: deleting due to NoExecute taint"}


def rfc3339(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(ts: object) -> dt.datetime | None:
    if not isinstance(ts, str) or not ts:
        return None
    try:
        return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


def condition(node: Obj, type_: str) -> Obj | None:
    return next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == type_), None)


def ready_status(node: Obj) -> str:
    """``True``, ``False`` or ``Unknown`` (also when the kubelet never posted a Ready condition)."""
    ready = condition(node, "Ready")
    return str(ready.get("status") or "Unknown") if ready else "Unknown"


# -- health ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NodeHealth:
    """What the controller last saw of a kubelet, timed with the controller's own clock."""

    probe_time: float
    """When a sign of life (new heartbeat, renewed lease) was last seen."""
    heartbeat: str
    lease_renew: str


def observe(saved: NodeHealth | None, node: Obj, lease: Obj | None, now: float) -> NodeHealth:
    """kube's tryUpdateNodeHealth bookkeeping: a changed heartbeat or a newer lease renewal counts as alive now."""
    ready = condition(node, "Ready") or {}
    heartbeat = str(ready.get("lastHeartbeatTime") or "")
    renew = str(((lease or {}).get("spec") or {}).get("renewTime") or "")
    if saved is None:
        created = _parse((node.get("metadata") or {}).get("creationTimestamp"))
        # A node that never posted status is timed from its creation (kube's startup grace period).
        first = created.timestamp() if not ready and created is not None else now
        return NodeHealth(probe_time=min(first, now), heartbeat=heartbeat, lease_renew=renew)
    probe = saved.probe_time
    if heartbeat and heartbeat != saved.heartbeat:
        probe = now
    seen, new = _parse(saved.lease_renew), _parse(renew)  # a kubelet renewing its lease is alive, status or not
    if new is not None and (seen is None or new > seen):
        probe = now
    else:
        renew = saved.lease_renew
    return NodeHealth(probe_time=probe, heartbeat=heartbeat or saved.heartbeat, lease_renew=renew)


def silent_conditions(node: Obj, now: float) -> list[Obj] | None:
    """The node's conditions with the kubelet's set Unknown; None when they already are."""
    conditions = [dict(c) for c in (node.get("status") or {}).get("conditions") or []]
    stamp = rfc3339(now)
    changed = False
    for type_ in UNKNOWN_CONDITIONS:
        current = next((c for c in conditions if c.get("type") == type_), None)
        if current is None:
            conditions.append({"type": type_, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                               "message": NEVER_POSTED,
                               "lastHeartbeatTime": (node.get("metadata") or {}).get("creationTimestamp", stamp),
                               "lastTransitionTime": stamp})
            changed = True
        elif current.get("status") != "Unknown":
            current.update(status="Unknown", reason="NodeStatusUnknown", message=STOPPED_POSTING,
                           lastTransitionTime=stamp)
            changed = True
    return conditions if changed else None


def fully_disrupted(nodes: Iterable[Obj]) -> bool:
    """kube's full disruption: no node Ready at all (nodes labelled to be excluded do not count).

    When every node seems dead at once, the likelier fault is between the nodes and the
    control plane; evicting everything would only make it worse, so kube stops.
    """
    counted = [n for n in nodes if EXCLUDE_DISRUPTION_LABEL not in ((n.get("metadata") or {}).get("labels") or {})]
    return bool(counted) and all((condition(n, "Ready") or {}).get("status") != "True" for n in counted)


# -- taints ---------------------------------------------------------------------------------
def desired_taints(node: Obj, *, evicting: bool = True) -> set[tuple[str, str]]:
    """The controller-owned (key, effect) pairs the node should carry, from its conditions and spec.

    ``evicting=False`` (the whole cluster is down) leaves out the NoExecute taints.
    """
    out: set[tuple[str, str]] = set()
    ready = (condition(node, "Ready") or {}).get("status")  # none posted yet: no verdict, no taint
    if ready == "False":
        out |= {(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")}
    elif ready == "Unknown":
        out |= {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")}
    if not evicting:
        out -= {(NOT_READY, "NoExecute"), (UNREACHABLE, "NoExecute")}
    for type_, key in CONDITION_TAINTS.items():
        cond = condition(node, type_)
        if cond is not None and cond.get("status") == "True":
            out.add((key, "NoSchedule"))
    if (node.get("spec") or {}).get("unschedulable"):
        out.add((UNSCHEDULABLE, "NoSchedule"))
    return out


def reconcile_taints(current: Iterable[Mapping[str, Any]], desired: set[tuple[str, str]],
                     now: float) -> list[Obj] | None:
    """The node's new taint list (foreign taints kept in place), or None when nothing changes."""
    out: list[Obj] = []
    present: set[tuple[str, str]] = set()
    changed = False
    for taint in current:
        ident = (str(taint.get("key") or ""), str(taint.get("effect") or ""))
        if ident in OWNED_TAINTS and ident not in desired:
            changed = True
            continue
        present.add(ident)
        out.append(dict(taint))
    for key, effect in sorted(desired - present):
        added: Obj = {"key": key, "effect": effect}
        if effect == "NoExecute":
            added["timeAdded"] = rfc3339(now)
        out.append(added)
        changed = True
    return out if changed else None


# -- tolerations ----------------------------------------------------------------------------
def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """kube's Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if key != (taint.get("key") or "") and not (key == "" and operator == "Exists"):
        return False
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def matching_tolerations(taints: Iterable[Mapping[str, Any]],
                         tolerations: Iterable[Mapping[str, Any]]) -> tuple[bool, list[Mapping[str, Any]]]:
    """(every taint tolerated, the first toleration used for each)."""
    tolerations = list(tolerations)
    used: list[Mapping[str, Any]] = []
    for taint in taints:
        match = next((t for t in tolerations if tolerates(t, taint)), None)
        if match is None:
            return False, []
        used.append(match)
    return True, used


def eviction_delay(taints: Iterable[Mapping[str, Any]], tolerations: Iterable[Mapping[str, Any]]) -> float | None:
    """Seconds a pod may stay on a node with these NoExecute taints: 0 at once, None for ever.

    kube's rule: an untolerated taint evicts at once; otherwise the smallest
    ``tolerationSeconds`` among the tolerations used (zero or negative: at once), and
    tolerations without seconds tolerate for ever.
    """
    taints = [t for t in taints if t.get("effect") == "NoExecute"]
    if not taints:
        return None
    ok, used = matching_tolerations(taints, tolerations)
    if not ok:
        return 0.0
    seconds = [t["tolerationSeconds"] for t in used if t.get("tolerationSeconds") is not None]
    if not seconds:
        return None
    return float(max(0, min(int(s) for s in seconds)))


def with_condition(conditions: Iterable[Mapping[str, Any]], new: Obj) -> tuple[list[Obj], bool]:
    """Conditions with ``new`` set (lastTransitionTime kept when the status is unchanged)."""
    out: list[Obj] = []
    changed = True
    found = False
    for c in conditions:
        if c.get("type") == new["type"]:
            found = True
            if all(c.get(k) == new.get(k) for k in ("status", "reason", "message")):
                changed = False
                out.append(dict(c))
            else:
                out.append({**c, **new} if c.get("status") != new.get("status") else
                           {**c, **{k: v for k, v in new.items() if k != "lastTransitionTime"}})
        else:
            out.append(dict(c))
    if not found:
        out.append(new)
    return out, changed


class NodeLifecycleController(Controller):
    NAME: ClassVar[str] = "node-lifecycle-controller"

    def __init__(self, client: Client, *, monitor_period: float = 5.0, grace_period: float = 40.0,
                 startup_grace_period: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.client = client
        self.monitor_period = monitor_period
        self.grace_period = grace_period
        self.startup_grace_period = startup_grace_period
        self.clock = clock
        self.recorder = EventRecorder(client, self.NAME)
        self.nodes = self.watch(Informer(client, NODES))
        self.leases = self.watch(Informer(client, LEASES, namespace=LEASE_NAMESPACE),
                                 key_for=lambda lease: [lease["metadata"]["name"]])
        self.pods = Informer(client, PODS)
        self.pods.add_handler(self._on_pod)
        self.informers.append(self.pods)
        self.health: dict[str, NodeHealth] = {}
        self.disrupted = False
        """Every node down at once: evictions stopped (kube's full disruption mode)."""
        self._pods_by_node: dict[str, set[str]] = {}
        self._eviction_start: dict[str, float] = {}
        """pod uid → when the controller first saw it on a node with NoExecute taints it tolerates for a while."""

    def _on_pod(self, _event: str, old: Obj | None, new: Obj | None) -> None:
        old_node = ((old or {}).get("spec") or {}).get("nodeName")
        new_node = ((new or {}).get("spec") or {}).get("nodeName")
        key = key_of(new or old or {})
        if old_node and old_node != new_node:
            self._pods_by_node.get(old_node, set()).discard(key)
        if new is None and old_node:
            self._pods_by_node.get(old_node, set()).discard(key)
            self._eviction_start.pop(str(((old or {}).get("metadata") or {}).get("uid")), None)
        elif new_node:
            self._pods_by_node.setdefault(new_node, set()).add(key)
            self.queue.add(new_node)

    def pods_on(self, node: str) -> list[Obj]:
        pods = []
        for key in sorted(self._pods_by_node.get(node, ())):
            pod = self.pods.lister.get(key)
            if pod is not None and (pod.get("spec") or {}).get("nodeName") == node:
                pods.append(pod)
        return pods

    async def reconcile(self, key: str) -> Result:
        node = self.nodes.lister.get(key)
        if node is None:
            self.health.pop(key, None)
            self._pods_by_node.pop(key, None)
            return Result()
        now = self.clock()
        observed_ready = (condition(node, "Ready") or {}).get("status")
        saved = self.health.get(key)
        health = observe(saved, node, self.leases.lister.get(f"{LEASE_NAMESPACE}/{key}"), now)
        self.health[key] = health
        if saved is None:
            await self.recorder.record(node, "Normal", "RegisteredNode", f"Registered Node {key} in Controller")
        grace = self.grace_period if observed_ready is not None else self.startup_grace_period
        if now - health.probe_time > grace:
            conditions = silent_conditions(node, now)
            if conditions is not None:
                node = await self._patch_node(node, {"status": {"conditions": conditions}}, subresource="status")
                logger.info("%s: node %s silent for %.0fs: conditions Unknown", self.NAME, key,
                            now - health.probe_time)
                if observed_ready == "True":
                    await self.recorder.record(node, "Normal", "NodeNotReady",
                                               f"Node {key} status is now: NodeNotReady")
        ready = (condition(node, "Ready") or {}).get("status")
        if ready is not None and ready != "True":
            await self._mark_pods_not_ready(key, now)
        evicting = not self._update_disruption(key, node, now)
        taints = reconcile_taints((node.get("spec") or {}).get("taints") or [],
                                  desired_taints(node, evicting=evicting), now)
        if taints is not None:
            node = await self._patch_node(node, {"spec": {"taints": taints or None}})
        due = await self._evict(key, node, now) if evicting else None
        wait = self.monitor_period if due is None else max(0.0, min(self.monitor_period, due))
        return Result(requeue_after=wait)

    def _update_disruption(self, key: str, node: Obj, now: float) -> bool:
        """Whether the whole cluster is down; on the way out every node gets a fresh grace period."""
        if not self.disrupted and (condition(node, "Ready") or {}).get("status") == "True" \
                and EXCLUDE_DISRUPTION_LABEL not in ((node.get("metadata") or {}).get("labels") or {}):
            return False  # the common case, without looking at every node
        nodes = [node if n["metadata"]["name"] == key else n for n in self.nodes.lister.list()]
        disrupted = fully_disrupted(nodes)
        if disrupted != self.disrupted:
            self.disrupted = disrupted
            if disrupted:
                logger.warning("%s: no node is Ready: entering full disruption mode, evictions stopped", self.NAME)
                for other in nodes:  # their NoExecute taints come off too
                    self.queue.add(other["metadata"]["name"])
            else:
                logger.info("%s: some nodes are Ready again: leaving full disruption mode", self.NAME)
                self.health = {name: NodeHealth(now, h.heartbeat, h.lease_renew) for name, h in self.health.items()}
        return disrupted

    async def _patch_node(self, node: Obj, patch: Obj, *, subresource: str = "") -> Obj:
        """A merge patch guarded by the cached resourceVersion: a Conflict retries on fresher data."""
        body = {**patch, "metadata": {"resourceVersion": node["metadata"].get("resourceVersion")}}
        updated: Obj = await self.client.patch(NODES, node["metadata"]["name"], body, subresource=subresource)
        return updated

    async def _mark_pods_not_ready(self, node: str, now: float) -> None:
        for pod in self.pods_on(node):
            status = pod.get("status") or {}
            ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
            if ready is None or ready.get("status") == "False" or status.get("phase") in ("Succeeded", "Failed"):
                continue
            conditions, _ = with_condition(status.get("conditions") or [],
                                           {"type": "Ready", "status": "False", "lastTransitionTime": rfc3339(now)})
            md = pod["metadata"]
            try:
                await self.client.patch(PODS, md["name"], {"metadata": {"resourceVersion": md.get("resourceVersion")},
                                                           "status": {"conditions": conditions}},
                                        md.get("namespace"), subresource="status")
            except (NotFound, Conflict):
                continue  # gone, or changed: the pod's event brings the node back
            await self.recorder.record(pod, "Warning", "NodeNotReady", "Node is not ready")

    async def _evict(self, node_name: str, node: Obj, now: float) -> float | None:
        """Evict the node's pods whose time is up; the seconds until the next one falls due, if any."""
        taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]
        soonest: float | None = None
        for pod in self.pods_on(node_name):
            md = pod["metadata"]
            uid = str(md.get("uid"))
            if md.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                self._eviction_start.pop(uid, None)
                continue
            delay = eviction_delay(taints, (pod.get("spec") or {}).get("tolerations") or [])
            if delay is None:
                if self._eviction_start.pop(uid, None) is not None:
                    await self.recorder.record(pod, "Normal", "TaintManagerEviction",
                                               f"Cancelling deletion of Pod {md.get('namespace')}/{md['name']}")
                continue
            start = self._eviction_start.setdefault(uid, now)
            left = start + delay - now
            if left > 0:
                soonest = left if soonest is None else min(soonest, left)
                continue
            await self._evict_pod(pod, now)
        return soonest

    async def _evict_pod(self, pod: Obj, now: float) -> None:
        md = pod["metadata"]
        ns, name = md.get("namespace"), md["name"]
        await self.recorder.record(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {ns}/{name}")
        conditions, changed = with_condition((pod.get("status") or {}).get("conditions") or [],
                                             {**DISRUPTION_TARGET, "lastTransitionTime": rfc3339(now)})
        try:
            if changed:
                await self.client.patch(PODS, name, {"status": {"conditions": conditions}}, ns, subresource="status")
            await self.client.delete(PODS, name, ns, uid=md.get("uid"))
        except (NotFound, Conflict):
            pass  # gone already, or replaced by a pod of the same name
        self._eviction_start.pop(str(md.get("uid")), None)
        logger.info("%s: evicted pod %s/%s from a NoExecute-tainted node", self.NAME, ns, name)
