"""Taints and tolerations: NoSchedule/NoExecute taints must be tolerated; PreferNoSchedule scores."""

from __future__ import annotations

from typing import Any, ClassVar

from atoll.cluster.scheduler.framework import SUCCESS, CycleContext, NodeInfo, Status, unschedulable

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


class TaintToleration:
    NAME: ClassVar[str] = "TaintToleration"

    def filter(self, ctx: CycleContext, node: NodeInfo) -> Status:
        taints = (node.node.get("spec") or {}).get("taints") or []
        tolerations = (ctx.pod.get("spec") or {}).get("tolerations") or []
        bad = untolerated(taints, tolerations, ("NoSchedule", "NoExecute"))
        if not bad:
            return SUCCESS
        t = bad[0]
        text = f"{t.get('key')}: {t['value']}" if t.get("value") else str(t.get("key"))
        return unschedulable(f"node(s) had untolerated taint {{{text}}}", resolvable=False)

    def score(self, ctx: CycleContext, node: NodeInfo) -> int:
        """Fewer intolerable PreferNoSchedule taints score higher (normalised over all nodes)."""
        counts = ctx.cache.get(self.NAME)
        if counts is None:
            tolerations = (ctx.pod.get("spec") or {}).get("tolerations") or []
            counts = {n.name: len(untolerated((n.node.get("spec") or {}).get("taints") or [], tolerations,
                                              ("PreferNoSchedule",))) for n in ctx.scored or ctx.nodes}
            ctx.cache[self.NAME] = counts
            ctx.cache[self.NAME + "/worst"] = max(counts.values(), default=0)
        worst = ctx.cache[self.NAME + "/worst"]
        if worst == 0:
            return 100
        return int(100 * (worst - counts.get(node.name, 0)) / worst)
