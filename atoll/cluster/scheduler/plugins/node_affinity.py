"""nodeSelector and node affinity (required filters, preferred terms score)."""

from __future__ import annotations

from typing import Any, ClassVar

from atoll.cluster.scheduler.framework import SUCCESS, CycleContext, NodeInfo, Status, unschedulable

Obj = dict[str, Any]
REASON = "node(s) didn't match Pod's node affinity/selector"


def requirement_matches(req: Obj, value: str | None) -> bool:
    op = req.get("operator")
    values = [str(v) for v in req.get("values") or []]
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and values:
        try:
            a, b = int(value), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def term_matches(term: Obj, node: NodeInfo) -> bool:
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches no objects
    labels = node.labels
    if not all(requirement_matches(r, labels.get(r.get("key", ""))) for r in exprs):
        return False
    return all(requirement_matches(r, node.name if r.get("key") == "metadata.name" else None) for r in fields)


class NodeAffinity:
    NAME: ClassVar[str] = "NodeAffinity"

    def filter(self, ctx: CycleContext, node: NodeInfo) -> Status:
        spec = ctx.pod.get("spec") or {}
        labels = node.labels
        for k, v in (spec.get("nodeSelector") or {}).items():
            if labels.get(k) != v:
                return unschedulable(REASON, resolvable=False)
        required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                    .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
        terms = required.get("nodeSelectorTerms")
        if terms is not None and not any(term_matches(t, node) for t in terms):
            return unschedulable(REASON, resolvable=False)
        return SUCCESS

    def score(self, ctx: CycleContext, node: NodeInfo) -> int:
        prefs = (((ctx.pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}).get(
            "preferredDuringSchedulingIgnoredDuringExecution") or []
        if not prefs:
            return 0
        if self.NAME not in ctx.cache:
            raw = {n.name: sum(int(p.get("weight", 0)) for p in prefs if term_matches(p.get("preference") or {}, n))
                   for n in ctx.scored or ctx.nodes}
            ctx.cache[self.NAME] = (raw, max(raw.values(), default=0))
        raw, best = ctx.cache[self.NAME]
        return int(100 * raw[node.name] / best) if best else 0
