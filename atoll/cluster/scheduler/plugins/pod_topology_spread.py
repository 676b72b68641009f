"""PodTopologySpread: keep matching pods within maxSkew across topology domains."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from atoll.api.selectors import LabelSelector
from atoll.cluster.scheduler.framework import SKIP, SUCCESS, CycleContext, NodeInfo, Status, unschedulable

Obj = dict[str, Any]
REASON = "node(s) didn't match pod topology spread constraints"
MISSING_LABEL = unschedulable("node(s) didn't match pod topology spread constraints (missing required label)",
                              resolvable=False)
SKEWED = unschedulable(REASON)
_COUNTS = "PodTopologySpread/counts"


def _constraints(pod: Obj, mode: str) -> list[Obj]:
    return [c for c in (pod.get("spec") or {}).get("topologySpreadConstraints") or []
            if c.get("whenUnsatisfiable", "DoNotSchedule") == mode]


def _counts(ctx: CycleContext, constraint: Obj) -> Counter[str]:
    """Matching pods per domain of the constraint's key, over every node; once per cycle and constraint.

    A DoNotSchedule constraint is counted for the filter and again for the score: the
    same walk over every pod of every node, so the first result is kept for the second.
    """
    memo: dict[int, Counter[str]] = ctx.cache.setdefault(_COUNTS, {})
    counts = memo.get(id(constraint))
    if counts is None:
        counts = memo[id(constraint)] = _count(ctx, constraint)
    return counts


def _count(ctx: CycleContext, constraint: Obj) -> Counter[str]:
    key = constraint.get("topologyKey", "")
    selector = LabelSelector.from_dict(constraint.get("labelSelector"))
    ns = (ctx.pod.get("metadata") or {}).get("namespace")
    counts: Counter[str] = Counter()
    for node in ctx.nodes:
        domain = node.labels.get(key)
        if domain is None:
            continue
        counts.setdefault(domain, 0)
        if not len(node):  # most nodes of a big cluster hold few pods, many none
            continue
        for p in node.pod_objects():
            md = p.get("metadata") or {}
            if md.get("namespace") == ns and not md.get("deletionTimestamp") \
                    and selector.matches(md.get("labels") or {}):
                counts[domain] += 1
    return counts


@dataclass(frozen=True, slots=True)
class _Required:
    """One DoNotSchedule constraint as a cycle needs it: parsed once, counted once."""

    topology_key: str
    max_skew: int
    self_match: int
    counts: Counter[str]
    minimum: int


class PodTopologySpread:
    NAME: ClassVar[str] = "PodTopologySpread"
    _STATE: ClassVar[str] = "PodTopologySpread/filter"
    _SCORE: ClassVar[str] = "PodTopologySpread/score"

    def _required(self, ctx: CycleContext) -> list[_Required]:
        """The pod's DoNotSchedule constraints with the matching pods per domain (PreFilter state)."""
        cached: list[_Required] | None = ctx.cache.get(self._STATE)
        if cached is None:
            labels = (ctx.pod.get("metadata") or {}).get("labels") or {}
            cached = []
            for c in _constraints(ctx.pod, "DoNotSchedule"):
                counts = _counts(ctx, c)
                self_match = LabelSelector.from_dict(c.get("labelSelector")).matches(labels)
                cached.append(_Required(c.get("topologyKey", ""), int(c.get("maxSkew", 1)), 1 if self_match else 0,
                                        counts, min(counts.values(), default=0)))
            ctx.cache[self._STATE] = cached
        return cached

    def pre_filter(self, ctx: CycleContext) -> Status:
        return SUCCESS if self._required(ctx) else SKIP

    def filter(self, ctx: CycleContext, node: NodeInfo) -> Status:
        labels = node.labels
        for c in self._required(ctx):
            domain = labels.get(c.topology_key)
            if domain is None:
                return MISSING_LABEL
            if c.counts.get(domain, 0) + c.self_match - c.minimum > c.max_skew:
                return SKEWED
        return SUCCESS

    def pre_score(self, ctx: CycleContext) -> Status:
        return SUCCESS if (ctx.pod.get("spec") or {}).get("topologySpreadConstraints") else SKIP

    def _scoring(self, ctx: CycleContext) -> tuple[list[tuple[str, Counter[str]]], int]:
        """Every constraint's key and counts, and the sum of their largest domains (PreScore state)."""
        cached: tuple[list[tuple[str, Counter[str]]], int] | None = ctx.cache.get(self._SCORE)
        if cached is None:
            constraints = _constraints(ctx.pod, "ScheduleAnyway") + _constraints(ctx.pod, "DoNotSchedule")
            counted = [(c.get("topologyKey", ""), _counts(ctx, c)) for c in constraints]
            cached = (counted, sum(max(counts.values(), default=0) for _, counts in counted))
            ctx.cache[self._SCORE] = cached
        return cached

    def score(self, ctx: CycleContext, node: NodeInfo) -> int:
        counted, worst = self._scoring(ctx)
        if not counted:
            return 0
        labels = node.labels
        total = sum(counts.get(labels.get(key, ""), 0) for key, counts in counted)
        return 100 if worst == 0 else int(100 * (worst - total) / worst)
