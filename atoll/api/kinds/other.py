"""The remaining built-in kinds: RBAC, CRDs, policy, events.k8s.io, coordination, discovery,
networking, scheduling, autoscaling and the review kinds."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

from atoll.api import meta, selectors
from atoll.api.kinds.apps import not_more_than_100_percent, validate_int_or_percent
from atoll.api.kinds.base import (
    Obj,
    PathSegmentNameStrategy,
    ReviewStrategy,
    Strategy,
    child,
    dict_at,
    list_at,
    set_default,
    set_default_str,
)
from atoll.api.meta import Cause, FieldPath

logger = logging.getLogger(__name__)

SPEC = FieldPath("spec")
RBAC_GROUP = "rbac.authorization.k8s.io"

# -- RBAC ----------------------------------------------------------------------------------------


def _validate_policy_rule(rule: Any, path: FieldPath, *, namespaced: bool) -> list[Cause]:
    rule = rule if isinstance(rule, Mapping) else {}
    causes: list[Cause] = []
    if not list_at(rule, "verbs"):
        causes.append(meta.required(path.child("verbs"), "verbs must contain at least one value"))
    urls = list_at(rule, "nonResourceURLs")
    if urls:
        urls_value = [str(u) for u in urls]
        if namespaced:
            causes.append(meta.invalid_value(path.child("nonResourceURLs"), urls_value,
                                             "namespaced rules cannot apply to non-resource URLs"))
        if list_at(rule, "apiGroups") or list_at(rule, "resources") or list_at(rule, "resourceNames"):
            causes.append(meta.invalid_value(path.child("nonResourceURLs"), urls_value,
                                             "rules cannot apply to both regular resources and non-resource URLs"))
        return causes
    if not list_at(rule, "apiGroups"):
        causes.append(meta.required(path.child("apiGroups"), "resource rules must supply at least one api group"))
    if not list_at(rule, "resources"):
        causes.append(meta.required(path.child("resources"), "resource rules must supply at least one resource"))
    return causes


class RoleStrategy(PathSegmentNameStrategy):
    def validate_spec(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        for i, rule in enumerate(list_at(obj, "rules")):
            causes += _validate_policy_rule(rule, FieldPath("rules").index(i), namespaced=self.namespaced)
        return causes


class ClusterRoleStrategy(RoleStrategy):
    def validate_spec(self, obj: Obj) -> list[Cause]:
        causes = super().validate_spec(obj)
        aggregation = obj.get("aggregationRule")
        if isinstance(aggregation, Mapping):
            path = FieldPath("aggregationRule").child("clusterRoleSelectors")
            chosen = list_at(aggregation, "clusterRoleSelectors")
            if not chosen:
                causes.append(meta.required(path, "at least one clusterRoleSelector required if aggregationRule is "
                                            "non-nil"))
            for i, sel in enumerate(chosen):
                causes += selectors.validate_label_selector(sel, path.index(i))
        return causes


def _role_ref_repr(ref: Mapping[str, Any]) -> meta.GoRepr:
    return meta.GoRepr(f"rbac.RoleRef{{APIGroup:{meta.go_quote(str(ref.get('apiGroup') or ''))}, "
                       f"Kind:{meta.go_quote(str(ref.get('kind') or ''))}, "
                       f"Name:{meta.go_quote(str(ref.get('name') or ''))}}}")


class RoleBindingStrategy(PathSegmentNameStrategy):
    ROLE_KINDS: tuple[str, ...] = ("Role", "ClusterRole")

    def default(self, obj: Obj) -> None:
        set_default_str(child(obj, "roleRef"), "apiGroup", RBAC_GROUP)
        for subject in list_at(obj, "subjects"):
            if isinstance(subject, dict) and not subject.get("apiGroup"):
                kind = subject.get("kind")
                if kind == "ServiceAccount":
                    subject["apiGroup"] = ""
                elif kind in ("User", "Group"):
                    subject["apiGroup"] = RBAC_GROUP

    def validate_spec(self, obj: Obj) -> list[Cause]:
        ref = dict_at(obj, "roleRef")
        path = FieldPath("roleRef")
        causes: list[Cause] = []
        if ref.get("apiGroup") != RBAC_GROUP:
            causes.append(meta.not_supported(path.child("apiGroup"), ref.get("apiGroup") or "", [RBAC_GROUP]))
        if ref.get("kind") not in self.ROLE_KINDS:
            causes.append(meta.not_supported(path.child("kind"), ref.get("kind") or "", self.ROLE_KINDS))
        name = ref.get("name") or ""
        if not name:
            causes.append(meta.required(path.child("name")))
        else:
            causes += [meta.invalid_value(path.child("name"), name, m)
                       for m in meta.validate_path_segment_name(str(name))]
        for i, subject in enumerate(list_at(obj, "subjects")):
            causes += self._validate_subject(subject, FieldPath("subjects").index(i))
        return causes

    def _validate_subject(self, subject: Any, path: FieldPath) -> list[Cause]:
        subject = subject if isinstance(subject, Mapping) else {}
        causes: list[Cause] = []
        name = subject.get("name") or ""
        if not name:
            causes.append(meta.required(path.child("name")))
        kind = subject.get("kind") or ""
        group = subject.get("apiGroup") or ""
        if kind == "ServiceAccount":
            if name:
                causes += [meta.invalid_value(path.child("name"), name, m) for m in meta.is_dns1123_subdomain(str(name))]
            if group:
                causes.append(meta.not_supported(path.child("apiGroup"), group, [""]))
            if not self.namespaced and not subject.get("namespace"):
                causes.append(meta.required(path.child("namespace")))
        elif kind in ("User", "Group"):
            if group != RBAC_GROUP:
                causes.append(meta.not_supported(path.child("apiGroup"), group, [RBAC_GROUP]))
        else:
            causes.append(meta.not_supported(path.child("kind"), kind, ["ServiceAccount", "User", "Group"]))
        return causes

    def validate_spec_update(self, new: Obj, old: Obj) -> list[Cause]:
        ref, old_ref = dict_at(new, "roleRef"), dict_at(old, "roleRef")
        if dict(ref) != dict(old_ref):
            return [meta.invalid_value("roleRef", _role_ref_repr(ref), "cannot change roleRef")]
        return []


class ClusterRoleBindingStrategy(RoleBindingStrategy):
    ROLE_KINDS = ("ClusterRole",)


# -- CustomResourceDefinition -------------------------------------------------------------------


def _storage_version(obj: Mapping[str, Any]) -> str | None:
    for version in list_at(dict_at(obj, "spec"), "versions"):
        if isinstance(version, Mapping) and version.get("storage") is True:
            return str(version.get("name") or "")
    return None


class CustomResourceDefinitionStrategy(Strategy):
    """CRDs: the name is ``<plural>.<group>``; the storage version is recorded in ``status.storedVersions``."""

    tracks_generation = True
    kube_finalizers = False  # kube validates CRD metadata with the generic rules (its cleanup finalizer is short)

    def default(self, obj: Obj) -> None:
        spec = child(obj, "spec")
        names = child(spec, "names")
        kind = names.get("kind")
        if isinstance(kind, str) and kind:
            set_default_str(names, "singular", kind.lower())
            set_default_str(names, "listKind", kind + "List")
        set_default(spec, "conversion", {"strategy": "None"})
        service = dict_at(dict_at(dict_at(spec, "conversion"), "webhook"), "clientConfig").get("service")
        if isinstance(service, dict):
            set_default(service, "port", 443)

    def initial_status(self, obj: Obj) -> Obj | None:
        status: Obj = {"acceptedNames": {"kind": "", "plural": ""}, "storedVersions": []}
        storage = _storage_version(obj)
        if storage:
            status["storedVersions"] = [storage]
        return status

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        storage = _storage_version(new)
        status = new.get("status")
        if storage and isinstance(status, dict):
            stored = list(list_at(status, "storedVersions"))
            if storage not in stored:
                stored.append(storage)
                status["storedVersions"] = stored

    def validate_name(self, obj: Mapping[str, Any]) -> list[Cause]:
        causes = super().validate_name(obj)
        spec = dict_at(obj, "spec")
        expected = f"{dict_at(spec, 'names').get('plural') or ''}.{spec.get('group') or ''}"
        name = dict_at(obj, "metadata").get("name") or ""
        if name and name != expected:
            causes.append(meta.invalid_value("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
        return causes

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = dict_at(obj, "spec")
        causes: list[Cause] = []
        group = spec.get("group") or ""
        if not group:
            causes.append(meta.required(SPEC.child("group")))
        else:
            causes += [meta.invalid_value(SPEC.child("group"), group, m) for m in meta.is_dns1123_subdomain(group)]
            if "." not in group:
                causes.append(meta.invalid_value(SPEC.child("group"), group, "should be a domain with at least one dot"))
        scope = spec.get("scope") or ""
        if not scope:
            causes.append(meta.required(SPEC.child("scope")))
        elif scope not in ("Cluster", "Namespaced"):
            causes.append(meta.not_supported(SPEC.child("scope"), scope, ["Cluster", "Namespaced"]))
        names = dict_at(spec, "names")
        npath = SPEC.child("names")
        for key in ("plural", "singular"):
            value = names.get(key) or ""
            if value:
                causes += [meta.invalid_value(npath.child(key), value, m) for m in meta.is_dns1035_label(str(value))]
            elif key == "plural":
                causes.append(meta.required(npath.child(key)))
        for key in ("kind", "listKind"):
            value = names.get(key) or ""
            if not value:
                causes.append(meta.required(npath.child(key)))
            else:
                causes += [meta.invalid_value(npath.child(key), value, "may have mixed case, but should otherwise "
                                              "match: " + m) for m in meta.is_dns1035_label(str(value).lower())]
        for i, short in enumerate(list_at(names, "shortNames")):
            causes += [meta.invalid_value(npath.child("shortNames").index(i), short, m)
                       for m in meta.is_dns1035_label(str(short))]
        versions = list_at(spec, "versions")
        vpath = SPEC.child("versions")
        if not versions:
            causes.append(meta.invalid_value(vpath, meta.GoRepr("[]apiextensions.CustomResourceDefinitionVersion(nil)"),
                                             "must have exactly one version marked as storage version"))
        seen: set[str] = set()
        storage = 0
        for i, version in enumerate(versions):
            version = version if isinstance(version, Mapping) else {}
            name = str(version.get("name") or "")
            vp = vpath.index(i)
            if not name:
                causes.append(meta.required(vp.child("name")))
            else:
                causes += [meta.invalid_value(vp.child("name"), name, m) for m in meta.is_dns1035_label(name)]
                if name in seen:
                    causes.append(meta.invalid_value(vp.child("name"), name, "must be unique"))
                seen.add(name)
            if version.get("storage") is True:
                storage += 1
            schema = dict_at(dict_at(version, "schema"), "openAPIV3Schema")
            if not schema:
                causes.append(meta.required(vp.child("schema", "openAPIV3Schema"), "schemas are required"))
        if versions and storage != 1:
            causes.append(meta.invalid_value(vpath, meta.GoRepr("[]apiextensions.CustomResourceDefinitionVersion{...}"),
                                             "must have exactly one version marked as storage version"))
        return causes

    def validate_spec_update(self, new: Obj, old: Obj) -> list[Cause]:
        spec, old_spec = dict_at(new, "spec"), dict_at(old, "spec")
        causes = meta.immutable(SPEC.child("group"), spec.get("group"), old_spec.get("group"))
        causes += meta.immutable(SPEC.child("scope"), spec.get("scope"), old_spec.get("scope"))
        return causes

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        storage = _storage_version(new)
        stored = list_at(dict_at(new, "status"), "storedVersions")
        if storage and storage not in stored:
            return [meta.invalid_value("status.storedVersions", [str(s) for s in stored],
                                       f"must have the storage version {storage}")]
        return []


# -- policy/v1 -----------------------------------------------------------------------------------


class PodDisruptionBudgetStrategy(Strategy):
    tracks_generation = True

    def initial_status(self, obj: Obj) -> Obj | None:
        return {"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0}

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = dict_at(obj, "spec")
        causes: list[Cause] = []
        min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
        if min_available is not None and max_unavailable is not None:
            causes.append(meta.invalid_value(SPEC, meta.GoRepr("policy.PodDisruptionBudgetSpec{...}"),
                                             "minAvailable and maxUnavailable cannot be both set"))
        for key, value in (("minAvailable", min_available), ("maxUnavailable", max_unavailable)):
            causes += validate_int_or_percent(value, SPEC.child(key))
            causes += not_more_than_100_percent(value, SPEC.child(key))
        causes += selectors.validate_label_selector(spec.get("selector"), SPEC.child("selector"))
        policy = spec.get("unhealthyPodEvictionPolicy")
        if policy is not None and policy not in ("AlwaysAllow", "IfHealthyBudget"):
            causes.append(meta.not_supported(SPEC.child("unhealthyPodEvictionPolicy"), policy,
                                             ["AlwaysAllow", "IfHealthyBudget"]))
        return causes

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        status = dict_at(new, "status")
        causes: list[Cause] = []
        for key in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"):
            causes += meta.non_negative(FieldPath("status").child(key), status.get(key))
        return causes


# -- events.k8s.io/v1 and the shared Event rules -------------------------------------------------

REPORTING_INSTANCE_LIMIT = 128
ACTION_LIMIT = 128
REASON_LIMIT = 128
NOTE_LIMIT = 1024


class EventsV1Strategy(Strategy):
    """events.k8s.io/v1 Events: the strict rules kube applies to the new Event API."""

    def validate_spec(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        namespace = dict_at(obj, "metadata").get("namespace") or ""
        regarding_ns = dict_at(obj, "regarding").get("namespace") or ""
        if not regarding_ns and namespace not in ("default", "kube-system"):
            causes.append(meta.invalid_value("involvedObject.namespace", regarding_ns, "does not match event.namespace"))
        controller = obj.get("reportingController") or ""
        if not controller:
            causes.append(meta.required("reportingController"))
        causes += [meta.invalid_value("reportingController", controller, m) for m in meta.is_qualified_name(controller)]
        for key, limit in (("reportingInstance", REPORTING_INSTANCE_LIMIT), ("action", ACTION_LIMIT),
                           ("reason", REASON_LIMIT)):
            value = str(obj.get(key) or "")
            if not value:
                causes.append(meta.required(key))
            elif len(value) > limit:
                causes.append(meta.invalid_value(key, "", f"can have at most {limit} characters"))
        if len(str(obj.get("note") or "")) > NOTE_LIMIT:
            causes.append(meta.invalid_value("message", "", f"can have at most {NOTE_LIMIT} characters"))
        if not obj.get("eventTime"):
            causes.append(meta.required("eventTime"))
        event_type = obj.get("type") or ""
        if event_type not in ("Normal", "Warning"):
            causes.append(meta.invalid_value("type", "", f"has invalid value: {event_type}"))
        for key in ("deprecatedFirstTimestamp", "deprecatedLastTimestamp", "deprecatedCount", "deprecatedSource"):
            if obj.get(key):
                causes.append(meta.invalid_value(key, "", "needs to be unset"))
        return causes


# -- coordination, discovery -------------------------------------------------------------------


class LeaseStrategy(Strategy):
    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = dict_at(obj, "spec")
        causes: list[Cause] = []
        duration = spec.get("leaseDurationSeconds")
        if isinstance(duration, int) and duration <= 0:
            causes.append(meta.invalid_value(SPEC.child("leaseDurationSeconds"), duration, "must be greater than 0"))
        causes += meta.non_negative(SPEC.child("leaseTransitions"), spec.get("leaseTransitions"))
        return causes


ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
MAX_SLICE_ENDPOINTS = 1000
MAX_SLICE_PORTS = 20000
MAX_ENDPOINT_ADDRESSES = 100


class EndpointSliceStrategy(Strategy):
    """EndpointSlices have no spec: any change outside metadata moves the generation."""

    tracks_generation = True

    def default(self, obj: Obj) -> None:
        for port in list_at(obj, "ports"):
            if isinstance(port, dict):
                set_default(port, "name", "")
                set_default(port, "protocol", "TCP")

    def validate_spec(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        address_type = obj.get("addressType") or ""
        if not address_type:
            causes.append(meta.required("addressType"))
        elif address_type not in ADDRESS_TYPES:
            causes.append(meta.not_supported("addressType", address_type, ADDRESS_TYPES))
        endpoints = list_at(obj, "endpoints")
        if len(endpoints) > MAX_SLICE_ENDPOINTS:
            causes.append(meta.too_many("endpoints", len(endpoints), MAX_SLICE_ENDPOINTS))
        for i, endpoint in enumerate(endpoints):
            ep = FieldPath("endpoints").index(i)
            endpoint = endpoint if isinstance(endpoint, Mapping) else {}
            addresses = list_at(endpoint, "addresses")
            ap = ep.child("addresses")
            if not addresses:
                causes.append(meta.required(ap, "must contain at least 1 address"))
            elif len(addresses) > MAX_ENDPOINT_ADDRESSES:
                causes.append(meta.too_many(ap, len(addresses), MAX_ENDPOINT_ADDRESSES))
            for j, address in enumerate(addresses):
                causes += _validate_slice_address(str(address), str(address_type), ap.index(j))
            hostname = endpoint.get("hostname")
            if hostname:
                causes += [meta.invalid_value(ep.child("hostname"), hostname, m)
                           for m in meta.is_dns1123_label(str(hostname))]
        for i, port in enumerate(list_at(obj, "ports")):
            pp = FieldPath("ports").index(i)
            port = port if isinstance(port, Mapping) else {}
            name = port.get("name") or ""
            if name:
                causes += [meta.invalid_value(pp.child("name"), name, m) for m in meta.is_dns1123_label(str(name))]
            protocol = port.get("protocol") or ""
            if protocol not in ("SCTP", "TCP", "UDP"):
                causes.append(meta.not_supported(pp.child("protocol"), protocol, ["SCTP", "TCP", "UDP"]))
            if port.get("port") is not None:
                causes += [meta.invalid_value(pp.child("port"), port["port"], m)
                           for m in meta.is_valid_port_num(port["port"])]
        return causes

    def validate_spec_update(self, new: Obj, old: Obj) -> list[Cause]:
        return meta.immutable("addressType", new.get("addressType"), old.get("addressType"))


def _validate_slice_address(address: str, address_type: str, path: FieldPath) -> list[Cause]:
    import ipaddress

    if address_type in ("IPv4", "IPv6"):
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            parsed = None
        want = 4 if address_type == "IPv4" else 6
        if parsed is None or parsed.version != want:
            return [meta.invalid_value(path, address, f"must be a valid {address_type} address")]
    elif address_type == "FQDN":
        return [meta.invalid_value(path, address, m) for m in meta.is_dns1123_subdomain(address.rstrip("."))]
    return []


# -- networking.k8s.io -----------------------------------------------------------------------------

PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")


def _validate_backend(backend: Any, path: FieldPath) -> list[Cause]:
    backend = backend if isinstance(backend, Mapping) else {}
    causes: list[Cause] = []
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        causes.append(meta.invalid_value(path, meta.GoRepr("networking.IngressBackend{...}"),
                                         "cannot set both resource and service backends"))
    elif service is None and resource is None:
        causes.append(meta.invalid_value(path, meta.GoRepr("networking.IngressBackend{...}"),
                                         "resource or service backend is required"))
    if isinstance(service, Mapping):
        name = service.get("name") or ""
        if not name:
            causes.append(meta.required(path.child("service", "name")))
        else:
            causes += [meta.invalid_value(path.child("service", "name"), name, m)
                       for m in meta.is_dns1035_label(str(name))]
        port = dict_at(service, "port")
        has_name, has_number = bool(port.get("name")), port.get("number") is not None
        pp = path.child("service", "port")
        if has_name and has_number:
            causes.append(meta.invalid_value(pp, meta.GoRepr("networking.ServiceBackendPort{...}"),
                                             "cannot set both port name & port number"))
        elif has_name:
            causes += [meta.invalid_value(pp.child("name"), port["name"], m)
                       for m in meta.is_valid_port_name(str(port["name"]))]
        elif has_number:
            causes += [meta.invalid_value(pp.child("number"), port["number"], m)
                       for m in meta.is_valid_port_num(port["number"])]
        else:
            causes.append(meta.required(pp, "port name or number is required"))
    return causes


class IngressStrategy(Strategy):
    tracks_generation = True

    def initial_status(self, obj: Obj) -> Obj | None:
        return {"loadBalancer": {}}

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = dict_at(obj, "spec")
        causes: list[Cause] = []
        rules = list_at(spec, "rules")
        if not rules and spec.get("defaultBackend") is None:
            causes.append(meta.invalid_value(SPEC, meta.GoRepr("networking.IngressSpec{...}"),
                                             "either `defaultBackend` or `rules` must be specified"))
        if spec.get("defaultBackend") is not None:
            causes += _validate_backend(spec["defaultBackend"], SPEC.child("defaultBackend"))
        class_name = spec.get("ingressClassName")
        if class_name:
            causes += [meta.invalid_value(SPEC.child("ingressClassName"), class_name, m)
                       for m in meta.is_dns1123_subdomain(str(class_name))]
        for i, rule in enumerate(rules):
            rp = SPEC.child("rules").index(i)
            rule = rule if isinstance(rule, Mapping) else {}
            host = str(rule.get("host") or "")
            if host:
                bare = host[2:] if host.startswith("*.") else host
                causes += [meta.invalid_value(rp.child("host"), host, m) for m in meta.is_dns1123_subdomain(bare)]
            http = rule.get("http")
            if http is None:
                continue
            paths = list_at(http, "paths") if isinstance(http, Mapping) else []
            hp = rp.child("http", "paths")
            if not paths:
                causes.append(meta.required(hp))
            for j, p in enumerate(paths):
                pp = hp.index(j)
                p = p if isinstance(p, Mapping) else {}
                path_type = p.get("pathType")
                if not path_type:
                    causes.append(meta.required(pp.child("pathType"), "pathType must be specified"))
                elif path_type not in PATH_TYPES:
                    causes.append(meta.not_supported(pp.child("pathType"), path_type, PATH_TYPES))
                elif path_type in ("Exact", "Prefix") and not str(p.get("path") or "").startswith("/"):
                    causes.append(meta.invalid_value(pp.child("path"), p.get("path") or "", "must be an absolute path"))
                causes += _validate_backend(p.get("backend"), pp.child("backend"))
        for i, tls in enumerate(list_at(spec, "tls")):
            for j, host in enumerate(list_at(tls, "hosts") if isinstance(tls, Mapping) else []):
                bare = str(host)[2:] if str(host).startswith("*.") else str(host)
                causes += [meta.invalid_value(SPEC.child("tls").index(i).child("hosts").index(j), host, m)
                           for m in meta.is_dns1123_subdomain(bare)]
        return causes


class IngressClassStrategy(Strategy):
    tracks_generation = True

    def validate_spec(self, obj: Obj) -> list[Cause]:
        controller = dict_at(obj, "spec").get("controller") or ""
        if not controller:
            return [meta.required(SPEC.child("controller"))]
        if len(controller) > 250:
            return [meta.too_long(SPEC.child("controller"), 250)]
        return []

    def validate_spec_update(self, new: Obj, old: Obj) -> list[Cause]:
        return meta.immutable(SPEC.child("controller"), dict_at(new, "spec").get("controller"),
                              dict_at(old, "spec").get("controller"))


class NetworkPolicyStrategy(Strategy):
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        spec = child(obj, "spec")
        if not list_at(spec, "policyTypes"):
            types = ["Ingress"]
            if list_at(spec, "egress"):
                types.append("Egress")
            spec["policyTypes"] = types
        for key in ("ingress", "egress"):
            for rule in list_at(spec, key):
                for port in list_at(rule, "ports") if isinstance(rule, Mapping) else []:
                    if isinstance(port, dict):
                        set_default_str(port, "protocol", "TCP")

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = dict_at(obj, "spec")
        causes = selectors.validate_label_selector(spec.get("podSelector") or {}, SPEC.child("podSelector"))
        types = list_at(spec, "policyTypes")
        for i, t in enumerate(types):
            if t not in ("Ingress", "Egress"):
                causes.append(meta.not_supported(SPEC.child("policyTypes").index(i), t, ["Ingress", "Egress"]))
        if len(types) > 2:
            causes.append(meta.invalid_value(SPEC.child("policyTypes"), [str(t) for t in types],
                                             "may not specify more than two policyTypes"))
        for key, peers in (("ingress", "from"), ("egress", "to")):
            for i, rule in enumerate(list_at(spec, key)):
                rp = SPEC.child(key).index(i)
                rule = rule if isinstance(rule, Mapping) else {}
                for j, peer in enumerate(list_at(rule, peers)):
                    peer = peer if isinstance(peer, Mapping) else {}
                    pp = rp.child(peers).index(j)
                    for sel_key in ("podSelector", "namespaceSelector"):
                        if peer.get(sel_key) is not None:
                            causes += selectors.validate_label_selector(peer[sel_key], pp.child(sel_key))
                for j, port in enumerate(list_at(rule, "ports")):
                    port = port if isinstance(port, Mapping) else {}
                    protocol = port.get("protocol")
                    if protocol is not None and protocol not in ("SCTP", "TCP", "UDP"):
                        causes.append(meta.not_supported(rp.child("ports").index(j).child("protocol"), protocol,
                                                         ["SCTP", "TCP", "UDP"]))
        return causes


# -- scheduling, autoscaling -----------------------------------------------------------------------

SYSTEM_PRIORITY_CLASSES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
HIGHEST_USER_PRIORITY = 1000000000


class PriorityClassStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        set_default_str(obj, "preemptionPolicy", "PreemptLowerPriority")

    def validate_spec(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        name = str(dict_at(obj, "metadata").get("name") or "")
        value = obj.get("value")
        if name in SYSTEM_PRIORITY_CLASSES:
            if value != SYSTEM_PRIORITY_CLASSES[name]:
                causes.append(meta.forbidden("value", f"value of {name} PriorityClass must be "
                                             f"{SYSTEM_PRIORITY_CLASSES[name]}"))
        elif name.startswith("system-"):
            causes.append(meta.invalid_value("metadata.name", name,
                                             "priority class names with 'system-' prefix are reserved"))
        elif isinstance(value, int) and value > HIGHEST_USER_PRIORITY:
            causes.append(meta.forbidden("value", f"maximum allowed value of a user defined priority is "
                                         f"{HIGHEST_USER_PRIORITY}"))
        policy = obj.get("preemptionPolicy")
        if policy is not None and policy not in ("Never", "PreemptLowerPriority"):
            causes.append(meta.not_supported("preemptionPolicy", policy, ["Never", "PreemptLowerPriority"]))
        return causes

    def validate_spec_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes: list[Cause] = []
        if new.get("value") != old.get("value"):
            causes.append(meta.forbidden("value", "may not be changed in an update."))
        causes += meta.immutable("preemptionPolicy", new.get("preemptionPolicy"), old.get("preemptionPolicy"))
        return causes


_SCALE_UP_DEFAULT: Obj = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                          "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                       {"type": "Percent", "value": 100, "periodSeconds": 15}]}
_SCALE_DOWN_DEFAULT: Obj = {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100,
                                                                 "periodSeconds": 15}]}


class HorizontalPodAutoscalerStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        spec = child(obj, "spec")
        set_default(spec, "minReplicas", 1)
        if not list_at(spec, "metrics"):
            spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": 80}}}]
        behavior = spec.get("behavior")
        if isinstance(behavior, dict):
            for key, defaults in (("scaleUp", _SCALE_UP_DEFAULT), ("scaleDown", _SCALE_DOWN_DEFAULT)):
                rules = behavior.get(key)
                merged = copy.deepcopy(defaults)
                if isinstance(rules, Mapping):
                    for field_name in ("stabilizationWindowSeconds", "selectPolicy", "policies"):
                        if rules.get(field_name) is not None:
                            merged[field_name] = copy.deepcopy(rules[field_name])
                behavior[key] = merged

    def initial_status(self, obj: Obj) -> Obj | None:
        return {"currentReplicas": 0, "desiredReplicas": 0}

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = dict_at(obj, "spec")
        causes: list[Cause] = []
        ref = dict_at(spec, "scaleTargetRef")
        rp = SPEC.child("scaleTargetRef")
        for key in ("kind", "name"):
            value = ref.get(key) or ""
            if not value:
                causes.append(meta.required(rp.child(key)))
            else:
                causes += [meta.invalid_value(rp.child(key), value, m)
                           for m in meta.validate_path_segment_name(str(value))]
        min_replicas, max_replicas = spec.get("minReplicas"), spec.get("maxReplicas")
        if isinstance(min_replicas, int) and min_replicas < 1:
            causes.append(meta.invalid_value(SPEC.child("minReplicas"), min_replicas,
                                             "must be greater than or equal to 1"))
        if not isinstance(max_replicas, int) or max_replicas < 1:
            causes.append(meta.invalid_value(SPEC.child("maxReplicas"), max_replicas, "must be greater than 0"))
        elif isinstance(min_replicas, int) and max_replicas < min_replicas:
            causes.append(meta.invalid_value(SPEC.child("maxReplicas"), max_replicas,
                                             "must be greater than or equal to `minReplicas`"))
        return causes


# -- reviews --------------------------------------------------------------------------------------


class SubjectAccessReviewStrategy(ReviewStrategy):
    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = dict_at(obj, "spec")
        causes: list[Cause] = []
        has_resource, has_non_resource = spec.get("resourceAttributes") is not None, \
            spec.get("nonResourceAttributes") is not None
        if has_resource == has_non_resource:
            causes.append(meta.invalid_value(SPEC.child("resourceAttributes"),
                                             meta.GoRepr("authorization.ResourceAttributes{...}"),
                                             "exactly one of nonResourceAttributes or resourceAttributes must be "
                                             "specified"))
        if self.info.kind in ("SubjectAccessReview", "LocalSubjectAccessReview") and not spec.get("user") \
                and not list_at(spec, "groups"):
            causes.append(meta.invalid_value(SPEC.child("user"), "", "at least one of user or group must be "
                                             "specified"))
        if self.info.kind == "LocalSubjectAccessReview" and has_resource:
            ns = dict_at(spec, "resourceAttributes").get("namespace") or ""
            if ns != (dict_at(obj, "metadata").get("namespace") or ""):
                causes.append(meta.invalid_value("spec.resourceAttributes.namespace", ns,
                                                 "must match metadata.namespace"))
        return causes


class TokenReviewStrategy(ReviewStrategy):
    pass


__all__ = [
    "ClusterRoleBindingStrategy",
    "ClusterRoleStrategy",
    "CustomResourceDefinitionStrategy",
    "EndpointSliceStrategy",
    "EventsV1Strategy",
    "HorizontalPodAutoscalerStrategy",
    "IngressClassStrategy",
    "IngressStrategy",
    "LeaseStrategy",
    "NetworkPolicyStrategy",
    "PodDisruptionBudgetStrategy",
    "PriorityClassStrategy",
    "RoleBindingStrategy",
    "RoleStrategy",
    "SubjectAccessReviewStrategy",
    "TokenReviewStrategy",
]
