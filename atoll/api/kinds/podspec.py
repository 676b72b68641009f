"""Pod specs, wherever they appear: Pods, PodTemplates and the templates inside workloads.

Defaulting follows ``pkg/apis/core/v1/defaults.go`` (``SetDefaults_PodSpec``,
``SetDefaults_Container``, probes, volumes, ports); the Pod-only defaults
(``SetDefaults_Pod``: ``enableServiceLinks``, requests copied from limits) are applied by
:func:`default_pod` only. Validation follows the parts of
``pkg/apis/core/validation`` that matter to clients and controllers: containers, names,
images, ports, env, volumes and mounts, resources, policies, tolerations.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from atoll.api import meta
from atoll.api.kinds.base import Obj, child, dict_at, list_at, set_default, set_default_str
from atoll.api.meta import Cause, FieldPath

logger = logging.getLogger(__name__)

MAX_INT32 = 2**31 - 1
RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
PROTOCOLS = ("SCTP", "TCP", "UDP")
TOLERATION_OPERATORS = ("Equal", "Exists")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
QOS_RESOURCES = ("cpu", "memory")

VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs", "iscsi",
    "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "downwardAPI", "fc",
    "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "projected",
    "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image",
)

# -- defaulting -----------------------------------------------------------------------------


def image_pull_policy(image: str) -> str:
    """``Always`` when the tag is ``latest`` (or no tag and no digest), else ``IfNotPresent``."""
    if not image:
        return "IfNotPresent"  # kube ignores the parse error here; validation reports the image
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else ("" if digest else "latest")
    return "Always" if tag == "latest" else "IfNotPresent"


def _default_http_get(action: Any) -> None:
    if isinstance(action, dict):
        set_default_str(action, "path", "/")
        set_default_str(action, "scheme", "HTTP")


def _default_handler(handler: Any) -> None:
    if isinstance(handler, dict):
        _default_http_get(handler.get("httpGet"))


def default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                       ("failureThreshold", 3)):
        if not probe.get(key):
            probe[key] = value
    _default_handler(probe)


def _default_field_ref(ref: Any) -> None:
    if isinstance(ref, dict):
        set_default_str(ref, "apiVersion", "v1")


def default_container(container: Obj) -> None:
    """``SetDefaults_Container`` and what it contains (ports, env, probes, lifecycle)."""
    if not container.get("imagePullPolicy"):
        image = container.get("image")
        container["imagePullPolicy"] = image_pull_policy(image if isinstance(image, str) else "")
    set_default_str(container, "terminationMessagePath", "/dev/termination-log")
    set_default_str(container, "terminationMessagePolicy", "File")
    set_default(container, "resources", {})
    for port in list_at(container, "ports"):
        if isinstance(port, dict):
            set_default_str(port, "protocol", "TCP")
    for env in list_at(container, "env"):
        if isinstance(env, dict):
            _default_field_ref(dict_at(env, "valueFrom").get("fieldRef"))
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        default_probe(container.get(key))
    lifecycle = container.get("lifecycle")
    if isinstance(lifecycle, dict):
        _default_handler(lifecycle.get("postStart"))
        _default_handler(lifecycle.get("preStop"))


def default_volume(volume: Obj) -> None:
    """``SetDefaults_Volume`` plus the per-source defaults (modes 0644, hostPath type, ...)."""
    if not any(volume.get(k) is not None for k in VOLUME_SOURCES):
        volume["emptyDir"] = {}
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        src = volume.get(key)
        if isinstance(src, dict):
            set_default(src, "defaultMode", 0o644)
            if key == "downwardAPI":
                for item in list_at(src, "items"):
                    if isinstance(item, dict):
                        _default_field_ref(item.get("fieldRef"))
            if key == "projected":
                for source in list_at(src, "sources"):
                    if not isinstance(source, dict):
                        continue
                    token = source.get("serviceAccountToken")
                    if isinstance(token, dict):
                        set_default(token, "expirationSeconds", 3600)
                    for item in list_at(dict_at(source, "downwardAPI"), "items"):
                        if isinstance(item, dict):
                            _default_field_ref(item.get("fieldRef"))
    host_path = volume.get("hostPath")
    if isinstance(host_path, dict):
        set_default(host_path, "type", "")
    iscsi = volume.get("iscsi")
    if isinstance(iscsi, dict):
        set_default_str(iscsi, "iscsiInterface", "default")


def default_pod_spec(spec: Obj) -> None:
    """``SetDefaults_PodSpec`` (Pods and pod templates alike)."""
    set_default_str(spec, "dnsPolicy", "ClusterFirst")
    set_default_str(spec, "restartPolicy", "Always")
    set_default(spec, "securityContext", {})
    set_default(spec, "terminationGracePeriodSeconds", 30)
    set_default_str(spec, "schedulerName", "default-scheduler")
    # v1's deprecated serviceAccount mirrors serviceAccountName (conversion keeps them equal).
    if not spec.get("serviceAccountName") and spec.get("serviceAccount"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    if spec.get("serviceAccountName"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in list_at(spec, key):
            if isinstance(container, dict):
                default_container(container)
                if spec.get("hostNetwork") is True:
                    for port in list_at(container, "ports"):
                        if isinstance(port, dict) and not port.get("hostPort") and port.get("containerPort"):
                            port["hostPort"] = port["containerPort"]
    for volume in list_at(spec, "volumes"):
        if isinstance(volume, dict):
            default_volume(volume)


def default_pod_template(template: Any) -> None:
    """Defaults of a ``PodTemplateSpec`` (as in Deployments, Jobs, PodTemplates)."""
    if isinstance(template, dict):
        default_pod_spec(child(template, "spec"))


def default_pod(pod: Obj) -> None:
    """``SetDefaults_Pod`` + ``SetDefaults_PodSpec``: a real Pod also gets service links and requests."""
    spec = child(pod, "spec")
    for key in ("initContainers", "containers"):
        for container in list_at(spec, key):
            if not isinstance(container, dict):
                continue
            resources = container.get("resources")
            limits = dict_at(resources, "limits") if isinstance(resources, Mapping) else {}
            if limits and isinstance(resources, dict):
                requests = child(resources, "requests")
                for name, value in limits.items():
                    requests.setdefault(name, copy.deepcopy(value))
    set_default(spec, "enableServiceLinks", True)
    default_pod_spec(spec)


# -- QoS --------------------------------------------------------------------------------------


def _quantity(value: Any) -> Fraction | None:
    try:
        return meta.parse_quantity(value)
    except ValueError:
        return None


def pod_qos_class(pod: Mapping[str, Any]) -> str:
    """``Guaranteed``, ``Burstable`` or ``BestEffort`` (kube's ``GetPodQOS``, cpu and memory only)."""
    spec = dict_at(pod, "spec")
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for key in ("initContainers", "containers"):
        for container in list_at(spec, key):
            if not isinstance(container, Mapping):
                continue
            resources = dict_at(container, "resources")
            c_limits = dict_at(resources, "limits")
            c_requests = dict(dict_at(resources, "requests"))
            for name, value in c_limits.items():
                c_requests.setdefault(name, value)  # the Pod default: requests from limits
            for name, value in c_requests.items():
                q = _quantity(value)
                if name in QOS_RESOURCES and q is not None and q > 0:
                    requests[name] = requests.get(name, Fraction(0)) + q
            found: set[str] = set()
            for name, value in c_limits.items():
                q = _quantity(value)
                if name in QOS_RESOURCES and q is not None and q > 0:
                    found.add(name)
                    limits[name] = limits.get(name, Fraction(0)) + q
            if not set(QOS_RESOURCES) <= found:
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed:
        for name, req in requests.items():
            if limits.get(name) != req:
                guaranteed = False
                break
    if guaranteed and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


# -- validation -------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def validate_resources(resources: Any, path: FieldPath) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(resources, Mapping):
        return causes
    limits_path, requests_path = path.child("limits"), path.child("requests")
    limits: dict[str, Fraction] = {}
    for name, value in dict_at(resources, "limits").items():
        q = _quantity(value)
        if q is None:
            causes.append(meta.invalid_value(limits_path.key(str(name)), value, meta.QUANTITY_REGEX_MESSAGE))
            continue
        if q < 0:
            causes.append(meta.invalid_value(limits_path.key(str(name)), value, meta.IS_NEGATIVE))
        limits[str(name)] = q
    for name, value in dict_at(resources, "requests").items():
        q = _quantity(value)
        if q is None:
            causes.append(meta.invalid_value(requests_path.key(str(name)), value, meta.QUANTITY_REGEX_MESSAGE))
            continue
        if q < 0:
            causes.append(meta.invalid_value(requests_path.key(str(name)), value, meta.IS_NEGATIVE))
        limit = limits.get(str(name))
        if limit is None:
            continue
        limit_text = str(dict_at(resources, "limits")[name])
        native = "/" not in str(name) or str(name).startswith("kubernetes.io/")
        overcommit = native and not str(name).startswith("hugepages-")
        if not overcommit and q != limit:
            causes.append(meta.invalid_value(requests_path, str(value), f"must be equal to {name} limit of "
                                             f"{limit_text}"))
        elif q > limit:
            causes.append(meta.invalid_value(requests_path, str(value), f"must be less than or equal to {name} "
                                             f"limit of {limit_text}"))
    return causes


def _validate_ports(ports: list[Any], path: FieldPath, *, host_network: bool) -> list[Cause]:
    causes: list[Cause] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        p = path.index(i)
        if not isinstance(port, Mapping):
            causes.append(meta.invalid_value(p, port, "must be an object"))
            continue
        name = port.get("name")
        if name:
            causes += [meta.invalid_value(p.child("name"), name, m) for m in meta.is_valid_port_name(str(name))]
            if name in names:
                causes.append(meta.duplicate(p.child("name"), name))
            names.add(str(name))
        container_port = port.get("containerPort")
        if not container_port:
            causes.append(meta.required(p.child("containerPort")))
        else:
            causes += [meta.invalid_value(p.child("containerPort"), container_port, m)
                       for m in meta.is_valid_port_num(container_port)]
        host_port = port.get("hostPort")
        if host_port:
            causes += [meta.invalid_value(p.child("hostPort"), host_port, m) for m in meta.is_valid_port_num(host_port)]
        protocol = port.get("protocol")
        if not protocol:
            causes.append(meta.required(p.child("protocol")))
        elif protocol not in PROTOCOLS:
            causes.append(meta.not_supported(p.child("protocol"), protocol, PROTOCOLS))
        if host_network and host_port and container_port and host_port != container_port:
            causes.append(meta.invalid_value(p.child("containerPort"), container_port,
                                             "must match `hostPort` when `hostNetwork` is true"))
    return causes


def _validate_env(env: list[Any], path: FieldPath) -> list[Cause]:
    causes: list[Cause] = []
    for i, var in enumerate(env):
        p = path.index(i)
        if not isinstance(var, Mapping):
            causes.append(meta.invalid_value(p, var, "must be an object"))
            continue
        name = var.get("name")
        if not name:
            causes.append(meta.required(p.child("name")))
        else:
            causes += [meta.invalid_value(p.child("name"), name, m) for m in meta.is_env_var_name(str(name))]
        value_from = var.get("valueFrom")
        if isinstance(value_from, Mapping):
            sources = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
                       if value_from.get(k) is not None]
            vp = p.child("valueFrom")
            if var.get("value"):
                causes.append(meta.invalid_value(vp, "", "may not be specified when `value` is not empty"))
            if not sources:
                causes.append(meta.invalid_value(vp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                                 "`configMapKeyRef` or `secretKeyRef`"))
            elif len(sources) > 1:
                causes.append(meta.invalid_value(vp, "", "may not have more than one field specified at a time"))
            for key in ("configMapKeyRef", "secretKeyRef"):
                ref = value_from.get(key)
                if isinstance(ref, Mapping):
                    if not ref.get("key"):
                        causes.append(meta.required(vp.child(key, "key")))
                    if not ref.get("name"):
                        causes.append(meta.required(vp.child(key, "name")))
            field_ref = value_from.get("fieldRef")
            if isinstance(field_ref, Mapping) and not field_ref.get("fieldPath"):
                causes.append(meta.required(vp.child("fieldRef", "fieldPath")))
    return causes


def _validate_mounts(mounts: list[Any], path: FieldPath, volumes: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, mount in enumerate(mounts):
        p = path.index(i)
        if not isinstance(mount, Mapping):
            causes.append(meta.invalid_value(p, mount, "must be an object"))
            continue
        name = mount.get("name") or ""
        if not name:
            causes.append(meta.required(p.child("name")))
        elif name not in volumes:
            causes.append(meta.not_found(p.child("name"), name))
        mount_path = mount.get("mountPath") or ""
        if not mount_path:
            causes.append(meta.required(p.child("mountPath")))
        elif mount_path in seen:
            causes.append(meta.invalid_value(p.child("mountPath"), mount_path, "must be unique"))
        seen.add(str(mount_path))
    return causes


def _validate_container(c: Mapping[str, Any], p: FieldPath, *, volumes: set[str], host_network: bool) -> list[Cause]:
    causes: list[Cause] = []
    image = c.get("image")
    if not image:
        causes.append(meta.required(p.child("image")))
    causes += _validate_ports(list_at(c, "ports"), p.child("ports"), host_network=host_network)
    causes += _validate_env(list_at(c, "env"), p.child("env"))
    causes += _validate_mounts(list_at(c, "volumeMounts"), p.child("volumeMounts"), volumes)
    causes += validate_resources(c.get("resources"), p.child("resources"))
    pull = c.get("imagePullPolicy")
    if not pull:
        causes.append(meta.required(p.child("imagePullPolicy")))
    elif pull not in PULL_POLICIES:
        causes.append(meta.not_supported(p.child("imagePullPolicy"), pull, PULL_POLICIES))
    tmp = c.get("terminationMessagePolicy")
    if not tmp:
        causes.append(meta.required(p.child("terminationMessagePolicy")))
    elif tmp not in TERMINATION_MESSAGE_POLICIES:
        causes.append(meta.not_supported(p.child("terminationMessagePolicy"), tmp, TERMINATION_MESSAGE_POLICIES))
    return causes


def _validate_containers(spec: Mapping[str, Any], path: FieldPath, volumes: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    host_network = spec.get("hostNetwork") is True
    names: set[str] = set()
    containers = list_at(spec, "containers")
    if not containers:
        causes.append(meta.required(path.child("containers")))
    for key in ("initContainers", "containers"):
        for i, c in enumerate(list_at(spec, key)):
            p = path.child(key).index(i)
            if not isinstance(c, Mapping):
                causes.append(meta.invalid_value(p, c, "must be an object"))
                continue
            name = c.get("name") or ""
            if not name:
                causes.append(meta.required(p.child("name")))
            else:
                causes += [meta.invalid_value(p.child("name"), name, m) for m in meta.is_dns1123_label(str(name))]
                if name in names:
                    causes.append(meta.duplicate(p.child("name"), name))
                names.add(str(name))
            causes += _validate_container(c, p, volumes=volumes, host_network=host_network)
    return causes


def _validate_volumes(volumes: list[Any], path: FieldPath) -> tuple[list[Cause], set[str]]:
    causes: list[Cause] = []
    names: set[str] = set()
    for i, vol in enumerate(volumes):
        p = path.index(i)
        if not isinstance(vol, Mapping):
            causes.append(meta.invalid_value(p, vol, "must be an object"))
            continue
        name = vol.get("name") or ""
        if not name:
            causes.append(meta.required(p.child("name")))
        else:
            causes += [meta.invalid_value(p.child("name"), name, m) for m in meta.is_dns1123_label(str(name))]
            if name in names:
                causes.append(meta.duplicate(p.child("name"), name))
            names.add(str(name))
        sources = [k for k in VOLUME_SOURCES if vol.get(k) is not None]
        if not sources:
            causes.append(meta.required(p, "must specify a volume type"))
        elif len(sources) > 1:
            causes.append(meta.forbidden(p.child(sources[1]), "may not specify more than 1 volume type"))
        for key in ("configMap", "secret"):
            src = vol.get(key)
            mode = dict_at(vol, key).get("defaultMode") if isinstance(src, Mapping) else None
            if mode is not None and (_int(mode) is None or not 0 <= mode <= 0o777):
                causes.append(meta.invalid_value(p.child(key, "defaultMode"), mode,
                                                 "must be a number between 0 and 0777 (octal), both inclusive"))
        pvc = vol.get("persistentVolumeClaim")
        if isinstance(pvc, Mapping) and not pvc.get("claimName"):
            causes.append(meta.required(p.child("persistentVolumeClaim", "claimName")))
    return causes, names


def _validate_tolerations(tolerations: list[Any], path: FieldPath) -> list[Cause]:
    causes: list[Cause] = []
    for i, t in enumerate(tolerations):
        p = path.index(i)
        if not isinstance(t, Mapping):
            causes.append(meta.invalid_value(p, t, "must be an object"))
            continue
        key = t.get("key") or ""
        operator = t.get("operator") or ""
        if key:
            causes += meta.validate_label_name(str(key), p.child("key"))
        if not key and operator != "Exists":
            causes.append(meta.invalid_value(p.child("operator"), operator, "operator must be Exists when `key` is "
                                             'empty, which means "match all values and all keys"'))
        if t.get("tolerationSeconds") is not None and t.get("effect") != "NoExecute":
            causes.append(meta.invalid_value(p.child("effect"), t.get("effect") or "",
                                             "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if operator in ("", "Equal"):
            causes += [meta.invalid_value(p.child("operator"), t.get("value") or "", m)
                       for m in meta.is_valid_label_value(str(t.get("value") or ""))]
        elif operator == "Exists":
            if t.get("value"):
                causes.append(meta.invalid_value(p.child("operator"), t.get("value"),
                                                 "value must be empty when `operator` is 'Exists'"))
        else:
            causes.append(meta.not_supported(p.child("operator"), operator, TOLERATION_OPERATORS))
        effect = t.get("effect")
        if effect and effect not in TAINT_EFFECTS:
            causes.append(meta.not_supported(p.child("effect"), effect, TAINT_EFFECTS))
    return causes


def validate_pod_spec(spec: Any, path: FieldPath) -> list[Cause]:
    """``ValidatePodSpec``: the rules a Pod's spec and every pod template's spec must meet."""
    if not isinstance(spec, Mapping):
        return [meta.required(path)]
    volume_causes, volumes = _validate_volumes(list_at(spec, "volumes"), path.child("volumes"))
    causes = volume_causes + _validate_containers(spec, path, volumes)
    restart = spec.get("restartPolicy")
    if not restart:
        causes.append(meta.required(path.child("restartPolicy")))
    elif restart not in RESTART_POLICIES:
        causes.append(meta.not_supported(path.child("restartPolicy"), restart, RESTART_POLICIES))
    dns = spec.get("dnsPolicy")
    if not dns:
        causes.append(meta.required(path.child("dnsPolicy")))
    elif dns not in DNS_POLICIES:
        causes.append(meta.not_supported(path.child("dnsPolicy"), dns, DNS_POLICIES))
    causes += meta.validate_labels(spec.get("nodeSelector"), path.child("nodeSelector"))
    for key, rule in (("serviceAccountName", meta.is_dns1123_subdomain), ("nodeName", meta.is_dns1123_subdomain),
                      ("hostname", meta.is_dns1123_label), ("subdomain", meta.is_dns1123_label),
                      ("priorityClassName", meta.is_dns1123_subdomain)):
        value = spec.get(key)
        if value:
            causes += [meta.invalid_value(path.child(key), value, m) for m in rule(str(value))]
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (_int(deadline) is None or not 1 <= deadline <= MAX_INT32):
        causes.append(meta.invalid_value(path.child("activeDeadlineSeconds"), deadline,
                                         f"must be between 1 and {MAX_INT32}, inclusive"))
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and _int(grace) is None:
        causes.append(meta.invalid_value(path.child("terminationGracePeriodSeconds"), grace, "must be an integer"))
    causes += _validate_tolerations(list_at(spec, "tolerations"), path.child("tolerations"))
    return causes


def validate_pod_template(template: Any, path: FieldPath) -> list[Cause]:
    """``ValidatePodTemplateSpec``; note kube's paths ``<path>.labels``/``.annotations`` (no ``metadata``)."""
    if not isinstance(template, Mapping):
        return [meta.required(path)]
    md = dict_at(template, "metadata")
    causes = meta.validate_labels(md.get("labels"), path.child("labels"))
    causes += meta.validate_annotations(md.get("annotations"), path.child("annotations"))
    spec = dict_at(template, "spec")
    causes += validate_pod_spec(spec, path.child("spec"))
    if list_at(spec, "ephemeralContainers"):
        causes.append(meta.forbidden(path.child("spec", "ephemeralContainers"),
                                     "ephemeral containers not allowed in pod template"))
    return causes


POD_UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def _strip_mutable(spec: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """The spec with every field a pod update may change replaced by the old value."""
    out = copy.deepcopy(dict(spec))
    for key in ("containers", "initContainers"):
        new_list, old_list = list_at(out, key), list_at(old, key)
        for i, c in enumerate(new_list):
            if isinstance(c, dict) and i < len(old_list) and isinstance(old_list[i], Mapping):
                c["image"] = old_list[i].get("image")
    for key in ("activeDeadlineSeconds", "tolerations", "schedulingGates"):
        if key in old:
            out[key] = copy.deepcopy(old[key])
        else:
            out.pop(key, None)
    old_grace = _int(old.get("terminationGracePeriodSeconds"))
    if old_grace is not None and old_grace < 0 and out.get("terminationGracePeriodSeconds") == 1:
        out["terminationGracePeriodSeconds"] = old_grace
    return out


def _spec_diff(new: Mapping[str, Any], old: Mapping[str, Any]) -> str:
    lines = ["  core.PodSpec{"]
    for key in sorted(set(new) | set(old)):
        if new.get(key) != old.get(key):
            lines.append(f"-  {key}: {meta.go_value(old.get(key))},")
            lines.append(f"+  {key}: {meta.go_value(new.get(key))},")
    lines.append("  }")
    return "\n".join(lines) + "\n"


def validate_pod_spec_update(new: Mapping[str, Any], old: Mapping[str, Any], path: FieldPath) -> list[Cause]:
    """``ValidatePodUpdate``'s spec rules: only images, activeDeadlineSeconds, added tolerations,
    removed scheduling gates and a negative grace period set to 1 may change."""
    causes: list[Cause] = []
    for key in ("containers", "initContainers"):
        for i, c in enumerate(list_at(new, key)):
            if isinstance(c, Mapping) and not c.get("image"):
                causes.append(meta.required(path.child(key).index(i).child("image")))
    new_deadline, old_deadline = new.get("activeDeadlineSeconds"), old.get("activeDeadlineSeconds")
    if new_deadline is not None:
        if _int(new_deadline) is None or not 0 <= new_deadline <= MAX_INT32:
            return [meta.invalid_value(path.child("activeDeadlineSeconds"), new_deadline,
                                       f"must be between 0 and {MAX_INT32}, inclusive")]
        if old_deadline is not None and _int(old_deadline) is not None and old_deadline < new_deadline:
            return [meta.invalid_value(path.child("activeDeadlineSeconds"), new_deadline,
                                       "must be less than or equal to previous value")]
    elif old_deadline is not None:
        causes.append(meta.invalid_value(path.child("activeDeadlineSeconds"), None,
                                         "must not update from a positive integer to nil value"))
    old_tolerations = [_toleration_key(t) for t in list_at(old, "tolerations")]
    new_tolerations = [_toleration_key(t) for t in list_at(new, "tolerations")]
    for t in old_tolerations:
        if t not in new_tolerations:
            causes.append(meta.forbidden(path.child("tolerations"),
                                         "existing toleration can not be modified except its tolerationSeconds"))
            break
    old_gates = {g.get("name") for g in list_at(old, "schedulingGates") if isinstance(g, Mapping)}
    for g in list_at(new, "schedulingGates"):
        name = g.get("name") if isinstance(g, Mapping) else None
        if name not in old_gates:
            causes.append(meta.forbidden(path.child("schedulingGates"),
                                         f"only deletion is allowed, but found new scheduling gate '{name}'"))
    stripped = _strip_mutable(new, old)
    if stripped != dict(old):
        causes.append(meta.forbidden(path, POD_UPDATE_FORBIDDEN + "\n" + _spec_diff(stripped, old)))
    return causes


def _toleration_key(t: Any) -> tuple[Any, ...]:
    if not isinstance(t, Mapping):
        return (t,)
    return (t.get("key") or "", t.get("operator") or "Equal", t.get("value") or "", t.get("effect") or "")


def validate_pod_template_immutable(new: Any, old: Any, path: FieldPath) -> list[Cause]:
    """A template that may not change at all (Jobs): ``field is immutable`` with kube's value rendering."""
    if new == old:
        return []
    return [meta.invalid_value(path, meta.GoRepr("core.PodTemplateSpec{...}"), meta.FIELD_IMMUTABLE)]


__all__ = [
    "DNS_POLICIES",
    "POD_UPDATE_FORBIDDEN",
    "PROTOCOLS",
    "PULL_POLICIES",
    "RESTART_POLICIES",
    "default_container",
    "default_pod",
    "default_pod_spec",
    "default_pod_template",
    "default_probe",
    "default_volume",
    "image_pull_policy",
    "pod_qos_class",
    "validate_pod_spec",
    "validate_pod_spec_update",
    "validate_pod_template",
    "validate_pod_template_immutable",
    "validate_resources",
]
