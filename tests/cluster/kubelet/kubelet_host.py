"""A process hosting one kubelet, for tests that kill it (``python -m tests.cluster.kubelet.kubelet_host``).

Arguments: kubeconfig, node name, runtime root, pod CIDR. Prints ``registered`` once the
node is up, then runs until killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from atoll.client import Client
from atoll.cluster.kubelet.kubelet import Kubelet
from atoll.cluster.kubelet.process import ProcessRuntime
from atoll.cluster.kubelet.simulated import NodeSpec


async def main(kubeconfig: str, node: str, root: str, cidr: str) -> None:
    async with Client.from_kubeconfig(kubeconfig) as client:
        kubelet = Kubelet(client, NodeSpec(node), runtime=ProcessRuntime(Path(root), node=node), pod_cidr=cidr,
                          renew_interval=1, status_interval=1)
        stop = asyncio.Event()
        task = asyncio.create_task(kubelet.run(stop))
        await kubelet.registered.wait()
        print("registered", flush=True)
        await task


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
