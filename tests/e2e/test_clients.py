"""The official ``kubernetes`` client, ``lightkube``, ``kr8s`` and ``kopf`` against a real API server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import RunningServer


def _wait(predicate, timeout: float = 30.0, interval: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s (last: {last!r})")


def test_official_client_crud_and_watch_resume(apiserver: RunningServer) -> None:
    from kubernetes import client, config, watch
    from kubernetes.client.rest import ApiException

    api_client = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="official")))
    cm = core.create_namespaced_config_map("official", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="one", labels={"k": "v"}), data={"a": "1"}))
    assert cm.metadata.resource_version
    cm.data["a"] = "2"
    updated = core.replace_namespaced_config_map("one", "official", cm)
    assert updated.data == {"a": "2"}
    patched = core.patch_namespaced_config_map("one", "official", {"data": {"b": "3"}})
    assert patched.data == {"a": "2", "b": "3"}
    listed = core.list_namespaced_config_map("official", label_selector="k=v")
    assert [i.metadata.name for i in listed.items] == ["one"]
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("missing", "official")
    assert err.value.status == 404

    dep = apps.create_namespaced_deployment("official", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "d"}},
                 "template": {"metadata": {"labels": {"app": "d"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    assert dep.spec.replicas == 1 and dep.spec.strategy.type == "RollingUpdate"

    # Watch from the list's resourceVersion, stop, then resume from the last event seen.
    rv = core.list_namespaced_config_map("official").metadata.resource_version
    core.create_namespaced_config_map("official", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="two")))
    w = watch.Watch()
    first = []
    for ev in w.stream(core.list_namespaced_config_map, "official", resource_version=rv, timeout_seconds=5):
        first.append((ev["type"], ev["object"].metadata.name))
        last_rv = ev["object"].metadata.resource_version
        w.stop()
    assert first == [("ADDED", "two")]
    core.delete_namespaced_config_map("two", "official")
    core.create_namespaced_config_map("official", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="three")))
    resumed = []
    w2 = watch.Watch()
    for ev in w2.stream(core.list_namespaced_config_map, "official", resource_version=last_rv, timeout_seconds=5):
        resumed.append((ev["type"], ev["object"].metadata.name))
        if len(resumed) == 2:
            w2.stop()
    assert resumed == [("DELETED", "two"), ("ADDED", "three")]
    core.delete_namespace("official")


def test_lightkube_server_side_apply(apiserver: RunningServer) -> None:
    from lightkube import Client, KubeConfig
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.apps_v1 import Deployment
    from lightkube.resources.core_v1 import ConfigMap, Namespace

    lk = Client(KubeConfig.from_file(str(apiserver.kubeconfig)), field_manager="lightkube-test")
    lk.apply(Namespace(metadata=ObjectMeta(name="lk")))
    cm = ConfigMap(metadata=ObjectMeta(name="cfg", namespace="lk"), data={"x": "1", "y": "2"})
    lk.apply(cm)
    lk.apply(ConfigMap(metadata=ObjectMeta(name="cfg", namespace="lk"), data={"x": "1"}))
    got = lk.get(ConfigMap, "cfg", namespace="lk")
    assert got.data == {"x": "1"}
    assert any(m.manager == "lightkube-test" and m.operation == "Apply" for m in got.metadata.managedFields)
    dep = Deployment.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "lk"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
    applied = lk.apply(dep)
    assert applied.spec.replicas == 2
    names = [c.metadata.name for c in lk.list(ConfigMap, namespace="lk")]
    assert names == ["cfg"]


def test_kr8s_basic(apiserver: RunningServer) -> None:
    import kr8s

    api = kr8s.api(kubeconfig=str(apiserver.kubeconfig))
    ns = kr8s.objects.Namespace({"metadata": {"name": "kr8s-ns"}}, api=api)
    ns.create()
    cm = kr8s.objects.ConfigMap({"metadata": {"name": "c", "namespace": "kr8s-ns"}, "data": {"a": "b"}}, api=api)
    cm.create()
    found = list(api.get("configmaps", namespace="kr8s-ns"))
    assert [c.name for c in found] == ["c"]
    cm.patch({"data": {"a": "c"}})
    cm.refresh()
    assert cm.raw["data"] == {"a": "c"}
    cm.delete()


OPERATOR = textwrap.dedent('''
    import kopf

    @kopf.on.startup()
    def configure(settings: kopf.OperatorSettings, **_):
        settings.persistence.finalizer = "example.com/kopf-finalizer"
        settings.watching.server_timeout = 10

    @kopf.on.create("example.com", "v1", "gadgets")
    def created(spec, name, namespace, patch, **_):
        import kubernetes
        kubernetes.config.load_kube_config()
        kubernetes.client.CoreV1Api().create_namespaced_config_map(namespace, {
            "metadata": {"name": f"{name}-made"}, "data": {"size": str(spec.get("size"))}})
        patch.status["phase"] = "Made"

    @kopf.on.delete("example.com", "v1", "gadgets")
    def deleted(name, namespace, **_):
        import kubernetes
        kubernetes.config.load_kube_config()
        kubernetes.client.CoreV1Api().delete_namespaced_config_map(f"{name}-made", namespace)
''')

GADGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
             "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                               "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]}}


def test_kopf_operator_with_finalizer(apiserver: RunningServer, tmp_path: Path) -> None:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    api_client = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    ext = client.ApiextensionsV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    core = client.CoreV1Api(api_client)
    ext.create_custom_resource_definition(GADGET_CRD)
    core.create_namespace({"metadata": {"name": "kopf"}})
    (tmp_path / "operator.py").write_text(OPERATOR)
    env = {**os.environ, "KUBECONFIG": str(apiserver.kubeconfig)}
    log = open(tmp_path / "kopf.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", "-n", "kopf",
                             str(tmp_path / "operator.py")], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(2)
        custom.create_namespaced_custom_object("example.com", "v1", "kopf", "gadgets", {
            "apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": 4}})

        def made() -> bool:
            try:
                return core.read_namespaced_config_map("g1-made", "kopf").data == {"size": "4"}
            except ApiException:
                return False

        _wait(made, 60)
        g1 = custom.get_namespaced_custom_object("example.com", "v1", "kopf", "gadgets", "g1")
        assert "example.com/kopf-finalizer" in g1["metadata"]["finalizers"]
        _wait(lambda: custom.get_namespaced_custom_object("example.com", "v1", "kopf", "gadgets", "g1")
              .get("status", {}).get("phase") == "Made", 30)
        custom.delete_namespaced_custom_object("example.com", "v1", "kopf", "gadgets", "g1")

        def gone() -> bool:
            try:
                custom.get_namespaced_custom_object("example.com", "v1", "kopf", "gadgets", "g1")
                return False
            except ApiException as exc:
                return exc.status == 404

        _wait(gone, 60)
        with pytest.raises(ApiException):
            core.read_namespaced_config_map("g1-made", "kopf")
    except AssertionError:
        log.flush()
        print((tmp_path / "kopf.log").read_text()[-4000:])
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


