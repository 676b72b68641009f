"""Prefer nodes whose CPU and memory use stay balanced after placing the pod."""

from __future__ import annotations

from typing import ClassVar

from atoll.cluster.scheduler.framework import CycleContext, NodeInfo


class BalancedAllocation:
    NAME: ClassVar[str] = "NodeResourcesBalancedAllocation"

    def score(self, ctx: CycleContext, node: NodeInfo) -> int:
        alloc, used, want = node.allocatable, node.requested, ctx.requests
        cap_cpu, cap_memory = alloc.milli_cpu, alloc.memory
        if cap_cpu <= 0 or cap_memory <= 0:
            return 0
        cpu = min((used.milli_cpu + want.milli_cpu) / cap_cpu, 1.0)
        mem = min((used.memory + want.memory) / cap_memory, 1.0)
        # Two resources: the standard deviation is half their difference.
        return int((1 - abs(cpu - mem) / 2) * 100)
