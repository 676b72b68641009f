"""One whole member cluster in one process: API server, scheduler, controllers, kubelets, proxy.

``MemberCluster`` starts the API server first (it must answer before anything can
watch it), then every other component as a client of it over HTTPS, exactly as they
would run against a kube-apiserver elsewhere: the scheduler, the controller manager's
controllers, one kubelet per node (process runtime) or one simulated-node driver for
all nodes (simulated runtime), and the service proxy. Components run as tasks of one
``asyncio.TaskGroup``; a failing component is logged and restarted after a pause rather
than taking the cluster down, and stopping tears everything down in reverse order.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atoll.apiserver.server import APIServer, ServerConfig
from atoll.client import Client
from atoll.cluster.controllers.cronjob import CronJobController
from atoll.cluster.controllers.daemonset import DaemonSetController
from atoll.cluster.controllers.deployment import DeploymentController
from atoll.cluster.controllers.endpoints import EndpointsController
from atoll.cluster.controllers.endpointslice import EndpointSliceController
from atoll.cluster.controllers.job import JobController
from atoll.cluster.controllers.nodelifecycle import NodeLifecycleController
from atoll.cluster.controllers.podgc import PodGCController
from atoll.cluster.controllers.replicaset import ReplicaSetController
from atoll.cluster.controllers.serviceaccount import ServiceAccountController
from atoll.cluster.controllers.statefulset import StatefulSetController
from atoll.cluster.kubelet.connector import KubeletConnector, PodAccess
from atoll.cluster.kubelet.images.catalog import ImageCatalog
from atoll.cluster.kubelet.kubelet import Kubelet
from atoll.cluster.kubelet.process import ProcessRuntime
from atoll.cluster.kubelet.simulated import NodeSpec, SimulatedNodes, Stages
from atoll.cluster.proxy.proxying import ServiceProxy
from atoll.cluster.scheduler.controller import SchedulerController
from atoll.machinery.running import Component, Components
from atoll.topology import ClusterTopology

logger = logging.getLogger(__name__)




@dataclass
class MemberConfig:
    topology: ClusterTopology
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    storage: str = ""
    node_address: str = "127.0.0.1"
    """Where NodePorts listen and what nodes report as their InternalIP."""
    eviction_seconds: int = 300
    """Default tolerationSeconds for not-ready/unreachable nodes (kube's DefaultTolerationSeconds)."""
    stages: Stages = field(default_factory=Stages)
    """Pod stage delays for the simulated runtime."""
    lease_renew_interval: float = 10.0
    node_monitor_grace_period: float = 40.0
    """How long a node may go without renewing its lease before it is NotReady (kube's default 40 s)."""
    images: Path | None = None
    """A YAML file of user-defined images for the process runtime (see ``kubelet/images/catalog.py``)."""


def kubernetes_names(topology: ClusterTopology) -> list[str]:
    """What pods call the API server through the ``kubernetes`` Service; its certificate names them all."""
    first = str(next(ipaddress.ip_network(topology.service_cidr).hosts()))
    return [first, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local"]


def node_specs(topology: ClusterTopology, node_address: str) -> list[NodeSpec]:
    return [NodeSpec(name=n.name, cpu=n.cpu, memory=n.memory, pods=n.pods, labels=topology.node_labels(n),
                     taints=tuple(n.taints), address=node_address) for n in topology.nodes]


class MemberCluster:
    def __init__(self, config: MemberConfig) -> None:
        self.config = config
        topo = config.topology
        self.server = APIServer(ServerConfig(state_dir=config.state_dir, host=config.host, port=config.port,
                                             storage=config.storage, name=topo.name,
                                             service_cidr=topo.service_cidr, extra_hosts=kubernetes_names(topo),
                                             default_toleration_seconds=config.eviction_seconds))
        self.client: Client | None = None
        self.components: dict[str, Component] = {}
        self.kubelets: dict[str, Kubelet] = {}
        self._components: Components | None = None

    @property
    def kubeconfig_path(self) -> Path:
        return self.server.kubeconfig_path

    @property
    def url(self) -> str:
        return self.server.url

    async def __aenter__(self) -> MemberCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        await self.server.start()
        try:
            self.client = Client.from_kubeconfig(self.server.kubeconfig_path, pool_size=512,
                                                 user_agent=f"atoll-member/{self.config.topology.name}")
            self.components = self._build(self.client)
            self._components = Components(f"member-{self.config.topology.name}")
            self._components.start(self.components)
        except BaseException:
            await self.stop()
            raise

    def _build(self, client: Client) -> dict[str, Component]:
        cfg, topo = self.config, self.config.topology
        ca_pem = self.server.pki.ca_pem.decode() if self.server.pki is not None else ""
        controllers: list[Any] = [
            SchedulerController(client), DeploymentController(client), ReplicaSetController(client),
            StatefulSetController(client), DaemonSetController(client), JobController(client),
            CronJobController(client),
            EndpointSliceController(client), EndpointsController(client),
            ServiceAccountController(client, ca_pem=ca_pem),
            NodeLifecycleController(client, grace_period=cfg.node_monitor_grace_period),
            PodGCController(client),
        ]
        components: dict[str, Component] = {c.NAME: c for c in controllers}
        specs = node_specs(topo, cfg.node_address)
        if topo.runtime == "simulated":
            components["simulated-nodes"] = SimulatedNodes(client, specs, stages=cfg.stages,
                                                           pod_cidr=topo.pod_cidr,
                                                           renew_interval=cfg.lease_renew_interval)
        else:
            catalog = ImageCatalog.load(cfg.images) if cfg.images is not None else ImageCatalog()
            for i, spec in enumerate(specs):
                runtime = ProcessRuntime(cfg.state_dir / "kubelet" / spec.name, node=spec.name)
                kubelet = Kubelet(client, spec, runtime=runtime, pod_cidr=topo.node_cidr(i), cluster_name=topo.name,
                                  renew_interval=cfg.lease_renew_interval, catalog=catalog)
                self.kubelets[spec.name] = kubelet
                components[f"kubelet-{spec.name}"] = kubelet
        self.server.subresources.node_connector = KubeletConnector(self._pod_access)
        proxy = ServiceProxy(client, node_address=cfg.node_address)
        self.server.extra_metrics.append(proxy.metrics.registry)
        components[proxy.NAME] = proxy
        return components

    def _pod_access(self, node: str) -> PodAccess | None:
        return self.kubelets.get(node)

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Until every node is registered and Ready."""
        from atoll.cluster.kubelet.simulated import NODES

        assert self.client is not None
        wanted = {n.name for n in self.config.topology.nodes}
        async with asyncio.timeout(timeout):
            while True:
                nodes = (await self.client.list(NODES)).get("items") or []
                ready = {n["metadata"]["name"] for n in nodes
                         if any(c.get("type") == "Ready" and c.get("status") == "True"
                                for c in (n.get("status") or {}).get("conditions") or [])}
                if wanted <= ready:
                    return
                if self._components is None or not self._components.running:
                    raise RuntimeError(f"cluster {self.config.topology.name} stopped while starting")
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._components is not None:
            await self._components.stop()
            self._components = None
        if self.client is not None:
            await self.client.close()
            self.client = None
        await self.server.stop()
