"""DefaultTolerationSeconds and ServiceAccount admission: kube's rules, then through the real server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from atoll.api.builtin import new_registry
from atoll.apiserver.admission import (
    NOT_READY_TAINT,
    UNREACHABLE_TAINT,
    DefaultTolerationSeconds,
    ServiceAccountAdmission,
    tolerates_node_taint,
)
from atoll.apiserver.registry import RequestContext
from tests.conftest import RunningServer, require_kubectl

Obj = dict[str, Any]
RESOURCES = new_registry()
_pods = RESOURCES.get("", "v1", "pods")
_deployments = RESOURCES.get("apps", "v1", "deployments")
assert _pods is not None and _deployments is not None
PODS, DEPLOYMENTS = _pods, _deployments


def new_pod(spec: Obj | None = None, annotations: dict[str, str] | None = None) -> Obj:
    return {"metadata": {"name": "p", "namespace": "ns", "annotations": annotations or {}},
            "spec": {"containers": [{"name": "c", "image": "i"}], **(spec or {})}}


def ne(key: str = "", effect: str = "NoExecute", **extra: Any) -> Obj:
    return {"key": key, "effect": effect, "operator": "Exists", **extra}


@pytest.mark.parametrize(("tolerations", "key", "expected"), [
    ([], NOT_READY_TAINT, False),
    ([ne(NOT_READY_TAINT, tolerationSeconds=10)], NOT_READY_TAINT, True),
    ([ne(NOT_READY_TAINT)], UNREACHABLE_TAINT, False),
    ([ne("")], UNREACHABLE_TAINT, True),                              # every key
    ([ne(NOT_READY_TAINT, effect="")], NOT_READY_TAINT, True),        # every effect
    ([ne(NOT_READY_TAINT, effect="NoSchedule")], NOT_READY_TAINT, False),
    ([{"key": NOT_READY_TAINT, "operator": "Equal", "value": "x", "effect": "NoExecute"}], NOT_READY_TAINT, True),
])
def test_tolerates_node_taint(tolerations: list[Obj], key: str, expected: bool) -> None:
    assert tolerates_node_taint(tolerations, key) is expected


@pytest.mark.parametrize(("tolerations", "expected"), [
    # nothing: both added with the default seconds
    ([], {NOT_READY_TAINT: 300, UNREACHABLE_TAINT: 300}),
    # the pod's own toleration (here: forever) is kept, only the other added
    ([ne(UNREACHABLE_TAINT)], {NOT_READY_TAINT: 300, UNREACHABLE_TAINT: None}),
    ([ne(NOT_READY_TAINT, tolerationSeconds=5)], {NOT_READY_TAINT: 5, UNREACHABLE_TAINT: 300}),
    # tolerating everything: nothing added
    ([{"operator": "Exists"}], {}),
    # a NoSchedule toleration does not count
    ([ne(NOT_READY_TAINT, effect="NoSchedule")], {NOT_READY_TAINT: 300, UNREACHABLE_TAINT: 300}),
])
async def test_default_toleration_seconds(tolerations: list[Obj], expected: dict[str, int | None]) -> None:
    pod = new_pod({"tolerations": tolerations})
    await DefaultTolerationSeconds().admit("CREATE", PODS, pod, None, RequestContext())
    got = {t["key"]: t.get("tolerationSeconds") for t in pod["spec"].get("tolerations") or []
           if t.get("key") in (NOT_READY_TAINT, UNREACHABLE_TAINT) and t.get("effect") in ("NoExecute", "")}
    assert got == expected
    assert all(t in pod["spec"]["tolerations"] for t in tolerations)  # the pod's own stay first, unchanged
    assert pod["spec"].get("tolerations", [])[:len(tolerations)] == tolerations


async def test_default_toleration_seconds_configurable_and_create_only() -> None:
    pod = new_pod()
    await DefaultTolerationSeconds(not_ready_seconds=30, unreachable_seconds=60).admit(
        "CREATE", PODS, pod, None, RequestContext())
    assert pod["spec"]["tolerations"] == [
        {"key": NOT_READY_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30},
        {"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}]
    updated = new_pod()
    await DefaultTolerationSeconds().admit("UPDATE", PODS, updated, new_pod(), RequestContext())
    assert "tolerations" not in updated["spec"]
    deployment = {"metadata": {"name": "d"}, "spec": {}}
    await DefaultTolerationSeconds().admit("CREATE", DEPLOYMENTS, deployment, None, RequestContext())
    assert deployment["spec"] == {}


@pytest.mark.parametrize(("spec", "annotations", "expected"), [
    ({}, {}, "default"),
    ({"serviceAccountName": "builder"}, {}, "builder"),
    ({"serviceAccount": "legacy"}, {}, "legacy"),
    ({}, {"kubernetes.io/config.mirror": "x"}, None),                # mirror pods are left alone
])
async def test_service_account_admission(spec: Obj, annotations: dict[str, str], expected: str | None) -> None:
    pod = new_pod(spec, annotations)
    await ServiceAccountAdmission().admit("CREATE", PODS, pod, None, RequestContext())
    assert pod["spec"].get("serviceAccountName") == expected
    assert pod["spec"].get("serviceAccount") == expected


async def test_service_account_admission_ignores_updates() -> None:
    pod = new_pod()
    await ServiceAccountAdmission().admit("UPDATE", PODS, pod, new_pod(), RequestContext())
    assert "serviceAccountName" not in pod["spec"]


def test_pods_created_through_kubectl_get_both_defaults(apiserver: RunningServer) -> None:
    require_kubectl()
    apiserver.kubectl("create", "namespace", "admission-defaults")
    manifest: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain", "namespace": "admission-defaults"},
                "spec": {"containers": [{"name": "c", "image": "echo"}]}}
    apiserver.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    own: Obj = {**manifest, "metadata": {"name": "own", "namespace": "admission-defaults"},
           "spec": {**manifest["spec"], "serviceAccountName": "builder",
                    "tolerations": [{"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute",
                                     "tolerationSeconds": 7}]}}
    apiserver.kubectl("create", "-f", "-", input=json.dumps(own))
    plain = json.loads(apiserver.kubectl("get", "pod", "plain", "-n", "admission-defaults", "-o", "json").stdout)
    assert plain["spec"]["serviceAccountName"] == "default" and plain["spec"]["serviceAccount"] == "default"
    assert {(t["key"], t["tolerationSeconds"]) for t in plain["spec"]["tolerations"]} == {
        (NOT_READY_TAINT, 300), (UNREACHABLE_TAINT, 300)}
    got = json.loads(apiserver.kubectl("get", "pod", "own", "-n", "admission-defaults", "-o", "json").stdout)
    assert got["spec"]["serviceAccountName"] == "builder"
    assert [(t["key"], t["tolerationSeconds"]) for t in got["spec"]["tolerations"]] == [
        (UNREACHABLE_TAINT, 7), (NOT_READY_TAINT, 300)]
    # Re-applying the same manifest keeps the admitted defaults (kubectl's three-way merge leaves them).
    apiserver.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    again = json.loads(apiserver.kubectl("get", "pod", "plain", "-n", "admission-defaults", "-o", "json").stdout)
    assert again["spec"]["tolerations"] == plain["spec"]["tolerations"]
