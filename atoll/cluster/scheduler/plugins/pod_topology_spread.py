"""PodTopologySpread: keep matching pods within maxSkew across topology domains."""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from atoll.api.selectors import LabelSelector
from atoll.cluster.scheduler.framework import SUCCESS, CycleContext, NodeInfo, Status, unschedulable

Obj = dict[str, Any]
REASON = "node(s) didn't match pod topology spread constraints"


def _constraints(pod: Obj, mode: str) -> list[Obj]:
    return [c for c in (pod.get("spec") or {}).get("topologySpreadConstraints") or []
            if c.get("whenUnsatisfiable", "DoNotSchedule") == mode]


def _counts(ctx: CycleContext, constraint: Obj) -> Counter[str]:
    key = constraint.get("topologyKey", "")
    selector = LabelSelector.from_dict(constraint.get("labelSelector"))
    ns = (ctx.pod.get("metadata") or {}).get("namespace")
    counts: Counter[str] = Counter()
    for node in ctx.nodes:
        domain = node.labels.get(key)
        if domain is None:
            continue
        counts.setdefault(domain, 0)
        for p in node.pods:
            md = p.get("metadata") or {}
            if md.get("namespace") == ns and not md.get("deletionTimestamp") \
                    and selector.matches(md.get("labels") or {}):
                counts[domain] += 1
    return counts


class PodTopologySpread:
    NAME: ClassVar[str] = "PodTopologySpread"

    def filter(self, ctx: CycleContext, node: NodeInfo) -> Status:
        for i, c in enumerate(_constraints(ctx.pod, "DoNotSchedule")):
            domain = node.labels.get(c.get("topologyKey", ""))
            if domain is None:
                return unschedulable("node(s) didn't match pod topology spread constraints (missing required "
                                     "label)", resolvable=False)
            cache_key = f"{self.NAME}/filter/{i}"
            counts = ctx.cache.get(cache_key)
            if counts is None:
                counts = _counts(ctx, c)
                ctx.cache[cache_key] = counts
            self_match = LabelSelector.from_dict(c.get("labelSelector")).matches(
                (ctx.pod.get("metadata") or {}).get("labels") or {})
            minimum = min(counts.values(), default=0)
            if counts.get(domain, 0) + (1 if self_match else 0) - minimum > int(c.get("maxSkew", 1)):
                return unschedulable(REASON)
        return SUCCESS

    def score(self, ctx: CycleContext, node: NodeInfo) -> int:
        constraints = _constraints(ctx.pod, "ScheduleAnyway") + _constraints(ctx.pod, "DoNotSchedule")
        if not constraints:
            return 0
        total = 0
        worst = 0
        for i, c in enumerate(constraints):
            cache_key = f"{self.NAME}/score/{i}"
            counts = ctx.cache.get(cache_key)
            if counts is None:
                counts = _counts(ctx, c)
                ctx.cache[cache_key] = counts
            total += counts.get(node.labels.get(c.get("topologyKey", ""), ""), 0)
            worst += max(counts.values(), default=0)
        return 100 if worst == 0 else int(100 * (worst - total) / worst)
