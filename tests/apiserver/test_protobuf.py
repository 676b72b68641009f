"""Protobuf request bodies: the wire decoder, the JSON mapping, and the real kubectl as the oracle.

For each ``kubectl create ...`` the protobuf body kubectl sends must decode to exactly the
object the same command prints with ``--dry-run=client -o json`` (kubectl builds one Go
object and either serialises it as protobuf for the server or as JSON for the terminal).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from atoll.api.builtin import new_registry
from atoll.api.errors import APIError, BadRequest, UnsupportedMediaType
from atoll.apiserver import protobuf
from atoll.apiserver.discovery import Discovery
from atoll.apiserver.protobuf import WireField

FIXTURES = Path(__file__).parent / "fixtures" / "protobuf"


# -- a tiny encoder, written from the wire format, to build inputs ----------------------------------

def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def key(num: int, wire: int) -> bytes:
    return varint(num << 3 | wire)


def f(num: int, value: int | bytes | str) -> bytes:
    """A varint field for ints, a length-delimited one for bytes and strings."""
    if isinstance(value, int):
        return key(num, 0) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return key(num, 2) + varint(len(data)) + data


def entry(k: str, v: bytes | str) -> bytes:
    """A map entry (key = 1, value = 2); ``v`` already encoded when bytes."""
    return f(1, k) + f(2, v)


def envelope(api_version: str, kind: str, raw: bytes, *, encoding: str = "") -> bytes:
    unknown = f(1, f(1, api_version) + f(2, kind)) + f(2, raw)
    if encoding:
        unknown += f(3, encoding)
    return protobuf.MAGIC + unknown + f(4, "")


def quantity(text: str) -> bytes:
    return f(1, text)


def timestamp(seconds: int, nanos: int = 0) -> bytes:
    return f(1, seconds) + (f(2, nanos) if nanos else b"")


# -- the wire format --------------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "expected"), [
    (f(1, 0), [WireField(1, 0, 0)]),
    (f(1, 1), [WireField(1, 0, 1)]),
    (f(1, 127), [WireField(1, 0, 127)]),
    (f(1, 128), [WireField(1, 0, 128)]),
    (f(1, 300), [WireField(1, 0, 300)]),
    (f(1, 2**63), [WireField(1, 0, 2**63)]),
    (f(1, 2**64 - 1), [WireField(1, 0, 2**64 - 1)]),
    (f(536870911, 5), [WireField(536870911, 0, 5)]),  # the largest field number
    (f(2, b"hi"), [WireField(2, 2, b"hi")]),
    (f(2, b""), [WireField(2, 2, b"")]),
    (f(1, 1) + f(1, 2), [WireField(1, 0, 1), WireField(1, 0, 2)]),
    (key(3, 5) + (7).to_bytes(4, "little"), [WireField(3, 5, 7)]),
    (key(4, 1) + (2**64 - 1).to_bytes(8, "little"), [WireField(4, 1, 2**64 - 1)]),
    # a group (wire type 3) is read as one field holding its contents, nested groups included
    (key(5, 3) + f(1, 9) + key(6, 3) + key(6, 4) + key(5, 4) + f(2, b"x"),
     [WireField(5, 3, f(1, 9) + key(6, 3) + key(6, 4)), WireField(2, 2, b"x")]),
    (b"", []),
])
def test_wire_fields(data: bytes, expected: list[WireField]) -> None:
    assert protobuf.read_fields(data) == expected


@pytest.mark.parametrize(("encoded", "int32", "int64"), [
    (varint(0), 0, 0),
    (varint(150), 150, 150),
    (varint(-1), -1, -1),                          # sign-extended to ten bytes, as Go sends int32 too
    (varint(-2147483648), -2147483648, -2147483648),
    (varint(2147483647), 2147483647, 2147483647),
    (varint(2**31), -2147483648, 2**31),           # an int32 keeps the low 32 bits
    (varint(-(2**63)), 0, -(2**63)),
    (bytes.fromhex("ffffffff0f"), -1, 4294967295),  # a five-byte -1 (non-canonical int32)
])
def test_signed_varints(encoded: bytes, int32: int, int64: int) -> None:
    value, pos = protobuf.read_varint(encoded, 0)
    assert pos == len(encoded)
    assert protobuf.to_int32(value) == int32
    assert protobuf.to_int64(value) == int64


# -- messages and the JSON mapping --------------------------------------------------------------------

META = f(1, "web") + f(3, "default")
ZERO_META: dict[str, Any] = {"creationTimestamp": None}

MESSAGE_CASES: list[tuple[str, str, bytes, dict[str, Any]]] = [
    ("empty message: non-pointer structs and non-omitempty fields still appear",
     "apps.v1.Deployment", b"",
     {"metadata": ZERO_META,
      "spec": {"selector": None, "template": {"metadata": ZERO_META, "spec": {"containers": None}},
               "strategy": {}},
      "status": {}}),
    ("a present pointer keeps its zero value; a non-pointer zero scalar is omitted",
     "apps.v1.DeploymentSpec", f(1, 0) + f(5, 0) + f(7, 0) + f(6, -1),
     {"replicas": 0, "selector": None, "revisionHistoryLimit": -1,
      "template": {"metadata": ZERO_META, "spec": {"containers": None}}, "strategy": {}}),
    ("nested messages, repeated messages, maps and quantities",
     "core.v1.PodSpec",
     f(2, f(1, "c") + f(2, "nginx") + f(3, "sleep") + f(3, "10")
           + f(8, f(1, entry("cpu", quantity("500m"))) + f(2, entry("memory", quantity("1Gi"))))
           + f(6, f(3, 80) + f(4, "TCP")))
     + f(7, entry("disk", "ssd")) + f(7, entry("zone", "a")),
     {"containers": [{"name": "c", "image": "nginx", "command": ["sleep", "10"],
                      "ports": [{"containerPort": 80, "protocol": "TCP"}],
                      "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "1Gi"}}}],
      "nodeSelector": {"disk": "ssd", "zone": "a"}}),
    ("packed and unpacked repeated int64 (negative too) in one field",
     "core.v1.PodSecurityContext", f(4, varint(1) + varint(300) + varint(-5)) + f(4, 7),
     {"supplementalGroups": [1, 300, -5, 7]}),
    ("an embedded struct is inlined (Volume -> VolumeSource, ConfigMapVolumeSource -> LocalObjectReference)",
     "core.v1.Volume", f(1, "cfg") + f(2, f(19, f(1, f(1, "settings")) + f(3, 0o644))),
     {"name": "cfg", "configMap": {"name": "settings", "defaultMode": 420}}),
    ("an embedded struct that is absent leaves nothing behind",
     "core.v1.Probe", f(3, 5),
     {"timeoutSeconds": 5}),
    ("a non-omitempty string is written even when empty",
     "core.v1.Container", f(2, "busybox"),
     {"name": "", "image": "busybox", "resources": {}}),
    ("the last occurrence of a scalar wins; a repeated sub-message merges like protobuf",
     "core.v1.ServicePort", f(1, "a") + f(1, "b") + f(3, 80) + f(4, f(1, 1) + f(3, "http")) + f(4, f(1, 0)),
     {"name": "b", "port": 80, "targetPort": 0}),
    ("IntOrString as a string and as an int, and an absent non-pointer one as 0",
     "apps.v1.RollingUpdateDeployment", f(1, f(1, 1) + f(3, "25%")) + f(2, f(2, 2)),
     {"maxUnavailable": "25%", "maxSurge": 2}),
    ("bytes maps are base64; string maps stay strings; a map entry without a value is zero",
     "core.v1.Secret", f(2, entry("p", b"\x00\xffq")) + f(2, f(1, "none")) + f(4, entry("s", "t")) + f(3, "Opaque"),
     {"metadata": ZERO_META, "data": {"p": "AP9x", "none": ""}, "stringData": {"s": "t"}, "type": "Opaque"}),
    ("Time: RFC 3339 seconds, nanoseconds dropped; an empty Time message is null; epoch is not null",
     "meta.v1.ObjectMeta", f(8, timestamp(1700000000, 999)) + f(9, b"") + f(10, 30),
     {"creationTimestamp": "2023-11-14T22:13:20Z", "deletionTimestamp": None, "deletionGracePeriodSeconds": 30}),
    ("a pointer Time at the Unix epoch",
     "meta.v1.ObjectMeta", f(9, timestamp(0)),
     {"creationTimestamp": None, "deletionTimestamp": "1970-01-01T00:00:00Z"}),
    ("MicroTime keeps microseconds, truncating nanoseconds",
     "coordination.v1.LeaseSpec", f(1, "me") + f(3, timestamp(1700000000, 123456789)) + f(4, timestamp(5)),
     {"holderIdentity": "me", "acquireTime": "2023-11-14T22:13:20.123456Z",
      "renewTime": "1970-01-01T00:00:05.000000Z"}),
    ("a map of Times",
     "policy.v1.PodDisruptionBudgetStatus", f(2, entry("p", timestamp(60))),
     {"disruptedPods": {"p": "1970-01-01T00:01:00Z"}, "disruptionsAllowed": 0, "currentHealthy": 0,
      "desiredHealthy": 0, "expectedPods": 0}),
    ("RawExtension holds JSON; int64 stays an int",
     "apps.v1.ControllerRevision", f(2, f(1, b'{"spec":{"replicas":3}}')) + f(3, 2**40),
     {"metadata": ZERO_META, "data": {"spec": {"replicas": 3}}, "revision": 2**40}),
    ("RawExtension holding an enveloped protobuf object",
     "apps.v1.ControllerRevision", f(2, f(1, envelope("v1", "ConfigMap", f(2, entry("a", "b"))))) + f(3, 1),
     {"metadata": ZERO_META, "revision": 1,
      "data": {"kind": "ConfigMap", "apiVersion": "v1", "metadata": ZERO_META, "data": {"a": "b"}}}),
    ("managed fields: FieldsV1 is its raw JSON",
     "meta.v1.ManagedFieldsEntry",
     f(1, "kubectl") + f(2, "Update") + f(4, timestamp(86400)) + f(6, "FieldsV1") + f(7, f(1, b'{"f:data":{}}')),
     {"manager": "kubectl", "operation": "Update", "time": "1970-01-02T00:00:00Z", "fieldsType": "FieldsV1",
      "fieldsV1": {"f:data": {}}}),
    ("a named slice in a map decodes to the bare list (UserInfo.extra)",
     "authentication.v1.UserInfo", f(1, "u") + f(4, entry("scopes", f(1, "a") + f(1, "b"))) + f(4, f(1, "none")),
     {"username": "u", "extra": {"scopes": ["a", "b"], "none": None}}),
    ("bools: false omitted unless a pointer",
     "core.v1.Container", f(1, "c") + f(16, 1) + f(18, 0),
     {"name": "c", "resources": {}, "stdin": True}),
    ("a bytes field without omitempty: absent is null",
     "certificates.v1.CertificateSigningRequestSpec", f(7, "kubernetes.io/kube-apiserver-client"),
     {"request": None, "signerName": "kubernetes.io/kube-apiserver-client"}),
    ("unknown fields of any wire type are skipped",
     "core.v1.LocalObjectReference",
     f(99, 5) + f(98, b"zz") + key(97, 1) + bytes(8) + key(96, 5) + bytes(4) + key(95, 3) + key(95, 4) + f(1, "n"),
     {"name": "n"}),
    ("DeleteOptions: pointers kept at zero, dryRun list",
     "meta.v1.DeleteOptions", f(1, 0) + f(4, "Foreground") + f(5, "All") + f(2, f(2, "42")),
     {"gracePeriodSeconds": 0, "preconditions": {"resourceVersion": "42"}, "propagationPolicy": "Foreground",
      "dryRun": ["All"]}),
]


@pytest.mark.parametrize(("message", "data", "expected"),
                         [c[1:] for c in MESSAGE_CASES], ids=[c[0] for c in MESSAGE_CASES])
def test_decode_message(message: str, data: bytes, expected: dict[str, Any]) -> None:
    assert protobuf.decode_message(message, data) == expected


def test_json_field_order_follows_the_go_struct() -> None:
    spec = f(6, f(2, f(2, f(1, "c")))) + f(4, f(1, entry("app", "web")))  # template before selector
    obj = protobuf.decode(envelope("batch/v1", "Job", f(2, spec) + f(1, META)))
    assert list(obj) == ["kind", "apiVersion", "metadata", "spec", "status"]
    assert list(obj["spec"]) == ["selector", "template"]


def test_unknown_fields_are_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="atoll.apiserver.protobuf"):
        obj = protobuf.decode(envelope("v1", "Namespace", f(1, META) + f(42, 7)))
    assert obj["metadata"] == {"name": "web", "namespace": "default", "creationTimestamp": None}
    assert any("unknown field 42" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("nanoseconds", "text"), [
    (0, "0s"), (1, "1ns"), (999, "999ns"), (1_500, "1.5µs"), (1_000_000, "1ms"), (1_234_567, "1.234567ms"),
    (1_000_000_000, "1s"), (90_000_000_000, "1m30s"), (3_600_000_000_000, "1h0m0s"),
    (5_400_500_000_000, "1h30m0.5s"), (-2_000_000_000, "-2s"), (-1_500, "-1.5µs"),
])
def test_go_duration(nanoseconds: int, text: str) -> None:
    assert protobuf.go_duration(nanoseconds) == text


def test_every_kind_and_reference_is_described() -> None:
    for (api_version, kind), message in protobuf.KINDS.items():
        assert message in protobuf.DESCRIPTORS, (api_version, kind)
        if kind != "DeleteOptions":
            assert message.endswith("." + kind)
            metadata = protobuf.DESCRIPTORS[message][1]
            assert (metadata.json_name, metadata.message_type) == ("metadata", "meta.v1.ObjectMeta"), message
    for message, fields in protobuf.DESCRIPTORS.items():
        names = [s.json_name for s in fields.values() if s.json_name]
        assert len(names) == len(set(names)), message
        for spec in fields.values():
            assert spec.kind != "message" or spec.message_type in protobuf.DESCRIPTORS, (message, spec)
    for kind in ("Namespace", "ConfigMap", "Secret", "Service", "ServiceAccount", "Pod", "Node", "Endpoints",
                 "Event", "PersistentVolumeClaim", "ResourceQuota"):
        assert ("v1", kind) in protobuf.KINDS
    for api_version, kind in [("apps/v1", "Deployment"), ("apps/v1", "ReplicaSet"), ("apps/v1", "StatefulSet"),
                              ("apps/v1", "DaemonSet"), ("batch/v1", "Job"), ("batch/v1", "CronJob"),
                              ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
                              ("scheduling.k8s.io/v1", "PriorityClass"), ("policy/v1", "Eviction"),
                              ("policy/v1", "PodDisruptionBudget"), ("networking.k8s.io/v1", "Ingress"),
                              ("authentication.k8s.io/v1", "TokenRequest"), ("discovery.k8s.io/v1", "EndpointSlice"),
                              ("coordination.k8s.io/v1", "Lease"), ("meta.k8s.io/v1", "DeleteOptions"),
                              ("apps/v1", "DeleteOptions")]:
        assert (api_version, kind) in protobuf.KINDS


@pytest.mark.parametrize(("content_type", "expected"), [
    ("application/vnd.kubernetes.protobuf", True),
    ("Application/VND.Kubernetes.Protobuf; charset=binary", True),
    ("application/vnd.kubernetes.protobuf;stream=watch", True),
    ("application/json", False),
    ("application/vnd.kubernetes.protobuf+json", False),
    ("", False),
])
def test_is_protobuf(content_type: str, expected: bool) -> None:
    assert protobuf.is_protobuf(content_type) is expected


# -- malformed and unsupported bodies -----------------------------------------------------------------

def cm(raw: bytes) -> bytes:
    return envelope("v1", "ConfigMap", raw)


MALFORMED: list[tuple[str, bytes, type[APIError], str]] = [
    ("no magic", b'{"kind":"ConfigMap"}', BadRequest, "prefix"),
    ("empty body", b"", BadRequest, "prefix"),
    ("truncated envelope", protobuf.MAGIC + b"\x0a\xff", BadRequest, "truncated varint"),
    ("length past the end", protobuf.MAGIC + b"\x12\x05ab", BadRequest, "longer"),
    ("no typeMeta", protobuf.MAGIC + f(2, b""), BadRequest, "names no apiVersion and kind"),
    ("unknown kind", envelope("v1", "Nope", b""), UnsupportedMediaType, "v1, Kind=Nope"),
    ("unknown group version", envelope("policy/v1beta1", "Eviction", b""), UnsupportedMediaType,
     "policy/v1beta1, Kind=Eviction"),
    ("content encoding", envelope("v1", "ConfigMap", b"", encoding="gzip"), UnsupportedMediaType, "gzip"),
    ("truncated object", cm(b"\x0a\x05ab"), BadRequest, "longer"),
    ("varint too long", cm(b"\x08" + b"\xff" * 10 + b"\x01"), BadRequest, "ten bytes"),
    ("field number 0", cm(b"\x00\x01"), BadRequest, "field number 0"),
    ("wire type 7", cm(b"\x0f"), BadRequest, "wire type 7"),
    ("stray end group", cm(key(3, 4)), BadRequest, "wire type 4"),
    ("unclosed group", cm(key(9, 3) + f(1, 1)), BadRequest, "not closed"),
    ("string sent as varint", cm(f(1, f(1, 5))), BadRequest, "expected length-delimited"),
    ("int sent as bytes", envelope("apps/v1", "Deployment", f(2, f(1, b"3"))), BadRequest, "expected a varint"),
    ("invalid UTF-8", cm(f(1, f(1, b"\xff\xfe"))), BadRequest, "UTF-8"),
    ("bad IntOrString type", envelope("policy/v1", "PodDisruptionBudget", f(2, f(1, f(1, 7)))), BadRequest,
     "IntOrString"),
    ("bad quantity", envelope("v1", "ResourceQuota", f(2, f(1, entry("cpu", quantity("lots"))))), BadRequest,
     "not a quantity"),
    ("RawExtension not JSON", envelope("apps/v1", "ControllerRevision", f(2, f(1, b"{nope"))), BadRequest,
     "does not hold JSON"),
    ("time out of range", cm(f(1, f(8, timestamp(2**62)))), BadRequest, "out of range"),
    ("embedded envelope without typeMeta", envelope("apps/v1", "ControllerRevision", f(2, f(1, b"k8s\x00"))), BadRequest,
     "names no apiVersion"),
]


@pytest.mark.parametrize(("body", "error", "message"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_bodies(body: bytes, error: type[APIError], message: str) -> None:
    with pytest.raises(error) as info:
        protobuf.decode(body)
    assert type(info.value) is error
    assert message in info.value.message


def test_recursion_is_bounded() -> None:
    body = b""
    for _ in range(protobuf.MAX_DEPTH + 5):
        body = envelope("apps/v1", "ControllerRevision", f(2, f(1, body or b"{}")))
    with pytest.raises(BadRequest, match="too deeply"):
        protobuf.decode(body)


# -- recorded kubectl bodies (run without kubectl) ------------------------------------------------------

@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.pb")))
def test_recorded_kubectl_bodies(name: str) -> None:
    body = (FIXTURES / f"{name}.pb").read_bytes()
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    assert protobuf.decode(body) == expected


def test_recorded_fixtures_exist() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.pb")) == sorted(RECORDED)


# -- the real kubectl as the oracle ------------------------------------------------------------------

@dataclass
class Recorder:
    """A plain-HTTP stand-in for kube-apiserver that records what kubectl sends."""

    bodies: list[tuple[str, str, str, bytes]] = field(default_factory=list)  # method, path, ctype, body
    kubeconfig: Path = Path()
    node_pods: list[dict[str, Any]] = field(default_factory=list)

    def posts(self) -> list[tuple[str, str, bytes]]:
        return [(p, c, b) for m, p, c, b in self.bodies if m == "POST"]


def _echo(body: bytes, ctype: str) -> dict[str, Any]:
    try:
        return protobuf.decode(body) if protobuf.is_protobuf(ctype) else dict(json.loads(body))
    except (APIError, ValueError):
        return {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}


@pytest.fixture
async def recorder(tmp_path: Path) -> AsyncIterator[Recorder]:
    discovery = Discovery(new_registry())
    rec = Recorder()

    async def handler(request: web.Request) -> web.Response:
        parts = [p for p in request.path.split("/") if p]
        body = await request.read()
        ctype = request.headers.get("Content-Type", "")
        if request.method != "GET":
            rec.bodies.append((request.method, request.path, ctype, body))
        if request.path == "/version":
            return web.json_response({"major": "1", "minor": "32", "gitVersion": "v1.32.0"})
        if request.path == "/api":
            return web.json_response(discovery.api_versions("127.0.0.1"))
        if request.path == "/apis":
            return web.json_response(discovery.api_group_list())
        if request.method == "GET" and len(parts) == 2 and parts[0] == "api":
            return web.json_response(discovery.resource_list("", parts[1]))
        if request.method == "GET" and len(parts) == 3 and parts[0] == "apis":
            return web.json_response(discovery.resource_list(parts[1], parts[2]))
        if request.path.endswith("/token") and request.method == "POST":
            obj = _echo(body, ctype)
            obj["status"] = {"token": "the-token", "expirationTimestamp": "2030-01-01T00:00:00Z"}
            return web.json_response(obj, status=201)
        if parts[:3] == ["api", "v1", "nodes"] and len(parts) == 4:  # drain: GET and the cordon PATCH
            return web.json_response({"kind": "Node", "apiVersion": "v1",
                                      "metadata": {"name": parts[3], "uid": "n-uid"},
                                      "spec": {"unschedulable": request.method == "PATCH"}})
        if request.path == "/api/v1/pods" and request.method == "GET":
            return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {},
                                      "items": rec.node_pods})
        if request.method == "GET" and parts[:2] == ["api", "v1"] and "pods" in parts:
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                      "reason": "NotFound", "code": 404}, status=404)
        if request.method == "POST":
            return web.json_response(_echo(body, ctype), status=201)
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "reason": "NotFound", "code": 404}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rec.kubeconfig = tmp_path / "kubeconfig"
    rec.kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "default"}}]}))
    try:
        yield rec
    finally:
        await runner.cleanup()


async def kubectl(rec: Recorder, *args: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "--kubeconfig", str(rec.kubeconfig), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, (args, err.decode())
    return out


needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


def _tls_pair(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "atoll.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(private, hashes.SHA256()))
    cert_path, key_path = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return cert_path, key_path


def create_commands(tmp_path: Path) -> list[list[str]]:
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\x00\x01\xfe\xff")
    text = tmp_path / "app.properties"
    text.write_text("a=1\nb=2\n")
    cert, tls_key = _tls_pair(tmp_path)
    return [
        ["create", "namespace", "demo"],
        ["create", "configmap", "c", "--from-literal=a=b", "--from-literal=empty=", f"--from-file={text}",
         f"--from-file=blob={binary}"],
        ["create", "secret", "generic", "s", "--from-literal=p=q", f"--from-file=blob={binary}",
         "--type=example.com/kind"],
        ["create", "secret", "docker-registry", "reg", "--docker-server=registry.example.com",
         "--docker-username=u", "--docker-password=p", "--docker-email=u@example.com"],
        ["create", "secret", "tls", "tls", f"--cert={cert}", f"--key={tls_key}"],
        ["create", "deployment", "web", "--image=nginx", "--replicas=3", "--port=80"],
        ["create", "deployment", "zero", "--image=nginx", "--replicas=0", "--", "sleep", "10"],
        ["create", "deployment", "multi", "--image=nginx", "--image=redis:7", "-n", "other"],
        ["create", "service", "clusterip", "svc", "--tcp=80:8080", "--tcp=443:https"],
        ["create", "service", "clusterip", "headless", "--clusterip=None"],
        ["create", "service", "nodeport", "np", "--tcp=80:8080", "--node-port=30080"],
        ["create", "service", "loadbalancer", "lb", "--tcp=5678:8080"],
        ["create", "service", "externalname", "ext", "--external-name=example.com", "--tcp=80"],
        ["create", "serviceaccount", "sa"],
        ["create", "job", "j", "--image=busybox", "--", "echo", "hi"],
        ["create", "cronjob", "cj", "--image=busybox", "--schedule=*/1 * * * *", "--restart=OnFailure",
         "--", "date"],
        ["create", "role", "r", "--verb=get,list", "--resource=pods,deployments.apps", "--resource-name=x"],
        ["create", "clusterrole", "cr", "--verb=get", "--non-resource-url=/healthz", "--non-resource-url=/logs/*"],
        ["create", "clusterrole", "agg", "--aggregation-rule=rbac.example.com/aggregate-to-monitoring=true"],
        ["create", "rolebinding", "rb", "--role=r", "--user=u", "--group=g", "--serviceaccount=default:sa"],
        ["create", "clusterrolebinding", "crb", "--clusterrole=cr", "--user=u"],
        ["create", "quota", "q", "--hard=cpu=1,memory=1Gi,pods=2", "--scopes=BestEffort"],
        ["create", "priorityclass", "pc", "--value=1000", "--description=important", "--preemption-policy=Never"],
        ["create", "priorityclass", "low", "--value=-5", "--global-default=true"],
        ["create", "poddisruptionbudget", "pdb", "--selector=app=x", "--min-available=1"],
        ["create", "pdb", "pdb2", "--selector=app=x", "--max-unavailable=50%"],
        ["create", "ingress", "ing", "--class=default", "--rule=foo.com/bar=svc1:8080,tls=my-cert",
         "--rule=bar.com/*=svc2:http", "--annotation=a=b"],
        ["create", "ingress", "catch-all", "--default-backend=svc:80"],
    ]


def _dry_run(cmd: list[str]) -> list[str]:
    split = cmd.index("--") if "--" in cmd else len(cmd)
    return [*cmd[:split], "--dry-run=client", "-o", "json", *cmd[split:]]


@pytest.mark.kubectl
@needs_kubectl
async def test_kubectl_create_bodies_decode_to_their_json(recorder: Recorder, tmp_path: Path) -> None:
    commands = create_commands(tmp_path)
    expected = await asyncio.gather(*(kubectl(recorder, *_dry_run(cmd)) for cmd in commands))
    for cmd, want in zip(commands, expected, strict=True):
        before = len(recorder.posts())
        await kubectl(recorder, *cmd)
        posts = recorder.posts()
        assert len(posts) == before + 1, cmd
        _, content_type, body = posts[-1]
        assert protobuf.is_protobuf(content_type), (cmd, content_type)
        assert protobuf.decode(body) == json.loads(want), cmd
    kinds = {protobuf.decode(body)["kind"] for _, _, body in recorder.posts()}
    assert kinds == {"Namespace", "ConfigMap", "Secret", "Deployment", "Service", "ServiceAccount", "Job",
                     "CronJob", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ResourceQuota",
                     "PriorityClass", "PodDisruptionBudget", "Ingress"}


@pytest.mark.kubectl
@needs_kubectl
async def test_kubectl_create_token_body(recorder: Recorder) -> None:
    out = await kubectl(recorder, "create", "token", "sa", "--duration=1h", "--audience=a1", "--audience=a2",
                        "--bound-object-kind=Pod", "--bound-object-name=p", "--bound-object-uid=u-1")
    assert out.strip() == b"the-token"
    (path, content_type, body), = recorder.posts()
    assert path == "/api/v1/namespaces/default/serviceaccounts/sa/token"
    assert protobuf.is_protobuf(content_type)
    assert protobuf.decode(body) == {
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"audiences": ["a1", "a2"], "expirationSeconds": 3600,
                 "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u-1"}},
        "status": {"token": "", "expirationTimestamp": None},
    }


@pytest.mark.kubectl
@needs_kubectl
async def test_kubectl_drain_eviction_body(recorder: Recorder) -> None:
    recorder.node_pods = [{
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "p1", "namespace": "default", "uid": "p1-uid",
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                          "uid": "rs-uid", "controller": True}]},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]},
        "status": {"phase": "Running"}}]
    await kubectl(recorder, "drain", "n1", "--grace-period=7", "--timeout=20s")
    evictions = [(p, c, b) for p, c, b in recorder.posts() if p.endswith("/eviction")]
    assert len(evictions) == 1
    path, content_type, body = evictions[0]
    assert path == "/api/v1/namespaces/default/pods/p1/eviction"
    # kubectl 1.32's drain sends the Eviction as JSON; Go clients built on typed clients send it as
    # protobuf. Either way the same Eviction must come out.
    sent = protobuf.decode(body) if protobuf.is_protobuf(content_type) else json.loads(body)
    assert sent == {
        "kind": "Eviction", "apiVersion": "policy/v1",
        "metadata": {"name": "p1", "namespace": "default", "creationTimestamp": None},
        "deleteOptions": {"gracePeriodSeconds": 7},
    }
    as_protobuf = envelope("policy/v1", "Eviction", f(1, f(1, "p1") + f(3, "default") + f(8, b""))
                           + f(2, f(1, 7)))
    assert protobuf.decode(as_protobuf) == sent


# -- regenerating the recorded fixtures ----------------------------------------------------------------

# What tests/apiserver/fixtures/protobuf/ holds: kubectl's protobuf body (<name>.pb) and the same
# command's --dry-run=client -o json (<name>.json), so the decoder is checked without kubectl too.
RECORDED: dict[str, list[str]] = {
    "namespace": ["create", "namespace", "demo"],
    "configmap": ["create", "configmap", "c", "--from-literal=a=b", "--from-literal=empty="],
    "secret": ["create", "secret", "generic", "s", "--from-literal=p=q", "--type=example.com/kind"],
    "deployment": ["create", "deployment", "web", "--image=nginx", "--replicas=3", "--port=80"],
    "service-nodeport": ["create", "service", "nodeport", "np", "--tcp=80:8080", "--node-port=30080"],
    "job": ["create", "job", "j", "--image=busybox", "--", "echo", "hi"],
    "cronjob": ["create", "cronjob", "cj", "--image=busybox", "--schedule=*/5 * * * *"],
    "clusterrole-aggregated": ["create", "clusterrole", "agg", "--aggregation-rule=example.com/agg=true"],
    "rolebinding": ["create", "rolebinding", "rb", "--clusterrole=view", "--serviceaccount=default:sa"],
    "quota": ["create", "quota", "q", "--hard=cpu=1,memory=1Gi,pods=2"],
    "priorityclass": ["create", "priorityclass", "low", "--value=-5", "--description=negative"],
    "pdb": ["create", "pdb", "pdb", "--selector=app=x", "--max-unavailable=50%"],
    "ingress": ["create", "ingress", "ing", "--rule=foo.com/bar=svc1:8080,tls=my-cert"],
}


@pytest.mark.kubectl
@needs_kubectl
async def test_record_fixtures(recorder: Recorder) -> None:
    """Re-record the fixtures: ``ATOLL_RECORD_PROTOBUF=1 pytest -k record_fixtures``."""
    if not os.environ.get("ATOLL_RECORD_PROTOBUF"):
        pytest.skip("set ATOLL_RECORD_PROTOBUF=1 to re-record the fixtures")
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, cmd in RECORDED.items():
        want = await kubectl(recorder, *_dry_run(cmd))
        await kubectl(recorder, *cmd)
        _, _, body = recorder.posts()[-1]
        (FIXTURES / f"{name}.pb").write_bytes(body)
        (FIXTURES / f"{name}.json").write_text(json.dumps(json.loads(want), indent=2) + "\n")
