"""``pods/log``, ``pods/exec`` and ``pods/portforward`` through the API server.

Pure pieces first (CRI parsing, log selection, exec options and statuses, SPDY framing), then
an in-process API server whose connector reaches a fake node: its logs are CRI files the test
writes, its exec runs real processes in a temporary directory (a pseudo-terminal for TTYs), its
pods' ports are servers the test starts on loopback addresses. The real kubectl drives it
(WebSocket v5 for exec, SPDY tunnelled in a WebSocket for port-forward), and the official
Python client (WebSocket v4).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import io
import os
import select
import ssl
import struct
import termios
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
import yaml
from multidict import MultiDict

from atoll.api.errors import BadRequest, Invalid, NotFound
from atoll.apiserver.server import APIServer, ServerConfig
from atoll.client import Client, Resource
from atoll.cluster.kubelet.connector import (
    DATA,
    GOAWAY,
    PING,
    PROTOCOL_V4,
    PROTOCOL_V5,
    RST_STREAM,
    SPDY_DICTIONARY,
    SYN_REPLY,
    SYN_STREAM,
    CRIRecord,
    ExecOptions,
    KubeletConnector,
    LogOptions,
    LogRenderer,
    SpdyCodec,
    exec_options,
    exit_status,
    format_rfc3339_nano,
    log_options,
    negotiate_protocol,
    parse_cri_line,
    parse_rfc3339_nanos,
    render_log,
    tail_offset,
    validate_container,
)
from tests.conftest import require_kubectl
from tests.waiting import eventually

PODS = Resource("v1", "pods", True, "Pod")
NSS = Resource("v1", "namespaces", False, "Namespace")

T0 = "2026-12-02T07:00:00.000000001Z"
T0_NS = parse_rfc3339_nanos(T0)


def cri(*records: tuple[int, str, str, str]) -> bytes:
    """CRI log bytes from (second offset from 07:00:00, stream, tag, text) records."""
    return b"".join(f"2026-12-02T07:00:{s:02d}.5Z {stream} {tag} {text}\n".encode()
                    for s, stream, tag, text in records)


SAMPLE = cri((0, "stdout", "F", "one"), (1, "stderr", "F", "two"), (2, "stdout", "P", "thr"),
             (2, "stdout", "P", "e"), (3, "stdout", "F", "e"), (4, "stdout", "F", "four"))


# -- pure pieces -------------------------------------------------------------------------
@pytest.mark.parametrize(("line", "expected"), [
    (b"2026-12-02T07:00:00.123456789Z stdout F hello", CRIRecord(
        parse_rfc3339_nanos("2026-12-02T07:00:00.123456789Z"), "stdout", False, b"hello")),
    (b"2026-12-02T07:00:00Z stderr P part", CRIRecord(parse_rfc3339_nanos("2026-12-02T07:00:00Z"), "stderr",
                                                     True, b"part")),
    (b"2026-12-02T07:00:00Z stdout F two  spaces ", CRIRecord(
        parse_rfc3339_nanos("2026-12-02T07:00:00Z"), "stdout", False, b"two  spaces ")),
    (b"2026-12-02T07:00:00Z stdout F ", CRIRecord(parse_rfc3339_nanos("2026-12-02T07:00:00Z"), "stdout",
                                                 False, b"")),
    (b"2026-12-02T07:00:00Z stdout F", CRIRecord(parse_rfc3339_nanos("2026-12-02T07:00:00Z"), "stdout",
                                                False, b"")),
    (b"2026-12-02T07:00:00Z stdin F x", None),
    (b"2026-12-02T07:00:00Z stdout X x", None),
    (b"yesterday stdout F x", None),
    (b"garbage", None),
    (b"", None),
])
def test_parse_cri_line(line: bytes, expected: CRIRecord | None) -> None:
    assert parse_cri_line(line) == expected


@pytest.mark.parametrize(("text", "formatted"), [
    ("2026-12-02T07:00:00.123456789Z", "2026-12-02T07:00:00.123456789Z"),
    ("2026-12-02T07:00:00.120000000Z", "2026-12-02T07:00:00.12Z"),
    ("2026-12-02T07:00:00.000Z", "2026-12-02T07:00:00Z"),
    ("2026-12-02T07:00:00Z", "2026-12-02T07:00:00Z"),
    ("2026-12-02T09:30:00.5+02:30", "2026-12-02T07:00:00.5Z"),
    ("2026-12-02T01:00:00-06:00", "2026-12-02T07:00:00Z"),
])
def test_timestamps_round_trip_as_go_rfc3339nano(text: str, formatted: str) -> None:
    assert format_rfc3339_nano(parse_rfc3339_nanos(text)) == formatted


@pytest.mark.parametrize("text", ["2026-12-02 07:00:00Z", "2026-12-02T07:00:00", "2026-12-02T07:00:00.Z", ""])
def test_bad_timestamps_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339_nanos(text)


def at(second: int) -> int:
    return parse_rfc3339_nanos(f"2026-12-02T07:00:{second:02d}.5Z")


@pytest.mark.parametrize(("options", "expected"), [
    (LogOptions("c"), b"one\ntwo\nthree\nfour\n"),
    (LogOptions("c", tail_lines=2), b"three\nfour\n"),
    (LogOptions("c", tail_lines=1), b"four\n"),
    (LogOptions("c", tail_lines=0), b""),
    (LogOptions("c", tail_lines=100), b"one\ntwo\nthree\nfour\n"),
    (LogOptions("c", since_nanos=at(1)), b"two\nthree\nfour\n"),
    (LogOptions("c", since_nanos=at(3)), b"four\n"),  # a joined line carries its first fragment's time
    (LogOptions("c", tail_lines=3, since_nanos=at(2)), b"three\nfour\n"),  # tail first, then since (kubelet)
    (LogOptions("c", limit_bytes=6), b"one\ntw"),
    (LogOptions("c", limit_bytes=1000), b"one\ntwo\nthree\nfour\n"),
    (LogOptions("c", timestamps=True, tail_lines=2),
     b"2026-12-02T07:00:02.5Z three\n2026-12-02T07:00:04.5Z four\n"),
    (LogOptions("c", timestamps=True, limit_bytes=25), b"2026-12-02T07:00:00.5Z on"),
    (LogOptions("c", streams=frozenset({"stderr"})), b"two\n"),
    (LogOptions("c", streams=frozenset({"stdout"})), b"one\nthree\nfour\n"),
])
def test_log_selection(options: LogOptions, expected: bytes) -> None:
    assert render_log(SAMPLE, options) == expected


@pytest.mark.parametrize(("data", "expected"), [
    (b"", b""),
    (cri((0, "stdout", "F", "a")) + b"2026-12-02T07:00:01Z stdout F unterminated", b"a\n"),  # being written
    (cri((0, "stdout", "P", "dangling")), b"dangling"),  # a line whose end never came: no newline
    (cri((0, "stdout", "F", "a")) + b"not a cri line\n" + cri((1, "stdout", "F", "b")), b"a\nb\n"),
    (cri((0, "stdout", "P", "x"), (0, "stderr", "F", "err"), (1, "stdout", "F", "y")), b"err\nxy\n"),
    (cri((0, "stdout", "F", "")), b"\n"),
])
def test_log_edge_cases(data: bytes, expected: bytes) -> None:
    assert render_log(data, LogOptions("c")) == expected


@pytest.mark.parametrize("chunk", [1, 2, 7, 33, 4096])
def test_renderer_output_does_not_depend_on_chunking(chunk: int) -> None:
    renderer = LogRenderer(LogOptions("c", timestamps=True))
    out = b"".join(renderer.feed(SAMPLE[i:i + chunk]) for i in range(0, len(SAMPLE), chunk)) + renderer.finish()
    assert out == render_log(SAMPLE, LogOptions("c", timestamps=True))


@pytest.mark.parametrize("block", [1, 5, 16, 64, 65536])
@pytest.mark.parametrize(("lines", "expected_start"), [(0, 6), (1, 5), (2, 2), (3, 1), (4, 0), (9, 0)])
def test_tail_offset_scans_backwards_in_blocks(block: int, lines: int, expected_start: int) -> None:
    records = SAMPLE.splitlines(keepends=True)
    start = tail_offset(io.BytesIO(SAMPLE), lines, block=block)
    assert start == sum(len(r) for r in records[:expected_start])


@pytest.mark.parametrize(("query", "expected"), [
    ({}, LogOptions("c")),
    ({"follow": "true", "previous": "1", "timestamps": "True", "insecureSkipTLSVerifyBackend": "true"},
     LogOptions("c", follow=True, previous=True, timestamps=True)),
    ({"follow": "false", "tailLines": "10", "limitBytes": "5"}, LogOptions("c", tail_lines=10, limit_bytes=5)),
    ({"sinceSeconds": "60"}, LogOptions("c", since_nanos=T0_NS - 60 * 10**9)),
    ({"sinceTime": "2026-12-02T06:00:00Z"}, LogOptions("c", since_nanos=parse_rfc3339_nanos("2026-12-02T06:00:00Z"))),
    ({"stream": "Stderr"}, LogOptions("c", streams=frozenset({"stderr"}))),
])
def test_log_options(query: dict[str, str], expected: LogOptions) -> None:
    assert log_options(query, pod_name="p", container="c", now_nanos=T0_NS) == expected


@pytest.mark.parametrize(("query", "error", "message"), [
    ({"tailLines": "-1"}, Invalid, 'PodLogOptions "p" is invalid: tailLines: Invalid value: -1: must be '
                                   "greater than or equal to 0"),
    ({"limitBytes": "0"}, Invalid, "limitBytes: Invalid value: 0: must be greater than 0"),
    ({"sinceSeconds": "0"}, Invalid, "sinceSeconds: Invalid value: 0: must be greater than 0"),
    ({"sinceSeconds": "5", "sinceTime": "2026-12-02T06:00:00Z"}, Invalid, "at most one of `sinceTime` or"),
    ({"stream": "Stdout", "tailLines": "3"}, Invalid, "`tailLines` and specific `stream` are mutually exclusive"),
    ({"stream": "stdout"}, Invalid, 'Unsupported value: "stdout"'),
    ({"tailLines": "ten"}, BadRequest, 'parsing "ten": invalid syntax'),
    ({"sinceTime": "yesterday"}, BadRequest, 'parsing time "yesterday"'),
])
def test_log_options_are_validated_like_kube(query: dict[str, str], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        log_options(query, pod_name="p", container="c", now_nanos=T0_NS)
    assert message in str(info.value)


@pytest.mark.parametrize(("query", "expected"), [
    ([("command", "sh"), ("command", "-c"), ("command", "echo hi"), ("stdout", "true"), ("stderr", "true")],
     ExecOptions("c", ("sh", "-c", "echo hi"), stdout=True, stderr=True)),
    ([("command", "sh"), ("stdin", "1"), ("stdout", "1"), ("stderr", "1"), ("tty", "1")],
     ExecOptions("c", ("sh",), stdin=True, stdout=True, stderr=False, tty=True)),  # a TTY has no stderr
    ([("command", "ls"), ("stdout", "True"), ("stderr", "False"), ("stdin", "False"), ("tty", "False")],
     ExecOptions("c", ("ls",), stdout=True)),  # the Python client's spelling
])
def test_exec_options(query: list[tuple[str, str]], expected: ExecOptions) -> None:
    assert exec_options(MultiDict(query), container="c") == expected


@pytest.mark.parametrize(("query", "message"), [
    ([("command", "ls")], "you must specify at least 1 of stdin, stdout, stderr"),
    ([("stdout", "true")], "you must specify at least one command for the container"),
])
def test_exec_options_are_validated(query: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        exec_options(MultiDict(query), container="c")


@pytest.mark.parametrize(("header", "expected"), [
    ("v5.channel.k8s.io", PROTOCOL_V5),
    ("v5.channel.k8s.io, v4.channel.k8s.io", PROTOCOL_V5),
    ("v4.channel.k8s.io,v5.channel.k8s.io", PROTOCOL_V4),  # the client's preference wins
    ("base64.channel.k8s.io, v4.channel.k8s.io", PROTOCOL_V4),
    ("channel.k8s.io", None),
    (None, None),
])
def test_protocol_negotiation(header: str | None, expected: str | None) -> None:
    assert negotiate_protocol(header) == expected


@pytest.mark.parametrize(("returncode", "expected"), [
    (0, {"metadata": {}, "status": "Success"}),
    (3, {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
         "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], "
                    "exit code 3",
         "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}),
    (-9, {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
          "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], "
                     "exit code 137",
          "details": {"causes": [{"reason": "ExitCode", "message": "137"}]}}),
])
def test_exit_status(returncode: int, expected: dict[str, Any]) -> None:
    assert exit_status(returncode, ["sh", "-c", "exit 3"]) == expected


def pod_with(*names: str, init: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"initContainers": [{"name": n} for n in init],
                                                "containers": [{"name": n} for n in names]}}


@pytest.mark.parametrize(("pod", "container", "result"), [
    (pod_with("a"), "", "a"),
    (pod_with("a", "b"), "b", "b"),
    (pod_with("a", init=("setup",)), "setup", "setup"),
    (pod_with("a", "b", init=("setup",)), "", "a container name must be specified for pod p, choose one of: "
                                              "[setup a b]"),
    (pod_with(), "", "a container name must be specified for pod p"),
    (pod_with("a"), "nope", "container nope is not valid for pod p"),
])
def test_container_choice(pod: dict[str, Any], container: str, result: str) -> None:
    if " " not in result:
        assert validate_container(pod, container) == result
    else:
        with pytest.raises(BadRequest) as info:
            validate_container(pod, container)
        assert str(info.value) == result


# -- through the API server ---------------------------------------------------------------
@dataclass
class FakeNode:
    """A PodAccess over files and processes the test controls."""

    root: Path
    node_name: str = "node-a"
    logs: dict[tuple[str, str, bool], Path] = field(default_factory=dict)
    running: dict[tuple[str, str], bool] = field(default_factory=dict)
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)

    def container(self, uid: str, name: str, *, running: bool = True, previous: bytes | None = None) -> Path:
        path = self.root / f"{uid}-{name}.log"
        path.write_bytes(b"")
        self.logs[(uid, name, False)] = path
        if previous is not None:
            prev = self.root / f"{uid}-{name}.0.log"
            prev.write_bytes(previous)
            self.logs[(uid, name, True)] = prev
        self.running[(uid, name)] = running
        return path

    def log_path(self, pod_uid: str, container: str, *, previous: bool = False) -> Path | None:
        return self.logs.get((pod_uid, container, previous))

    def is_running(self, pod_uid: str, container: str) -> bool:
        return self.running.get((pod_uid, container), False)

    async def exec(self, pod_uid: str, container: str, command: list[str], *, tty: bool = False
                   ) -> asyncio.subprocess.Process:
        if (pod_uid, container) not in self.running:
            raise NotFound(f'container "{container}" not found')
        if not self.running[(pod_uid, container)]:
            raise BadRequest(f'container "{container}" is not running')
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "POD_IP": "127.16.0.7"}
        if tty:
            proc = await self._exec_on_terminal(command, env)
        else:
            proc = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, cwd=self.root, env=env)
        self.procs.append(proc)
        return proc

    async def _exec_on_terminal(self, command: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
        """What the seam asks of a TTY exec: the pseudo-terminal's master as the process's stdin/stdout."""
        master, slave = os.openpty()
        try:
            proc = await asyncio.create_subprocess_exec(*command, stdin=slave, stdout=slave, stderr=slave,
                                                        cwd=self.root, env=env, start_new_session=True)
        finally:
            os.close(slave)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(master, "rb", 0))
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                            os.fdopen(os.dup(master), "wb", 0))
        proc.stdin = asyncio.StreamWriter(transport, protocol, None, loop)
        proc.stdout = reader
        return proc


TRANSPORTS = ["websocket", "spdy"]


def kubectl_env(transport: str) -> dict[str, str]:
    """kubectl's environment; ``spdy`` turns off its WebSocket transports (what kubectl < 1.30 speaks)."""
    if transport == "spdy":
        return {**os.environ, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false",
                "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}
    return dict(os.environ)


@dataclass
class Cluster:
    server: APIServer
    client: Client
    node: FakeNode
    kubeconfig: Path

    async def kubectl(self, *args: str, input: bytes | None = None, timeout: float = 30,
                      transport: str = "websocket") -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            "kubectl", "--kubeconfig", str(self.kubeconfig), *args, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=kubectl_env(transport))
        out, err = await asyncio.wait_for(proc.communicate(input), timeout)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def pod(self, name: str, *containers: str, node: str = "node-a", namespace: str = "logs") -> str:
        spec: dict[str, Any] = {"containers": [{"name": c, "image": "sh"} for c in containers]}
        if node:
            spec["nodeName"] = node
        created = await self.client.create(PODS, {"metadata": {"name": name, "namespace": namespace},
                                                  "spec": spec})
        await self.client.patch_status(PODS, name, {"status": {"phase": "Running"}}, namespace)
        return str(created["metadata"]["uid"])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    require_kubectl()
    root = tmp_path_factory.mktemp("connector")
    node = FakeNode(root / "node")
    node.root.mkdir()
    server = APIServer(ServerConfig(state_dir=root / "state", port=0, compaction_interval=3600))
    await server.start()
    server.subresources.node_connector = KubeletConnector(
        lambda name: node if name == node.node_name else None, poll_interval=0.05)
    client = Client.from_kubeconfig(server.kubeconfig_path)
    try:
        for ns in ("logs", "exec"):
            await client.create(NSS, {"metadata": {"name": ns}})
        yield Cluster(server, client, node, server.kubeconfig_path)
    finally:
        await client.close()
        for proc in node.procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await server.stop()


@pytest.fixture(scope="module")
def http_ssl(cluster: Cluster) -> ssl.SSLContext:
    return admin_ssl(cluster)


def admin_ssl(cluster: Cluster) -> ssl.SSLContext:
    """A TLS context with the admin's client certificate from the server's kubeconfig."""
    cfg = yaml.safe_load(cluster.kubeconfig.read_text())
    cl, user = cfg["clusters"][0]["cluster"], cfg["users"][0]["user"]
    ctx = ssl.create_default_context(cadata=base64.b64decode(cl["certificate-authority-data"]).decode())
    cert, key = cluster.kubeconfig.parent / "t.crt", cluster.kubeconfig.parent / "t.key"
    cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
    key.write_bytes(base64.b64decode(user["client-key-data"]))
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


@contextlib.asynccontextmanager
async def http(cluster: Cluster, ctx: ssl.SSLContext) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=cluster.server.url, connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        yield s


@pytest.mark.asyncio(loop_scope="module")
async def test_kubectl_logs_with_container_tail_timestamps_since_and_limit(cluster: Cluster) -> None:
    uid = await cluster.pod("two", "app", "side")
    cluster.node.container(uid, "app").write_bytes(SAMPLE)
    cluster.node.container(uid, "side").write_bytes(cri((0, "stdout", "F", "side says hi")))

    rc, out, err = await cluster.kubectl("logs", "-n", "logs", "two", "-c", "side")
    assert (rc, out) == (0, "side says hi\n"), err
    rc, out, err = await cluster.kubectl("logs", "-n", "logs", "two")  # kubectl picks the first container
    assert (rc, out) == (0, "one\ntwo\nthree\nfour\n") and 'Defaulted container "app"' in err
    rc, out, _ = await cluster.kubectl("logs", "-n", "logs", "two", "-c", "app", "--tail=2")
    assert out == "three\nfour\n"
    rc, out, _ = await cluster.kubectl("logs", "-n", "logs", "two", "-c", "app", "--tail=1", "--timestamps")
    assert out == "2026-12-02T07:00:04.5Z four\n"
    rc, out, _ = await cluster.kubectl("logs", "-n", "logs", "two", "-c", "app",
                                       "--since-time=2026-12-02T07:00:03Z")
    assert out == "four\n"
    rc, out, _ = await cluster.kubectl("logs", "-n", "logs", "two", "-c", "app", "--limit-bytes=6")
    assert out == "one\ntw"
    recent = format_rfc3339_nano(time.time_ns() - 5 * 10**9)
    cluster.node.container(uid, "side").write_bytes(
        b"2020-01-01T00:00:00Z stdout F long ago\n" + f"{recent} stdout F just now\n".encode())
    rc, out, _ = await cluster.kubectl("logs", "-n", "logs", "two", "-c", "side", "--since=1m")
    assert out == "just now\n"
    rc, out, err = await cluster.kubectl("logs", "-n", "logs", "two", "-c", "nope")
    assert rc != 0 and "container nope is not valid for pod two" in err


@pytest.mark.asyncio(loop_scope="module")
async def test_kubectl_logs_previous(cluster: Cluster) -> None:
    uid = await cluster.pod("restarted", "app")
    cluster.node.container(uid, "app", previous=cri((0, "stdout", "F", "before the crash"))).write_bytes(
        cri((5, "stdout", "F", "after")))
    rc, out, err = await cluster.kubectl("logs", "-n", "logs", "restarted", "--previous")
    assert (rc, out) == (0, "before the crash\n"), err
    uid = await cluster.pod("fresh", "app")
    cluster.node.container(uid, "app")
    rc, out, err = await cluster.kubectl("logs", "-n", "logs", "fresh", "-p")
    assert rc == 1 and 'previous terminated container "app" in pod "fresh" not found' in err
    await cluster.pod("unscheduled", "app", node="")
    assert await cluster.kubectl("logs", "-n", "logs", "unscheduled") == (0, "", "")


@pytest.mark.asyncio(loop_scope="module")
async def test_kubectl_logs_follow_streams_until_the_container_stops(cluster: Cluster) -> None:
    uid = await cluster.pod("follow", "app")
    path = cluster.node.container(uid, "app")
    path.write_bytes(cri((0, "stdout", "F", "first")))
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "--kubeconfig", str(cluster.kubeconfig), "logs", "-n", "logs", "follow", "-f",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        assert await asyncio.wait_for(proc.stdout.readline(), 15) == b"first\n"
        with path.open("ab") as f:  # a long line arriving in fragments, the last one in two writes
            f.write(cri((1, "stdout", "P", "sec")))
            f.flush()
            await asyncio.sleep(0.15)
            f.write(b"2026-12-02T07:00:02Z stdout F ond")
            f.flush()
            await asyncio.sleep(0.15)
            f.write(b"\n")
        assert await asyncio.wait_for(proc.stdout.readline(), 5) == b"second\n"
        started = time.monotonic()
        with path.open("ab") as f:
            f.write(cri((3, "stderr", "F", "last words")))
        cluster.node.running[(uid, "app")] = False
        rest = await asyncio.wait_for(proc.stdout.read(), 5)
        assert rest == b"last words\n"
        assert await asyncio.wait_for(proc.wait(), 5) == 0
        assert time.monotonic() - started < 2
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.asyncio(loop_scope="module")
async def test_log_errors_over_http(cluster: Cluster, http_ssl: ssl.SSLContext) -> None:
    await cluster.pod("multi", "a", "b")
    await cluster.pod("pending", "a", node="")
    await cluster.pod("simulated", "a", node="kwok-1")
    waiting = await cluster.pod("waiting", "a")
    await cluster.client.patch_status(PODS, "waiting", {"status": {"containerStatuses": [
        {"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}}]}}, "logs")
    assert waiting
    base = "/api/v1/namespaces/logs/pods"
    async with http(cluster, http_ssl) as s:
        for path, code, message in [
            (f"{base}/multi/log", 400, "a container name must be specified for pod multi, choose one of: [a b]"),
            (f"{base}/multi/log?container=a&tailLines=-2", 422, "tailLines: Invalid value: -2"),
            (f"{base}/simulated/log", 400, 'node "kwok-1" of pod simulated does not serve container logs'),
            (f"{base}/waiting/log", 400, 'container "a" in pod "waiting" is waiting to start: ContainerCreating'),
            (f"{base}/nothere/log", 404, 'pods "nothere" not found'),
        ]:
            async with s.get(path) as r:
                body = await r.json(content_type=None)
                assert (r.status, body["kind"], body["code"]) == (code, "Status", code), body
                assert message in body["message"], body
        async with s.get(f"{base}/pending/log") as r:  # unscheduled: no node to ask, no content (as kube)
            assert (r.status, await r.read()) == (204, b"")
        async with s.post(f"{base}/multi/log?container=a") as r:
            assert r.status == 405


@pytest.mark.asyncio(loop_scope="module")
async def test_log_reader_going_away_ends_the_follow(cluster: Cluster, http_ssl: ssl.SSLContext) -> None:
    uid = await cluster.pod("abandoned", "app")
    cluster.node.container(uid, "app").write_bytes(cri((0, "stdout", "F", "x")))
    async with http(cluster, http_ssl) as s:
        async with s.get("/api/v1/namespaces/logs/pods/abandoned/log?follow=true") as r:
            assert await r.content.readline() == b"x\n"
    # The server notices within a few polls and stops reading for nobody.
    connector = cluster.server.subresources.node_connector
    assert isinstance(connector, KubeletConnector)

    async def ended() -> bool:
        return connector.active["log"] == 0

    await eventually(ended, timeout=5)


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_kubectl_exec_separates_streams_and_returns_the_exit_code(cluster: Cluster, transport: str) -> None:
    uid = await cluster.pod(f"shell-{transport}", "sh", namespace="exec")
    cluster.node.container(uid, "sh")
    rc, out, err = await cluster.kubectl("exec", "-n", "exec", f"shell-{transport}", "--",
                                         "sh", "-c", "echo out; echo err >&2; echo $POD_IP; exit 3",
                                         transport=transport)
    assert (rc, out, err) == (3, "out\n127.16.0.7\n", "err\ncommand terminated with exit code 3\n")
    rc, out, err = await cluster.kubectl("exec", "-n", "exec", f"shell-{transport}", "--", "sh", "-c", "pwd",
                                         transport=transport)
    assert (rc, out.strip()) == (0, str(cluster.node.root)), err
    rc, out, err = await cluster.kubectl("exec", "-n", "exec", f"shell-{transport}", "--", "no-such-command",
                                         transport=transport)
    assert rc == 1 and "error executing command in container: No such file or directory" in err, err


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_kubectl_exec_with_stdin(cluster: Cluster, transport: str) -> None:
    uid = await cluster.pod(f"cat-{transport}", "sh", namespace="exec")
    cluster.node.container(uid, "sh")
    data = b"".join(b"line %d\n" % i for i in range(20000))  # larger than one message and one pipe buffer
    rc, out, err = await cluster.kubectl("exec", "-i", "-n", "exec", f"cat-{transport}", "--", "wc", "-l",
                                         input=data, transport=transport)
    assert (rc, out.strip()) == (0, "20000"), err
    rc, out, err = await cluster.kubectl("exec", "-i", "-n", "exec", f"cat-{transport}", "--", "cat", input=data,
                                         transport=transport)
    assert (rc, out.encode() == data) == (0, True), err


@pytest.mark.asyncio(loop_scope="module")
async def test_kubectl_cp_both_ways(cluster: Cluster, tmp_path: Path) -> None:
    """``kubectl cp`` is tar over exec: stdin half-closed at the end one way, stdout streamed the other."""
    uid = await cluster.pod("files", "sh", namespace="exec")
    cluster.node.container(uid, "sh")
    local = tmp_path / "payload.bin"
    local.write_bytes(os.urandom(300_000))
    inside = cluster.node.root / "copied"
    inside.mkdir()
    rc, _, err = await cluster.kubectl("cp", str(local), f"exec/files:{inside}/payload.bin")
    assert rc == 0, err
    assert (inside / "payload.bin").read_bytes() == local.read_bytes()
    back = tmp_path / "back.bin"
    rc, _, err = await cluster.kubectl("cp", f"exec/files:{inside}/payload.bin", str(back))
    assert rc == 0, err
    assert back.read_bytes() == local.read_bytes()


@pytest.mark.asyncio(loop_scope="module")
async def test_kubectl_exec_errors(cluster: Cluster) -> None:
    uid = await cluster.pod("stopped", "sh", namespace="exec")
    cluster.node.container(uid, "sh", running=False)
    await cluster.pod("unscheduled", "sh", namespace="exec", node="")
    cluster.node.container(await cluster.pod("runs", "sh", namespace="exec"), "sh")
    cases = [
        (["stopped", "-c", "nope"], "container nope is not valid for pod stopped"),
        (["stopped"], 'container "sh" in pod "stopped" is not running'),
        (["unscheduled"], "pod unscheduled does not have a host assigned"),
        (["runs"], "error: Internal error occurred: error executing command in container: No such file"),
    ]
    for args, message in cases:
        command = "no-such-command" if args == ["runs"] else "true"
        rc, _, err = await cluster.kubectl("exec", "-n", "exec", *args, "--", command)
        assert rc == 1 and message in err, err


@pytest.mark.asyncio(loop_scope="module")
async def test_websocket_v4_and_v5_channels(cluster: Cluster, http_ssl: ssl.SSLContext) -> None:
    uid = await cluster.pod("raw", "sh", namespace="exec")
    cluster.node.container(uid, "sh")
    path = "/api/v1/namespaces/exec/pods/raw/exec"

    async def session(protocol: str, script: str, *frames: bytes) -> dict[int, bytes]:
        query = [("command", "sh"), ("command", "-c"), ("command", script),
                 ("stdin", "true"), ("stdout", "true"), ("stderr", "true")]
        got: dict[int, bytes] = {}
        async with s.ws_connect(path, params=query, protocols=(protocol, "v3.channel.k8s.io")) as ws:
            assert ws.protocol == protocol
            for frame in frames:
                await ws.send_bytes(frame)
            async with asyncio.timeout(10):
                async for msg in ws:
                    assert msg.type == aiohttp.WSMsgType.BINARY
                    got[msg.data[0]] = got.get(msg.data[0], b"") + msg.data[1:]
            assert ws.close_code == 1000
        return got

    async with http(cluster, http_ssl) as s:
        for protocol in (PROTOCOL_V5, PROTOCOL_V4):
            got = await session(protocol, "head -c 12; echo; echo done >&2; exit 7",
                                b"\x00hello ", b"\x00world!", b"\x04{\"Width\":80,\"Height\":24}")
            assert (got[1], got[2]) == (b"hello world!\n", b"done\n")
            status = orjson.loads(got[3])
            assert status["reason"] == "NonZeroExitCode" and status["details"]["causes"][0]["message"] == "7"
        # v5's close signal half-closes stdin: cat sees the end of its input.
        got = await session(PROTOCOL_V5, "cat", b"\x00all of it\n", b"\xff\x00")
        assert got == {1: b"all of it\n", 3: b'{"metadata":{},"status":"Success"}'}
        query = [("command", "true"), ("stdout", "true")]
        # Without a protocol we speak, the upgrade is refused before anything runs.
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await s.ws_connect(path, params=query, protocols=("channel.k8s.io",))
        assert info.value.status == 400
        async with s.post(path, params=query, headers={"Upgrade": "SPDY/3.1", "Connection": "Upgrade",
                                                       "X-Stream-Protocol-Version": "v3.channel.k8s.io"}) as r:
            assert r.status == 400 and "unable to negotiate protocol" in (await r.json())["message"]
        async with s.get(path, params=query) as r:
            assert r.status == 400 and (await r.json())["message"] == "Upgrade request required"


@pytest.mark.asyncio(loop_scope="module")
async def test_exec_on_a_terminal_with_resize(cluster: Cluster, http_ssl: ssl.SSLContext) -> None:
    uid = await cluster.pod("tty", "sh", namespace="exec")
    cluster.node.container(uid, "sh")
    query = [("command", "sh"), ("command", "-c"), ("command", "sleep 0.3; stty size; read x; echo got $x"),
             ("stdin", "true"), ("stdout", "true"), ("stderr", "true"), ("tty", "true")]
    out = b""
    async with http(cluster, http_ssl) as s:
        async with s.ws_connect("/api/v1/namespaces/exec/pods/tty/exec", params=query,
                                protocols=(PROTOCOL_V5,)) as ws:
            await ws.send_bytes(b'\x04{"Width":100,"Height":33}')
            await ws.send_bytes(b"\x00abc\r")
            channels: set[int] = set()
            async with asyncio.timeout(10):
                async for msg in ws:
                    channels.add(msg.data[0])
                    if msg.data[0] == 1:
                        out += msg.data[1:]
    assert channels == {1, 3}  # a terminal has no separate stderr
    assert b"33 100\r\n" in out and b"got abc\r\n" in out, out


def read_terminal(master: int, timeout: float) -> bytes:
    """Everything a pseudo-terminal's other side writes until it hangs up (bounded by ``timeout``)."""
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the last process holding the terminal is gone
                break
            if not chunk:
                break
            out += chunk
    return out


@pytest.mark.asyncio(loop_scope="module")
async def test_kubectl_exec_on_a_real_terminal(cluster: Cluster) -> None:
    """``kubectl exec -it`` from a terminal: raw mode, the terminal's size sent on the resize channel."""
    uid = await cluster.pod("tty2", "sh", namespace="exec")
    cluster.node.container(uid, "sh")
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 41, 123, 0, 0))
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "--kubeconfig", str(cluster.kubeconfig), "exec", "-it", "-n", "exec", "tty2", "--",
        "sh", "-c", "sleep 0.5; stty size; tty >/dev/null && echo on-a-tty; exit 2",
        stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    try:
        out = await asyncio.wait_for(asyncio.to_thread(read_terminal, master, 15), 20)
        assert await asyncio.wait_for(proc.wait(), 10) == 2
    finally:
        os.close(master)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert b"41 123" in out and b"on-a-tty" in out, out


@pytest.mark.asyncio(loop_scope="module")
async def test_client_leaving_kills_the_command(cluster: Cluster, http_ssl: ssl.SSLContext) -> None:
    uid = await cluster.pod("sleeper", "sh", namespace="exec")
    cluster.node.container(uid, "sh")
    before = len(cluster.node.procs)
    async with http(cluster, http_ssl) as s:
        params = [("command", "sleep"), ("command", "30"), ("stdout", "true")]
        async with s.ws_connect("/api/v1/namespaces/exec/pods/sleeper/exec", params=params,
                                protocols=(PROTOCOL_V5,)):
            async def started() -> bool:
                return len(cluster.node.procs) > before

            await eventually(started, timeout=5)
    proc = cluster.node.procs[before]

    async def killed() -> bool:
        return proc.returncode is not None

    await eventually(killed, timeout=5)


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_spdy_codec_round_trip(chunk: int) -> None:
    client, server = SpdyCodec(), SpdyCodec()
    wire = (client.syn_stream(1, {"streamType": "error", "port": "8080", "requestID": "0"}, fin=True)
            + client.syn_stream(3, {"streamType": "data", "port": "8080", "requestID": "0"})
            + SpdyCodec.data(3, b"hello") + SpdyCodec.data(3, b"", fin=True) + client.ping(7)
            + client.rst_stream(3) + client.goaway(3))
    frames = [f for i in range(0, len(wire), chunk) for f in server.feed(wire[i:i + chunk])]
    assert [(f.kind, f.stream_id, f.fin) for f in frames] == [
        (SYN_STREAM, 1, True), (SYN_STREAM, 3, False), (DATA, 3, False), (DATA, 3, True), (PING, 0, False),
        (RST_STREAM, 3, False), (GOAWAY, 3, False)]
    assert frames[1].headers == {"streamtype": "data", "port": "8080", "requestid": "0"}
    assert (frames[2].data, frames[4].value) == (b"hello", 7)
    reply = client.feed(server.syn_reply(3))  # the reply's header block inflates on the other side
    assert [(f.kind, f.stream_id, f.headers) for f in reply] == [(SYN_REPLY, 3, {})]


def test_spdy_dictionary_is_the_drafts() -> None:
    assert (len(SPDY_DICTIONARY), zlib.adler32(SPDY_DICTIONARY)) == (1423, 0xE3C6A7C2)


@contextlib.asynccontextmanager
async def port_forward(cluster: Cluster, pod: str, port: int, transport: str = "websocket"
                       ) -> AsyncIterator[tuple[int, asyncio.subprocess.Process]]:
    """``kubectl port-forward`` to ``port`` on a free local port; yields that port and the process."""
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "--kubeconfig", str(cluster.kubeconfig), "port-forward", "-n", "exec", f"pod/{pod}",
        "--address=127.0.0.1", f":{port}", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=kubectl_env(transport))
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        assert line.startswith("Forwarding from 127.0.0.1:") and line.endswith(f" -> {port}\n"), line
        yield int(line.split(":")[1].split(" ")[0]), proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_kubectl_port_forward(cluster: Cluster, transport: str) -> None:
    async def shout(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data.upper())
            await writer.drain()
        writer.close()

    pod_ip = "127.16.5.5" if transport == "websocket" else "127.16.5.6"
    server = await asyncio.start_server(shout, pod_ip, 0)
    port = server.sockets[0].getsockname()[1]
    await cluster.pod(f"web-{transport}", "sh", namespace="exec")
    await cluster.client.patch_status(PODS, f"web-{transport}", {"status": {"podIP": pod_ip, "podIPs": [{"ip": pod_ip}]}},
                                      "exec")

    async def roundtrip(local: int, payload: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", local)
        writer.write(payload)
        writer.write_eof()  # half-closed: the pod still answers
        got = await reader.read()
        writer.close()
        return got

    try:
        async with port_forward(cluster, f"web-{transport}", port, transport) as (local, _):
            big = os.urandom(200_000).hex().encode()  # many SPDY frames each way
            results = await asyncio.wait_for(
                asyncio.gather(roundtrip(local, b"hello"), roundtrip(local, big), roundtrip(local, b"x")), 15)
            assert list(results) == [b"HELLO", big.upper(), b"X"]
            assert await asyncio.wait_for(roundtrip(local, b"again"), 5) == b"AGAIN"
        server.close()
        await server.wait_closed()
        # Nothing listens any more: kubectl reports the pod's refusal, as it does for kubelet's, and stops.
        async with port_forward(cluster, f"web-{transport}", port, transport) as (local, proc):
            assert await asyncio.wait_for(roundtrip(local, b"anyone?"), 10) == b""
            await asyncio.wait_for(proc.wait(), 10)
            assert proc.stderr is not None
            err = (await proc.stderr.read()).decode()
            assert f"error forwarding port {port} to pod web-{transport}" in err and "refused" in err, err
    finally:
        server.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_official_python_client_stream(cluster: Cluster) -> None:
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes.stream import stream

    uid = await cluster.pod("pyclient", "sh", namespace="exec")
    cluster.node.container(uid, "sh")

    def run() -> tuple[str, str, int | None]:
        api_client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        core = kubernetes.client.CoreV1Api(api_client)
        resp = stream(core.connect_get_namespaced_pod_exec, "pyclient", "exec",
                      command=["sh", "-c", "echo py-out; echo py-err >&2; exit 4"],
                      stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
        resp.run_forever(timeout=10)
        out, err = resp.read_stdout(), resp.read_stderr()
        code = resp.returncode
        resp.close()
        api_client.close()
        return out, err, code

    assert await asyncio.wait_for(asyncio.to_thread(run), 30) == ("py-out\n", "py-err\n", 4)



async def test_stopping_the_server_ends_open_sessions(tmp_path: Path) -> None:
    node = FakeNode(tmp_path / "node")
    node.root.mkdir()
    server = APIServer(ServerConfig(state_dir=tmp_path / "state", port=0, compaction_interval=3600))
    await server.start()
    connector = KubeletConnector(lambda name: node)
    server.subresources.node_connector = connector
    stopped = False
    try:
        async with Client.from_kubeconfig(server.kubeconfig_path) as client:
            cluster = Cluster(server, client, node, server.kubeconfig_path)
            uid = await cluster.pod("busy", "sh", namespace="default")
            node.container(uid, "sh").write_bytes(cri((0, "stdout", "F", "x")))
            logs = await cluster.pod("busy-logs", "sh", namespace="default")
            node.container(logs, "sh").write_bytes(cri((0, "stdout", "F", "x")))
            ctx = admin_ssl(cluster)
            async with http(cluster, ctx) as s:
                params = [("command", "sleep"), ("command", "30"), ("stdout", "true")]
                async with s.ws_connect("/api/v1/namespaces/default/pods/busy/exec", params=params,
                                        protocols=(PROTOCOL_V5,)) as ws, \
                        s.get("/api/v1/namespaces/default/pods/busy-logs/log?follow=1") as follow:
                    assert await follow.content.readline() == b"x\n"

                    async def started() -> bool:
                        return bool(node.procs)

                    await eventually(started, timeout=5)
                    began = time.monotonic()
                    await server.stop()
                    stopped = True
                    assert time.monotonic() - began < 5

                    async def killed() -> bool:  # aiohttp cancels the handlers as it stops: nothing left behind
                        return node.procs[0].returncode is not None and not any(connector.active.values())

                    await eventually(killed, timeout=5)
                    assert (await ws.receive(timeout=5)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                                                  aiohttp.WSMsgType.ERROR)
    finally:
        if not stopped:
            await server.stop()
        for proc in node.procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
