"""The multi-cloud topology file: which clusters exist, where, and with which nodes.

A topology is YAML (or JSON)::

    apiVersion: atoll.dev/v1alpha1
    kind: Topology
    clusters:
      - name: aws-eu-west-1          # DNS label; also the kubeconfig context
        provider: aws                # free text: aws, gcp, azure, onprem...
        region: eu-west-1
        zones: [eu-west-1a, eu-west-1b]
        runtime: process             # process (real child processes) or simulated (KWOK-style)
        podCIDR: 127.16.0.0/16       # optional: loopback range for pod IPs (one /24 per node)
        serviceCIDR: 127.80.0.0/16   # optional: loopback range for ClusterIPs
        labels: {tier: prod}         # optional: extra labels for the cluster and its nodes
        nodes:
          - count: 2                 # optional, default 1; names are <cluster>-<pool>-<i>
            pool: general            # optional, default "node"
            cpu: "4"
            memory: 8Gi
            pods: 110
            zone: eu-west-1a         # optional: default spreads nodes over the cluster's zones
            costPerHour: 0.192       # optional, in the provider's currency (USD)
            labels: {disk: ssd}
            taints:
              - {key: dedicated, value: gpu, effect: NoSchedule}

Ranges not given are assigned by position: cluster *i* gets pods ``127.(16+i).0.0/16``
and services ``127.(80+i).0.0/16``, so several clusters on one machine never share an
address. Loading validates everything and reports the first problem with its path
(``clusters[1].nodes[0].memory: ...``) as a :class:`TopologyError`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

API_VERSION = "atoll.dev/v1alpha1"
RUNTIMES = ("process", "simulated")
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
FIRST_POD_OCTET = 16
FIRST_SERVICE_OCTET = 80
MAX_CLUSTERS = FIRST_SERVICE_OCTET - FIRST_POD_OCTET
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?)(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


class TopologyError(ValueError):
    """A topology that cannot be used; the message names the offending field."""


@dataclass(frozen=True)
class NodeTemplate:
    name: str
    cpu: str = "4"
    memory: str = "16Gi"
    pods: int = 110
    zone: str = ""
    cost_per_hour: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class ClusterTopology:
    name: str
    provider: str = "local"
    region: str = "local"
    zones: tuple[str, ...] = ()
    runtime: str = "process"
    pod_cidr: str = ""
    service_cidr: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    nodes: tuple[NodeTemplate, ...] = ()

    def node_labels(self, node: NodeTemplate) -> dict[str, str]:
        """The well-known topology labels kube clouds set, plus the cluster's and the node's own."""
        labels = {"topology.kubernetes.io/region": self.region, "atoll.dev/provider": self.provider,
                  "atoll.dev/cluster": self.name, "node.kubernetes.io/instance-type": f"{node.cpu}cpu-{node.memory}"}
        if node.zone:
            labels["topology.kubernetes.io/zone"] = node.zone
        return {**labels, **self.labels, **node.labels}

    def node_cidr(self, index: int) -> str:
        """The /24 of the cluster's pod range that node ``index`` hands its pods."""
        net = ipaddress.ip_network(self.pod_cidr)
        subnets = list(net.subnets(new_prefix=24)) if net.prefixlen <= 24 else [net]
        if index >= len(subnets):
            raise TopologyError(f"cluster {self.name}: podCIDR {self.pod_cidr} has room for {len(subnets)} nodes")
        return str(subnets[index])

    @property
    def cost_per_hour(self) -> float:
        return sum(n.cost_per_hour for n in self.nodes)


@dataclass(frozen=True)
class Topology:
    clusters: tuple[ClusterTopology, ...]

    def cluster(self, name: str) -> ClusterTopology:
        for c in self.clusters:
            if c.name == name:
                return c
        raise TopologyError(f"no cluster named {name!r} in the topology (have: "
                            f"{', '.join(c.name for c in self.clusters) or 'none'})")


def load(path: Path | str) -> Topology:
    """Read and validate a topology file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise TopologyError(f"cannot read topology {p}: {exc.strerror or exc}") from None
    return parse(text, source=str(p))


DEFAULT_RESOURCE = "default.yaml"
"""The topology ``atoll up`` runs without ``--topology`` (package data of :mod:`atoll.topologies`)."""


def default_text() -> str:
    """The text of the shipped default topology (so ``atoll up`` can copy it into its state directory)."""
    from importlib import resources

    return resources.files("atoll.topologies").joinpath(DEFAULT_RESOURCE).read_text()


def default() -> Topology:
    """The shipped multi-cloud: three clusters on three providers (see ``atoll/topologies/default.yaml``)."""
    return parse(default_text(), source=f"atoll/topologies/{DEFAULT_RESOURCE}")


def parse(text: str, *, source: str = "topology") -> Topology:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise TopologyError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return from_dict(doc, source=source)


def from_dict(doc: Any, *, source: str = "topology") -> Topology:
    if not isinstance(doc, dict):
        raise TopologyError(f"{source}: expected a mapping with 'clusters', got {type(doc).__name__}")
    _known(doc, {"apiVersion", "kind", "clusters"}, source)
    if doc.get("apiVersion", API_VERSION) != API_VERSION:
        raise TopologyError(f"{source}: apiVersion must be {API_VERSION}, got {doc.get('apiVersion')!r}")
    if doc.get("kind", "Topology") != "Topology":
        raise TopologyError(f"{source}: kind must be Topology, got {doc.get('kind')!r}")
    raw = doc.get("clusters")
    if not isinstance(raw, list) or not raw:
        raise TopologyError(f"{source}: clusters: at least one cluster is required")
    if len(raw) > MAX_CLUSTERS:
        raise TopologyError(f"{source}: clusters: at most {MAX_CLUSTERS} clusters fit the loopback ranges")
    clusters = tuple(_cluster(c, i, f"{source}: clusters[{i}]") for i, c in enumerate(raw))
    _unique([c.name for c in clusters], f"{source}: clusters", "cluster name")
    _disjoint(clusters, source)
    return Topology(clusters)


def single(name: str, *, nodes: int = 1, runtime: str = "process", cpu: str = "4", memory: str = "16Gi",
           pods: int = 110, index: int = 0, pod_cidr: str = "", service_cidr: str = "") -> ClusterTopology:
    """A one-cluster topology for ``atoll cluster run --nodes N`` without a file."""
    doc: dict[str, Any] = {"name": name, "runtime": runtime, "zones": [f"{name}-a"],
                           "nodes": [{"count": nodes, "cpu": cpu, "memory": memory, "pods": pods}]}
    if pod_cidr:
        doc["podCIDR"] = pod_cidr
    if service_cidr:
        doc["serviceCIDR"] = service_cidr
    return _cluster(doc, index, "cluster")


def _cluster(raw: Any, index: int, where: str) -> ClusterTopology:
    if not isinstance(raw, dict):
        raise TopologyError(f"{where}: expected a mapping")
    _known(raw, {"name", "provider", "region", "zones", "runtime", "podCIDR", "serviceCIDR", "labels", "nodes"},
           where)
    name = _dns_label(raw.get("name"), f"{where}.name")
    runtime = raw.get("runtime", "process")
    if runtime not in RUNTIMES:
        raise TopologyError(f"{where}.runtime: must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    zones = raw.get("zones") or []
    if not isinstance(zones, list) or not all(isinstance(z, str) and z for z in zones):
        raise TopologyError(f"{where}.zones: expected a list of zone names")
    pod_cidr = _cidr(raw.get("podCIDR") or f"127.{FIRST_POD_OCTET + index}.0.0/16", f"{where}.podCIDR")
    service_cidr = _cidr(raw.get("serviceCIDR") or f"127.{FIRST_SERVICE_OCTET + index}.0.0/16",
                         f"{where}.serviceCIDR")
    labels = _labels(raw.get("labels"), f"{where}.labels")
    pools = raw.get("nodes")
    if not isinstance(pools, list) or not pools:
        raise TopologyError(f"{where}.nodes: at least one node is required")
    nodes: list[NodeTemplate] = []
    for i, pool in enumerate(pools):
        nodes.extend(_pool(pool, name, tuple(zones), len(nodes), f"{where}.nodes[{i}]"))
    _unique([n.name for n in nodes], f"{where}.nodes", "node name")
    return ClusterTopology(name=name, provider=str(raw.get("provider", "local")),
                           region=str(raw.get("region", "local")), zones=tuple(zones), runtime=runtime,
                           pod_cidr=pod_cidr, service_cidr=service_cidr, labels=labels, nodes=tuple(nodes))


def _pool(raw: Any, cluster: str, zones: tuple[str, ...], offset: int, where: str) -> list[NodeTemplate]:
    if not isinstance(raw, dict):
        raise TopologyError(f"{where}: expected a mapping")
    _known(raw, {"count", "pool", "name", "cpu", "memory", "pods", "zone", "costPerHour", "labels", "taints"},
           where)
    count = raw.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 10000:
        raise TopologyError(f"{where}.count: must be a whole number from 1 to 10000, got {count!r}")
    if "name" in raw and count != 1:
        raise TopologyError(f"{where}.name: a named node needs count 1 (use 'pool' to name a group)")
    pool = _dns_label(raw.get("pool", "node"), f"{where}.pool")
    cpu = _quantity(raw.get("cpu", "4"), f"{where}.cpu")
    memory = _quantity(raw.get("memory", "16Gi"), f"{where}.memory")
    pods = raw.get("pods", 110)
    if not isinstance(pods, int) or isinstance(pods, bool) or not 1 <= pods <= 254:
        raise TopologyError(f"{where}.pods: must be a whole number from 1 to 254 (one /24 per node), got {pods!r}")
    cost = raw.get("costPerHour", 0.0)
    if not isinstance(cost, int | float) or isinstance(cost, bool) or cost < 0:
        raise TopologyError(f"{where}.costPerHour: must be a number >= 0, got {cost!r}")
    zone = raw.get("zone", "")
    if zone and zones and zone not in zones:
        raise TopologyError(f"{where}.zone: {zone!r} is not one of the cluster's zones ({', '.join(zones)})")
    labels = _labels(raw.get("labels"), f"{where}.labels")
    taints = _taints(raw.get("taints"), f"{where}.taints")
    out = []
    for i in range(count):
        name = _dns_label(raw["name"], f"{where}.name") if "name" in raw else f"{cluster}-{pool}-{i}"
        node_zone = zone or (zones[(offset + i) % len(zones)] if zones else "")
        out.append(NodeTemplate(name=name, cpu=cpu, memory=memory, pods=pods, zone=node_zone,
                                cost_per_hour=float(cost), labels=labels, taints=taints))
    return out


def _known(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise TopologyError(f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _dns_label(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > 63 or not _DNS_LABEL.match(value):
        raise TopologyError(f"{where}: must be a DNS label (lower-case letters, digits and '-', at most 63), "
                            f"got {value!r}")
    return value


def _quantity(value: Any, where: str) -> str:
    text = str(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else ""
    if not _QUANTITY.match(text):
        raise TopologyError(f"{where}: must be a Kubernetes quantity such as 4, 500m or 16Gi, got {value!r}")
    return text


def _cidr(value: Any, where: str) -> str:
    try:
        net = ipaddress.ip_network(str(value))
    except ValueError:
        raise TopologyError(f"{where}: not a network such as 127.16.0.0/16: {value!r}") from None
    if not net.subnet_of(ipaddress.ip_network("127.0.0.0/8")):  # type: ignore[arg-type]
        raise TopologyError(f"{where}: must be inside the loopback range 127.0.0.0/8, got {value}")
    return str(net)


def _labels(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TopologyError(f"{where}: expected a mapping of label keys to values")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not _LABEL_KEY.match(k):
            raise TopologyError(f"{where}: {k!r} is not a valid label key")
        text = str(v) if isinstance(v, str | int | float) and not isinstance(v, bool) else None
        if text is None or len(text) > 63 or not _LABEL_VALUE.match(text):
            raise TopologyError(f"{where}.{k}: {v!r} is not a valid label value")
        out[k] = text
    return out


def _taints(value: Any, where: str) -> tuple[dict[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TopologyError(f"{where}: expected a list of taints")
    out = []
    for i, t in enumerate(value):
        if not isinstance(t, dict) or not isinstance(t.get("key"), str) or not _LABEL_KEY.match(t["key"]):
            raise TopologyError(f"{where}[{i}].key: a taint needs a valid key")
        if t.get("effect") not in EFFECTS:
            raise TopologyError(f"{where}[{i}].effect: must be one of {', '.join(EFFECTS)}, got {t.get('effect')!r}")
        _known(t, {"key", "value", "effect"}, f"{where}[{i}]")
        taint = {"key": t["key"], "effect": t["effect"]}
        if t.get("value") not in (None, ""):
            taint["value"] = str(t["value"])
        out.append(taint)
    return tuple(out)


def _unique(names: list[str], where: str, what: str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise TopologyError(f"{where}: {what} {n!r} is used twice")
        seen.add(n)


def _disjoint(clusters: tuple[ClusterTopology, ...], source: str) -> None:
    ranges = [(c.name, f, ipaddress.ip_network(cidr)) for c in clusters
              for f, cidr in (("podCIDR", c.pod_cidr), ("serviceCIDR", c.service_cidr))]
    for i, (name_a, field_a, a) in enumerate(ranges):
        for name_b, field_b, b in ranges[i + 1:]:
            if a.overlaps(b):
                raise TopologyError(f"{source}: {name_a}.{field_a} {a} overlaps {name_b}.{field_b} {b}")
