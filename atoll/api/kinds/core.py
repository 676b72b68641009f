"""core/v1 kinds: Pod, PodTemplate, Service, Namespace, ConfigMap, Secret, Node, volumes, ..."""

from __future__ import annotations

import base64
import binascii
import copy
import logging
from collections.abc import Mapping
from typing import Any

from atoll.api import meta
from atoll.api.kinds import podspec
from atoll.api.kinds.base import (
    Obj,
    PathSegmentNameStrategy,
    Strategy,
    child,
    copy_key,
    dict_at,
    list_at,
    md_of,
    set_default,
    set_default_str,
)
from atoll.api.meta import Cause, FieldPath

logger = logging.getLogger(__name__)

SPEC = FieldPath("spec")
MAX_SECRET_SIZE = 1024 * 1024
"""ConfigMaps and Secrets hold at most 1 MiB of data (kube's ``MaxSecretSize``)."""
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
NAMESPACE_FINALIZER = "kubernetes"

# -- Pod ------------------------------------------------------------------------------------


class PodStrategy(Strategy):
    """Pods: spec mostly immutable, status only through ``/status``, QoS class computed on create."""

    status_update_keeps_metadata = ("ownerReferences",)

    def default(self, obj: Obj) -> None:
        podspec.default_pod(obj)

    def initial_status(self, obj: Obj) -> Obj | None:
        return {"phase": "Pending", "qosClass": podspec.pod_qos_class(obj)}

    def validate_spec(self, obj: Obj) -> list[Cause]:
        return podspec.validate_pod_spec(obj.get("spec"), SPEC)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return podspec.validate_pod_spec_update(dict_at(new, "spec"), dict_at(old, "spec"), SPEC)


class PodTemplateStrategy(Strategy):
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        podspec.default_pod_template(obj.get("template"))

    def validate_spec(self, obj: Obj) -> list[Cause]:
        return podspec.validate_pod_template(obj.get("template"), FieldPath("template"))


class BindingStrategy(Strategy):
    """``Binding`` (``POST pods/{name}/binding`` or ``bindings``): target a node by name."""

    def validate_spec(self, obj: Obj) -> list[Cause]:
        target = dict_at(obj, "target")
        causes: list[Cause] = []
        kind = target.get("kind") or ""
        if kind and kind != "Node":
            causes.append(meta.not_supported("target.kind", kind, ["Node", "<empty>"]))
        if not target.get("name"):
            causes.append(meta.required("target.name"))
        return causes


# -- Service --------------------------------------------------------------------------------

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
SESSION_AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
IP_FAMILY_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")
IP_FAMILIES = ("IPv4", "IPv6")


def _ip_family(ip: str) -> str:
    return "IPv6" if ":" in ip else "IPv4"


class ServiceStrategy(Strategy):
    """Services. Cluster IP and node port *allocation* is the server's; this keeps them stable.

    On create the IP family fields are filled (``ipFamilies: [IPv4]``, ``ipFamilyPolicy:
    SingleStack``; ``PreferDualStack`` for headless services without selector), and
    ``clusterIP``/``clusterIPs`` are kept in sync. An update that omits allocated values
    (``clusterIP``, ``clusterIPs``, node ports, health check port, IP families) inherits
    them from the old object, as kube's service REST does, so ``kubectl apply`` of a
    manifest without them works.
    """

    def name_rule(self, name: str, prefix: bool) -> list[str]:
        return meta.name_is_dns1035_label(name, prefix)

    def default(self, obj: Obj) -> None:
        spec = child(obj, "spec")
        set_default_str(spec, "sessionAffinity", "None")
        set_default_str(spec, "type", "ClusterIP")
        if spec.get("sessionAffinity") == "ClientIP":
            client_ip = child(child(spec, "sessionAffinityConfig"), "clientIP")
            set_default(client_ip, "timeoutSeconds", 10800)
        for port in list_at(spec, "ports"):
            if not isinstance(port, dict):
                continue
            set_default_str(port, "protocol", "TCP")
            if port.get("targetPort") in (None, 0, ""):
                port["targetPort"] = port.get("port")
        svc_type = spec.get("type")
        if svc_type in ("NodePort", "LoadBalancer"):
            set_default_str(spec, "externalTrafficPolicy", "Cluster")
        if svc_type != "ExternalName":
            set_default_str(spec, "internalTrafficPolicy", "Cluster")
        if svc_type == "LoadBalancer":
            set_default(spec, "allocateLoadBalancerNodePorts", True)

    def initial_status(self, obj: Obj) -> Obj | None:
        return {"loadBalancer": {}}

    @staticmethod
    def _sync_cluster_ips(spec: Obj) -> None:
        ips = spec.get("clusterIPs")
        if spec.get("clusterIP") and not ips:
            spec["clusterIPs"] = [spec["clusterIP"]]
        elif isinstance(ips, list) and ips and not spec.get("clusterIP"):
            spec["clusterIP"] = ips[0]

    @staticmethod
    def _fill_ip_families(spec: Obj) -> None:
        if spec.get("type") == "ExternalName":
            return
        headless = spec.get("clusterIP") == "None"
        if not spec.get("ipFamilyPolicy"):
            spec["ipFamilyPolicy"] = "PreferDualStack" if headless and not spec.get("selector") else "SingleStack"
        if not spec.get("ipFamilies"):
            ips = [ip for ip in list_at(spec, "clusterIPs") if isinstance(ip, str) and ip not in ("", "None")]
            spec["ipFamilies"] = [_ip_family(ip) for ip in ips] or ["IPv4"]

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        spec = child(obj, "spec")
        self._sync_cluster_ips(spec)
        self._fill_ip_families(spec)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        spec, old_spec = child(new, "spec"), dict_at(old, "spec")
        new_type, old_type = spec.get("type") or "ClusterIP", old_spec.get("type") or "ClusterIP"
        if new_type != "ExternalName" and old_type != "ExternalName":
            if not spec.get("clusterIP") and old_spec.get("clusterIP"):
                spec["clusterIP"] = old_spec["clusterIP"]
            if not spec.get("clusterIPs") and old_spec.get("clusterIPs"):
                spec["clusterIPs"] = copy.deepcopy(old_spec["clusterIPs"])
            for key in ("ipFamilies", "ipFamilyPolicy"):
                if not spec.get(key) and old_spec.get(key):
                    spec[key] = copy.deepcopy(old_spec[key])
        if new_type in ("NodePort", "LoadBalancer") and old_type in ("NodePort", "LoadBalancer"):
            old_ports = {str(p.get("name") or ""): p.get("nodePort") for p in list_at(old_spec, "ports")
                         if isinstance(p, Mapping)}
            used = {p.get("nodePort") for p in list_at(spec, "ports") if isinstance(p, Mapping) and p.get("nodePort")}
            for port in list_at(spec, "ports"):
                if isinstance(port, dict) and not port.get("nodePort"):
                    candidate = old_ports.get(str(port.get("name") or ""))
                    if candidate and candidate not in used:
                        port["nodePort"] = candidate
            if not spec.get("healthCheckNodePort") and old_spec.get("healthCheckNodePort") and \
                    spec.get("externalTrafficPolicy") == "Local":
                spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]
        self._sync_cluster_ips(spec)
        self._fill_ip_families(spec)

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = dict_at(obj, "spec")
        causes: list[Cause] = []
        svc_type = spec.get("type") or ""
        if svc_type not in SERVICE_TYPES:
            causes.append(meta.not_supported(SPEC.child("type"), svc_type, SERVICE_TYPES))
        affinity = spec.get("sessionAffinity") or ""
        if affinity not in SESSION_AFFINITIES:
            causes.append(meta.not_supported(SPEC.child("sessionAffinity"), affinity, SESSION_AFFINITIES))
        headless = spec.get("clusterIP") == "None"
        ports = list_at(spec, "ports")
        if not ports and not headless and svc_type != "ExternalName":
            causes.append(meta.required(SPEC.child("ports")))
        if svc_type == "ExternalName":
            name = spec.get("externalName") or ""
            if not name:
                causes.append(meta.required(SPEC.child("externalName")))
            else:
                causes += [meta.invalid_value(SPEC.child("externalName"), name, m)
                           for m in meta.is_dns1123_subdomain(str(name).rstrip("."))]
        causes += self._validate_cluster_ips(spec)
        causes += self._validate_ports(ports, svc_type=svc_type)
        causes += meta.validate_labels(spec.get("selector"), SPEC.child("selector"))
        for key in ("externalTrafficPolicy", "internalTrafficPolicy"):
            value = spec.get(key)
            if value and value not in TRAFFIC_POLICIES:
                causes.append(meta.not_supported(SPEC.child(key), value, TRAFFIC_POLICIES))
        if spec.get("externalTrafficPolicy") and svc_type not in ("NodePort", "LoadBalancer"):
            causes.append(meta.invalid_value(SPEC.child("externalTrafficPolicy"), spec["externalTrafficPolicy"],
                                             "may only be set when `type` is 'NodePort' or 'LoadBalancer'"))
        policy = spec.get("ipFamilyPolicy")
        if policy and policy not in IP_FAMILY_POLICIES:
            causes.append(meta.not_supported(SPEC.child("ipFamilyPolicy"), policy, IP_FAMILY_POLICIES))
        for i, family in enumerate(list_at(spec, "ipFamilies")):
            if family not in IP_FAMILIES:
                causes.append(meta.not_supported(SPEC.child("ipFamilies").index(i), family, IP_FAMILIES))
        return causes

    @staticmethod
    def _validate_cluster_ips(spec: Mapping[str, Any]) -> list[Cause]:
        causes: list[Cause] = []
        ips = list_at(spec, "clusterIPs")
        cluster_ip = spec.get("clusterIP") or ""
        if cluster_ip and ips and ips[0] != cluster_ip:
            causes.append(meta.invalid_value(SPEC.child("clusterIPs"), [str(ip) for ip in ips],
                                             "first value must match `clusterIP`"))
        for i, ip in enumerate(ips or ([cluster_ip] if cluster_ip else [])):
            path = SPEC.child("clusterIPs").index(i)
            if ip == "None":
                if i != 0 or len(ips) > 1:
                    causes.append(meta.invalid_value(path, ip, "'None' must be the first and only value"))
                continue
            if ip and not meta.is_valid_ip(str(ip)):
                causes.append(meta.invalid_value(path, ip, "must be a valid IP address, (e.g. 10.9.8.7 or "
                                                 "2001:db8::ffff)"))
        if spec.get("type") == "ExternalName" and (ips or cluster_ip):
            causes.append(meta.forbidden(SPEC.child("clusterIPs"), "may not be set for ExternalName services"))
        return causes

    @staticmethod
    def _validate_ports(ports: list[Any], *, svc_type: str) -> list[Cause]:
        causes: list[Cause] = []
        names: set[str] = set()
        combos: set[tuple[Any, Any]] = set()
        for i, port in enumerate(ports):
            p = SPEC.child("ports").index(i)
            if not isinstance(port, Mapping):
                causes.append(meta.invalid_value(p, port, "must be an object"))
                continue
            name = port.get("name") or ""
            if len(ports) > 1 and not name:
                causes.append(meta.required(p.child("name")))
            elif name:
                causes += [meta.invalid_value(p.child("name"), name, m) for m in meta.is_dns1123_label(str(name))]
                if name in names:
                    causes.append(meta.duplicate(p.child("name"), name))
                names.add(str(name))
            number = port.get("port")
            causes += [meta.invalid_value(p.child("port"), number, m) for m in meta.is_valid_port_num(number)]
            protocol = port.get("protocol") or ""
            if not protocol:
                causes.append(meta.required(p.child("protocol")))
            elif protocol not in podspec.PROTOCOLS:
                causes.append(meta.not_supported(p.child("protocol"), protocol, podspec.PROTOCOLS))
            target = port.get("targetPort")
            if isinstance(target, str):
                causes += [meta.invalid_value(p.child("targetPort"), target, m)
                           for m in meta.is_valid_port_name(target)]
            elif target is not None:
                causes += [meta.invalid_value(p.child("targetPort"), target, m)
                           for m in meta.is_valid_port_num(target)]
            node_port = port.get("nodePort")
            if node_port:
                if svc_type == "ClusterIP":
                    causes.append(meta.forbidden(p.child("nodePort"), "may not be used when `type` is 'ClusterIP'"))
                causes += [meta.invalid_value(p.child("nodePort"), node_port, m)
                           for m in meta.is_valid_port_num(node_port)]
            combo = (number, protocol)
            if combo in combos:
                causes.append(meta.duplicate(p, meta.GoRepr(f"core.ServicePort{{Name:{meta.go_quote(str(name))}, "
                                                             f"Protocol:{meta.go_quote(str(protocol))}, "
                                                             f"Port:{number}}}")))
            combos.add(combo)
        return causes

    def validate_spec_update(self, new: Obj, old: Obj) -> list[Cause]:
        spec, old_spec = dict_at(new, "spec"), dict_at(old, "spec")
        if "ExternalName" in (spec.get("type"), old_spec.get("type")):
            return []
        causes: list[Cause] = []
        old_ips, new_ips = list_at(old_spec, "clusterIPs"), list_at(spec, "clusterIPs")
        if old_ips and (not new_ips or new_ips[0] != old_ips[0]):
            causes.append(meta.invalid_value(SPEC.child("clusterIPs").index(0), new_ips[0] if new_ips else "",
                                             "may not change once set"))
        old_fams, new_fams = list_at(old_spec, "ipFamilies"), list_at(spec, "ipFamilies")
        if old_fams and new_fams and old_fams[0] != new_fams[0]:
            causes.append(meta.invalid_value(SPEC.child("ipFamilies").index(0), new_fams[0],
                                             "may not change once set"))
        return causes


class EndpointsStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        for subset in list_at(obj, "subsets"):
            if isinstance(subset, dict):
                for port in list_at(subset, "ports"):
                    if isinstance(port, dict):
                        set_default_str(port, "protocol", "TCP")

    def validate_spec(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        for i, subset in enumerate(list_at(obj, "subsets")):
            sp = FieldPath("subsets").index(i)
            if not isinstance(subset, Mapping):
                continue
            for key in ("addresses", "notReadyAddresses"):
                for j, addr in enumerate(list_at(subset, key)):
                    ip = (addr.get("ip") if isinstance(addr, Mapping) else "") or ""
                    if not ip:
                        causes.append(meta.required(sp.child(key).index(j).child("ip")))
                    elif not meta.is_valid_ip(str(ip)):
                        causes.append(meta.invalid_value(sp.child(key).index(j).child("ip"), ip,
                                                         "must be a valid IP address"))
            ports = list_at(subset, "ports")
            for j, port in enumerate(ports):
                pp = sp.child("ports").index(j)
                port = port if isinstance(port, Mapping) else {}
                if len(ports) > 1 and not port.get("name"):
                    causes.append(meta.required(pp.child("name")))
                causes += [meta.invalid_value(pp.child("port"), port.get("port"), m)
                           for m in meta.is_valid_port_num(port.get("port"))]
                protocol = port.get("protocol") or ""
                if protocol not in podspec.PROTOCOLS:
                    causes.append(meta.not_supported(pp.child("protocol"), protocol, podspec.PROTOCOLS))
        return causes


# -- Namespace ------------------------------------------------------------------------------


class NamespaceStrategy(Strategy):
    """Namespaces: ``kubernetes`` spec finalizer on create, the name label always, phase rules.

    ``spec.finalizers`` only change through ``/finalize`` (:meth:`prepare_for_finalize_update`).
    """

    def name_rule(self, name: str, prefix: bool) -> list[str]:
        return meta.name_is_dns_label(name, prefix)

    @staticmethod
    def _name_label(obj: Obj) -> None:
        name = md_of(obj).get("name")
        if name:
            labels = md_of(obj).get("labels")
            if not isinstance(labels, dict):
                labels = {}
                md_of(obj)["labels"] = labels
            labels[NAMESPACE_NAME_LABEL] = name

    def default(self, obj: Obj) -> None:
        self._name_label(obj)
        status = obj.get("status")
        if isinstance(status, dict):
            set_default_str(status, "phase", "Active")

    def initial_status(self, obj: Obj) -> Obj | None:
        return {"phase": "Active"}

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        spec = child(obj, "spec")
        finalizers = [f for f in list_at(spec, "finalizers")]
        if NAMESPACE_FINALIZER not in finalizers:
            finalizers.append(NAMESPACE_FINALIZER)
        spec["finalizers"] = finalizers
        self._name_label(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        spec = child(new, "spec")
        copy_key(spec, dict_at(old, "spec"), "finalizers")
        self._name_label(new)

    def prepare_for_finalize_update(self, new: Obj, old: Obj) -> None:
        """``PUT namespaces/{name}/finalize``: only ``spec.finalizers`` (and metadata) change."""
        copy_key(new, old, "status")
        self._name_label(new)

    def validate_spec(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        for i, f in enumerate(list_at(dict_at(obj, "spec"), "finalizers")):
            causes += meta.validate_finalizer_name(str(f), SPEC.child("finalizers").index(i), kube=True)
        return causes

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        phase = dict_at(new, "status").get("phase") or ""
        if not dict_at(new, "metadata").get("deletionTimestamp"):
            if phase != "Active":
                return [meta.invalid_value("status.Phase", phase, "may only be 'Active' if `deletionTimestamp` is "
                                           "empty")]
        elif phase != "Terminating":
            return [meta.invalid_value("status.Phase", phase, "may only be 'Terminating' if `deletionTimestamp` is "
                                       "not empty")]
        return []


# -- ConfigMap and Secret ---------------------------------------------------------------------


def _validate_keys(data: Any, path: FieldPath) -> list[Cause]:
    causes: list[Cause] = []
    if isinstance(data, Mapping):
        for key in data:
            causes += [meta.invalid_value(path.key(str(key)), str(key), m) for m in meta.is_config_map_key(str(key))]
    return causes


def _decoded_size(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return None


def _immutable_data(new: Obj, old: Obj, keys: tuple[str, ...]) -> list[Cause]:
    if old.get("immutable") is not True:
        return []
    causes: list[Cause] = []
    if new.get("immutable") is not True:
        causes.append(meta.forbidden("immutable", "field is immutable when `immutable` is set"))
    for key in keys:
        if (new.get(key) or {}) != (old.get(key) or {}):
            causes.append(meta.forbidden(key, "field is immutable when `immutable` is set"))
    return causes


class ConfigMapStrategy(Strategy):
    def validate_spec(self, obj: Obj) -> list[Cause]:
        data, binary = dict_at(obj, "data"), dict_at(obj, "binaryData")
        causes = _validate_keys(data, FieldPath("data"))
        total = 0
        for key, value in data.items():
            if key in binary:
                causes.append(meta.invalid_value(FieldPath("data").key(str(key)), str(key),
                                                 "duplicate of key present in binaryData"))
            if not isinstance(value, str):
                causes.append(meta.invalid_value(FieldPath("data").key(str(key)), value, "must be a string"))
                continue
            total += len(value.encode())
        causes += _validate_keys(binary, FieldPath("binaryData"))
        for key, value in binary.items():
            size = _decoded_size(value)
            if size is None:
                causes.append(meta.invalid_value(FieldPath("binaryData").key(str(key)), "<binary>",
                                                 "must be base64-encoded data"))
                continue
            total += size
        if total > MAX_SECRET_SIZE:
            causes.append(meta.too_long("", MAX_SECRET_SIZE))
        return causes

    def validate_spec_update(self, new: Obj, old: Obj) -> list[Cause]:
        return _immutable_data(new, old, ("data", "binaryData"))


SECRET_TYPE_REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


class SecretStrategy(Strategy):
    """Secrets: ``type`` defaults to ``Opaque``; ``stringData`` is folded into ``data``."""

    def default(self, obj: Obj) -> None:
        set_default_str(obj, "type", "Opaque")

    @staticmethod
    def _fold_string_data(obj: Obj) -> None:
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, Mapping) and string_data:
            data = child(obj, "data")
            for key, value in string_data.items():
                data[str(key)] = base64.b64encode(str(value).encode()).decode()

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        self._fold_string_data(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        self._fold_string_data(new)

    def validate_spec(self, obj: Obj) -> list[Cause]:
        data = dict_at(obj, "data")
        causes = _validate_keys(data, FieldPath("data"))
        total = 0
        for key, value in data.items():
            size = _decoded_size(value)
            if size is None:
                causes.append(meta.invalid_value(FieldPath("data").key(str(key)), "<secret contents redacted>",
                                                 "must be base64-encoded data"))
                continue
            total += size
        secret_type = obj.get("type") or "Opaque"
        for key in SECRET_TYPE_REQUIRED_KEYS.get(str(secret_type), ()):
            if key not in data:
                causes.append(meta.required(FieldPath("data").key(key)))
        if secret_type == "kubernetes.io/basic-auth" and "username" not in data and "password" not in data:
            causes += [meta.required(FieldPath("data").key("username")),
                       meta.required(FieldPath("data").key("password"))]
        if secret_type == "kubernetes.io/service-account-token":
            annotations = dict_at(dict_at(obj, "metadata"), "annotations")
            if not annotations.get("kubernetes.io/service-account.name"):
                causes.append(meta.required(FieldPath("metadata", ).child("annotations")
                                            .key("kubernetes.io/service-account.name")))
        if total > MAX_SECRET_SIZE:
            causes.append(meta.too_long("data", MAX_SECRET_SIZE))
        return causes

    def validate_spec_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = meta.immutable("type", new.get("type") or "Opaque", old.get("type") or "Opaque")
        return causes + _immutable_data(new, old, ("data",))


class EventStrategy(PathSegmentNameStrategy):
    """core/v1 Events: kube's legacy Event rules (namespaces must agree; new-style events need
    their reporting fields)."""

    def validate_spec(self, obj: Obj) -> list[Cause]:
        namespace = dict_at(obj, "metadata").get("namespace") or ""
        involved = dict_at(obj, "involvedObject").get("namespace") or ""
        mismatch = [meta.invalid_value("involvedObject.namespace", involved, "does not match event.namespace")]
        if not obj.get("eventTime"):
            if not involved:
                return mismatch if namespace not in ("", "default") else []
            return mismatch if namespace != involved else []
        causes: list[Cause] = []
        if not involved and namespace not in ("default", "kube-system"):
            causes += mismatch
        controller = str(obj.get("reportingComponent") or "")
        if not controller:
            causes.append(meta.required("reportingComponent"))
        causes += [meta.invalid_value("reportingComponent", controller, m) for m in meta.is_qualified_name(controller)]
        for key, limit in (("reportingInstance", 128), ("action", 128), ("reason", 128)):
            value = str(obj.get(key) or "")
            if not value:
                causes.append(meta.required(key))
            elif len(value) > limit:
                causes.append(meta.invalid_value(key, "", f"can have at most {limit} characters"))
        if len(str(obj.get("message") or "")) > 1024:
            causes.append(meta.invalid_value("message", "", "can have at most 1024 characters"))
        return causes


# -- Node and volumes -------------------------------------------------------------------------


class NodeStrategy(Strategy):
    """Nodes register with their status (kubelets create them), so create keeps it."""

    def default(self, obj: Obj) -> None:
        status = obj.get("status")
        if isinstance(status, dict) and status.get("allocatable") is None and isinstance(status.get("capacity"),
                                                                                        Mapping):
            status["allocatable"] = copy.deepcopy(status["capacity"])

    def prepare_for_create(self, obj: Obj) -> None:
        status = obj.get("status")
        if isinstance(status, dict):
            status.pop("config", None)
        child(obj, "spec").pop("configSource", None)

    def validate_spec(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        for i, taint in enumerate(list_at(dict_at(obj, "spec"), "taints")):
            tp = SPEC.child("taints").index(i)
            taint = taint if isinstance(taint, Mapping) else {}
            causes += meta.validate_label_name(str(taint.get("key") or ""), tp.child("key"))
            if taint.get("value"):
                causes += [meta.invalid_value(tp.child("value"), taint["value"], m)
                           for m in meta.is_valid_label_value(str(taint["value"]))]
            effect = taint.get("effect") or ""
            if not effect:
                causes.append(meta.required(tp.child("effect")))
            elif effect not in podspec.TAINT_EFFECTS:
                causes.append(meta.not_supported(tp.child("effect"), effect, podspec.TAINT_EFFECTS))
        return causes

    def validate_spec_update(self, new: Obj, old: Obj) -> list[Cause]:
        old_cidrs = list_at(dict_at(old, "spec"), "podCIDRs")
        new_cidrs = list_at(dict_at(new, "spec"), "podCIDRs")
        if old_cidrs and new_cidrs != old_cidrs:
            return [meta.forbidden(SPEC.child("podCIDRs"), "node updates may not change podCIDR except from \"\" to "
                                   "valid")]
        return []


ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
PV_SOURCES = (*podspec.VOLUME_SOURCES, "local")


class PersistentVolumeStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        spec = child(obj, "spec")
        set_default_str(spec, "persistentVolumeReclaimPolicy", "Retain")
        set_default_str(spec, "volumeMode", "Filesystem")
        status = obj.get("status")
        if isinstance(status, dict):
            set_default_str(status, "phase", "Pending")

    def initial_status(self, obj: Obj) -> Obj | None:
        return {"phase": "Pending"}

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = dict_at(obj, "spec")
        causes: list[Cause] = []
        if not list_at(spec, "accessModes"):
            causes.append(meta.required(SPEC.child("accessModes")))
        for mode in list_at(spec, "accessModes"):
            if mode not in ACCESS_MODES:
                causes.append(meta.not_supported(SPEC.child("accessModes"), mode, ACCESS_MODES))
        capacity = dict_at(spec, "capacity")
        if not capacity:
            causes.append(meta.required(SPEC.child("capacity")))
        elif "storage" not in capacity or len(capacity) > 1:
            causes.append(meta.not_supported(SPEC.child("capacity"), meta.GoRepr("core.ResourceList{...}"),
                                             ["storage"]))
        policy = spec.get("persistentVolumeReclaimPolicy") or ""
        if policy not in ("Delete", "Recycle", "Retain"):
            causes.append(meta.not_supported(SPEC.child("persistentVolumeReclaimPolicy"), policy,
                                             ["Delete", "Recycle", "Retain"]))
        sources = [k for k in PV_SOURCES if spec.get(k) is not None]
        if not sources:
            causes.append(meta.required(SPEC, "must specify a volume type"))
        return causes


class PersistentVolumeClaimStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        set_default_str(child(obj, "spec"), "volumeMode", "Filesystem")
        status = obj.get("status")
        if isinstance(status, dict):
            set_default_str(status, "phase", "Pending")

    def initial_status(self, obj: Obj) -> Obj | None:
        return {"phase": "Pending"}

    def validate_spec(self, obj: Obj) -> list[Cause]:
        return validate_pvc_spec(dict_at(obj, "spec"), SPEC)

    def validate_spec_update(self, new: Obj, old: Obj) -> list[Cause]:
        spec, old_spec = dict_at(new, "spec"), dict_at(old, "spec")

        def frozen(s: Mapping[str, Any], *, volume_name_free: bool) -> dict[str, Any]:
            out = copy.deepcopy(dict(s))
            out.pop("volumeAttributesClassName", None)
            resources = dict(dict_at(out, "resources"))
            resources.pop("requests", None)
            out["resources"] = resources
            if volume_name_free:
                out.pop("volumeName", None)
            return out

        free = not old_spec.get("volumeName")
        causes: list[Cause] = []
        if frozen(spec, volume_name_free=free) != frozen(old_spec, volume_name_free=free):
            causes.append(meta.forbidden(SPEC, "spec is immutable after creation except resources.requests and "
                                         "volumeAttributesClassName for bound claims"))
        new_storage = dict_at(dict_at(spec, "resources"), "requests").get("storage")
        old_storage = dict_at(dict_at(old_spec, "resources"), "requests").get("storage")
        try:
            if new_storage is not None and old_storage is not None and \
                    meta.parse_quantity(new_storage) < meta.parse_quantity(old_storage):
                causes.append(meta.forbidden(SPEC.child("resources", "requests", "storage"),
                                             "field can not be less than previous value"))
        except ValueError:
            pass
        return causes


def validate_pvc_spec(spec: Mapping[str, Any], path: FieldPath) -> list[Cause]:
    causes: list[Cause] = []
    modes = list_at(spec, "accessModes")
    if not modes:
        causes.append(meta.required(path.child("accessModes"), "at least 1 access mode is required"))
    for mode in modes:
        if mode not in ACCESS_MODES:
            causes.append(meta.not_supported(path.child("accessModes"), mode, ACCESS_MODES))
    requests = dict_at(dict_at(spec, "resources"), "requests")
    if "storage" not in requests:
        causes.append(meta.required(path.child("resources").key("storage")))
    else:
        try:
            if meta.parse_quantity(requests["storage"]) <= 0:
                causes.append(meta.invalid_value(path.child("resources").key("storage"), str(requests["storage"]),
                                                 "must be greater than zero"))
        except ValueError:
            causes.append(meta.invalid_value(path.child("resources").key("storage"), requests["storage"],
                                             meta.QUANTITY_REGEX_MESSAGE))
    mode = spec.get("volumeMode")
    if mode and mode not in ("Block", "Filesystem"):
        causes.append(meta.not_supported(path.child("volumeMode"), mode, ["Block", "Filesystem"]))
    return causes


def _validate_resource_list(values: Any, path: FieldPath) -> list[Cause]:
    causes: list[Cause] = []
    if isinstance(values, Mapping):
        for name, value in values.items():
            try:
                if meta.parse_quantity(value) < 0:
                    causes.append(meta.invalid_value(path.key(str(name)), str(value), meta.IS_NEGATIVE))
            except ValueError:
                causes.append(meta.invalid_value(path.key(str(name)), value, meta.QUANTITY_REGEX_MESSAGE))
    return causes


class ResourceQuotaStrategy(Strategy):
    def validate_spec(self, obj: Obj) -> list[Cause]:
        return _validate_resource_list(dict_at(obj, "spec").get("hard"), SPEC.child("hard"))


class LimitRangeStrategy(Strategy):
    LIMIT_TYPES = ("Container", "Pod", "PersistentVolumeClaim")

    def validate_spec(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        for i, limit in enumerate(list_at(dict_at(obj, "spec"), "limits")):
            lp = SPEC.child("limits").index(i)
            limit = limit if isinstance(limit, Mapping) else {}
            kind = limit.get("type") or ""
            if kind not in self.LIMIT_TYPES:
                causes.append(meta.not_supported(lp.child("type"), kind, self.LIMIT_TYPES))
            for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
                causes += _validate_resource_list(limit.get(key), lp.child(key))
        return causes


class ServiceAccountStrategy(Strategy):
    pass


__all__ = [
    "MAX_SECRET_SIZE",
    "NAMESPACE_FINALIZER",
    "NAMESPACE_NAME_LABEL",
    "BindingStrategy",
    "ConfigMapStrategy",
    "EndpointsStrategy",
    "EventStrategy",
    "LimitRangeStrategy",
    "NamespaceStrategy",
    "NodeStrategy",
    "PersistentVolumeClaimStrategy",
    "PersistentVolumeStrategy",
    "PodStrategy",
    "PodTemplateStrategy",
    "ResourceQuotaStrategy",
    "SecretStrategy",
    "ServiceAccountStrategy",
    "ServiceStrategy",
    "validate_pvc_spec",
]
