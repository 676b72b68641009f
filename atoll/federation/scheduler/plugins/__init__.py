"""The in-tree plugins of the multi-cluster scheduler, one module each, and the default profile."""

from __future__ import annotations

from atoll.federation.scheduler.framework import FilterPlugin, Framework, ScorePlugin
from atoll.federation.scheduler.plugins.api_enablement import APIEnablement
from atoll.federation.scheduler.plugins.cluster_affinity import ClusterAffinity
from atoll.federation.scheduler.plugins.cluster_eviction import ClusterEviction
from atoll.federation.scheduler.plugins.cluster_locality import ClusterLocality
from atoll.federation.scheduler.plugins.spread_constraint import SpreadConstraint
from atoll.federation.scheduler.plugins.taint_toleration import TaintToleration

REGISTRY: dict[str, type] = {p.NAME: p for p in (
    APIEnablement, TaintToleration, ClusterAffinity, SpreadConstraint, ClusterLocality, ClusterEviction)}


def default_framework() -> Framework:
    """Karmada's in-tree registry; filters in a fixed order, every score weighted 1."""
    filters: list[FilterPlugin] = [ClusterEviction(), ClusterAffinity(), TaintToleration(), APIEnablement(),
                                   SpreadConstraint()]
    scorers: list[tuple[ScorePlugin, int]] = [(ClusterAffinity(), 1), (ClusterLocality(), 1)]
    return Framework(filters, scorers)


__all__ = ["REGISTRY", "APIEnablement", "ClusterAffinity", "ClusterEviction", "ClusterLocality", "SpreadConstraint",
           "TaintToleration", "default_framework"]
