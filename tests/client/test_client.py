"""The async client against a real API server, and kubeconfig loading."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from atoll.api.errors import AlreadyExists, Conflict, Invalid, NotFound
from atoll.client import Client, KubeconfigError, Resource, load
from tests.conftest import RunningServer

CMS = Resource("v1", "configmaps")


async def test_crud_errors_and_discovery(apiserver: RunningServer) -> None:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(Resource("v1", "namespaces", namespaced=False), {"metadata": {"name": "cli"}})
        created = await client.create(CMS, {"metadata": {"name": "a", "namespace": "cli"}, "data": {"k": "v"}})
        assert created["metadata"]["uid"]
        with pytest.raises(AlreadyExists):
            await client.create(CMS, {"metadata": {"name": "a", "namespace": "cli"}})
        with pytest.raises(NotFound):
            await client.get(CMS, "missing", "cli")
        with pytest.raises(Invalid):
            await client.create(CMS, {"metadata": {"name": "Bad_Name", "namespace": "cli"}})
        stale = dict(created)
        created["data"] = {"k": "w"}
        await client.replace(CMS, created)
        with pytest.raises(Conflict):
            await client.replace(CMS, stale)
        patched = await client.patch(CMS, "a", {"data": {"x": "y"}}, "cli")
        assert patched["data"] == {"k": "w", "x": "y"}
        applied = await client.apply(Resource("v1", "configmaps"), {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "cli"},
            "data": {"z": "1"}})
        assert applied["data"] == {"z": "1"}
        deps = await client.resource_for("apps/v1", "Deployment")
        assert deps == Resource("apps/v1", "deployments", True, "Deployment")
        with pytest.raises(NotFound):
            await client.resource_for("apps/v1", "Nothing")
        items, rv = await client.list_all(CMS, "cli", page=1)
        assert [i["metadata"]["name"] for i in items] == ["a", "b"] and rv
        await client.delete(CMS, "b", "cli")
        with pytest.raises(NotFound):
            await client.get(CMS, "b", "cli")


async def test_watch_and_list_and_watch(apiserver: RunningServer) -> None:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(Resource("v1", "namespaces", namespaced=False), {"metadata": {"name": "cliw"}})
        _, rv = await client.list_all(CMS, "cliw")
        seen: list[tuple[str, str]] = []

        async def watch() -> None:
            async for ev in client.watch(CMS, "cliw", resource_version=rv, timeout_seconds=10):
                seen.append((ev.type, ev.object["metadata"]["name"]))
                if len(seen) == 2:
                    return

        task = asyncio.create_task(watch())
        await asyncio.sleep(0.2)
        await client.create(CMS, {"metadata": {"name": "w", "namespace": "cliw"}})
        await client.delete(CMS, "w", "cliw")
        await asyncio.wait_for(task, 10)
        assert seen == [("ADDED", "w"), ("DELETED", "w")]
        # A version older than the cache window is replayed from the store's history.
        async for ev in client.watch(CMS, "cliw", resource_version=str(int(rv) - 1), timeout_seconds=5):
            assert ev.type in ("ADDED", "MODIFIED", "DELETED")
            break

        stop = asyncio.Event()
        feed = client.list_and_watch(CMS, "cliw", stop=stop)
        kind, first = await asyncio.wait_for(feed.__anext__(), 10)
        assert kind == "SYNC" and first["items"] == []
        await client.create(CMS, {"metadata": {"name": "x", "namespace": "cliw"}})
        kind, obj = await asyncio.wait_for(feed.__anext__(), 10)
        assert (kind, obj["metadata"]["name"]) == ("ADDED", "x")
        stop.set()
        await feed.aclose()


def write(path: Path, doc: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def test_kubeconfig_merge_context_and_relative_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ca.crt").write_bytes(b"CA")
    (tmp_path / "sub" / "token").write_text("tok\n")
    a = write(tmp_path / "sub" / "a.yaml", {
        "current-context": "one",
        "clusters": [{"name": "c1", "cluster": {"server": "https://127.0.0.1:1/", "certificate-authority": "ca.crt"}}],
        "users": [{"name": "u1", "user": {"tokenFile": "token"}}],
        "contexts": [{"name": "one", "context": {"cluster": "c1", "user": "u1", "namespace": "ns1"}}]})
    b = write(tmp_path / "b.yaml", {
        "current-context": "two",
        "clusters": [{"name": "c1", "cluster": {"server": "https://ignored"}},
                     {"name": "c2", "cluster": {"server": "http://127.0.0.1:2", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u2", "user": {"token": "t2"}}],
        "contexts": [{"name": "two", "context": {"cluster": "c2", "user": "u2"}}]})
    one = load([a, b])
    assert (one.server, one.namespace, one.token, one.ca_data, one.context) == (
        "https://127.0.0.1:1", "ns1", "tok", b"CA", "one")
    two = load([a, b], context="two")
    assert (two.server, two.namespace, two.token, two.insecure) == ("http://127.0.0.1:2", "default", "t2", True)
    assert load([b, a]).context == "two"  # the first file's current-context wins
    with pytest.raises(KubeconfigError, match="not found"):
        load([a], context="nope")
    with pytest.raises(KubeconfigError, match="no kubeconfig"):
        load([tmp_path / "missing.yaml"])
    (tmp_path / "bad.yaml").write_text("{ not yaml")
    with pytest.raises(KubeconfigError):
        load([tmp_path / "bad.yaml"])


async def test_subresources_patch_types_and_delete_options(apiserver: RunningServer) -> None:
    deployments = Resource("apps/v1", "deployments", kind="Deployment")
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(Resource("v1", "namespaces", namespaced=False), {"metadata": {"name": "clis"}})
        web = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "clis"},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
        assert (await client.create(deployments, web, dry_run=True))["metadata"]["name"] == "web"
        with pytest.raises(NotFound):
            await client.get(deployments, "web", "clis")  # a dry run stores nothing
        created = await client.create(deployments, web)

        scale = await client.get(deployments, "web", "clis", subresource="scale")
        assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 1
        patched = await client.patch(deployments, "web", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "nginx:2"}, {"name": "side", "image": "busybox"}]}}}}, "clis",
            patch_type="strategic")
        assert [c["image"] for c in patched["spec"]["template"]["spec"]["containers"]] == ["nginx:2", "busybox"]
        patched = await client.patch(deployments, "web", [{"op": "replace", "path": "/spec/replicas", "value": 3}],
                                     "clis", patch_type="json")
        assert patched["spec"]["replicas"] == 3

        status = await client.patch_status(deployments, "web", {"status": {"replicas": 3, "readyReplicas": 2}},
                                           "clis")
        assert status["status"]["readyReplicas"] == 2
        assert (await client.get_status(deployments, "web", "clis"))["status"]["readyReplicas"] == 2
        again = await client.get(deployments, "web", "clis")
        again["status"]["readyReplicas"] = 3
        assert (await client.replace_status(deployments, again))["status"]["readyReplicas"] == 3

        with pytest.raises(Conflict):
            await client.delete(deployments, "web", "clis", uid="not-the-uid")
        await client.delete(deployments, "web", "clis", uid=created["metadata"]["uid"],
                            propagation_policy="Background")
        with pytest.raises(NotFound):
            await client.get(deployments, "web", "clis")

        for name, tier in (("a", "x"), ("b", "x"), ("c", "y")):
            await client.create(CMS, {"metadata": {"name": name, "namespace": "clis", "labels": {"tier": tier}}})
        await client.delete_collection(CMS, "clis", label_selector="tier=x")
        items, _ = await client.list_all(CMS, "clis")
        assert [i["metadata"]["name"] for i in items if i["metadata"]["name"] in "abc"] == ["c"]
