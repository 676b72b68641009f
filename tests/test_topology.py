"""The topology file: defaults, derived ranges and labels, and one clear error per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll import topology
from atoll.topology import TopologyError

GOOD = """
apiVersion: atoll.dev/v1alpha1
kind: Topology
clusters:
  - name: aws-eu-west-1
    provider: aws
    region: eu-west-1
    zones: [eu-west-1a, eu-west-1b]
    nodes:
      - count: 3
        cpu: "4"
        memory: 8Gi
        costPerHour: 0.2
        taints: [{key: dedicated, value: batch, effect: NoSchedule}]
  - name: onprem-dc1
    runtime: simulated
    podCIDR: 127.40.0.0/16
    nodes:
      - name: rack1
        labels: {disk: ssd}
"""


def test_defaults_ranges_zones_and_labels() -> None:
    topo = topology.parse(GOOD)
    aws, onprem = topo.clusters
    assert [n.name for n in aws.nodes] == ["aws-eu-west-1-node-0", "aws-eu-west-1-node-1", "aws-eu-west-1-node-2"]
    assert [n.zone for n in aws.nodes] == ["eu-west-1a", "eu-west-1b", "eu-west-1a"]
    assert aws.pod_cidr == "127.16.0.0/16" and aws.service_cidr == "127.80.0.0/16"
    assert onprem.pod_cidr == "127.40.0.0/16" and onprem.service_cidr == "127.81.0.0/16"
    assert aws.runtime == "process" and onprem.runtime == "simulated"
    assert aws.node_cidr(2) == "127.16.2.0/24"
    assert aws.cost_per_hour == pytest.approx(0.6)
    labels = aws.node_labels(aws.nodes[1])
    assert labels["topology.kubernetes.io/region"] == "eu-west-1"
    assert labels["topology.kubernetes.io/zone"] == "eu-west-1b"
    assert labels["atoll.dev/provider"] == "aws"
    assert aws.nodes[0].taints == ({"key": "dedicated", "value": "batch", "effect": "NoSchedule"},)
    assert onprem.node_labels(onprem.nodes[0])["disk"] == "ssd"
    assert topo.cluster("onprem-dc1") is onprem


def test_load_reads_a_file(tmp_path: Path) -> None:
    f = tmp_path / "t.yaml"
    f.write_text(GOOD)
    assert len(topology.load(f).clusters) == 2
    with pytest.raises(TopologyError, match="cannot read topology"):
        topology.load(tmp_path / "missing.yaml")


def test_single_cluster_for_the_command_line() -> None:
    c = topology.single("dev", nodes=2, runtime="simulated")
    assert [n.name for n in c.nodes] == ["dev-node-0", "dev-node-1"] and c.runtime == "simulated"


@pytest.mark.parametrize(("text", "message"), [
    ("clusters: [", "not valid YAML at line 1"),
    ("- a", "expected a mapping with 'clusters'"),
    ("clusters: []", "at least one cluster is required"),
    ("apiVersion: v2\nclusters: [{name: a, nodes: [{}]}]", "apiVersion must be atoll.dev/v1alpha1"),
    ("clusters: [{name: A_b, nodes: [{}]}]", r"clusters\[0\].name: must be a DNS label"),
    ("clusters: [{name: a, nodes: []}]", r"clusters\[0\].nodes: at least one node"),
    ("clusters: [{name: a, runtime: docker, nodes: [{}]}]", "runtime: must be one of process, simulated"),
    ("clusters: [{name: a, nodes: [{memory: lots}]}]", r"nodes\[0\].memory: must be a Kubernetes quantity"),
    ("clusters: [{name: a, nodes: [{count: 0}]}]", r"count: must be a whole number from 1"),
    ("clusters: [{name: a, nodes: [{pods: 300}]}]", r"pods: must be a whole number from 1 to 254"),
    ("clusters: [{name: a, nodes: [{costPerHour: -1}]}]", "costPerHour: must be a number >= 0"),
    ("clusters: [{name: a, zones: [z1], nodes: [{zone: z2}]}]", "'z2' is not one of the cluster's zones"),
    ("clusters: [{name: a, nodes: [{taints: [{key: k, effect: Sometimes}]}]}]", "effect: must be one of"),
    ("clusters: [{name: a, nodes: [{labels: {'a b': x}}]}]", "is not a valid label key"),
    ("clusters: [{name: a, nodes: [{cpus: 4}]}]", "unknown field 'cpus'"),
    ("clusters: [{name: a, podCIDR: 10.0.0.0/8, nodes: [{}]}]", "must be inside the loopback range"),
    ("clusters: [{name: a, podCIDR: nonsense, nodes: [{}]}]", "not a network"),
    ("clusters: [{name: a, nodes: [{}]}, {name: a, nodes: [{}]}]", "cluster name 'a' is used twice"),
    ("clusters: [{name: a, nodes: [{name: n}, {name: n}]}]", "node name 'n' is used twice"),
    ("clusters: [{name: a, nodes: [{name: n, count: 2}]}]", "a named node needs count 1"),
    ("clusters: [{name: a, nodes: [{}]}, {name: b, podCIDR: 127.16.0.0/12, nodes: [{}]}]", "overlaps"),
])
def test_mistakes_are_reported_with_their_path(text: str, message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        topology.parse(text)


def test_unknown_cluster_name_lists_the_known_ones() -> None:
    with pytest.raises(TopologyError, match="have: aws-eu-west-1, onprem-dc1"):
        topology.parse(GOOD).cluster("gcp")


def test_the_shipped_default_is_three_clouds_with_costs() -> None:
    default = topology.default()
    assert [(c.name, c.provider, c.region) for c in default.clusters] == [
        ("aws-eu-west-1", "aws", "eu-west-1"), ("gcp-us-central1", "gcp", "us-central1"),
        ("onprem-dc1", "onprem", "dc1")]
    for c in default.clusters:
        assert c.runtime == "process" and len(c.nodes) == 2 and c.cost_per_hour > 0
    # The text is the package data itself, so `atoll up` can copy it into a state directory verbatim.
    assert topology.parse(topology.default_text()) == default
