"""nodeSelector and node affinity (required filters, preferred terms score)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from atoll.cluster.scheduler.framework import SKIP, SUCCESS, CycleContext, NodeInfo, Status, unschedulable

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


@dataclass(frozen=True, slots=True)
class _Required:
    """What the pod requires of a node, read from its spec once per cycle."""

    selector: tuple[tuple[str, Any], ...]
    terms: list[Obj] | None


REJECTED = unschedulable(REASON, resolvable=False)


def _required(pod: Obj) -> _Required:
    spec = pod.get("spec") or {}
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    return _Required(tuple((spec.get("nodeSelector") or {}).items()), required.get("nodeSelectorTerms"))


def _preferred(pod: Obj) -> list[Obj]:
    prefs: list[Obj] = (((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}).get(
        "preferredDuringSchedulingIgnoredDuringExecution") or []
    return prefs


class NodeAffinity:
    NAME: ClassVar[str] = "NodeAffinity"
    _STATE: ClassVar[str] = "NodeAffinity/required"

    def pre_filter(self, ctx: CycleContext) -> Status:
        """Parse nodeSelector and required terms once; skip the filter for pods that have neither."""
        required = _required(ctx.pod)
        ctx.cache[self._STATE] = required
        return SKIP if not required.selector and required.terms is None else SUCCESS

    def filter(self, ctx: CycleContext, node: NodeInfo) -> Status:
        required: _Required | None = ctx.cache.get(self._STATE)
        if required is None:
            required = _required(ctx.pod)
            ctx.cache[self._STATE] = required
        labels = node.labels
        for k, v in required.selector:
            if labels.get(k) != v:
                return REJECTED
        terms = required.terms
        if terms is not None and not any(term_matches(t, node) for t in terms):
            return REJECTED
        return SUCCESS

    def pre_score(self, ctx: CycleContext) -> Status:
        return SUCCESS if _preferred(ctx.pod) else SKIP

    def score(self, ctx: CycleContext, node: NodeInfo) -> int:
        prefs = _preferred(ctx.pod)
        if not prefs:
            return 0
        if self.NAME not in ctx.cache:
            raw = {n.name: sum(int(p.get("weight", 0)) for p in prefs if term_matches(p.get("preference") or {}, n))
                   for n in ctx.scored or ctx.nodes}
            ctx.cache[self.NAME] = (raw, max(raw.values(), default=0))
        raw, best = ctx.cache[self.NAME]
        return int(100 * raw[node.name] / best) if best else 0
