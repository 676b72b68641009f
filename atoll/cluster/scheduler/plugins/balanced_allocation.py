"""Prefer nodes whose CPU and memory use stay balanced after placing the pod."""

from __future__ import annotations

from typing import ClassVar

from atoll.cluster.scheduler.framework import CycleContext, NodeInfo


class BalancedAllocation:
    NAME: ClassVar[str] = "NodeResourcesBalancedAllocation"

    def score(self, ctx: CycleContext, node: NodeInfo) -> int:
        alloc, after = node.allocatable, node.requested + ctx.requests
        if alloc.milli_cpu <= 0 or alloc.memory <= 0:
            return 0
        cpu = min(after.milli_cpu / alloc.milli_cpu, 1.0)
        mem = min(after.memory / alloc.memory, 1.0)
        # Two resources: the standard deviation is half their difference.
        return int((1 - abs(cpu - mem) / 2) * 100)
