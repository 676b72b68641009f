"""Per-kind strategies (kube's registry strategies), one module per API area.

:func:`strategy_for` picks the strategy for a :class:`~atoll.api.resources.ResourceInfo`:
the built-in table below for kube's kinds, :class:`CustomResourceStrategy` for kinds a
CustomResourceDefinition defines, and the plain :class:`Strategy` for anything else.
"""

from __future__ import annotations

import logging
import threading

from atoll.api.kinds import apps, batch, core, other
from atoll.api.kinds.base import CustomResourceStrategy, PathSegmentNameStrategy, ReviewStrategy, Strategy
from atoll.api.resources import ResourceInfo

logger = logging.getLogger(__name__)

BUILTIN_STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    ("", "Pod"): core.PodStrategy,
    ("", "PodTemplate"): core.PodTemplateStrategy,
    ("", "Binding"): core.BindingStrategy,
    ("", "Service"): core.ServiceStrategy,
    ("", "Endpoints"): core.EndpointsStrategy,
    ("", "Namespace"): core.NamespaceStrategy,
    ("", "ConfigMap"): core.ConfigMapStrategy,
    ("", "Secret"): core.SecretStrategy,
    ("", "ServiceAccount"): core.ServiceAccountStrategy,
    ("", "Event"): core.EventStrategy,
    ("", "Node"): core.NodeStrategy,
    ("", "PersistentVolume"): core.PersistentVolumeStrategy,
    ("", "PersistentVolumeClaim"): core.PersistentVolumeClaimStrategy,
    ("", "ResourceQuota"): core.ResourceQuotaStrategy,
    ("", "LimitRange"): core.LimitRangeStrategy,
    ("apps", "Deployment"): apps.DeploymentStrategy,
    ("apps", "ReplicaSet"): apps.ReplicaSetStrategy,
    ("apps", "StatefulSet"): apps.StatefulSetStrategy,
    ("apps", "DaemonSet"): apps.DaemonSetStrategy,
    ("apps", "ControllerRevision"): apps.ControllerRevisionStrategy,
    ("batch", "Job"): batch.JobStrategy,
    ("batch", "CronJob"): batch.CronJobStrategy,
    ("events.k8s.io", "Event"): other.EventsV1Strategy,
    ("rbac.authorization.k8s.io", "Role"): other.RoleStrategy,
    ("rbac.authorization.k8s.io", "ClusterRole"): other.ClusterRoleStrategy,
    ("rbac.authorization.k8s.io", "RoleBinding"): other.RoleBindingStrategy,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): other.ClusterRoleBindingStrategy,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): other.CustomResourceDefinitionStrategy,
    ("policy", "PodDisruptionBudget"): other.PodDisruptionBudgetStrategy,
    ("coordination.k8s.io", "Lease"): other.LeaseStrategy,
    ("discovery.k8s.io", "EndpointSlice"): other.EndpointSliceStrategy,
    ("networking.k8s.io", "Ingress"): other.IngressStrategy,
    ("networking.k8s.io", "IngressClass"): other.IngressClassStrategy,
    ("networking.k8s.io", "NetworkPolicy"): other.NetworkPolicyStrategy,
    ("scheduling.k8s.io", "PriorityClass"): other.PriorityClassStrategy,
    ("autoscaling", "HorizontalPodAutoscaler"): other.HorizontalPodAutoscalerStrategy,
    ("authorization.k8s.io", "SubjectAccessReview"): other.SubjectAccessReviewStrategy,
    ("authorization.k8s.io", "LocalSubjectAccessReview"): other.SubjectAccessReviewStrategy,
    ("authorization.k8s.io", "SelfSubjectAccessReview"): other.SubjectAccessReviewStrategy,
    ("authorization.k8s.io", "SelfSubjectRulesReview"): ReviewStrategy,
    ("authentication.k8s.io", "TokenReview"): other.TokenReviewStrategy,
    ("authentication.k8s.io", "SelfSubjectReview"): ReviewStrategy,
}
"""(group, kind) -> strategy class for kube's built-in kinds (any version)."""

_cache: dict[ResourceInfo, Strategy] = {}
_lock = threading.Lock()


def strategy_class(info: ResourceInfo) -> type[Strategy]:
    if info.custom:
        return CustomResourceStrategy
    return BUILTIN_STRATEGIES.get((info.group, info.kind), Strategy)


def strategy_for(info: ResourceInfo) -> Strategy:
    """The strategy of one served resource (cached; strategies hold no mutable state)."""
    found = _cache.get(info)
    if found is not None and found.info.subresources == info.subresources:
        return found
    strategy = strategy_class(info)(info)
    with _lock:
        _cache[info] = strategy
    return strategy


__all__ = [
    "BUILTIN_STRATEGIES",
    "CustomResourceStrategy",
    "PathSegmentNameStrategy",
    "ReviewStrategy",
    "Strategy",
    "strategy_class",
    "strategy_for",
]
