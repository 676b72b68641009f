"""``work.karmada.io``: ResourceBinding and ClusterResourceBinding (v1alpha2) and Work (v1alpha1).

Transcribed from Karmada's ``pkg/apis/work/v1alpha2/binding_types.go`` and
``pkg/apis/work/v1alpha1/work_types.go``. A binding's ``spec.placement`` and
``spec.failover`` are the policy's own types, copied in by the detector. The manifests of
a Work and the member-reported statuses are ``RawExtension``s: kept whole, never pruned,
so any kind (custom ones included) travels through the federation unchanged.
"""

from __future__ import annotations

from atoll.federation.crds import policy
from atoll.federation.crds.schema import (
    Schema,
    array,
    boolean,
    conditions,
    date_time,
    int32,
    int64,
    integer,
    node_selector,
    obj,
    raw_extension,
    resource_list,
    root,
    string,
    string_map,
    strings,
    toleration,
)

HEALTH = ("Healthy", "Unhealthy", "Unknown")


def _node_claim() -> Schema:
    return obj("NodeClaim represents the node claim HardNodeAffinity, NodeSelector and Tolerations required by "
               "each replica.", {
                   "hardNodeAffinity": node_selector(
                       "The pod template's required node affinity "
                       "(requiredDuringSchedulingIgnoredDuringExecution), the only part with a hard limit on "
                       "scheduling."),
                   "nodeSelector": string_map("NodeSelector is a selector which must match a node's labels for "
                                              "the pod to be scheduled on that node."),
                   "tolerations": array("If specified, the pod's tolerations.", toleration()),
               })


def _target_cluster(doc: str = "TargetCluster represents the identifier of a member cluster.") -> Schema:
    return obj(doc, {
        "components": array(
            "Components represents the per-component replica assignment in this cluster (workloads with "
            "multiple pod templates only).",
            obj("TargetComponent represents the replica assignment of a component in a cluster.", {
                "name": string("Name of the component, matching spec.components[*].name."),
                "replicas": int32("Replicas of this component assigned to the cluster."),
            }, required=("name", "replicas"))),
        "name": string("Name of target cluster."),
        "replicas": int32("Replicas in target cluster"),
    }, required=("name",))


def _graceful_eviction_task() -> Schema:
    return obj("GracefulEvictionTask represents a graceful eviction task.", {
        "clustersBeforeFailover": strings("ClustersBeforeFailover records the clusters where running the "
                                          "application before failover."),
        "creationTimestamp": date_time("CreationTimestamp is the server time when this task was created. "
                                       "Populated by the system. Read-only."),
        "fromCluster": string("FromCluster which cluster the eviction perform from."),
        "gracePeriodSeconds": int32("GracePeriodSeconds is the maximum waiting duration in seconds before the "
                                    "item should be deleted. It can not co-exist with SuppressDeletion."),
        "message": string("Message is a human-readable message indicating details about the eviction.",
                          maxLength=1024),
        "preservedLabelState": string_map("PreservedLabelState represents the application state information "
                                          "collected from the original cluster, injected into the new cluster "
                                          "as labels."),
        "producer": string("Producer indicates the controller who triggered the eviction."),
        "purgeMode": string("PurgeMode represents how to deal with the legacy applications on the cluster from "
                            "which the application is migrated: Directly, Gracefully or Never.",
                            enum=("Directly", "Gracefully", "Never")),
        "reason": string("Reason contains a programmatic identifier (CamelCase) indicating the reason for the "
                         "eviction.", maxLength=32, minLength=1,
                         pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"),
        "replicas": int32("Replicas indicates the number of replicas should be evicted."),
        "suppressDeletion": boolean("SuppressDeletion keeps the grace period until a tool or a human stops it. "
                                    "It can not co-exist with GracePeriodSeconds."),
    }, required=("fromCluster", "producer", "reason"))


def binding_spec() -> Schema:
    component_requirements = obj(
        "ComponentReplicaRequirements represents the resource and scheduling requirements for each replica.", {
            "nodeClaim": _node_claim(),
            "priorityClassName": string("PriorityClassName represents the resources priorityClassName"),
            "resourceRequest": resource_list("ResourceRequest represents the resources required by each "
                                             "replica."),
        })
    return obj("Spec represents the desired behavior.", {
        "clusters": array("Clusters represents target member clusters where the resource to be deployed.",
                          _target_cluster()),
        "components": array(
            "Components represents the requirements of multiple pod templates of the referencing resource "
            "(populated with the MultiplePodTemplatesScheduling feature gate).",
            obj("Component represents the requirements for a specific component.", {
                "name": string("Name of this component, unique within the resource.", maxLength=32),
                "replicaRequirements": component_requirements,
                "replicas": int32("Replicas represents the replica number of the resource's component."),
            }, required=("name", "replicas"))),
        "conflictResolution": policy.conflict_resolution(),
        "failover": policy.failover("Failover indicates how Karmada migrates applications in case of failures. "
                                    "It inherits directly from the associated PropagationPolicy."),
        "gracefulEvictionTasks": array(
            "GracefulEvictionTasks holds the eviction tasks that are expected to perform the eviction in a "
            "graceful way: the workload is removed from a cluster only once it is available on its substitute "
            "or the grace period has passed.", _graceful_eviction_task()),
        "placement": policy.placement(),
        "preserveResourcesOnDeletion": boolean(
            "PreserveResourcesOnDeletion controls whether resources should be preserved on the member clusters "
            "when the binding object is deleted. Default is false."),
        "propagateDeps": boolean("PropagateDeps tells if relevant resources should be propagated automatically. "
                                 "It is inherited from PropagationPolicy or ClusterPropagationPolicy."),
        "replicaRequirements": obj(
            "ReplicaRequirements represents the resource and scheduling requirements for each replica.", {
                "namespace": string("Namespace represents the resources namespaces"),
                "nodeClaim": _node_claim(),
                "priorityClassName": string("PriorityClassName represents the resources priorityClassName"),
                "resourceRequest": resource_list("ResourceRequest represents the resources required by each "
                                                 "replica."),
            }),
        "replicas": int32("Replicas represents the replica number of the referencing resource."),
        "requiredBy": array(
            "RequiredBy represents the list of Bindings that depend on the referencing resource.",
            obj("BindingSnapshot is a snapshot of a ResourceBinding or ClusterResourceBinding.", {
                "clusters": array("Clusters represents the scheduled result.", _target_cluster()),
                "name": string("Name represents the name of the Binding."),
                "namespace": string("Namespace represents the namespace of the Binding; empty for a "
                                    "ClusterResourceBinding."),
            }, required=("name",))),
        "rescheduleTriggeredAt": date_time(
            "RescheduleTriggeredAt is when a rescheduling was triggered by the user: later than "
            "status.lastScheduledTime, it makes the scheduler recompute from scratch."),
        "resource": obj("Resource represents the Kubernetes resource to be propagated.", {
            "apiVersion": string("APIVersion represents the API version of the referent."),
            "kind": string("Kind represents the Kind of the referent."),
            "name": string("Name represents the name of the referent."),
            "namespace": string("Namespace represents the namespace for the referent; empty for cluster-scoped "
                                "resources."),
            "resourceVersion": string("ResourceVersion represents the internal version of the referenced "
                                      "object."),
            "uid": string("UID of the referent."),
        }, required=("apiVersion", "kind", "name")),
        "schedulePriority": obj("SchedulePriority represents the scheduling priority assigned to workloads.", {
            "priority": int32("Priority specifies the scheduling priority for the binding; higher values "
                              "indicate a higher priority.", default=0),
        }),
        "schedulerName": string("SchedulerName represents which scheduler to proceed the scheduling. It "
                                "inherits directly from the associated PropagationPolicy."),
        "suspension": obj("Suspension declares the policy for suspending different aspects of propagation.", {
            **policy.suspension_properties(),
            "scheduling": boolean("Scheduling controls whether scheduling should be suspended."),
        }),
        "workloadAffinityGroups": obj(
            "WorkloadAffinityGroups represents instantiated grouping results from "
            ".spec.placement.workloadAffinity, as \"<labelKey>=<labelValue>\".", {
                "affinityGroup": string("AffinityGroup is the instantiated group name derived from affinity "
                                        "rules."),
                "antiAffinityGroup": string("AntiAffinityGroup is the instantiated group name derived from "
                                            "anti-affinity rules."),
            }),
    }, required=("resource",))


def binding_status() -> Schema:
    return obj("Status represents the most recently observed status of the ResourceBinding.", {
        "aggregatedStatus": array(
            "AggregatedStatus represents status list of the resource running in each member cluster.",
            obj("AggregatedStatusItem represents status of the resource running in a member cluster.", {
                "applied": boolean("Applied represents if the resource is successfully applied on the "
                                   "cluster."),
                "appliedMessage": string("AppliedMessage is a human readable message indicating details about "
                                         "the applied status."),
                "clusterName": string("ClusterName represents the member cluster name which the resource "
                                      "deployed on."),
                "health": string("Health represents the healthy state of the current resource.", enum=HEALTH),
                "status": raw_extension("Status reflects running status of current manifest."),
            }, required=("clusterName",))),
        "conditions": conditions("Conditions contain the different condition statuses (Scheduled, "
                                 "FullyApplied)."),
        "lastScheduledTime": date_time("LastScheduledTime representing the latest timestamp when scheduler "
                                       "successfully finished a scheduling."),
        "schedulerObservedGeneration": int64("SchedulerObservedGeneration is the generation "
                                             "(.metadata.generation) observed by the scheduler."),
        "schedulerObservingAffinityName": string("SchedulerObservedAffinityName is the name of affinity term "
                                                 "that is the basis of current scheduling."),
    })


def resource_binding_schema() -> Schema:
    return root("ResourceBinding represents a binding of a kubernetes resource with a propagation policy.",
                spec=binding_spec(), status=binding_status())


def cluster_resource_binding_schema() -> Schema:
    return root("ClusterResourceBinding represents a binding of a kubernetes resource with a "
                "ClusterPropagationPolicy.", spec=binding_spec(), status=binding_status())


def work_schema() -> Schema:
    identifier = obj("Identifier represents the identity of a resource linking to manifests in spec.", {
        "group": string("Group is the group of the resource."),
        "kind": string("Kind is the kind of the resource."),
        "name": string("Name is the name of the resource"),
        "namespace": string("Namespace is the namespace of the resource; empty for cluster-scoped ones."),
        "ordinal": integer("Ordinal represents an index in manifests list, so the condition can still be "
                           "linked to a manifest even though manifest cannot be parsed successfully."),
        "resource": string("Resource is the resource type of the resource"),
        "version": string("Version is the version of the resource."),
    }, required=("kind", "name", "ordinal", "resource", "version"))
    spec = obj("Spec represents the desired behavior of Work.", {
        "preserveResourcesOnDeletion": boolean(
            "PreserveResourcesOnDeletion controls whether resources should be preserved on the member cluster "
            "when the Work object is deleted. Default is false."),
        "suspendDispatching": boolean(
            "SuspendDispatching controls whether dispatching should be suspended; it does not prevent status "
            "collection."),
        "workload": obj("Workload represents the manifest workload to be deployed on managed cluster.", {
            "manifests": array("Manifests represents a list of Kubernetes resources to be deployed on the "
                               "managed cluster.",
                               raw_extension("Manifest represents a resource to be deployed on managed "
                                             "cluster.")),
        }),
    })
    status = obj("Status represents the status of PropagationStatus.", {
        "conditions": conditions("Conditions contain the different condition statuses for this work (Applied, "
                                 "Progressing, Available, Degraded, Dispatching)."),
        "manifestStatuses": array(
            "ManifestStatuses contains running status of manifests in spec.",
            obj("ManifestStatus contains running status of a specific manifest in spec.", {
                "health": string("Health represents the healthy state of the current resource.", enum=HEALTH),
                "identifier": identifier,
                "status": raw_extension("Status reflects running status of current manifest."),
            }, required=("identifier",))),
    })
    return root("Work defines a list of resources to be deployed on the member cluster.", spec=spec,
                status=status)
