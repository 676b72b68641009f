"""Requests against allocatable, counting pods already on the node; LeastAllocated score."""

from __future__ import annotations

from typing import ClassVar

from atoll.cluster.scheduler.framework import (
    SUCCESS,
    CycleContext,
    NodeInfo,
    Rejections,
    Status,
    unschedulable,
)


class NodeResourcesFit:
    NAME: ClassVar[str] = "NodeResourcesFit"

    def filter(self, ctx: CycleContext, node: NodeInfo) -> Status:
        alloc, used, want = node.allocatable, node.requested, ctx.requests
        reasons = []
        if used.pods + 1 > alloc.pods:
            reasons.append("Too many pods")
        if want.milli_cpu and used.milli_cpu + want.milli_cpu > alloc.milli_cpu:
            reasons.append("Insufficient cpu")
        if want.memory and used.memory + want.memory > alloc.memory:
            reasons.append("Insufficient memory")
        return unschedulable(*reasons) if reasons else SUCCESS

    def filter_nodes(self, ctx: CycleContext, nodes: list[NodeInfo]) -> Rejections:
        """Nodes with room pass on three integer compares; the others get :meth:`filter`'s reasons."""
        want = ctx.requests
        cpu, memory = want.milli_cpu, want.memory
        rejected: Rejections = {}
        for i, node in enumerate(nodes):
            alloc, used = node.allocatable, node.requested
            if used.pods < alloc.pods and used.milli_cpu + cpu <= alloc.milli_cpu \
                    and used.memory + memory <= alloc.memory:
                continue
            status = self.filter(ctx, node)
            if not status.ok:
                rejected[i] = status
        return rejected

    def score(self, ctx: CycleContext, node: NodeInfo) -> int:
        return self.score_nodes(ctx, [node])[0]

    def score_nodes(self, ctx: CycleContext, nodes: list[NodeInfo]) -> list[int]:
        """LeastAllocated: the mean free fraction (in %) of CPU and memory after placing the pod."""
        want = ctx.requests
        want_cpu, want_memory = want.milli_cpu, want.memory
        scores = []
        for node in nodes:
            alloc, used = node.allocatable, node.requested
            cap, after = alloc.milli_cpu, used.milli_cpu + want_cpu
            cpu = 0 if cap <= 0 or after > cap else (cap - after) * 100 // cap
            cap, after = alloc.memory, used.memory + want_memory
            memory = 0 if cap <= 0 or after > cap else (cap - after) * 100 // cap
            scores.append((cpu + memory) // 2)  # both parts are >= 0: the same as int(mean)
        return scores
