"""Server-side apply and managedFields, checked against kube-apiserver's behaviour."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from atoll.api.errors import APIError, BadRequest, Conflict, InternalError, Invalid
from atoll.apiserver.patching import (
    LAST_APPLIED_ANNOTATION,
    apply,
    builtin_resolver,
    custom_resolver,
    reset_fields_for,
    update_managed_fields,
    validate_patch_options,
)

DEPLOYMENTS = builtin_resolver("apps", "v1", "Deployment")
CONFIGMAPS = builtin_resolver("", "v1", "ConfigMap")
T0, T1, T2, T3, T4 = (f"2024-05-0{i}T10:00:00Z" for i in range(1, 6))


def y(text: str) -> Any:
    return yaml.safe_load(text)


def entries(obj: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """managedFields by (manager, operation, subresource)."""
    return {(e["manager"], e["operation"], e.get("subresource", "")): e
            for e in obj["metadata"].get("managedFields") or []}


def fields(obj: dict[str, Any], manager: str, operation: str = "Apply", subresource: str = "") -> dict[str, Any]:
    fv1: dict[str, Any] = entries(obj)[(manager, operation, subresource)]["fieldsV1"]
    return fv1


def stored(obj: dict[str, Any], uid: str = "1234") -> dict[str, Any]:
    """What the registry persists: the object with a uid (it exists now)."""
    out = copy.deepcopy(obj)
    out["metadata"]["uid"] = uid
    return out


NGINX_CONFIG = y("""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  namespace: default
  labels: {app: nginx}
spec:
  replicas: 3
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.14.2
        ports: [{containerPort: 80}]
""")

NGINX_APPLIED_FIELDS = y("""
f:metadata: {f:labels: {f:app: {}}}
f:spec:
  f:replicas: {}
  f:selector: {}
  f:template:
    f:metadata: {f:labels: {f:app: {}}}
    f:spec:
      f:containers:
        k:{"name":"nginx"}:
          .: {}
          f:image: {}
          f:name: {}
          f:ports:
            k:{"containerPort":80,"protocol":"TCP"}:
              .: {}
              f:containerPort: {}
""")


def test_apply_creates_the_object_and_owns_exactly_the_applied_fields() -> None:
    created = apply(None, NGINX_CONFIG, manager="kubectl", force=False, resolver=DEPLOYMENTS, now=T0)
    assert created["spec"] == NGINX_CONFIG["spec"]
    [entry] = created["metadata"]["managedFields"]
    assert list(entry) == ["manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1"]
    assert entry | {"fieldsV1": None} == {"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
                                          "time": T0, "fieldsType": "FieldsV1", "fieldsV1": None}
    assert entry["fieldsV1"] == NGINX_APPLIED_FIELDS


def test_docs_configmap_example() -> None:
    # kubernetes.io/docs/reference/using-api/server-side-apply/#managed-fields
    config = y("""
apiVersion: v1
kind: ConfigMap
metadata: {name: test-cm, namespace: default, labels: {test-label: test}}
data: {key: some value}
""")
    created = apply(None, config, manager="kubectl", force=False, resolver=CONFIGMAPS, now=T0)
    assert fields(created, "kubectl") == {"f:data": {"f:key": {}}, "f:metadata": {"f:labels": {"f:test-label": {}}}}


def test_create_by_update_owns_defaulted_fields_like_kubectl_create() -> None:
    # The object kubectl create deployment sends, after defaulting; kube records exactly this.
    obj = y("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: nginx, namespace: default, labels: {app: nginx}}
spec:
  progressDeadlineSeconds: 600
  replicas: 1
  revisionHistoryLimit: 10
  selector: {matchLabels: {app: nginx}}
  strategy: {rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}, type: RollingUpdate}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      containers:
      - {name: nginx, image: nginx, imagePullPolicy: Always, resources: {},
         terminationMessagePath: /dev/termination-log, terminationMessagePolicy: File}
      dnsPolicy: ClusterFirst
      restartPolicy: Always
      schedulerName: default-scheduler
      securityContext: {}
      terminationGracePeriodSeconds: 30
status: {}
""")
    created = update_managed_fields(None, obj, manager="kubectl-create", now=T0)
    assert fields(created, "kubectl-create", "Update") == y("""
f:metadata: {f:labels: {.: {}, f:app: {}}}
f:spec:
  f:progressDeadlineSeconds: {}
  f:replicas: {}
  f:revisionHistoryLimit: {}
  f:selector: {}
  f:strategy:
    f:rollingUpdate: {.: {}, f:maxSurge: {}, f:maxUnavailable: {}}
    f:type: {}
  f:template:
    f:metadata: {f:labels: {.: {}, f:app: {}}}
    f:spec:
      f:containers:
        k:{"name":"nginx"}:
          .: {}
          f:image: {}
          f:imagePullPolicy: {}
          f:name: {}
          f:resources: {}
          f:terminationMessagePath: {}
          f:terminationMessagePolicy: {}
      f:dnsPolicy: {}
      f:restartPolicy: {}
      f:schedulerName: {}
      f:securityContext: {}
      f:terminationGracePeriodSeconds: {}
""")
    assert "managedFields" not in obj["metadata"], "the input object must not change"


def _live_after_first_apply() -> dict[str, Any]:
    config = copy.deepcopy(NGINX_CONFIG)
    config["spec"]["minReadySeconds"] = 5
    config["metadata"]["labels"]["tier"] = "web"
    config["spec"]["template"]["spec"]["containers"][0]["ports"].append({"containerPort": 443})
    live = stored(apply(None, config, manager="kubectl", force=False, resolver=DEPLOYMENTS, now=T0))
    # defaulting by the registry: nobody owns these
    live["spec"]["progressDeadlineSeconds"] = 600
    for port in live["spec"]["template"]["spec"]["containers"][0]["ports"]:
        port["protocol"] = "TCP"
    # someone else adds an annotation and an env var with kubectl edit
    edited = copy.deepcopy(live)
    edited["metadata"]["annotations"] = {"note": "keep me"}
    edited["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "MODE", "value": "prod"}]
    return update_managed_fields(live, edited, manager="kubectl-edit", now=T1)


def test_server_side_reapply_removes_fields_the_manager_no_longer_applies() -> None:
    live = _live_after_first_apply()
    result = apply(live, NGINX_CONFIG, manager="kubectl", force=False, resolver=DEPLOYMENTS, now=T2)
    assert "minReadySeconds" not in result["spec"]
    assert result["metadata"]["labels"] == {"app": "nginx"}
    container = result["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    # fields other managers own, and unowned defaults, stay
    assert container["env"] == [{"name": "MODE", "value": "prod"}]
    assert result["metadata"]["annotations"] == {"note": "keep me"}
    assert result["spec"]["progressDeadlineSeconds"] == 600
    assert fields(result, "kubectl") == NGINX_APPLIED_FIELDS
    assert entries(result)[("kubectl", "Apply", "")]["time"] == T2
    assert entries(result)[("kubectl-edit", "Update", "")]["time"] == T1


def test_reapply_keeps_an_omitted_field_another_manager_also_owns() -> None:
    live = _live_after_first_apply()
    other = copy.deepcopy(NGINX_CONFIG)
    other["spec"]["minReadySeconds"] = 5
    live = stored(apply(live, other, manager="ci", force=False, resolver=DEPLOYMENTS, now=T2))
    result = apply(live, NGINX_CONFIG, manager="kubectl", force=False, resolver=DEPLOYMENTS, now=T3)
    assert result["spec"]["minReadySeconds"] == 5
    assert "f:minReadySeconds" in fields(result, "ci")["f:spec"]
    assert "f:minReadySeconds" not in fields(result, "kubectl")["f:spec"]


def _scaled_by_edit() -> dict[str, Any]:
    live = stored(apply(None, NGINX_CONFIG, manager="kubectl", force=False, resolver=DEPLOYMENTS, now=T0))
    edited = copy.deepcopy(live)
    edited["spec"]["replicas"] = 5
    return update_managed_fields(live, edited, manager="kubectl-edit", now=T1)


def test_update_takes_ownership_from_the_applier() -> None:
    live = _scaled_by_edit()
    assert fields(live, "kubectl-edit", "Update") == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in fields(live, "kubectl")["f:spec"]


CONFLICT_CASES: list[tuple[str, dict[str, Any], str, list[dict[str, str]]]] = [
    ("one conflict", {"spec.replicas": 3, "metadata.labels.app": "nginx-2"},
     'Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas',
     [{"reason": "FieldManagerConflict", "message": 'conflict with "kubectl-edit" using apps/v1',
       "field": ".spec.replicas"}]),
    ("two conflicts, two managers", {"spec.replicas": 3, "metadata.labels.app": "web"},
     'Apply failed with 2 conflicts: conflicts with "hpa" with subresource "status" using apps/v1:\n'
     "- .metadata.labels.app\n"
     'conflicts with "kubectl-edit" using apps/v1:\n'
     "- .spec.replicas",
     [{"reason": "FieldManagerConflict", "message": 'conflict with "hpa" with subresource "status" using apps/v1',
       "field": ".metadata.labels.app"},
      {"reason": "FieldManagerConflict", "message": 'conflict with "kubectl-edit" using apps/v1',
       "field": ".spec.replicas"}]),
]


def _set(obj: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        obj = obj[part]
    obj[last] = value


@pytest.mark.parametrize(("name", "changes", "message", "causes"), CONFLICT_CASES, ids=[c[0] for c in CONFLICT_CASES])
def test_conflicts_with_other_managers(name: str, changes: dict[str, Any], message: str,
                                       causes: list[dict[str, str]]) -> None:
    live = _scaled_by_edit()
    relabelled = copy.deepcopy(live)
    relabelled["metadata"]["labels"]["app"] = "nginx-2"
    live = update_managed_fields(live, relabelled, manager="hpa", subresource="status", now=T2)
    config = copy.deepcopy(NGINX_CONFIG)
    for path, value in changes.items():
        _set(config, path, value)
    with pytest.raises(Conflict) as info:
        apply(live, config, manager="kubectl", force=False, resolver=DEPLOYMENTS, now=T3)
    err = info.value
    assert err.code == 409 and err.reason == "Conflict"
    assert err.message == message
    assert err.to_status()["details"] == {"causes": causes}

    forced = apply(live, config, manager="kubectl", force=True, resolver=DEPLOYMENTS, now=T3)
    for path, value in changes.items():
        obj: Any = forced
        for part in path.split("."):
            obj = obj[part]
        assert obj == value
    assert fields(forced, "kubectl") == NGINX_APPLIED_FIELDS
    assert ("kubectl-edit", "Update", "") not in entries(forced), "ownership moved to the applier"


def test_applying_the_same_value_shares_ownership_without_conflict() -> None:
    live = _scaled_by_edit()
    config = copy.deepcopy(NGINX_CONFIG)
    config["spec"]["replicas"] = 5
    result = apply(live, config, manager="kubectl", force=False, resolver=DEPLOYMENTS, now=T2)
    assert "f:replicas" in fields(result, "kubectl")["f:spec"]
    assert fields(result, "kubectl-edit", "Update") == {"f:spec": {"f:replicas": {}}}


def test_omitting_a_field_another_manager_took_over_leaves_it_alone() -> None:
    # docs: hand spec.replicas to an autoscaler, then drop it from the configuration
    live = _scaled_by_edit()
    config = copy.deepcopy(NGINX_CONFIG)
    del config["spec"]["replicas"]
    result = apply(live, config, manager="kubectl", force=False, resolver=DEPLOYMENTS, now=T2)
    assert result["spec"]["replicas"] == 5


def test_noop_apply_keeps_object_and_time() -> None:
    live = stored(apply(None, NGINX_CONFIG, manager="kubectl", force=False, resolver=DEPLOYMENTS, now=T0))
    again = apply(live, NGINX_CONFIG, manager="kubectl", force=False, resolver=DEPLOYMENTS, now=T4)
    assert again == live


def test_apply_to_an_object_without_managed_fields_conflicts_with_before_first_apply() -> None:
    live = copy.deepcopy(NGINX_CONFIG)
    live["metadata"]["uid"] = "1"
    live["spec"]["replicas"] = 1
    with pytest.raises(Conflict) as info:
        apply(live, NGINX_CONFIG, manager="ci", force=False, resolver=DEPLOYMENTS, now=T1)
    assert info.value.message == ('Apply failed with 1 conflict: conflict with "before-first-apply" using '
                                  "apps/v1: .spec.replicas")
    result = apply(live, NGINX_CONFIG, manager="ci", force=True, resolver=DEPLOYMENTS, now=T1)
    assert set(entries(result)) == {("ci", "Apply", ""), ("before-first-apply", "Update", "")}
    assert "f:replicas" not in fields(result, "before-first-apply", "Update")["f:spec"]


def test_kubectl_server_side_apply_takes_over_from_client_side_apply() -> None:
    # `kubectl apply` (client side) created the object; `kubectl apply --server-side` (manager
    # "kubectl") may change what the last-applied-configuration still describes.
    last = copy.deepcopy(NGINX_CONFIG)
    live = copy.deepcopy(NGINX_CONFIG)
    live["metadata"]["annotations"] = {LAST_APPLIED_ANNOTATION: json.dumps(last) + "\n"}
    live = stored(update_managed_fields(None, live, manager="kubectl-client-side-apply", now=T0))
    config = copy.deepcopy(NGINX_CONFIG)
    config["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.16.1"
    with pytest.raises(Conflict):
        apply(live, config, manager="someone-else", force=False, resolver=DEPLOYMENTS, now=T1)
    result = apply(live, config, manager="kubectl", force=False, resolver=DEPLOYMENTS, now=T1)
    assert result["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.16.1"
    annotation = result["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
    assert annotation.endswith("\n") and json.loads(annotation) == config

    # a field the client-side apply never set (changed by another manager since) still conflicts
    edited = copy.deepcopy(live)
    edited["spec"]["replicas"] = 9
    live = update_managed_fields(live, edited, manager="kubectl-edit", now=T2)
    with pytest.raises(Conflict) as info:
        apply(live, config, manager="kubectl", force=False, resolver=DEPLOYMENTS, now=T3)
    assert info.value.message.endswith('conflict with "kubectl-edit" using apps/v1: .spec.replicas')


def test_list_items_merge_in_configuration_order() -> None:
    live = stored(apply(None, y("""
apiVersion: v1
kind: ConfigMap
metadata: {name: c, finalizers: [a, b]}
"""), manager="one", force=False, resolver=CONFIGMAPS, now=T0))
    result = apply(live, y("""
apiVersion: v1
kind: ConfigMap
metadata: {name: c, finalizers: [c, b]}
"""), manager="two", force=False, resolver=CONFIGMAPS, now=T1)
    assert result["metadata"]["finalizers"] == ["a", "c", "b"]
    assert fields(result, "two") == {"f:metadata": {"f:finalizers": {'v:"b"': {}, 'v:"c"': {}}}}


WIDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "spec": {"type": "object", "properties": {
            "args": {"type": "array", "items": {"type": "string"}},
            "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
                      "items": {"type": "object", "properties": {"id": {"type": "string"},
                                                                 "size": {"type": "integer"}}}},
        }},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}
WIDGETS = custom_resolver(WIDGET_SCHEMA, group="example.com", version="v1", kind="Widget")


def test_custom_resource_apply_uses_crd_list_markers() -> None:
    config = y("""
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
spec:
  args: [a, b]
  items: [{id: x, size: 1}]
""")
    live = stored(apply(None, config, manager="op", force=False, resolver=WIDGETS, now=T0))
    assert fields(live, "op") == y("""
f:spec:
  f:args: {}
  f:items:
    k:{"id":"x"}: {.: {}, f:id: {}, f:size: {}}
""")
    # created by update (kubectl create): unstructured, so spec itself is added too
    created = update_managed_fields(None, config, manager="kubectl-create", resolver=WIDGETS, now=T0)
    assert fields(created, "kubectl-create", "Update")["f:spec"]["."] == {}
    # atomic list: another applier replaces it wholesale and conflicts on it
    with pytest.raises(Conflict) as info:
        apply(live, y("""
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
spec: {args: [c]}
"""), manager="other", force=False, resolver=WIDGETS, now=T1)
    assert info.value.message == 'Apply failed with 1 conflict: conflict with "op": .spec.args'


def test_status_apply_with_reset_fields() -> None:
    live = stored(apply(None, NGINX_CONFIG, manager="kubectl", force=False, resolver=DEPLOYMENTS, now=T0))
    status_config = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx-deployment"},
                     "status": {"replicas": 3}, "spec": {"replicas": 1}}
    result = apply(live, status_config, manager="ctrl", force=False, resolver=DEPLOYMENTS, now=T1,
                   subresource="status", reset_fields=reset_fields_for(("status", "scale"), "status"))
    assert fields(result, "ctrl", "Apply", "status") == {"f:status": {"f:replicas": {}}}
    # the main resource ignores status
    main = apply(live, {**NGINX_CONFIG, "status": {"replicas": 9}}, manager="kubectl", force=False,
                 resolver=DEPLOYMENTS, now=T2, reset_fields=reset_fields_for(("status",), ""))
    assert "f:status" not in fields(main, "kubectl")


def test_status_update_records_the_subresource_and_ignores_request_managed_fields() -> None:
    live = stored(apply(None, NGINX_CONFIG, manager="kubectl", force=False, resolver=DEPLOYMENTS, now=T0))
    new = copy.deepcopy(live)
    new["status"] = {"replicas": 3, "readyReplicas": 3}
    new["metadata"]["managedFields"] = []
    result = update_managed_fields(live, new, manager="deployment-controller", subresource="status", now=T1)
    assert entries(result)[("deployment-controller", "Update", "status")]["fieldsV1"] == {
        "f:status": {"f:readyReplicas": {}, "f:replicas": {}}}
    assert ("kubectl", "Apply", "") in entries(result)


@pytest.mark.parametrize("reset", [[], [{}]], ids=["empty list", "one empty entry"])
def test_managed_fields_can_be_reset(reset: list[Any]) -> None:
    live = stored(apply(None, NGINX_CONFIG, manager="kubectl", force=False, resolver=DEPLOYMENTS, now=T0))
    new = copy.deepcopy(live)
    new["metadata"]["managedFields"] = reset
    cleared = update_managed_fields(live, new, manager="kubectl-edit", now=T1)
    assert "managedFields" not in cleared["metadata"]
    # untracked until the next apply
    again = copy.deepcopy(cleared)
    again["spec"]["replicas"] = 9
    assert "managedFields" not in update_managed_fields(cleared, again, manager="x", now=T2)["metadata"]


def test_request_managed_fields_replace_the_stored_ones() -> None:
    live = stored(apply(None, NGINX_CONFIG, manager="kubectl", force=False, resolver=DEPLOYMENTS, now=T0))
    new = copy.deepcopy(live)
    new["metadata"]["managedFields"] = [{"manager": "someone", "operation": "Update", "apiVersion": "apps/v1",
                                         "time": T0, "fieldsType": "FieldsV1",
                                         "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
    result = update_managed_fields(live, new, manager="kubectl-edit", now=T1)
    assert set(entries(result)) == {("someone", "Update", "")}


def test_noop_update_keeps_managed_fields() -> None:
    live = _scaled_by_edit()
    assert update_managed_fields(live, copy.deepcopy(live), manager="kubectl-edit", now=T4) == live


def test_update_removing_a_field_removes_it_from_every_manager() -> None:
    live = _scaled_by_edit()
    new = copy.deepcopy(live)
    del new["metadata"]["labels"]
    result = update_managed_fields(live, new, manager="kubectl-edit", now=T2)
    assert "f:metadata" not in fields(result, "kubectl")
    assert fields(result, "kubectl-edit", "Update") == {"f:spec": {"f:replicas": {}}}
    assert entries(result)[("kubectl-edit", "Update", "")]["time"] == T1, "a removal adds nothing to own"


def test_at_most_ten_update_managers() -> None:
    obj = stored(update_managed_fields(None, {"apiVersion": "v1", "kind": "ConfigMap",
                                              "metadata": {"name": "c"}, "data": {}},
                                       manager="creator", now="2024-01-01T00:00:00Z"))
    for i in range(11):
        new = copy.deepcopy(obj)
        new["data"][f"k{i}"] = "v"
        obj = update_managed_fields(obj, new, manager=f"m{i:02d}", now=f"2024-01-01T00:{i + 1:02d}:00Z")
    managers = [e["manager"] for e in obj["metadata"]["managedFields"]]
    assert len(managers) == 10
    assert "ancient-changes" in managers and "creator" not in managers and "m00" not in managers
    ancient = entries(obj)[("ancient-changes", "Update", "")]["fieldsV1"]
    assert ancient == {"f:data": {".": {}, "f:k0": {}, "f:k1": {}}}


def test_managed_fields_entries_are_sorted_like_kube() -> None:
    live = _scaled_by_edit()
    order = [(e["operation"], e["manager"]) for e in live["metadata"]["managedFields"]]
    assert order == [("Apply", "kubectl"), ("Update", "kubectl-edit")]


APPLY_ERRORS: list[tuple[str, Any, str, type[APIError], int, str]] = [
    ("missing field manager", NGINX_CONFIG, "", Invalid, 422,
     'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'),
    ("other kind", {**NGINX_CONFIG, "kind": "StatefulSet"}, "m", BadRequest, 400,
     "invalid object type: apps/v1, Kind=StatefulSet"),
    ("other version", {**NGINX_CONFIG, "apiVersion": "apps/v1beta1"}, "m", BadRequest, 400,
     "invalid object type: apps/v1beta1, Kind=Deployment"),
    ("no apiVersion", {k: v for k, v in NGINX_CONFIG.items() if k != "apiVersion"}, "m", BadRequest, 400,
     "invalid object type: /, Kind=Deployment"),
    ("managedFields set", {**NGINX_CONFIG, "metadata": {"name": "x", "managedFields": []}}, "m", BadRequest, 400,
     "metadata.managedFields must be nil"),
    ("unknown field", {**NGINX_CONFIG, "spec": {**NGINX_CONFIG["spec"], "replica": 1}}, "m", InternalError, 500,
     "failed to create typed patch object (default/nginx-deployment; apps/v1, Kind=Deployment): "
     ".spec.replica: field not declared in schema"),
    ("container without name", {**NGINX_CONFIG, "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}},
     "m", InternalError, 500,
     '.spec.template.spec.containers: element 0: associative list with keys has an element that omits all '
     'key fields ["name"] (and doesn\'t have default values for any key fields)'),
    ("duplicate keys", {**NGINX_CONFIG, "spec": {"template": {"spec": {"containers": [{"name": "a"},
                                                                                      {"name": "a"}]}}}},
     "m", InternalError, 500,
     '.spec.template.spec.containers: duplicate entries for key [name="a"]'),
]


@pytest.mark.parametrize(("name", "config", "manager", "error", "code", "message"), APPLY_ERRORS,
                         ids=[c[0] for c in APPLY_ERRORS])
def test_apply_errors(name: str, config: Any, manager: str, error: type[APIError], code: int,
                      message: str) -> None:
    with pytest.raises(error) as info:
        apply(None, config, manager=manager, force=False, resolver=DEPLOYMENTS, now=T0)
    assert info.value.code == code
    assert message in info.value.message


NAME_CASES: list[tuple[str, dict[str, Any] | None, dict[str, Any], str | None]] = [
    ("create without a name", None, {"name": None}, "the name of the object () does not match the name on the URL "
                                                   "(nginx-deployment)"),
    ("create with another name", None, {"name": "other"},
     "the name of the object (other) does not match the name on the URL (nginx-deployment)"),
    ("another namespace", None, {"namespace": "kube-system"},
     "the namespace of the object (kube-system) does not match the namespace on the request (default)"),
    ("existing object, no name in the configuration", {"uid": "1"}, {"name": None}, None),
    ("matching", None, {}, None),
]


@pytest.mark.parametrize(("name", "live_md", "md_changes", "message"), NAME_CASES, ids=[c[0] for c in NAME_CASES])
def test_apply_checks_name_and_namespace_against_the_url(name: str, live_md: dict[str, Any] | None,
                                                         md_changes: dict[str, Any], message: str | None) -> None:
    live = None
    if live_md is not None:
        live = copy.deepcopy(NGINX_CONFIG)
        live["metadata"].update(live_md)
    config = copy.deepcopy(NGINX_CONFIG)
    for key, value in md_changes.items():
        if value is None:
            config["metadata"].pop(key)
        else:
            config["metadata"][key] = value
    kwargs: dict[str, Any] = {"manager": "m", "force": True, "resolver": DEPLOYMENTS, "now": T0,
                              "name": "nginx-deployment", "namespace": "default"}
    if message is None:
        assert apply(live, config, **kwargs)["metadata"]["name"] == "nginx-deployment"
        return
    with pytest.raises(BadRequest) as info:
        apply(live, config, **kwargs)
    assert info.value.message == message


PATCH_OPTION_CASES: list[tuple[str, str, bool | None, str | None]] = [
    ("apply", "kubectl", None, None),
    ("apply", "kubectl", True, None),
    ("apply", "", None, 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for '
                        "apply patch"),
    ("merge", "", True, 'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for '
                        "non-apply patch"),
    ("strategic", "x" * 129, None, "fieldManager: Too long: may not be more than 128 bytes"),
    ("json", "bad\tname", None, "invalid character U+0009 (at position 3)"),
    ("json", "", None, None),
]


@pytest.mark.parametrize(("patch_type", "manager", "force", "message"), PATCH_OPTION_CASES)
def test_validate_patch_options(patch_type: str, manager: str, force: bool | None, message: str | None) -> None:
    if message is None:
        validate_patch_options(patch_type, field_manager=manager, force=force)
        return
    with pytest.raises(Invalid) as info:
        validate_patch_options(patch_type, field_manager=manager, force=force)
    assert message in info.value.message
    assert info.value.details["kind"] == "PatchOptions"
