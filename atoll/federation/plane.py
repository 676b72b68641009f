"""The federation control plane in one process: an API server speaking Karmada's API, plus its controllers.

``Federation`` starts an ordinary Atoll API server, installs Karmada's CRDs through
the API (as Karmada's installer does on the karmada-apiserver), then runs the
federation controllers as clients of it over HTTPS: cluster status, the resource
detector, dependency distribution, the multi-cluster scheduler, the binding
controllers, execution and work status, binding status aggregation, failover and
rebalancing. Member clusters are reached only through their Kubernetes API (the
credentials ``atoll join`` stored in ``karmada-cluster``), so a real kube-apiserver
member works exactly like an Atoll one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from atoll.apiserver.server import APIServer, ServerConfig
from atoll.client import Client
from atoll.federation import crds, rebalance
from atoll.machinery.running import Component, Components

logger = logging.getLogger(__name__)

FEDERATION_SERVICE_CIDR = "127.15.0.0/16"
"""ClusterIPs of Service templates on the federation: a range no member uses (members: 127.80+)."""



@dataclass
class FederationConfig:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    storage: str = ""
    name: str = "atoll"
    """Context and cluster name of the federation in its kubeconfig."""
    cluster_status_interval: float = 2.0
    """How often members are probed (Karmada: 10 s)."""
    cluster_failure_threshold: float = 6.0
    """How long probes must fail before a member is NotReady (Karmada: 30 s)."""
    cluster_success_threshold: float = 2.0
    graceful_eviction_timeout: float = 600.0


class Federation:
    def __init__(self, config: FederationConfig) -> None:
        self.config = config
        self.server = APIServer(ServerConfig(state_dir=config.state_dir, host=config.host, port=config.port,
                                             storage=config.storage, name=config.name,
                                             service_cidr=FEDERATION_SERVICE_CIDR))
        self.client: Client | None = None
        self.components: dict[str, Component] = {}
        self._components: Components | None = None
        self._closers: list[Callable[[], Awaitable[None]]] = []

    @property
    def kubeconfig_path(self) -> Path:
        return self.server.kubeconfig_path

    @property
    def url(self) -> str:
        return self.server.url

    async def __aenter__(self) -> Federation:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        await self.server.start()
        try:
            self.client = Client.from_kubeconfig(self.server.kubeconfig_path, pool_size=512,
                                                 user_agent="atoll-federation")
            await crds.install(self.client, definitions=[*crds.DEFINITIONS, rebalance.DEFINITION])
            self.components = self._build(self.client)
            self._components = Components("federation")
            self._components.start(self.components)
        except BaseException:
            await self.stop()
            raise

    def _build(self, client: Client) -> dict[str, Component]:
        from atoll.federation.binding import BindingController, ClusterResourceBindingController
        from atoll.federation.clusters.clients import MemberClients
        from atoll.federation.clusters.status import ClusterStatusController
        from atoll.federation.dependencies import DependenciesDistributor
        from atoll.federation.detector import Detector
        from atoll.federation.execution import ExecutionController
        from atoll.federation.failover import (
            ApplicationFailoverController,
            ClusterTaintManager,
            GracefulEvictionController,
        )
        from atoll.federation.scheduler.controller import SchedulerController
        from atoll.federation.status import BindingStatusController
        from atoll.federation.workstatus import WorkStatusController

        cfg = self.config
        members = MemberClients(client)
        self._closers.append(members.close)
        controllers: list[Any] = [
            ClusterStatusController(client, members, interval=cfg.cluster_status_interval,
                                    failure_threshold=cfg.cluster_failure_threshold,
                                    success_threshold=cfg.cluster_success_threshold),
            Detector(client), DependenciesDistributor(client), SchedulerController(client),
            BindingController(client), ClusterResourceBindingController(client),
        ]
        execution = ExecutionController(client, members)
        controllers += [execution, WorkStatusController(client, members, applier=execution.applier),
                        BindingStatusController(client), ClusterTaintManager(client),
                        GracefulEvictionController(client, timeout=cfg.graceful_eviction_timeout),
                        ApplicationFailoverController(client), rebalance.RebalancerController(client)]
        for c in controllers:
            metrics = getattr(c, "metrics", None)
            if isinstance(metrics, CollectorRegistry):
                self.server.extra_metrics.append(metrics)
        components: dict[str, Component] = {"member-clients": members}
        components.update({c.NAME: c for c in controllers})
        return components

    async def stop(self) -> None:
        if self._components is not None:
            await self._components.stop()
            self._components = None
        for close in reversed(self._closers):
            with contextlib.suppress(Exception):
                await close()
        self._closers.clear()
        if self.client is not None:
            await self.client.close()
            self.client = None
        await self.server.stop()
