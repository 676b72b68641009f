"""Resource detector: match resource templates to propagation policies and write their bindings.

Karmada's ``pkg/detector``. A resource template (a Deployment, a ConfigMap, any kind a
policy names) applied to the federation is matched to one policy — a PropagationPolicy
of its namespace first, else a ClusterPropagationPolicy; among several, the highest
``spec.priority``, then the most specific selector (name > labelSelector > everything),
then the policy name alphabetically. The template is then *claimed*: the policy's
permanent-id label and name annotations are put on it, and from then on it follows that
policy only (a later, better policy does not take it, unless it says ``preemption:
Always`` and has a higher priority). The claimed template gets a ResourceBinding
``<name>-<kind>`` (a ClusterResourceBinding for a cluster-scoped template), owned by the
template, carrying the placement and the replica count and per-replica resource requests
the scheduler needs. The scheduler's result (``spec.clusters``) is never touched here.

A deleted policy unclaims its templates and their bindings (labels and annotations
removed) but leaves the bindings — and so what runs in the members — in place, as
Karmada does; a deleted template takes its binding with it through the ownerReference.

Karmada's admission webhook gives each policy a permanent id and a finalizer on
creation; Atoll has no webhooks, so the detector does both when it first sees a policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
import uuid
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any, ClassVar

from atoll.api.errors import AlreadyExists, NotFound
from atoll.api.meta import parse_quantity
from atoll.client import Client, Resource
from atoll.federation.kinds import (
    CLUSTER_OVERRIDE_POLICIES,
    CLUSTER_PROPAGATION_POLICIES,
    CLUSTER_RESOURCE_BINDINGS,
    OVERRIDE_POLICIES,
    PROPAGATION_POLICIES,
    RESOURCE_BINDINGS,
    is_reserved_namespace,
)
from atoll.federation.overrides import PRIORITY_MISMATCH, selectors_priority
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.events import EventRecorder
from atoll.machinery.informing import Informer, key_of

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

# Claim metadata (Karmada's policy/v1alpha1 well-known constants).
PP_ID_LABEL = "propagationpolicy.karmada.io/permanent-id"
PP_NAMESPACE_ANNOTATION = "propagationpolicy.karmada.io/namespace"
PP_NAME_ANNOTATION = "propagationpolicy.karmada.io/name"
CPP_ID_LABEL = "clusterpropagationpolicy.karmada.io/permanent-id"
CPP_NAME_ANNOTATION = "clusterpropagationpolicy.karmada.io/name"
RB_ID_LABEL = "resourcebinding.karmada.io/permanent-id"
CRB_ID_LABEL = "clusterresourcebinding.karmada.io/permanent-id"
CLAIMED_BY_LABEL = "resourcetemplate.karmada.io/claimed-by"
PP_FINALIZER = "karmada.io/propagation-policy-controller"
CPP_FINALIZER = "karmada.io/cluster-propagation-policy-controller"
RB_FINALIZER = "karmada.io/binding-controller"
CRB_FINALIZER = "karmada.io/cluster-resource-binding-controller"
DEFAULT_SCHEDULER = "default-scheduler"
DISCOVERY_INTERVAL = 30.0
"""Seconds between looks for a kind a policy names that the API server does not serve yet."""

DEFAULT_RESOURCES: tuple[Resource, ...] = (
    Resource("apps/v1", "deployments", True, "Deployment"),
    Resource("apps/v1", "statefulsets", True, "StatefulSet"),
    Resource("apps/v1", "daemonsets", True, "DaemonSet"),
    Resource("apps/v1", "replicasets", True, "ReplicaSet"),
    Resource("v1", "services", True, "Service"),
    Resource("v1", "configmaps", True, "ConfigMap"),
    Resource("v1", "secrets", True, "Secret"),
    Resource("v1", "serviceaccounts", True, "ServiceAccount"),
    Resource("v1", "persistentvolumeclaims", True, "PersistentVolumeClaim"),
    Resource("v1", "pods", True, "Pod"),
    Resource("batch/v1", "jobs", True, "Job"),
    Resource("batch/v1", "cronjobs", True, "CronJob"),
    Resource("networking.k8s.io/v1", "ingresses", True, "Ingress"),
)
"""Templates watched from the start; any other kind is watched once a policy names it."""

_NEVER_PROPAGATED_GROUPS = frozenset({"cluster.karmada.io", "policy.karmada.io", "work.karmada.io",
                                      "config.karmada.io", "events.k8s.io", "coordination.k8s.io"})
_NEVER_PROPAGATED = frozenset({("v1", "Event"), ("v1", "Namespace"), ("v1", "Node")})


# -- pure helpers ---------------------------------------------------------------------------


def binding_name(kind: str, name: str) -> str:
    """``names.GenerateBindingName``: ``<name>-<kind>`` in lower case, ``:`` made a ``.``."""
    return f"{name.replace(':', '.')}-{kind}".lower()


def skipped_namespace(namespace: str) -> bool:
    """Karmada's EventFilter: its reserved namespaces and ``--skipped-propagating-namespaces`` (``kube-.*``)."""
    return bool(namespace) and (is_reserved_namespace(namespace) or namespace.startswith("kube-"))


def propagatable(api_version: str, kind: str) -> bool:
    """Whether templates of this kind may be propagated at all (never the federation's own objects)."""
    group = api_version.rpartition("/")[0]
    return group not in _NEVER_PROPAGATED_GROUPS and (api_version, kind) not in _NEVER_PROPAGATED


def spec_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    """``eventfilter.SpecificationChanged``: anything but status, managedFields and resourceVersion."""
    if old is None or new is None:
        return True

    def strip(obj: Mapping[str, Any]) -> Obj:
        out = {k: v for k, v in obj.items() if k != "status"}
        out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items()
                           if k not in ("managedFields", "resourceVersion")}
        return out

    return strip(old) != strip(new)


def explicit_priority(policy: Mapping[str, Any]) -> int:
    value = (policy.get("spec") or {}).get("priority")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def policy_namespace_default(policy: Mapping[str, Any]) -> str:
    """A PropagationPolicy's selectors default to its own namespace (Karmada's mutating webhook)."""
    return str((policy.get("metadata") or {}).get("namespace") or "")


def policy_priority(template: Mapping[str, Any], policy: Mapping[str, Any]) -> int:
    return selectors_priority(template, (policy.get("spec") or {}).get("resourceSelectors"),
                              default_namespace=policy_namespace_default(policy))


def policy_matches(template: Mapping[str, Any], policy: Mapping[str, Any]) -> bool:
    return policy_priority(template, policy) > PRIORITY_MISMATCH


def best_policy(template: Mapping[str, Any], policies: Iterable[Mapping[str, Any]]) -> Obj | None:
    """The policy that claims ``template``: highest explicit priority, then implicit, then name.

    Policies being deleted are never chosen (``getHighestPriorityPropagationPolicy``).
    """
    best: tuple[int, int, str] | None = None
    chosen: Obj | None = None
    for policy in policies:
        md = policy.get("metadata") or {}
        if md.get("deletionTimestamp"):
            continue
        implicit = policy_priority(template, policy)
        if implicit <= PRIORITY_MISMATCH:
            continue
        name = str(md.get("name") or "")
        # Higher explicit, then higher implicit, then the alphabetically first name.
        rank = (explicit_priority(policy), implicit, name)
        if best is None or (rank[0], rank[1]) > (best[0], best[1]) or (
                (rank[0], rank[1]) == (best[0], best[1]) and name < best[2]):
            best, chosen = rank, dict(policy)
    return chosen


# Quantities, formatted as resource.Quantity's canonical form for the format kube gives them.
_DECIMAL_SUFFIXES = ((18, "E"), (15, "P"), (12, "T"), (9, "G"), (6, "M"), (3, "k"))
_BINARY_SUFFIXES = ((60, "Ei"), (50, "Pi"), (40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki"))
_BINARY_RESOURCES = frozenset({"memory", "ephemeral-storage"})


def format_decimal(value: int) -> str:
    if value == 0:
        return "0"
    for exp, suffix in _DECIMAL_SUFFIXES:
        if value % 10**exp == 0:
            return f"{value // 10**exp}{suffix}"
    return str(value)


def format_binary(value: int) -> str:
    if -1024 < value < 1024:
        return str(value)
    for exp, suffix in _BINARY_SUFFIXES:
        if value % 2**exp == 0:
            return f"{value // 2**exp}{suffix}"
    return str(value)


def format_quantity(name: str, value: Fraction) -> str:
    """cpu as a milli-quantity, memory and storage in binary units, anything else as a whole number."""
    if name == "cpu":
        millis = math.ceil(value * 1000)
        return format_decimal(millis // 1000) if millis % 1000 == 0 else f"{millis}m"
    whole = math.ceil(value)
    if name in _BINARY_RESOURCES or name.startswith("hugepages-"):
        return format_binary(whole)
    return format_decimal(whole)


def _container_requests(container: Mapping[str, Any]) -> dict[str, Fraction]:
    """A container's requests, limits standing in for requests not given (kube's defaulting)."""
    resources = container.get("resources") or {}
    merged: dict[str, Any] = dict(resources.get("limits") or {})
    merged.update(resources.get("requests") or {})
    out: dict[str, Fraction] = {}
    for name, value in merged.items():
        try:
            out[str(name)] = parse_quantity(value)
        except ValueError:
            continue
    return out


def pod_requests(pod_spec: Mapping[str, Any]) -> dict[str, Fraction]:
    """A pod's effective requests: the sum over containers, at least the largest init container, plus overhead."""
    total: dict[str, Fraction] = {}
    for c in pod_spec.get("containers") or []:
        for name, value in _container_requests(c).items():
            total[name] = total.get(name, Fraction(0)) + value
    for c in pod_spec.get("initContainers") or []:
        for name, value in _container_requests(c).items():
            if value > total.get(name, Fraction(0)):
                total[name] = value
    for name, value in (pod_spec.get("overhead") or {}).items():
        with contextlib.suppress(ValueError):
            total[str(name)] = total.get(str(name), Fraction(0)) + parse_quantity(value)
    return {k: v for k, v in total.items() if v > 0}


def replica_requirements(pod_template: Mapping[str, Any]) -> Obj | None:
    """``helper.GenerateReplicaRequirements``: what one replica asks of a cluster (None when nothing)."""
    spec = pod_template.get("spec") or {}
    node_claim: Obj = {}
    hard = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
            .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if hard:
        node_claim["hardNodeAffinity"] = copy.deepcopy(hard)
    if spec.get("nodeSelector"):
        node_claim["nodeSelector"] = dict(spec["nodeSelector"])
    if spec.get("tolerations"):
        node_claim["tolerations"] = copy.deepcopy(spec["tolerations"])
    requests = pod_requests(spec)
    out: Obj = {}
    if node_claim:
        out["nodeClaim"] = node_claim
    if requests:
        out["resourceRequest"] = {name: format_quantity(name, value) for name, value in sorted(requests.items())}
    return out or None


def get_replicas(template: Mapping[str, Any]) -> tuple[int, Obj | None] | None:
    """Karmada's default GetReplicas: (replicas, requirements), or None for a kind without replicas.

    Deployments, ReplicaSets and StatefulSets give ``spec.replicas``; a Job its
    ``parallelism`` capped by ``completions``; a Pod is one replica.
    """
    api_version, kind = template.get("apiVersion"), template.get("kind")
    spec = template.get("spec") or {}
    if api_version == "apps/v1" and kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        return int(spec.get("replicas") or 0), replica_requirements(spec.get("template") or {})
    if api_version == "batch/v1" and kind == "Job":
        replicas = int(spec.get("parallelism") or 0) if spec.get("parallelism") is not None else 0
        completions = spec.get("completions")
        if completions is not None and replicas > int(completions):
            replicas = int(completions)
        return replicas, replica_requirements(spec.get("template") or {})
    if api_version == "v1" and kind == "Pod":
        return 1, replica_requirements({"spec": spec})
    return None


def owner_reference(template: Mapping[str, Any]) -> Obj:
    md = template.get("metadata") or {}
    return {"apiVersion": template.get("apiVersion"), "kind": template.get("kind"), "name": md.get("name"),
            "uid": md.get("uid"), "controller": True, "blockOwnerDeletion": True}


def object_reference(template: Mapping[str, Any]) -> Obj:
    md = template.get("metadata") or {}
    ref = {"apiVersion": template.get("apiVersion"), "kind": template.get("kind"),
           "namespace": md.get("namespace"), "name": md.get("name"), "uid": md.get("uid"),
           "resourceVersion": md.get("resourceVersion")}
    return {k: v for k, v in ref.items() if v}


def claim_metadata(policy: Mapping[str, Any], *, cluster_policy: bool) -> tuple[dict[str, str], dict[str, str]]:
    """The (labels, annotations) a policy puts on what it claims."""
    md = policy.get("metadata") or {}
    labels = md.get("labels") or {}
    if cluster_policy:
        return ({CPP_ID_LABEL: str(labels.get(CPP_ID_LABEL, ""))}, {CPP_NAME_ANNOTATION: str(md.get("name"))})
    return ({PP_ID_LABEL: str(labels.get(PP_ID_LABEL, ""))},
            {PP_NAMESPACE_ANNOTATION: str(md.get("namespace") or ""), PP_NAME_ANNOTATION: str(md.get("name"))})


def claim_keys(*, cluster_policy: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if cluster_policy:
        return (CPP_ID_LABEL,), (CPP_NAME_ANNOTATION,)
    return (PP_ID_LABEL,), (PP_NAMESPACE_ANNOTATION, PP_NAME_ANNOTATION)


def build_binding(template: Mapping[str, Any], policy: Mapping[str, Any], *, cluster_policy: bool) -> Obj:
    """The ResourceBinding (or ClusterResourceBinding, for a cluster-scoped template) a policy asks for.

    ``BuildResourceBinding``: named after the template, owned by it, with the policy's
    placement and propagation settings and the template's replicas and requirements.
    """
    md = template.get("metadata") or {}
    pspec = policy.get("spec") or {}
    namespaced = bool(md.get("namespace"))
    labels, annotations = claim_metadata(policy, cluster_policy=cluster_policy)
    meta: Obj = {"name": binding_name(str(template.get("kind")), str(md.get("name"))), "labels": labels,
                 "annotations": annotations, "ownerReferences": [owner_reference(template)],
                 "finalizers": [RB_FINALIZER if namespaced else CRB_FINALIZER]}
    if namespaced:
        meta["namespace"] = md["namespace"]
    spec: Obj = {"resource": object_reference(template),
                 "placement": copy.deepcopy(pspec.get("placement") or {}),
                 "schedulerName": pspec.get("schedulerName") or DEFAULT_SCHEDULER,
                 "conflictResolution": pspec.get("conflictResolution") or "Abort"}
    if pspec.get("propagateDeps"):
        spec["propagateDeps"] = True
    for key in ("failover", "preserveResourcesOnDeletion"):
        if pspec.get(key) is not None:
            spec[key] = copy.deepcopy(pspec[key])
    if pspec.get("suspension") is not None:
        spec["suspension"] = copy.deepcopy(pspec["suspension"])
    replicas = get_replicas(template)
    if replicas is not None:
        count, requirements = replicas
        if count:
            spec["replicas"] = count
        if requirements is not None:
            spec["replicaRequirements"] = requirements
    return {"apiVersion": (RESOURCE_BINDINGS if namespaced else CLUSTER_RESOURCE_BINDINGS).api_version,
            "kind": "ResourceBinding" if namespaced else "ClusterResourceBinding", "metadata": meta, "spec": spec}


_POLICY_OWNED_SPEC = ("resource", "replicaRequirements", "replicas", "propagateDeps", "schedulerName", "placement",
                      "failover", "conflictResolution", "preserveResourcesOnDeletion")


def merge_binding(existing: Mapping[str, Any], desired: Mapping[str, Any], *, cluster_policy: bool) -> Obj:
    """The existing binding updated with what the detector owns, keeping the scheduling result.

    Labels, annotations and finalizers are merged, ownerReferences replaced, the
    policy-owned spec fields replaced (absent ones removed), and ``suspension`` merged so a
    ``scheduling`` suspension set by someone else survives (``util.MergePolicySuspension``).
    A binding claimed by a PropagationPolicy drops any ClusterPropagationPolicy claim.
    """
    out = copy.deepcopy(dict(existing))
    md = out.setdefault("metadata", {})
    dmd = desired.get("metadata") or {}
    md["labels"] = {**(md.get("labels") or {}), **(dmd.get("labels") or {})}
    md["annotations"] = {**(md.get("annotations") or {}), **(dmd.get("annotations") or {})}
    if not cluster_policy:
        md["labels"].pop(CPP_ID_LABEL, None)
        md["annotations"].pop(CPP_NAME_ANNOTATION, None)
    finalizers = list(md.get("finalizers") or [])
    finalizers += [f for f in dmd.get("finalizers") or [] if f not in finalizers]
    md["finalizers"] = finalizers
    md["ownerReferences"] = copy.deepcopy(dmd.get("ownerReferences") or [])
    spec = out.setdefault("spec", {})
    dspec = desired.get("spec") or {}
    for key in _POLICY_OWNED_SPEC:
        if key in dspec:
            spec[key] = copy.deepcopy(dspec[key])
        else:
            spec.pop(key, None)
    suspension = dspec.get("suspension")
    scheduling = (spec.get("suspension") or {}).get("scheduling")
    if suspension is None and scheduling is None:
        spec.pop("suspension", None)
    else:
        merged = copy.deepcopy(suspension or {})
        if scheduling is not None:
            merged["scheduling"] = scheduling
        spec["suspension"] = merged
    return out


def claimed_policy(template: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(``"pp"``/``"cpp"``, key, permanent id) of the policy that claimed ``template``, if any."""
    md = template.get("metadata") or {}
    labels, annotations = md.get("labels") or {}, md.get("annotations") or {}
    ns, name, pid = annotations.get(PP_NAMESPACE_ANNOTATION), annotations.get(PP_NAME_ANNOTATION), labels.get(
        PP_ID_LABEL)
    if ns and name and pid:
        return ("pp", f"{ns}/{name}", str(pid))
    name, pid = annotations.get(CPP_NAME_ANNOTATION), labels.get(CPP_ID_LABEL)
    if name and pid:
        return ("cpp", str(name), str(pid))
    return None


def _template_key(api_version: str, kind: str, key: str) -> str:
    return f"t|{api_version}|{kind}|{key}"


def _metadata_patch(obj: Mapping[str, Any], *, labels: Mapping[str, str | None],
                    annotations: Mapping[str, str | None]) -> Obj:
    """A merge patch of labels/annotations, guarded by the object's resourceVersion."""
    md: Obj = {"resourceVersion": (obj.get("metadata") or {}).get("resourceVersion")}
    if labels:
        md["labels"] = dict(labels)
    if annotations:
        md["annotations"] = dict(annotations)
    return {"metadata": md}


# -- the controller -------------------------------------------------------------------------


class Detector(Controller):
    """Claims templates for policies and keeps their (Cluster)ResourceBindings in line with both.

    Queue keys: ``pp|ns/name``, ``cpp|name`` for policies, ``t|apiVersion|kind|key`` for templates.
    """

    NAME: ClassVar[str] = "resource-detector"

    def __init__(self, client: Client, *, resources: list[Resource] | None = None) -> None:
        super().__init__()
        self.client = client
        self.recorder = EventRecorder(client, self.NAME)
        self.policies = self._watch_policies(PROPAGATION_POLICIES, "pp")
        self.cluster_policies = self._watch_policies(CLUSTER_PROPAGATION_POLICIES, "cpp")
        self.bindings = Informer(client, RESOURCE_BINDINGS)
        self.cluster_bindings = Informer(client, CLUSTER_RESOURCE_BINDINGS)
        self.informers += [self.bindings, self.cluster_bindings]
        self.override_policies = self._watch_overrides(OVERRIDE_POLICIES)
        self.cluster_override_policies = self._watch_overrides(CLUSTER_OVERRIDE_POLICIES)
        self.templates: dict[tuple[str, str], Informer] = {}
        for res in DEFAULT_RESOURCES if resources is None else resources:
            self.informers.append(self._watch_template(res))
        self._stop: asyncio.Event | None = None
        self._late: list[asyncio.Task[None]] = []
        self._discovering = asyncio.Lock()

    # -- watching ---------------------------------------------------------------------------
    def _watch_policies(self, res: Resource, prefix: str) -> Informer:
        informer = Informer(self.client, res)

        def handler(_event: str, old: Obj | None, new: Obj | None) -> None:
            obj = new if new is not None else old
            if obj is not None:
                self.queue.add(f"{prefix}|{key_of(obj)}")

        informer.add_handler(handler)
        self.informers.append(informer)
        return informer

    def _watch_overrides(self, res: Resource) -> Informer:
        """Override policies, for ``dependentOverrides``: a new one releases the policies waiting for it."""
        informer = Informer(self.client, res)
        cluster_scoped = not res.namespaced

        def handler(event: str, old: Obj | None, new: Obj | None) -> None:
            if event != "ADDED" or new is None:
                return
            md = new.get("metadata") or {}
            policies = (self.cluster_policies if cluster_scoped else self.policies).lister.list(
                None if cluster_scoped else md.get("namespace"))
            for policy in policies:
                if md.get("name") in ((policy.get("spec") or {}).get("dependentOverrides") or []):
                    self.queue.add(f"{'cpp' if cluster_scoped else 'pp'}|{key_of(policy)}")

        informer.add_handler(handler)
        self.informers.append(informer)
        return informer

    def _missing_overrides(self, policy: Mapping[str, Any], *, cluster_policy: bool) -> list[str]:
        """``IsDependentOverridesPresent``: the ``dependentOverrides`` that do not exist (yet)."""
        ns = (policy.get("metadata") or {}).get("namespace")
        lister = (self.cluster_override_policies if cluster_policy else self.override_policies).lister
        return [str(name) for name in (policy.get("spec") or {}).get("dependentOverrides") or []
                if lister.get(str(name) if cluster_policy else f"{ns}/{name}") is None]

    def _watch_template(self, res: Resource) -> Informer:
        informer = Informer(self.client, res)
        self.templates[(res.api_version, res.kind)] = informer

        def handler(event: str, old: Obj | None, new: Obj | None) -> None:
            obj = new if new is not None else old
            if obj is None:
                return
            if skipped_namespace(str((obj.get("metadata") or {}).get("namespace") or "")):
                return
            if event == "MODIFIED" and not spec_changed(old, new):
                return
            self.queue.add(_template_key(res.api_version, res.kind, key_of(obj)))

        informer.add_handler(handler)
        return informer

    async def _ensure_watched(self, policy: Mapping[str, Any]) -> bool:
        """Watch every kind a policy's selectors name (``discoverResources``, on demand).

        False when a kind is not served (yet): a CRD installed later is found on a later look.
        """
        complete = True
        async with self._discovering:
            for selector in (policy.get("spec") or {}).get("resourceSelectors") or []:
                api_version, kind = str(selector.get("apiVersion") or ""), str(selector.get("kind") or "")
                if not api_version or not kind or (api_version, kind) in self.templates:
                    continue
                if not propagatable(api_version, kind):
                    continue
                try:
                    res = await self.client.resource_for(api_version, kind)
                except NotFound:
                    logger.info("%s: no resource %s %s (yet); policy %s waits", self.NAME, api_version, kind,
                                key_of(dict(policy)))
                    complete = False
                    continue
                informer = self._watch_template(res)
                if self._stop is not None:
                    self._late.append(asyncio.create_task(informer.run(self._stop),
                                                          name=f"{self.NAME}-informer-{res.plural}"))
                    await asyncio.wait_for(informer.synced.wait(), 30)
        return complete

    async def run(self, stop: asyncio.Event) -> None:
        """The base run, plus the informers of kinds discovered from policies (started as they come)."""
        self._stop = stop
        for res_key, informer in self.templates.items():
            if informer not in self.informers:  # discovered in an earlier run
                self._late.append(asyncio.create_task(informer.run(stop), name=f"{self.NAME}-informer-{res_key[1]}"))
        try:
            await super().run(stop)
        finally:
            for task in self._late:
                task.cancel()
            for task in self._late:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._late.clear()

    # -- lookups ----------------------------------------------------------------------------
    def _all_templates(self) -> Iterable[tuple[str, str, Obj]]:
        for (api_version, kind), informer in list(self.templates.items()):
            for obj in informer.lister.list():
                yield api_version, kind, obj

    def _template(self, api_version: str, kind: str, key: str) -> Obj | None:
        informer = self.templates.get((api_version, kind))
        return informer.lister.get(key) if informer is not None else None

    def _binding_for(self, template: Mapping[str, Any]) -> tuple[Resource, Obj | None, str, str | None]:
        md = template.get("metadata") or {}
        name = binding_name(str(template.get("kind")), str(md.get("name")))
        ns = md.get("namespace") or None
        if ns:
            return RESOURCE_BINDINGS, self.bindings.lister.get(f"{ns}/{name}"), name, ns
        return CLUSTER_RESOURCE_BINDINGS, self.cluster_bindings.lister.get(name), name, None

    # -- reconcile --------------------------------------------------------------------------
    async def reconcile(self, key: str) -> Result:
        kind, _, rest = key.partition("|")
        if kind == "t":
            api_version, template_kind, obj_key = rest.split("|", 2)
            await self._reconcile_template(api_version, template_kind, obj_key)
        elif kind in ("pp", "cpp"):
            if not await self._reconcile_policy(rest, cluster_policy=kind == "cpp"):
                return Result(requeue_after=DISCOVERY_INTERVAL)
        return Result()

    async def _reconcile_template(self, api_version: str, kind: str, key: str) -> None:
        template = self._template(api_version, kind, key)
        if template is None:
            return  # the binding goes with its owner (garbage collection)
        md = template.get("metadata") or {}
        if md.get("deletionTimestamp") or skipped_namespace(str(md.get("namespace") or "")):
            return
        if (md.get("labels") or {}).get(CLAIMED_BY_LABEL) or not propagatable(api_version, kind):
            return
        claim = claimed_policy(template)
        if claim is not None:
            which, policy_key, pid = claim
            cluster_policy = which == "cpp"
            lister = (self.cluster_policies if cluster_policy else self.policies).lister
            policy = lister.get(policy_key)
            if policy is None or (policy.get("metadata") or {}).get("labels", {}).get(
                    CPP_ID_LABEL if cluster_policy else PP_ID_LABEL) != pid:
                # The claiming policy is gone: finish its cleanup, then look again afresh.
                await self._unclaim(template, pid, cluster_policy=cluster_policy)
                return
            if (policy.get("metadata") or {}).get("deletionTimestamp"):
                raise RuntimeError(f"policy {policy_key} is being deleted")
            if not policy_matches(template, policy):
                return
            await self._apply(template, policy, cluster_policy=cluster_policy)
            return
        if md.get("namespace"):
            policy = best_policy(template, self.policies.lister.list(md["namespace"]))
            if policy is not None:
                if (policy["metadata"].get("labels") or {}).get(PP_ID_LABEL):
                    await self._apply(template, policy, cluster_policy=False)
                return  # else the policy's own reconcile gives it an id, then requeues us
        policy = best_policy(template, self.cluster_policies.lister.list())
        if policy is not None and (policy["metadata"].get("labels") or {}).get(CPP_ID_LABEL):
            await self._apply(template, policy, cluster_policy=True)

    async def _claim(self, template: Obj, policy: Mapping[str, Any], *, cluster_policy: bool) -> Obj:
        """Put the policy's claim on the template (``ClaimPolicyForObject``); returns the template as stored."""
        md = template.get("metadata") or {}
        labels = md.get("labels") or {}
        want_labels, want_annotations = claim_metadata(policy, cluster_policy=cluster_policy)
        id_label = CPP_ID_LABEL if cluster_policy else PP_ID_LABEL
        has_cpp = CPP_ID_LABEL in labels
        if labels.get(id_label) == want_labels[id_label] and (cluster_policy or not has_cpp):
            return template
        patch_labels: dict[str, str | None] = dict(want_labels)
        patch_annotations: dict[str, str | None] = dict(want_annotations)
        if not cluster_policy and has_cpp:
            patch_labels[CPP_ID_LABEL] = None
            patch_annotations[CPP_NAME_ANNOTATION] = None
        res = self._resource_of(template)
        updated: Obj = await self.client.patch(
            res, str(md.get("name")), _metadata_patch(template, labels=patch_labels, annotations=patch_annotations),
            md.get("namespace") or None)
        return updated

    def _resource_of(self, template: Mapping[str, Any]) -> Resource:
        informer = self.templates[(str(template.get("apiVersion")), str(template.get("kind")))]
        return informer.resource

    async def _apply(self, template: Obj, policy: Mapping[str, Any], *, cluster_policy: bool) -> None:
        pmd = policy.get("metadata") or {}
        what = f"cluster policy({pmd.get('name')})" if cluster_policy else \
            f"policy({pmd.get('namespace')}/{pmd.get('name')})"
        missing = self._missing_overrides(policy, cluster_policy=cluster_policy)
        if missing:
            # Karmada retries until they exist; their creation requeues the policy as well.
            raise RuntimeError(f"waiting for dependent overrides {', '.join(missing)} of {what}")
        try:
            template = await self._claim(template, policy, cluster_policy=cluster_policy)
            changed = await self._write_binding(template, policy, cluster_policy=cluster_policy)
        except Exception as exc:
            await self.recorder.record(template, "Warning", "ApplyPolicyFailed", f"Apply {what} failed: {exc}")
            raise
        if changed:
            await self.recorder.record(template, "Normal", "ApplyPolicySucceed", f"Apply {what} succeed")

    async def _write_binding(self, template: Obj, policy: Mapping[str, Any], *, cluster_policy: bool) -> bool:
        """Create or update the binding; True when something was written."""
        desired = build_binding(template, policy, cluster_policy=cluster_policy)
        res, existing, name, ns = self._binding_for(template)
        id_label = RB_ID_LABEL if ns else CRB_ID_LABEL
        if existing is None:
            desired["metadata"]["labels"][id_label] = str(uuid.uuid4())
            try:
                await self.client.create(res, desired, ns)
                logger.info("%s: created %s %s", self.NAME, desired["kind"], key_of(desired))
                return True
            except AlreadyExists:
                existing = await self.client.get(res, name, ns)
        owner = next((r for r in (existing.get("metadata") or {}).get("ownerReferences") or []
                      if r.get("controller")), None)
        if owner is not None and owner.get("uid") != (template.get("metadata") or {}).get("uid"):
            raise RuntimeError(f"{res.kind} {name} belongs to an older {owner.get('kind')} {owner.get('name')}; "
                               "waiting for garbage collection")
        merged = merge_binding(existing, desired, cluster_policy=cluster_policy)
        if not (merged["metadata"].get("labels") or {}).get(id_label):
            merged["metadata"]["labels"][id_label] = str(uuid.uuid4())
        if merged == existing:
            return False
        await self.client.replace(res, merged, ns)
        logger.info("%s: updated %s %s", self.NAME, res.kind, key_of(merged))
        return True

    async def _unclaim(self, template: Mapping[str, Any], pid: str, *, cluster_policy: bool) -> None:
        """Remove one policy's claim from a template and its binding (binding first, as Karmada does).

        Only a claim carrying ``pid`` is removed: a template re-claimed meanwhile by a new
        policy of the same name keeps its new claim.
        """
        label_keys, annotation_keys = claim_keys(cluster_policy=cluster_policy)
        id_label = label_keys[0]
        res, binding, name, ns = self._binding_for(template)
        if binding is not None and ((binding.get("metadata") or {}).get("labels") or {}).get(id_label) == pid:
            with contextlib.suppress(NotFound):
                await self.client.patch(res, name, _metadata_patch(
                    binding, labels=dict.fromkeys(label_keys), annotations=dict.fromkeys(annotation_keys)), ns)
        md = template.get("metadata") or {}
        if (md.get("labels") or {}).get(id_label) == pid:
            with contextlib.suppress(NotFound):
                await self.client.patch(self._resource_of(template), str(md.get("name")), _metadata_patch(
                    template, labels=dict.fromkeys(label_keys), annotations=dict.fromkeys(annotation_keys)),
                    md.get("namespace") or None)

    async def _reconcile_policy(self, key: str, *, cluster_policy: bool) -> bool:
        """Claims, unclaims and preemption for one policy; False when a kind it names is not served yet."""
        informer = self.cluster_policies if cluster_policy else self.policies
        id_label = CPP_ID_LABEL if cluster_policy else PP_ID_LABEL
        finalizer = CPP_FINALIZER if cluster_policy else PP_FINALIZER
        res = CLUSTER_PROPAGATION_POLICIES if cluster_policy else PROPAGATION_POLICIES
        policy = informer.lister.get(key)
        if policy is None:
            # Gone without our finalizer (or after it): templates still naming it clean up themselves.
            for api_version, kind, obj in self._all_templates():
                claim = claimed_policy(obj)
                if claim is not None and claim[0] == ("cpp" if cluster_policy else "pp") and claim[1] == key:
                    self.queue.add(_template_key(api_version, kind, key_of(obj)))
            return True
        md = policy.get("metadata") or {}
        pid = (md.get("labels") or {}).get(id_label)
        if md.get("deletionTimestamp"):
            if pid:
                for api_version, kind, obj in self._all_templates():
                    if ((obj.get("metadata") or {}).get("labels") or {}).get(id_label) == pid:
                        await self._unclaim(obj, str(pid), cluster_policy=cluster_policy)
                        self.queue.add(_template_key(api_version, kind, key_of(obj)))
            if finalizer in (md.get("finalizers") or []):
                with contextlib.suppress(NotFound):
                    await self.client.patch(res, str(md["name"]), {"metadata": {
                        "finalizers": [f for f in md.get("finalizers") or [] if f != finalizer],
                        "resourceVersion": md.get("resourceVersion")}}, md.get("namespace"))
            return True
        if not pid or finalizer not in (md.get("finalizers") or []):
            # What Karmada's mutating webhook does at creation: a permanent id and our finalizer.
            patch: Obj = {"metadata": {"resourceVersion": md.get("resourceVersion")}}
            if not pid:
                patch["metadata"]["labels"] = {id_label: str(uuid.uuid4())}
            if finalizer not in (md.get("finalizers") or []):
                patch["metadata"]["finalizers"] = [*(md.get("finalizers") or []), finalizer]
            await self.client.patch(res, str(md["name"]), patch, md.get("namespace"))
            return True  # the update brings us back here
        complete = await self._ensure_watched(policy)
        # Templates this policy claimed but no longer selects lose the claim (and may match another policy).
        for api_version, kind, obj in self._all_templates():
            if ((obj.get("metadata") or {}).get("labels") or {}).get(id_label) != pid:
                continue
            if not policy_matches(obj, policy):
                await self._unclaim(obj, str(pid), cluster_policy=cluster_policy)
            self.queue.add(_template_key(api_version, kind, key_of(obj)))
        # Everything it selects is looked at again: its own templates pick up the change,
        # unclaimed ones may now be claimed.
        for api_version, kind, obj in self._all_templates():
            if policy_matches(obj, policy):
                self.queue.add(_template_key(api_version, kind, key_of(obj)))
        if (policy.get("spec") or {}).get("preemption") == "Always":
            await self._preempt(policy, cluster_policy=cluster_policy)
        return complete

    async def _preempt(self, policy: Obj, *, cluster_policy: bool) -> None:
        """``preemption: Always``: take templates named by this policy from lower-priority policies.

        A PropagationPolicy beats any ClusterPropagationPolicy and any PropagationPolicy of a
        lower priority; a ClusterPropagationPolicy beats only lower-priority ones of its kind.
        """
        pmd = policy.get("metadata") or {}
        for selector in (policy.get("spec") or {}).get("resourceSelectors") or []:
            if not selector.get("name"):
                continue
            ns = selector.get("namespace") or ("" if cluster_policy else pmd.get("namespace") or "")
            key = f"{ns}/{selector['name']}" if ns else str(selector["name"])
            template = self._template(str(selector.get("apiVersion")), str(selector.get("kind")), key)
            if template is None or (template.get("metadata") or {}).get("deletionTimestamp"):
                continue
            claim = claimed_policy(template)
            if claim is None:
                continue
            which, claimed_key, _ = claim
            if cluster_policy:
                if which != "cpp" or claimed_key == pmd.get("name"):
                    continue
                other = self.cluster_policies.lister.get(claimed_key)
            else:
                if which == "pp" and claimed_key == f"{pmd.get('namespace')}/{pmd.get('name')}":
                    continue
                other = self.policies.lister.get(claimed_key) if which == "pp" else None
            if which == ("cpp" if cluster_policy else "pp") and (
                    other is None or explicit_priority(policy) <= explicit_priority(other)):
                continue
            own = f"cluster propagation policy({pmd.get('name')})" if cluster_policy else \
                f"propagation policy({pmd.get('namespace')}/{pmd.get('name')})"
            try:
                await self._claim(template, policy, cluster_policy=cluster_policy)
            except Exception as exc:
                await self.recorder.record(template, "Warning", "PreemptPolicyFailed",
                                           f"{own} failed to preempt {claimed_key}: {exc}")
                raise
            await self.recorder.record(template, "Normal", "PreemptPolicySucceed",
                                       f"{own} preempted {claimed_key} successfully")
