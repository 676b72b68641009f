"""Scheduler plugins, one module each, and the default profile."""

from __future__ import annotations

import random

from atoll.cluster.scheduler.framework import FilterPlugin, Framework, ScorePlugin
from atoll.cluster.scheduler.plugins.balanced_allocation import BalancedAllocation
from atoll.cluster.scheduler.plugins.node_affinity import NodeAffinity
from atoll.cluster.scheduler.plugins.node_name import NodeName
from atoll.cluster.scheduler.plugins.node_resources_fit import NodeResourcesFit
from atoll.cluster.scheduler.plugins.node_unschedulable import NodeUnschedulable
from atoll.cluster.scheduler.plugins.pod_topology_spread import PodTopologySpread
from atoll.cluster.scheduler.plugins.taint_toleration import TaintToleration

REGISTRY: dict[str, type] = {p.NAME: p for p in (
    NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, NodeResourcesFit, PodTopologySpread,
    BalancedAllocation)}


def default_framework(rng: random.Random | None = None) -> Framework:
    """kube-scheduler's default filter order and score weights (for the plugins Atoll has)."""
    filters: list[FilterPlugin] = [NodeUnschedulable(), NodeName(), TaintToleration(), NodeAffinity(),
                                   NodeResourcesFit(), PodTopologySpread()]
    scorers: list[tuple[ScorePlugin, int]] = [(TaintToleration(), 3), (NodeAffinity(), 2), (NodeResourcesFit(), 1),
                                              (PodTopologySpread(), 2), (BalancedAllocation(), 1)]
    return Framework(filters, scorers, rng=rng)
