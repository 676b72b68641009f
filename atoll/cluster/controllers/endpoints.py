"""Endpoints controller: the legacy core/v1 Endpoints of each selector Service.

Still read by ``kubectl describe service``, older proxies and many tools. Kube's rules
(pkg/controller/endpoint): one Endpoints object named after the Service; pods that
match the selector, have an IP and are not terminal are listed, terminating pods only
when the Service publishes not-ready addresses; ready pods (or every pod, with
``publishNotReadyAddresses``) go to ``addresses``, the others to ``notReadyAddresses``;
a pod is listed under each Service port it can resolve, and the subsets are repacked
so addresses with the same ports share a subset. Over 1000 addresses are truncated
and annotated ``over-capacity``. The object is written only when it would change, with
``endpoints.kubernetes.io/last-change-trigger-time``. Endpoints carry no
ownerReference in kube: this controller deletes them when their Service goes (and, at
start, those left behind by Services deleted while it was not running), and recreates
them when someone deletes them while the Service stays.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from atoll.api.errors import Forbidden, NotFound
from atoll.client import Client, Resource
from atoll.cluster.controllers.endpointslice import (
    HEADLESS_LABEL,
    PODS,
    SERVICES,
    TRIGGER_TIME_ANNOTATION,
    ServicePodIndex,
    find_port,
    is_pod_ready,
    last_change_time,
    manages_endpoints,
    pod_ipv4s,
    selected_pods,
    should_be_in_endpoints,
    should_set_hostname,
)
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.informing import Informer, key_of, split_key

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
ENDPOINTS = Resource("v1", "endpoints", True, "Endpoints")
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"
MAX_CAPACITY = 1000
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"

PortTuple = tuple[str, int, str, str]


def _port_tuple(p: Mapping[str, Any]) -> PortTuple:
    return (str(p.get("name") or ""), int(p.get("port") or 0), str(p.get("protocol") or "TCP"),
            str(p.get("appProtocol") or ""))


def _port_obj(t: PortTuple) -> Obj:
    port: Obj = {"name": t[0], "port": t[1], "protocol": t[2]}
    if not t[0]:
        del port["name"]
    if t[3]:
        port["appProtocol"] = t[3]
    return port


def _address_sort_key(a: Mapping[str, Any]) -> tuple[int, str]:
    try:
        return (int(ipaddress.ip_address(str(a.get("ip")))), str((a.get("targetRef") or {}).get("uid") or ""))
    except ValueError:
        return (0, str(a.get("ip")))


def endpoint_address(pod: Obj, service: Obj) -> Obj:
    md, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    addr: Obj = {"ip": pod_ipv4s(pod)[0],
                 "targetRef": {"kind": "Pod", "namespace": md.get("namespace", ""), "name": md.get("name", ""),
                               "uid": md.get("uid", "")}}
    if spec.get("nodeName"):
        addr["nodeName"] = spec["nodeName"]
    if should_set_hostname(pod, service):
        addr["hostname"] = spec["hostname"]
    return addr


def repack(entries: Iterable[tuple[Obj, PortTuple | None, bool]]) -> list[Obj]:
    """kube's RepackSubsets: (address, port or None, ready) triples into subsets grouped by port set."""
    ports_of: dict[tuple[str, bool], set[PortTuple]] = {}
    addresses: dict[tuple[str, bool], Obj] = {}
    for addr, port, ready in entries:
        ident = (f"{addr['ip']}/{(addr.get('targetRef') or {}).get('uid', '')}", ready)
        addresses[ident] = addr
        bucket = ports_of.setdefault(ident, set())
        if port is not None:
            bucket.add(port)
    groups: dict[tuple[PortTuple, ...], tuple[list[Obj], list[Obj]]] = {}
    for ident, ports in ports_of.items():
        ready_list, not_ready_list = groups.setdefault(tuple(sorted(ports)), ([], []))
        (ready_list if ident[1] else not_ready_list).append(addresses[ident])
    subsets = []
    for ports_key in sorted(groups):
        ready_list, not_ready_list = groups[ports_key]
        subset: Obj = {}
        if ready_list:
            subset["addresses"] = sorted(ready_list, key=_address_sort_key)
        if not_ready_list:
            subset["notReadyAddresses"] = sorted(not_ready_list, key=_address_sort_key)
        if ports_key:
            subset["ports"] = [_port_obj(p) for p in ports_key]
        subsets.append(subset)
    return subsets


def desired_subsets(service: Obj, pods: Iterable[Obj]) -> list[Obj]:
    spec = service.get("spec") or {}
    tolerate_unready = bool(spec.get("publishNotReadyAddresses"))
    entries: list[tuple[Obj, PortTuple | None, bool]] = []
    for pod in pods:
        if not should_be_in_endpoints(pod, include_terminating=tolerate_unready):
            continue
        addr = endpoint_address(pod, service)
        ready = tolerate_unready or is_pod_ready(pod)
        service_ports = spec.get("ports") or []
        if not service_ports:
            if spec.get("clusterIP") == "None":
                entries.append((addr, None, ready))
            continue
        for sp in service_ports:
            number = find_port(pod, sp)
            if number is None:
                continue
            entries.append((addr, (str(sp.get("name") or ""), number, str(sp.get("protocol") or "TCP"),
                                   str(sp.get("appProtocol") or "")), ready))
    return repack(entries)


def truncate(subsets: list[Obj], limit: int = MAX_CAPACITY) -> tuple[list[Obj], bool]:
    """kube's truncateEndpoints: at most ``limit`` addresses, ready ones first, cut in proportion per subset."""
    total_ready = sum(len(s.get("addresses") or []) for s in subsets)
    total_not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    if total_ready + total_not_ready <= limit:
        return subsets, False
    cut_ready = total_ready > limit
    room = limit if cut_ready else limit - total_ready
    total = total_ready if cut_ready else total_not_ready
    left = room
    out: list[Obj] = []
    for s in subsets:
        s = dict(s)
        field_name = "addresses" if cut_ready else "notReadyAddresses"
        listed = list(s.get(field_name) or [])
        take = min(math.ceil(len(listed) / total * room), left) if total else 0
        s[field_name] = listed[:take]
        left -= len(s[field_name])
        if cut_ready:
            s.pop("notReadyAddresses", None)
        for name in ("addresses", "notReadyAddresses"):
            if name in s and not s[name]:
                del s[name]
        out.append(s)
    return out, True


def _normal_subsets(subsets: list[Obj] | None) -> list[Obj]:
    out = []
    for s in subsets or []:
        norm: Obj = {}
        for field_name in ("addresses", "notReadyAddresses"):
            norm[field_name] = sorted(
                ({"ip": a.get("ip"), "nodeName": a.get("nodeName"), "hostname": a.get("hostname"),
                  "targetRef": {k: (a.get("targetRef") or {}).get(k) or "" for k in ("kind", "namespace", "name",
                                                                                     "uid")}}
                 for a in s.get(field_name) or []), key=_address_sort_key)
        norm["ports"] = sorted(_port_tuple(p) for p in s.get("ports") or [])
        out.append(norm)
    return sorted(out, key=lambda n: n["ports"])


def subsets_equal(a: list[Obj] | None, b: list[Obj] | None) -> bool:
    return _normal_subsets(a) == _normal_subsets(b)


def endpoints_labels(service: Obj) -> dict[str, str]:
    labels = dict((service.get("metadata") or {}).get("labels") or {})
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    return labels


class EndpointsController(Controller):
    NAME: ClassVar[str] = "endpoint-controller"

    def __init__(self, client: Client, *, max_capacity: int = MAX_CAPACITY) -> None:
        super().__init__()
        self.client = client
        self.max_capacity = max_capacity
        self.services = self.watch(Informer(client, SERVICES))
        self.index = ServicePodIndex(self.services)
        self.pods = Informer(client, PODS)
        self.pods.add_handler(self._on_pod)
        self.endpoints = Informer(client, ENDPOINTS)
        self.endpoints.add_handler(self._on_endpoints)
        self.informers += [self.pods, self.endpoints]

    def _on_pod(self, _event: str, old: Obj | None, new: Obj | None) -> None:
        for key in self.index.services_for(old) | self.index.services_for(new):
            self.queue.add(key)

    def _on_endpoints(self, event: str, old: Obj | None, new: Obj | None) -> None:
        # Deleted by someone else: recreate (if the Service still wants them).
        if event == "DELETED" and old is not None and self.services.lister.get(key_of(old)) is not None:
            self.queue.add(key_of(old))
        # At start, every Endpoints is looked at once (kube's checkLeftoverEndpoints): those whose
        # Service went while no controller ran are deleted. Leader-election records are not Services'.
        elif event == "ADDED" and new is not None and not self.endpoints.synced.is_set() and \
                LEADER_ANNOTATION not in ((new.get("metadata") or {}).get("annotations") or {}):
            self.queue.add(key_of(new))

    async def reconcile(self, key: str) -> Result:
        ns, name = split_key(key)
        assert ns is not None
        service = self.services.lister.get(key)
        if service is None:
            if self.endpoints.lister.get(key) is not None:
                try:
                    await self.client.delete(ENDPOINTS, name, ns)
                except NotFound:
                    pass
            return Result()
        if not manages_endpoints(service):
            return Result()
        pods = selected_pods(service, self.pods.lister.list(ns))
        subsets, truncated = truncate(desired_subsets(service, pods), self.max_capacity)
        labels = endpoints_labels(service)
        current = self.endpoints.lister.get(key)
        if current is not None:
            annotations = (current.get("metadata") or {}).get("annotations") or {}
            if (subsets_equal(current.get("subsets"), subsets)
                    and ((current.get("metadata") or {}).get("labels") or {}) == labels
                    and (OVER_CAPACITY_ANNOTATION in annotations) == truncated):
                return Result()
        trigger = last_change_time(service, pods)
        md: Obj = {"name": name, "namespace": ns, "labels": labels}
        annotations = dict(((current or {}).get("metadata") or {}).get("annotations") or {})
        if trigger:
            annotations[TRIGGER_TIME_ANNOTATION] = trigger
        if truncated:
            annotations[OVER_CAPACITY_ANNOTATION] = "truncated"
        else:
            annotations.pop(OVER_CAPACITY_ANNOTATION, None)
        if annotations:
            md["annotations"] = annotations
        body: Obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": md, "subsets": subsets}
        if current is None:
            try:
                await self.client.create(ENDPOINTS, body, ns)  # AlreadyExists: a stale cache; retried
            except Forbidden:
                return Result()  # the namespace is terminating: nothing more to publish there
        else:
            md["resourceVersion"] = current["metadata"].get("resourceVersion")
            try:
                await self.client.replace(ENDPOINTS, body, ns)
            except NotFound:
                pass  # deleted meanwhile: the informer's DELETED event brings us back to recreate it
        return Result()
