"""Resource arithmetic for scheduling: CPU in millicores, memory in bytes, pod counts."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from atoll.api.meta import parse_quantity

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Resources:
    milli_cpu: int = 0
    memory: int = 0
    pods: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.milli_cpu + other.milli_cpu, self.memory + other.memory, self.pods + other.pods)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.milli_cpu - other.milli_cpu, self.memory - other.memory, self.pods - other.pods)


@functools.lru_cache(maxsize=4096)
def _milli_cached(value: str | int | float) -> int:
    return math.ceil(parse_quantity(value) * 1000)


@functools.lru_cache(maxsize=4096)
def _whole_cached(value: str | int | float) -> int:
    return math.ceil(parse_quantity(value))


def milli(value: Any) -> int:
    """Millicores of a quantity. The parse is memoised: a cluster has few distinct request strings
    (``"100m"``, ``"1Gi"``) and the scheduler cache re-reads them on every pod update."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return _milli_cached(value)
    return math.ceil(parse_quantity(value) * 1000)


def whole(value: Any) -> int:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return _whole_cached(value)
    return math.ceil(parse_quantity(value))


def _of(resources: Obj | None) -> Resources:
    requests = (resources or {}).get("requests") or {}
    return Resources(milli(requests.get("cpu", 0)), whole(requests.get("memory", 0)), 0)


def _max(a: Resources, b: Resources) -> Resources:
    return Resources(max(a.milli_cpu, b.milli_cpu), max(a.memory, b.memory), max(a.pods, b.pods))


def pod_requests(pod: Obj) -> Resources:
    """What a pod asks of a node: sum of containers, at least its largest init container, plus overhead."""
    spec = pod.get("spec") or {}
    total = Resources()
    for c in spec.get("containers") or []:
        total = total + _of(c.get("resources"))
    init = Resources()
    for c in spec.get("initContainers") or []:
        init = _max(init, _of(c.get("resources")))
    total = _max(total, init)
    overhead = spec.get("overhead") or {}
    total = total + Resources(milli(overhead.get("cpu", 0)), whole(overhead.get("memory", 0)), 0)
    return Resources(total.milli_cpu, total.memory, 1)


def node_allocatable(node: Obj) -> Resources:
    status = node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    return Resources(milli(alloc.get("cpu", 0)), whole(alloc.get("memory", 0)), whole(alloc.get("pods", 110)))
