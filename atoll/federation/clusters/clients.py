"""A client per member cluster, built from its Cluster object and credentials Secret.

Karmada's ``pkg/util/membercluster_client.go`` builds a member's REST config from
``Cluster.spec.apiEndpoint``, ``spec.insecureSkipTLSVerification`` and the Secret named by
``spec.secretRef`` (``token`` and ``caBundle``). :class:`MemberClients` does the same and
caches one :class:`~atoll.client.Client` per member: it is rebuilt when what it was built
from changes (a rotated token, a moved endpoint) and closed when the member goes away, and
listeners hear of both so that informers on the old client are stopped.

Atoll extension: a member whose kubeconfig authenticates with a client certificate (an
Atoll API server's admin kubeconfig does) has its certificate and key stored in the same
Secret under ``tls.crt`` and ``tls.key``; Karmada itself only knows tokens.

:class:`MemberInformers` keeps informers on member resources, started on demand (the kinds
a Work carries, the nodes and pods the status controller sums) and stopped with the member
client they were built on — Karmada's multi-cluster informer manager.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from atoll.api.errors import BadRequest, NotFound
from atoll.client import Client, ClusterConfig, Resource
from atoll.federation import kinds
from atoll.machinery.informing import Handler, Informer

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
SECRETS = Resource("v1", "secrets", True, "Secret")

TOKEN_KEY = "token"
"""Karmada's ``SecretTokenKey``."""
CA_KEY = "caBundle"
"""Karmada's ``SecretCADataKey``."""
CERT_KEY = "tls.crt"
"""Atoll extension: the client certificate of a member reached with one (PEM)."""
KEY_KEY = "tls.key"
"""Atoll extension: the private key of that certificate (PEM)."""

Listener = Callable[[str], None]
"""Called with a cluster name when its client was replaced or removed."""


class MemberConfigError(BadRequest):
    """The Cluster or its Secret cannot be turned into a client (no endpoint, no credentials...)."""


def _decode(data: Obj, key: str) -> bytes | None:
    value = data.get(key)
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MemberConfigError(f"key {key} of the member Secret is not valid base64") from exc


def endpoint_url(endpoint: str) -> str:
    """``spec.apiEndpoint`` as a URL: Karmada accepts ``host:port`` meaning HTTPS."""
    endpoint = endpoint.strip().rstrip("/")
    return endpoint if "://" in endpoint else f"https://{endpoint}"


def member_config(cluster: Obj, secret: Obj | None) -> ClusterConfig:
    """The connection settings of one member, as Karmada's ``BuildClusterConfig`` derives them."""
    name = str((cluster.get("metadata") or {}).get("name") or "")
    spec = cluster.get("spec") or {}
    endpoint = str(spec.get("apiEndpoint") or "")
    if not endpoint:
        raise MemberConfigError(f"the api endpoint of cluster {name} is empty")
    if secret is None:
        raise MemberConfigError(f"cluster {name} does not have a secret")
    data = secret.get("data") or {}
    token_raw = _decode(data, TOKEN_KEY)
    cert, key = _decode(data, CERT_KEY), _decode(data, KEY_KEY)
    if not token_raw and not (cert and key):
        raise MemberConfigError(f'the secret for cluster {name} is missing a non-empty value for "{TOKEN_KEY}" '
                                f"(or a client certificate under {CERT_KEY}/{KEY_KEY})")
    insecure = bool(spec.get("insecureSkipTLSVerification"))
    ca = _decode(data, CA_KEY)
    if not insecure and ca is None and endpoint_url(endpoint).startswith("https://"):
        raise MemberConfigError(f'the secret for cluster {name} is missing the CA data key "{CA_KEY}"')
    token = token_raw.decode().strip() if token_raw else None
    return ClusterConfig(server=endpoint_url(endpoint), token=token, ca_data=None if insecure else ca,
                         cert_data=cert, key_data=key, insecure=insecure, cluster_name=name, context=name)


def fingerprint(config: ClusterConfig) -> str:
    """What the client was built from: a change means a new client."""
    h = hashlib.sha256()
    for part in (config.server, config.token or "", config.ca_data or b"", config.cert_data or b"",
                 config.key_data or b"", str(config.insecure)):
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


@dataclass
class _Member:
    client: Client
    fingerprint: str


class MemberClients:
    """One cached :class:`Client` per member cluster, read from the federation's Cluster and Secret.

    ``await clients.get(name)`` reads the Cluster and its Secret (from the informer caches
    while :meth:`run` runs, else with two GETs) and returns the cached client unless
    they changed. Requests to members time out after ``timeout`` seconds, so that a hung
    member costs a probe, not a worker.
    """

    def __init__(self, fed: Client, *, timeout: float = 10.0, connect_timeout: float = 5.0) -> None:
        self.fed = fed
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._members: dict[str, _Member] = {}
        self._listeners: list[Listener] = []
        self._lock = asyncio.Lock()
        self._clusters: Informer | None = None
        self._secrets: Informer | None = None

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _notify(self, name: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(name)
            except Exception:
                logger.exception("member client listener failed for %s", name)

    def cached(self, name: str) -> Client | None:
        member = self._members.get(name)
        return member.client if member else None

    async def _cluster(self, name: str) -> Obj:
        if self._clusters is not None and self._clusters.synced.is_set():
            cached = self._clusters.lister.get(name)
            if cached is None:
                raise NotFound(f'clusters.cluster.karmada.io "{name}" not found')
            return cached
        return await self.fed.get(kinds.CLUSTERS, name)

    async def _secret(self, cluster: Obj) -> Obj | None:
        ref = (cluster.get("spec") or {}).get("secretRef") or {}
        if not ref.get("name"):
            return None
        namespace = str(ref.get("namespace") or kinds.CLUSTER_NAMESPACE)
        if (self._secrets is not None and self._secrets.synced.is_set()
                and namespace == kinds.CLUSTER_NAMESPACE):
            cached = self._secrets.lister.get(f"{namespace}/{ref['name']}")
            if cached is not None:
                return cached  # else it may be newer than the cache: ask
        try:
            return await self.fed.get(SECRETS, str(ref["name"]), namespace)
        except NotFound:
            return None

    async def get(self, name: str) -> Client:
        """The client of member ``name``; raises ``NotFound`` or :class:`MemberConfigError`."""
        return await self.for_cluster(await self._cluster(name))

    async def for_cluster(self, cluster: Obj) -> Client:
        """The client of the member described by ``cluster`` (a Cluster object)."""
        name = str(cluster["metadata"]["name"])
        config = member_config(cluster, await self._secret(cluster))
        fp = fingerprint(config)
        async with self._lock:
            member = self._members.get(name)
            if member is not None and member.fingerprint == fp:
                return member.client
            client = Client(config, timeout=self.timeout, connect_timeout=self.connect_timeout,
                            user_agent="atoll-federation/0.1", field_manager="karmada-execution")
            self._members[name] = _Member(client, fp)
        if member is not None:
            logger.info("credentials or endpoint of cluster %s changed: new client", name)
            self._notify(name)
            await member.client.close()
        return client

    async def remove(self, name: str) -> None:
        """Forget (and close) the client of a member that is gone."""
        async with self._lock:
            member = self._members.pop(name, None)
        if member is not None:
            self._notify(name)
            await member.client.close()

    async def close(self) -> None:
        for name in list(self._members):
            await self.remove(name)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve Clusters and Secrets from informers (fewer GETs), and drop clients of removed Clusters."""
        clusters = Informer(self.fed, kinds.CLUSTERS)
        secrets = Informer(self.fed, SECRETS, namespace=kinds.CLUSTER_NAMESPACE)
        gone: asyncio.Queue[str] = asyncio.Queue()

        def on_cluster(event: str, old: Obj | None, _new: Obj | None) -> None:
            if event == "DELETED" and old is not None:
                gone.put_nowait(str(old["metadata"]["name"]))

        clusters.add_handler(on_cluster)
        self._clusters, self._secrets = clusters, secrets

        async def reaper() -> None:
            while True:
                await self.remove(await gone.get())

        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(clusters.run(stop)), tg.create_task(secrets.run(stop))]
                reaping = tg.create_task(reaper())
                await stop.wait()
                reaping.cancel()
                for task in tasks:
                    await task
        finally:
            self._clusters = self._secrets = None
            await self.close()


@dataclass
class _Watch:
    informer: Informer
    client: Client
    stop: asyncio.Event
    task: asyncio.Task[None]


class MemberInformers:
    """Informers on member resources for one controller, started on demand.

    ``informer(cluster, client, resource, label_selector=...)`` returns a running informer
    (its handler is the controller's), reusing the one already running for the same
    query on the same client. Informers of a member whose client was replaced or removed
    are stopped (through :class:`MemberClients`' listener), so the next call builds them
    on the new client. Caches are shared per client with every other controller of the
    process (see :mod:`atoll.machinery.informing`).
    """

    def __init__(self, members: MemberClients, handler: Callable[[str, Resource], Handler]) -> None:
        """``handler(cluster, resource)`` makes the event handler for one member resource."""
        self.members = members
        self._handler = handler
        self._watches: dict[tuple[str, str, str, str], _Watch] = {}
        self._stale: set[str] = set()
        self._reaping: set[asyncio.Task[None]] = set()
        members.add_listener(self._on_member_changed)

    def _on_member_changed(self, cluster: str) -> None:
        for key in [k for k in self._watches if k[0] == cluster]:
            watch = self._watches.pop(key)
            watch.stop.set()
            self._reaping.add(watch.task)
            watch.task.add_done_callback(self._reaping.discard)

    def informer(self, cluster: str, client: Client, resource: Resource, *, label_selector: str = "") -> Informer:
        key = (cluster, resource.api_version, resource.plural, label_selector)
        watch = self._watches.get(key)
        if watch is not None and watch.client is client and not watch.task.done():
            return watch.informer
        if watch is not None:
            watch.stop.set()
        informer = Informer(client, resource, label_selector=label_selector)
        informer.add_handler(self._handler(cluster, resource))
        stop = asyncio.Event()
        task = asyncio.get_running_loop().create_task(
            informer.run(stop), name=f"member-informer-{cluster}-{resource.plural}")
        self._watches[key] = _Watch(informer, client, stop, task)
        return informer

    def get(self, cluster: str, resource: Resource, *, label_selector: str = "") -> Informer | None:
        watch = self._watches.get((cluster, resource.api_version, resource.plural, label_selector))
        return watch.informer if watch is not None else None

    def resources(self, cluster: str) -> list[Resource]:
        return [w.informer.resource for k, w in self._watches.items() if k[0] == cluster]

    async def stop_cluster(self, cluster: str) -> None:
        self._on_member_changed(cluster)
        await self._drain()

    async def _drain(self) -> None:
        tasks = list(self._reaping)
        for task in tasks:
            try:
                await asyncio.wait_for(task, 5)
            except (TimeoutError, asyncio.CancelledError, Exception):
                task.cancel()
        self._reaping.difference_update(tasks)

    async def close(self) -> None:
        self.members.remove_listener(self._on_member_changed)
        for key in list(self._watches):
            watch = self._watches.pop(key)
            watch.stop.set()
            self._reaping.add(watch.task)
        await self._drain()
