"""Joining and unjoining member clusters: what ``karmadactl join`` / ``unjoin`` write.

``join`` reads the member's kubeconfig, checks that the member answers (``/version``),
and writes, on the federation:

* the Secret ``karmada-cluster/<name>`` with ``token`` and ``caBundle`` as Karmada's join
  writes them (Atoll extension: a kubeconfig that authenticates with a client certificate
  stores it under ``tls.crt`` / ``tls.key`` instead of a token — see
  :mod:`atoll.federation.clusters.clients`);
* the Cluster ``<name>`` with ``spec.apiEndpoint``, ``spec.secretRef``, ``spec.syncMode:
  Push``, ``spec.id`` (the uid of the member's ``kube-system`` namespace, Karmada's
  ``ObtainClusterID``), provider, region and zones, and the finalizer
  ``karmada.io/cluster-controller`` so that unjoining can clean up before it goes;
* the execution namespace ``karmada-es-<name>`` where the member's Works live.

Deviation: Karmada's join creates a ServiceAccount in the member and stores *its* token;
Atoll stores the credentials of the kubeconfig it was given (the member needs no
ServiceAccount token machinery).

``unjoin`` marks the Cluster for deletion, deletes its Works (the execution controller
removes what they put in the member, or only releases it when a Work sets
``preserveResourcesOnDeletion``), waits for them to go, then removes the execution
namespace, the Cluster and the Secret.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import logging
from pathlib import Path
from typing import Any

from atoll.api.errors import AlreadyExists, APIError, Conflict, NotFound, ServiceUnavailable, Timeout
from atoll.client import Client, ClusterConfig, Resource, kubeconfig
from atoll.federation import kinds
from atoll.federation.clusters.clients import CA_KEY, CERT_KEY, KEY_KEY, SECRETS, TOKEN_KEY

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
NAMESPACES = Resource("v1", "namespaces", False, "Namespace")
CLUSTER_FINALIZER = "karmada.io/cluster-controller"
"""Karmada's ``ClusterControllerFinalizer``: the Cluster stays until its Works are cleaned up."""


class JoinError(Exception):
    """The member cannot be joined (unreachable, rejected the credentials, bad kubeconfig)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def secret_for(name: str, config: ClusterConfig) -> Obj:
    """The credentials Secret of a member, from its kubeconfig's settings."""
    data: dict[str, str] = {}
    if config.token:
        data[TOKEN_KEY] = _b64(config.token.encode())
    if config.ca_data:
        data[CA_KEY] = _b64(config.ca_data)
    if config.cert_data and config.key_data:
        data[CERT_KEY] = _b64(config.cert_data)
        data[KEY_KEY] = _b64(config.key_data)
    if not data.get(TOKEN_KEY) and CERT_KEY not in data:
        raise JoinError(f"the kubeconfig of cluster {name} has neither a token nor a client certificate "
                        "(basic auth and exec plugins cannot be stored for the federation)")
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": kinds.CLUSTER_NAMESPACE}, "data": data}


def cluster_for(name: str, config: ClusterConfig, *, cluster_id: str = "", provider: str = "", region: str = "",
                zone: str = "", labels: dict[str, str] | None = None) -> Obj:
    """The Cluster object ``karmadactl join`` writes (Push mode)."""
    spec: Obj = {"syncMode": "Push", "apiEndpoint": config.server,
                 "secretRef": {"namespace": kinds.CLUSTER_NAMESPACE, "name": name}}
    if cluster_id:
        spec["id"] = cluster_id
    if provider:
        spec["provider"] = provider
    if region:
        spec["region"] = region
    if zone:
        spec["zones"] = [zone]
    if config.insecure:
        spec["insecureSkipTLSVerification"] = True
    md: Obj = {"name": name, "finalizers": [CLUSTER_FINALIZER]}
    if labels:
        md["labels"] = dict(labels)
    return {"apiVersion": kinds.CLUSTER_V1ALPHA1, "kind": "Cluster", "metadata": md, "spec": spec}


async def _ensure_namespace(fed: Client, name: str) -> None:
    try:
        await fed.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    except AlreadyExists:
        pass


async def _check_member(name: str, config: ClusterConfig) -> str:
    """Ask the member who it is; the uid of its kube-system namespace (or "") is its id."""
    async with Client(config, timeout=10, connect_timeout=5) as member:
        try:
            await member.version()
        except (ServiceUnavailable, Timeout) as exc:
            raise JoinError(f"cluster {name} does not answer at {config.server}: {exc}") from exc
        except APIError as exc:
            raise JoinError(f"cluster {name} at {config.server} refused /version: {exc}") from exc
        try:
            ns = await member.get(NAMESPACES, "kube-system")
            return str((ns.get("metadata") or {}).get("uid") or "")
        except NotFound:
            return ""
        except APIError as exc:
            raise JoinError(f"cluster {name} at {config.server} rejected the credentials: {exc}") from exc


async def join(fed: Client, name: str, member_kubeconfig: Path, *, context: str | None = None, provider: str = "",
               region: str = "", zone: str = "", labels: dict[str, str] | None = None) -> Obj:
    """Register a member cluster with the federation; returns the Cluster object.

    Joining an already joined name updates its Secret and Cluster spec (a re-join with
    new credentials), as ``karmadactl join`` does when the objects exist.
    """
    try:
        config = kubeconfig.load(member_kubeconfig, context=context)
    except kubeconfig.KubeconfigError as exc:
        raise JoinError(f"cannot read the kubeconfig of cluster {name}: {exc}") from exc
    cluster_id = await _check_member(name, config)
    await _ensure_namespace(fed, kinds.CLUSTER_NAMESPACE)
    secret = secret_for(name, config)
    try:
        await fed.create(SECRETS, secret)
    except AlreadyExists:
        current = await fed.get(SECRETS, name, kinds.CLUSTER_NAMESPACE)
        current["data"] = secret["data"]
        await fed.replace(SECRETS, current)
    desired = cluster_for(name, config, cluster_id=cluster_id, provider=provider, region=region, zone=zone,
                          labels=labels)
    try:
        created = await fed.create(kinds.CLUSTERS, desired)
    except AlreadyExists:
        created = await _update_cluster(fed, desired)
    await _ensure_namespace(fed, kinds.execution_namespace(name))
    logger.info("joined cluster %s at %s", name, config.server)
    return created


async def _update_cluster(fed: Client, desired: Obj, attempts: int = 5) -> Obj:
    name = desired["metadata"]["name"]
    for _ in range(attempts):
        current = await fed.get(kinds.CLUSTERS, name)
        if (current.get("metadata") or {}).get("deletionTimestamp"):
            raise JoinError(f"cluster {name} is being unjoined; join again once it is gone")
        updated = copy.deepcopy(current)
        spec = updated.setdefault("spec", {})
        taints = spec.get("taints")
        spec.update(desired["spec"])
        if taints:
            spec["taints"] = taints
        md = updated["metadata"]
        md["labels"] = {**(md.get("labels") or {}), **(desired["metadata"].get("labels") or {})}
        md["finalizers"] = sorted({*(md.get("finalizers") or []), CLUSTER_FINALIZER})
        try:
            result: Obj = await fed.replace(kinds.CLUSTERS, updated)
            return result
        except Conflict:
            continue
    raise Conflict(f"cluster {name} kept changing while being re-joined")


async def unjoin(fed: Client, name: str, *, timeout: float = 60.0) -> None:
    """Remove a member: its Works (and what they created, unless preserved), then the Cluster and Secret.

    Needs the execution controller running to clean the member; raises ``Timeout`` if the
    Works are still there after ``timeout`` seconds (the Cluster stays, marked for
    deletion, and a later ``unjoin`` resumes).
    """
    try:
        cluster = await fed.get(kinds.CLUSTERS, name)
    except NotFound:
        cluster = None
    if cluster is not None and not (cluster.get("metadata") or {}).get("deletionTimestamp"):
        await fed.delete(kinds.CLUSTERS, name)
    namespace = kinds.execution_namespace(name)
    try:
        await fed.delete_collection(kinds.WORKS, namespace)
    except NotFound:
        pass
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            left = (await fed.list(kinds.WORKS, namespace)).get("items") or []
        except NotFound:
            left = []
        if not left:
            break
        if loop.time() > deadline:
            raise Timeout(f"{len(left)} Works of cluster {name} still wait for the execution controller "
                          f"after {timeout:g}s: {', '.join(w['metadata']['name'] for w in left[:5])}")
        await asyncio.sleep(0.2)
    try:
        await fed.delete(NAMESPACES, namespace)
    except NotFound:
        pass
    await _drop_finalizer(fed, name)
    try:
        await fed.delete(SECRETS, name, kinds.CLUSTER_NAMESPACE)
    except NotFound:
        pass
    logger.info("unjoined cluster %s", name)


async def _drop_finalizer(fed: Client, name: str, attempts: int = 5) -> None:
    for _ in range(attempts):
        try:
            current = await fed.get(kinds.CLUSTERS, name)
        except NotFound:
            return
        md = current.get("metadata") or {}
        finalizers = [f for f in md.get("finalizers") or [] if f != CLUSTER_FINALIZER]
        if finalizers == list(md.get("finalizers") or []):
            return
        try:
            await fed.patch(kinds.CLUSTERS, name, {"metadata": {"finalizers": finalizers or None,
                                                                "resourceVersion": md.get("resourceVersion")}})
            return
        except NotFound:
            return
        except Conflict:
            continue
    raise Conflict(f"cluster {name} kept changing while its finalizer was removed")
