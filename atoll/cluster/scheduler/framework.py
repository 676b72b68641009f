"""The scheduling framework: filter plugins, score plugins, one decision per pod.

Shaped like kube-scheduler's framework: plugins are small classes with a ``NAME``;
an expected rejection is a :class:`Status` (never an exception); scores are 0..100 and
weighted; one :class:`CycleContext` carries what a cycle knows (the pod, its requests,
every node's :class:`NodeInfo`).

A cycle on 5,000 nodes filters about 500 of them (kube's adaptive sampling) and scores
those, so the per-pod-and-node work is what costs. Hence kube's extension points that
work once per pod: PreFilter/PreScore parse the pod once and may answer :data:`SKIP`
(nothing to check or score for this pod); and Python's own remedy for per-call
overhead: plugins may filter and score a whole chunk of nodes in one call
(``filter_nodes``/``score_nodes``), which must agree with their per-node
``filter``/``score`` (the tests compare the two).
"""

from __future__ import annotations

import enum
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from atoll.cluster.scheduler.resources import Resources, node_allocatable, pod_requests

Obj = dict[str, Any]


class Code(enum.Enum):
    SUCCESS = "Success"
    UNSCHEDULABLE = "Unschedulable"
    UNRESOLVABLE = "UnschedulableAndUnresolvable"
    SKIP = "Skip"


@dataclass(frozen=True, slots=True)
class Status:
    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code is Code.SUCCESS


SUCCESS = Status()
SKIP = Status(Code.SKIP)
"""From a PreFilter/PreScore hook: this plugin has nothing to check or score for the pod."""


def unschedulable(*reasons: str, resolvable: bool = True) -> Status:
    return Status(Code.UNSCHEDULABLE if resolvable else Code.UNRESOLVABLE, tuple(reasons))


class NodeInfo:
    """One node and the pods counted on it (bound or assumed), as the scheduler cache holds it.

    What every cycle reads of the node (name, labels, allocatable, taints, cordon) is
    derived once when the node object changes, not per pod and node; pods are kept by
    namespace and name with their requests, so adding, updating and removing one is O(1).
    """

    __slots__ = ("_pods", "allocatable", "labels", "name", "node", "requested", "taints", "unschedulable")

    def __init__(self, node: Obj, pods: Iterable[Obj] = ()) -> None:
        self.requested = Resources()
        self._pods: dict[tuple[str | None, str], tuple[Obj, Resources]] = {}
        self.set_node(node)
        for p in pods:
            self.add_pod(p)

    def __repr__(self) -> str:
        return f"NodeInfo({self.name!r}, pods={len(self._pods)}, requested={self.requested})"

    def set_node(self, node: Obj) -> None:
        self.node = node
        md = node.get("metadata") or {}
        spec = node.get("spec") or {}
        self.name: str = str(md.get("name"))
        self.labels: dict[str, str] = md.get("labels") or {}
        self.allocatable: Resources = node_allocatable(node)
        self.taints: list[Obj] = spec.get("taints") or []
        self.unschedulable: bool = bool(spec.get("unschedulable"))

    @property
    def pods(self) -> list[Obj]:
        return [p for p, _ in self._pods.values()]

    def pod_objects(self) -> Iterable[Obj]:
        """The counted pods without copying them into a list (for per-cycle counting)."""
        return (p for p, _ in self._pods.values())

    def __len__(self) -> int:
        return len(self._pods)

    @staticmethod
    def _key(pod: Obj) -> tuple[str | None, str]:
        md = pod.get("metadata") or {}
        return md.get("namespace"), str(md.get("name"))

    def add_pod(self, pod: Obj, requests: Resources | None = None) -> None:
        """Count ``pod`` here; a pod already counted (same namespace and name) is replaced."""
        key = self._key(pod)
        want = pod_requests(pod) if requests is None else requests
        previous = self._pods.pop(key, None)
        if previous is not None:
            self.requested = self.requested - previous[1]
        self._pods[key] = (pod, want)
        self.requested = self.requested + want

    def remove_pod(self, namespace: str | None, name: str) -> bool:
        previous = self._pods.pop((namespace, name), None)
        if previous is None:
            return False
        self.requested = self.requested - previous[1]
        return True

    @classmethod
    def build(cls, node: Obj, pods: Sequence[Obj] = ()) -> NodeInfo:
        return cls(node, pods)


@dataclass
class CycleContext:
    pod: Obj
    nodes: list[NodeInfo]
    requests: Resources = field(default_factory=Resources)
    cache: dict[str, Any] = field(default_factory=dict)
    """Per-cycle data plugins compute once (PreFilter/PreScore in kube)."""
    scored: list[NodeInfo] = field(default_factory=list)
    """The feasible nodes being scored (score plugins normalise over these)."""

    @classmethod
    def for_pod(cls, pod: Obj, nodes: list[NodeInfo]) -> CycleContext:
        return cls(pod, nodes, pod_requests(pod))


Rejections = dict[int, Status]
"""What a batch filter returns: the position (in the nodes it was given) and status of each rejected node."""


class FilterPlugin(Protocol):
    """Filter, optionally with ``pre_filter(ctx) -> Status`` and ``filter_nodes(ctx, nodes) -> Rejections``.

    ``pre_filter`` runs once per cycle (kube's PreFilter): it parses what the pod asks
    (tolerations, affinity terms, spread constraints) into ``ctx.cache`` so ``filter``
    does not re-read the pod for every node, and returns :data:`SKIP` when the pod asks
    nothing of this plugin, so ``filter`` is not run at all for that pod.

    ``filter_nodes`` is ``filter`` over many nodes at once, for the plugins that can pass
    most nodes with one cheap test (no taints, not cordoned, room left) and call
    ``filter`` only for the rest: in Python the per-node call is most of the cost.
    """

    NAME: ClassVar[str]

    def filter(self, ctx: CycleContext, node: NodeInfo) -> Status: ...


class ScorePlugin(Protocol):
    """Score (0..100), optionally with ``pre_score(ctx) -> Status`` and ``score_nodes(ctx, nodes)``.

    ``pre_score`` runs once per cycle after ``ctx.scored`` is set (kube's PreScore);
    :data:`SKIP` means the plugin adds nothing for this pod on any node (its ``score``
    would be 0 everywhere), so it is not called per node. ``score_nodes`` returns the
    scores of many nodes in one call (the same numbers ``score`` gives one by one).
    """

    NAME: ClassVar[str]

    def score(self, ctx: CycleContext, node: NodeInfo) -> int: ...


@dataclass(frozen=True)
class ScheduleResult:
    node: str | None
    message: str = ""
    reasons: dict[str, int] = field(default_factory=dict)
    scores: dict[str, int] = field(default_factory=dict)
    feasible: int = 0


BatchFilter = Callable[["CycleContext", list[NodeInfo]], Rejections]
BatchScore = Callable[["CycleContext", list[NodeInfo]], list[int]]


def _hook(plugin: object, name: str) -> Callable[[CycleContext], Status] | None:
    hook: Callable[[CycleContext], Status] | None = getattr(plugin, name, None)
    return hook


def _batch_filter(plugin: FilterPlugin) -> BatchFilter:
    batch: BatchFilter | None = getattr(plugin, "filter_nodes", None)
    if batch is not None:
        return batch
    one = plugin.filter

    def each(ctx: CycleContext, nodes: list[NodeInfo]) -> Rejections:
        rejected: Rejections = {}
        for i, node in enumerate(nodes):
            status = one(ctx, node)
            if status.code is not Code.SUCCESS:
                rejected[i] = status
        return rejected

    return each


def _batch_score(plugin: ScorePlugin) -> BatchScore:
    batch: BatchScore | None = getattr(plugin, "score_nodes", None)
    if batch is not None:
        return batch
    one = plugin.score
    return lambda ctx, nodes: [one(ctx, node) for node in nodes]


class Framework:
    def __init__(self, filters: Sequence[FilterPlugin], scorers: Sequence[tuple[ScorePlugin, int]], *,
                 rng: random.Random | None = None, percentage_of_nodes_to_score: int = 0) -> None:
        self.filters = list(filters)
        self.scorers = list(scorers)
        self.rng = rng or random.Random()
        self.percentage = percentage_of_nodes_to_score
        self._next_start = 0
        # Hooks looked up once, not once per pod and node.
        self._filter_hooks = [(_hook(p, "pre_filter"), _batch_filter(p)) for p in self.filters]
        self._score_hooks = [(_hook(p, "pre_score"), _batch_score(p), w) for p, w in self.scorers]

    def feasible_to_find(self, total: int) -> int:
        """kube-scheduler's adaptive sampling: stop filtering once this many nodes fit.

        Under 100 nodes every node is checked; above, ``50 - nodes/125`` percent (at least
        5%, at least 100 nodes), unless a fixed percentage was configured.
        """
        if total < 100 or self.percentage >= 100:
            return total
        pct = self.percentage or max(5, 50 - total // 125)
        return max(100, total * pct // 100)

    def run_filters(self, ctx: CycleContext, node: NodeInfo) -> Status:
        """Every filter on one node, PreFilter included (for callers outside a cycle)."""
        for pre, _ in self._filter_hooks:
            if pre is not None:
                pre(ctx)
        for plugin in self.filters:
            status = plugin.filter(ctx, node)
            if not status.ok:
                return status
        return SUCCESS

    def find_feasible(self, ctx: CycleContext) -> tuple[list[NodeInfo], Counter[str]]:
        """Filter nodes round-robin from where the last cycle stopped until enough fit.

        The same as trying each node in turn with every filter (first rejection wins)
        and stopping at the ``feasible_to_find``-th fit, done in chunks: each chunk is
        exactly as many nodes as are still wanted, so no node past the stopping point is
        ever tried, and each filter sees only the survivors of the filters before it.
        """
        nodes = ctx.nodes
        filters = [batch for pre, batch in self._filter_hooks if pre is None or pre(ctx).code is not Code.SKIP]
        feasible: list[NodeInfo] = []
        reasons: Counter[str] = Counter()
        total = len(nodes)
        wanted = self.feasible_to_find(total)
        start = self._next_start % total if total else 0
        checked = 0
        while checked < total and len(feasible) < wanted:
            first = (start + checked) % total
            size = min(wanted - len(feasible), total - checked)
            chunk = nodes[first:first + size]
            if len(chunk) < size:  # wrapped round the end of the list
                chunk += nodes[:size - len(chunk)]
            checked += size
            for batch in filters:
                rejected = batch(ctx, chunk)
                if rejected:
                    for status in rejected.values():
                        for reason in status.reasons:
                            reasons[reason] += 1
                    chunk = [node for i, node in enumerate(chunk) if i not in rejected]
                    if not chunk:
                        break
            feasible += chunk
        # The next cycle starts where this one stopped, so every node gets its turn.
        self._next_start = start + checked
        return feasible, reasons

    def schedule(self, pod: Obj, nodes: list[NodeInfo]) -> ScheduleResult:
        ctx = CycleContext.for_pod(pod, nodes)
        feasible, reasons = self.find_feasible(ctx)
        if not feasible:
            detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda kv: kv[0]))
            message = f"0/{len(nodes)} nodes are available" + (f": {detail}." if detail else ".")
            return ScheduleResult(None, message, dict(reasons))
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, feasible=1)
        ctx.scored = feasible
        sums: list[int] | None = None
        for pre, batch, weight in self._score_hooks:
            if pre is not None and pre(ctx).code is Code.SKIP:
                continue
            scores = batch(ctx, feasible)
            if weight != 1:
                scores = [weight * x for x in scores]
            sums = scores if sums is None else [a + b for a, b in zip(sums, scores, strict=True)]
        if sums is None:
            sums = [0] * len(feasible)
        totals = {node.name: s for node, s in zip(feasible, sums, strict=True)}
        best = max(sums)
        top = sorted(name for name, s in totals.items() if s == best)
        return ScheduleResult(self.rng.choice(top), scores=totals, feasible=len(feasible))
