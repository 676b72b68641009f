"""A pod naming a node (``spec.nodeName``) fits only that node."""

from __future__ import annotations

from typing import ClassVar

from atoll.cluster.scheduler.framework import SUCCESS, CycleContext, NodeInfo, Status, unschedulable


class NodeName:
    NAME: ClassVar[str] = "NodeName"

    def filter(self, ctx: CycleContext, node: NodeInfo) -> Status:
        wanted = (ctx.pod.get("spec") or {}).get("nodeName")
        if not wanted or wanted == node.name:
            return SUCCESS
        return unschedulable("node(s) didn't match the requested node name", resolvable=False)
