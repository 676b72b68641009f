"""Kubernetes protobuf request bodies (``application/vnd.kubernetes.protobuf``).

kubectl's typed clients send protobuf for ``kubectl create namespace|configmap|secret|
deployment|service|...`` and for evictions (``kubectl drain``). The server keeps JSON,
so a body is decoded into the same dict the JSON API would carry: a generic wire-format
reader driven by message descriptors written from Kubernetes' published ``.proto``
field numbers. The envelope is the magic ``k8s\\x00`` followed by a ``runtime.Unknown``
whose ``typeMeta`` names the kind and whose ``raw`` holds the object.

Descriptor syntax, one message per entry: ``"<number> <jsonName> <type>[*][^]"``
separated by ``;`` — ``*`` repeated, ``?`` a field whose zero value JSON keeps (a Go
pointer, or a field without omitempty; other zero scalars are dropped, as omitempty does), ``^`` inlined into the parent (Go embedded
structs such as ``Probe.handler``). Scalar types: ``s`` string, ``b`` bool, ``i32``,
``i64``, ``by`` bytes (base64 in JSON), ``q`` Quantity, ``ios`` IntOrString, ``t``
Time; maps: ``m:s``, ``m:by``, ``m:q``; anything else names a message.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import logging
from typing import Any

from atoll.api.errors import BadRequest, UnsupportedMediaType

logger = logging.getLogger(__name__)

MAGIC = b"k8s\x00"
Obj = dict[str, Any]

_MESSAGES: dict[str, str] = {
    # meta/v1
    "ObjectMeta": "1 name s; 2 generateName s; 3 namespace s; 4 selfLink s; 5 uid s; 6 resourceVersion s; "
                  "7 generation i64; 8 creationTimestamp t; 9 deletionTimestamp t?; 10 deletionGracePeriodSeconds i64?; "
                  "11 labels m:s; 12 annotations m:s; 13 ownerReferences OwnerReference*; 14 finalizers s*; "
                  "17 managedFields ManagedFieldsEntry*",
    "OwnerReference": "1 kind s; 3 name s; 4 uid s; 5 apiVersion s; 6 controller b?; 7 blockOwnerDeletion b?",
    "ManagedFieldsEntry": "1 manager s; 2 operation s; 3 apiVersion s; 4 time t; 6 fieldsType s; "
                          "7 fieldsV1 FieldsV1; 8 subresource s",
    "FieldsV1": "1 Raw by",
    "LabelSelector": "1 matchLabels m:s; 2 matchExpressions LabelSelectorRequirement*",
    "LabelSelectorRequirement": "1 key s; 2 operator s; 3 values s*",
    "DeleteOptions": "1 gracePeriodSeconds i64?; 2 preconditions Preconditions; 3 orphanDependents b?; "
                     "4 propagationPolicy s?; 5 dryRun s*; 6 ignoreStoreReadErrorWithClusterBreakingPotential b?",
    "Preconditions": "1 uid s?; 2 resourceVersion s?",
    "Condition": "1 type s; 2 status s; 3 observedGeneration i64; 4 lastTransitionTime t; 5 reason s; 6 message s",
    # core/v1
    "Namespace": "1 metadata ObjectMeta; 2 spec NamespaceSpec; 3 status NamespaceStatus",
    "NamespaceSpec": "1 finalizers s*",
    "NamespaceStatus": "1 phase s",
    "ConfigMap": "1 metadata ObjectMeta; 4 immutable b?; 2 data m:s; 3 binaryData m:by",
    "Secret": "1 metadata ObjectMeta; 5 immutable b?; 2 data m:by; 4 stringData m:s; 3 type s",
    "Service": "1 metadata ObjectMeta; 2 spec ServiceSpec; 3 status ServiceStatus",
    "ServiceSpec": "1 ports ServicePort*; 2 selector m:s; 3 clusterIP s; 18 clusterIPs s*; 4 type s; "
                   "5 externalIPs s*; 7 sessionAffinity s; 8 loadBalancerIP s; 9 loadBalancerSourceRanges s*; "
                   "10 externalName s; 11 externalTrafficPolicy s; 12 healthCheckNodePort i32; "
                   "13 publishNotReadyAddresses b; 14 sessionAffinityConfig SessionAffinityConfig; "
                   "19 ipFamilies s*; 17 ipFamilyPolicy s?; 20 allocateLoadBalancerNodePorts b?; "
                   "21 loadBalancerClass s?; 22 internalTrafficPolicy s?; 23 trafficDistribution s?",
    "ServicePort": "1 name s; 2 protocol s; 6 appProtocol s?; 3 port i32; 4 targetPort ios; 5 nodePort i32",
    "SessionAffinityConfig": "1 clientIP ClientIPConfig",
    "ClientIPConfig": "1 timeoutSeconds i32?",
    "ServiceStatus": "1 loadBalancer LoadBalancerStatus; 2 conditions Condition*",
    "LoadBalancerStatus": "1 ingress LoadBalancerIngress*",
    "LoadBalancerIngress": "1 ip s; 2 hostname s; 4 ipMode s",
    "ServiceAccount": "1 metadata ObjectMeta; 2 secrets ObjectReference*; 3 imagePullSecrets LocalObjectReference*; "
                      "4 automountServiceAccountToken b?",
    "ObjectReference": "1 kind s; 2 namespace s; 3 name s; 4 uid s; 5 apiVersion s; 6 resourceVersion s; "
                       "7 fieldPath s",
    "LocalObjectReference": "1 name s",
    "ResourceQuota": "1 metadata ObjectMeta; 2 spec ResourceQuotaSpec; 3 status ResourceQuotaStatus",
    "ResourceQuotaStatus": "1 hard m:q; 2 used m:q",
    "ResourceQuotaSpec": "1 hard m:q; 2 scopes s*; 3 scopeSelector ScopeSelector",
    "ScopeSelector": "1 matchExpressions ScopedResourceSelectorRequirement*",
    "ScopedResourceSelectorRequirement": "1 scopeName s; 2 operator s; 3 values s*",
    "Pod": "1 metadata ObjectMeta; 2 spec PodSpec; 3 status PodStatus",
    "PodStatus": "1 phase s; 3 message s; 4 reason s; 5 hostIP s; 6 podIP s",
    "PodTemplateSpec": "1 metadata ObjectMeta; 2 spec PodSpec",
    "PodSpec": "1 volumes Volume*; 20 initContainers Container*; 2 containers Container*; 3 restartPolicy s; "
               "4 terminationGracePeriodSeconds i64?; 5 activeDeadlineSeconds i64?; 6 dnsPolicy s; "
               "7 nodeSelector m:s; 8 serviceAccountName s; 9 serviceAccount s; 21 automountServiceAccountToken b?; "
               "10 nodeName s; 11 hostNetwork b; 12 hostPID b; 13 hostIPC b; 27 shareProcessNamespace b?; "
               "14 securityContext PodSecurityContext; 15 imagePullSecrets LocalObjectReference*; 16 hostname s; "
               "17 subdomain s; 18 affinity Affinity; 19 schedulerName s; 22 tolerations Toleration*; "
               "24 priorityClassName s; 25 priority i32?; 26 dnsConfig PodDNSConfig; 29 runtimeClassName s?; "
               "30 enableServiceLinks b?; 31 preemptionPolicy s?; 32 overhead m:q; "
               "33 topologySpreadConstraints TopologySpreadConstraint*; 35 setHostnameAsFQDN b?; 37 hostUsers b?",
    "Container": "1 name s; 2 image s; 3 command s*; 4 args s*; 5 workingDir s; 6 ports ContainerPort*; "
                 "19 envFrom EnvFromSource*; 7 env EnvVar*; 8 resources ResourceRequirements; 24 restartPolicy s?; "
                 "9 volumeMounts VolumeMount*; 10 livenessProbe Probe; 11 readinessProbe Probe; 22 startupProbe Probe; "
                 "12 lifecycle Lifecycle; 13 terminationMessagePath s; 20 terminationMessagePolicy s; "
                 "14 imagePullPolicy s; 15 securityContext SecurityContext; 16 stdin b; 17 stdinOnce b; 18 tty b",
    "ContainerPort": "1 name s; 2 hostPort i32; 3 containerPort i32; 4 protocol s; 5 hostIP s",
    "EnvVar": "1 name s; 2 value s; 3 valueFrom EnvVarSource",
    "EnvVarSource": "1 fieldRef ObjectFieldSelector; 2 resourceFieldRef ResourceFieldSelector; "
                    "3 configMapKeyRef ConfigMapKeySelector; 4 secretKeyRef SecretKeySelector",
    "ObjectFieldSelector": "1 apiVersion s; 2 fieldPath s",
    "ResourceFieldSelector": "1 containerName s; 2 resource s; 3 divisor q",
    "ConfigMapKeySelector": "1 localObjectReference LocalObjectReference^; 2 key s; 3 optional b??",
    "SecretKeySelector": "1 localObjectReference LocalObjectReference^; 2 key s; 3 optional b??",
    "EnvFromSource": "1 prefix s; 2 configMapRef ConfigMapEnvSource; 3 secretRef SecretEnvSource",
    "ConfigMapEnvSource": "1 localObjectReference LocalObjectReference^; 2 optional b??",
    "SecretEnvSource": "1 localObjectReference LocalObjectReference^; 2 optional b??",
    "ResourceRequirements": "1 limits m:q; 2 requests m:q",
    "VolumeMount": "1 name s; 2 readOnly b; 7 recursiveReadOnly s?; 3 mountPath s; 4 subPath s; "
                   "5 mountPropagation s?; 6 subPathExpr s",
    "Volume": "1 name s; 2 volumeSource VolumeSource^",
    "VolumeSource": "1 hostPath HostPathVolumeSource; 2 emptyDir EmptyDirVolumeSource; 6 secret SecretVolumeSource; "
                    "10 persistentVolumeClaim PersistentVolumeClaimVolumeSource; 19 configMap ConfigMapVolumeSource",
    "HostPathVolumeSource": "1 path s; 2 type s?",
    "EmptyDirVolumeSource": "1 medium s; 2 sizeLimit q?",
    "SecretVolumeSource": "1 secretName s; 2 items KeyToPath*; 3 defaultMode i32?; 4 optional b?",
    "ConfigMapVolumeSource": "1 localObjectReference LocalObjectReference^; 2 items KeyToPath*; 3 defaultMode i32?; "
                             "4 optional b?",
    "PersistentVolumeClaimVolumeSource": "1 claimName s; 2 readOnly b",
    "KeyToPath": "1 key s; 2 path s; 3 mode i32?",
    "Probe": "1 handler ProbeHandler^; 2 initialDelaySeconds i32; 3 timeoutSeconds i32; 4 periodSeconds i32; "
             "5 successThreshold i32; 6 failureThreshold i32; 7 terminationGracePeriodSeconds i64?",
    "ProbeHandler": "1 exec ExecAction; 2 httpGet HTTPGetAction; 3 tcpSocket TCPSocketAction; 4 grpc GRPCAction",
    "ExecAction": "1 command s*",
    "HTTPGetAction": "1 path s; 2 port ios; 3 host s; 4 scheme s; 5 httpHeaders HTTPHeader*",
    "HTTPHeader": "1 name s; 2 value s",
    "TCPSocketAction": "1 port ios; 2 host s",
    "GRPCAction": "1 port i32; 2 service s?",
    "Lifecycle": "1 postStart LifecycleHandler; 2 preStop LifecycleHandler; 3 stopSignal s?",
    "LifecycleHandler": "1 exec ExecAction; 2 httpGet HTTPGetAction; 3 tcpSocket TCPSocketAction; 4 sleep SleepAction",
    "SleepAction": "1 seconds i64",
    "SecurityContext": "1 capabilities Capabilities; 2 privileged b?; 4 runAsUser i64?; 8 runAsGroup i64?; "
                       "5 runAsNonRoot b?; 6 readOnlyRootFilesystem b?; 7 allowPrivilegeEscalation b?; 9 procMount s?",
    "Capabilities": "1 add s*; 2 drop s*",
    "PodSecurityContext": "2 runAsUser i64?; 6 runAsGroup i64?; 3 runAsNonRoot b?; 4 supplementalGroups i64*; "
                          "5 fsGroup i64?; 9 fsGroupChangePolicy s?",
    "Toleration": "1 key s; 2 operator s; 3 value s; 4 effect s; 5 tolerationSeconds i64?",
    "Affinity": "1 nodeAffinity NodeAffinity",
    "NodeAffinity": "1 requiredDuringSchedulingIgnoredDuringExecution NodeSelector",
    "NodeSelector": "1 nodeSelectorTerms NodeSelectorTerm*",
    "NodeSelectorTerm": "1 matchExpressions NodeSelectorRequirement*; 2 matchFields NodeSelectorRequirement*",
    "NodeSelectorRequirement": "1 key s; 2 operator s; 3 values s*",
    "PodDNSConfig": "1 nameservers s*; 2 searches s*",
    "TopologySpreadConstraint": "1 maxSkew i32; 2 topologyKey s; 3 whenUnsatisfiable s; 4 labelSelector LabelSelector; "
                                "5 minDomains i32?; 6 nodeAffinityPolicy s?; 7 nodeTaintsPolicy s?; 8 matchLabelKeys s*",
    # apps/v1
    "Deployment": "1 metadata ObjectMeta; 2 spec DeploymentSpec; 3 status DeploymentStatus",
    "DeploymentStatus": "1 observedGeneration i64; 2 replicas i32; 3 updatedReplicas i32; 7 readyReplicas i32; "
                        "4 availableReplicas i32; 5 unavailableReplicas i32; 8 collisionCount i32?",
    "DeploymentSpec": "1 replicas i32?; 2 selector LabelSelector; 3 template PodTemplateSpec; 4 strategy "
                      "DeploymentStrategy; 5 minReadySeconds i32; 6 revisionHistoryLimit i32?; 7 paused b; "
                      "9 progressDeadlineSeconds i32?",
    "DeploymentStrategy": "1 type s; 2 rollingUpdate RollingUpdateDeployment",
    "RollingUpdateDeployment": "1 maxUnavailable ios?; 2 maxSurge ios?",
    # batch/v1
    "Job": "1 metadata ObjectMeta; 2 spec JobSpec; 3 status JobStatus",
    "JobStatus": "4 active i32; 5 succeeded i32; 6 failed i32; 9 ready i32?",
    "JobSpec": "1 parallelism i32?; 2 completions i32?; 3 activeDeadlineSeconds i64?; 7 backoffLimit i32?; "
               "12 backoffLimitPerIndex i32?; 13 maxFailedIndexes i32?; 4 selector LabelSelector; 5 manualSelector b?; "
               "6 template PodTemplateSpec; 8 ttlSecondsAfterFinished i32?; 9 completionMode s?; 10 suspend b?; "
               "14 podReplacementPolicy s?; 15 managedBy s?",
    "CronJob": "1 metadata ObjectMeta; 2 spec CronJobSpec; 3 status CronJobStatus",
    "CronJobStatus": "4 lastScheduleTime t?; 5 lastSuccessfulTime t?",
    "CronJobSpec": "1 schedule s; 8 timeZone s?; 2 startingDeadlineSeconds i64?; 3 concurrencyPolicy s; 4 suspend b?; "
                   "5 jobTemplate JobTemplateSpec; 6 successfulJobsHistoryLimit i32?; 7 failedJobsHistoryLimit i32?",
    "JobTemplateSpec": "1 metadata ObjectMeta; 2 spec JobSpec",
    # policy/v1
    "Eviction": "1 metadata ObjectMeta; 2 deleteOptions DeleteOptions",
    "PodDisruptionBudget": "1 metadata ObjectMeta; 2 spec PodDisruptionBudgetSpec; 3 status PodDisruptionBudgetStatus",
    "PodDisruptionBudgetStatus": "1 observedGeneration i64; 3 disruptionsAllowed i32?; 4 currentHealthy i32?; "
                                 "5 desiredHealthy i32?; 6 expectedPods i32?",
    "PodDisruptionBudgetSpec": "1 minAvailable ios?; 2 selector LabelSelector; 3 maxUnavailable ios?; "
                               "4 unhealthyPodEvictionPolicy s?",
}

# apiVersion/kind → top-level message.
KINDS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "Namespace", ("v1", "ConfigMap"): "ConfigMap", ("v1", "Secret"): "Secret",
    ("v1", "Service"): "Service", ("v1", "ServiceAccount"): "ServiceAccount", ("v1", "Pod"): "Pod",
    ("v1", "ResourceQuota"): "ResourceQuota", ("apps/v1", "Deployment"): "Deployment",
    ("batch/v1", "Job"): "Job", ("batch/v1", "CronJob"): "CronJob", ("policy/v1", "Eviction"): "Eviction",
    ("policy/v1", "PodDisruptionBudget"): "PodDisruptionBudget", ("v1", "DeleteOptions"): "DeleteOptions",
    ("meta.k8s.io/v1", "DeleteOptions"): "DeleteOptions",
}


@functools.cache
def _descriptor(message: str) -> dict[int, tuple[str, str, bool, bool, bool]]:
    """field number → (json name, type, repeated, inline, pointer)."""
    fields: dict[int, tuple[str, str, bool, bool, bool]] = {}
    for part in _MESSAGES[message].split(";"):
        num, name, typ = part.split()
        pointer = typ.endswith("?")
        typ = typ.rstrip("?")
        inline = typ.endswith("^")
        repeated = typ.rstrip("^").endswith("*")
        fields[int(num)] = (name, typ.rstrip("^").rstrip("*"), repeated, inline, pointer)
    return fields


def is_protobuf(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "application/vnd.kubernetes.protobuf"


# -- wire format ---------------------------------------------------------------------------
def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise BadRequest("malformed protobuf body: truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise BadRequest("malformed protobuf body: varint too long")


def fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, raw value) for each field; length-delimited values as bytes."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        num, wire = key >> 3, key & 7
        value: int | bytes
        if num == 0:
            raise BadRequest("malformed protobuf body: field number 0")
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            if pos + 8 > len(data):
                raise BadRequest("malformed protobuf body: truncated fixed64")
            value, pos = int.from_bytes(data[pos:pos + 8], "little"), pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise BadRequest("malformed protobuf body: truncated length-delimited field")
            value, pos = data[pos:pos + length], pos + length
        elif wire == 5:
            if pos + 4 > len(data):
                raise BadRequest("malformed protobuf body: truncated fixed32")
            value, pos = int.from_bytes(data[pos:pos + 4], "little"), pos + 4
        else:
            raise BadRequest(f"malformed protobuf body: unsupported wire type {wire}")
        out.append((num, wire, value))
    return out


def _signed(value: int, bits: int) -> int:
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64
    if bits == 32:
        value = ((value + (1 << 31)) % (1 << 32)) - (1 << 31)
    return value


def _text(raw: Any) -> str:
    if not isinstance(raw, bytes):
        raise BadRequest("malformed protobuf body: expected a string")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("malformed protobuf body: invalid UTF-8 string") from exc


def _time(raw: bytes) -> str | None:
    seconds = 0
    for num, _, value in fields(raw):
        if num == 1:
            seconds = _signed(value, 64)
    if seconds == 0:
        return None  # the zero time, which JSON writes as null
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_or_string(raw: bytes) -> int | str:
    kind, int_val, str_val = 0, 0, ""
    for num, _, value in fields(raw):
        if num == 1:
            kind = value
        elif num == 2:
            int_val = _signed(value, 32)
        elif num == 3:
            str_val = _text(value)
    return str_val if kind == 1 else int_val


def _quantity(raw: bytes) -> str:
    for num, _, value in fields(raw):
        if num == 1:
            return _text(value)
    return ""


def _scalar(typ: str, wire: int, value: Any) -> Any:
    if typ == "s":
        return _text(value)
    if typ == "b":
        return bool(value)
    if typ == "i32":
        return _signed(value, 32)
    if typ == "i64":
        return _signed(value, 64)
    if typ == "by":
        return base64.b64encode(value).decode()
    if typ == "q":
        return _quantity(value)
    if typ == "ios":
        return _int_or_string(value)
    if typ == "t":
        return _time(value)
    raise BadRequest(f"unknown scalar type {typ}")


def _map_entry(raw: bytes, value_type: str) -> tuple[str, Any]:
    key, val = "", _scalar(value_type, 2, b"") if value_type in ("s", "by", "q") else None
    for num, wire, value in fields(raw):
        if num == 1:
            key = _text(value)
        elif num == 2:
            val = _scalar(value_type, wire, value)
    return key, val


def _decode_message(message: str, data: bytes) -> Obj:
    desc = _descriptor(message)
    out: Obj = {}
    for num, wire, value in fields(data):
        spec = desc.get(num)
        if spec is None:
            logger.debug("protobuf %s: skipping unknown field %d", message, num)
            continue
        name, typ, repeated, inline, pointer = spec
        if typ.startswith("m:"):
            k, v = _map_entry(value, typ[2:])
            out.setdefault(name, {})[k] = v
            continue
        if typ in _MESSAGES:
            if not isinstance(value, bytes):
                raise BadRequest(f"malformed protobuf body: {message}.{name} is not a message")
            decoded: Any = _decode_message(typ, value)
            if typ == "FieldsV1":
                import orjson

                decoded = orjson.loads(base64.b64decode(decoded.get("Raw", "")) or b"{}")
            if inline:
                out.update(decoded)
                continue
        elif repeated and wire == 2 and typ in ("i32", "i64", "b"):
            # Packed repeated scalars.
            items: list[Any] = []
            pos = 0
            while pos < len(value):
                v, pos = _varint(value, pos)
                items.append(_scalar(typ, 0, v))
            out.setdefault(name, []).extend(items)
            continue
        else:
            decoded = _scalar(typ, wire, value)
            if not repeated and not pointer and decoded in ("", 0, False, None) and typ != "t":
                # Go's omitempty: a non-pointer zero value is not in the JSON form.
                continue
        if repeated:
            out.setdefault(name, []).append(decoded)
        else:
            out[name] = decoded
    return out


def decode(body: bytes) -> Obj:
    """Decode an enveloped protobuf body into the object's JSON form."""
    if not body.startswith(MAGIC):
        raise BadRequest("malformed protobuf body: missing the k8s protobuf magic prefix")
    api_version = kind = ""
    raw = b""
    encoding = ""
    for num, _, value in fields(body[len(MAGIC):]):
        if num == 1:
            for tnum, _, tval in fields(value):
                if tnum == 1:
                    api_version = _text(tval)
                elif tnum == 2:
                    kind = _text(tval)
        elif num == 2:
            raw = value
        elif num == 3:
            encoding = _text(value)
    if encoding:
        raise UnsupportedMediaType(f"protobuf content encoding {encoding!r} is not supported")
    message = KINDS.get((api_version, kind))
    if message is None:
        raise UnsupportedMediaType(
            f"protobuf bodies of {api_version}, Kind={kind} are not supported; send application/json instead")
    obj = _decode_message(message, raw)
    ordered: Obj = {"kind": kind, "apiVersion": api_version}
    ordered.update(obj)
    return ordered
