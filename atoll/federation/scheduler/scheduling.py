"""One scheduling decision for one binding: filter, score, select, assign (Karmada's generic scheduler).

Pure: it reads the binding (spec and status) and the Cluster objects and returns the
placement, or raises a :class:`SchedulingError` whose class says how the scheduler
reports it (:class:`FitError` → ``NoClusterFit``, :class:`UnschedulableError` →
``Unschedulable``, anything else → ``SchedulerError``).

Ordered ``clusterAffinities`` are tried one term at a time from the term the binding is
scheduled with (from the first after a triggered reschedule); the first term that fits
wins and becomes ``status.schedulerObservingAffinityName``. A term is never given up
because a cluster fails temporarily; it is given up when nothing in it fits.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from atoll.federation.scheduler.assignment import assign_replicas, reschedule_required
from atoll.federation.scheduler.estimation import available_replicas
from atoll.federation.scheduler.framework import BindingContext, FitError, Framework, SchedulingError, wrap
from atoll.federation.scheduler.placement import affinity_index
from atoll.federation.scheduler.plugins import default_framework
from atoll.federation.scheduler.spread import AvailableFn, ClusterDetail, group_clusters, select_best_clusters

Obj = dict[str, Any]


@dataclass
class Outcome:
    """What the controller writes back after one attempt."""

    clusters: list[Obj] | None
    """The new ``spec.clusters``; None leaves them as they are (an error that is retried)."""
    affinity_name: str | None = None
    """The new ``status.schedulerObservingAffinityName`` (None: unchanged or not applicable)."""
    error: SchedulingError | None = None
    term_failures: list[str] = field(default_factory=list)
    """One message per ``clusterAffinities`` term that did not fit before the outcome."""


class GenericScheduler:
    def __init__(self, framework: Framework | None = None, *, available: AvailableFn = available_replicas) -> None:
        self.framework = framework or default_framework()
        self.available = available

    def select(self, spec: Mapping[str, Any], status: Mapping[str, Any],
               clusters: Sequence[Obj]) -> list[ClusterDetail]:
        """Filter, score and select (the clusters before replica assignment)."""
        ctx = BindingContext(dict(spec), dict(status))
        feasible, rejected = self.framework.find_feasible(ctx, clusters)
        if not feasible:
            raise FitError(len(clusters), rejected)
        scores = self.framework.prioritize(ctx, feasible)
        try:
            grouped = group_clusters(scores, spec, self.available, status)
            return select_best_clusters(spec.get("placement") or {}, grouped, int(spec.get("replicas") or 0))
        except SchedulingError as exc:
            raise wrap("failed to select clusters", exc) from exc

    def schedule(self, spec: Mapping[str, Any], status: Mapping[str, Any], clusters: Sequence[Obj]) -> list[Obj]:
        """``[{name, replicas}]`` for one affinity (the one ``status`` names, for ``clusterAffinities``)."""
        selected = self.select(spec, status, clusters)
        try:
            return assign_replicas(selected, spec, status)
        except SchedulingError as exc:
            raise wrap("failed to assign replicas", exc) from exc

    def decide(self, binding: Mapping[str, Any], clusters: Sequence[Obj]) -> Outcome:
        """The whole decision for a binding object, affinity fallback included."""
        spec: Obj = binding.get("spec") or {}
        status: Obj = binding.get("status") or {}
        terms = (spec.get("placement") or {}).get("clusterAffinities")
        if terms is None:
            try:
                return Outcome(self.schedule(spec, status, clusters))
            except FitError as exc:
                return Outcome([], error=exc)  # nothing fits any more: clear the old placement
            except SchedulingError as exc:
                return Outcome(None, error=exc)
        md = binding.get("metadata") or {}
        what = (f"ResourceBinding({md.get('namespace')}/{md.get('name')})" if md.get("namespace")
                else f"ClusterResourceBinding({md.get('name')})")
        index = 0 if reschedule_required(spec, status) else affinity_index(terms, status.get("schedulerObservingAffinityName") or "")
        trying = copy.deepcopy(status)
        first: SchedulingError | None = None
        failures: list[str] = []
        while index < len(terms):
            trying["schedulerObservingAffinityName"] = terms[index].get("affinityName") or ""
            try:
                result = self.schedule(spec, trying, clusters)
            except SchedulingError as exc:
                first = first or exc
                failures.append(f"failed to schedule {what} with clusterAffiliates index({index}): {exc}")
                index += 1
                continue
            return Outcome(result, trying["schedulerObservingAffinityName"], term_failures=failures)
        assert first is not None or not terms
        if first is None:
            return Outcome([], error=FitError(len(clusters), {}), term_failures=failures)
        if isinstance(first, FitError):
            return Outcome([], error=first, term_failures=failures)
        return Outcome(None, error=first, term_failures=failures)
