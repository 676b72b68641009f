"""Karmada's API groups, versions and resources, as the federation controllers address them.

One place for the ``Resource`` of every Karmada kind (and the few strings the controllers
share with Karmada: reserved namespaces, condition types), so that a typo in a plural
fails at import rather than as a 404 at run time. The CRDs in :mod:`atoll.federation.crds`
serve exactly these.
"""

from __future__ import annotations

from typing import Final

from atoll.client import Resource

CLUSTER_GROUP: Final = "cluster.karmada.io"
POLICY_GROUP: Final = "policy.karmada.io"
WORK_GROUP: Final = "work.karmada.io"

CLUSTER_V1ALPHA1: Final = f"{CLUSTER_GROUP}/v1alpha1"
POLICY_V1ALPHA1: Final = f"{POLICY_GROUP}/v1alpha1"
WORK_V1ALPHA1: Final = f"{WORK_GROUP}/v1alpha1"
WORK_V1ALPHA2: Final = f"{WORK_GROUP}/v1alpha2"

CATEGORY: Final = "karmada-io"
"""``kubectl get karmada-io`` lists every policy, binding and Work."""

CLUSTERS: Final = Resource(CLUSTER_V1ALPHA1, "clusters", False, "Cluster")
PROPAGATION_POLICIES: Final = Resource(POLICY_V1ALPHA1, "propagationpolicies", True, "PropagationPolicy")
CLUSTER_PROPAGATION_POLICIES: Final = Resource(POLICY_V1ALPHA1, "clusterpropagationpolicies", False,
                                               "ClusterPropagationPolicy")
OVERRIDE_POLICIES: Final = Resource(POLICY_V1ALPHA1, "overridepolicies", True, "OverridePolicy")
CLUSTER_OVERRIDE_POLICIES: Final = Resource(POLICY_V1ALPHA1, "clusteroverridepolicies", False,
                                            "ClusterOverridePolicy")
RESOURCE_BINDINGS: Final = Resource(WORK_V1ALPHA2, "resourcebindings", True, "ResourceBinding")
CLUSTER_RESOURCE_BINDINGS: Final = Resource(WORK_V1ALPHA2, "clusterresourcebindings", False,
                                            "ClusterResourceBinding")
WORKS: Final = Resource(WORK_V1ALPHA1, "works", True, "Work")

ALL: Final = (CLUSTERS, PROPAGATION_POLICIES, CLUSTER_PROPAGATION_POLICIES, OVERRIDE_POLICIES,
              CLUSTER_OVERRIDE_POLICIES, RESOURCE_BINDINGS, CLUSTER_RESOURCE_BINDINGS, WORKS)

# Namespaces Karmada reserves (pkg/util/names): policies never propagate from them.
SYSTEM_NAMESPACE: Final = "karmada-system"
CLUSTER_NAMESPACE: Final = "karmada-cluster"
"""Where ``karmadactl join`` stores each member's credentials Secrets."""
EXECUTION_SPACE_PREFIX: Final = "karmada-es-"
"""Works for cluster ``c`` live in namespace ``karmada-es-c``."""


def execution_namespace(cluster: str) -> str:
    """The namespace holding the Works of one member cluster."""
    return EXECUTION_SPACE_PREFIX + cluster


def cluster_of_execution_namespace(namespace: str) -> str | None:
    """The member cluster whose Works live in ``namespace``, or ``None`` for any other namespace."""
    if namespace.startswith(EXECUTION_SPACE_PREFIX) and len(namespace) > len(EXECUTION_SPACE_PREFIX):
        return namespace[len(EXECUTION_SPACE_PREFIX):]
    return None


def is_reserved_namespace(namespace: str) -> bool:
    """Karmada never propagates resources out of its own namespaces."""
    return namespace in (SYSTEM_NAMESPACE, CLUSTER_NAMESPACE) or namespace.startswith(EXECUTION_SPACE_PREFIX)


# Condition types (cluster/v1alpha1, work/v1alpha1, work/v1alpha2).
CLUSTER_READY: Final = "Ready"
CLUSTER_COMPLETE_API_ENABLEMENTS: Final = "CompleteAPIEnablements"
WORK_APPLIED: Final = "Applied"
WORK_PROGRESSING: Final = "Progressing"
WORK_AVAILABLE: Final = "Available"
WORK_DEGRADED: Final = "Degraded"
WORK_DISPATCHING: Final = "Dispatching"
BINDING_SCHEDULED: Final = "Scheduled"
BINDING_FULLY_APPLIED: Final = "FullyApplied"

# Well-known labels and annotations (pkg/apis/{policy,work}/*/well_known_constants.go): the marks a
# policy leaves on the templates it claims, a binding on its Works, a Work on member objects.
PROPAGATION_POLICY_PERMANENT_ID_LABEL: Final = "propagationpolicy.karmada.io/permanent-id"
CLUSTER_PROPAGATION_POLICY_PERMANENT_ID_LABEL: Final = "clusterpropagationpolicy.karmada.io/permanent-id"
PROPAGATION_POLICY_NAMESPACE_ANNOTATION: Final = "propagationpolicy.karmada.io/namespace"
PROPAGATION_POLICY_NAME_ANNOTATION: Final = "propagationpolicy.karmada.io/name"
CLUSTER_PROPAGATION_POLICY_ANNOTATION: Final = "clusterpropagationpolicy.karmada.io/name"
NAMESPACE_SKIP_AUTO_PROPAGATION_LABEL: Final = "namespace.karmada.io/skip-auto-propagation"
RESOURCE_BINDING_PERMANENT_ID_LABEL: Final = "resourcebinding.karmada.io/permanent-id"
CLUSTER_RESOURCE_BINDING_PERMANENT_ID_LABEL: Final = "clusterresourcebinding.karmada.io/permanent-id"
RESOURCE_BINDING_NAMESPACE_ANNOTATION: Final = "resourcebinding.karmada.io/namespace"
RESOURCE_BINDING_NAME_ANNOTATION: Final = "resourcebinding.karmada.io/name"
CLUSTER_RESOURCE_BINDING_ANNOTATION: Final = "clusterresourcebinding.karmada.io/name"
WORK_PERMANENT_ID_LABEL: Final = "work.karmada.io/permanent-id"
WORK_NAMESPACE_ANNOTATION: Final = "work.karmada.io/namespace"
WORK_NAME_ANNOTATION: Final = "work.karmada.io/name"
CONFLICT_RESOLUTION_ANNOTATION: Final = "work.karmada.io/conflict-resolution"
"""On a member object: ``overwrite`` or ``abort``, from the policy's conflictResolution."""
TEMPLATE_GENERATION_ANNOTATION: Final = "resourcetemplate.karmada.io/generation"
TEMPLATE_UID_ANNOTATION: Final = "resourcetemplate.karmada.io/uid"

# Taints the cluster controllers put on a Cluster (pkg/apis/cluster/v1alpha1/well_known_constants.go).
TAINT_CLUSTER_UNSCHEDULABLE: Final = "cluster.karmada.io/unschedulable"
TAINT_CLUSTER_NOT_READY: Final = "cluster.karmada.io/not-ready"
TAINT_CLUSTER_UNREACHABLE: Final = "cluster.karmada.io/unreachable"

# Graceful eviction (work/v1alpha2): why and by whom a cluster was removed from a binding.
EVICTION_REASON_TAINT_UNTOLERATED: Final = "TaintUntolerated"
EVICTION_REASON_APPLICATION_FAILURE: Final = "ApplicationFailure"
EVICTION_PRODUCER_TAINT_MANAGER: Final = "TaintManager"
