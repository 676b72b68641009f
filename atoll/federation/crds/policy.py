"""``policy.karmada.io/v1alpha1`` propagation and override policies.

Transcribed from Karmada's ``pkg/apis/policy/v1alpha1/propagation_types.go`` and
``override_types.go``: the same field names, enums and defaults (``priority: 0``,
``preemption: Never``, ``conflictResolution: Abort``, ``schedulerName: default-scheduler``,
``replicaSchedulingType: Divided``, failover ``purgeMode: Gracefully``,
``tolerationSeconds: 300``), so that the API server defaults and rejects exactly what
Karmada's does. ``Placement`` and ``FailoverBehavior`` are reused by the bindings.
"""

from __future__ import annotations

from atoll.federation.crds.schema import (
    Schema,
    array,
    boolean,
    int32,
    int64,
    integer,
    json_value,
    label_selector,
    node_selector_requirement,
    obj,
    root,
    string,
    string_map,
    strings,
    toleration,
)

OPERATORS = ("add", "remove", "replace")


def resource_selector() -> Schema:
    return obj("ResourceSelector the resources will be selected.", {
        "apiVersion": string("APIVersion represents the API version of the target resources."),
        "kind": string("Kind represents the Kind of the target resources."),
        "labelSelector": label_selector("A label query over a set of resources. If name is not empty, "
                                        "labelSelector will be ignored."),
        "name": string("Name of the target resource. Default is empty, which means selecting all resources."),
        "namespace": string("Namespace of the target resource. Default is empty, which means inherit from the "
                            "parent object scope."),
    }, required=("apiVersion", "kind"))


def _cluster_affinity_properties() -> Schema:
    return {
        "clusterNames": strings("ClusterNames is the list of clusters to be selected."),
        "exclude": strings("ExcludedClusters is the list of clusters to be ignored."),
        "fieldSelector": obj(
            "FieldSelector is a filter to select member clusters by fields. The key of each expression is "
            "'provider', 'region', or 'zone', the operator 'In' or 'NotIn'.", {
                "matchExpressions": array("A list of field selector requirements.",
                                          node_selector_requirement("A field selector requirement.")),
            }),
        "labelSelector": label_selector("LabelSelector is a filter to select member clusters by labels. If "
                                        "non-nil and non-empty, only the clusters match this filter will be "
                                        "selected."),
    }


def cluster_affinity(doc: str) -> Schema:
    return obj(doc, _cluster_affinity_properties())


def _affinity_name() -> Schema:
    return string("AffinityName is the name of the cluster group.", maxLength=32, minLength=1)


def _cluster_affinity_term() -> Schema:
    overflow = obj("OverflowClusterAffinity represents an overflow tier of candidate clusters.", {
        "affinityName": _affinity_name(), **_cluster_affinity_properties()}, required=("affinityName",))
    return obj("ClusterAffinityTerm selects a set of cluster.", {
        "affinityName": _affinity_name(),
        **_cluster_affinity_properties(),
        "overflowAffinities": array(
            "OverflowAffinities defines additional cluster groups the scheduler includes, in order, when the "
            "primary group has insufficient resources (and contracts in reverse when scaling down).", overflow),
    }, required=("affinityName",))


def _spread_constraint() -> Schema:
    return obj("SpreadConstraint represents the spread constraints on resources.", {
        "maxGroups": integer("MaxGroups restricts the maximum number of cluster groups to be selected."),
        "minGroups": integer("MinGroups restricts the minimum number of cluster groups to be selected. "
                             "Defaults to 1."),
        "spreadByField": string(
            "SpreadByField represents the fields on Karmada cluster API used for dynamically grouping member "
            "clusters into different groups: cluster, region, zone, or provider. It should not co-exist with "
            "SpreadByLabel; if both are empty, it is set to \"cluster\".",
            enum=("cluster", "region", "zone", "provider")),
        "spreadByLabel": string("SpreadByLabel represents the label key used for grouping member clusters "
                                "into different groups. It should not co-exist with SpreadByField."),
    })


def _replica_scheduling() -> Schema:
    static_weight = obj("StaticClusterWeight defines the static cluster weight.", {
        "targetCluster": cluster_affinity("TargetCluster describes the filter to select clusters."),
        "weight": int64("Weight expressing the preference to the cluster(s) specified by 'TargetCluster'.",
                        minimum=1),
    }, required=("targetCluster", "weight"))
    return obj(
        "ReplicaScheduling represents the scheduling policy on dealing with the number of replicas when "
        "propagating resources that have replicas in spec (e.g. deployments, statefulsets) to member "
        "clusters.", {
            "replicaDivisionPreference": string(
                "ReplicaDivisionPreference determines how the replicas is divided when ReplicaSchedulingType is "
                "\"Divided\". Valid options are Aggregated and Weighted. \"Aggregated\" divides replicas into "
                "clusters as few as possible, while respecting clusters' resource availabilities during the "
                "division. \"Weighted\" divides replicas by weight according to WeightPreference.",
                enum=("Aggregated", "Weighted")),
            "replicaSchedulingType": string(
                "ReplicaSchedulingType determines how the replicas is scheduled when karmada propagating a "
                "resource. Valid options are Duplicated and Divided. \"Duplicated\" duplicates the same "
                "replicas to each candidate member cluster from resource. \"Divided\" divides replicas into "
                "parts according to number of valid candidate member clusters, and exact replicas for each "
                "cluster are determined by ReplicaDivisionPreference.",
                enum=("Duplicated", "Divided"), default="Divided"),
            "weightPreference": obj(
                "WeightPreference describes weight for each cluster or for each group of cluster. If "
                "ReplicaDivisionPreference is set to \"Weighted\", and WeightPreference is not set, scheduler "
                "will weight all clusters the same.", {
                    "dynamicWeight": string(
                        "DynamicWeight specifies the factor to generates dynamic weight list. If specified, "
                        "StaticWeightList will be ignored.", enum=("AvailableReplicas",)),
                    "staticWeightList": array("StaticWeightList defines the static cluster weight.",
                                              static_weight),
                }),
        })


def _workload_affinity() -> Schema:
    def term(doc: str, what: str) -> Schema:
        return obj(doc, {
            "groupByLabelKey": string(f"GroupByLabelKey declares the label key on the workload resource "
                                      f"template whose value names the {what} group (scoped to the "
                                      f"namespace). It must be a valid label key."),
        }, required=("groupByLabelKey",))

    return obj("WorkloadAffinity represents inter-workload affinity and anti-affinity scheduling policies.", {
        "affinity": term("Affinity represents inter-workload affinity scheduling rules (hard requirements; "
                         "the first workload of a group is not blocked).", "affinity"),
        "antiAffinity": term("AntiAffinity represents inter-workload anti-affinity scheduling rules (hard "
                             "requirements).", "anti-affinity"),
    })


def placement(doc: str = "Placement represents the rule for select clusters to propagate resources.") -> Schema:
    return obj(doc, {
        "clusterAffinities": array(
            "ClusterAffinities represents scheduling restrictions to multiple cluster groups, evaluated one by "
            "one in order: the first group that satisfies the restrictions wins. It can not co-exist with "
            "ClusterAffinity.", _cluster_affinity_term()),
        "clusterAffinity": cluster_affinity(
            "ClusterAffinity represents scheduling restrictions to a certain set of clusters. It can not "
            "co-exist with ClusterAffinities; if both are unset, any cluster can be a scheduling candidate."),
        "clusterTolerations": array("ClusterTolerations represents the tolerations.", toleration()),
        "replicaScheduling": _replica_scheduling(),
        "spreadConstraints": array("SpreadConstraints represents a list of the scheduling constraints.",
                                   _spread_constraint()),
        "workloadAffinity": _workload_affinity(),
    })


def _state_preservation() -> Schema:
    rule = obj("StatePreservationRule defines a single rule for state preservation.", {
        "aliasLabelName": string("AliasLabelName is the label key under which the preserved data is passed "
                                 "to the new cluster."),
        "jsonPath": string("JSONPath is the JSONPath template (searched from the object's status) that "
                           "identifies the state data to preserve, e.g. \"{.availableReplicas}\"."),
    }, required=("aliasLabelName", "jsonPath"))
    return obj("StatePreservation defines the policy for preserving and restoring state data during failover "
               "events for stateful applications.", {
                   "rules": array("Rules contains a list of StatePreservationRule configurations.", rule),
               }, required=("rules",))


def failover(doc: str = "Failover indicates how Karmada migrates applications in case of failures. If this "
                        "value is nil, failover is disabled.") -> Schema:
    return obj(doc, {
        "application": obj(
            "Application indicates failover behaviors in case of application failure. If this value is nil, "
            "failover is disabled.", {
                "decisionConditions": obj(
                    "DecisionConditions indicates the decision conditions of performing the failover "
                    "process.", {
                        "tolerationSeconds": int32(
                            "TolerationSeconds represents the period of time Karmada should wait after "
                            "reaching the desired state before performing failover process. Defaults to 300s; "
                            "0 performs failover immediately.", default=300),
                    }),
                "gracePeriodSeconds": int32(
                    "GracePeriodSeconds is the maximum waiting duration in seconds before application on the "
                    "migrated cluster should be deleted. Required only when PurgeMode is \"Gracefully\" and "
                    "defaults to 600s."),
                "purgeMode": string("PurgeMode represents how to deal with the legacy applications on the "
                                    "cluster from which the application is migrated: Directly, Gracefully or "
                                    "Never. Defaults to \"Gracefully\".",
                                    enum=("Directly", "Gracefully", "Never"), default="Gracefully"),
                "statePreservation": _state_preservation(),
            }, required=("decisionConditions",)),
        "cluster": obj(
            "Cluster indicates failover behaviors in case of cluster failure. If nil, the controller's "
            "no-execute-taint-eviction-purge-mode decides.", {
                "purgeMode": string("PurgeMode represents how to deal with the legacy applications on the "
                                    "cluster from which the application is migrated: Directly or Gracefully. "
                                    "Defaults to \"Gracefully\".",
                                    enum=("Directly", "Gracefully"), default="Gracefully"),
                "statePreservation": _state_preservation(),
            }),
    })


def suspension_properties() -> Schema:
    return {
        "dispatching": boolean("Dispatching controls whether dispatching should be suspended (to all "
                               "clusters). Can not co-exist with DispatchingOnClusters."),
        "dispatchingOnClusters": obj(
            "DispatchingOnClusters declares a list of clusters to which the dispatching should be suspended.", {
                "clusterNames": strings("ClusterNames is the list of clusters to be selected."),
            }),
    }


def conflict_resolution() -> Schema:
    return string("ConflictResolution declares how potential conflict should be handled when a resource that "
                  "is being propagated already exists in the target cluster: \"Abort\" (the default) stops "
                  "propagating, \"Overwrite\" takes the resource over.",
                  enum=("Abort", "Overwrite"), default="Abort")


def propagation_spec(doc: str) -> Schema:
    return obj(doc, {
        "activationPreference": string(
            "ActivationPreference indicates how the referencing resource template will be propagated, in case "
            "of policy changes. Empty: immediately; \"Lazy\": only at the template's next change.",
            enum=("Lazy",)),
        "association": boolean("Association tells if relevant resources should be selected automatically. "
                               "Deprecated: in favor of PropagateDeps."),
        "conflictResolution": conflict_resolution(),
        "dependentOverrides": strings("DependentOverrides represents the list of overrides (OverridePolicy) "
                                      "which must present before the current PropagationPolicy takes "
                                      "effect."),
        "failover": failover(),
        "placement": placement(),
        "preemption": string("Preemption declares the behaviors for preempting. Valid options are \"Always\" "
                             "and \"Never\".", enum=("Always", "Never"), default="Never"),
        "preserveResourcesOnDeletion": boolean(
            "PreserveResourcesOnDeletion controls whether resources should be preserved on the member clusters "
            "when the resource template is deleted. Default is false."),
        "priority": int32("Priority indicates the importance of a policy: the higher the value, the higher the "
                          "priority. Ties go to the more precise resource selector (name, then labels, then "
                          "kind), then to the lower alphabetic name. Defaults to zero.", default=0),
        "propagateDeps": boolean("PropagateDeps tells if relevant resources (ConfigMaps, Secrets... referenced "
                                 "by a workload) should be propagated automatically. Defaults to false."),
        "resourceSelectors": array(
            "ResourceSelectors used to select resources. Nil or empty selector is not allowed and doesn't mean "
            "match all kinds of resources for security concerns.", resource_selector(), minItems=1),
        "schedulePriority": obj(
            "SchedulePriority defines how Karmada should resolve the priority and preemption policy for "
            "workload scheduling.", {
                "priorityClassName": string("PriorityClassName specifies which PriorityClass to use."),
                "priorityClassSource": string("PriorityClassSource specifies where Karmada should look for the "
                                              "PriorityClass definition.", enum=("KubePriorityClass",)),
            }, required=("priorityClassName", "priorityClassSource")),
        "schedulerName": string("SchedulerName represents which scheduler to proceed the scheduling.",
                                default="default-scheduler"),
        "suspension": obj("Suspension declares the policy for suspending different aspects of propagation. nil "
                          "means no suspension.", suspension_properties()),
    }, required=("resourceSelectors",))


def propagation_policy_schema() -> Schema:
    return root("PropagationPolicy represents the policy that propagates a group of resources to one or more "
                "clusters.", spec=propagation_spec("Spec represents the desired behavior of PropagationPolicy."))


def cluster_propagation_policy_schema() -> Schema:
    return root("ClusterPropagationPolicy represents the cluster-wide policy that propagates a group of "
                "resources to one or more clusters; it can select cluster-scoped resources and resources in "
                "any namespace but the reserved ones (karmada-system, karmada-cluster, karmada-es-*).",
                spec=propagation_spec("Spec represents the desired behavior of ClusterPropagationPolicy."))


# -- overrides -------------------------------------------------------------------------------------------

def _operator(doc: str, allowed: tuple[str, ...] = OPERATORS) -> Schema:
    return string(doc, enum=allowed)


def _patch_operation(doc: str) -> Schema:
    return obj(doc, {
        "operator": _operator("Operator indicates the operation on target field: add, remove or replace."),
        "subPath": string("SubPath specifies the relative location (RFC 6901) within the initial FieldPath "
                          "where the operation should take place."),
        "value": json_value("Value is the new value to set for the specified field if the operation is \"add\" "
                            "or \"replace\". For \"remove\" operation, this field is ignored."),
    }, required=("operator", "subPath"))


def _command_args(doc: str, what: str) -> Schema:
    return array(doc, obj("CommandArgsOverrider represents the rules dedicated to handling command/args "
                          "overrides.", {
                              "containerName": string("The name of container"),
                              "operator": _operator(f"Operator represents the operator which will apply on the "
                                                    f"{what}: add or remove.", ("add", "remove")),
                              "value": strings(f"Value to be applied to {what}: appended with 'add', matching "
                                               f"items deleted with 'remove'."),
                          }, required=("containerName", "operator")))


def _label_annotation(doc: str, what: str) -> Schema:
    return array(doc, obj(f"LabelAnnotationOverrider represents the rules dedicated to handling workload "
                          f"{what}.", {
                              "operator": _operator("Operator represents the operator which will apply on the "
                                                    "workload: add, remove or replace."),
                              "value": string_map(f"Value to be applied to {what} of workload: appended with "
                                                  f"'add', matching items deleted with 'remove', matching keys "
                                                  f"replaced with 'replace'."),
                          }, required=("operator", "value")))


def overriders(doc: str) -> Schema:
    image = obj("ImageOverrider represents the rules dedicated to handling image overrides.", {
        "component": string("Component is part of image name: an image is '[registry/]repository[:tag]'.",
                            enum=("Registry", "Repository", "Tag")),
        "operator": _operator("Operator represents the operator which will apply on the image."),
        "predicate": obj(
            "Predicate filters images before applying the rule. When nil, image fields of Pod, ReplicaSet, "
            "Deployment, DaemonSet, StatefulSet and Job are found automatically.", {
                "path": string("Path indicates the path of target field"),
            }, required=("path",)),
        "value": string("Value to be applied to image. Must not be empty when operator is 'add' or 'replace'. "
                        "Ignored when operator is 'remove'."),
    }, required=("component", "operator"))
    field = obj("FieldOverrider represents the rules dedicated to modifying a specific field (a JSON or YAML "
                "document in a string) in any Kubernetes resource.", {
                    "fieldPath": string("FieldPath specifies the initial location (RFC 6901) in the instance "
                                        "document where the operation should take place, e.g. "
                                        "\"/data/db-config.yaml\"."),
                    "json": array("JSON represents the operations performed on the JSON document specified by "
                                  "the FieldPath.", _patch_operation("JSONPatchOperation represents a single "
                                                                     "field modification operation for JSON "
                                                                     "format.")),
                    "yaml": array("YAML represents the operations performed on the YAML document specified by "
                                  "the FieldPath.", _patch_operation("YAMLPatchOperation represents a single "
                                                                     "field modification operation for YAML "
                                                                     "format.")),
                }, required=("fieldPath",))
    plaintext = obj("PlaintextOverrider is a simple overrider that overrides target fields according to path, "
                    "operator and value.", {
                        "operator": _operator("Operator indicates the operation on target field. Available "
                                              "operators are: add, replace and remove."),
                        "path": string("Path indicates the path of target field"),
                        "value": json_value("Value to be applied to target field. Must be empty when operator is "
                                            "Remove."),
                    }, required=("operator", "path"))
    return obj(doc, {
        "annotationsOverrider": _label_annotation("AnnotationsOverrider represents the rules dedicated to "
                                                  "handling workload annotations", "annotations"),
        "argsOverrider": _command_args("ArgsOverrider represents the rules dedicated to handling container "
                                       "args", "args"),
        "commandOverrider": _command_args("CommandOverrider represents the rules dedicated to handling "
                                          "container command", "command"),
        "fieldOverrider": array("FieldOverrider represents the rules dedicated to modifying a specific field in "
                                "any Kubernetes resource.", field),
        "imageOverrider": array("ImageOverrider represents the rules dedicated to handling image overrides.",
                                image),
        "labelsOverrider": _label_annotation("LabelsOverrider represents the rules dedicated to handling "
                                             "workload labels", "labels"),
        "plaintext": array("Plaintext represents override rules defined with plaintext overriders.", plaintext),
    })


def override_spec(doc: str) -> Schema:
    rule = obj("RuleWithCluster defines the override rules on clusters.", {
        "overriders": overriders("Overriders represents the override rules that would apply on resources"),
        "targetCluster": cluster_affinity("TargetCluster defines restrictions on this override policy that only "
                                          "applies to resources propagated to the matching clusters. nil means "
                                          "matching all clusters."),
    }, required=("overriders",))
    return obj(doc, {
        "overrideRules": array("OverrideRules defines a collection of override rules on target clusters.", rule),
        "overriders": overriders("Overriders represents the override rules that would apply on resources. "
                                 "Deprecated: use OverrideRules instead."),
        "resourceSelectors": array("ResourceSelectors restricts resource types that this override policy applies "
                                   "to. nil means matching all resources.", resource_selector()),
        "targetCluster": cluster_affinity("TargetCluster defines restrictions on this override policy that only "
                                          "applies to resources propagated to the matching clusters. nil means "
                                          "matching all clusters. Deprecated: use OverrideRules instead."),
    })


def override_policy_schema() -> Schema:
    return root("OverridePolicy represents the policy that overrides a group of resources to one or more "
                "clusters.", spec=override_spec("Spec represents the desired behavior of OverridePolicy."))


def cluster_override_policy_schema() -> Schema:
    return root("ClusterOverridePolicy represents the cluster-wide policy that overrides a group of resources "
                "to one or more clusters.",
                spec=override_spec("Spec represents the desired behavior of ClusterOverridePolicy."))
