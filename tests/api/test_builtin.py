"""The built-in resource table against kube-apiserver 1.32's discovery documents."""

from __future__ import annotations

import pytest

from atoll.api.builtin import builtin_resources, new_registry
from atoll.api.resources import DEFAULT_VERBS, ScalePaths
from atoll.api.strategies import CustomResourceStrategy, Strategy, strategy_for

ALL = DEFAULT_VERBS
CREATE = ("create",)

# (group, version, plural): (kind, singular, namespaced, shortNames, categories, verbs, subresources)
EXPECTED = {
    ("", "v1", "bindings"): ("Binding", "binding", True, (), (), CREATE, ()),
    ("", "v1", "configmaps"): ("ConfigMap", "configmap", True, ("cm",), (), ALL, ()),
    ("", "v1", "endpoints"): ("Endpoints", "endpoints", True, ("ep",), (), ALL, ()),
    ("", "v1", "events"): ("Event", "event", True, ("ev",), (), ALL, ()),
    ("", "v1", "limitranges"): ("LimitRange", "limitrange", True, ("limits",), (), ALL, ()),
    ("", "v1", "namespaces"): ("Namespace", "namespace", False, ("ns",), (),
                               ("create", "delete", "get", "list", "patch", "update", "watch"),
                               ("finalize", "status")),
    ("", "v1", "nodes"): ("Node", "node", False, ("no",), (), ALL, ("proxy", "status")),
    ("", "v1", "persistentvolumeclaims"): ("PersistentVolumeClaim", "persistentvolumeclaim", True, ("pvc",), (),
                                           ALL, ("status",)),
    ("", "v1", "persistentvolumes"): ("PersistentVolume", "persistentvolume", False, ("pv",), (), ALL,
                                      ("status",)),
    ("", "v1", "pods"): ("Pod", "pod", True, ("po",), ("all",), ALL,
                         ("attach", "binding", "ephemeralcontainers", "eviction", "exec", "log", "portforward",
                          "proxy", "status")),
    ("", "v1", "podtemplates"): ("PodTemplate", "podtemplate", True, (), (), ALL, ()),
    ("", "v1", "resourcequotas"): ("ResourceQuota", "resourcequota", True, ("quota",), (), ALL, ("status",)),
    ("", "v1", "secrets"): ("Secret", "secret", True, (), (), ALL, ()),
    ("", "v1", "serviceaccounts"): ("ServiceAccount", "serviceaccount", True, ("sa",), (), ALL, ("token",)),
    ("", "v1", "services"): ("Service", "service", True, ("svc",), ("all",), ALL, ("proxy", "status")),
    ("apps", "v1", "controllerrevisions"): ("ControllerRevision", "controllerrevision", True, (), (), ALL, ()),
    ("apps", "v1", "daemonsets"): ("DaemonSet", "daemonset", True, ("ds",), ("all",), ALL, ("status",)),
    ("apps", "v1", "deployments"): ("Deployment", "deployment", True, ("deploy",), ("all",), ALL,
                                    ("scale", "status")),
    ("apps", "v1", "replicasets"): ("ReplicaSet", "replicaset", True, ("rs",), ("all",), ALL, ("scale", "status")),
    ("apps", "v1", "statefulsets"): ("StatefulSet", "statefulset", True, ("sts",), ("all",), ALL,
                                     ("scale", "status")),
    ("events.k8s.io", "v1", "events"): ("Event", "event", True, ("ev",), (), ALL, ()),
    ("authentication.k8s.io", "v1", "selfsubjectreviews"): ("SelfSubjectReview", "selfsubjectreview", False, (), (),
                                                            CREATE, ()),
    ("authentication.k8s.io", "v1", "tokenreviews"): ("TokenReview", "tokenreview", False, (), (), CREATE, ()),
    ("authorization.k8s.io", "v1", "localsubjectaccessreviews"): (
        "LocalSubjectAccessReview", "localsubjectaccessreview", True, (), (), CREATE, ()),
    ("authorization.k8s.io", "v1", "selfsubjectaccessreviews"): (
        "SelfSubjectAccessReview", "selfsubjectaccessreview", False, (), (), CREATE, ()),
    ("authorization.k8s.io", "v1", "selfsubjectrulesreviews"): (
        "SelfSubjectRulesReview", "selfsubjectrulesreview", False, (), (), CREATE, ()),
    ("authorization.k8s.io", "v1", "subjectaccessreviews"): (
        "SubjectAccessReview", "subjectaccessreview", False, (), (), CREATE, ()),
    ("autoscaling", "v2", "horizontalpodautoscalers"): (
        "HorizontalPodAutoscaler", "horizontalpodautoscaler", True, ("hpa",), ("all",), ALL, ("status",)),
    ("batch", "v1", "cronjobs"): ("CronJob", "cronjob", True, ("cj",), ("all",), ALL, ("status",)),
    ("batch", "v1", "jobs"): ("Job", "job", True, (), ("all",), ALL, ("status",)),
    ("networking.k8s.io", "v1", "ingressclasses"): ("IngressClass", "ingressclass", False, (), (), ALL, ()),
    ("networking.k8s.io", "v1", "ingresses"): ("Ingress", "ingress", True, ("ing",), (), ALL, ("status",)),
    ("networking.k8s.io", "v1", "networkpolicies"): ("NetworkPolicy", "networkpolicy", True, ("netpol",), (), ALL,
                                                     ()),
    ("policy", "v1", "poddisruptionbudgets"): ("PodDisruptionBudget", "poddisruptionbudget", True, ("pdb",), (),
                                               ALL, ("status",)),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings"): ("ClusterRoleBinding", "clusterrolebinding", False,
                                                                 (), (), ALL, ()),
    ("rbac.authorization.k8s.io", "v1", "clusterroles"): ("ClusterRole", "clusterrole", False, (), (), ALL, ()),
    ("rbac.authorization.k8s.io", "v1", "rolebindings"): ("RoleBinding", "rolebinding", True, (), (), ALL, ()),
    ("rbac.authorization.k8s.io", "v1", "roles"): ("Role", "role", True, (), (), ALL, ()),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions"): (
        "CustomResourceDefinition", "customresourcedefinition", False, ("crd", "crds"), ("api-extensions",), ALL,
        ("status",)),
    ("scheduling.k8s.io", "v1", "priorityclasses"): ("PriorityClass", "priorityclass", False, ("pc",), (), ALL, ()),
    ("coordination.k8s.io", "v1", "leases"): ("Lease", "lease", True, (), (), ALL, ()),
    ("discovery.k8s.io", "v1", "endpointslices"): ("EndpointSlice", "endpointslice", True, (), (), ALL, ()),
}


def test_every_resource_matches_kube_discovery() -> None:
    got = {(i.group, i.version, i.plural): (i.kind, i.singular, i.namespaced, i.short_names, i.categories, i.verbs,
                                            i.subresources) for i in builtin_resources()}
    assert got == EXPECTED


def test_group_order_is_kube_apiserver_order() -> None:
    assert [g for g, _ in new_registry().groups()] == [
        "", "apps", "events.k8s.io", "authentication.k8s.io", "authorization.k8s.io", "autoscaling", "batch",
        "networking.k8s.io", "policy", "rbac.authorization.k8s.io", "apiextensions.k8s.io", "scheduling.k8s.io",
        "coordination.k8s.io", "discovery.k8s.io"]


@pytest.mark.parametrize(("group", "version"), [("", "v1"), ("apps", "v1"), ("batch", "v1"),
                                                ("rbac.authorization.k8s.io", "v1")])
def test_resources_are_alphabetical_within_a_group_version(group: str, version: str) -> None:
    plurals = [i.plural for i in new_registry().resources(group, version)]
    assert plurals == sorted(plurals)


@pytest.mark.parametrize("plural", ["deployments", "replicasets", "statefulsets"])
def test_scalable_workloads(plural: str) -> None:
    info = new_registry().get("apps", "v1", plural)
    assert info is not None
    assert info.scale == ScalePaths(spec_replicas=".spec.replicas", status_replicas=".status.replicas",
                                    label_selector=".spec.selector")


def test_registry_lookups() -> None:
    registry = new_registry()
    assert registry.by_api_version_kind("apps/v1", "Deployment") is registry.get("apps", "v1", "deployments")
    assert registry.by_api_version_kind("v1", "Pod") is registry.get("", "v1", "pods")
    assert registry.get("", "v1", "replicationcontrollers") is None


def test_every_builtin_has_a_builtin_strategy() -> None:
    for info in builtin_resources():
        strategy = strategy_for(info)
        assert isinstance(strategy, Strategy)
        assert not isinstance(strategy, CustomResourceStrategy)
        assert strategy.has_status_subresource == ("status" in info.subresources)
