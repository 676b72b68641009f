"""Prefer nodes whose CPU and memory use stay balanced after placing the pod."""

from __future__ import annotations

from typing import ClassVar

from atoll.cluster.scheduler.framework import CycleContext, NodeInfo


class BalancedAllocation:
    NAME: ClassVar[str] = "NodeResourcesBalancedAllocation"

    def score(self, ctx: CycleContext, node: NodeInfo) -> int:
        return self.score_nodes(ctx, [node])[0]

    def score_nodes(self, ctx: CycleContext, nodes: list[NodeInfo]) -> list[int]:
        want = ctx.requests
        want_cpu, want_memory = want.milli_cpu, want.memory
        scores = []
        for node in nodes:
            alloc, used = node.allocatable, node.requested
            cap_cpu, cap_memory = alloc.milli_cpu, alloc.memory
            if cap_cpu <= 0 or cap_memory <= 0:
                scores.append(0)
                continue
            cpu = (used.milli_cpu + want_cpu) / cap_cpu
            mem = (used.memory + want_memory) / cap_memory
            cpu = cpu if cpu < 1.0 else 1.0
            mem = mem if mem < 1.0 else 1.0
            # Two resources: the standard deviation is half their difference.
            scores.append(int((1 - abs(cpu - mem) / 2) * 100))
        return scores
