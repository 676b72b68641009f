"""The scheduling framework: filter plugins, score plugins, one decision per pod.

Shaped like kube-scheduler's framework: plugins are small classes with a ``NAME``;
an expected rejection is a :class:`Status` (never an exception); scores are 0..100 and
weighted; one :class:`CycleContext` carries what a cycle knows (the pod, its requests,
every node's :class:`NodeInfo`).
"""

from __future__ import annotations

import enum
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from atoll.cluster.scheduler.resources import Resources, node_allocatable, pod_requests

Obj = dict[str, Any]


class Code(enum.Enum):
    SUCCESS = "Success"
    UNSCHEDULABLE = "Unschedulable"
    UNRESOLVABLE = "UnschedulableAndUnresolvable"


@dataclass(frozen=True, slots=True)
class Status:
    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code is Code.SUCCESS


SUCCESS = Status()


def unschedulable(*reasons: str, resolvable: bool = True) -> Status:
    return Status(Code.UNSCHEDULABLE if resolvable else Code.UNRESOLVABLE, tuple(reasons))


@dataclass
class NodeInfo:
    node: Obj
    pods: list[Obj] = field(default_factory=list)
    requested: Resources = field(default_factory=Resources)

    @property
    def name(self) -> str:
        return str(self.node["metadata"]["name"])

    @property
    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = self.node["metadata"].get("labels") or {}
        return labels

    @property
    def allocatable(self) -> Resources:
        cached: Resources | None = self.__dict__.get("_allocatable")
        if cached is None:
            cached = node_allocatable(self.node)
            self.__dict__["_allocatable"] = cached
        return cached

    def add_pod(self, pod: Obj) -> None:
        self.pods.append(pod)
        self.requested = self.requested + pod_requests(pod)

    def remove_pod(self, namespace: str | None, name: str) -> bool:
        for i, p in enumerate(self.pods):
            md = p.get("metadata") or {}
            if md.get("name") == name and md.get("namespace") == namespace:
                del self.pods[i]
                self.requested = self.requested - pod_requests(p)
                return True
        return False

    def set_node(self, node: Obj) -> None:
        self.node = node
        self.__dict__.pop("_allocatable", None)

    @classmethod
    def build(cls, node: Obj, pods: Sequence[Obj] = ()) -> NodeInfo:
        info = cls(node)
        for p in pods:
            info.add_pod(p)
        return info


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


class FilterPlugin(Protocol):
    NAME: ClassVar[str]

    def filter(self, ctx: CycleContext, node: NodeInfo) -> Status: ...


class ScorePlugin(Protocol):
    NAME: ClassVar[str]

    def score(self, ctx: CycleContext, node: NodeInfo) -> int: ...


@dataclass(frozen=True)
class ScheduleResult:
    node: str | None
    message: str = ""
    reasons: dict[str, int] = field(default_factory=dict)
    scores: dict[str, int] = field(default_factory=dict)
    feasible: int = 0


class Framework:
    def __init__(self, filters: Sequence[FilterPlugin], scorers: Sequence[tuple[ScorePlugin, int]], *,
                 rng: random.Random | None = None, percentage_of_nodes_to_score: int = 0) -> None:
        self.filters = list(filters)
        self.scorers = list(scorers)
        self.rng = rng or random.Random()
        self.percentage = percentage_of_nodes_to_score
        self._next_start = 0

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
        for plugin in self.filters:
            status = plugin.filter(ctx, node)
            if not status.ok:
                return status
        return SUCCESS

    def schedule(self, pod: Obj, nodes: list[NodeInfo]) -> ScheduleResult:
        ctx = CycleContext.for_pod(pod, nodes)
        feasible: list[NodeInfo] = []
        reasons: Counter[str] = Counter()
        wanted = self.feasible_to_find(len(nodes))
        start = self._next_start % len(nodes) if nodes else 0
        checked = 0
        for i in range(len(nodes)):
            node = nodes[(start + i) % len(nodes)]
            checked += 1
            status = self.run_filters(ctx, node)
            if status.ok:
                feasible.append(node)
                if len(feasible) >= wanted:
                    break
            else:
                for reason in status.reasons:
                    reasons[reason] += 1
        # The next cycle starts where this one stopped, so every node gets its turn.
        self._next_start = start + checked
        if not feasible:
            detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda kv: kv[0]))
            message = f"0/{len(nodes)} nodes are available" + (f": {detail}." if detail else ".")
            return ScheduleResult(None, message, dict(reasons))
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, feasible=1)
        ctx.scored = feasible
        totals: dict[str, int] = {}
        for node in feasible:
            totals[node.name] = sum(weight * plugin.score(ctx, node) for plugin, weight in self.scorers)
        best = max(totals.values())
        top = sorted(name for name, s in totals.items() if s == best)
        return ScheduleResult(self.rng.choice(top), scores=totals, feasible=len(feasible))
