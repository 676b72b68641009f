"""Joining members, their status and taints, over a real federation API server and real member API servers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atoll.api.errors import NotFound
from atoll.client import Client, Resource
from atoll.cluster.kubelet.simulated import NodeSpec, SimulatedNodes
from atoll.federation import crds, kinds
from atoll.federation.clusters import join, unjoin
from atoll.federation.clusters.clients import CA_KEY, CERT_KEY, KEY_KEY, SECRETS, MemberClients
from atoll.federation.clusters.registry import CLUSTER_FINALIZER, JoinError
from atoll.federation.clusters.status import TAINT_UNREACHABLE
from tests.conftest import RunningServer, stop_process
from tests.federation.clusters.harness import federation, port_of, start_member
from tests.waiting import eventually

PODS = Resource("v1", "pods", True, "Pod")
NSS = Resource("v1", "namespaces", False, "Namespace")


@pytest.fixture(scope="module")
def member_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("member-a") / "state"


@pytest.fixture(scope="module")
def member(member_dir: Path) -> Iterator[RunningServer]:
    server = start_member(member_dir, name="member-a")
    try:
        yield server
    finally:
        stop_process(server.process)


def ready(cluster: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in (cluster.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), None)


async def test_join_fails_clearly_for_a_member_that_does_not_answer(apiserver: RunningServer,
                                                                    tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{name: c, cluster: {server: "
        "'https://127.0.0.1:9', insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n")
    async with Client.from_kubeconfig(apiserver.kubeconfig) as fed:
        with pytest.raises(JoinError, match=r"does not answer at https://127\.0\.0\.1:9"):
            await join(fed, "nowhere", kubeconfig)
        with pytest.raises(NotFound):
            await fed.get(kinds.CLUSTERS, "nowhere")


async def test_join_status_outage_recovery_and_unjoin(apiserver: RunningServer, member: RunningServer,
                                                      member_dir: Path) -> None:
    async with federation(apiserver) as fed, Client.from_kubeconfig(member.kubeconfig) as mc:
        stop = asyncio.Event()
        sim = SimulatedNodes(mc, [NodeSpec("a-node-0", cpu="4", memory="8Gi"), NodeSpec("a-node-1", cpu="2",
                                                                                         memory="4Gi", pods=10)])
        sim_task = asyncio.create_task(sim.run(stop))
        try:
            await mc.create(NSS, {"metadata": {"name": "apps"}})
            pod = {"metadata": {"name": "p1", "namespace": "apps"},
                   "spec": {"containers": [{"name": "c", "image": "echo",
                                            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]}}
            await mc.create(PODS, pod)
            cluster = await join(fed.client, "member-a", member.kubeconfig, provider="atoll", region="eu-west",
                                 zone="eu-west-1a", labels={"tier": "gold"})
            spec = cluster["spec"]
            assert spec["syncMode"] == "Push" and spec["apiEndpoint"] == member.url.rstrip("/")
            assert spec["secretRef"] == {"namespace": "karmada-cluster", "name": "member-a"}
            assert (spec["provider"], spec["region"], spec["zones"]) == ("atoll", "eu-west", ["eu-west-1a"])
            assert spec["id"] and cluster["metadata"]["labels"] == {"tier": "gold"}
            assert CLUSTER_FINALIZER in cluster["metadata"]["finalizers"]
            secret = await fed.client.get(SECRETS, "member-a", "karmada-cluster")
            assert {CA_KEY, CERT_KEY, KEY_KEY} <= set(secret["data"])  # the member's kubeconfig uses a cert
            assert b"BEGIN CERTIFICATE" in base64.b64decode(secret["data"][CA_KEY])
            await fed.client.get(NSS, "karmada-es-member-a")

            async def status_ready() -> dict[str, Any] | None:
                c = await fed.client.get(kinds.CLUSTERS, "member-a")
                st = c.get("status") or {}
                ok = (ready(c) or {}).get("status") == "True" and (st.get("nodeSummary") or {}).get("readyNum") == 2
                return st if ok and st.get("resourceSummary", {}).get("allocating") else None

            st = await eventually(status_ready, timeout=20)
            assert st["kubernetesVersion"].startswith("v1.")
            assert st["nodeSummary"] == {"totalNum": 2, "readyNum": 2}
            summary = st["resourceSummary"]
            assert summary["allocatable"] == {"cpu": "6", "memory": "12Gi", "pods": "120"}
            assert summary["allocating"] == {"cpu": "500m", "memory": "1Gi", "pods": "1"}  # not bound yet
            assert "allocated" not in summary
            apps = next(e for e in st["apiEnablements"] if e["groupVersion"] == "apps/v1")
            assert {"name": "deployments", "kind": "Deployment"} in apps["resources"]
            assert not any("/" in r["name"] for e in st["apiEnablements"] for r in e["resources"])
            complete = next(c for c in st["conditions"] if c["type"] == "CompleteAPIEnablements")
            assert complete["status"] == "True"
            assert ready({"status": st})["reason"] == "ClusterReady"
            c = await fed.client.get(kinds.CLUSTERS, "member-a")
            assert not (c["spec"].get("taints") or [])

            # Bind the pod: its requests move from allocating to allocated.
            await mc.create(PODS, {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p1"},
                                   "target": {"kind": "Node", "name": "a-node-0"}}, "apps", name="p1",
                            subresource="binding")

            async def allocated() -> bool:
                s = (await fed.client.get(kinds.CLUSTERS, "member-a"))["status"]["resourceSummary"]
                return s.get("allocated") == {"cpu": "500m", "memory": "1Gi", "pods": "1"} and \
                    "allocating" not in s

            await eventually(allocated, timeout=10)

            # Outage: the member process stops; within the failure threshold the cluster is
            # NotReady (not reachable) and tainted unreachable NoSchedule + NoExecute.
            stop.set()
            await sim_task
            port = port_of(member)
            stop_process(member.process)
            stopped_at = time.monotonic()

            async def unreachable() -> dict[str, Any] | None:
                c = await fed.client.get(kinds.CLUSTERS, "member-a")
                taints = {(t["key"], t["effect"]) for t in c["spec"].get("taints") or []}
                if (ready(c) or {}).get("status") == "False" and taints == {
                        (TAINT_UNREACHABLE, "NoSchedule"), (TAINT_UNREACHABLE, "NoExecute")}:
                    return c
                return None

            c = await eventually(unreachable, timeout=15)
            # A Work for the unreachable member waits (retried slowly) until it is back.
            cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "later", "namespace": "apps"},
                  "data": {"k": "v"}}
            await fed.client.create(kinds.WORKS, {
                "apiVersion": kinds.WORK_V1ALPHA1, "kind": "Work",
                "metadata": {"name": "later-1", "namespace": "karmada-es-member-a"},
                "spec": {"workload": {"manifests": [cm]}}})
            took = time.monotonic() - stopped_at
            assert ready(c)["reason"] == "ClusterNotReachable"
            assert 0.9 <= took < 8, took  # failure threshold 1 s, probes every 0.3 s
            assert all(t.get("timeAdded") for t in c["spec"]["taints"])

            # Recovery on the same port and state: Ready again, taints gone.
            restarted = start_member(member_dir, name="member-a", port=port)
            member.process = restarted.process

            async def recovered() -> bool:
                c = await fed.client.get(kinds.CLUSTERS, "member-a")
                return (ready(c) or {}).get("status") == "True" and not c["spec"].get("taints")

            await eventually(recovered, timeout=20)
            async with Client.from_kubeconfig(member.kubeconfig) as mc2:
                async def applied() -> bool:
                    try:
                        got = await mc2.get(Resource("v1", "configmaps", True, "ConfigMap"), "later", "apps")
                    except NotFound:
                        return False
                    return bool(got["data"] == {"k": "v"})

                await eventually(applied, timeout=15)
            table = (await asyncio.to_thread(apiserver.kubectl, "get", "clusters", "-o", "wide")).stdout
            assert "member-a" in table and "True" in table and "Push" in table, table

            await unjoin(fed.client, "member-a", timeout=10)
            with pytest.raises(NotFound):
                await fed.client.get(kinds.CLUSTERS, "member-a")
            with pytest.raises(NotFound):
                await fed.client.get(SECRETS, "member-a", "karmada-cluster")
            await eventually(lambda: _gone(fed.client, "karmada-es-member-a"), timeout=10)
            assert fed.members.cached("member-a") is None
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sim_task, 5)


async def _gone(client: Client, namespace: str) -> bool:
    try:
        await client.get(NSS, namespace)
    except NotFound:
        return True
    return False


async def test_member_clients_cache_rebuild_and_removal(apiserver: RunningServer) -> None:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as fed:
        await crds.install(fed)
        with contextlib.suppress(Exception):
            await fed.create(NSS, {"metadata": {"name": "karmada-cluster"}})
        token = base64.b64encode(b"first").decode()
        await fed.create(SECRETS, {"metadata": {"name": "cache-m", "namespace": "karmada-cluster"},
                                   "data": {"token": token, "caBundle": base64.b64encode(b"CA").decode()}})
        await fed.create(kinds.CLUSTERS, {"apiVersion": kinds.CLUSTER_V1ALPHA1, "kind": "Cluster",
                                          "metadata": {"name": "cache-m"},
                                          "spec": {"apiEndpoint": "https://127.0.0.1:9", "syncMode": "Push",
                                                   "secretRef": {"namespace": "karmada-cluster",
                                                                 "name": "cache-m"}}})
        members = MemberClients(fed)
        changed: list[str] = []
        members.add_listener(changed.append)
        stop = asyncio.Event()
        task = asyncio.create_task(members.run(stop))
        try:
            first = await members.get("cache-m")
            assert first.config.token == "first" and first.server == "https://127.0.0.1:9"
            assert await members.get("cache-m") is first  # cached
            await fed.patch(SECRETS, "cache-m", {"data": {"token": base64.b64encode(b"second").decode()}},
                            "karmada-cluster")

            async def rotated() -> Client | None:
                c = await members.get("cache-m")
                return c if c is not first else None

            second = await eventually(rotated, timeout=5)
            assert second.config.token == "second" and changed == ["cache-m"]
            await fed.delete(kinds.CLUSTERS, "cache-m")

            async def dropped() -> bool:
                return members.cached("cache-m") is None

            await eventually(dropped, timeout=5)
            assert changed == ["cache-m", "cache-m"]
            with pytest.raises(NotFound):
                await members.get("cache-m")
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)
