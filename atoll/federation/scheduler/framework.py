"""The multi-cluster scheduling framework: filter and score plugins over member clusters.

Shaped like the member scheduler's framework (``atoll/cluster/scheduler/framework.py``)
and like Karmada's ``pkg/scheduler/framework``: a plugin is a small class with a
``NAME``; an expected rejection is a :class:`Status` with ``UNSCHEDULABLE`` and a reason
(never an exception); scores are 0..100. One :class:`BindingContext` carries what every
plugin reads: the binding's spec and status.

Filters run in a fixed order (Karmada builds its list from a Go map, so its order
varies from run to run; the first failing plugin's reason is what the message counts).
When no cluster fits, :class:`FitError` renders Karmada's message,
``0/3 clusters are available: 1 cluster(s) did not have the API resource, 2 ....`` —
reasons counted per cluster and sorted as strings, as Karmada sorts them.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

Obj = dict[str, Any]

MIN_CLUSTER_SCORE = 0
MAX_CLUSTER_SCORE = 100


class Code(enum.Enum):
    SUCCESS = "Success"
    UNSCHEDULABLE = "Unschedulable"
    ERROR = "Error"


@dataclass(frozen=True, slots=True)
class Status:
    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code is Code.SUCCESS


SUCCESS = Status()


def unschedulable(*reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE, tuple(reasons))


@dataclass
class BindingContext:
    """One scheduling attempt of one (Cluster)ResourceBinding."""

    spec: Obj
    status: Obj = field(default_factory=dict)

    @property
    def placement(self) -> Obj:
        placement: Obj = self.spec.get("placement") or {}
        return placement

    @property
    def uid(self) -> str:
        return str((self.spec.get("resource") or {}).get("uid") or "")


class FilterPlugin(Protocol):
    NAME: ClassVar[str]

    def filter(self, ctx: BindingContext, cluster: Obj) -> Status: ...


class ScorePlugin(Protocol):
    NAME: ClassVar[str]

    def score(self, ctx: BindingContext, cluster: Obj) -> int: ...


class SchedulingError(Exception):
    """A scheduling attempt that did not produce a placement (Karmada's ``SchedulerError`` reason)."""


class UnschedulableError(SchedulingError):
    """Not enough room in the candidate clusters (Karmada's ``Unschedulable`` reason; retried)."""


class FitError(SchedulingError):
    """No cluster passed the filters (Karmada's ``NoClusterFit`` reason)."""

    def __init__(self, total: int, rejections: dict[str, Status]) -> None:
        self.total = total
        self.rejections = rejections
        super().__init__(self.render())

    def render(self) -> str:
        if self.total == 0 or not self.rejections:
            return f"0/{self.total} clusters are available: no cluster exists."
        reasons: Counter[str] = Counter()
        for status in self.rejections.values():
            for reason in status.reasons:
                reasons[reason] += 1
        histogram = sorted(f"{n} {reason}" for reason, n in reasons.items())
        return f"0/{self.total} clusters are available: {', '.join(histogram)}."


def wrap(prefix: str, exc: SchedulingError) -> SchedulingError:
    """``fmt.Errorf("<prefix>: %w", err)`` keeping the class (so the condition reason survives)."""
    wrapped = type(exc).__new__(type(exc))
    Exception.__init__(wrapped, f"{prefix}: {exc}")
    if isinstance(exc, FitError) and isinstance(wrapped, FitError):
        wrapped.total, wrapped.rejections = exc.total, exc.rejections
    return wrapped


@dataclass(frozen=True, slots=True)
class ClusterScore:
    cluster: Obj
    score: int

    @property
    def name(self) -> str:
        return str((self.cluster.get("metadata") or {}).get("name", ""))


class Framework:
    """Runs the filters (first rejection wins) and sums the scores of each feasible cluster."""

    def __init__(self, filters: Sequence[FilterPlugin], scorers: Sequence[tuple[ScorePlugin, int]] = ()) -> None:
        self.filters = list(filters)
        self.scorers = list(scorers)

    def run_filters(self, ctx: BindingContext, cluster: Obj) -> Status:
        for plugin in self.filters:
            status = plugin.filter(ctx, cluster)
            if not status.ok:
                return status
        return SUCCESS

    def find_feasible(self, ctx: BindingContext, clusters: Sequence[Obj]) -> tuple[list[Obj], dict[str, Status]]:
        """Clusters that pass every filter, and why each other one did not.

        A cluster being deleted is skipped without a reason: its scheduled results are
        being cleaned up, and nothing new goes there.
        """
        feasible: list[Obj] = []
        rejected: dict[str, Status] = {}
        for cluster in clusters:
            md = cluster.get("metadata") or {}
            if md.get("deletionTimestamp"):
                continue
            status = self.run_filters(ctx, cluster)
            if status.ok:
                feasible.append(cluster)
            else:
                rejected[str(md.get("name", ""))] = status
        return feasible, rejected

    def prioritize(self, ctx: BindingContext, clusters: Sequence[Obj]) -> list[ClusterScore]:
        totals = [0] * len(clusters)
        for plugin, weight in self.scorers:
            for i, cluster in enumerate(clusters):
                totals[i] += weight * plugin.score(ctx, cluster)
        return [ClusterScore(c, s) for c, s in zip(clusters, totals, strict=True)]
