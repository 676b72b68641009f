"""Container probes: liveness, readiness and startup, with kube's timing and threshold rules.

A :class:`Prober` runs one probe of one container instance on its own schedule
(``initialDelaySeconds`` after the start, then every ``periodSeconds``, each attempt
bounded by ``timeoutSeconds``) and turns raw outcomes into a result with
:class:`ResultCounter`: the result only flips after ``successThreshold`` consecutive
successes or ``failureThreshold`` consecutive failures (kube's prober worker). Before
the first flip, liveness counts as succeeding, readiness as failing, and a startup probe
has no verdict (the container is not "started" until it succeeds).
Handlers: ``httpGet`` (to the pod IP unless ``host`` is given; 200-399 is success;
``User-Agent: kube-probe/1.32``), ``tcpSocket`` (the connection opens), ``exec`` (exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
Kind = Literal["liveness", "readiness", "startup"]
Exec = Callable[[list[str], float], Awaitable[tuple[int, str]]]
"""``exec(command, timeout)`` → (exit code, output) in the container's context."""
USER_AGENT = "kube-probe/1.32"


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    handler: Obj
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def parse(cls, probe: Obj, kind: Kind) -> ProbeSpec:
        success = int(probe.get("successThreshold") or 1)
        if kind != "readiness":
            success = 1  # kube requires 1 for liveness and startup probes
        return cls(handler=probe, initial_delay=float(probe.get("initialDelaySeconds") or 0),
                   period=float(probe.get("periodSeconds") or 10), timeout=float(probe.get("timeoutSeconds") or 1),
                   success_threshold=success, failure_threshold=int(probe.get("failureThreshold") or 3))


class ResultCounter:
    """Consecutive-result counting with thresholds (kube's ``worker.doProbe`` bookkeeping)."""

    def __init__(self, spec: ProbeSpec, initial: bool | None) -> None:
        self.spec = spec
        self.result = initial
        """None: no verdict yet (a startup probe before its first success or final failure)."""
        self._last: bool | None = None
        self._run = 0

    def observe(self, ok: bool) -> bool:
        """Count one outcome; True when the result changed."""
        if ok == self._last:
            self._run += 1
        else:
            self._last = ok
            self._run = 1
        threshold = self.spec.success_threshold if ok else self.spec.failure_threshold
        if self._run < threshold or ok == self.result:
            return False
        self.result = ok
        return True


def resolve_port(port: Any, container: Obj) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    for p in container.get("ports") or []:
        if p.get("name") == text:
            return int(p["containerPort"])
    raise ValueError(f"port {text!r} not found in the container's ports")


async def http_get(spec: Obj, pod_ip: str, container: Obj, timeout: float) -> tuple[bool, str]:
    host = str(spec.get("host") or pod_ip)
    port = resolve_port(spec.get("port"), container)
    path = str(spec.get("path") or "/")
    if not path.startswith("/"):
        path = "/" + path
    scheme = str(spec.get("scheme") or "HTTP").lower()
    url = f"{scheme}://{host}:{port}{path}"
    headers = {"Host": f"{host}:{port}", "User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"}
    for h in spec.get("httpHeaders") or []:
        headers[str(h.get("name"))] = str(h.get("value") or "")
    ctx: ssl.SSLContext | None = None
    if scheme == "https":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
            request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            writer.write(request.encode())
            await writer.drain()
            line = await reader.readline()
    except TimeoutError:
        return False, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
    except OSError as exc:
        return False, f'Get "{url}": dial tcp {host}:{port}: connect: {(exc.strerror or str(exc)).lower()}'
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    parts = line.decode(errors="replace").split()
    if len(parts) < 2 or not parts[1].isdigit():
        return False, f'Get "{url}": malformed HTTP response {line[:80]!r}'
    code = int(parts[1])
    if 200 <= code < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {code}"


async def tcp_socket(spec: Obj, pod_ip: str, container: Obj, timeout: float) -> tuple[bool, str]:
    host = str(spec.get("host") or pod_ip)
    port = resolve_port(spec.get("port"), container)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return False, f"dial tcp {host}:{port}: i/o timeout"
    except OSError as exc:
        return False, f"dial tcp {host}:{port}: connect: {(exc.strerror or str(exc)).lower()}"
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True, ""


async def run_probe(spec: ProbeSpec, *, pod_ip: str, container: Obj, exec_: Exec) -> tuple[bool, str]:
    """One attempt: (success, message for the Unhealthy event)."""
    h = spec.handler
    try:
        if h.get("httpGet") is not None:
            return await http_get(h["httpGet"], pod_ip, container, spec.timeout)
        if h.get("tcpSocket") is not None:
            return await tcp_socket(h["tcpSocket"], pod_ip, container, spec.timeout)
        if h.get("exec") is not None:
            command = [str(x) for x in h["exec"].get("command") or []]
            code, output = await exec_(command, spec.timeout)
            if code == 0:
                return True, ""
            return False, output.strip() or f"command {command!r} exited with {code}"
        if h.get("grpc") is not None:
            return False, "grpc probes are not supported by the Atoll process runtime"
    except ValueError as exc:
        return False, str(exc)
    return False, "probe has no handler"


class Prober:
    """Runs one probe for one container instance until cancelled; reports result flips."""

    def __init__(self, kind: Kind, spec: ProbeSpec, *, pod_ip: str, container: Obj, exec_: Exec,
                 on_change: Callable[[Prober], None], on_failure: Callable[[Prober, str], None]) -> None:
        self.kind = kind
        self.spec = spec
        self.pod_ip = pod_ip
        self.container = container
        self.exec_ = exec_
        self.counter = ResultCounter(spec, initial={"liveness": True, "readiness": False, "startup": None}[kind])
        self.on_change = on_change
        self.on_failure = on_failure
        self.enabled = asyncio.Event()
        """Liveness and readiness wait for the startup probe to succeed."""

    @property
    def result(self) -> bool:
        return bool(self.counter.result)

    async def run(self) -> None:
        await self.enabled.wait()
        if self.spec.initial_delay:
            await asyncio.sleep(self.spec.initial_delay)
        while True:
            ok, message = await run_probe(self.spec, pod_ip=self.pod_ip, container=self.container,
                                          exec_=self.exec_)
            if not ok:
                self.on_failure(self, message)
            if self.counter.observe(ok):
                self.on_change(self)
                if self.kind == "startup" and ok:
                    return  # a startup probe stops once it has succeeded
            await asyncio.sleep(self.spec.period)
