"""The real kubectl against a real ``atoll apiserver`` process, as a user would drive it."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest
import yaml

from tests.conftest import RunningServer, require_kubectl, start_apiserver, stop_process

pytestmark = pytest.mark.kubectl

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        env:
        - {name: MODE, value: fast}
        - {name: EXTRA, value: "yes"}
"""

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
              color: {type: string, default: blue}
          status:
            type: object
            properties:
              ready: {type: boolean}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    require_kubectl()
    state = tmp_path_factory.mktemp("kubectl") / "state"
    state.mkdir()
    s = start_apiserver(state)
    try:
        s.kubectl("create", "namespace", "demo")
        yield s
    finally:
        stop_process(s.process)


def get_json(server: RunningServer, *args: str) -> dict:
    return json.loads(server.kubectl("get", *args, "-o", "json").stdout)


def test_version_and_api_resources(server: RunningServer) -> None:
    out = server.kubectl("version", "-o", "json").stdout
    assert json.loads(out)["serverVersion"]["minor"] == "32"
    resources = server.kubectl("api-resources").stdout
    for expected in ("deployments", "deploy", "namespaces", "ns", "customresourcedefinitions", "leases"):
        assert expected in resources
    assert "deployments/scale" not in resources  # subresources are not listed by kubectl
    raw = json.loads(server.kubectl("get", "--raw", "/apis/apps/v1").stdout)
    assert any(r["name"] == "deployments/scale" and r["kind"] == "Scale" for r in raw["resources"])


def test_create_namespace_and_configmap_via_protobuf(server: RunningServer) -> None:
    server.kubectl("create", "configmap", "settings", "-n", "demo", "--from-literal=color=red")
    cm = get_json(server, "configmap", "settings", "-n", "demo")
    assert cm["data"] == {"color": "red"}
    assert cm["metadata"]["uid"] and cm["metadata"]["resourceVersion"]
    dup = server.kubectl("create", "configmap", "settings", "-n", "demo", check=False)
    assert dup.returncode != 0 and "already exists" in dup.stderr


def test_client_side_apply_reapply_removes_field(server: RunningServer) -> None:
    server.kubectl("apply", "-f", "-", input=DEPLOYMENT)
    dep = get_json(server, "deployment", "web", "-n", "demo")
    env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "EXTRA", "value": "yes"} in env
    assert dep["metadata"]["generation"] == 1
    server.kubectl("apply", "-f", "-", input=DEPLOYMENT.replace('        - {name: EXTRA, value: "yes"}\n', ""))
    dep = get_json(server, "deployment", "web", "-n", "demo")
    env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "MODE", "value": "fast"}]
    assert dep["metadata"]["generation"] == 2


def test_server_side_apply_reapply_removes_field(server: RunningServer) -> None:
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "namespace": "demo"},
                "data": {"a": "1", "b": "2"}}
    server.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(manifest))
    manifest["data"] = {"a": "1"}
    server.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(manifest))
    cm = get_json(server, "configmap", "ssa", "-n", "demo", "--show-managed-fields")
    assert cm["data"] == {"a": "1"}
    managers = {m["manager"] for m in cm["metadata"]["managedFields"]}
    assert "kubectl" in managers
    # Another manager changing an owned field conflicts unless forced.
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "namespace": "demo"},
             "data": {"a": "9"}}
    res = server.kubectl("apply", "--server-side", "--field-manager=other", "-f", "-",
                         input=json.dumps(other), check=False)
    assert res.returncode != 0 and "conflict" in res.stderr.lower()
    server.kubectl("apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-",
                   input=json.dumps(other))
    assert get_json(server, "configmap", "ssa", "-n", "demo")["data"] == {"a": "9"}


def test_get_output_forms(server: RunningServer) -> None:
    server.kubectl("create", "configmap", "labelled", "-n", "demo", "--from-literal=x=y")
    server.kubectl("label", "configmap", "labelled", "-n", "demo", "team=blue")
    doc = yaml.safe_load(server.kubectl("get", "configmap", "labelled", "-n", "demo", "-o", "yaml").stdout)
    assert doc["metadata"]["labels"] == {"team": "blue"}
    everywhere = server.kubectl("get", "configmaps", "-A").stdout
    assert "NAMESPACE" in everywhere.splitlines()[0] and "labelled" in everywhere
    selected = server.kubectl("get", "configmaps", "-n", "demo", "-l", "team=blue", "-o", "name").stdout
    assert selected.split() == ["configmap/labelled"]
    shown = server.kubectl("get", "configmaps", "-n", "demo", "--show-labels").stdout
    assert "team=blue" in shown
    table = server.kubectl("get", "deployments", "-n", "demo").stdout
    assert table.splitlines()[0].split()[:4] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE"]


def test_watch_sees_live_changes(server: RunningServer) -> None:
    proc = subprocess.Popen(["kubectl", "--kubeconfig", str(server.kubeconfig), "get", "configmaps", "-n",
                             "demo", "-w", "--output-watch-events"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        server.kubectl("create", "configmap", "watched", "-n", "demo", "--from-literal=k=v")
        server.kubectl("delete", "configmap", "watched", "-n", "demo")
        seen: list[str] = []
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any("DELETED" in s and "watched" in s for s in seen):
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
        assert any("ADDED" in s and "watched" in s for s in seen), seen
        assert any("DELETED" in s and "watched" in s for s in seen), seen
    finally:
        proc.kill()
        proc.wait()


def test_describe_label_annotate(server: RunningServer) -> None:
    server.kubectl("annotate", "deployment", "web", "-n", "demo", "owner=platform-team")
    server.kubectl("label", "deployment", "web", "-n", "demo", "stage=prod")
    dep = get_json(server, "deployment", "web", "-n", "demo")
    assert dep["metadata"]["annotations"]["owner"] == "platform-team"
    assert dep["metadata"]["labels"]["stage"] == "prod"
    described = server.kubectl("describe", "deployment", "web", "-n", "demo").stdout
    assert "Name:" in described and "web" in described and "nginx:1.27" in described


def test_patch_three_types(server: RunningServer) -> None:
    server.kubectl("patch", "deployment", "web", "-n", "demo", "--type=merge",
                   "-p", '{"spec":{"minReadySeconds":5}}')
    server.kubectl("patch", "deployment", "web", "-n", "demo", "--type=json",
                   "-p", '[{"op":"replace","path":"/spec/revisionHistoryLimit","value":3}]')
    server.kubectl("patch", "deployment", "web", "-n", "demo", "--type=strategic",
                   "-p", '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}')
    dep = get_json(server, "deployment", "web", "-n", "demo")
    assert dep["spec"]["minReadySeconds"] == 5
    assert dep["spec"]["revisionHistoryLimit"] == 3
    names = [c["name"] for c in dep["spec"]["template"]["spec"]["containers"]]
    assert names == ["sidecar", "web"]  # merged by name: the existing container stays, the new one comes first (as in the kube docs)
    bad = server.kubectl("patch", "deployment", "web", "-n", "demo", "--type=json",
                         "-p", '[{"op":"test","path":"/spec/replicas","value":99}]', check=False)
    assert bad.returncode != 0


def test_scale(server: RunningServer) -> None:
    server.kubectl("scale", "deployment", "web", "-n", "demo", "--replicas=5")
    assert get_json(server, "deployment", "web", "-n", "demo")["spec"]["replicas"] == 5
    scale = json.loads(server.kubectl("get", "--raw", "/apis/apps/v1/namespaces/demo/deployments/web/scale").stdout)
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 5 and scale["status"]["selector"] == "app=web"


def test_replace(server: RunningServer) -> None:
    cm = get_json(server, "configmap", "settings", "-n", "demo")
    cm["data"]["color"] = "green"
    server.kubectl("replace", "-f", "-", input=json.dumps(cm))
    assert get_json(server, "configmap", "settings", "-n", "demo")["data"]["color"] == "green"
    # A stale resourceVersion is refused with a conflict.
    stale = server.kubectl("replace", "-f", "-", input=json.dumps(cm), check=False)
    assert stale.returncode != 0 and "modified" in stale.stderr


def _owned_configmap(server: RunningServer, name: str, owner: dict) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": name, "namespace": "demo", "ownerReferences": [{
              "apiVersion": "apps/v1", "kind": "Deployment", "name": owner["metadata"]["name"],
              "uid": owner["metadata"]["uid"], "blockOwnerDeletion": True, "controller": True}]},
          "data": {"k": "v"}}
    server.kubectl("create", "-f", "-", input=json.dumps(cm))


def test_delete_cascade_foreground_leaves_no_orphans(server: RunningServer) -> None:
    server.kubectl("create", "deployment", "doomed", "-n", "demo", "--image=nginx")
    owner = get_json(server, "deployment", "doomed", "-n", "demo")
    _owned_configmap(server, "doomed-child", owner)
    server.kubectl("delete", "deployment", "doomed", "-n", "demo", "--cascade=foreground", "--timeout=30s")
    assert server.kubectl("get", "deployment", "doomed", "-n", "demo", check=False).returncode != 0
    assert server.kubectl("get", "configmap", "doomed-child", "-n", "demo", check=False).returncode != 0


def test_delete_cascade_orphan_keeps_dependents(server: RunningServer) -> None:
    server.kubectl("create", "deployment", "parent", "-n", "demo", "--image=nginx")
    owner = get_json(server, "deployment", "parent", "-n", "demo")
    _owned_configmap(server, "parent-child", owner)
    server.kubectl("delete", "deployment", "parent", "-n", "demo", "--cascade=orphan", "--timeout=30s")
    child = get_json(server, "configmap", "parent-child", "-n", "demo")
    assert not child["metadata"].get("ownerReferences")


def test_explain(server: RunningServer) -> None:
    out = server.kubectl("explain", "deployment.spec.strategy").stdout
    assert "rollingUpdate" in out and "DeploymentStrategy" in out


def test_crd_then_custom_object(server: RunningServer) -> None:
    server.kubectl("apply", "-f", "-", input=CRD)
    server.kubectl("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=30s")
    widget = {"apiVersion": "example.com/v1", "kind": "Widget",
              "metadata": {"name": "w1", "namespace": "demo"}, "spec": {"size": 3}}
    server.kubectl("apply", "-f", "-", input=json.dumps(widget))
    got = get_json(server, "widgets", "w1", "-n", "demo")
    assert got["spec"] == {"size": 3, "color": "blue"}  # defaulted from the schema
    table = server.kubectl("get", "wd", "-n", "demo").stdout
    assert table.splitlines()[0].split()[:2] == ["NAME", "SIZE"] and "3" in table.splitlines()[1]
    bad = dict(widget, metadata={"name": "w2", "namespace": "demo"}, spec={"size": 0})
    res = server.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert res.returncode != 0 and "spec.size" in res.stderr
    explained = server.kubectl("explain", "widget.spec").stdout
    assert "size" in explained
    server.kubectl("delete", "crd", "widgets.example.com", "--timeout=30s")
    gone = server.kubectl("get", "widgets", "-n", "demo", check=False)
    assert gone.returncode != 0


def test_namespace_deletion_removes_contents(server: RunningServer) -> None:
    server.kubectl("create", "namespace", "scratch")
    server.kubectl("create", "configmap", "c1", "-n", "scratch", "--from-literal=a=b")
    server.kubectl("create", "deployment", "d1", "-n", "scratch", "--image=nginx")
    server.kubectl("delete", "namespace", "scratch", "--timeout=60s")
    assert server.kubectl("get", "namespace", "scratch", check=False).returncode != 0
    listed = json.loads(server.kubectl("get", "--raw", "/api/v1/namespaces/scratch/configmaps").stdout)
    assert listed["items"] == []


def test_bad_input_is_a_clear_error(server: RunningServer) -> None:
    res = server.kubectl("apply", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n",
                         check=False)
    assert res.returncode != 0 and "Invalid value" in res.stderr
    res = server.kubectl("get", "configmap", "nope", "-n", "demo", check=False)
    assert res.returncode != 0 and 'configmaps "nope" not found' in res.stderr
