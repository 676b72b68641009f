"""A pod naming a node (``spec.nodeName``) fits only that node."""

from __future__ import annotations

from typing import ClassVar

from atoll.cluster.scheduler.framework import SKIP, SUCCESS, CycleContext, NodeInfo, Status, unschedulable

REJECTED = unschedulable("node(s) didn't match the requested node name", resolvable=False)


class NodeName:
    NAME: ClassVar[str] = "NodeName"

    def pre_filter(self, ctx: CycleContext) -> Status:
        """Most pods name no node: then there is nothing to check on any node."""
        return SUCCESS if (ctx.pod.get("spec") or {}).get("nodeName") else SKIP

    def filter(self, ctx: CycleContext, node: NodeInfo) -> Status:
        wanted = (ctx.pod.get("spec") or {}).get("nodeName")
        if not wanted or wanted == node.name:
            return SUCCESS
        return REJECTED
