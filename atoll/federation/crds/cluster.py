"""``cluster.karmada.io/v1alpha1`` Cluster, transcribed from Karmada's ``pkg/apis/cluster/v1alpha1/types.go``.

Karmada serves Cluster from its aggregated API server (so that it can proxy requests to
members); Atoll's federation serves it as a CRD with the same schema, the status
subresource and the columns Karmada's table printer shows (VERSION, MODE, READY, AGE,
and ZONES, REGION, PROVIDER, API-ENDPOINT, PROXY-URL with ``-o wide``). One difference:
Karmada's printer shows ``Unknown`` for READY before the first probe, a printer column
shows nothing.
"""

from __future__ import annotations

from atoll.federation.crds.schema import (
    Schema,
    array,
    boolean,
    conditions,
    int32,
    integer,
    obj,
    quantity,
    resource_list,
    root,
    string,
    string_map,
    strings,
    taint,
)


def _secret_reference(doc: str) -> Schema:
    return obj(doc, {
        "name": string("Name is the name of the resource being referenced."),
        "namespace": string("Namespace is the namespace for the resource being referenced."),
    }, required=("name", "namespace"))


def _resource_model() -> Schema:
    model_range = obj("The quota range [min, max) of one resource in a resource model grade.", {
        "max": quantity("Max is the maximum amount of this resource (exclusive); for the last grade it is "
                        "infinite whatever is written."),
        "min": quantity("Min is the minimum amount of this resource (inclusive); for the first grade it "
                        "acts as zero."),
        "name": string("Name is the name for the resource that you want to categorize."),
    }, required=("max", "min", "name"))
    return obj("ResourceModel describes the modeling that you want to statistics.", {
        "grade": integer("Grade is the index for the resource modeling.", minimum=0),
        "ranges": array("Ranges describes the resource quota ranges.", model_range),
    }, required=("grade", "ranges"))


def cluster_spec() -> Schema:
    return obj("Spec represents the specification of the desired behavior of member cluster.", {
        "apiEndpoint": string("The API endpoint of the member cluster. This can be a hostname, hostname:port, "
                              "IP or IP:port."),
        "id": string("ID is the unique identifier for the cluster, collected at registration (the uid of the "
                     "member's kube-system namespace, or its cluster.clusterset.k8s.io ClusterProperty).",
                     maxLength=128000),
        "impersonatorSecretRef": _secret_reference(
            "ImpersonatorSecretRef represents the secret that contains the token of impersonator "
            "(secret.data.token)."),
        "insecureSkipTLSVerification": boolean(
            "InsecureSkipTLSVerification indicates that the control plane should not verify the member's "
            "serving certificate. Defaults to false."),
        "provider": string("Provider represents the cloud provider name of the member cluster."),
        "proxyHeader": string_map("ProxyHeader is the HTTP header required by proxy server; values of a "
                                  "header with several values are separated by commas."),
        "proxyURL": string("ProxyURL is the proxy URL for the cluster. If not empty, the control plane uses "
                           "this proxy to talk to the cluster."),
        "region": string("Region represents the region in which the member cluster is located."),
        "resourceModels": array(
            "ResourceModels is the list of resource modeling in this cluster (grades of cpu, memory, storage "
            "and ephemeral-storage); the default model has grades 0 to 8.", _resource_model()),
        "secretRef": _secret_reference(
            "SecretRef represents the secret that contains mandatory credentials to access the member "
            "cluster (secret.data.token and secret.data.caBundle)."),
        "syncMode": string("SyncMode describes how a cluster syncs resources from the control plane: Push "
                           "(the control plane applies them) or Pull (an agent in the member fetches them).",
                           enum=("Push", "Pull")),
        "taints": array("Taints are attached to the member cluster; they have the \"effect\" on any resource "
                        "that does not tolerate the Taint.", taint()),
        "zone": string("Zone represents the zone in which the member cluster is located. Deprecated: use "
                       "Zones instead."),
        "zones": strings("Zones represents the failure zones (also called availability zones) of the member "
                         "cluster."),
    }, required=("syncMode",))


def cluster_status() -> Schema:
    api_resource = obj("APIResource specifies the name and kind names for the resource.", {
        "kind": string("Kind is the kind for the resource (e.g. 'Deployment' for 'deployments')."),
        "name": string("Name is the plural name of the resource."),
    }, required=("kind", "name"))
    return obj("Status represents the status of member cluster.", {
        "apiEnablements": array("APIEnablements represents the list of APIs installed on the member cluster.",
                                obj("APIEnablement lists the resources served in one group and version.", {
                                    "groupVersion": string("GroupVersion is the group and version this "
                                                           "APIEnablement is for."),
                                    "resources": array("Resources is a list of APIResource.", api_resource),
                                }, required=("groupVersion",))),
        "conditions": conditions("Conditions is an array of current cluster conditions (Ready, "
                                 "CompleteAPIEnablements)."),
        "kubernetesVersion": string("KubernetesVersion represents version of the member cluster."),
        "nodeSummary": obj("NodeSummary represents the summary of nodes status in the member cluster.", {
            "readyNum": int32("ReadyNum is the number of ready nodes in the cluster."),
            "totalNum": int32("TotalNum is the total number of nodes in the cluster."),
        }),
        "remedyActions": strings("RemedyActions represents the remedy actions that needs to be performed on "
                                 "the cluster."),
        "resourceSummary": obj("ResourceSummary represents the summary of resources in the member cluster.", {
            "allocatable": resource_list("Allocatable is the total of allocatable resources on all nodes."),
            "allocatableModelings": array(
                "AllocatableModelings represents the statistical resource modeling: how many nodes fall in "
                "each resource model grade.",
                obj("The number of nodes whose allocatable resources fall in one grade.", {
                    "count": integer("Count is the number of nodes that own the resources delineated by this "
                                     "modeling."),
                    "grade": integer("Grade is the index of ResourceModel.", minimum=0),
                }, required=("count", "grade"))),
            "allocated": resource_list("Allocated is the total of the requests of all pods scheduled to "
                                       "nodes."),
            "allocating": resource_list("Allocating is the total of the requests of all pods waiting for "
                                        "scheduling."),
        }),
    })


def cluster_schema() -> Schema:
    return root("Cluster represents the desired state and status of a member cluster.",
                spec=cluster_spec(), status=cluster_status())
