"""Taints and tolerations: NoSchedule/NoExecute taints must be tolerated; PreferNoSchedule scores."""

from __future__ import annotations

from typing import Any, ClassVar

from atoll.cluster.scheduler.framework import (
    SUCCESS,
    CycleContext,
    NodeInfo,
    Rejections,
    Status,
    unschedulable,
)

Obj = dict[str, Any]


def tolerates(toleration: Obj, taint: Obj) -> bool:
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if not key:
        return operator == "Exists"
    if key != taint.get("key"):
        return False
    if operator == "Exists":
        return True
    return (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated(taints: list[Obj], tolerations: list[Obj], effects: tuple[str, ...]) -> list[Obj]:
    return [t for t in taints if t.get("effect") in effects and not any(tolerates(tol, t) for tol in tolerations)]


TOLERATIONS = "TaintToleration/tolerations"


def _tolerations(ctx: CycleContext) -> list[Obj]:
    tolerations: list[Obj] | None = ctx.cache.get(TOLERATIONS)
    if tolerations is None:
        tolerations = (ctx.pod.get("spec") or {}).get("tolerations") or []
        ctx.cache[TOLERATIONS] = tolerations
    return tolerations


class TaintToleration:
    NAME: ClassVar[str] = "TaintToleration"

    def pre_filter(self, ctx: CycleContext) -> Status:
        _tolerations(ctx)
        return SUCCESS

    def filter(self, ctx: CycleContext, node: NodeInfo) -> Status:
        taints = node.taints
        if not taints:  # most nodes: nothing to tolerate
            return SUCCESS
        bad = untolerated(taints, _tolerations(ctx), ("NoSchedule", "NoExecute"))
        if not bad:
            return SUCCESS
        t = bad[0]
        text = f"{t.get('key')}: {t['value']}" if t.get("value") else str(t.get("key"))
        return unschedulable(f"node(s) had untolerated taint {{{text}}}", resolvable=False)

    def filter_nodes(self, ctx: CycleContext, nodes: list[NodeInfo]) -> Rejections:
        rejected: Rejections = {}
        for i, node in enumerate(nodes):
            if node.taints and not (status := self.filter(ctx, node)).ok:
                rejected[i] = status
        return rejected

    def _counts(self, ctx: CycleContext) -> tuple[dict[str, int], int]:
        """Intolerable PreferNoSchedule taints per scored node (nodes without taints count 0)."""
        cached: tuple[dict[str, int], int] | None = ctx.cache.get(self.NAME)
        if cached is None:
            tolerations = _tolerations(ctx)
            counts = {n.name: len(untolerated(n.taints, tolerations, ("PreferNoSchedule",)))
                      for n in ctx.scored or ctx.nodes if n.taints}
            cached = (counts, max(counts.values(), default=0))
            ctx.cache[self.NAME] = cached
        return cached

    def pre_score(self, ctx: CycleContext) -> Status:
        self._counts(ctx)
        return SUCCESS

    def score(self, ctx: CycleContext, node: NodeInfo) -> int:
        """Fewer intolerable PreferNoSchedule taints score higher (normalised over all nodes)."""
        counts, worst = self._counts(ctx)
        if worst == 0:
            return 100
        return int(100 * (worst - counts.get(node.name, 0)) / worst)

    def score_nodes(self, ctx: CycleContext, nodes: list[NodeInfo]) -> list[int]:
        if self._counts(ctx)[1] == 0:  # no scored node has an intolerable PreferNoSchedule taint
            return [100] * len(nodes)
        return [self.score(ctx, node) for node in nodes]
