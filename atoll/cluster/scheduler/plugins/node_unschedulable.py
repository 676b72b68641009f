"""Nodes marked ``spec.unschedulable`` (cordoned) take only pods tolerating that taint."""

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

TAINT_KEY = "node.kubernetes.io/unschedulable"
REJECTED = unschedulable("node(s) were unschedulable", resolvable=False)


class NodeUnschedulable:
    NAME: ClassVar[str] = "NodeUnschedulable"

    def filter(self, ctx: CycleContext, node: NodeInfo) -> Status:
        if not node.unschedulable:  # the common case: one attribute read, the pod is not looked at
            return SUCCESS
        for t in (ctx.pod.get("spec") or {}).get("tolerations") or []:
            if t.get("key") == TAINT_KEY and t.get("effect") in ("", None, "NoSchedule") \
                    and t.get("operator", "Equal") in ("Exists", "Equal"):
                return SUCCESS
        return REJECTED

    def filter_nodes(self, ctx: CycleContext, nodes: list[NodeInfo]) -> Rejections:
        rejected: Rejections = {}
        for i, node in enumerate(nodes):
            if node.unschedulable and not (status := self.filter(ctx, node)).ok:
                rejected[i] = status
        return rejected
