"""Protobuf request bodies: the wire decoder, and the real kubectl as the oracle.

For each ``kubectl create ...`` the body kubectl sends (protobuf) must decode to exactly
the object the same command prints with ``--dry-run=client -o json``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from atoll.api.builtin import new_registry
from atoll.api.errors import BadRequest, UnsupportedMediaType
from atoll.apiserver import protobuf
from atoll.apiserver.discovery import Discovery


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(num: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    return varint(num << 3 | 2) + varint(len(value)) + value


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = field(1, api_version.encode()) + field(2, kind.encode())
    return protobuf.MAGIC + field(1, type_meta) + field(2, raw)


@pytest.mark.parametrize(("data", "expected"), [
    (field(1, 150), [(1, 0, 150)]),
    (field(2, b"hi"), [(2, 2, b"hi")]),
    (field(1, 1) + field(1, 2), [(1, 0, 1), (1, 0, 2)]),
    (varint(3 << 3 | 5) + (7).to_bytes(4, "little"), [(3, 5, 7)]),
    (varint(4 << 3 | 1) + (9).to_bytes(8, "little"), [(4, 1, 9)]),
])
def test_wire_fields(data: bytes, expected: list[tuple[int, int, Any]]) -> None:
    assert protobuf.fields(data) == expected


def test_nested_maps_negative_ints_and_packed() -> None:
    meta = field(1, b"web") + field(11, field(1, b"app") + field(2, b"web"))
    container = field(1, b"c") + field(2, b"nginx") + field(8, field(1, field(1, b"cpu") + field(2, field(1, b"1"))))
    template = field(2, field(2, container))
    strategy = field(2, field(1, field(1, 0) + field(2, 0)))  # maxUnavailable: 0 (pointer, kept)
    spec = field(1, 3) + field(3, template) + field(4, strategy) + field(6, (-1) & ((1 << 64) - 1))
    obj = protobuf.decode(envelope("apps/v1", "Deployment", field(1, meta) + field(2, spec)))
    assert obj["metadata"] == {"name": "web", "labels": {"app": "web"}}
    assert obj["spec"]["replicas"] == 3 and obj["spec"]["revisionHistoryLimit"] == -1
    assert obj["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0}
    assert obj["spec"]["template"]["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "1"}}
    packed = field(4, varint(1) + varint(2) + varint(300))
    ctx = protobuf._decode_message("PodSecurityContext", packed)
    assert ctx == {"supplementalGroups": [1, 2, 300]}


@pytest.mark.parametrize(("body", "error"), [
    (b"not protobuf", BadRequest),
    (protobuf.MAGIC + b"\x0a\xff", BadRequest),
    (protobuf.MAGIC + field(1, field(1, b"v1") + field(2, b"Nope")), UnsupportedMediaType),
    (envelope("v1", "ConfigMap", b"\x0a\x05ab"), BadRequest),
])
def test_malformed_bodies(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        protobuf.decode(body)


COMMANDS = [
    ["create", "namespace", "demo"],
    ["create", "configmap", "c", "--from-literal=a=b", "--from-literal=empty="],
    ["create", "secret", "generic", "s", "--from-literal=p=q"],
    ["create", "deployment", "web", "--image=nginx", "--replicas=3", "--port=80"],
    ["create", "deployment", "zero", "--image=nginx", "--replicas=0", "--", "sleep", "10"],
    ["create", "service", "clusterip", "svc", "--tcp=80:8080"],
    ["create", "service", "nodeport", "np", "--tcp=80:8080"],
    ["create", "serviceaccount", "sa"],
    ["create", "job", "j", "--image=busybox", "--", "echo", "hi"],
    ["create", "cronjob", "cj", "--image=busybox", "--schedule=*/1 * * * *"],
    ["create", "quota", "q", "--hard=cpu=1,pods=2"],
    ["create", "pdb", "pdb", "--selector=app=x", "--min-available=1"],
]


@pytest.mark.kubectl
async def test_kubectl_create_bodies_decode_to_their_json(tmp_path: Path) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed")
    discovery = Discovery(new_registry())
    bodies: list[tuple[str, bytes]] = []

    async def handler(request: web.Request) -> web.Response:
        parts = [p for p in request.path.split("/") if p]
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
        if request.method == "POST":
            bodies.append((request.headers.get("Content-Type", ""), await request.read()))
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success"}, status=201)
        return web.json_response({"kind": "Status", "code": 404}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "default"}}]}))

    async def kubectl(*args: str) -> bytes:
        proc = await asyncio.create_subprocess_exec("kubectl", "--kubeconfig", str(kubeconfig), *args,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        return out

    try:
        for cmd in COMMANDS:
            before = len(bodies)
            await kubectl(*cmd)
            assert len(bodies) == before + 1, cmd
            content_type, body = bodies[-1]
            assert protobuf.is_protobuf(content_type), (cmd, content_type)
            split = cmd.index("--") if "--" in cmd else len(cmd)
            expected = json.loads(await kubectl(*cmd[:split], "--dry-run=client", "-o", "json", *cmd[split:]))
            assert protobuf.decode(body) == expected, cmd
    finally:
        await runner.cleanup()
