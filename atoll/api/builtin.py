"""The built-in resources, exactly as kube-apiserver 1.32 reports them in discovery.

Groups are registered in kube-apiserver's ``/apis`` order (core first, then apps,
events.k8s.io, authentication, authorization, autoscaling, batch, networking, policy,
rbac, apiextensions, scheduling, coordination, discovery); within a group version the
resources are in kube's alphabetical order, subresources in kube's order too. Names,
singular names, kinds, scope, short names, categories and verbs are kube's; the
subresource kinds and verbs discovery shows (``pods/eviction`` is ``policy/v1 Eviction``
and so on) are derived from the names by the discovery layer.

Not registered: kinds no Atoll component serves (componentstatuses,
replicationcontrollers, storage.k8s.io, admissionregistration, certificates,
flowcontrol, node.k8s.io, apiregistration). ``autoscaling/v1`` is not served next to
``autoscaling/v2`` because the two share storage and need conversion; clients prefer v2.
``pods/resize`` is absent because kube 1.32 only serves it behind the alpha
``InPlacePodVerticalScaling`` gate.

``/scale`` of built-in workloads: ``ScalePaths.label_selector`` is ``.spec.selector``,
which holds a *structured* ``metav1.LabelSelector``; the server must render the Scale's
``status.selector`` as its text form with :func:`atoll.api.selectors.selector_string`
(kube computes ``LabelSelectorAsSelector(spec.selector).String()``; built-in kinds have
no ``.status.selector``). ``spec.replicas``/``status.replicas`` are read and written at
their usual places.
"""

from __future__ import annotations

import logging

from atoll.api.resources import DEFAULT_VERBS, Registry, ResourceInfo, ScalePaths

logger = logging.getLogger(__name__)

ALL_VERBS = DEFAULT_VERBS
"""create, delete, deletecollection, get, list, patch, update, watch."""
NO_DELETECOLLECTION: tuple[str, ...] = ("create", "delete", "get", "list", "patch", "update", "watch")
CREATE_ONLY: tuple[str, ...] = ("create",)

WORKLOAD_SCALE = ScalePaths(spec_replicas=".spec.replicas", status_replicas=".status.replicas",
                            label_selector=".spec.selector")
"""``/scale`` of Deployments, ReplicaSets and StatefulSets (selector: see the module docstring)."""


def _r(
    group: str,
    version: str,
    kind: str,
    plural: str,
    *,
    namespaced: bool,
    singular: str | None = None,
    short: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    verbs: tuple[str, ...] = ALL_VERBS,
    sub: tuple[str, ...] = (),
    scale: ScalePaths | None = None,
) -> ResourceInfo:
    return ResourceInfo(
        group=group, version=version, kind=kind, plural=plural,
        singular=singular if singular is not None else kind.lower(),
        namespaced=namespaced, short_names=short, categories=categories, verbs=verbs,
        subresources=sub, scale=scale,
    )


def builtin_resources() -> list[ResourceInfo]:
    """Every built-in resource, in discovery order."""
    core, apps, batch = "", "apps", "batch"
    return [
        # core/v1 ----------------------------------------------------------------------
        _r(core, "v1", "Binding", "bindings", namespaced=True, verbs=CREATE_ONLY),
        _r(core, "v1", "ConfigMap", "configmaps", namespaced=True, short=("cm",)),
        _r(core, "v1", "Endpoints", "endpoints", namespaced=True, singular="endpoints", short=("ep",)),
        _r(core, "v1", "Event", "events", namespaced=True, short=("ev",)),
        _r(core, "v1", "LimitRange", "limitranges", namespaced=True, short=("limits",)),
        _r(core, "v1", "Namespace", "namespaces", namespaced=False, short=("ns",), verbs=NO_DELETECOLLECTION,
           sub=("finalize", "status")),
        _r(core, "v1", "Node", "nodes", namespaced=False, short=("no",), sub=("proxy", "status")),
        _r(core, "v1", "PersistentVolumeClaim", "persistentvolumeclaims", namespaced=True, short=("pvc",),
           sub=("status",)),
        _r(core, "v1", "PersistentVolume", "persistentvolumes", namespaced=False, short=("pv",), sub=("status",)),
        _r(core, "v1", "Pod", "pods", namespaced=True, short=("po",), categories=("all",),
           sub=("attach", "binding", "ephemeralcontainers", "eviction", "exec", "log", "portforward", "proxy",
                "status")),
        _r(core, "v1", "PodTemplate", "podtemplates", namespaced=True),
        _r(core, "v1", "ResourceQuota", "resourcequotas", namespaced=True, short=("quota",), sub=("status",)),
        _r(core, "v1", "Secret", "secrets", namespaced=True),
        _r(core, "v1", "ServiceAccount", "serviceaccounts", namespaced=True, short=("sa",), sub=("token",)),
        _r(core, "v1", "Service", "services", namespaced=True, short=("svc",), categories=("all",),
           sub=("proxy", "status")),
        # apps/v1 -----------------------------------------------------------------------
        _r(apps, "v1", "ControllerRevision", "controllerrevisions", namespaced=True),
        _r(apps, "v1", "DaemonSet", "daemonsets", namespaced=True, short=("ds",), categories=("all",),
           sub=("status",)),
        _r(apps, "v1", "Deployment", "deployments", namespaced=True, short=("deploy",), categories=("all",),
           sub=("scale", "status"), scale=WORKLOAD_SCALE),
        _r(apps, "v1", "ReplicaSet", "replicasets", namespaced=True, short=("rs",), categories=("all",),
           sub=("scale", "status"), scale=WORKLOAD_SCALE),
        _r(apps, "v1", "StatefulSet", "statefulsets", namespaced=True, short=("sts",), categories=("all",),
           sub=("scale", "status"), scale=WORKLOAD_SCALE),
        # events.k8s.io/v1 --------------------------------------------------------------
        _r("events.k8s.io", "v1", "Event", "events", namespaced=True, short=("ev",)),
        # authentication.k8s.io/v1 -------------------------------------------------------
        _r("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", namespaced=False,
           verbs=CREATE_ONLY),
        _r("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", namespaced=False, verbs=CREATE_ONLY),
        # authorization.k8s.io/v1 --------------------------------------------------------
        _r("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", namespaced=True,
           verbs=CREATE_ONLY),
        _r("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", namespaced=False,
           verbs=CREATE_ONLY),
        _r("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", namespaced=False,
           verbs=CREATE_ONLY),
        _r("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", namespaced=False,
           verbs=CREATE_ONLY),
        # autoscaling/v2 ------------------------------------------------------------------
        _r("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", namespaced=True,
           short=("hpa",), categories=("all",), sub=("status",)),
        # batch/v1 -----------------------------------------------------------------------
        _r(batch, "v1", "CronJob", "cronjobs", namespaced=True, short=("cj",), categories=("all",), sub=("status",)),
        _r(batch, "v1", "Job", "jobs", namespaced=True, categories=("all",), sub=("status",)),
        # networking.k8s.io/v1 ------------------------------------------------------------
        _r("networking.k8s.io", "v1", "IngressClass", "ingressclasses", namespaced=False),
        _r("networking.k8s.io", "v1", "Ingress", "ingresses", namespaced=True, short=("ing",), sub=("status",)),
        _r("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", namespaced=True, short=("netpol",)),
        # policy/v1 ----------------------------------------------------------------------
        _r("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", namespaced=True, short=("pdb",),
           sub=("status",)),
        # rbac.authorization.k8s.io/v1 -----------------------------------------------------
        _r("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", namespaced=False),
        _r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", namespaced=False),
        _r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", namespaced=True),
        _r("rbac.authorization.k8s.io", "v1", "Role", "roles", namespaced=True),
        # apiextensions.k8s.io/v1 ---------------------------------------------------------
        _r("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", namespaced=False,
           short=("crd", "crds"), categories=("api-extensions",), sub=("status",)),
        # scheduling.k8s.io/v1 -------------------------------------------------------------
        _r("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", namespaced=False, short=("pc",)),
        # coordination.k8s.io/v1 -----------------------------------------------------------
        _r("coordination.k8s.io", "v1", "Lease", "leases", namespaced=True),
        # discovery.k8s.io/v1 --------------------------------------------------------------
        _r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", namespaced=True),
    ]


def new_registry() -> Registry:
    """A registry holding every built-in resource, groups in kube-apiserver's order."""
    registry = Registry()
    for info in builtin_resources():
        registry.add(info)
    return registry


__all__ = ["ALL_VERBS", "CREATE_ONLY", "NO_DELETECOLLECTION", "WORKLOAD_SCALE", "builtin_resources", "new_registry"]
