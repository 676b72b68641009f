"""Table output: columns and cells like kube-apiserver's printers."""

from __future__ import annotations

import datetime as dt

import pytest

from atoll.api.builtin import new_registry
from atoll.api.resources import PrinterColumn, ResourceInfo
from atoll.apiserver.tables import human_duration, pod_status, to_table

NOW = dt.datetime(2026, 1, 2, 12, 0, 0, tzinfo=dt.UTC)
REG = new_registry()


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (59, "59s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600 + 60, "3h1m"),
    (9 * 3600, "9h"), (50 * 3600, "2d2h"), (10 * 86400, "10d"), (800 * 86400, "2y70d"),
])
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def pod(phase: str = "Running", *, waiting: str = "", ready: bool = True, restarts: int = 0,
        deleting: bool = False) -> dict:
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    md = {"name": "p", "creationTimestamp": "2026-01-02T11:59:00Z"}
    if deleting:
        md["deletionTimestamp"] = "2026-01-02T12:00:00Z"
    return {"metadata": md, "spec": {"containers": [{"name": "c"}], "nodeName": "n1"},
            "status": {"phase": phase, "podIP": "127.16.0.5",
                       "containerStatuses": [{"name": "c", "ready": ready, "restartCount": restarts,
                                              "state": state}]}}


@pytest.mark.parametrize(("obj", "status", "ready", "restarts"), [
    (pod(), "Running", 1, 0),
    (pod("Pending", waiting="ContainerCreating", ready=False), "ContainerCreating", 0, 0),
    (pod(waiting="CrashLoopBackOff", ready=False, restarts=4), "CrashLoopBackOff", 0, 4),
    (pod(deleting=True), "Terminating", 1, 0),
])
def test_pod_status(obj: dict, status: str, ready: int, restarts: int) -> None:
    assert pod_status(obj)[:2] == (status, ready) and pod_status(obj)[3] == restarts


def test_pod_table_with_wide_columns_and_metadata() -> None:
    info = REG.get("", "v1", "pods")
    assert info is not None
    table = to_table(info, [pod()], now=NOW)
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names[:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert {c["name"] for c in table["columnDefinitions"] if c["priority"] == 1} >= {"IP", "Node"}
    row = table["rows"][0]
    assert row["cells"][:5] == ["p", "1/1", "Running", "0", "60s"]
    assert row["object"]["kind"] == "PartialObjectMetadata" and row["object"]["metadata"]["name"] == "p"
    assert "object" not in to_table(info, [pod()], include_object="None", now=NOW)["rows"][0]


def test_deployment_and_service_cells() -> None:
    deps, svcs = REG.get("apps", "v1", "deployments"), REG.get("", "v1", "services")
    assert deps and svcs
    d = {"metadata": {"name": "web", "creationTimestamp": "2026-01-02T11:00:00Z"},
         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
         "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    assert to_table(deps, [d], now=NOW)["rows"][0]["cells"] == ["web", "2/3", 3, 2, "60m", "c", "nginx", "app=web"]
    s = {"metadata": {"name": "svc", "creationTimestamp": "2026-01-02T12:00:00Z"},
         "spec": {"type": "NodePort", "clusterIP": "127.17.0.10", "ports": [{"port": 80, "nodePort": 30080,
                                                                             "protocol": "TCP"}]}}
    assert to_table(svcs, [s], now=NOW)["rows"][0]["cells"][:5] == ["svc", "NodePort", "127.17.0.10", "<none>",
                                                                  "80:30080/TCP"]


def test_custom_printer_columns_with_jsonpath() -> None:
    info = ResourceInfo(group="example.com", version="v1", kind="Widget", plural="widgets", singular="widget",
                        namespaced=True, custom=True, printer_columns=(
                            PrinterColumn("Size", "integer", ".spec.size"),
                            PrinterColumn("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
                            PrinterColumn("Age", "date", ".metadata.creationTimestamp")))
    obj = {"metadata": {"name": "w", "creationTimestamp": "2026-01-02T11:58:00Z"}, "spec": {"size": 3},
           "status": {"conditions": [{"type": "Other", "status": "False"}, {"type": "Ready", "status": "True"}]}}
    table = to_table(info, [obj], now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Size", "Ready", "Age"]
    assert table["rows"][0]["cells"] == ["w", 3, "True", "2m"]
    missing = to_table(info, [{"metadata": {"name": "x"}}], now=NOW)["rows"][0]["cells"]
    assert missing[:3] == ["x", None, None]


def job(*conditions: str, deleting: bool = False) -> dict:
    md = {"name": "j", "creationTimestamp": "2026-01-02T11:59:00Z"}
    if deleting:
        md["deletionTimestamp"] = "2026-01-02T12:00:00Z"
    return {"metadata": md, "spec": {"completions": 1},
            "status": {"conditions": [{"type": c, "status": "True"} for c in conditions]}}


@pytest.mark.parametrize(("obj", "status"), [
    (job(), "Running"),
    (job("FailureTarget", "Failed"), "Failed"),         # kube's order, not the list's
    (job("SuccessCriteriaMet", "Complete"), "Complete"),
    (job("Suspended", deleting=True), "Terminating"),
    (job("Suspended"), "Suspended"),
    (job("SuccessCriteriaMet"), "SuccessCriteriaMet"),
])
def test_job_status_column(obj: dict, status: str) -> None:
    info = REG.get("batch", "v1", "jobs")
    assert info is not None
    table = to_table(info, [obj], now=NOW)
    assert table["rows"][0]["cells"][1] == status
