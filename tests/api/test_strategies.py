"""Per-kind strategies: kube's defaults, preparation, validation messages and generation rules."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from atoll.api.builtin import new_registry
from atoll.api.errors import invalid
from atoll.api.meta import Cause
from atoll.api.resources import ResourceInfo
from atoll.api.strategies import (
    CustomResourceStrategy,
    Strategy,
    image_pull_policy,
    pod_qos_class,
    strategy_for,
)

REGISTRY = new_registry()
VERSIONS = {"autoscaling": "v2"}

Obj = dict[str, Any]


def info_of(group: str, plural: str) -> ResourceInfo:
    found = REGISTRY.get(group, VERSIONS.get(group, "v1"), plural)
    assert found is not None, plural
    return found


def strategy(group: str, plural: str) -> Strategy:
    return strategy_for(info_of(group, plural))


def create(group: str, plural: str, obj: Obj, namespace: str = "default") -> tuple[Obj, list[tuple[str, str]]]:
    obj = copy.deepcopy(obj)
    causes = strategy(group, plural).before_create(obj, namespace=namespace)
    return obj, fields(causes)


def fields(causes: list[Cause]) -> list[tuple[str, str]]:
    return [(c["field"], c["message"]) for c in causes]


def container(**extra: Any) -> Obj:
    return {"name": "app", "image": "nginx:1.27", **extra}


def pod(**spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [container()], **spec}}


def template(labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    return {"metadata": {"labels": labels if labels is not None else {"app": "web"}},
            "spec": {"containers": [container()], **spec}}


def deployment(**spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(), **spec}}


# -- defaults -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"),
    ("nginx:latest", "Always"),
    ("nginx:1.27", "IfNotPresent"),
    ("registry:5000/nginx", "Always"),
    ("registry:5000/nginx:1", "IfNotPresent"),
    ("nginx@sha256:abc", "IfNotPresent"),
    ("nginx:latest@sha256:abc", "Always"),
    ("", "IfNotPresent"),
])
def test_image_pull_policy(image: str, policy: str) -> None:
    assert image_pull_policy(image) == policy


def test_pod_defaults_and_initial_status() -> None:
    obj, causes = create("", "pods", pod(containers=[container(
        ports=[{"containerPort": 80}],
        livenessProbe={"httpGet": {"port": 80}},
        env=[{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        resources={"limits": {"cpu": "1", "memory": "1Gi"}})],
        volumes=[{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "c"}}]))
    assert causes == []
    spec = obj["spec"]
    assert {k: spec[k] for k in ("dnsPolicy", "restartPolicy", "schedulerName", "terminationGracePeriodSeconds",
                                 "securityContext", "enableServiceLinks")} == {
        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
        "terminationGracePeriodSeconds": 30, "securityContext": {}, "enableServiceLinks": True}
    c = spec["containers"][0]
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert c["livenessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                  "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert c["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    assert spec["volumes"] == [{"name": "scratch", "emptyDir": {}},
                               {"name": "cfg", "configMap": {"name": "c", "defaultMode": 420}}]
    assert obj["status"] == {"phase": "Pending", "qosClass": "Guaranteed"}
    assert obj["metadata"]["namespace"] == "default"
    assert obj["metadata"]["uid"] and obj["metadata"]["creationTimestamp"]
    assert "generation" not in obj["metadata"]


def test_host_network_copies_container_ports() -> None:
    obj, _ = create("", "pods", pod(hostNetwork=True, containers=[container(ports=[{"containerPort": 8080}])]))
    assert obj["spec"]["containers"][0]["ports"][0]["hostPort"] == 8080


@pytest.mark.parametrize(("resources", "qos"), [
    ([{}], "BestEffort"),
    ([{"requests": {"cpu": "100m"}}], "Burstable"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}}], "Guaranteed"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}}], "Burstable"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}}, {}], "Burstable"),
    ([{"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}], "BestEffort"),
])
def test_pod_qos_class(resources: list[Obj], qos: str) -> None:
    containers = [container(name=f"c{i}", resources=r) for i, r in enumerate(resources)]
    assert pod_qos_class({"spec": {"containers": containers}}) == qos


def test_templates_get_pod_spec_defaults_but_not_pod_only_ones() -> None:
    obj, causes = create("apps", "deployments", deployment())
    assert causes == []
    spec = obj["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%",
                                                                           "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    tspec = spec["template"]["spec"]
    assert tspec["restartPolicy"] == "Always"
    assert tspec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert "enableServiceLinks" not in tspec
    assert obj["status"] == {}
    assert obj["metadata"]["generation"] == 1


def test_recreate_strategy_gets_no_rolling_update() -> None:
    obj, causes = create("apps", "deployments", deployment(strategy={"type": "Recreate"}))
    assert causes == []
    assert obj["spec"]["strategy"] == {"type": "Recreate"}


def test_statefulset_daemonset_replicaset_defaults() -> None:
    sts, causes = create("apps", "statefulsets", {
        "metadata": {"name": "db"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}}, "template": template(), "serviceName": "db",
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}})
    assert causes == []
    assert {k: sts["spec"][k] for k in ("podManagementPolicy", "updateStrategy", "replicas", "revisionHistoryLimit",
                                        "persistentVolumeClaimRetentionPolicy")} == {
        "podManagementPolicy": "OrderedReady", "updateStrategy": {"type": "RollingUpdate",
                                                                  "rollingUpdate": {"partition": 0}},
        "replicas": 1, "revisionHistoryLimit": 10,
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"}}
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["volumeMode"] == "Filesystem"
    assert claim["status"] == {"phase": "Pending"}

    ds, causes = create("apps", "daemonsets", {"metadata": {"name": "agent"}, "spec": {
        "selector": {"matchLabels": {"app": "web"}}, "template": template()}})
    assert causes == []
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds["spec"]["revisionHistoryLimit"] == 10

    rs, causes = create("apps", "replicasets", {"metadata": {"name": "rs"}, "spec": {
        "selector": {"matchLabels": {"app": "web"}}, "template": template()}})
    assert causes == []
    assert rs["spec"]["replicas"] == 1


def job(**spec: Any) -> Obj:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container()]}}, **spec}}


def test_job_defaults_and_generated_selector() -> None:
    obj, causes = create("batch", "jobs", job())
    assert causes == []
    spec = obj["spec"]
    uid = obj["metadata"]["uid"]
    assert {k: spec[k] for k in ("completions", "parallelism", "backoffLimit", "completionMode", "suspend",
                                 "manualSelector", "podReplacementPolicy")} == {
        "completions": 1, "parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": False,
        "manualSelector": False, "podReplacementPolicy": "TerminatingOrFailed"}
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = {"job-name": "pi", "batch.kubernetes.io/job-name": "pi", "controller-uid": uid,
              "batch.kubernetes.io/controller-uid": uid}
    assert spec["template"]["metadata"]["labels"] == labels
    assert obj["metadata"]["labels"] == labels
    assert obj["metadata"]["generation"] == 1
    assert obj["status"] == {}


@pytest.mark.parametrize(("given", "completions", "parallelism", "backoff"), [
    ({"parallelism": 3}, None, 3, 6),
    ({"completions": 5}, 5, 1, 6),
    ({"backoffLimitPerIndex": 1, "completionMode": "Indexed", "completions": 2}, 2, 1, 2**31 - 1),
])
def test_job_count_defaults(given: Obj, completions: int | None, parallelism: int, backoff: int) -> None:
    obj, causes = create("batch", "jobs", job(**given))
    assert causes == []
    assert obj["spec"].get("completions") == completions
    assert obj["spec"]["parallelism"] == parallelism
    assert obj["spec"]["backoffLimit"] == backoff


def test_manual_selector_is_kept() -> None:
    obj, causes = create("batch", "jobs", job(manualSelector=True, selector={"matchLabels": {"app": "x"}},
                                              template={"metadata": {"labels": {"app": "x"}},
                                                        "spec": {"restartPolicy": "Never",
                                                                 "containers": [container()]}}))
    assert causes == []
    assert obj["spec"]["selector"] == {"matchLabels": {"app": "x"}}
    assert obj["spec"]["template"]["metadata"]["labels"] == {"app": "x"}


def test_cronjob_defaults() -> None:
    obj, causes = create("batch", "cronjobs", {"metadata": {"name": "tick"}, "spec": {
        "schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure", "containers": [container()]}}}}}})
    assert causes == []
    assert {k: obj["spec"][k] for k in ("concurrencyPolicy", "suspend", "successfulJobsHistoryLimit",
                                        "failedJobsHistoryLimit")} == {
        "concurrencyPolicy": "Allow", "suspend": False, "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1}
    job_spec = obj["spec"]["jobTemplate"]["spec"]
    assert "backoffLimit" not in job_spec
    assert job_spec["template"]["spec"]["containers"][0]["terminationMessagePolicy"] == "File"


def service(**spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec}}


def test_service_defaults() -> None:
    obj, causes = create("", "services", service())
    assert causes == []
    spec = obj["spec"]
    assert spec == {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                    "sessionAffinity": "None", "type": "ClusterIP", "internalTrafficPolicy": "Cluster",
                    "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}
    assert obj["status"] == {"loadBalancer": {}}


@pytest.mark.parametrize(("spec", "expected"), [
    ({"type": "NodePort"}, {"externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster"}),
    ({"type": "LoadBalancer"}, {"externalTrafficPolicy": "Cluster", "allocateLoadBalancerNodePorts": True}),
    ({"sessionAffinity": "ClientIP"}, {"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}}}),
    ({"clusterIP": "None", "selector": None}, {"ipFamilyPolicy": "PreferDualStack", "clusterIPs": ["None"]}),
    ({"clusterIP": "fd00::10"}, {"ipFamilies": ["IPv6"], "clusterIPs": ["fd00::10"]}),
    ({"ports": [{"port": 80, "targetPort": "http", "name": "http"}]},
     {"ports": [{"port": 80, "targetPort": "http", "name": "http", "protocol": "TCP"}]}),
])
def test_service_defaults_by_type(spec: Obj, expected: Obj) -> None:
    obj, causes = create("", "services", service(**spec))
    assert causes == []
    for key, value in expected.items():
        assert obj["spec"][key] == value, key


def test_external_name_service_gets_no_ip_families() -> None:
    obj, causes = create("", "services", {"metadata": {"name": "ext"},
                                          "spec": {"type": "ExternalName", "externalName": "example.com"}})
    assert causes == []
    assert "ipFamilies" not in obj["spec"] and "internalTrafficPolicy" not in obj["spec"]


def test_secret_defaults_and_string_data() -> None:
    obj, causes = create("", "secrets", {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"},
                                         "data": {"user": base64.b64encode(b"me").decode()}})
    assert causes == []
    assert obj["type"] == "Opaque"
    assert "stringData" not in obj
    assert base64.b64decode(obj["data"]["password"]) == b"hunter2"


def test_namespace_create() -> None:
    obj, causes = create("", "namespaces", {"metadata": {"name": "team-a", "namespace": "ignored"}})
    assert causes == []
    assert obj["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert obj["spec"] == {"finalizers": ["kubernetes"]}
    assert obj["status"] == {"phase": "Active"}
    assert "namespace" not in obj["metadata"]


def test_generate_name_namespace_gets_name_label() -> None:
    obj, causes = create("", "namespaces", {"metadata": {"generateName": "tmp-"}})
    assert causes == []
    name = obj["metadata"]["name"]
    assert name.startswith("tmp-") and len(name) == 9
    assert obj["metadata"]["labels"]["kubernetes.io/metadata.name"] == name


@pytest.mark.parametrize(("group", "plural", "obj", "path", "value"), [
    ("", "persistentvolumeclaims", {"metadata": {"name": "c"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
     ("spec", "volumeMode"), "Filesystem"),
    ("", "persistentvolumeclaims", {"metadata": {"name": "c"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
     ("status", "phase"), "Pending"),
    ("discovery.k8s.io", "endpointslices", {"metadata": {"name": "e"}, "addressType": "IPv4", "endpoints": [],
                                            "ports": [{"port": 80}]},
     ("ports",), [{"port": 80, "name": "", "protocol": "TCP"}]),
    ("rbac.authorization.k8s.io", "rolebindings", {"metadata": {"name": "rb"}, "roleRef": {
        "kind": "Role", "name": "r"}, "subjects": [{"kind": "User", "name": "alice"},
                                                   {"kind": "ServiceAccount", "name": "sa", "namespace": "d"}]},
     ("subjects",), [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
                     {"kind": "ServiceAccount", "name": "sa", "namespace": "d", "apiGroup": ""}]),
    ("scheduling.k8s.io", "priorityclasses", {"metadata": {"name": "high"}, "value": 1000},
     ("preemptionPolicy",), "PreemptLowerPriority"),
    ("networking.k8s.io", "networkpolicies", {"metadata": {"name": "np"}, "spec": {
        "podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}},
     ("spec",), {"podSelector": {}, "egress": [{"ports": [{"port": 53, "protocol": "TCP"}]}],
                 "policyTypes": ["Ingress", "Egress"]}),
    ("autoscaling", "horizontalpodautoscalers", {"metadata": {"name": "h"}, "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5}},
     ("spec", "metrics"), [{"type": "Resource", "resource": {"name": "cpu", "target": {
         "type": "Utilization", "averageUtilization": 80}}}]),
])
def test_kind_defaults(group: str, plural: str, obj: Obj, path: tuple[str, ...], value: Any) -> None:
    created, causes = create(group, plural, obj)
    assert causes == []
    cur: Any = created
    for part in path:
        cur = cur[part]
    assert cur == value


# -- create validation ------------------------------------------------------------------------

RESTART_ALWAYS_ONLY = 'Unsupported value: "Never": supported values: "Always"'


@pytest.mark.parametrize(("group", "plural", "obj", "expected"), [
    ("", "pods", pod(containers=[]), [("spec.containers", "Required value")]),
    ("", "pods", pod(containers=[{"name": "a"}, {"name": "a", "image": "x"}]),
     [("spec.containers[0].image", "Required value"), ("spec.containers[1].name", 'Duplicate value: "a"')]),
    ("", "pods", pod(containers=[container(name="Bad_Name")]),
     [("spec.containers[0].name", 'Invalid value: "Bad_Name": a lowercase RFC 1123 label must consist of lower '
       "case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. "
       "'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")]),
    ("", "pods", pod(restartPolicy="Sometimes"),
     [("spec.restartPolicy", 'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"')]),
    ("", "pods", pod(containers=[container(ports=[{"containerPort": 70000, "protocol": "XTP"}])]),
     [("spec.containers[0].ports[0].containerPort", "Invalid value: 70000: must be between 1 and 65535, inclusive"),
      ("spec.containers[0].ports[0].protocol", 'Unsupported value: "XTP": supported values: "SCTP", "TCP", "UDP"')]),
    ("", "pods", pod(containers=[container(volumeMounts=[{"name": "data", "mountPath": "/data"}])]),
     [("spec.containers[0].volumeMounts[0].name", 'Not found: "data"')]),
    ("", "pods", pod(containers=[container(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}})]),
     [("spec.containers[0].resources.requests", 'Invalid value: "2": must be less than or equal to cpu limit of 1')]),
    ("", "pods", pod(containers=[container(env=[{"name": "1BAD", "value": "x"}])]),
     [("spec.containers[0].env[0].name", 'Invalid value: "1BAD": a valid environment variable name must consist of '
       "alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or "
       "'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')")]),
    ("", "pods", pod(activeDeadlineSeconds=0),
     [("spec.activeDeadlineSeconds", "Invalid value: 0: must be between 1 and 2147483647, inclusive")]),
    ("", "pods", pod(tolerations=[{"operator": "Equal", "value": "x"}]),
     [("spec.tolerations[0].operator", 'Invalid value: "Equal": operator must be Exists when `key` is empty, which '
       'means "match all values and all keys"')]),
    ("", "pods", {**pod(), "metadata": {"name": "Bad"}},
     [("metadata.name", 'Invalid value: "Bad": a lowercase RFC 1123 subdomain must consist of lower case '
       "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
       "'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*"
       "[a-z0-9])?)*')")]),
    ("apps", "deployments", deployment(selector=None),
     [("spec.selector", "Required value")]),
    ("apps", "deployments", deployment(selector={}),
     [("spec.selector", "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
       "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment")]),
    ("apps", "deployments", deployment(template=template({"app": "x"})),
     [("spec.template.metadata.labels", 'Invalid value: map[string]string{"app":"x"}: `selector` does not match '
       "template `labels`")]),
    ("apps", "deployments", deployment(template=template(restartPolicy="Never")),
     [("spec.template.spec.restartPolicy", RESTART_ALWAYS_ONLY)]),
    ("apps", "deployments", deployment(replicas=-1),
     [("spec.replicas", "Invalid value: -1: must be greater than or equal to 0")]),
    ("apps", "deployments", deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": 0, "maxSurge": 0}}),
     [("spec.strategy.rollingUpdate.maxUnavailable", 'Invalid value: intstr.IntOrString{Type:0, IntVal:0, '
       'StrVal:""}: may not be 0 when `maxSurge` is 0')]),
    ("apps", "deployments", deployment(strategy={"type": "Recreate", "rollingUpdate": {}}),
     [("spec.strategy.rollingUpdate", "Forbidden: may not be specified when strategy `type` is 'Recreate'")]),
    ("apps", "deployments", deployment(minReadySeconds=700),
     [("spec.progressDeadlineSeconds", "Invalid value: 600: must be greater than minReadySeconds")]),
    ("apps", "deployments", deployment(template=template({"app": "web", "bad key": "v"})),
     [("spec.template.labels", 'Invalid value: "bad key": name part must consist of alphanumeric characters, '
       "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
       "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")]),
    ("apps", "replicasets", {"metadata": {"name": "rs"}, "spec": {"selector": {}, "template": template()}},
     [("spec.selector", "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
       "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment")]),
    ("apps", "daemonsets", {"metadata": {"name": "ds"}, "spec": {
        "selector": {"matchLabels": {"app": "web"}}, "template": template(activeDeadlineSeconds=5)}},
     [("spec.template.spec.activeDeadlineSeconds", "Invalid value: 5: activeDeadlineSeconds must be nil for daemon "
       "set pods")]),
    ("apps", "statefulsets", {"metadata": {"name": "s"}, "spec": {
        "selector": {"matchLabels": {"app": "web"}}, "template": template(), "podManagementPolicy": "Random"}},
     [("spec.podManagementPolicy", 'Unsupported value: "Random": supported values: "OrderedReady", "Parallel"')]),
    ("batch", "jobs", job(template={"spec": {"containers": [container()]}}),
     [("spec.template.spec.restartPolicy", 'Unsupported value: "Always": supported values: "OnFailure", "Never"')]),
    ("batch", "jobs", job(parallelism=-1),
     [("spec.parallelism", "Invalid value: -1: must be greater than or equal to 0")]),
    ("batch", "jobs", job(manualSelector=True),
     [("spec.selector", "Required value")]),
    ("batch", "jobs", job(selector={"matchLabels": {"batch.kubernetes.io/controller-uid": "not-mine"}}),
     [("spec.selector", 'Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"batch.kubernetes.io/'
       'controller-uid":"not-mine"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` not '
       "auto-generated"),
      ("spec.template.metadata.labels", "<uid-labels>")]),
    ("batch", "cronjobs", {"metadata": {"name": "c" * 53}, "spec": {"schedule": "@hourly", "jobTemplate": {
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container()]}}}}}},
     [("metadata.name", f'Invalid value: "{"c" * 53}": must be no more than 52 characters')]),
    ("batch", "cronjobs", {"metadata": {"name": "c"}, "spec": {"schedule": "every minute", "jobTemplate": {
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container()]}}}}}},
     [("spec.schedule", 'Invalid value: "every minute": expected exactly 5 fields, found 2: [every minute]')]),
    ("batch", "cronjobs", {"metadata": {"name": "c"}, "spec": {"schedule": "61 * * * *", "jobTemplate": {
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container()]}}}}}},
     [("spec.schedule", 'Invalid value: "61 * * * *": end of range (61) above maximum (59): 61')]),
    ("batch", "cronjobs", {"metadata": {"name": "c"}, "spec": {"schedule": "0 0 * * *", "timeZone": "Mars/Base",
                                                               "jobTemplate": {"spec": {"template": {"spec": {
                                                                   "restartPolicy": "Never",
                                                                   "containers": [container()]}}}}}},
     [("spec.timeZone", 'Invalid value: "Mars/Base": unknown time zone Mars/Base')]),
    ("", "services", service(ports=[]), [("spec.ports", "Required value")]),
    ("", "services", {**service(), "metadata": {"name": "1web"}},
     [("metadata.name", 'Invalid value: "1web": a DNS-1035 label must consist of lower case alphanumeric characters '
       "or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
       "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")]),
    ("", "services", service(ports=[{"port": 80}, {"port": 443}]),
     [("spec.ports[0].name", "Required value"), ("spec.ports[1].name", "Required value")]),
    ("", "services", service(ports=[{"port": 0, "nodePort": 30000}]),
     [("spec.ports[0].port", "Invalid value: 0: must be between 1 and 65535, inclusive"),
      ("spec.ports[0].targetPort", "Invalid value: 0: must be between 1 and 65535, inclusive"),
      ("spec.ports[0].nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'")]),
    ("", "services", service(type="Magic"),
     [("spec.type", 'Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", "LoadBalancer", '
       '"NodePort"')]),
    ("", "services", service(clusterIP="300.1.1.1"),
     [("spec.clusterIPs[0]", 'Invalid value: "300.1.1.1": must be a valid IP address, (e.g. 10.9.8.7 or '
       "2001:db8::ffff)")]),
    ("", "configmaps", {"metadata": {"name": "c"}, "data": {"bad key": "v"}},
     [("data[bad key]", "Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, "
       "'-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
       "'[-._a-zA-Z0-9]+')")]),
    ("", "configmaps", {"metadata": {"name": "c"}, "data": {"k": "x" * (1024 * 1024 + 1)}},
     [("", "Too long: must have at most 1048576 bytes")]),
    ("", "secrets", {"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {}},
     [("data[tls.crt]", "Required value"), ("data[tls.key]", "Required value")]),
    ("", "namespaces", {"metadata": {"name": "a.b"}},
     [("metadata.name", 'Invalid value: "a.b": must not contain dots')]),
    ("", "namespaces", {"metadata": {"name": "ns"}, "spec": {"finalizers": ["custom"]}},
     [("spec.finalizers[0]", 'Invalid value: "custom": name is neither a standard finalizer name nor is it fully '
       "qualified")]),
    ("rbac.authorization.k8s.io", "roles", {"metadata": {"name": "r"}, "rules": [
        {"verbs": ["get"], "resources": ["pods"]}, {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]},
     [("rules[0].apiGroups", "Required value: resource rules must supply at least one api group"),
      ("rules[1].nonResourceURLs", 'Invalid value: []string{"/healthz"}: namespaced rules cannot apply to '
       "non-resource URLs")]),
    ("rbac.authorization.k8s.io", "clusterroles", {"metadata": {"name": "system:admin"}, "rules": [
        {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}, []),
    ("rbac.authorization.k8s.io", "rolebindings", {"metadata": {"name": "rb"}, "roleRef": {
        "kind": "Pod", "name": "r"}, "subjects": [{"kind": "Robot", "name": "x"}]},
     [("roleRef.kind", 'Unsupported value: "Pod": supported values: "Role", "ClusterRole"'),
      ("subjects[0].kind", 'Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"')]),
    ("rbac.authorization.k8s.io", "clusterrolebindings", {"metadata": {"name": "crb"}, "roleRef": {
        "kind": "ClusterRole", "name": "r"}, "subjects": [{"kind": "ServiceAccount", "name": "sa"}]},
     [("subjects[0].namespace", "Required value")]),
    ("scheduling.k8s.io", "priorityclasses", {"metadata": {"name": "system-mine"}, "value": 1},
     [("metadata.name", "Invalid value: \"system-mine\": priority class names with 'system-' prefix are reserved")]),
    ("scheduling.k8s.io", "priorityclasses", {"metadata": {"name": "huge"}, "value": 2000000000},
     [("value", "Forbidden: maximum allowed value of a user defined priority is 1000000000")]),
    ("policy", "poddisruptionbudgets", {"metadata": {"name": "pdb"}, "spec": {
        "minAvailable": 1, "maxUnavailable": "150%"}},
     [("spec", "Invalid value: policy.PodDisruptionBudgetSpec{...}: minAvailable and maxUnavailable cannot be both "
       "set"),
      ("spec.maxUnavailable", 'Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"150%"}: must not be '
       "greater than 100%")]),
    ("coordination.k8s.io", "leases", {"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0}},
     [("spec.leaseDurationSeconds", "Invalid value: 0: must be greater than 0")]),
    ("discovery.k8s.io", "endpointslices", {"metadata": {"name": "e"}, "addressType": "IPv4",
                                            "endpoints": [{"addresses": ["fd00::1"]}, {"addresses": []}]},
     [("endpoints[0].addresses[0]", 'Invalid value: "fd00::1": must be a valid IPv4 address'),
      ("endpoints[1].addresses", "Required value: must contain at least 1 address")]),
    ("networking.k8s.io", "ingresses", {"metadata": {"name": "i"}, "spec": {"rules": [{"http": {"paths": [
        {"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}},
     [("spec.rules[0].http.paths[0].pathType", "Required value: pathType must be specified")]),
    ("", "events", {"metadata": {"name": "e.1"}, "involvedObject": {"kind": "Pod", "namespace": "other"}},
     [("involvedObject.namespace", 'Invalid value: "other": does not match event.namespace')]),
    ("events.k8s.io", "events", {"metadata": {"name": "e"}, "eventTime": "2024-01-01T00:00:00.000000Z",
                                 "reportingController": "example.com/ctrl", "reportingInstance": "ctrl-1",
                                 "action": "Sync", "reason": "Done", "type": "Fine",
                                 "regarding": {"namespace": "default"}},
     [("type", 'Invalid value: "": has invalid value: Fine')]),
    ("autoscaling", "horizontalpodautoscalers", {"metadata": {"name": "h"}, "spec": {
        "scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 3, "maxReplicas": 2}},
     [("spec.maxReplicas", "Invalid value: 2: must be greater than or equal to `minReplicas`")]),
])
def test_create_validation(group: str, plural: str, obj: Obj, expected: list[tuple[str, str]]) -> None:
    created_obj, causes = create(group, plural, obj)
    uid = created_obj["metadata"]["uid"]
    uid_labels = (f'Invalid value: map[string]string{{"batch.kubernetes.io/controller-uid":"{uid}", '
                  f'"batch.kubernetes.io/job-name":"pi", "controller-uid":"{uid}", "job-name":"pi"}}: `selector` '
                  "does not match template `labels`")
    expected = [(f, uid_labels if m == "<uid-labels>" else m) for f, m in expected]
    assert causes == expected


def test_kube_message_for_the_selector_mismatch() -> None:
    obj = deployment(template=template({"app": "x"}))
    causes = strategy("apps", "deployments").before_create(obj, namespace="default")
    assert invalid("Deployment", "web", causes, group="apps").message == (
        'Deployment.apps "web" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: '
        "`selector` does not match template `labels`")


def test_reviews_need_no_name() -> None:
    _, causes = create("authorization.k8s.io", "selfsubjectaccessreviews", {"spec": {"resourceAttributes": {
        "verb": "get", "resource": "pods"}}})
    assert causes == []
    _, causes = create("authorization.k8s.io", "selfsubjectaccessreviews", {"spec": {}})
    assert causes == [("spec.resourceAttributes", "Invalid value: authorization.ResourceAttributes{...}: exactly one "
                       "of nonResourceAttributes or resourceAttributes must be specified")]


def test_crd_create() -> None:
    crd: Obj = {"metadata": {"name": "widgets.example.com"}, "spec": {
        "group": "example.com", "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
        "versions": [{"name": "v1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
    obj, causes = create("apiextensions.k8s.io", "customresourcedefinitions", crd)
    assert causes == []
    assert obj["spec"]["names"] == {"plural": "widgets", "kind": "Widget", "singular": "widget",
                                    "listKind": "WidgetList"}
    assert obj["spec"]["conversion"] == {"strategy": "None"}
    assert obj["status"] == {"acceptedNames": {"kind": "", "plural": ""}, "storedVersions": ["v1"]}
    wrong = copy.deepcopy(crd)
    wrong["metadata"]["name"] = "widgets.other.com"
    wrong["spec"]["versions"][0]["storage"] = False
    _, causes = create("apiextensions.k8s.io", "customresourcedefinitions", wrong)
    assert causes == [
        ("metadata.name", 'Invalid value: "widgets.other.com": must be spec.names.plural+"."+spec.group'),
        ("spec.versions", "Invalid value: []apiextensions.CustomResourceDefinitionVersion{...}: must have exactly "
         "one version marked as storage version")]


# -- updates ---------------------------------------------------------------------------------------


def created(group: str, plural: str, obj: Obj) -> Obj:
    out, causes = create(group, plural, obj)
    assert causes == []
    out["metadata"]["resourceVersion"] = "5"
    return out


def update(group: str, plural: str, old: Obj, mutate: Any) -> tuple[Obj, list[tuple[str, str]]]:
    new = copy.deepcopy(old)
    mutate(new)
    causes = strategy(group, plural).before_update(new, old)
    return new, fields(causes)


def _set(path: str, value: Any) -> Any:
    def mutate(obj: Obj) -> None:
        parts = path.split(".")
        cur = obj
        for part in parts[:-1]:
            cur = cur[int(part)] if isinstance(cur, list) else cur.setdefault(part, {})
        if isinstance(cur, list):
            cur[int(parts[-1])] = value
        else:
            cur[parts[-1]] = value
    return mutate


@pytest.mark.parametrize(("path", "value", "expected"), [
    ("spec.containers.0.image", "nginx:1.28", []),
    ("spec.activeDeadlineSeconds", 30, []),
    ("spec.tolerations", [{"key": "k", "operator": "Exists"}], []),
    ("metadata.labels", {"a": "b"}, []),
    ("spec.containers.0.image", "", [("spec.containers[0].image", "Required value")]),
    ("spec.nodeName", "node-b", [("spec", "Forbidden: pod updates may not change fields other than "
                                  "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                                  "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                                  "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it "
                                  "was previously negative)")]),
])
def test_pod_update_rules(path: str, value: Any, expected: list[tuple[str, str]]) -> None:
    old = created("", "pods", pod())
    _, causes = update("", "pods", old, _set(path, value))
    assert [(f, m.split("\n")[0]) for f, m in causes] == expected


def test_pod_deadline_may_only_shrink() -> None:
    old = created("", "pods", pod(activeDeadlineSeconds=30))
    _, causes = update("", "pods", old, _set("spec.activeDeadlineSeconds", 60))
    assert causes == [("spec.activeDeadlineSeconds", "Invalid value: 60: must be less than or equal to previous "
                       "value")]


def test_main_endpoint_keeps_status_and_status_endpoint_keeps_spec() -> None:
    old = created("apps", "deployments", deployment())
    old["status"] = {"replicas": 1, "observedGeneration": 1}
    new, causes = update("apps", "deployments", old, _set("status", {"replicas": 99}))
    assert causes == []
    assert new["status"] == {"replicas": 1, "observedGeneration": 1}

    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 7
    new["metadata"]["labels"] = {"sneaky": "yes"}
    new["metadata"]["annotations"] = {"note": "ok"}
    new["status"] = {"replicas": 3}
    causes_list = strategy("apps", "deployments").before_status_update(new, old)
    assert causes_list == []
    assert new["spec"] == old["spec"]
    assert new["status"] == {"replicas": 3}
    assert "labels" not in new["metadata"]
    assert new["metadata"]["annotations"] == {"note": "ok"}
    assert new["metadata"]["generation"] == old["metadata"]["generation"]


def test_pod_status_update_keeps_owner_references() -> None:
    old = created("", "pods", pod())
    old["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "1"}]
    new = copy.deepcopy(old)
    new["metadata"]["ownerReferences"] = []
    new["status"] = {"phase": "Running"}
    assert strategy("", "pods").before_status_update(new, old) == []
    assert new["metadata"]["ownerReferences"] == old["metadata"]["ownerReferences"]
    assert new["status"] == {"phase": "Running"}


@pytest.mark.parametrize(("group", "plural", "obj", "path", "value", "bumps"), [
    ("apps", "deployments", deployment(), "spec.replicas", 3, True),
    ("apps", "deployments", deployment(), "metadata.annotations", {"a": "b"}, True),
    ("apps", "deployments", deployment(), "metadata.labels", {"a": "b"}, False),
    ("apps", "replicasets", {"metadata": {"name": "rs"}, "spec": {
        "selector": {"matchLabels": {"app": "web"}}, "template": template()}},
     "metadata.annotations", {"a": "b"}, False),
    ("batch", "jobs", job(), "spec.suspend", True, True),
    ("", "configmaps", {"metadata": {"name": "c"}, "data": {"a": "1"}}, "data", {"a": "2"}, False),
    ("", "pods", pod(), "spec.containers.0.image", "nginx:2", False),
    ("discovery.k8s.io", "endpointslices", {"metadata": {"name": "e"}, "addressType": "IPv4", "endpoints": []},
     "endpoints", [{"addresses": ["10.0.0.1"]}], True),
    ("", "podtemplates", {"metadata": {"name": "t"}, "template": template()}, "template.spec.hostname", "h", True),
])
def test_generation(group: str, plural: str, obj: Obj, path: str, value: Any, bumps: bool) -> None:
    old = created(group, plural, obj)
    new, causes = update(group, plural, old, _set(path, value))
    assert causes == []
    old_generation = old["metadata"].get("generation")
    assert new["metadata"].get("generation") == ((old_generation or 0) + 1 if bumps else old_generation)
    assert strategy(group, plural).spec_changed(new, old) is bumps


@pytest.mark.parametrize(("group", "plural", "obj"), [
    ("apps", "deployments", deployment()),
    ("apps", "replicasets", {"metadata": {"name": "rs"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
                                                                   "template": template()}}),
    ("apps", "daemonsets", {"metadata": {"name": "ds"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
                                                                  "template": template()}}),
])
def test_workload_selectors_are_immutable(group: str, plural: str, obj: Obj) -> None:
    old = created(group, plural, obj)

    def mutate(new: Obj) -> None:
        new["spec"]["selector"] = {"matchLabels": {"app": "web", "v": "2"}}
        new["spec"]["template"]["metadata"]["labels"] = {"app": "web", "v": "2"}

    _, causes = update(group, plural, old, mutate)
    assert causes == [("spec.selector", 'Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", '
                       '"v":"2"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable')]


def test_statefulset_update_rules() -> None:
    old = created("apps", "statefulsets", {"metadata": {"name": "s"}, "spec": {
        "selector": {"matchLabels": {"app": "web"}}, "template": template(), "serviceName": "a"}})
    _, causes = update("apps", "statefulsets", old, _set("spec.replicas", 5))
    assert causes == []
    _, causes = update("apps", "statefulsets", old, _set("spec.serviceName", "b"))
    assert causes == [("spec", "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                       "'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' "
                       "and 'minReadySeconds' are forbidden")]


def test_job_template_is_immutable_unless_suspended_and_never_started() -> None:
    old = created("batch", "jobs", job())
    _, causes = update("batch", "jobs", old, _set("spec.template.spec.nodeSelector", {"zone": "a"}))
    assert causes == [("spec.template", "Invalid value: core.PodTemplateSpec{...}: field is immutable")]
    suspended = created("batch", "jobs", job(suspend=True))
    _, causes = update("batch", "jobs", suspended, _set("spec.template.spec.nodeSelector", {"zone": "a"}))
    assert causes == []
    _, causes = update("batch", "jobs", old, _set("spec.completions", 3))
    assert causes == [("spec.completions", "Invalid value: 3: field is immutable")]


def test_service_update_inherits_allocations_and_protects_cluster_ip() -> None:
    old = created("", "services", service(type="NodePort", ports=[{"name": "http", "port": 80}]))
    old["spec"]["clusterIP"] = "10.96.0.10"
    old["spec"]["clusterIPs"] = ["10.96.0.10"]
    old["spec"]["ports"][0]["nodePort"] = 30080
    applied = service(type="NodePort", ports=[{"name": "http", "port": 80}])
    applied["metadata"] = copy.deepcopy(old["metadata"])
    assert strategy("", "services").before_update(applied, old) == []
    assert applied["spec"]["clusterIP"] == "10.96.0.10"
    assert applied["spec"]["clusterIPs"] == ["10.96.0.10"]
    assert applied["spec"]["ports"][0]["nodePort"] == 30080
    assert applied["spec"]["ipFamilies"] == ["IPv4"]

    def move(new: Obj) -> None:
        new["spec"]["clusterIP"] = "10.96.0.11"
        new["spec"]["clusterIPs"] = ["10.96.0.11"]

    _, causes = update("", "services", old, move)
    assert causes == [("spec.clusterIPs[0]", 'Invalid value: "10.96.0.11": may not change once set')]


@pytest.mark.parametrize(("plural", "obj", "mutate", "expected"), [
    ("configmaps", {"metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": True}, _set("data", {"a": "2"}),
     [("data", "Forbidden: field is immutable when `immutable` is set")]),
    ("configmaps", {"metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": True}, _set("immutable", False),
     [("immutable", "Forbidden: field is immutable when `immutable` is set")]),
    ("configmaps", {"metadata": {"name": "c"}, "data": {"a": "1"}}, _set("data", {"a": "2"}), []),
    ("secrets", {"metadata": {"name": "s"}, "data": {"a": "MQ=="}, "immutable": True}, _set("data", {"a": "Mg=="}),
     [("data", "Forbidden: field is immutable when `immutable` is set")]),
    ("secrets", {"metadata": {"name": "s"}}, _set("type", "example.com/token"),
     [("type", 'Invalid value: "example.com/token": field is immutable')]),
    ("secrets", {"metadata": {"name": "s"}}, _set("stringData", {"k": "v"}), []),
])
def test_config_and_secret_updates(plural: str, obj: Obj, mutate: Any, expected: list[tuple[str, str]]) -> None:
    old = created("", plural, obj)
    _, causes = update("", plural, old, mutate)
    assert causes == expected


def test_rolebinding_role_ref_is_immutable() -> None:
    old = created("rbac.authorization.k8s.io", "rolebindings", {"metadata": {"name": "rb"}, "roleRef": {
        "kind": "Role", "name": "a"}, "subjects": []})
    _, causes = update("rbac.authorization.k8s.io", "rolebindings", old, _set("roleRef.name", "b"))
    assert causes == [("roleRef", 'Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"Role", '
                       'Name:"b"}: cannot change roleRef')]


def test_namespace_finalizers_change_only_through_finalize() -> None:
    old = created("", "namespaces", {"metadata": {"name": "ns"}})
    new, causes = update("", "namespaces", old, _set("spec.finalizers", []))
    assert causes == []
    assert new["spec"]["finalizers"] == ["kubernetes"]
    ns_strategy = strategy("", "namespaces")
    finalized = copy.deepcopy(old)
    finalized["spec"]["finalizers"] = []
    finalized["status"] = {"phase": "Gone"}
    assert hasattr(ns_strategy, "prepare_for_finalize_update")
    ns_strategy.prepare_for_finalize_update(finalized, old)
    assert finalized["spec"]["finalizers"] == []
    assert finalized["status"] == {"phase": "Active"}


@pytest.mark.parametrize(("deleting", "phase", "expected"), [
    (False, "Active", []),
    (False, "Terminating", [("status.Phase", "Invalid value: \"Terminating\": may only be 'Active' if "
                             "`deletionTimestamp` is empty")]),
    (True, "Terminating", []),
])
def test_namespace_status_phase(deleting: bool, phase: str, expected: list[tuple[str, str]]) -> None:
    old = created("", "namespaces", {"metadata": {"name": "ns"}})
    if deleting:
        old["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    new = copy.deepcopy(old)
    new["status"] = {"phase": phase}
    assert fields(strategy("", "namespaces").before_status_update(new, old)) == expected


def test_pvc_spec_is_immutable_except_storage_growth() -> None:
    old = created("", "persistentvolumeclaims", {"metadata": {"name": "c"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    _, causes = update("", "persistentvolumeclaims", old, _set("spec.resources.requests.storage", "2Gi"))
    assert causes == []
    _, causes = update("", "persistentvolumeclaims", old, _set("spec.volumeName", "pv-1"))
    assert causes == []
    _, causes = update("", "persistentvolumeclaims", old, _set("spec.accessModes", ["ReadWriteMany"]))
    assert causes == [("spec", "Forbidden: spec is immutable after creation except resources.requests and "
                       "volumeAttributesClassName for bound claims")]
    _, causes = update("", "persistentvolumeclaims", old, _set("spec.resources.requests.storage", "500Mi"))
    assert causes == [("spec.resources.requests.storage", "Forbidden: field can not be less than previous value")]


def test_metadata_immutability_through_before_update() -> None:
    old = created("", "configmaps", {"metadata": {"name": "c"}})
    _, causes = update("", "configmaps", old, _set("metadata.uid", "other"))
    assert causes == [("metadata.uid", 'Invalid value: "other": field is immutable')]
    new, causes = update("", "configmaps", old, _set("metadata.creationTimestamp", "1999-01-01T00:00:00Z"))
    assert causes == []
    assert new["metadata"]["creationTimestamp"] == old["metadata"]["creationTimestamp"]


# -- custom resources --------------------------------------------------------------------------


def crd_info(*, status: bool) -> ResourceInfo:
    return ResourceInfo(group="example.com", version="v1", kind="Widget", plural="widgets", singular="widget",
                        namespaced=True, custom=True, subresources=("status",) if status else ())


@pytest.mark.parametrize("status", [True, False])
def test_custom_resource_lifecycle(status: bool) -> None:
    strat = strategy_for(crd_info(status=status))
    assert isinstance(strat, CustomResourceStrategy)
    assert strat.has_status_subresource is status
    obj: Obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "finalizers": ["x"]},
                "spec": {"size": 1}, "status": {"ready": True}}
    assert strat.before_create(obj, namespace="default") == []
    assert obj["metadata"]["generation"] == 1
    assert ("status" in obj) is (not status)
    obj["metadata"]["resourceVersion"] = "1"

    status_change = copy.deepcopy(obj)
    status_change["status"] = {"ready": False}
    assert strat.before_update(status_change, obj) == []
    assert status_change["metadata"]["generation"] == (1 if status else 2)

    spec_change = copy.deepcopy(obj)
    spec_change["spec"]["size"] = 2
    assert strat.before_update(spec_change, obj) == []
    assert spec_change["metadata"]["generation"] == 2

    meta_change = copy.deepcopy(obj)
    meta_change["metadata"]["labels"] = {"a": "b"}
    assert strat.before_update(meta_change, obj) == []
    assert meta_change["metadata"]["generation"] == 1


def test_custom_resource_status_endpoint_changes_only_status() -> None:
    strat = strategy_for(crd_info(status=True))
    old: Obj = {"apiVersion": "example.com/v1", "kind": "Widget",
                "metadata": {"name": "w", "namespace": "d", "uid": "u", "labels": {"a": "b"}, "generation": 4},
                "spec": {"size": 1}, "status": {"ready": False}}
    new = copy.deepcopy(old)
    new["spec"] = {"size": 100}
    new["metadata"]["labels"] = {"a": "changed"}
    new["metadata"]["managedFields"] = [{"manager": "ctrl"}]
    new["status"] = {"ready": True}
    assert strat.before_status_update(new, old) == []
    assert new["spec"] == {"size": 1}
    assert new["metadata"]["labels"] == {"a": "b"}
    assert new["metadata"]["managedFields"] == [{"manager": "ctrl"}]
    assert new["status"] == {"ready": True}
    assert new["metadata"]["generation"] == 4


def test_custom_resource_names_and_finalizers() -> None:
    strat = strategy_for(crd_info(status=False))
    assert fields(strat.validate({"metadata": {"name": "Bad"}}))[0][0] == "metadata.name"
    causes = strat.before_create({"metadata": {"name": "ok", "finalizers": ["cleanup"]}}, namespace="d")
    assert causes == []
