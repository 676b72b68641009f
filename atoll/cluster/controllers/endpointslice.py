"""EndpointSlice controller: the pods behind each selector Service, as discovery.k8s.io/v1 slices.

Kube's rules (pkg/controller/endpointslice): every pod matching the Service's selector
that has an IPv4 address and is not terminal becomes an endpoint, terminating pods
included (with ``terminating: true``), so proxies can drain them. ``ready`` means ready
and not terminating (or the Service's ``publishNotReadyAddresses``); ``serving`` means
ready whatever the termination. Ports come from each Service port's ``targetPort``:
numbers as they are, names looked up in the pod's container ports, so pods that give one
name different numbers land in different slices (a slice has one port list). A slice
holds at most ``max_endpoints_per_slice`` endpoints.

Updates keep churn low, as kube's reconciler does: endpoints stay in the slice they are
in, changed ones are rewritten in place, new ones first fill slices that are being
rewritten anyway, then whole new slices, and a last remainder goes into the fullest
untouched slice that can take it all; a slice that would be deleted is rewritten
instead when another would be created. A Service with no endpoints keeps one empty
placeholder slice. Pods on nodes the controller does not know are left out (unless
not-ready addresses are published) and looked at again shortly. Services without a
selector, and ExternalName ones, are left alone: their slices are the user's. Deleted
Services' slices go with their ownerReference (the garbage collector); slices owned by
another Service of the same name are deleted.

The informer cache can lag behind our own writes; like kube's slice tracker, a
reconcile that would read stale slices is retried shortly instead of acting on them
(which would create duplicates).
"""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import logging
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from atoll.api.errors import Conflict, Forbidden, NotFound
from atoll.api.selectors import LabelSelector
from atoll.client import Client, Resource
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.informing import Informer, key_of, split_key

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS = Resource("v1", "pods", True, "Pod")
SERVICES = Resource("v1", "services", True, "Service")
NODES = Resource("v1", "nodes", False, "Node")
ENDPOINTSLICES = Resource("discovery.k8s.io/v1", "endpointslices", True, "EndpointSlice")

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
ZONE_LABEL = "topology.kubernetes.io/zone"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
MAX_ENDPOINTS_PER_SLICE = 100
STALE_RETRY = 0.1
NODE_RETRY = 1.0

PortKey = tuple[tuple[str, int, str, str], ...]
"""A slice's port list as a comparable value: (name, port, protocol, appProtocol), sorted."""
EndpointKey = tuple[tuple[str, ...], str, str]
"""(addresses, targetRef namespace, targetRef name): what identifies an endpoint across updates."""


# -- pods and ports -------------------------------------------------------------------------
def is_pod_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_ipv4s(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [str(p.get("ip")) for p in status.get("podIPs") or [] if p.get("ip")] or (
        [str(status["podIP"])] if status.get("podIP") else [])
    out = []
    for ip in ips:
        try:
            if ipaddress.ip_address(ip).version == 4:
                out.append(ip)
        except ValueError:
            continue
    return out[:1]


def should_be_in_endpoints(pod: Obj, *, include_terminating: bool) -> bool:
    """kube's ShouldPodBeInEndpoints: not terminal, has an IP, and (unless asked) not terminating."""
    if is_terminal(pod) or not pod_ipv4s(pod):
        return False
    return include_terminating or not (pod.get("metadata") or {}).get("deletionTimestamp")


def find_port(pod: Obj, service_port: Mapping[str, Any]) -> int | None:
    """The pod's port for a Service port (kube's podutil.FindPort); None when a name is not found.

    Named ports are looked up in containers and in restartable init containers (sidecars),
    matching the protocol as well as the name.
    """
    target = service_port.get("targetPort")
    if target is None or target == "" or target == 0:
        return int(service_port.get("port") or 0) or None
    if isinstance(target, int):
        return target
    protocol = service_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for container in [*(spec.get("containers") or []), *sidecars]:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def endpoint_ports(service: Obj, pod: Obj) -> list[Obj]:
    """The slice ports this pod serves: the Service's ports it can resolve, in Service order."""
    out: list[Obj] = []
    for sp in (service.get("spec") or {}).get("ports") or []:
        number = find_port(pod, sp)
        if number is None:
            logger.debug("pod %s/%s has no port %r for service %s", (pod.get("metadata") or {}).get("namespace"),
                         (pod.get("metadata") or {}).get("name"), sp.get("targetPort"),
                         (service.get("metadata") or {}).get("name"))
            continue
        port: Obj = {"name": sp.get("name") or "", "port": number, "protocol": sp.get("protocol") or "TCP"}
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        out.append(port)
    return out


def port_key(ports: Iterable[Mapping[str, Any]] | None) -> PortKey:
    return tuple(sorted((str(p.get("name") or ""), int(p.get("port") or 0), str(p.get("protocol") or "TCP"),
                         str(p.get("appProtocol") or "")) for p in ports or ()))


@dataclass(frozen=True, slots=True)
class Conditions:
    ready: bool
    serving: bool
    terminating: bool


def endpoint_conditions(pod: Obj, *, publish_not_ready: bool) -> Conditions:
    """kube's rule: ``ready`` is never true for a terminating pod unless not-ready addresses are published."""
    serving = is_pod_ready(pod)
    terminating = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    return Conditions(ready=publish_not_ready or (serving and not terminating), serving=serving,
                      terminating=terminating)


def should_set_hostname(pod: Obj, service: Obj) -> bool:
    spec, md, smd = pod.get("spec") or {}, pod.get("metadata") or {}, service.get("metadata") or {}
    return bool(spec.get("hostname")) and spec.get("subdomain") == smd.get("name") \
        and md.get("namespace") == smd.get("namespace")


def pod_to_endpoint(pod: Obj, service: Obj, zones: Mapping[str, str]) -> Obj:
    md, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    cond = endpoint_conditions(pod, publish_not_ready=bool((service.get("spec") or {}).get(
        "publishNotReadyAddresses")))
    ep: Obj = {"addresses": pod_ipv4s(pod),
               "conditions": {"ready": cond.ready, "serving": cond.serving, "terminating": cond.terminating},
               "targetRef": {"kind": "Pod", "namespace": md.get("namespace", ""), "name": md.get("name", ""),
                             "uid": md.get("uid", "")}}
    if should_set_hostname(pod, service):
        ep["hostname"] = spec["hostname"]
    node = spec.get("nodeName")
    if node:
        ep["nodeName"] = node
        if zones.get(node):
            ep["zone"] = zones[node]
    return ep


def endpoint_key(ep: Mapping[str, Any]) -> EndpointKey:
    ref = ep.get("targetRef") or {}
    return (tuple(ep.get("addresses") or ()), str(ref.get("namespace") or ""), str(ref.get("name") or ""))


def _normal(ep: Mapping[str, Any]) -> Obj:
    """An endpoint as compared: the fields this controller writes, defaults filled in."""
    cond = ep.get("conditions") or {}
    ref = ep.get("targetRef") or {}
    return {"addresses": list(ep.get("addresses") or []),
            "conditions": {k: cond.get(k) for k in ("ready", "serving", "terminating")},
            "targetRef": {k: ref.get(k) or "" for k in ("kind", "namespace", "name", "uid")},
            "hostname": ep.get("hostname"), "nodeName": ep.get("nodeName"), "zone": ep.get("zone")}


def endpoints_equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return _normal(a) == _normal(b)


@dataclass
class PortGroup:
    """Endpoints that share one port list (one family of slices)."""

    ports: list[Obj]
    endpoints: dict[EndpointKey, Obj] = field(default_factory=dict)


def desired_groups(service: Obj, pods: Iterable[Obj], zones: Mapping[str, str], *,
                   nodes: Container[str] | None = None) -> dict[PortKey, PortGroup]:
    """The endpoints this Service should have, grouped by their resolved ports.

    With ``nodes`` (the known node names), a pod on a node that does not exist is left
    out, as kube does, unless the Service publishes not-ready addresses.
    """
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    groups: dict[PortKey, PortGroup] = {}
    for pod in sorted(pods, key=lambda p: (p.get("metadata") or {}).get("name", "")):
        if not should_be_in_endpoints(pod, include_terminating=True):
            continue
        if nodes is not None and not publish and (pod.get("spec") or {}).get("nodeName") not in nodes:
            continue
        ports = endpoint_ports(service, pod)  # a pod resolving none of them is still listed, portless
        ep = pod_to_endpoint(pod, service, zones)
        group = groups.setdefault(port_key(ports), PortGroup(ports=ports))
        group.endpoints.setdefault(endpoint_key(ep), ep)
    return groups


# -- slice planning -------------------------------------------------------------------------
@dataclass
class SlicePlan:
    """What to write: new slices (no name yet), changed slices (full objects), slices to delete."""

    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def slice_labels(service: Obj) -> dict[str, str]:
    md, spec = service.get("metadata") or {}, service.get("spec") or {}
    labels = {k: v for k, v in (md.get("labels") or {}).items()
              if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)}
    labels[SERVICE_NAME_LABEL] = md.get("name", "")
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    if spec.get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    return labels


def new_slice(service: Obj, ports: list[Obj] | None, endpoints: list[Obj]) -> Obj:
    md = service.get("metadata") or {}
    owner = {"apiVersion": "v1", "kind": "Service", "name": md.get("name", ""), "uid": md.get("uid", ""),
             "controller": True, "blockOwnerDeletion": True}
    obj: Obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"generateName": f"{md.get('name', '')}-", "namespace": md.get("namespace"),
                             "labels": slice_labels(service), "ownerReferences": [owner]},
                "addressType": "IPv4", "endpoints": endpoints}
    if ports is not None:
        obj["ports"] = copy.deepcopy(ports)
    return obj


def _owned_by(slice_: Obj, service: Obj) -> bool:
    uid = (service.get("metadata") or {}).get("uid")
    return any(r.get("kind") == "Service" and r.get("uid") == uid and r.get("controller")
               for r in (slice_.get("metadata") or {}).get("ownerReferences") or [])


def _is_placeholder(slice_: Obj) -> bool:
    return not slice_.get("endpoints") and not slice_.get("ports")


def plan_slices(service: Obj, existing: list[Obj], desired: Mapping[PortKey, PortGroup], *,
                max_per_slice: int = MAX_ENDPOINTS_PER_SLICE) -> SlicePlan:
    """Kube's reconciler: the fewest slice writes that make ``existing`` hold exactly ``desired``.

    Per port list: existing slices keep the endpoints still wanted (rewritten when they
    changed), slices being rewritten take new endpoints first (fullest first), then the
    remainder goes into the fullest untouched slice that can take it all, else into new
    slices. Slices of another address type or not owned by this Service are deleted. A
    slice about to be deleted is reused for one about to be created (an update instead
    of a delete and a create), and a Service without endpoints keeps one placeholder.
    """
    plan = SlicePlan()
    labels = slice_labels(service)
    by_key: dict[PortKey, list[Obj]] = {}
    for s in sorted(existing, key=lambda s: (s.get("metadata") or {}).get("name", "")):
        if s.get("addressType") != "IPv4" or not _owned_by(s, service):
            plan.delete.append(s)
        else:
            by_key.setdefault(port_key(s.get("ports")), []).append(s)
    for key, slices in by_key.items():
        if key not in desired:
            plan.delete.extend(slices)
    for key, group in sorted(desired.items()):
        remaining = dict(group.endpoints)
        updating: list[Obj] = []
        unchanged: list[Obj] = []
        for s in by_key.get(key, []):
            kept: list[Obj] = []
            changed = False
            for ep in s.get("endpoints") or []:
                want = remaining.pop(endpoint_key(ep), None)
                if want is None:
                    changed = True  # gone, or a duplicate of one kept already
                    continue
                if endpoints_equal(want, ep):
                    kept.append(ep)
                else:
                    kept.append(want)
                    changed = True
            relabel = ((s.get("metadata") or {}).get("labels") or {}) != labels
            if not kept:
                plan.delete.append(s)
            elif changed or relabel:
                updated = copy.deepcopy(s)
                updated["endpoints"] = kept
                updated["metadata"]["labels"] = dict(labels)
                updating.append(updated)
            else:
                unchanged.append(s)
        todo = [remaining[k] for k in sorted(remaining)]
        # 1. Slices being rewritten anyway take new endpoints first, the fullest first.
        for s in sorted(updating, key=lambda s: -len(s["endpoints"])):
            while todo and len(s["endpoints"]) < max_per_slice:
                s["endpoints"].append(todo.pop(0))
        # 2. The remainder into the fullest untouched slice that fits it all, else new slices.
        while todo:
            target: Obj | None = None
            if len(todo) < max_per_slice:
                fits = [s for s in unchanged if len(s.get("endpoints") or []) + len(todo) <= max_per_slice]
                if fits:
                    chosen = max(fits, key=lambda s: len(s.get("endpoints") or []))
                    unchanged.remove(chosen)
                    target = copy.deepcopy(chosen)
                    target["endpoints"] = list(target.get("endpoints") or [])
                    updating.append(target)
            if target is None:
                target = new_slice(service, group.ports, [])
                plan.create.append(target)
            while todo and len(target["endpoints"]) < max_per_slice:
                target["endpoints"].append(todo.pop(0))
        plan.update.extend(updating)
    # A Service without endpoints keeps one empty placeholder slice.
    if len(plan.delete) == len(existing) and not plan.create:
        if len(plan.delete) == 1 and _is_placeholder(plan.delete[0]) and _owned_by(plan.delete[0], service) \
                and plan.delete[0].get("addressType") == "IPv4" \
                and ((plan.delete[0].get("metadata") or {}).get("labels") or {}) == labels:
            plan.delete.clear()
        else:
            plan.create.append(new_slice(service, None, []))
    # Rewrite slices due for deletion rather than delete one and create another.
    i = 0
    while i < len(plan.delete) and plan.create:
        doomed = plan.delete[i]
        if doomed.get("addressType") == "IPv4" and _owned_by(doomed, service):
            reused = plan.create.pop()
            md = reused["metadata"]
            md.pop("generateName", None)
            md["name"] = doomed["metadata"]["name"]
            md["resourceVersion"] = doomed["metadata"].get("resourceVersion")
            plan.update.append(reused)
            del plan.delete[i]
        else:
            i += 1
    return plan


# -- trigger time ---------------------------------------------------------------------------
def _parse(ts: object) -> dt.datetime | None:
    if not isinstance(ts, str) or not ts:
        return None
    try:
        return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


def last_change_time(service: Obj, pods: Iterable[Obj]) -> str:
    """The newest change among the Service and its pods (creation, readiness, deletion), RFC 3339.

    kube's trigger-time tracker measures from the change that caused an endpoints write;
    this is the same clock for the usual case of one change per sync.
    """
    times = [_parse((service.get("metadata") or {}).get("creationTimestamp"))]
    for pod in pods:
        md = pod.get("metadata") or {}
        times += [_parse(md.get("creationTimestamp")), _parse(md.get("deletionTimestamp"))]
        times += [_parse(c.get("lastTransitionTime")) for c in (pod.get("status") or {}).get("conditions") or []
                  if c.get("type") == "Ready"]
    known = [t for t in times if t is not None]
    return max(known).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if known else ""


# -- the controller -------------------------------------------------------------------------
def selected_pods(service: Obj, pods: Iterable[Obj]) -> list[Obj]:
    selector = (service.get("spec") or {}).get("selector") or {}
    return [p for p in pods if all(((p.get("metadata") or {}).get("labels") or {}).get(k) == v
                                   for k, v in selector.items())]


def manages_endpoints(service: Obj) -> bool:
    """Only Services with a selector, and not ExternalName ones, get controller-made endpoints."""
    spec = service.get("spec") or {}
    return bool(spec.get("selector")) and spec.get("type") != "ExternalName"


class ServicePodIndex:
    """Maps pod and node events to the Services they affect (shared with the Endpoints controller)."""

    def __init__(self, services: Informer) -> None:
        self.services = services

    def services_for(self, pod: Obj | None) -> set[str]:
        if pod is None:
            return set()
        md = pod.get("metadata") or {}
        labels = md.get("labels") or {}
        return {key_of(s) for s in self.services.lister.list(md.get("namespace"))
                if (s.get("spec") or {}).get("selector")
                and LabelSelector.from_labels((s.get("spec") or {})["selector"]).matches(labels)}


class EndpointSliceController(Controller):
    NAME: ClassVar[str] = "endpointslice-controller"

    def __init__(self, client: Client, *, max_endpoints_per_slice: int = MAX_ENDPOINTS_PER_SLICE) -> None:
        super().__init__()
        self.client = client
        self.max_endpoints_per_slice = max_endpoints_per_slice
        self.services = self.watch(Informer(client, SERVICES))
        self.index = ServicePodIndex(self.services)
        self.pods = Informer(client, PODS)
        self.pods.add_handler(self._on_pod)
        self.nodes = Informer(client, NODES)
        self.nodes.add_handler(self._on_node)
        self.slices = self.watch(Informer(client, ENDPOINTSLICES, label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}"),
                                 key_for=self._service_of_slice)
        self.informers += [self.pods, self.nodes]
        self._expected: dict[str, dict[str, int | None]] = {}
        """service key → slice name → generation we wrote (None: we deleted it)."""

    def _on_pod(self, _event: str, old: Obj | None, new: Obj | None) -> None:
        for key in self.index.services_for(old) | self.index.services_for(new):
            self.queue.add(key)

    def _on_node(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """A node's zone moves its endpoints' ``zone``; a node coming or going includes or drops its pods."""
        def zone(n: Obj | None) -> str | None:
            labels: dict[str, str] = ((n or {}).get("metadata") or {}).get("labels") or {}
            return labels.get(ZONE_LABEL)

        if event == "MODIFIED" and zone(old) == zone(new):
            return
        name = ((new or old or {}).get("metadata") or {}).get("name")
        affected: set[str] = set()
        for pod in self.pods.lister.list():
            if (pod.get("spec") or {}).get("nodeName") == name:
                affected |= self.index.services_for(pod)
        for key in affected:
            self.queue.add(key)

    @staticmethod
    def _service_of_slice(slice_: Obj) -> list[str]:
        md = slice_.get("metadata") or {}
        name = (md.get("labels") or {}).get(SERVICE_NAME_LABEL)
        return [f"{md.get('namespace')}/{name}"] if name else []

    def zones(self) -> dict[str, str]:
        return {n["metadata"]["name"]: z for n in self.nodes.lister.list()
                if (z := ((n.get("metadata") or {}).get("labels") or {}).get(ZONE_LABEL))}

    def _cache_is_stale(self, key: str, namespace: str) -> bool:
        expected = self._expected.get(key)
        if not expected:
            return False
        for name, generation in expected.items():
            cached = self.slices.lister.get(f"{namespace}/{name}")
            if generation is None:
                if cached is not None:
                    return True
            elif cached is None or int((cached.get("metadata") or {}).get("generation") or 0) < generation:
                return True
        self._expected.pop(key, None)
        return False

    def managed_slices(self, namespace: str, name: str) -> list[Obj]:
        return [s for s in self.slices.lister.list(namespace)
                if ((s.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL) == name]

    async def reconcile(self, key: str) -> Result:
        ns, name = split_key(key)
        assert ns is not None
        service = self.services.lister.get(key)
        if service is None or not manages_endpoints(service):
            self._expected.pop(key, None)
            return Result()  # deleted: the garbage collector removes our slices; no selector: the user's
        if self._cache_is_stale(key, ns):
            return Result(requeue_after=STALE_RETRY)
        pods = selected_pods(service, self.pods.lister.list(ns))
        nodes = {n["metadata"]["name"] for n in self.nodes.lister.list()}
        desired = desired_groups(service, pods, self.zones(), nodes=nodes)
        # Pods on nodes not (yet) known are left out for now and looked at again shortly.
        again = Result(requeue_after=NODE_RETRY) if any(
            (p.get("spec") or {}).get("nodeName") not in nodes for p in pods
            if should_be_in_endpoints(p, include_terminating=True)) else Result()
        plan = plan_slices(service, self.managed_slices(ns, name), desired,
                           max_per_slice=self.max_endpoints_per_slice)
        if (service.get("metadata") or {}).get("deletionTimestamp"):
            plan.create.clear()  # the garbage collector is removing slices: do not race it with new ones
        if plan.empty():
            return again
        trigger = last_change_time(service, pods)
        expected: dict[str, int | None] = {}
        try:
            for s in plan.create:
                if trigger:
                    s["metadata"].setdefault("annotations", {})[TRIGGER_TIME_ANNOTATION] = trigger
                try:
                    created = await self.client.create(ENDPOINTSLICES, s, ns)
                except Forbidden:
                    return Result()  # the namespace is terminating: nothing more to publish there
                expected[created["metadata"]["name"]] = int(created["metadata"].get("generation") or 1)
            for s in plan.update:
                if trigger:
                    s["metadata"].setdefault("annotations", {})[TRIGGER_TIME_ANNOTATION] = trigger
                try:
                    written = await self.client.replace(ENDPOINTSLICES, s, ns)
                except NotFound:
                    continue
                expected[written["metadata"]["name"]] = int(written["metadata"].get("generation") or 1)
            for s in plan.delete:
                smd = s["metadata"]
                try:
                    await self.client.delete(ENDPOINTSLICES, smd["name"], ns, uid=smd.get("uid"))
                except (NotFound, Conflict):
                    pass
                expected[smd["name"]] = None
        finally:
            if expected:
                self._expected.setdefault(key, {}).update(expected)
        logger.debug("%s: %s: %d created, %d updated, %d deleted", self.NAME, key, len(plan.create),
                     len(plan.update), len(plan.delete))
        return again
