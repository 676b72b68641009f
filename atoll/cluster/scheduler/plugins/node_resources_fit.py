"""Requests against allocatable, counting pods already on the node; LeastAllocated score."""

from __future__ import annotations

from typing import ClassVar

from atoll.cluster.scheduler.framework import SUCCESS, CycleContext, NodeInfo, Status, unschedulable


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

    def score(self, ctx: CycleContext, node: NodeInfo) -> int:
        """LeastAllocated: the mean free fraction of CPU and memory after placing the pod."""
        alloc, after = node.allocatable, node.requested + ctx.requests
        parts = []
        for cap, used in ((alloc.milli_cpu, after.milli_cpu), (alloc.memory, after.memory)):
            parts.append(0 if cap <= 0 or used > cap else (cap - used) * 100 // cap)
        return int(sum(parts) / len(parts))
