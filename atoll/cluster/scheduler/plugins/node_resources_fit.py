"""Requests against allocatable, counting pods already on the node; LeastAllocated score."""

from __future__ import annotations

from typing import ClassVar

from atoll.cluster.scheduler.framework import SUCCESS, CycleContext, NodeInfo, Status, unschedulable


class NodeResourcesFit:
    NAME: ClassVar[str] = "NodeResourcesFit"

    def filter(self, ctx: CycleContext, node: NodeInfo) -> Status:
        # Runs for every pod on every sampled node: plain integer compares, no temporaries.
        alloc, used, want = node.allocatable, node.requested, ctx.requests
        too_many = used.pods + 1 > alloc.pods
        cpu = want.milli_cpu and used.milli_cpu + want.milli_cpu > alloc.milli_cpu
        memory = want.memory and used.memory + want.memory > alloc.memory
        if not (too_many or cpu or memory):
            return SUCCESS
        reasons = []
        if too_many:
            reasons.append("Too many pods")
        if cpu:
            reasons.append("Insufficient cpu")
        if memory:
            reasons.append("Insufficient memory")
        return unschedulable(*reasons)

    def score(self, ctx: CycleContext, node: NodeInfo) -> int:
        """LeastAllocated: the mean free fraction of CPU and memory after placing the pod."""
        alloc, used, want = node.allocatable, node.requested, ctx.requests
        cap, after = alloc.milli_cpu, used.milli_cpu + want.milli_cpu
        cpu = 0 if cap <= 0 or after > cap else (cap - after) * 100 // cap
        cap, after = alloc.memory, used.memory + want.memory
        memory = 0 if cap <= 0 or after > cap else (cap - after) * 100 // cap
        return (cpu + memory) // 2  # both parts are >= 0: the same as int(mean)
