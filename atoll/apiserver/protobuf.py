"""Kubernetes protobuf request bodies (``application/vnd.kubernetes.protobuf``).

Go clients built on client-go's typed clients (``kubectl create namespace|configmap|
secret|deployment|service|...``, ``kubectl create token``, and controllers, schedulers
and kubelets written in Go, evictions included; kubectl 1.32's ``drain`` happens to post
its Eviction as JSON) send protobuf. The API server keeps
JSON, so a body is decoded here into exactly the dict the JSON API would have carried
for the same Go object: camelCase JSON names in the Go struct's field order, empty
fields left out or kept the way ``encoding/json`` and the ``omitempty`` tags decide,
int64 as int, bytes as base64, and the apimachinery types in their JSON forms.

How it fits together::

    body = b"k8s\\x00" + runtime.Unknown{typeMeta{apiVersion, kind}, raw, contentEncoding, contentType}
             │                                                 │
             └── KINDS[(apiVersion, kind)] ─► message name ──► decode_message(name, raw)
                                                                   │ read_fields(): varint, fixed64,
                                                                   │ length-delimited, groups, fixed32
                                                                   ▼
                                       DESCRIPTORS[name][field number] = FieldSpec(json_name, kind, ...)

``DESCRIPTORS`` is compiled at import from ``_SCHEMA``, one line per message written
from the field numbers in Kubernetes' published ``generated.proto`` files (the union of
1.32 and later releases, so newer clients' fields decode too) and the JSON tags of the
1.32 Go types (so ``creationTimestamp: null`` stays, as kubectl 1.32's JSON has it). A field is ``<number> <jsonName> <type>`` in Go's spelling: ``*T`` a pointer
(kept whenever it is set, even to a zero value), ``[]T`` a repeated field, and
``map[string]T`` a protobuf map (entries with key = 1, value = 2). A trailing ``!`` marks
a field without ``omitempty`` (its zero value, or ``null`` for a nil slice, map or
pointer, is written); the JSON name ``,inline`` is a Go embedded struct whose fields
land in the parent (``Volume`` → ``VolumeSource``) and ``,items`` a message wrapping a
Go named slice (``ExtraValue``), which decodes to the bare list. Types: ``string``,
``bool``, ``int32``, ``int64``, ``bytes`` (base64), ``time`` (RFC 3339 seconds, zero →
``null``), ``microtime`` (RFC 3339 with microseconds), ``duration`` (Go's ``1h2m3s``),
``quantity`` (its string), ``intstr`` (int or string), ``raw`` (``RawExtension``: the
embedded JSON object), ``fieldsv1`` (managed fields' JSON) and message names, qualified
(``meta.v1.ObjectMeta``) when they live in another package.

A Go struct field that is not a pointer is always present in JSON (``omitempty`` does
not apply to structs), so a missing one decodes to its zero form: ``{}`` with its own
non-``omitempty`` fields, ``null`` for a zero time, ``"0"`` for a quantity. Quantities
keep the string the client sent (kube-apiserver would canonicalise ``1000m`` to ``1``),
which is what the JSON path stores too.

Bodies that are not protobuf, are truncated, use the wrong wire type for a known field
or carry invalid UTF-8 raise ``BadRequest``; a kind this table does not describe raises
``UnsupportedMediaType``, so the client can resend it as JSON. Unknown fields inside a
known message are skipped (and logged at debug), as Go's generated code does.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import re
from collections.abc import Iterator
from typing import Any, Final, NamedTuple

import orjson

from atoll.api.errors import BadRequest, UnsupportedMediaType

logger = logging.getLogger(__name__)

MAGIC: Final = b"k8s\x00"
MEDIA_TYPE: Final = "application/vnd.kubernetes.protobuf"
MAX_DEPTH: Final = 100
Obj = dict[str, Any]

# Wire types.
VARINT: Final = 0
FIXED64: Final = 1
LENGTH_DELIMITED: Final = 2
START_GROUP: Final = 3
END_GROUP: Final = 4
FIXED32: Final = 5

_MASK64: Final = (1 << 64) - 1


def is_protobuf(content_type: str) -> bool:
    """Whether a ``Content-Type`` names Kubernetes protobuf (parameters ignored)."""
    return content_type.split(";", 1)[0].strip().lower() == MEDIA_TYPE


# -- wire format ---------------------------------------------------------------------------------------

class WireField(NamedTuple):
    """One field as it appears on the wire: varint and fixed values as unsigned ints,
    length-delimited values and groups as their bytes."""

    number: int
    wire_type: int
    value: int | bytes


def _malformed(what: str) -> BadRequest:
    return BadRequest(f"the protobuf request body is malformed: {what}")


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The unsigned varint at ``pos`` and the position after it (at most ten bytes, as in Go)."""
    result = 0
    for shift in range(0, 70, 7):
        if pos >= len(data):
            raise _malformed("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & _MASK64, pos
    raise _malformed("varint longer than ten bytes")


_Raw = tuple[int, int, int | bytes]  # a WireField without the attribute names, for the hot path


def _read_field(data: bytes, pos: int, depth: int) -> tuple[_Raw, int]:
    key, pos = read_varint(data, pos)
    number, wire = key >> 3, key & 7
    if number <= 0 or number > 0x1FFFFFFF:
        raise _malformed(f"invalid field number {number}")
    value: int | bytes
    if wire == VARINT:
        value, pos = read_varint(data, pos)
    elif wire == FIXED64:
        if pos + 8 > len(data):
            raise _malformed(f"truncated 64-bit value in field {number}")
        value, pos = int.from_bytes(data[pos:pos + 8], "little"), pos + 8
    elif wire == LENGTH_DELIMITED:
        length, pos = read_varint(data, pos)
        if length > len(data) - pos:
            raise _malformed(f"field {number} is longer ({length} bytes) than what is left of the body")
        value, pos = data[pos:pos + length], pos + length
    elif wire == FIXED32:
        if pos + 4 > len(data):
            raise _malformed(f"truncated 32-bit value in field {number}")
        value, pos = int.from_bytes(data[pos:pos + 4], "little"), pos + 4
    elif wire == START_GROUP:
        if depth >= MAX_DEPTH:
            raise _malformed("groups nested too deeply")
        start = pos
        while True:
            if pos >= len(data):
                raise _malformed(f"group {number} is not closed")
            inner_key, after = read_varint(data, pos)
            if inner_key == (number << 3 | END_GROUP):
                value, pos = data[start:pos], after
                break
            _, pos = _read_field(data, pos, depth + 1)
    else:  # END_GROUP without a start, or the unused wire types 6 and 7
        raise _malformed(f"unexpected wire type {wire} for field {number}")
    return (number, wire, value), pos


def _scan(data: bytes) -> list[_Raw]:
    """The fields of one message; one-byte keys and lengths (nearly all of them) take a short cut."""
    out: list[_Raw] = []
    pos, end = 0, len(data)
    while pos < end:
        key = data[pos]
        if key < 0x80 and key >= 8:
            wire = key & 7
            if wire == LENGTH_DELIMITED and pos + 1 < end and data[pos + 1] < 0x80:
                length = data[pos + 1]
                pos += 2
                if length > end - pos:
                    raise _malformed(f"field {key >> 3} is longer ({length} bytes) than what is left of the body")
                out.append((key >> 3, LENGTH_DELIMITED, data[pos:pos + length]))
                pos += length
                continue
            if wire == VARINT and pos + 1 < end and data[pos + 1] < 0x80:
                out.append((key >> 3, VARINT, data[pos + 1]))
                pos += 2
                continue
        field, pos = _read_field(data, pos, 0)
        out.append(field)
    return out


def iter_fields(data: bytes) -> Iterator[WireField]:
    """The fields of one encoded message, in wire order."""
    for number, wire, value in _scan(data):
        yield WireField(number, wire, value)


def read_fields(data: bytes) -> list[WireField]:
    return list(iter_fields(data))


def to_int64(value: int) -> int:
    """A varint or fixed64 read as Go's int64 (two's complement of the low 64 bits)."""
    value &= _MASK64
    return value - (1 << 64) if value >> 63 else value


def to_int32(value: int) -> int:
    """A varint read as Go's int32: the low 32 bits, two's complement (negative int32s
    are sent sign-extended to ten bytes)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


# -- descriptors ---------------------------------------------------------------------------------------

SCALAR_KINDS: Final = frozenset({"string", "bool", "int32", "int64", "bytes"})
WELL_KNOWN_KINDS: Final = frozenset({"time", "microtime", "duration", "quantity", "intstr", "raw", "fieldsv1"})
_PACKABLE: Final = frozenset({"bool", "int32", "int64"})


class FieldSpec(NamedTuple):
    """How one protobuf field maps onto the JSON form."""

    json_name: str      # "" for an inlined (embedded) struct
    kind: str           # a scalar or well-known kind, or "message"
    message_type: str   # the qualified message name when kind is "message", else ""
    repeated: bool
    is_map: bool        # map<string, kind/message_type>
    pointer: bool       # a Go pointer: present means written, even when zero
    omitempty: bool     # the Go JSON tag's omitempty
    path: str           # "Message.field", for error messages


_FIELD_RE: Final = re.compile(r"^(\d+) (,inline|,items|[A-Za-z][A-Za-z0-9]*) (\*|\[\]|map\[string\])?([A-Za-z0-9.]+)(!?)$")


# Field numbers from Kubernetes' generated.proto files; JSON names, pointers and omitempty from the Go types.
_SCHEMA: Final[dict[str, str]] = {
    "meta.v1": """
DeleteOptions 1 gracePeriodSeconds *int64; 2 preconditions *Preconditions; 3 orphanDependents *bool;
    4 propagationPolicy *string; 5 dryRun []string;
    6 ignoreStoreReadErrorWithClusterBreakingPotential *bool
Preconditions 1 uid *string; 2 resourceVersion *string
ObjectMeta 1 name string; 2 generateName string; 3 namespace string; 4 selfLink string; 5 uid string;
    6 resourceVersion string; 7 generation int64; 8 creationTimestamp time; 9 deletionTimestamp *time;
    10 deletionGracePeriodSeconds *int64; 11 labels map[string]string; 12 annotations map[string]string;
    13 ownerReferences []OwnerReference; 14 finalizers []string; 17 managedFields []ManagedFieldsEntry
OwnerReference 5 apiVersion string!; 1 kind string!; 3 name string!; 4 uid string!; 6 controller *bool;
    7 blockOwnerDeletion *bool
ManagedFieldsEntry 1 manager string; 2 operation string; 3 apiVersion string; 4 time *time;
    6 fieldsType string; 7 fieldsV1 *fieldsv1; 8 subresource string
Condition 1 type string!; 2 status string!; 3 observedGeneration int64; 4 lastTransitionTime time;
    5 reason string!; 6 message string!
LabelSelector 1 matchLabels map[string]string; 2 matchExpressions []LabelSelectorRequirement
LabelSelectorRequirement 1 key string!; 2 operator string!; 3 values []string
FieldSelectorRequirement 1 key string!; 2 operator string!; 3 values []string
""",
    "core.v1": """
Namespace 1 metadata meta.v1.ObjectMeta; 2 spec NamespaceSpec; 3 status NamespaceStatus
NamespaceSpec 1 finalizers []string
NamespaceStatus 1 phase string; 2 conditions []NamespaceCondition
NamespaceCondition 1 type string!; 2 status string!; 4 lastTransitionTime time; 5 reason string;
    6 message string
ConfigMap 1 metadata meta.v1.ObjectMeta; 4 immutable *bool; 2 data map[string]string;
    3 binaryData map[string]bytes
Secret 1 metadata meta.v1.ObjectMeta; 5 immutable *bool; 2 data map[string]bytes;
    4 stringData map[string]string; 3 type string
Service 1 metadata meta.v1.ObjectMeta; 2 spec ServiceSpec; 3 status ServiceStatus
ServiceSpec 1 ports []ServicePort; 2 selector map[string]string; 3 clusterIP string;
    18 clusterIPs []string; 4 type string; 5 externalIPs []string; 7 sessionAffinity string;
    8 loadBalancerIP string; 9 loadBalancerSourceRanges []string; 10 externalName string;
    11 externalTrafficPolicy string; 12 healthCheckNodePort int32; 13 publishNotReadyAddresses bool;
    14 sessionAffinityConfig *SessionAffinityConfig; 19 ipFamilies []string; 17 ipFamilyPolicy *string;
    20 allocateLoadBalancerNodePorts *bool; 21 loadBalancerClass *string;
    22 internalTrafficPolicy *string; 23 trafficDistribution *string
ServicePort 1 name string; 2 protocol string; 6 appProtocol *string; 3 port int32!; 4 targetPort intstr;
    5 nodePort int32
SessionAffinityConfig 1 clientIP *ClientIPConfig
ClientIPConfig 1 timeoutSeconds *int32
ServiceStatus 1 loadBalancer LoadBalancerStatus; 2 conditions []meta.v1.Condition
LoadBalancerStatus 1 ingress []LoadBalancerIngress
LoadBalancerIngress 1 ip string; 2 hostname string; 3 ipMode *string; 4 ports []PortStatus
PortStatus 1 port int32!; 2 protocol string!; 3 error *string
ServiceAccount 1 metadata meta.v1.ObjectMeta; 2 secrets []ObjectReference;
    3 imagePullSecrets []LocalObjectReference; 4 automountServiceAccountToken *bool
ObjectReference 1 kind string; 2 namespace string; 3 name string; 4 uid string; 5 apiVersion string;
    6 resourceVersion string; 7 fieldPath string
LocalObjectReference 1 name string
Pod 1 metadata meta.v1.ObjectMeta; 2 spec PodSpec; 3 status PodStatus
PodSpec 1 volumes []Volume; 20 initContainers []Container; 2 containers []Container!;
    34 ephemeralContainers []EphemeralContainer; 3 restartPolicy string;
    4 terminationGracePeriodSeconds *int64; 5 activeDeadlineSeconds *int64; 6 dnsPolicy string;
    7 nodeSelector map[string]string; 8 serviceAccountName string; 9 serviceAccount string;
    21 automountServiceAccountToken *bool; 10 nodeName string; 11 hostNetwork bool; 12 hostPID bool;
    13 hostIPC bool; 27 shareProcessNamespace *bool; 14 securityContext *PodSecurityContext;
    15 imagePullSecrets []LocalObjectReference; 16 hostname string; 17 subdomain string;
    18 affinity *Affinity; 19 schedulerName string; 22 tolerations []Toleration;
    23 hostAliases []HostAlias; 24 priorityClassName string; 25 priority *int32;
    26 dnsConfig *PodDNSConfig; 28 readinessGates []PodReadinessGate; 29 runtimeClassName *string;
    30 enableServiceLinks *bool; 31 preemptionPolicy *string; 32 overhead map[string]quantity;
    33 topologySpreadConstraints []TopologySpreadConstraint; 35 setHostnameAsFQDN *bool; 36 os *PodOS;
    37 hostUsers *bool; 38 schedulingGates []PodSchedulingGate; 39 resourceClaims []PodResourceClaim;
    40 resources *ResourceRequirements; 41 hostnameOverride *string;
    43 schedulingGroup *PodSchedulingGroup; 44 evictionResponders []EvictionResponder
Volume 1 name string!; 2 ,inline VolumeSource
VolumeSource 1 hostPath *HostPathVolumeSource; 2 emptyDir *EmptyDirVolumeSource;
    3 gcePersistentDisk *GCEPersistentDiskVolumeSource;
    4 awsElasticBlockStore *AWSElasticBlockStoreVolumeSource; 5 gitRepo *GitRepoVolumeSource;
    6 secret *SecretVolumeSource; 7 nfs *NFSVolumeSource; 8 iscsi *ISCSIVolumeSource;
    9 glusterfs *GlusterfsVolumeSource; 10 persistentVolumeClaim *PersistentVolumeClaimVolumeSource;
    11 rbd *RBDVolumeSource; 12 flexVolume *FlexVolumeSource; 13 cinder *CinderVolumeSource;
    14 cephfs *CephFSVolumeSource; 15 flocker *FlockerVolumeSource;
    16 downwardAPI *DownwardAPIVolumeSource; 17 fc *FCVolumeSource; 18 azureFile *AzureFileVolumeSource;
    19 configMap *ConfigMapVolumeSource; 20 vsphereVolume *VsphereVirtualDiskVolumeSource;
    21 quobyte *QuobyteVolumeSource; 22 azureDisk *AzureDiskVolumeSource;
    23 photonPersistentDisk *PhotonPersistentDiskVolumeSource; 26 projected *ProjectedVolumeSource;
    24 portworxVolume *PortworxVolumeSource; 25 scaleIO *ScaleIOVolumeSource;
    27 storageos *StorageOSVolumeSource; 28 csi *CSIVolumeSource; 29 ephemeral *EphemeralVolumeSource;
    30 image *ImageVolumeSource
HostPathVolumeSource 1 path string!; 2 type *string
EmptyDirVolumeSource 1 medium string; 2 sizeLimit *quantity; 3 mode *int32
GCEPersistentDiskVolumeSource 1 pdName string!; 2 fsType string; 3 partition int32; 4 readOnly bool
AWSElasticBlockStoreVolumeSource 1 volumeID string!; 2 fsType string; 3 partition int32;
    4 readOnly bool
GitRepoVolumeSource 1 repository string!; 2 revision string; 3 directory string
SecretVolumeSource 1 secretName string; 2 items []KeyToPath; 3 defaultMode *int32; 4 optional *bool;
    5 defaultUser *int64
KeyToPath 1 key string!; 2 path string!; 3 mode *int32; 4 user *int64
NFSVolumeSource 1 server string!; 2 path string!; 3 readOnly bool
ISCSIVolumeSource 1 targetPortal string!; 2 iqn string!; 3 lun int32!; 4 iscsiInterface string;
    5 fsType string; 6 readOnly bool; 7 portals []string; 8 chapAuthDiscovery bool;
    11 chapAuthSession bool; 10 secretRef *LocalObjectReference; 12 initiatorName *string
GlusterfsVolumeSource 1 endpoints string!; 2 path string!; 3 readOnly bool
PersistentVolumeClaimVolumeSource 1 claimName string!; 2 readOnly bool
RBDVolumeSource 1 monitors []string!; 2 image string!; 3 fsType string; 4 pool string; 5 user string;
    6 keyring string; 7 secretRef *LocalObjectReference; 8 readOnly bool
FlexVolumeSource 1 driver string!; 2 fsType string; 3 secretRef *LocalObjectReference; 4 readOnly bool;
    5 options map[string]string
CinderVolumeSource 1 volumeID string!; 2 fsType string; 3 readOnly bool;
    4 secretRef *LocalObjectReference
CephFSVolumeSource 1 monitors []string!; 2 path string; 3 user string; 4 secretFile string;
    5 secretRef *LocalObjectReference; 6 readOnly bool
FlockerVolumeSource 1 datasetName string; 2 datasetUUID string
DownwardAPIVolumeSource 1 items []DownwardAPIVolumeFile; 2 defaultMode *int32; 3 defaultUser *int64
DownwardAPIVolumeFile 1 path string!; 2 fieldRef *ObjectFieldSelector;
    3 resourceFieldRef *ResourceFieldSelector; 4 mode *int32; 5 user *int64
ObjectFieldSelector 1 apiVersion string; 2 fieldPath string!
ResourceFieldSelector 1 containerName string; 2 resource string!; 3 divisor quantity
FCVolumeSource 1 targetWWNs []string; 2 lun *int32; 3 fsType string; 4 readOnly bool; 5 wwids []string
AzureFileVolumeSource 1 secretName string!; 2 shareName string!; 3 readOnly bool
ConfigMapVolumeSource 1 ,inline LocalObjectReference; 2 items []KeyToPath; 3 defaultMode *int32;
    4 optional *bool; 5 defaultUser *int64
VsphereVirtualDiskVolumeSource 1 volumePath string!; 2 fsType string; 3 storagePolicyName string;
    4 storagePolicyID string
QuobyteVolumeSource 1 registry string!; 2 volume string!; 3 readOnly bool; 4 user string;
    5 group string; 6 tenant string
AzureDiskVolumeSource 1 diskName string!; 2 diskURI string!; 3 cachingMode *string; 4 fsType *string;
    5 readOnly *bool; 6 kind *string
PhotonPersistentDiskVolumeSource 1 pdID string!; 2 fsType string
ProjectedVolumeSource 1 sources []VolumeProjection!; 2 defaultMode *int32; 3 defaultUser *int64
VolumeProjection 1 secret *SecretProjection; 2 downwardAPI *DownwardAPIProjection;
    3 configMap *ConfigMapProjection; 4 serviceAccountToken *ServiceAccountTokenProjection;
    5 clusterTrustBundle *ClusterTrustBundleProjection; 6 podCertificate *PodCertificateProjection
SecretProjection 1 ,inline LocalObjectReference; 2 items []KeyToPath; 4 optional *bool
DownwardAPIProjection 1 items []DownwardAPIVolumeFile
ConfigMapProjection 1 ,inline LocalObjectReference; 2 items []KeyToPath; 4 optional *bool
ServiceAccountTokenProjection 1 audience string; 2 expirationSeconds *int64; 3 path string!;
    4 user *int64
ClusterTrustBundleProjection 1 name *string; 2 signerName *string;
    3 labelSelector *meta.v1.LabelSelector; 5 optional *bool; 4 path string!; 6 user *int64
PodCertificateProjection 1 signerName string; 2 keyType string; 3 maxExpirationSeconds *int32;
    4 credentialBundlePath string; 5 keyPath string; 6 certificateChainPath string;
    7 userAnnotations map[string]string; 8 user *int64
PortworxVolumeSource 1 volumeID string!; 2 fsType string; 3 readOnly bool
ScaleIOVolumeSource 1 gateway string!; 2 system string!; 3 secretRef *LocalObjectReference!;
    4 sslEnabled bool; 5 protectionDomain string; 6 storagePool string; 7 storageMode string;
    8 volumeName string; 9 fsType string; 10 readOnly bool
StorageOSVolumeSource 1 volumeName string; 2 volumeNamespace string; 3 fsType string; 4 readOnly bool;
    5 secretRef *LocalObjectReference
CSIVolumeSource 1 driver string!; 2 readOnly *bool; 3 fsType *string;
    4 volumeAttributes map[string]string; 5 nodePublishSecretRef *LocalObjectReference
EphemeralVolumeSource 1 volumeClaimTemplate *PersistentVolumeClaimTemplate
PersistentVolumeClaimTemplate 1 metadata meta.v1.ObjectMeta; 2 spec PersistentVolumeClaimSpec
PersistentVolumeClaimSpec 1 accessModes []string; 4 selector *meta.v1.LabelSelector;
    2 resources VolumeResourceRequirements; 3 volumeName string; 5 storageClassName *string;
    6 volumeMode *string; 7 dataSource *TypedLocalObjectReference;
    8 dataSourceRef *TypedObjectReference; 9 volumeAttributesClassName *string
VolumeResourceRequirements 1 limits map[string]quantity; 2 requests map[string]quantity
TypedLocalObjectReference 1 apiGroup *string!; 2 kind string!; 3 name string!
TypedObjectReference 1 apiGroup *string!; 2 kind string!; 3 name string!; 4 namespace *string
ImageVolumeSource 1 reference string; 2 pullPolicy string
Container 1 name string!; 2 image string; 3 command []string; 4 args []string; 5 workingDir string;
    6 ports []ContainerPort; 19 envFrom []EnvFromSource; 7 env []EnvVar;
    8 resources ResourceRequirements; 23 resizePolicy []ContainerResizePolicy; 24 restartPolicy *string;
    25 restartPolicyRules []ContainerRestartRule; 9 volumeMounts []VolumeMount;
    21 volumeDevices []VolumeDevice; 10 livenessProbe *Probe; 11 readinessProbe *Probe;
    22 startupProbe *Probe; 12 lifecycle *Lifecycle; 13 terminationMessagePath string;
    20 terminationMessagePolicy string; 14 imagePullPolicy string; 15 securityContext *SecurityContext;
    16 stdin bool; 17 stdinOnce bool; 18 tty bool
ContainerPort 1 name string; 2 hostPort int32; 3 containerPort int32!; 4 protocol string;
    5 hostIP string
EnvFromSource 1 prefix string; 2 configMapRef *ConfigMapEnvSource; 3 secretRef *SecretEnvSource
ConfigMapEnvSource 1 ,inline LocalObjectReference; 2 optional *bool
SecretEnvSource 1 ,inline LocalObjectReference; 2 optional *bool
EnvVar 1 name string!; 2 value string; 3 valueFrom *EnvVarSource
EnvVarSource 1 fieldRef *ObjectFieldSelector; 2 resourceFieldRef *ResourceFieldSelector;
    3 configMapKeyRef *ConfigMapKeySelector; 4 secretKeyRef *SecretKeySelector;
    5 fileKeyRef *FileKeySelector
ConfigMapKeySelector 1 ,inline LocalObjectReference; 2 key string!; 3 optional *bool
SecretKeySelector 1 ,inline LocalObjectReference; 2 key string!; 3 optional *bool
FileKeySelector 1 volumeName string!; 2 path string!; 3 key string!; 4 optional *bool
ResourceRequirements 1 limits map[string]quantity; 2 requests map[string]quantity;
    3 claims []ResourceClaim
ResourceClaim 1 name string!; 2 request string
ContainerResizePolicy 1 resourceName string!; 2 restartPolicy string!
ContainerRestartRule 1 action string; 2 exitCodes *ContainerRestartRuleOnExitCodes
ContainerRestartRuleOnExitCodes 1 operator string; 2 values []int32
VolumeMount 1 name string!; 2 readOnly bool; 7 recursiveReadOnly *string; 3 mountPath string!;
    4 subPath string; 5 mountPropagation *string; 6 subPathExpr string; 8 bindMountOptions []string
VolumeDevice 1 name string!; 2 devicePath string!
Probe 1 ,inline ProbeHandler; 2 initialDelaySeconds int32; 3 timeoutSeconds int32;
    4 periodSeconds int32; 5 successThreshold int32; 6 failureThreshold int32;
    7 terminationGracePeriodSeconds *int64
ProbeHandler 1 exec *ExecAction; 2 httpGet *HTTPGetAction; 3 tcpSocket *TCPSocketAction;
    4 grpc *GRPCAction
ExecAction 1 command []string
HTTPGetAction 1 path string; 2 port intstr; 3 host string; 4 scheme string; 5 httpHeaders []HTTPHeader;
    6 protocol *string
HTTPHeader 1 name string!; 2 value string!
TCPSocketAction 1 port intstr; 2 host string
GRPCAction 1 port int32!; 2 service *string!; 3 mode *string
Lifecycle 1 postStart *LifecycleHandler; 2 preStop *LifecycleHandler; 3 stopSignal *string
LifecycleHandler 1 exec *ExecAction; 2 httpGet *HTTPGetAction; 3 tcpSocket *TCPSocketAction;
    4 sleep *SleepAction
SleepAction 1 seconds int64!
SecurityContext 1 capabilities *Capabilities; 2 privileged *bool; 3 seLinuxOptions *SELinuxOptions;
    10 windowsOptions *WindowsSecurityContextOptions; 4 runAsUser *int64; 8 runAsGroup *int64;
    5 runAsNonRoot *bool; 6 readOnlyRootFilesystem *bool; 7 allowPrivilegeEscalation *bool;
    9 procMount *string; 11 seccompProfile *SeccompProfile; 12 appArmorProfile *AppArmorProfile
Capabilities 1 add []string; 2 drop []string
SELinuxOptions 1 user string; 2 role string; 3 type string; 4 level string
WindowsSecurityContextOptions 1 gmsaCredentialSpecName *string; 2 gmsaCredentialSpec *string;
    3 runAsUserName *string; 4 hostProcess *bool
SeccompProfile 1 type string!; 2 localhostProfile *string
AppArmorProfile 1 type string!; 2 localhostProfile *string
EphemeralContainer 1 ,inline EphemeralContainerCommon; 2 targetContainerName string
EphemeralContainerCommon 1 name string!; 2 image string; 3 command []string; 4 args []string;
    5 workingDir string; 6 ports []ContainerPort; 19 envFrom []EnvFromSource; 7 env []EnvVar;
    8 resources ResourceRequirements; 23 resizePolicy []ContainerResizePolicy; 24 restartPolicy *string;
    25 restartPolicyRules []ContainerRestartRule; 9 volumeMounts []VolumeMount;
    21 volumeDevices []VolumeDevice; 10 livenessProbe *Probe; 11 readinessProbe *Probe;
    22 startupProbe *Probe; 12 lifecycle *Lifecycle; 13 terminationMessagePath string;
    20 terminationMessagePolicy string; 14 imagePullPolicy string; 15 securityContext *SecurityContext;
    16 stdin bool; 17 stdinOnce bool; 18 tty bool
PodSecurityContext 1 seLinuxOptions *SELinuxOptions; 8 windowsOptions *WindowsSecurityContextOptions;
    2 runAsUser *int64; 6 runAsGroup *int64; 3 runAsNonRoot *bool; 4 supplementalGroups []int64;
    12 supplementalGroupsPolicy *string; 5 fsGroup *int64; 7 sysctls []Sysctl;
    9 fsGroupChangePolicy *string; 10 seccompProfile *SeccompProfile;
    11 appArmorProfile *AppArmorProfile; 13 seLinuxChangePolicy *string
Sysctl 1 name string!; 2 value string!
Affinity 1 nodeAffinity *NodeAffinity; 2 podAffinity *PodAffinity; 3 podAntiAffinity *PodAntiAffinity
NodeAffinity 1 requiredDuringSchedulingIgnoredDuringExecution *NodeSelector;
    2 preferredDuringSchedulingIgnoredDuringExecution []PreferredSchedulingTerm
NodeSelector 1 nodeSelectorTerms []NodeSelectorTerm!
NodeSelectorTerm 1 matchExpressions []NodeSelectorRequirement; 2 matchFields []NodeSelectorRequirement
NodeSelectorRequirement 1 key string!; 2 operator string!; 3 values []string
PreferredSchedulingTerm 1 weight int32!; 2 preference NodeSelectorTerm
PodAffinity 1 requiredDuringSchedulingIgnoredDuringExecution []PodAffinityTerm;
    2 preferredDuringSchedulingIgnoredDuringExecution []WeightedPodAffinityTerm
PodAffinityTerm 1 labelSelector *meta.v1.LabelSelector; 2 namespaces []string; 3 topologyKey string!;
    4 namespaceSelector *meta.v1.LabelSelector; 5 matchLabelKeys []string; 6 mismatchLabelKeys []string
WeightedPodAffinityTerm 1 weight int32!; 2 podAffinityTerm PodAffinityTerm
PodAntiAffinity 1 requiredDuringSchedulingIgnoredDuringExecution []PodAffinityTerm;
    2 preferredDuringSchedulingIgnoredDuringExecution []WeightedPodAffinityTerm
Toleration 1 key string; 2 operator string; 3 value string; 4 effect string; 5 tolerationSeconds *int64
HostAlias 1 ip string!; 2 hostnames []string
PodDNSConfig 1 nameservers []string; 2 searches []string; 3 options []PodDNSConfigOption
PodDNSConfigOption 1 name string; 2 value *string
PodReadinessGate 1 conditionType string!
TopologySpreadConstraint 1 maxSkew int32!; 2 topologyKey string!; 3 whenUnsatisfiable string!;
    4 labelSelector *meta.v1.LabelSelector; 5 minDomains *int32; 6 nodeAffinityPolicy *string;
    7 nodeTaintsPolicy *string; 8 matchLabelKeys []string
PodOS 1 name string!
PodSchedulingGate 1 name string!
PodResourceClaim 1 name string!; 3 resourceClaimName *string; 4 resourceClaimTemplateName *string
PodSchedulingGroup 1 podGroupName *string
EvictionResponder 1 name string!; 2 priority *int32!
PodStatus 17 observedGeneration int64; 1 phase string; 2 conditions []PodCondition; 3 message string;
    4 reason string; 11 nominatedNodeName string; 5 hostIP string; 16 hostIPs []HostIP; 6 podIP string;
    12 podIPs []PodIP; 7 startTime *time; 10 initContainerStatuses []ContainerStatus;
    8 containerStatuses []ContainerStatus; 9 qosClass string;
    13 ephemeralContainerStatuses []ContainerStatus; 14 resize string;
    15 resourceClaimStatuses []PodResourceClaimStatus;
    18 extendedResourceClaimStatus *PodExtendedResourceClaimStatus;
    19 allocatedResources map[string]quantity; 20 resources *ResourceRequirements;
    21 nodeAllocatableResourceClaimStatuses []NodeAllocatableResourceClaimStatus;
    22 volumeHealth []PodVolumeHealth
PodCondition 1 type string!; 7 observedGeneration int64; 2 status string!; 3 lastProbeTime time;
    4 lastTransitionTime time; 5 reason string; 6 message string
HostIP 1 ip string!
PodIP 1 ip string!
ContainerStatus 1 name string!; 2 state ContainerState; 3 lastState ContainerState; 4 ready bool!;
    5 restartCount int32!; 6 image string!; 7 imageID string!; 8 containerID string; 9 started *bool;
    10 allocatedResources map[string]quantity; 11 resources *ResourceRequirements;
    12 volumeMounts []VolumeMountStatus; 13 user *ContainerUser;
    14 allocatedResourcesStatus []ResourceStatus; 15 stopSignal *string
ContainerState 1 waiting *ContainerStateWaiting; 2 running *ContainerStateRunning;
    3 terminated *ContainerStateTerminated
ContainerStateWaiting 1 reason string; 2 message string
ContainerStateRunning 1 startedAt time
ContainerStateTerminated 1 exitCode int32!; 2 signal int32; 3 reason string; 4 message string;
    5 startedAt time; 6 finishedAt time; 7 containerID string
VolumeMountStatus 1 name string!; 2 mountPath string!; 3 readOnly bool; 4 recursiveReadOnly *string;
    5 volumeStatus *VolumeStatus
VolumeStatus 1 image *ImageVolumeStatus
ImageVolumeStatus 1 imageRef string
ContainerUser 1 linux *LinuxContainerUser
LinuxContainerUser 1 uid int64!; 2 gid int64!; 3 supplementalGroups []int64
ResourceStatus 1 name string!; 2 resources []ResourceHealth
ResourceHealth 1 resourceID string!; 2 health string; 6 message *string
PodResourceClaimStatus 1 name string!; 2 resourceClaimName *string
PodExtendedResourceClaimStatus 1 requestMappings []ContainerExtendedResourceRequest!;
    2 resourceClaimName string!
ContainerExtendedResourceRequest 1 containerName string!; 2 resourceName string!; 3 requestName string!
NodeAllocatableResourceClaimStatus 1 resourceClaimName string!; 2 containers []string;
    4 mapping []NodeAllocatableMappedResources; 5 overhead []NodeAllocatableOverheadResources
NodeAllocatableMappedResources 1 name string!; 2 quantity *quantity!
NodeAllocatableOverheadResources 1 name string!; 2 perPod *quantity; 3 perContainer *quantity
PodVolumeHealth 1 name string!; 2 healthConditions []VolumeHealthCondition; 3 lastTransitionTime time
VolumeHealthCondition 1 status string!; 2 reason string!; 3 message string
PodTemplate 1 metadata meta.v1.ObjectMeta; 2 template PodTemplateSpec
PodTemplateSpec 1 metadata meta.v1.ObjectMeta; 2 spec PodSpec
ReplicationController 1 metadata meta.v1.ObjectMeta; 2 spec ReplicationControllerSpec;
    3 status ReplicationControllerStatus
ReplicationControllerSpec 1 replicas *int32; 4 minReadySeconds int32; 2 selector map[string]string;
    3 template *PodTemplateSpec
ReplicationControllerStatus 1 replicas int32!; 2 fullyLabeledReplicas int32; 4 readyReplicas int32;
    5 availableReplicas int32; 3 observedGeneration int64;
    6 conditions []ReplicationControllerCondition
ReplicationControllerCondition 1 type string!; 2 status string!; 3 lastTransitionTime time;
    4 reason string; 5 message string
Node 1 metadata meta.v1.ObjectMeta; 2 spec NodeSpec; 3 status NodeStatus
NodeSpec 1 podCIDR string; 7 podCIDRs []string; 3 providerID string; 4 unschedulable bool;
    5 taints []Taint; 6 configSource *NodeConfigSource; 2 externalID string;
    8 podPreemptionPolicy *NodePodPreemptionPolicy
Taint 1 key string!; 2 value string; 3 effect string!; 4 timeAdded *time
NodeConfigSource 2 configMap *ConfigMapNodeConfigSource
ConfigMapNodeConfigSource 1 namespace string!; 2 name string!; 3 uid string; 4 resourceVersion string;
    5 kubeletConfigKey string!
NodePodPreemptionPolicy 1 disableResizePreemption []string
NodeStatus 1 capacity map[string]quantity; 2 allocatable map[string]quantity; 3 phase string;
    4 conditions []NodeCondition; 5 addresses []NodeAddress; 6 daemonEndpoints NodeDaemonEndpoints;
    7 nodeInfo NodeSystemInfo; 8 images []ContainerImage; 9 volumesInUse []string;
    10 volumesAttached []AttachedVolume; 11 config *NodeConfigStatus;
    12 runtimeHandlers []NodeRuntimeHandler; 13 features *NodeFeatures; 14 declaredFeatures []string
NodeCondition 1 type string!; 2 status string!; 3 lastHeartbeatTime time; 4 lastTransitionTime time;
    5 reason string; 6 message string
NodeAddress 1 type string!; 2 address string!
NodeDaemonEndpoints 1 kubeletEndpoint DaemonEndpoint
DaemonEndpoint 1 Port int32!
NodeSystemInfo 1 machineID string!; 2 systemUUID string!; 3 bootID string!; 4 kernelVersion string!;
    5 osImage string!; 6 containerRuntimeVersion string!; 7 kubeletVersion string!;
    8 kubeProxyVersion string!; 9 operatingSystem string!; 10 architecture string!;
    11 swap *NodeSwapStatus
NodeSwapStatus 1 capacity *int64
ContainerImage 1 names []string!; 2 sizeBytes int64
AttachedVolume 1 name string!; 2 devicePath string!
NodeConfigStatus 1 assigned *NodeConfigSource; 2 active *NodeConfigSource;
    3 lastKnownGood *NodeConfigSource; 4 error string
NodeRuntimeHandler 1 name string!; 2 features *NodeRuntimeHandlerFeatures
NodeRuntimeHandlerFeatures 1 recursiveReadOnlyMounts *bool; 2 userNamespaces *bool
NodeFeatures 1 supplementalGroupsPolicy *bool
Endpoints 1 metadata meta.v1.ObjectMeta; 2 subsets []EndpointSubset
EndpointSubset 1 addresses []EndpointAddress; 2 notReadyAddresses []EndpointAddress;
    3 ports []EndpointPort
EndpointAddress 1 ip string!; 3 hostname string; 4 nodeName *string; 2 targetRef *ObjectReference
EndpointPort 1 name string; 2 port int32!; 3 protocol string; 4 appProtocol *string
Event 1 metadata meta.v1.ObjectMeta; 2 involvedObject ObjectReference; 3 reason string;
    4 message string; 5 source EventSource; 6 firstTimestamp time; 7 lastTimestamp time; 8 count int32;
    9 type string; 10 eventTime microtime; 11 series *EventSeries; 12 action string;
    13 related *ObjectReference; 14 reportingComponent string!; 15 reportingInstance string!
EventSource 1 component string; 2 host string
EventSeries 1 count int32; 2 lastObservedTime microtime
PersistentVolumeClaim 1 metadata meta.v1.ObjectMeta; 2 spec PersistentVolumeClaimSpec;
    3 status PersistentVolumeClaimStatus
PersistentVolumeClaimStatus 1 phase string; 2 accessModes []string; 3 capacity map[string]quantity;
    4 conditions []PersistentVolumeClaimCondition; 5 allocatedResources map[string]quantity;
    7 allocatedResourceStatuses map[string]string; 8 currentVolumeAttributesClassName *string;
    9 modifyVolumeStatus *ModifyVolumeStatus; 10 healthStatus *VolumeHealthStatus
PersistentVolumeClaimCondition 1 type string!; 2 status string!; 3 lastProbeTime time;
    4 lastTransitionTime time; 5 reason string; 6 message string
ModifyVolumeStatus 1 targetVolumeAttributesClassName string; 2 status string!
VolumeHealthStatus 1 healthConditions []VolumeHealthCondition; 2 lastTransitionTime time
PersistentVolume 1 metadata meta.v1.ObjectMeta; 2 spec PersistentVolumeSpec;
    3 status PersistentVolumeStatus
PersistentVolumeSpec 1 capacity map[string]quantity; 2 ,inline PersistentVolumeSource;
    3 accessModes []string; 4 claimRef *ObjectReference; 5 persistentVolumeReclaimPolicy string;
    6 storageClassName string; 7 mountOptions []string; 8 volumeMode *string;
    9 nodeAffinity *VolumeNodeAffinity; 10 volumeAttributesClassName *string
PersistentVolumeSource 1 gcePersistentDisk *GCEPersistentDiskVolumeSource;
    2 awsElasticBlockStore *AWSElasticBlockStoreVolumeSource; 3 hostPath *HostPathVolumeSource;
    4 glusterfs *GlusterfsPersistentVolumeSource; 5 nfs *NFSVolumeSource;
    6 rbd *RBDPersistentVolumeSource; 7 iscsi *ISCSIPersistentVolumeSource;
    8 cinder *CinderPersistentVolumeSource; 9 cephfs *CephFSPersistentVolumeSource;
    10 fc *FCVolumeSource; 11 flocker *FlockerVolumeSource; 12 flexVolume *FlexPersistentVolumeSource;
    13 azureFile *AzureFilePersistentVolumeSource; 14 vsphereVolume *VsphereVirtualDiskVolumeSource;
    15 quobyte *QuobyteVolumeSource; 16 azureDisk *AzureDiskVolumeSource;
    17 photonPersistentDisk *PhotonPersistentDiskVolumeSource; 18 portworxVolume *PortworxVolumeSource;
    19 scaleIO *ScaleIOPersistentVolumeSource; 20 local *LocalVolumeSource;
    21 storageos *StorageOSPersistentVolumeSource; 22 csi *CSIPersistentVolumeSource
GlusterfsPersistentVolumeSource 1 endpoints string!; 2 path string!; 3 readOnly bool;
    4 endpointsNamespace *string
RBDPersistentVolumeSource 1 monitors []string!; 2 image string!; 3 fsType string; 4 pool string;
    5 user string; 6 keyring string; 7 secretRef *SecretReference; 8 readOnly bool
SecretReference 1 name string; 2 namespace string
ISCSIPersistentVolumeSource 1 targetPortal string!; 2 iqn string!; 3 lun int32!;
    4 iscsiInterface string; 5 fsType string; 6 readOnly bool; 7 portals []string;
    8 chapAuthDiscovery bool; 11 chapAuthSession bool; 10 secretRef *SecretReference;
    12 initiatorName *string
CinderPersistentVolumeSource 1 volumeID string!; 2 fsType string; 3 readOnly bool;
    4 secretRef *SecretReference
CephFSPersistentVolumeSource 1 monitors []string!; 2 path string; 3 user string; 4 secretFile string;
    5 secretRef *SecretReference; 6 readOnly bool
FlexPersistentVolumeSource 1 driver string!; 2 fsType string; 3 secretRef *SecretReference;
    4 readOnly bool; 5 options map[string]string
AzureFilePersistentVolumeSource 1 secretName string!; 2 shareName string!; 3 readOnly bool;
    4 secretNamespace *string!
ScaleIOPersistentVolumeSource 1 gateway string!; 2 system string!; 3 secretRef *SecretReference!;
    4 sslEnabled bool; 5 protectionDomain string; 6 storagePool string; 7 storageMode string;
    8 volumeName string; 9 fsType string; 10 readOnly bool
LocalVolumeSource 1 path string!; 2 fsType *string
StorageOSPersistentVolumeSource 1 volumeName string; 2 volumeNamespace string; 3 fsType string;
    4 readOnly bool; 5 secretRef *ObjectReference
CSIPersistentVolumeSource 1 driver string!; 2 volumeHandle string!; 3 readOnly bool; 4 fsType string;
    5 volumeAttributes map[string]string; 6 controllerPublishSecretRef *SecretReference;
    7 nodeStageSecretRef *SecretReference; 8 nodePublishSecretRef *SecretReference;
    9 controllerExpandSecretRef *SecretReference; 10 nodeExpandSecretRef *SecretReference
VolumeNodeAffinity 1 required *NodeSelector
PersistentVolumeStatus 1 phase string; 2 message string; 3 reason string;
    4 lastPhaseTransitionTime *time
ResourceQuota 1 metadata meta.v1.ObjectMeta; 2 spec ResourceQuotaSpec; 3 status ResourceQuotaStatus
ResourceQuotaSpec 1 hard map[string]quantity; 2 scopes []string; 3 scopeSelector *ScopeSelector
ScopeSelector 1 matchExpressions []ScopedResourceSelectorRequirement
ScopedResourceSelectorRequirement 1 scopeName string!; 2 operator string!; 3 values []string
ResourceQuotaStatus 1 hard map[string]quantity; 2 used map[string]quantity
LimitRange 1 metadata meta.v1.ObjectMeta; 2 spec LimitRangeSpec
LimitRangeSpec 1 limits []LimitRangeItem!
LimitRangeItem 1 type string!; 2 max map[string]quantity; 3 min map[string]quantity;
    4 default map[string]quantity; 5 defaultRequest map[string]quantity;
    6 maxLimitRequestRatio map[string]quantity
Binding 1 metadata meta.v1.ObjectMeta; 2 target ObjectReference
TopologySelectorTerm 1 matchLabelExpressions []TopologySelectorLabelRequirement
TopologySelectorLabelRequirement 1 key string!; 2 values []string!
""",
    "apps.v1": """
Deployment 1 metadata meta.v1.ObjectMeta; 2 spec DeploymentSpec; 3 status DeploymentStatus
DeploymentSpec 1 replicas *int32; 2 selector *meta.v1.LabelSelector!;
    3 template core.v1.PodTemplateSpec; 4 strategy DeploymentStrategy; 5 minReadySeconds int32;
    6 revisionHistoryLimit *int32; 7 paused bool; 9 progressDeadlineSeconds *int32
DeploymentStrategy 1 type string; 2 rollingUpdate *RollingUpdateDeployment
RollingUpdateDeployment 1 maxUnavailable *intstr; 2 maxSurge *intstr
DeploymentStatus 1 observedGeneration int64; 2 replicas int32; 3 updatedReplicas int32;
    7 readyReplicas int32; 4 availableReplicas int32; 5 unavailableReplicas int32;
    9 terminatingReplicas *int32; 6 conditions []DeploymentCondition; 8 collisionCount *int32
DeploymentCondition 1 type string!; 2 status string!; 6 lastUpdateTime time; 7 lastTransitionTime time;
    4 reason string; 5 message string
ReplicaSet 1 metadata meta.v1.ObjectMeta; 2 spec ReplicaSetSpec; 3 status ReplicaSetStatus
ReplicaSetSpec 1 replicas *int32; 4 minReadySeconds int32; 2 selector *meta.v1.LabelSelector!;
    3 template core.v1.PodTemplateSpec
ReplicaSetStatus 1 replicas int32!; 2 fullyLabeledReplicas int32; 4 readyReplicas int32;
    5 availableReplicas int32; 7 terminatingReplicas *int32; 3 observedGeneration int64;
    6 conditions []ReplicaSetCondition
ReplicaSetCondition 1 type string!; 2 status string!; 3 lastTransitionTime time; 4 reason string;
    5 message string
StatefulSet 1 metadata meta.v1.ObjectMeta; 2 spec StatefulSetSpec; 3 status StatefulSetStatus
StatefulSetSpec 1 replicas *int32; 2 selector *meta.v1.LabelSelector!;
    3 template core.v1.PodTemplateSpec; 4 volumeClaimTemplates []core.v1.PersistentVolumeClaim;
    5 serviceName string!; 6 podManagementPolicy string; 7 updateStrategy StatefulSetUpdateStrategy;
    8 revisionHistoryLimit *int32; 9 minReadySeconds int32;
    10 persistentVolumeClaimRetentionPolicy *StatefulSetPersistentVolumeClaimRetentionPolicy;
    11 ordinals *StatefulSetOrdinals
StatefulSetUpdateStrategy 1 type string; 2 rollingUpdate *RollingUpdateStatefulSetStrategy
RollingUpdateStatefulSetStrategy 1 partition *int32; 2 maxUnavailable *intstr
StatefulSetPersistentVolumeClaimRetentionPolicy 1 whenDeleted string; 2 whenScaled string
StatefulSetOrdinals 1 start int32!
StatefulSetStatus 1 observedGeneration int64; 2 replicas int32!; 3 readyReplicas int32;
    4 currentReplicas int32; 5 updatedReplicas int32; 6 currentRevision string; 7 updateRevision string;
    9 collisionCount *int32; 10 conditions []StatefulSetCondition; 11 availableReplicas int32!
StatefulSetCondition 1 type string!; 2 status string!; 3 lastTransitionTime time; 4 reason string;
    5 message string
DaemonSet 1 metadata meta.v1.ObjectMeta; 2 spec DaemonSetSpec; 3 status DaemonSetStatus
DaemonSetSpec 1 selector *meta.v1.LabelSelector!; 2 template core.v1.PodTemplateSpec;
    3 updateStrategy DaemonSetUpdateStrategy; 4 minReadySeconds int32; 6 revisionHistoryLimit *int32
DaemonSetUpdateStrategy 1 type string; 2 rollingUpdate *RollingUpdateDaemonSet
RollingUpdateDaemonSet 1 maxUnavailable *intstr; 2 maxSurge *intstr
DaemonSetStatus 1 currentNumberScheduled int32!; 2 numberMisscheduled int32!;
    3 desiredNumberScheduled int32!; 4 numberReady int32!; 5 observedGeneration int64;
    6 updatedNumberScheduled int32; 7 numberAvailable int32; 8 numberUnavailable int32;
    9 collisionCount *int32; 10 conditions []DaemonSetCondition
DaemonSetCondition 1 type string!; 2 status string!; 3 lastTransitionTime time; 4 reason string;
    5 message string
ControllerRevision 1 metadata meta.v1.ObjectMeta; 2 data raw; 3 revision int64!
""",
    "batch.v1": """
Job 1 metadata meta.v1.ObjectMeta; 2 spec JobSpec; 3 status JobStatus
JobSpec 1 parallelism *int32; 2 completions *int32; 3 activeDeadlineSeconds *int64;
    11 podFailurePolicy *PodFailurePolicy; 16 successPolicy *SuccessPolicy; 7 backoffLimit *int32;
    12 backoffLimitPerIndex *int32; 13 maxFailedIndexes *int32; 4 selector *meta.v1.LabelSelector;
    5 manualSelector *bool; 6 template core.v1.PodTemplateSpec; 8 ttlSecondsAfterFinished *int32;
    9 completionMode *string; 10 suspend *bool; 14 podReplacementPolicy *string; 15 managedBy *string
PodFailurePolicy 1 rules []PodFailurePolicyRule!
PodFailurePolicyRule 1 action string!; 2 onExitCodes *PodFailurePolicyOnExitCodesRequirement;
    3 onPodConditions []PodFailurePolicyOnPodConditionsPattern
PodFailurePolicyOnExitCodesRequirement 1 containerName *string; 2 operator string!; 3 values []int32!
PodFailurePolicyOnPodConditionsPattern 1 type string!; 2 status string!
SuccessPolicy 1 rules []SuccessPolicyRule!
SuccessPolicyRule 1 succeededIndexes *string; 2 succeededCount *int32
JobStatus 1 conditions []JobCondition; 2 startTime *time; 3 completionTime *time; 4 active int32;
    5 succeeded int32; 6 failed int32; 11 terminating *int32; 7 completedIndexes string;
    10 failedIndexes *string; 8 uncountedTerminatedPods *UncountedTerminatedPods; 9 ready *int32
JobCondition 1 type string!; 2 status string!; 3 lastProbeTime time; 4 lastTransitionTime time;
    5 reason string; 6 message string
UncountedTerminatedPods 1 succeeded []string; 2 failed []string
CronJob 1 metadata meta.v1.ObjectMeta; 2 spec CronJobSpec; 3 status CronJobStatus
CronJobSpec 1 schedule string!; 8 timeZone *string; 2 startingDeadlineSeconds *int64;
    3 concurrencyPolicy string; 4 suspend *bool; 5 jobTemplate JobTemplateSpec;
    6 successfulJobsHistoryLimit *int32; 7 failedJobsHistoryLimit *int32
JobTemplateSpec 1 metadata meta.v1.ObjectMeta; 2 spec JobSpec
CronJobStatus 1 active []core.v1.ObjectReference; 4 lastScheduleTime *time; 5 lastSuccessfulTime *time
""",
    "rbac.v1": """
Role 1 metadata meta.v1.ObjectMeta; 2 rules []PolicyRule!
PolicyRule 1 verbs []string!; 2 apiGroups []string; 3 resources []string; 4 resourceNames []string;
    5 nonResourceURLs []string
ClusterRole 1 metadata meta.v1.ObjectMeta; 2 rules []PolicyRule!; 3 aggregationRule *AggregationRule
AggregationRule 1 clusterRoleSelectors []meta.v1.LabelSelector
RoleBinding 1 metadata meta.v1.ObjectMeta; 2 subjects []Subject; 3 roleRef RoleRef
Subject 1 kind string!; 2 apiGroup string; 3 name string!; 4 namespace string
RoleRef 1 apiGroup string!; 2 kind string!; 3 name string!
ClusterRoleBinding 1 metadata meta.v1.ObjectMeta; 2 subjects []Subject; 3 roleRef RoleRef
""",
    "scheduling.v1": """
PriorityClass 1 metadata meta.v1.ObjectMeta; 2 value int32!; 3 globalDefault bool; 4 description string;
    5 preemptionPolicy *string
""",
    "policy.v1": """
PodDisruptionBudget 1 metadata meta.v1.ObjectMeta; 2 spec PodDisruptionBudgetSpec;
    3 status PodDisruptionBudgetStatus
PodDisruptionBudgetSpec 1 minAvailable *intstr; 2 selector *meta.v1.LabelSelector;
    3 maxUnavailable *intstr; 4 unhealthyPodEvictionPolicy *string
PodDisruptionBudgetStatus 1 observedGeneration int64; 2 disruptedPods map[string]time;
    3 disruptionsAllowed int32!; 4 currentHealthy int32!; 5 desiredHealthy int32!;
    6 expectedPods int32!; 7 conditions []meta.v1.Condition
Eviction 1 metadata meta.v1.ObjectMeta; 2 deleteOptions *meta.v1.DeleteOptions
""",
    "networking.v1": """
Ingress 1 metadata meta.v1.ObjectMeta; 2 spec IngressSpec; 3 status IngressStatus
IngressSpec 4 ingressClassName *string; 1 defaultBackend *IngressBackend; 2 tls []IngressTLS;
    3 rules []IngressRule
IngressBackend 4 service *IngressServiceBackend; 3 resource *core.v1.TypedLocalObjectReference
IngressServiceBackend 1 name string!; 2 port ServiceBackendPort
ServiceBackendPort 1 name string; 2 number int32
IngressTLS 1 hosts []string; 2 secretName string
IngressRule 1 host string; 2 ,inline IngressRuleValue
IngressRuleValue 1 http *HTTPIngressRuleValue
HTTPIngressRuleValue 1 paths []HTTPIngressPath!
HTTPIngressPath 1 path string; 3 pathType *string!; 2 backend IngressBackend
IngressStatus 1 loadBalancer IngressLoadBalancerStatus
IngressLoadBalancerStatus 1 ingress []IngressLoadBalancerIngress
IngressLoadBalancerIngress 1 ip string; 2 hostname string; 4 ports []IngressPortStatus
IngressPortStatus 1 port int32!; 2 protocol string!; 3 error *string
IngressClass 1 metadata meta.v1.ObjectMeta; 2 spec IngressClassSpec
IngressClassSpec 1 controller string; 2 parameters *IngressClassParametersReference
IngressClassParametersReference 1 apiGroup *string; 2 kind string!; 3 name string!; 4 scope *string!;
    5 namespace *string
NetworkPolicy 1 metadata meta.v1.ObjectMeta; 2 spec NetworkPolicySpec
NetworkPolicySpec 1 podSelector meta.v1.LabelSelector; 2 ingress []NetworkPolicyIngressRule;
    3 egress []NetworkPolicyEgressRule; 4 policyTypes []string
NetworkPolicyIngressRule 1 ports []NetworkPolicyPort; 2 from []NetworkPolicyPeer
NetworkPolicyPort 1 protocol *string; 2 port *intstr; 3 endPort *int32
NetworkPolicyPeer 1 podSelector *meta.v1.LabelSelector; 2 namespaceSelector *meta.v1.LabelSelector;
    3 ipBlock *IPBlock
IPBlock 1 cidr string!; 2 except []string
NetworkPolicyEgressRule 1 ports []NetworkPolicyPort; 2 to []NetworkPolicyPeer
""",
    "authentication.v1": """
TokenRequest 1 metadata meta.v1.ObjectMeta; 2 spec TokenRequestSpec; 3 status TokenRequestStatus
TokenRequestSpec 1 audiences []string!; 4 expirationSeconds *int64!;
    3 boundObjectRef *BoundObjectReference!; 5 attestations map[string]AttestationValue
BoundObjectReference 1 kind string; 2 apiVersion string; 3 name string; 4 uid string
AttestationValue 1 ,items []string
TokenRequestStatus 1 token string!; 2 expirationTimestamp time
TokenReview 1 metadata meta.v1.ObjectMeta; 2 spec TokenReviewSpec; 3 status TokenReviewStatus
TokenReviewSpec 1 token string; 2 audiences []string
TokenReviewStatus 1 authenticated bool; 2 user UserInfo; 4 audiences []string; 3 error string
UserInfo 1 username string; 2 uid string; 3 groups []string; 4 extra map[string]ExtraValue
ExtraValue 1 ,items []string
SelfSubjectReview 1 metadata meta.v1.ObjectMeta; 2 status SelfSubjectReviewStatus
SelfSubjectReviewStatus 1 userInfo UserInfo
""",
    "authorization.v1": """
SelfSubjectAccessReview 1 metadata meta.v1.ObjectMeta; 2 spec SelfSubjectAccessReviewSpec;
    3 status SubjectAccessReviewStatus
SelfSubjectAccessReviewSpec 1 resourceAttributes *ResourceAttributes;
    2 nonResourceAttributes *NonResourceAttributes
ResourceAttributes 1 namespace string; 2 verb string; 3 group string; 4 version string;
    5 resource string; 6 subresource string; 7 name string; 8 fieldSelector *FieldSelectorAttributes;
    9 labelSelector *LabelSelectorAttributes
FieldSelectorAttributes 1 rawSelector string; 2 requirements []meta.v1.FieldSelectorRequirement
LabelSelectorAttributes 1 rawSelector string; 2 requirements []meta.v1.LabelSelectorRequirement
NonResourceAttributes 1 path string; 2 verb string
SubjectAccessReviewStatus 1 allowed bool!; 4 denied bool; 2 reason string; 3 evaluationError string
SubjectAccessReview 1 metadata meta.v1.ObjectMeta; 2 spec SubjectAccessReviewSpec;
    3 status SubjectAccessReviewStatus
SubjectAccessReviewSpec 1 resourceAttributes *ResourceAttributes;
    2 nonResourceAttributes *NonResourceAttributes; 3 user string; 4 groups []string;
    5 extra map[string]ExtraValue; 6 uid string
ExtraValue 1 ,items []string
LocalSubjectAccessReview 1 metadata meta.v1.ObjectMeta; 2 spec SubjectAccessReviewSpec;
    3 status SubjectAccessReviewStatus
SelfSubjectRulesReview 1 metadata meta.v1.ObjectMeta; 2 spec SelfSubjectRulesReviewSpec;
    3 status SubjectRulesReviewStatus
SelfSubjectRulesReviewSpec 1 namespace string
SubjectRulesReviewStatus 1 resourceRules []ResourceRule!; 2 nonResourceRules []NonResourceRule!;
    3 incomplete bool!; 4 evaluationError string
ResourceRule 1 verbs []string!; 2 apiGroups []string; 3 resources []string; 4 resourceNames []string
NonResourceRule 1 verbs []string!; 2 nonResourceURLs []string
""",
    "discovery.v1": """
EndpointSlice 1 metadata meta.v1.ObjectMeta; 4 addressType string!; 2 endpoints []Endpoint!;
    3 ports []EndpointPort!
Endpoint 1 addresses []string!; 2 conditions EndpointConditions; 3 hostname *string;
    4 targetRef *core.v1.ObjectReference; 5 deprecatedTopology map[string]string; 6 nodeName *string;
    7 zone *string; 8 hints *EndpointHints
EndpointConditions 1 ready *bool; 2 serving *bool; 3 terminating *bool
EndpointHints 1 forZones []ForZone; 2 forNodes []ForNode
ForZone 1 name string!
ForNode 1 name string!
EndpointPort 1 name *string; 2 protocol *string; 3 port *int32; 4 appProtocol *string
""",
    "coordination.v1": """
Lease 1 metadata meta.v1.ObjectMeta; 2 spec LeaseSpec
LeaseSpec 1 holderIdentity *string; 2 leaseDurationSeconds *int32; 3 acquireTime *microtime;
    4 renewTime *microtime; 5 leaseTransitions *int32; 6 strategy *string; 7 preferredHolder *string
""",
    "events.v1": """
Event 1 metadata meta.v1.ObjectMeta; 2 eventTime microtime; 3 series *EventSeries;
    4 reportingController string; 5 reportingInstance string; 6 action string; 7 reason string;
    8 regarding core.v1.ObjectReference; 9 related *core.v1.ObjectReference; 10 note string;
    11 type string; 12 deprecatedSource core.v1.EventSource; 13 deprecatedFirstTimestamp time;
    14 deprecatedLastTimestamp time; 15 deprecatedCount int32
EventSeries 1 count int32!; 2 lastObservedTime microtime
""",
    "autoscaling.v1": """
Scale 1 metadata meta.v1.ObjectMeta; 2 spec ScaleSpec; 3 status ScaleStatus
ScaleSpec 1 replicas int32
ScaleStatus 1 replicas int32!; 2 selector string
HorizontalPodAutoscaler 1 metadata meta.v1.ObjectMeta; 2 spec HorizontalPodAutoscalerSpec;
    3 status HorizontalPodAutoscalerStatus
HorizontalPodAutoscalerSpec 1 scaleTargetRef CrossVersionObjectReference; 2 minReplicas *int32;
    3 maxReplicas int32!; 4 targetCPUUtilizationPercentage *int32
CrossVersionObjectReference 1 kind string!; 2 name string!; 3 apiVersion string
HorizontalPodAutoscalerStatus 1 observedGeneration *int64; 2 lastScaleTime *time;
    3 currentReplicas int32!; 4 desiredReplicas int32!; 5 currentCPUUtilizationPercentage *int32
""",
    "autoscaling.v2": """
HorizontalPodAutoscaler 1 metadata meta.v1.ObjectMeta; 2 spec HorizontalPodAutoscalerSpec;
    3 status HorizontalPodAutoscalerStatus
HorizontalPodAutoscalerSpec 1 scaleTargetRef CrossVersionObjectReference; 2 minReplicas *int32;
    3 maxReplicas int32!; 4 metrics []MetricSpec; 5 behavior *HorizontalPodAutoscalerBehavior
CrossVersionObjectReference 1 kind string!; 2 name string!; 3 apiVersion string
MetricSpec 1 type string!; 2 object *ObjectMetricSource; 3 pods *PodsMetricSource;
    4 resource *ResourceMetricSource; 7 containerResource *ContainerResourceMetricSource;
    5 external *ExternalMetricSource
ObjectMetricSource 1 describedObject CrossVersionObjectReference; 2 target MetricTarget;
    3 metric MetricIdentifier
MetricTarget 1 type string!; 2 value *quantity; 3 averageValue *quantity; 4 averageUtilization *int32
MetricIdentifier 1 name string!; 2 selector *meta.v1.LabelSelector
PodsMetricSource 1 metric MetricIdentifier; 2 target MetricTarget
ResourceMetricSource 1 name string!; 2 target MetricTarget
ContainerResourceMetricSource 1 name string!; 2 target MetricTarget; 3 container string!
ExternalMetricSource 1 metric MetricIdentifier; 2 target MetricTarget
HorizontalPodAutoscalerBehavior 1 scaleUp *HPAScalingRules; 2 scaleDown *HPAScalingRules
HPAScalingRules 3 stabilizationWindowSeconds *int32; 1 selectPolicy *string;
    2 policies []HPAScalingPolicy; 4 tolerance *quantity
HPAScalingPolicy 1 type string!; 2 value int32!; 3 periodSeconds int32!
HorizontalPodAutoscalerStatus 1 observedGeneration *int64; 2 lastScaleTime *time;
    3 currentReplicas int32; 4 desiredReplicas int32!; 5 currentMetrics []MetricStatus!;
    6 conditions []HorizontalPodAutoscalerCondition
MetricStatus 1 type string!; 2 object *ObjectMetricStatus; 3 pods *PodsMetricStatus;
    4 resource *ResourceMetricStatus; 7 containerResource *ContainerResourceMetricStatus;
    5 external *ExternalMetricStatus
ObjectMetricStatus 1 metric MetricIdentifier; 2 current MetricValueStatus;
    3 describedObject CrossVersionObjectReference
MetricValueStatus 1 value *quantity; 2 averageValue *quantity; 3 averageUtilization *int32
PodsMetricStatus 1 metric MetricIdentifier; 2 current MetricValueStatus
ResourceMetricStatus 1 name string!; 2 current MetricValueStatus
ContainerResourceMetricStatus 1 name string!; 2 current MetricValueStatus; 3 container string!
ExternalMetricStatus 1 metric MetricIdentifier; 2 current MetricValueStatus
HorizontalPodAutoscalerCondition 1 type string!; 2 status string!; 3 lastTransitionTime time;
    4 reason string; 5 message string; 6 observedGeneration *int64
""",
    "certificates.v1": """
CertificateSigningRequest 1 metadata meta.v1.ObjectMeta; 2 spec CertificateSigningRequestSpec;
    3 status CertificateSigningRequestStatus
CertificateSigningRequestSpec 1 request bytes!; 7 signerName string!; 8 expirationSeconds *int32;
    5 usages []string; 2 username string; 3 uid string; 4 groups []string;
    6 extra map[string]ExtraValue
ExtraValue 1 ,items []string
CertificateSigningRequestStatus 1 conditions []CertificateSigningRequestCondition; 2 certificate bytes
CertificateSigningRequestCondition 1 type string!; 6 status string!; 2 reason string; 3 message string;
    4 lastUpdateTime time; 5 lastTransitionTime time
""",
    "storage.v1": """
StorageClass 1 metadata meta.v1.ObjectMeta; 2 provisioner string!; 3 parameters map[string]string;
    4 reclaimPolicy *string; 5 mountOptions []string; 6 allowVolumeExpansion *bool;
    7 volumeBindingMode *string; 8 allowedTopologies []core.v1.TopologySelectorTerm
""",
}

# The apiVersion of each package's kinds, and the kinds a body may carry at the top level.
_API_VERSIONS: Final[dict[str, str]] = {
    "core.v1": "v1", "apps.v1": "apps/v1", "batch.v1": "batch/v1", "rbac.v1": "rbac.authorization.k8s.io/v1",
    "scheduling.v1": "scheduling.k8s.io/v1", "policy.v1": "policy/v1", "networking.v1": "networking.k8s.io/v1",
    "authentication.v1": "authentication.k8s.io/v1", "authorization.v1": "authorization.k8s.io/v1",
    "discovery.v1": "discovery.k8s.io/v1", "coordination.v1": "coordination.k8s.io/v1",
    "events.v1": "events.k8s.io/v1", "autoscaling.v1": "autoscaling/v1", "autoscaling.v2": "autoscaling/v2",
    "certificates.v1": "certificates.k8s.io/v1", "storage.v1": "storage.k8s.io/v1",
}
_TOP_LEVEL: Final[dict[str, str]] = {
    "core.v1": "Namespace ConfigMap Secret Service ServiceAccount Pod PodTemplate ReplicationController Node "
               "Endpoints Event PersistentVolumeClaim PersistentVolume ResourceQuota LimitRange Binding",
    "apps.v1": "Deployment ReplicaSet StatefulSet DaemonSet ControllerRevision",
    "batch.v1": "Job CronJob",
    "rbac.v1": "Role ClusterRole RoleBinding ClusterRoleBinding",
    "scheduling.v1": "PriorityClass",
    "policy.v1": "PodDisruptionBudget Eviction",
    "networking.v1": "Ingress IngressClass NetworkPolicy",
    "authentication.v1": "TokenRequest TokenReview SelfSubjectReview",
    "authorization.v1": "SelfSubjectAccessReview SubjectAccessReview LocalSubjectAccessReview "
                        "SelfSubjectRulesReview",
    "discovery.v1": "EndpointSlice",
    "coordination.v1": "Lease",
    "events.v1": "Event",
    "autoscaling.v1": "Scale HorizontalPodAutoscaler",
    "autoscaling.v2": "HorizontalPodAutoscaler",
    "certificates.v1": "CertificateSigningRequest",
    "storage.v1": "StorageClass",
}


def _compile(schema: dict[str, str]) -> dict[str, dict[int, FieldSpec]]:
    lines: dict[str, str] = {}
    for package, text in schema.items():
        current = ""
        for line in text.splitlines():
            if not line.strip():
                continue
            if line[0].isspace():
                lines[current] += " " + line.strip()
            else:
                name, _, rest = line.partition(" ")
                current = f"{package}.{name}"
                if current in lines:
                    raise ValueError(f"message {current} is described twice")
                lines[current] = rest
    descriptors: dict[str, dict[int, FieldSpec]] = {}
    for message, text in lines.items():
        package = message.rsplit(".", 1)[0]
        fields: dict[int, FieldSpec] = {}
        for token in filter(None, (t.strip() for t in text.split(";"))):
            match = _FIELD_RE.match(token)
            if match is None:
                raise ValueError(f"{message}: cannot read field {token!r}")
            number, json_name, shape, base, bang = match.groups()
            if base in SCALAR_KINDS or base in WELL_KNOWN_KINDS:
                kind, message_type = base, ""
            else:
                kind, message_type = "message", base if "." in base else f"{package}.{base}"
            fields[int(number)] = FieldSpec(
                json_name="" if json_name == ",inline" else json_name, kind=kind, message_type=message_type,
                repeated=shape == "[]", is_map=shape == "map[string]", pointer=shape == "*", omitempty=not bang,
                path=f"{message.rsplit('.', 1)[1]}.{base if json_name == ',inline' else json_name.lstrip(',')}")
        descriptors[message] = fields
    for message, fields in descriptors.items():
        for spec in fields.values():
            if spec.kind == "message" and spec.message_type not in descriptors:
                raise ValueError(f"{message}.{spec.json_name} refers to the undescribed {spec.message_type}")
            if spec.json_name == ",items" and len(fields) != 1:
                raise ValueError(f"{message}: an ,items message has exactly one field")
    return descriptors


DESCRIPTORS: Final[dict[str, dict[int, FieldSpec]]] = _compile(_SCHEMA)


def _writes_when_unset(spec: FieldSpec) -> bool:
    """Whether encoding/json writes the field of a Go value decoded without it."""
    if spec.pointer or spec.repeated or spec.is_map or spec.kind in SCALAR_KINDS:
        return not spec.omitempty
    return True  # structs by value, embedded ones included, are always written


# Per message: the fields written even when unset, each field's position in the Go struct, and
# whether the message is a Go named slice (",items").
_LAYOUT: Final[dict[str, tuple[frozenset[int], dict[int, int], bool]]] = {
    message: (frozenset(n for n, spec in fields.items() if _writes_when_unset(spec)),
              {n: i for i, n in enumerate(fields)},
              any(spec.json_name == ",items" for spec in fields.values()))
    for message, fields in DESCRIPTORS.items()
}
KINDS: Final[dict[tuple[str, str], str]] = {
    (_API_VERSIONS[package], kind): f"{package}.{kind}"
    for package, kinds in _TOP_LEVEL.items() for kind in kinds.split()
}
# DeleteOptions travels under every group version (kube registers it in each) and meta.k8s.io/v1.
for _api_version in {*_API_VERSIONS.values(), "meta.k8s.io/v1"}:
    KINDS[(_api_version, "DeleteOptions")] = "meta.v1.DeleteOptions"


# -- values --------------------------------------------------------------------------------------------

def _text(value: bytes, where: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _malformed(f"{where} is not valid UTF-8") from exc


def _rfc3339(seconds: int, micros: int | None, where: str) -> str:
    try:
        moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    except OverflowError as exc:
        raise _malformed(f"{where}: time {seconds}s is out of range") from exc
    if not 1 <= moment.year <= 9999:
        raise _malformed(f"{where}: time {seconds}s is out of range")
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}Z" if micros is None else f"{stamp}.{micros:06d}Z"


def _timestamp(data: bytes, where: str) -> tuple[int, int]:
    seconds = nanos = 0
    for field in _scan(data):
        if field[0] == 1:
            seconds = to_int64(_expect_int(field, where))
        elif field[0] == 2:
            nanos = to_int32(_expect_int(field, where))
    return seconds, nanos


def _time(data: bytes, where: str) -> str | None:
    """metav1.Time: an empty message is the zero time (``null``); nanoseconds are dropped."""
    if not data:
        return None
    seconds, _ = _timestamp(data, where)
    return _rfc3339(seconds, None, where)


def _microtime(data: bytes, where: str) -> str | None:
    if not data:
        return None
    seconds, nanos = _timestamp(data, where)
    nanos -= nanos % 1000 if nanos >= 0 else -(-nanos % 1000)  # truncate toward zero, as Go does
    extra_seconds, nanos = divmod(nanos, 1_000_000_000)
    return _rfc3339(seconds + extra_seconds, nanos // 1000, where)


def go_duration(nanoseconds: int) -> str:
    """Go's ``time.Duration.String``: ``1h2m3.5s``, ``1.5ms``, ``0s``."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    n = abs(nanoseconds)

    def with_fraction(value: int, digits: int) -> str:
        whole, frac = divmod(value, 10 ** digits)
        text = f"{frac:0{digits}d}".rstrip("0")
        return f"{whole}.{text}" if text else str(whole)

    if n < 1_000:
        return f"{sign}{n}ns"
    if n < 1_000_000:
        return f"{sign}{with_fraction(n, 3)}µs"
    if n < 1_000_000_000:
        return f"{sign}{with_fraction(n, 6)}ms"
    seconds_text = with_fraction(n % 60_000_000_000, 9)
    minutes = n // 60_000_000_000
    if not minutes:
        return f"{sign}{seconds_text}s"
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{sign}{minutes}m{seconds_text}s"
    return f"{sign}{hours}h{minutes}m{seconds_text}s"


def _duration(data: bytes, where: str) -> str:
    nanoseconds = 0
    for field in _scan(data):
        if field[0] == 1:
            nanoseconds = to_int64(_expect_int(field, where))
    return go_duration(nanoseconds)


# resource.Quantity's grammar: a signed decimal, then a binary-SI, decimal-SI or exponent suffix.
_QUANTITY_RE: Final = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[KMGTPE]i|[eE][+-]?[0-9]+|[mkMGTPE])?$")


def _quantity(data: bytes, where: str) -> str:
    text = "0"  # the zero Quantity
    for field in _scan(data):
        if field[0] == 1:
            text = _text(_expect_bytes(field, where), where)
            if not _QUANTITY_RE.match(text):
                raise _malformed(f"{where}: {text!r} is not a quantity")
    return text


def _int_or_string(data: bytes, where: str) -> int | str:
    kind, int_value, str_value = 0, 0, ""
    for field in _scan(data):
        if field[0] == 1:
            kind = to_int64(_expect_int(field, where))
        elif field[0] == 2:
            int_value = to_int32(_expect_int(field, where))
        elif field[0] == 3:
            str_value = _text(_expect_bytes(field, where), where)
    if kind == 0:
        return int_value
    if kind == 1:
        return str_value
    raise _malformed(f"{where}: IntOrString type {kind} is neither 0 (int) nor 1 (string)")


def _embedded_json(raw: bytes, where: str, depth: int) -> Any:
    if not raw:
        return None
    if raw.startswith(MAGIC):
        return _decode_envelope(raw, depth + 1)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _malformed(f"{where} does not hold JSON: {exc}") from exc


def _raw_extension(data: bytes, where: str, depth: int) -> Any:
    raw = b""
    for field in _scan(data):
        if field[0] == 1:
            raw = _expect_bytes(field, where)
    return _embedded_json(raw, where, depth)


def _expect_int(field: _Raw, where: str) -> int:
    if field[1] != VARINT or not isinstance(field[2], int):
        raise _malformed(f"{where} (field {field[0]}) has wire type {field[1]}, expected a varint")
    return field[2]


def _expect_bytes(field: _Raw, where: str) -> bytes:
    if field[1] != LENGTH_DELIMITED or not isinstance(field[2], bytes):
        raise _malformed(f"{where} (field {field[0]}) has wire type {field[1]}, "
                         f"expected length-delimited")
    return field[2]


def _scalar(kind: str, value: int, where: str) -> Any:
    if kind == "bool":
        return value != 0
    if kind == "int32":
        return to_int32(value)
    if kind == "int64":
        return to_int64(value)
    raise _malformed(f"{where} is a {kind}, not a number")


def _element(spec: FieldSpec, field: _Raw, where: str, depth: int) -> Any:
    """One value of a field (one element of a repeated field) in its JSON form."""
    kind = spec.kind
    if kind in _PACKABLE:
        return _scalar(kind, _expect_int(field, where), where)
    data = _expect_bytes(field, where)
    if kind == "string":
        return _text(data, where)
    if kind == "bytes":
        return base64.b64encode(data).decode("ascii")
    if kind == "message":
        return _decode(spec.message_type, data, depth + 1)
    if kind == "time":
        return _time(data, where)
    if kind == "microtime":
        return _microtime(data, where)
    if kind == "duration":
        return _duration(data, where)
    if kind == "quantity":
        return _quantity(data, where)
    if kind == "intstr":
        return _int_or_string(data, where)
    if kind == "raw":
        return _raw_extension(data, where, depth)
    if kind == "fieldsv1":
        return _raw_extension(data, where, depth)  # FieldsV1{Raw = 1}: the same shape
    raise AssertionError(f"unknown kind {kind}")


def _zero(spec: FieldSpec, depth: int) -> Any:
    """The JSON of a Go zero value of the field's element type."""
    kind = spec.kind
    if kind == "message":
        return _decode(spec.message_type, b"", depth + 1)
    return _ZEROS[kind]


_ZEROS: Final[dict[str, Any]] = {
    "string": "", "bool": False, "int32": 0, "int64": 0, "bytes": "", "time": None, "microtime": None,
    "duration": "0s", "quantity": "0", "intstr": 0, "raw": None, "fieldsv1": None,
}


def _map_entry(spec: FieldSpec, data: bytes, depth: int) -> tuple[str, Any]:
    key, value, has_value = "", None, False
    for field in _scan(data):
        if field[0] == 1:
            key = _text(_expect_bytes(field, spec.path), f"{spec.path} key")
        elif field[0] == 2:
            value, has_value = _element(spec, field, spec.path, depth), True
    if not has_value:
        value = _zero(spec, depth)
    return key, value


# -- messages ------------------------------------------------------------------------------------------

def _decode(message: str, data: bytes, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise _malformed("messages nested too deeply")
    descriptor = DESCRIPTORS[message]
    found: dict[int, Any] = {}
    merged: dict[int, bytearray] = {}  # singular sub-messages: repeated occurrences merge, as in protobuf
    for field in _scan(data):
        number = field[0]
        spec = descriptor.get(number)
        if spec is None:
            logger.debug("protobuf %s: skipping unknown field %d (wire type %d)", message, number, field[1])
            continue
        if spec.is_map:
            key, entry = _map_entry(spec, _expect_bytes(field, spec.path), depth)
            found.setdefault(number, {})[key] = entry
        elif spec.repeated:
            items = found.setdefault(number, [])
            if spec.kind in _PACKABLE and field[1] == LENGTH_DELIMITED:
                packed, pos = _expect_bytes(field, spec.path), 0
                while pos < len(packed):
                    item, pos = read_varint(packed, pos)
                    items.append(_scalar(spec.kind, item, spec.path))
            else:
                items.append(_element(spec, field, spec.path, depth))
        elif spec.kind == "message":
            merged.setdefault(number, bytearray()).extend(_expect_bytes(field, spec.path))
        else:
            found[number] = _element(spec, field, spec.path, depth)  # the last occurrence wins
    for number, parts in merged.items():
        found[number] = _decode(descriptor[number].message_type, bytes(parts), depth + 1)

    always, position, unwrap = _LAYOUT[message]
    if unwrap:
        return next(iter(found.values()), None) or None  # a Go named slice: nil and empty are both null
    numbers = always.union(found) if found else always
    out: Obj = {}
    for number in sorted(numbers, key=position.__getitem__):  # the Go struct's field order
        spec = descriptor[number]
        present = number in found
        value: Any = found[number] if present else None
        if not spec.json_name:  # an embedded struct: its fields join ours
            out.update(value if present else _zero(spec, depth))
        elif spec.pointer:
            out[spec.json_name] = value  # set (even to a zero value), or absent without omitempty: null
        elif spec.repeated or spec.is_map:
            if value:
                out[spec.json_name] = value
            elif not spec.omitempty:
                out[spec.json_name] = None  # a nil slice or map
        elif spec.kind in SCALAR_KINDS:
            if not present:
                value = None if spec.kind == "bytes" else _ZEROS[spec.kind]
            if not (spec.omitempty and value in (None, "", 0, False)):
                out[spec.json_name] = value
        else:  # a struct by value: encoding/json always writes it
            out[spec.json_name] = value if present else _zero(spec, depth)
    return out


def decode_message(message: str, data: bytes) -> Obj:
    """Decode ``data`` as the named message (``"apps.v1.Deployment"``) into its JSON form."""
    if message not in DESCRIPTORS:
        raise KeyError(f"no protobuf descriptor for {message}")
    decoded = _decode(message, data, 0)
    if not isinstance(decoded, dict):
        raise TypeError(f"{message} decodes to a list, not an object")
    return decoded


def _decode_envelope(body: bytes, depth: int) -> Obj:
    api_version = kind = encoding = ""
    raw = b""
    for field in _scan(body[len(MAGIC):]):
        if field[0] == 1:
            for meta in _scan(_expect_bytes(field, "Unknown.typeMeta")):
                if meta[0] == 1:
                    api_version = _text(_expect_bytes(meta, "Unknown.typeMeta.apiVersion"), "apiVersion")
                elif meta[0] == 2:
                    kind = _text(_expect_bytes(meta, "Unknown.typeMeta.kind"), "kind")
        elif field[0] == 2:
            raw = _expect_bytes(field, "Unknown.raw")
        elif field[0] == 3:
            encoding = _text(_expect_bytes(field, "Unknown.contentEncoding"), "contentEncoding")
    if not api_version or not kind:
        raise _malformed("the envelope names no apiVersion and kind")
    if encoding:
        raise UnsupportedMediaType(f"protobuf request bodies with content encoding {encoding!r} are not "
                                   f"supported; send them unencoded or as application/json")
    message = KINDS.get((api_version, kind))
    if message is None:
        raise UnsupportedMediaType(f"this server cannot decode {api_version}, Kind={kind} from protobuf; "
                                   f"send it as application/json")
    obj: Obj = {"kind": kind, "apiVersion": api_version}
    obj.update(_decode(message, raw, depth + 1))
    return obj


def decode(body: bytes) -> Obj:
    """Decode an enveloped protobuf request body into the object's JSON form."""
    if not body.startswith(MAGIC):
        raise _malformed("it does not start with the Kubernetes protobuf prefix 'k8s\\x00'")
    return _decode_envelope(body, 0)
