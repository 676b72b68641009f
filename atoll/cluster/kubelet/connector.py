"""Node-served pod subresources — ``pods/log``, ``pods/exec``, ``pods/portforward`` — inside the API server.

In kube, kube-apiserver validates the request (container name, node assignment) and then
proxies it to the node's kubelet (``/containerLogs``, ``/exec``, ``/portForward``), which reads
the CRI log file or asks the container runtime. An Atoll member cluster runs its API server and
all of its kubelets in one process, so the proxy hop is a function call: the
:class:`KubeletConnector` plugs into :attr:`atoll.apiserver.subresources.Subresources.node_connector`,
does kube-apiserver's validation, finds the node's :class:`PodAccess` and does the kubelet's
part itself:

* ``pods/log`` reads the CRI-format log file (``<RFC3339Nano> <stdout|stderr> <F|P> <text>``),
  joins partial records into lines and applies ``tailLines``, ``sinceSeconds``/``sinceTime``,
  ``timestamps``, ``limitBytes`` and ``stream``; with ``follow`` it keeps polling the file until
  the container instance stops running or the client goes away.
* ``pods/exec`` speaks the WebSocket remote-command protocols ``v5.channel.k8s.io`` (what kubectl
  1.32 asks for) and ``v4.channel.k8s.io`` (the official Python client): one binary message per
  chunk, its first byte the channel (0 stdin, 1 stdout, 2 stderr, 3 error/status, 4 resize;
  v5 adds 255 to half-close a stream), and at the end on channel 3 the ``Status`` from which
  the client takes the command's exit code.
* ``pods/portforward`` speaks kubelet's ``portforward.k8s.io`` over SPDY/3.1 tunnelled in a
  WebSocket (``SPDY/3.1+portforward.k8s.io``, what kubectl 1.31+ tries first) and connects to
  the pod's IP (pods have their own loopback addresses).

Both also answer a plain ``Upgrade: SPDY/3.1`` (kubectl's fallback when the WebSocket upgrade
fails, kubectl before 1.30, client-go's SPDY executor): exec as ``v4.channel.k8s.io`` with one
SPDY stream per channel, port forwarding as ``portforward.k8s.io``. ``pods/attach`` is refused
with a 400 (no PodAccess operation backs it). The pure pieces (CRI parsing, line joining,
tail/since/limit selection, the exec exit ``Status``, SPDY framing) are module functions and
small classes, testable without a server.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import fcntl
import functools
import io
import logging
import os
import re
import struct
import termios
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import orjson
from aiohttp import WSMsgType, web
from multidict import MultiMapping

from atoll.api.errors import (
    APIError,
    BadRequest,
    InternalError,
    MethodNotAllowed,
    NotFound,
    field_error,
    invalid,
)

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

POLL_INTERVAL = 0.1
"""How often a following log reader looks for new lines and for the container's end."""
READ_CHUNK = 64 * 1024
OUTPUT_CHUNK = 32 * 1024
"""Exec output is forwarded in messages of at most this size (client-go reads 32 KiB buffers)."""
STDIN_BACKLOG = 256
"""Stdin messages buffered while the command is not reading; beyond it the client is held back."""


class PodAccess(Protocol):
    """What one node offers for node-served pod subresources (kubelet's /containerLogs and /exec)."""

    node_name: str

    def log_path(self, pod_uid: str, container: str, *, previous: bool = False) -> Path | None:
        """The log file of the container's current (or previous) instance; None if there is none."""
        ...

    def is_running(self, pod_uid: str, container: str) -> bool:
        """Whether the container's current instance is running (a following reader stops when it is not)."""
        ...

    async def exec(self, pod_uid: str, container: str, command: list[str], *, tty: bool = False
                   ) -> asyncio.subprocess.Process:
        """Start ``command`` in the container's context (its env incl. POD_IP, workingDir, limits) with
        stdin/stdout/stderr pipes (with ``tty``: a pseudo-terminal on all three, exposed the same way).
        Raises ``atoll.api.errors.NotFound`` if the container is unknown, ``BadRequest`` if not running."""
        ...


Lookup = Callable[[str], PodAccess | None]
"""Node name → that node's PodAccess (None for unknown nodes and nodes without a pod runtime)."""


# -- query parameters -------------------------------------------------------------------
def query_bool(query: Mapping[str, str], name: str) -> bool:
    """A boolean query parameter as kube-apiserver converts it (``1``, ``true``, ``True``... are true)."""
    value = query.get(name)
    if value is None:
        return False
    return value.strip().lower() not in ("0", "f", "false", "n", "no", "")


def query_int(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f'strconv.ParseInt: parsing "{value}": invalid syntax (query parameter {name})') from None


# -- timestamps -----------------------------------------------------------------------
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?([Zz]|[+-]\d\d:\d\d)$")


@functools.lru_cache(maxsize=4096)
def _epoch_seconds(date_time: str, zone: str) -> int:
    """Whole seconds of ``YYYY-MM-DDTHH:MM:SS`` in ``zone``; cached, as a log's lines share their seconds."""
    d = dt.datetime(int(date_time[0:4]), int(date_time[5:7]), int(date_time[8:10]), int(date_time[11:13]),
                    int(date_time[14:16]), int(date_time[17:19]), tzinfo=dt.UTC)
    offset = 0
    if zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        offset = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return int(d.timestamp()) - offset


def parse_rfc3339_nanos(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 timestamp with up to nanosecond precision.

    ``datetime`` stops at microseconds, and CRI runtimes write nanoseconds; ordering
    ``sinceTime`` against log lines needs all of them.
    """
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    date_time, frac, zone = m.groups()
    return _epoch_seconds(date_time, zone) * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0)


@functools.lru_cache(maxsize=4096)
def _format_seconds(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def format_rfc3339_nano(nanos: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC, as the kubelet prints ``timestamps`` (trailing zeros dropped)."""
    seconds, frac = divmod(nanos, 1_000_000_000)
    if not frac:
        return f"{_format_seconds(seconds)}Z"
    return f"{_format_seconds(seconds)}.{f'{frac:09d}'.rstrip('0')}Z"


# -- the CRI log format -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CRIRecord:
    """One line of a CRI log file: a full line of output, or one fragment of a long one."""

    nanos: int
    stream: str
    partial: bool
    text: bytes


def parse_cri_line(line: bytes) -> CRIRecord | None:
    """Parse ``<timestamp> <stream> <F|P> <text>`` (without the newline); None for a malformed line.

    The kubelet skips lines it cannot parse instead of failing the whole request; so do we.
    The text may be empty (``... stdout F ``, or with the last space missing: an empty line).
    """
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    stamp, stream, tag = parts[0], parts[1], parts[2]
    if stream not in (b"stdout", b"stderr") or tag not in (b"F", b"P"):
        return None
    try:
        nanos = parse_rfc3339_nanos(stamp.decode("ascii"))
    except (ValueError, UnicodeDecodeError, OverflowError):
        return None
    return CRIRecord(nanos, stream.decode(), tag == b"P", parts[3] if len(parts) == 4 else b"")


@dataclass(frozen=True, slots=True)
class LogLine:
    """A logical line of output: partial records joined, stamped with its first fragment's time."""

    nanos: int
    stream: str
    text: bytes
    complete: bool = True
    """False for fragments still waiting for their end when the log stops (printed without a newline)."""


class LineJoiner:
    """Joins ``P`` (partial) records with the ``F`` record that ends them, per stream.

    The runtime splits long lines into fragments of its buffer size; readers want the line.
    """

    def __init__(self) -> None:
        self._pending: dict[str, list[CRIRecord]] = {}

    def feed(self, record: CRIRecord) -> LogLine | None:
        pending = self._pending.get(record.stream)
        if record.partial:
            self._pending.setdefault(record.stream, []).append(record)
            return None
        if not pending:
            return LogLine(record.nanos, record.stream, record.text)
        del self._pending[record.stream]
        return LogLine(pending[0].nanos, record.stream, b"".join(r.text for r in pending) + record.text)

    def flush(self) -> list[LogLine]:
        """Fragments whose end never came, as incomplete lines (oldest first)."""
        lines = [LogLine(frags[0].nanos, stream, b"".join(r.text for r in frags), complete=False)
                 for stream, frags in self._pending.items() if frags]
        self._pending.clear()
        return sorted(lines, key=lambda line: line.nanos)


# -- log options ------------------------------------------------------------------------
STREAMS = {"All": frozenset({"stdout", "stderr"}), "Stdout": frozenset({"stdout"}),
           "Stderr": frozenset({"stderr"})}


@dataclass(frozen=True, slots=True)
class LogOptions:
    """kube's ``PodLogOptions`` as the kubelet applies them to one container's log."""

    container: str
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_nanos: int | None = None
    streams: frozenset[str] = STREAMS["All"]


def log_options(query: Mapping[str, str], *, pod_name: str, container: str, now_nanos: int) -> LogOptions:
    """Decode and validate the query of ``GET pods/log`` (kube's ``ValidatePodLogOptions``)."""
    tail = query_int(query, "tailLines")
    limit = query_int(query, "limitBytes")
    since_seconds = query_int(query, "sinceSeconds")
    since_time = query.get("sinceTime") or None
    stream = query.get("stream") or None
    causes: list[dict[str, str]] = []
    if tail is not None and tail < 0:
        causes.append(field_error("tailLines", f"Invalid value: {tail}: must be greater than or equal to 0"))
    if limit is not None and limit < 1:
        causes.append(field_error("limitBytes", f"Invalid value: {limit}: must be greater than 0"))
    if since_seconds is not None and since_time is not None:
        causes.append(field_error("", "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
                                  reason="FieldValueForbidden"))
    elif since_seconds is not None and since_seconds < 1:
        causes.append(field_error("sinceSeconds", f"Invalid value: {since_seconds}: must be greater than 0"))
    if stream is not None:
        if stream not in STREAMS:
            causes.append(field_error("stream", f'Unsupported value: "{stream}": supported values: "All", '
                                      '"Stderr", "Stdout"', reason="FieldValueNotSupported"))
        elif stream != "All" and tail is not None:
            causes.append(field_error("", "Forbidden: `tailLines` and specific `stream` are mutually exclusive "
                                      "for now", reason="FieldValueForbidden"))
    if causes:
        raise invalid("PodLogOptions", pod_name, causes)
    since: int | None = None
    if since_seconds is not None:
        since = now_nanos - since_seconds * 1_000_000_000
    elif since_time is not None:
        try:
            since = parse_rfc3339_nanos(since_time)
        except ValueError:
            raise BadRequest(f'parsing time "{since_time}" as "2006-01-02T15:04:05Z07:00": cannot parse') from None
    return LogOptions(container=container, follow=query_bool(query, "follow"),
                      previous=query_bool(query, "previous"), timestamps=query_bool(query, "timestamps"),
                      tail_lines=tail, limit_bytes=limit, since_nanos=since,
                      streams=STREAMS[stream or "All"])


class LogRenderer:
    """Turns CRI log bytes, fed in arbitrary chunks, into what ``pods/log`` answers.

    Incremental, so one instance serves a plain read, a tail and a follow alike: ``feed``
    returns the output for every line completed so far, ``finish`` the rest once the log ends.
    ``tailLines`` is not applied here (see :func:`tail_offset`: the reader starts late instead).
    """

    def __init__(self, options: LogOptions) -> None:
        self.options = options
        self._joiner = LineJoiner()
        self._carry = b""
        self._remaining = options.limit_bytes

    @property
    def exhausted(self) -> bool:
        """Whether ``limitBytes`` has been reached (nothing more will be produced)."""
        return self._remaining is not None and self._remaining <= 0

    def feed(self, data: bytes) -> bytes:
        if self.exhausted:
            return b""
        data = self._carry + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self._carry = data
            return b""
        self._carry = data[cut + 1:]
        out: list[bytes] = []
        for raw in data[:cut].split(b"\n"):
            record = parse_cri_line(raw)
            if record is None or record.stream not in self.options.streams:
                continue
            line = self._joiner.feed(record)
            if line is not None:
                out.append(self._render(line))
        return self._limit(b"".join(out))

    def finish(self) -> bytes:
        """Output of fragments whose final record never came (a trailing unterminated record is ignored)."""
        if self.exhausted:
            return b""
        return self._limit(b"".join(self._render(line) for line in self._joiner.flush()))

    def _render(self, line: LogLine) -> bytes:
        if self.options.since_nanos is not None and line.nanos < self.options.since_nanos:
            return b""
        text = line.text + b"\n" if line.complete else line.text
        if self.options.timestamps:
            return format_rfc3339_nano(line.nanos).encode() + b" " + text
        return text

    def _limit(self, out: bytes) -> bytes:
        if self._remaining is None:
            return out
        out = out[:self._remaining]
        self._remaining -= len(out)
        return out


def render_log(data: bytes, options: LogOptions) -> bytes:
    """The whole answer for a complete log held in memory (tail included); for tests and small logs."""
    buf = io.BytesIO(data)
    start = tail_offset(buf, options.tail_lines) if options.tail_lines is not None else 0
    renderer = LogRenderer(options)
    return renderer.feed(data[start:]) + renderer.finish()


def tail_offset(f: IO[bytes], lines: int, *, block: int = READ_CHUNK) -> int:
    """The file offset from which a reader sees only the last ``lines`` logical lines.

    Scans backwards a block at a time, so tailing a large log reads only its end. A logical
    line ends with an ``F`` record; the offset is just after the ``F`` that ends the line
    before the wanted ones, so their partial records are included. Records after the last
    ``F`` (a line still being written) are included too.
    """
    size = f.seek(0, os.SEEK_END)
    base = size
    buf = b""
    end: int | None = None  # index in buf of the newline ending the record under examination
    found = 0
    while True:
        if end is None:
            nl = buf.rfind(b"\n")
            if nl >= 0:
                end = nl
                continue
        else:
            prev = buf.rfind(b"\n", 0, end)
            if prev >= 0 or base == 0:
                record = parse_cri_line(buf[prev + 1:end])
                if record is not None and not record.partial:
                    if found == lines:
                        return base + end + 1
                    found += 1
                if prev < 0:
                    return 0
                end = prev
                buf = buf[:end + 1] if len(buf) > 4 * block else buf
                continue
        if base == 0:
            return 0
        start = max(0, base - block)
        f.seek(start)
        data = f.read(base - start)
        buf = data + buf
        if end is not None:
            end += len(data)
        base = start


# -- exec -------------------------------------------------------------------------------
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
PROTOCOL_V5 = "v5.channel.k8s.io"
PROTOCOL_V4 = "v4.channel.k8s.io"
EXEC_PROTOCOLS = (PROTOCOL_V5, PROTOCOL_V4)


@dataclass(frozen=True, slots=True)
class ExecOptions:
    """kube's ``PodExecOptions`` after the kubelet's rules (no stderr stream with a TTY)."""

    container: str
    command: tuple[str, ...]
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    tty: bool = False


def exec_options(query: MultiMapping[str], *, container: str) -> ExecOptions:
    """Decode ``pods/exec``'s query (``command`` repeated) with kube's checks."""
    command = tuple(query.getall("command", []))
    stdin, stdout, stderr = (query_bool(query, n) for n in ("stdin", "stdout", "stderr"))
    tty = query_bool(query, "tty")
    if not (stdin or stdout or stderr):
        raise BadRequest("you must specify at least 1 of stdin, stdout, stderr")
    if not command:
        raise BadRequest("you must specify at least one command for the container")
    return ExecOptions(container, command, stdin=stdin, stdout=stdout, stderr=stderr and not tty, tty=tty)


def negotiate_protocol(header: str | None) -> str | None:
    """The first of the client's sub-protocols (in its order of preference) that we speak."""
    for proto in (p.strip() for p in (header or "").split(",")):
        if proto in EXEC_PROTOCOLS:
            return proto
    return None


def exit_code(returncode: int) -> int:
    """A shell-style exit code: 128 + N for a command killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def exit_status(returncode: int, command: Iterable[str]) -> Obj:
    """The ``Status`` the kubelet writes on the error channel when the command ends.

    client-go turns ``NonZeroExitCode`` with an ``ExitCode`` cause into ``CodeExitError``,
    which is how ``kubectl exec`` exits with the command's code.
    """
    code = exit_code(returncode)
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"[{' '.join(command)}], exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def error_status(err: APIError) -> Obj:
    """An error met after the upgrade, in the form the error channel carries."""
    status = err.to_status()
    status.pop("kind", None)
    status.pop("apiVersion", None)
    return status


class ExecChannels(Protocol):
    """The numbered channels of one exec session, whatever carries them (WebSocket or SPDY streams)."""

    async def send(self, channel: int, data: bytes) -> None: ...

    async def end(self, channel: int) -> None:
        """No more data on ``channel`` from us (SPDY half-closes its stream; WebSockets have no such signal)."""
        ...

    async def receive(self) -> tuple[int, bytes] | None:
        """The client's next message as (channel, payload); ``(CLOSE, b"\\x00")`` when stdin ends; None when
        the client has gone."""
        ...

    async def close(self) -> None: ...


class WebSocketChannels:
    """Channels as the first byte of binary WebSocket messages (``v4``/``v5.channel.k8s.io``)."""

    def __init__(self, ws: web.WebSocketResponse, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self._lock = asyncio.Lock()

    async def send(self, channel: int, data: bytes) -> None:
        async with self._lock:
            await self.ws.send_bytes(bytes((channel,)) + data)

    async def end(self, channel: int) -> None:
        return None

    async def receive(self) -> tuple[int, bytes] | None:
        while True:
            msg = await self.ws.receive()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return None
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            data: bytes = msg.data
            if data[0] == CLOSE and self.protocol != PROTOCOL_V5:
                continue  # only v5 knows the close signal
            return data[0], data[1:]

    async def close(self) -> None:
        if not self.ws.closed:
            await self.ws.close()


class ExecSession:
    """One exec: pumps the process's output out, the client's stdin in, over :class:`ExecChannels`.

    It ends when the command has exited and its output is drained (the exit ``Status`` goes
    out on channel 3, then a normal close — client-go reads the error channel to EOF), or
    when the client goes away (the command is killed: nobody can read its output anymore).
    """

    def __init__(self, channels: ExecChannels, proc: asyncio.subprocess.Process, options: ExecOptions) -> None:
        self.channels = channels
        self.proc = proc
        self.options = options
        self._stdin: asyncio.Queue[bytes | None] = asyncio.Queue(STDIN_BACKLOG)

    async def run(self) -> int | None:
        """Serve the session; the command's exit code, or None if the client left first or it failed."""
        if not self.options.stdin:
            self._close_stdin_now()
        finished = asyncio.create_task(self._outputs_then_exit(), name="exec-outputs")
        client = asyncio.create_task(self._read_client(), name="exec-client")
        tasks: list[asyncio.Task[Any]] = [finished, client,
                                          asyncio.create_task(self._write_stdin(), name="exec-stdin")]
        try:
            done, _ = await asyncio.wait({finished, client}, return_when=asyncio.FIRST_COMPLETED)
            if finished in done:
                client.cancel()
                await asyncio.wait({client})  # no receive() may be pending while the connection closes
                code: int | None = None
                try:
                    returncode = finished.result()
                    status, code = exit_status(returncode, self.options.command), exit_code(returncode)
                except Exception as exc:
                    logger.exception("exec of %s failed", self.options.command)
                    status = error_status(InternalError(f"error executing command in container: {exc}"))
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.channels.send(ERROR, orjson.dumps(status))
                    await self.channels.end(ERROR)
                    await self.channels.close()
                return code
            logger.debug("exec client left before %s ended; killing it", self.options.command)
            return None
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.proc.wait(), 5)
            with contextlib.suppress(Exception):
                await self.channels.close()

    async def _pump(self, reader: asyncio.StreamReader, channel: int, forward: bool) -> None:
        """Copy one output stream to its channel until EOF (a terminal's EIO after exit is EOF too)."""
        while True:
            try:
                data = await reader.read(OUTPUT_CHUNK)
            except OSError:
                break
            if not data:
                break
            if forward:
                try:
                    await self.channels.send(channel, data)
                except (ConnectionError, RuntimeError):
                    forward = False  # keep draining so the command does not block on a full pipe
        if forward:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.channels.end(channel)

    async def _outputs_then_exit(self) -> int:
        proc, opts = self.proc, self.options
        pumps: list[Any] = []
        if proc.stdout is not None:
            pumps.append(self._pump(proc.stdout, STDOUT, opts.stdout))
        if proc.stderr is not None and proc.stderr is not proc.stdout:
            # With a TTY, anything the runtime gives apart goes to the terminal's channel.
            pumps.append(self._pump(proc.stderr, STDOUT if opts.tty else STDERR,
                                    opts.stdout if opts.tty else opts.stderr))
        await asyncio.gather(*pumps)
        return await proc.wait()

    async def _read_client(self) -> None:
        while (message := await self.channels.receive()) is not None:
            channel, payload = message
            if channel == STDIN and self.options.stdin:
                if payload:
                    await self._stdin.put(payload)
            elif channel == RESIZE and self.options.tty:
                self._resize(payload)
            elif channel == CLOSE and payload[:1] == bytes((STDIN,)):
                await self._stdin.put(None)

    async def _write_stdin(self) -> None:
        stdin = self.proc.stdin
        if stdin is None:
            return
        while True:
            data = await self._stdin.get()
            try:
                if data is None:
                    if self.options.tty:
                        stdin.write(b"\x04")  # end of input on a terminal is ^D, not a closed master
                        await stdin.drain()
                    else:
                        stdin.close()
                    return
                stdin.write(data)
                await stdin.drain()
            except (ConnectionError, OSError, RuntimeError):
                return  # the command closed its stdin or exited: the rest of the input is dropped

    def _close_stdin_now(self) -> None:
        if self.proc.stdin is not None and not self.options.tty:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()

    def _resize(self, payload: bytes) -> None:
        """Apply a ``{"Width":..,"Height":..}`` resize to the terminal (the kernel signals SIGWINCH)."""
        try:
            size = orjson.loads(payload)
            width, height = int(size.get("Width") or 0), int(size.get("Height") or 0)
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            logger.debug("ignoring malformed resize message %r", payload[:100])
            return
        stdin = self.proc.stdin
        pipe = stdin.transport.get_extra_info("pipe") if stdin is not None else None
        if pipe is None or width <= 0 or height <= 0:
            return
        with contextlib.suppress(OSError, ValueError):
            fcntl.ioctl(pipe.fileno(), termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


# -- port forwarding: SPDY/3.1 tunnelled in a WebSocket ------------------------------------
PORTFORWARD_V1 = "portforward.k8s.io"
PORTFORWARD_PROTOCOL = "SPDY/3.1+" + PORTFORWARD_V1
"""kubectl 1.31+ tunnels the SPDY session it used to open with an HTTP upgrade inside a WebSocket."""
SPDY_VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
DATA = 0
FLAG_FIN = 0x01
RST_CANCEL = 5


def _spdy_dictionary() -> bytes:
    """The zlib dictionary SPDY/3 header blocks are compressed with (draft-mbelshe-httpbis-spdy-00 2.6.10.1).

    Built the way the draft defines it: length-prefixed header names and values, then a run of
    common status lines, dates and media types. 1423 bytes; a peer's inflate fails on any difference.
    """
    words = ("options head post put delete trace accept accept-charset accept-encoding accept-language "
             "accept-ranges age allow authorization cache-control connection content-base content-encoding "
             "content-language content-length content-location content-md5 content-range content-type date "
             "etag expect expires from host if-match if-modified-since if-none-match if-range "
             "if-unmodified-since last-modified location max-forwards pragma proxy-authenticate "
             "proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
             "user-agent vary via warning www-authenticate method get status").split()
    words += ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
    tail = ("100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
            "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
            "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
            "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
            "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
            "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
            "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
    return b"".join(len(w).to_bytes(4, "big") + w.encode() for w in words) + tail.encode()


SPDY_DICTIONARY = _spdy_dictionary()


@dataclass(frozen=True, slots=True)
class SpdyFrame:
    """One SPDY/3 frame: ``kind`` is ``DATA`` (0) or a control frame type."""

    kind: int
    flags: int = 0
    stream_id: int = 0
    data: bytes = b""
    headers: Mapping[str, str] | None = None
    """Decoded header block (names lower-case) of SYN_STREAM, SYN_REPLY and HEADERS."""
    value: int = 0
    """PING's id, RST_STREAM's and GOAWAY's status, WINDOW_UPDATE's delta."""

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


class SpdyCodec:
    """SPDY/3.1 framing for one connection, both directions.

    Header blocks are zlib streams that span the connection (one compression context per
    direction), so one codec must see every frame of its connection, in order. Incoming bytes
    may be cut anywhere; ``feed`` keeps the remainder for the next call.
    """

    MAX_FRAME = 1 << 24

    def __init__(self) -> None:
        self._buf = bytearray()
        self._inflate = zlib.decompressobj(zdict=SPDY_DICTIONARY)
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, 15, zdict=SPDY_DICTIONARY)

    def feed(self, data: bytes) -> list[SpdyFrame]:
        self._buf += data
        frames: list[SpdyFrame] = []
        while len(self._buf) >= 8:
            length = int.from_bytes(self._buf[5:8], "big")
            if len(self._buf) < 8 + length:
                break
            head, payload = bytes(self._buf[:8]), bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            frames.append(self._decode(head, payload))
        return frames

    def _decode(self, head: bytes, payload: bytes) -> SpdyFrame:
        flags = head[4]
        if not head[0] & 0x80:
            return SpdyFrame(DATA, flags, int.from_bytes(head[0:4], "big") & 0x7FFFFFFF, payload)
        version, kind = int.from_bytes(head[0:2], "big") & 0x7FFF, int.from_bytes(head[2:4], "big")
        if version != SPDY_VERSION:
            raise ValueError(f"unsupported SPDY version {version}")
        word = int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF if len(payload) >= 4 else 0
        second = int.from_bytes(payload[4:8], "big") if len(payload) >= 8 else 0
        if kind == SYN_STREAM:
            return SpdyFrame(kind, flags, word, headers=self._headers(payload[10:]))
        if kind in (SYN_REPLY, HEADERS):
            return SpdyFrame(kind, flags, word, headers=self._headers(payload[4:]))
        if kind in (RST_STREAM, WINDOW_UPDATE):
            return SpdyFrame(kind, flags, word, value=second)
        if kind == PING:
            return SpdyFrame(kind, flags, value=int.from_bytes(payload[0:4], "big"))
        if kind == GOAWAY:
            return SpdyFrame(kind, flags, word, value=second)
        return SpdyFrame(kind, flags, data=payload)  # SETTINGS and the rest: nothing we act on

    def _headers(self, block: bytes) -> dict[str, str]:
        raw = self._inflate.decompress(block)
        count, pos, headers = int.from_bytes(raw[0:4], "big"), 4, {}
        for _ in range(count):
            n = int.from_bytes(raw[pos:pos + 4], "big")
            name = raw[pos + 4:pos + 4 + n].decode("latin-1").lower()
            pos += 4 + n
            n = int.from_bytes(raw[pos:pos + 4], "big")
            headers[name] = raw[pos + 4:pos + 4 + n].decode("latin-1").split("\0")[0]
            pos += 4 + n
        return headers

    def _control(self, kind: int, flags: int, payload: bytes) -> bytes:
        return (bytes(((0x80 | (SPDY_VERSION >> 8)), SPDY_VERSION & 0xFF)) + kind.to_bytes(2, "big")
                + bytes((flags,)) + len(payload).to_bytes(3, "big") + payload)

    def encode_headers(self, headers: Mapping[str, str]) -> bytes:
        raw = len(headers).to_bytes(4, "big") + b"".join(
            len(k).to_bytes(4, "big") + k.lower().encode() + len(v).to_bytes(4, "big") + v.encode()
            for k, v in headers.items())
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def syn_stream(self, stream_id: int, headers: Mapping[str, str], *, fin: bool = False) -> bytes:
        payload = stream_id.to_bytes(4, "big") + bytes(6) + self.encode_headers(headers)
        return self._control(SYN_STREAM, FLAG_FIN if fin else 0, payload)

    def syn_reply(self, stream_id: int, headers: Mapping[str, str] | None = None, *, fin: bool = False) -> bytes:
        payload = stream_id.to_bytes(4, "big") + self.encode_headers(headers or {})
        return self._control(SYN_REPLY, FLAG_FIN if fin else 0, payload)

    def rst_stream(self, stream_id: int, status: int = RST_CANCEL) -> bytes:
        return self._control(RST_STREAM, 0, stream_id.to_bytes(4, "big") + status.to_bytes(4, "big"))

    def ping(self, ping_id: int) -> bytes:
        return self._control(PING, 0, ping_id.to_bytes(4, "big"))

    def goaway(self, last_stream: int, status: int = 0) -> bytes:
        return self._control(GOAWAY, 0, last_stream.to_bytes(4, "big") + status.to_bytes(4, "big"))

    @staticmethod
    def data(stream_id: int, payload: bytes, *, fin: bool = False) -> bytes:
        return (stream_id.to_bytes(4, "big") + bytes((FLAG_FIN if fin else 0,)) + len(payload).to_bytes(3, "big")
                + payload)


class Tunnel(Protocol):
    """A byte pipe carrying one SPDY session: a WebSocket (kubectl 1.31+) or an upgraded HTTP connection."""

    async def recv(self) -> bytes | None:
        """The next bytes from the client; None once it has gone."""
        ...

    async def send(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class WebSocketTunnel:
    """SPDY tunnelled in binary WebSocket messages (client-go's ``TunnelingConnection``)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def recv(self) -> bytes | None:
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY:
                return bytes(msg.data)
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return None

    async def send(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def close(self) -> None:
        if not self.ws.closed:
            await self.ws.close()


class _RawReader:
    """Takes the bytes aiohttp receives after a ``101 Switching Protocols`` (its parser interface)."""

    HIGH_WATER = 64

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.paused = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        if self.queue.qsize() > self.HIGH_WATER and not self.paused:
            self.paused = True
            self.protocol.pause_reading()  # a client faster than the pod waits in TCP, not in memory
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)


class UpgradedConnection:
    """An HTTP connection upgraded to raw SPDY (``Upgrade: SPDY/3.1``), as kube-apiserver accepts it.

    aiohttp keeps the connection and hands every later byte to a "payload parser"; the one set
    here queues the bytes, and answers are written to the transport directly.
    """

    def __init__(self, request: web.Request, response: web.StreamResponse, reader: _RawReader) -> None:
        self.request = request
        self.response = response
        """The prepared 101: what the handler returns (aiohttp finishes it, writing nothing more)."""
        self.reader = reader

    @classmethod
    async def accept(cls, request: web.Request, headers: Mapping[str, str]) -> UpgradedConnection:
        resp = web.StreamResponse(status=101, headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                                                       **headers})
        resp.force_close()
        writer = await resp.prepare(request)
        if writer is not None:
            await writer.drain()  # the 101 must be out before the first raw byte
        protocol: Any = request.protocol
        reader = _RawReader(protocol)
        protocol.set_parser(reader)
        protocol.keep_alive(False)
        return cls(request, resp, reader)

    async def recv(self) -> bytes | None:
        data = await self.reader.queue.get()
        if self.reader.paused and self.reader.queue.qsize() < _RawReader.HIGH_WATER // 2:
            self.reader.paused = False
            self.reader.protocol.resume_reading()
        return data

    async def send(self, data: bytes) -> None:
        transport = self.request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client has gone")
        transport.write(data)
        drain = getattr(self.request.protocol, "_drain_helper", None)  # waits while the transport is paused
        if drain is not None:
            await drain()

    async def close(self) -> None:
        transport = self.request.transport
        if transport is not None and not transport.is_closing():
            transport.close()


SPDY_EXEC_PROTOCOL = "v4.channel.k8s.io"
"""The remote-command version served over plain SPDY (``X-Stream-Protocol-Version``): exit codes need v4."""
STREAM_CREATION_TIMEOUT = 30.0
"""How long the client may take to open the streams its options call for (the kubelet's default)."""
_STREAM_CHANNELS = {"stdin": STDIN, "stdout": STDOUT, "stderr": STDERR, "error": ERROR, "resize": RESIZE}


class SpdyChannels:
    """Exec channels as SPDY streams, one per ``streamType`` (client-go's SPDY executor, older kubectl).

    The client opens the streams (error first, then stdin/stdout/stderr/resize as asked), each
    answered with a SYN_REPLY; our end of data on a stream is a FIN, stdin's end is the client's
    FIN, and resize messages are newline-separated JSON on their own stream.
    """

    def __init__(self, tunnel: Tunnel) -> None:
        self.tunnel = tunnel
        self.codec = SpdyCodec()
        self._stream_of: dict[int, int] = {}
        self._channel_of: dict[int, int] = {}
        self._ended: set[int] = set()
        self._pending: collections.deque[tuple[int, bytes]] = collections.deque()
        self._resize = b""
        self._gone = False
        self._lock = asyncio.Lock()

    @staticmethod
    def expected(options: ExecOptions) -> set[int]:
        """The streams the client opens for these options (the kubelet waits for exactly these)."""
        wanted = {ERROR}
        for flag, channel in ((options.stdin, STDIN), (options.stdout, STDOUT), (options.stderr, STDERR),
                              (options.tty, RESIZE)):
            if flag:
                wanted.add(channel)
        return wanted

    async def accept_streams(self, expected: set[int], *, timeout: float = STREAM_CREATION_TIMEOUT) -> None:
        """Read until the client has opened every expected stream; ``TimeoutError`` or ``ConnectionError``."""
        async with asyncio.timeout(timeout):
            while not expected <= set(self._stream_of):
                if not await self._read_more():
                    raise ConnectionResetError("the client left before opening its streams")

    async def _read_more(self) -> bool:
        data = await self.tunnel.recv()
        if data is None:
            self._gone = True
            return False
        for frame in self.codec.feed(data):
            await self._handle(frame)
        return not self._gone

    async def _handle(self, frame: SpdyFrame) -> None:
        if frame.kind == SYN_STREAM:
            await self._write(self.codec.syn_reply(frame.stream_id))
            channel = _STREAM_CHANNELS.get((frame.headers or {}).get("streamtype", ""))
            if channel is None:
                await self._write(self.codec.rst_stream(frame.stream_id, 1))
                return
            self._stream_of[channel] = frame.stream_id
            self._channel_of[frame.stream_id] = channel
            if frame.fin and channel == STDIN:
                self._pending.append((CLOSE, bytes((STDIN,))))
        elif frame.kind == DATA:
            channel = self._channel_of.get(frame.stream_id)
            if channel == STDIN:
                if frame.data:
                    self._pending.append((STDIN, frame.data))
                if frame.fin:
                    self._pending.append((CLOSE, bytes((STDIN,))))
            elif channel == RESIZE and frame.data:
                self._resize += frame.data
                *lines, self._resize = self._resize.split(b"\n")
                self._pending.extend((RESIZE, line) for line in lines if line.strip())
        elif frame.kind == RST_STREAM and self._channel_of.get(frame.stream_id) == STDIN:
            self._pending.append((CLOSE, bytes((STDIN,))))
        elif frame.kind == PING:
            await self._write(self.codec.ping(frame.value))
        elif frame.kind == GOAWAY:
            self._gone = True

    async def _write(self, data: bytes) -> None:
        async with self._lock:
            await self.tunnel.send(data)

    async def send(self, channel: int, data: bytes) -> None:
        stream = self._stream_of.get(channel)
        if stream is not None and stream not in self._ended:
            await self._write(self.codec.data(stream, data))

    async def end(self, channel: int) -> None:
        stream = self._stream_of.get(channel)
        if stream is not None and stream not in self._ended:
            self._ended.add(stream)
            await self._write(self.codec.data(stream, b"", fin=True))

    async def receive(self) -> tuple[int, bytes] | None:
        while not self._pending:
            if self._gone or not await self._read_more():
                return None
        return self._pending.popleft()

    async def close(self) -> None:
        await self.tunnel.close()


@dataclass
class _ForwardPair:
    """The two streams kubectl opens per local connection: ``error`` and ``data``, one ``requestID``."""

    request: str
    port: int
    error_stream: int = 0
    data_stream: int = 0
    inbound: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(STDIN_BACKLOG))
    """Client bytes for the pod; bounded, so a pod that does not read slows the client down (SPDY as
    kubectl speaks it has no flow control of its own)."""
    task: asyncio.Task[None] | None = None


class PortForwardSession:
    """kubelet's port-forward protocol (``portforward.k8s.io``) over one tunnelled SPDY session.

    Every pair of streams is one TCP connection to the pod's IP and port: the data stream
    carries the bytes both ways (a FIN from the client half-closes the connection towards the
    pod, the pod's end of data is our FIN), the error stream carries a failure's message and
    then a FIN, which is how the client knows the connection is over.
    """

    def __init__(self, tunnel: Tunnel, *, pod_name: str, pod_uid: str, pod_ip: str) -> None:
        self.tunnel = tunnel
        self.pod_name, self.pod_uid, self.pod_ip = pod_name, pod_uid, pod_ip
        self.codec = SpdyCodec()
        self._send_lock = asyncio.Lock()
        self._pairs: dict[str, _ForwardPair] = {}
        self._by_stream: dict[int, _ForwardPair] = {}
        self._last_stream = 0

    async def run(self) -> None:
        try:
            while (data := await self.tunnel.recv()) is not None:
                for frame in self.codec.feed(data):
                    if await self._dispatch(frame):
                        return
        except (ValueError, zlib.error) as exc:
            logger.warning("port-forward to %s: malformed SPDY from the client: %s", self.pod_name, exc)
        finally:
            tasks = [p.task for p in list(self._pairs.values()) if p.task is not None]
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(Exception):
                await self.tunnel.close()

    async def _send(self, frame: bytes) -> None:
        async with self._send_lock:
            await self.tunnel.send(frame)

    async def _dispatch(self, frame: SpdyFrame) -> bool:
        """Act on one frame; True when the session is over (GOAWAY)."""
        if frame.kind == SYN_STREAM:
            await self._open(frame)
        elif frame.kind == DATA:
            pair = self._by_stream.get(frame.stream_id)
            if pair is not None and frame.stream_id == pair.data_stream:
                if frame.data:
                    await pair.inbound.put(frame.data)
                if frame.fin:
                    await pair.inbound.put(None)
        elif frame.kind == RST_STREAM:
            pair = self._by_stream.get(frame.stream_id)
            if pair is not None and pair.task is not None:
                pair.task.cancel()
        elif frame.kind == PING:
            await self._send(self.codec.ping(frame.value))
        elif frame.kind == GOAWAY:
            return True
        return False

    async def _open(self, frame: SpdyFrame) -> None:
        headers = frame.headers or {}
        self._last_stream = max(self._last_stream, frame.stream_id)
        await self._send(self.codec.syn_reply(frame.stream_id))
        kind, request = headers.get("streamtype", ""), headers.get("requestid") or str(frame.stream_id)
        try:
            port = int(headers.get("port", ""))
        except ValueError:
            await self._send(self.codec.rst_stream(frame.stream_id, 1))
            return
        pair = self._pairs.setdefault(request, _ForwardPair(request, port))
        self._by_stream[frame.stream_id] = pair
        if kind == "error":
            pair.error_stream = frame.stream_id
        elif kind == "data":
            pair.data_stream = frame.stream_id
            if frame.fin:
                await pair.inbound.put(None)
        else:
            await self._send(self.codec.rst_stream(frame.stream_id, 1))
            return
        if pair.error_stream and pair.data_stream and pair.task is None:
            pair.task = asyncio.create_task(self._forward(pair), name=f"port-forward-{request}")

    async def _forward(self, pair: _ForwardPair) -> None:
        error: str | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            try:
                reader, writer = await asyncio.open_connection(self.pod_ip, pair.port)
            except OSError as exc:
                reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
                error = f"dial tcp {self.pod_ip}:{pair.port}: connect: {reason}"
                return
            upstream = asyncio.create_task(self._to_pod(pair, writer))
            try:
                while data := await reader.read(OUTPUT_CHUNK):
                    await self._send(self.codec.data(pair.data_stream, data))
            finally:
                upstream.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await upstream
        except OSError as exc:
            error = str(exc)
        finally:
            if writer is not None:
                writer.close()
            # Both streams end as the kubelet ends them: the error (with its message, if any), then the data.
            with contextlib.suppress(Exception):
                if error is not None:
                    message = (f"error forwarding port {pair.port} to pod {self.pod_name}, uid {self.pod_uid}: "
                               f"{error}")
                    await self._send(self.codec.data(pair.error_stream, message.encode()))
                await self._send(self.codec.data(pair.error_stream, b"", fin=True))
                await self._send(self.codec.data(pair.data_stream, b"", fin=True))
            self._pairs.pop(pair.request, None)
            self._by_stream.pop(pair.error_stream, None)
            self._by_stream.pop(pair.data_stream, None)

    @staticmethod
    async def _to_pod(pair: _ForwardPair, writer: asyncio.StreamWriter) -> None:
        while (data := await pair.inbound.get()) is not None:
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


# -- the connector ----------------------------------------------------------------------
def container_names(pod: Obj) -> list[str]:
    """Containers in kube's visiting order: init containers, containers, ephemeral containers."""
    spec = pod.get("spec") or {}
    return [str(c.get("name")) for key in ("initContainers", "containers", "ephemeralContainers")
            for c in spec.get(key) or [] if isinstance(c, dict) and c.get("name")]


def validate_container(pod: Obj, container: str) -> str:
    """kube-apiserver's container choice: the only one when unnamed, otherwise it must exist."""
    name = pod["metadata"]["name"]
    if not container:
        spec_containers = (pod.get("spec") or {}).get("containers") or []
        if len(spec_containers) == 1:
            return str(spec_containers[0].get("name"))
        if not spec_containers:
            raise BadRequest(f"a container name must be specified for pod {name}")
        raise BadRequest(f"a container name must be specified for pod {name}, "
                         f"choose one of: [{' '.join(container_names(pod))}]")
    if container not in container_names(pod):
        raise BadRequest(f"container {container} is not valid for pod {name}")
    return container


def _container_status(pod: Obj, container: str) -> Obj | None:
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(key) or []:
            if isinstance(cs, dict) and cs.get("name") == container:
                return cs
    return None


def missing_log_error(pod: Obj, container: str) -> BadRequest:
    """The kubelet's explanation for a container that has no log (yet)."""
    name = pod["metadata"]["name"]
    state = (_container_status(pod, container) or {}).get("state") or {}
    if "waiting" in state:
        reason = (state.get("waiting") or {}).get("reason") or ""
        return BadRequest(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
    if "terminated" in state:
        return BadRequest(f'container "{container}" in pod "{name}" is terminated')
    return BadRequest(f'container "{container}" in pod "{name}" is not available')


class KubeletConnector:
    """The API server's :class:`~atoll.apiserver.subresources.NodeConnector` for a member cluster.

    Wire it with ``api_server.subresources.node_connector = KubeletConnector(lookup)`` where
    ``lookup(node_name)`` returns that node's :class:`PodAccess` (the kubelet), or None.
    """

    def __init__(self, lookup: Lookup, *, poll_interval: float = POLL_INTERVAL) -> None:
        self.lookup = lookup
        self.poll_interval = poll_interval
        self.active = {"log": 0, "exec": 0, "portforward": 0}
        """Streams being served now, by subresource (for metrics, and for tests to see them end)."""

    async def handle(self, request: web.Request, pod: Obj, subresource: str) -> web.StreamResponse:
        if subresource == "log":
            if request.method != "GET":
                raise MethodNotAllowed(f"{request.method} is not supported on pods/log")
            return await self.logs(request, pod)
        if subresource == "exec":
            if request.method not in ("GET", "POST"):
                raise MethodNotAllowed(f"{request.method} is not supported on pods/exec")
            return await self.exec(request, pod)
        if subresource == "portforward":
            if request.method not in ("GET", "POST"):
                raise MethodNotAllowed(f"{request.method} is not supported on pods/portforward")
            return await self.portforward(request, pod)
        if subresource == "attach":
            self._node_access(pod, verb=subresource)
            raise BadRequest("pods/attach is not supported by this cluster's nodes (use pods/exec or pods/log)")
        raise NotFound(f"the server could not find the requested resource ( pods/{subresource} "
                       f"{pod['metadata']['name']})")

    def _node_access(self, pod: Obj, *, verb: str) -> PodAccess:
        name = pod["metadata"]["name"]
        node = (pod.get("spec") or {}).get("nodeName") or ""
        if not node:
            raise BadRequest(f"pod {name} does not have a host assigned")
        access = self.lookup(node)
        if access is None:
            raise BadRequest(f'node "{node}" of pod {name} does not serve {verb}: it runs no pod processes '
                             "(a simulated node, or a node this cluster does not host)")
        return access

    # -- logs ---------------------------------------------------------------------------
    async def logs(self, request: web.Request, pod: Obj) -> web.StreamResponse:
        query = request.query
        name = pod["metadata"]["name"]
        container = validate_container(pod, query.get("container", ""))
        options = log_options(query, pod_name=name, container=container, now_nanos=time.time_ns())
        if not (pod.get("spec") or {}).get("nodeName"):
            # kube-apiserver has no node to ask, so no stream: it answers 204 No Content.
            return web.Response(status=204)
        access = self._node_access(pod, verb="container logs")
        uid = str(pod["metadata"].get("uid") or "")
        path = access.log_path(uid, container, previous=options.previous)
        if path is None:
            if options.previous:
                raise BadRequest(f'previous terminated container "{container}" in pod "{name}" not found')
            raise missing_log_error(pod, container)
        try:
            f = path.open("rb")
        except FileNotFoundError:
            raise missing_log_error(pod, container) from None
        with f:
            start = tail_offset(f, options.tail_lines) if options.tail_lines is not None else 0
            f.seek(start)
            resp = web.StreamResponse(headers={"Content-Type": "text/plain", "Cache-Control": "no-cache"})
            await resp.prepare(request)
            self.active["log"] += 1
            try:
                await self._stream_log(request, resp, f, options, access, uid, path)
                await resp.write_eof()
            except ConnectionError:
                logger.debug("log reader of %s/%s went away", name, container)
            except OSError as exc:  # the headers are out: a Status cannot follow, the stream just ends
                logger.warning("reading the log of %s/%s failed: %s", name, container, exc)
            finally:
                self.active["log"] -= 1
        return resp

    async def _stream_log(self, request: web.Request, resp: web.StreamResponse, f: IO[bytes],
                          options: LogOptions, access: PodAccess, uid: str, path: Path) -> None:
        renderer = LogRenderer(options)
        follow = options.follow and not options.previous
        last_pass = not follow
        while True:
            data = f.read(READ_CHUNK)
            if data:
                out = renderer.feed(data)
                if out:
                    await resp.write(out)
                if renderer.exhausted:
                    return
                await asyncio.sleep(0)  # a large log must not hold the loop
                continue
            if last_pass:
                break
            if request.transport is None or request.transport.is_closing():
                return
            if not self._still_current(access, uid, options.container, path):
                last_pass = True  # one more read: lines written just before the end
                continue
            await asyncio.sleep(self.poll_interval)
        out = renderer.finish()
        if out:
            await resp.write(out)

    @staticmethod
    def _still_current(access: PodAccess, uid: str, container: str, path: Path) -> bool:
        """Whether the followed file still belongs to a running current instance (not a restart's)."""
        try:
            return access.is_running(uid, container) and access.log_path(uid, container) == path
        except APIError:
            return False

    # -- exec ---------------------------------------------------------------------------
    async def exec(self, request: web.Request, pod: Obj) -> web.StreamResponse:
        name = pod["metadata"]["name"]
        container = validate_container(pod, request.query.get("container", ""))
        access = self._node_access(pod, verb="exec")
        options = exec_options(request.query, container=container)
        uid = str(pod["metadata"].get("uid") or "")
        # The container must run before anything is upgraded (the kubelet asks the runtime first), so
        # kubectl's SPDY retry after a refused WebSocket shows the same reason.
        if not access.is_running(uid, container):
            raise BadRequest(f'container "{container}" in pod "{name}" is not running')
        headers = request.headers
        if headers.get("Upgrade", "").lower().startswith("spdy/"):
            return await self._exec_over_spdy(request, pod, access, options)
        if headers.get("Upgrade", "").lower() != "websocket":
            raise BadRequest("Upgrade request required")
        protocol = negotiate_protocol(headers.get("Sec-WebSocket-Protocol"))
        if protocol is None:
            raise BadRequest(f"requested protocol(s) are not supported: "
                             f"[{headers.get('Sec-WebSocket-Protocol', '')}]; supports {list(EXEC_PROTOCOLS)}")
        if request.method != "GET":
            raise BadRequest("a WebSocket upgrade must be a GET request")
        ws = web.WebSocketResponse(protocols=(protocol,), autoping=True, compress=False)
        if not ws.can_prepare(request).ok:
            raise BadRequest("malformed WebSocket upgrade request")
        await ws.prepare(request)
        self.active["exec"] += 1
        try:
            await self._run_exec(WebSocketChannels(ws, protocol), access, uid, options)
        finally:
            self.active["exec"] -= 1
        return ws

    async def _exec_over_spdy(self, request: web.Request, pod: Obj, access: PodAccess,
                              options: ExecOptions) -> web.StreamResponse:
        """The pre-WebSocket transport: ``Upgrade: SPDY/3.1`` with ``X-Stream-Protocol-Version``."""
        offered = [v.strip() for h in request.headers.getall("X-Stream-Protocol-Version", [])
                   for v in h.split(",")]
        if SPDY_EXEC_PROTOCOL not in offered:
            raise BadRequest(f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                             f"server supports [{SPDY_EXEC_PROTOCOL}]")
        uid = str(pod["metadata"].get("uid") or "")
        conn = await UpgradedConnection.accept(request, {"X-Stream-Protocol-Version": SPDY_EXEC_PROTOCOL})
        channels = SpdyChannels(conn)
        self.active["exec"] += 1
        try:
            try:
                await channels.accept_streams(SpdyChannels.expected(options))
            except (TimeoutError, ConnectionError):
                logger.info("exec client for %s did not open its streams", pod["metadata"]["name"])
                await channels.close()
                return conn.response
            await self._run_exec(channels, access, uid, options)
        finally:
            self.active["exec"] -= 1
        return conn.response

    async def _run_exec(self, channels: ExecChannels, access: PodAccess, uid: str, options: ExecOptions) -> None:
        try:
            proc = await access.exec(uid, options.container, list(options.command), tty=options.tty)
        except (APIError, OSError) as exc:
            # As with a CRI runtime: the stream is open, so a command that cannot start is reported
            # on the error channel (kubectl prints it and exits 1).
            reason = exc.message if isinstance(exc, APIError) else (exc.strerror or str(exc))
            status = error_status(InternalError(
                f"Internal error occurred: error executing command in container: {reason}"))
            with contextlib.suppress(ConnectionError, RuntimeError):
                await channels.send(ERROR, orjson.dumps(status))
                await channels.end(ERROR)
                await channels.close()
            return
        logger.debug("exec %s in %s", options.command, options.container)
        await ExecSession(channels, proc, options).run()

    # -- port forwarding ----------------------------------------------------------------
    async def portforward(self, request: web.Request, pod: Obj) -> web.StreamResponse:
        """Forward kubectl's connections to the pod's IP (pods get their own loopback address)."""
        name = pod["metadata"]["name"]
        self._node_access(pod, verb="port forwarding")
        pod_ip = str((pod.get("status") or {}).get("podIP") or "")
        if not pod_ip:
            raise BadRequest(f"pod {name} has no IP address yet")
        headers = request.headers
        upgrade = headers.get("Upgrade", "").lower()
        uid = str(pod["metadata"].get("uid") or "")
        tunnel: Tunnel
        if upgrade.startswith("spdy/"):
            offered = [v.strip() for h in headers.getall("X-Stream-Protocol-Version", []) for v in h.split(",")]
            if PORTFORWARD_V1 not in offered:
                raise BadRequest(f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                                 f"server supports [{PORTFORWARD_V1}]")
            conn = await UpgradedConnection.accept(request, {"X-Stream-Protocol-Version": PORTFORWARD_V1})
            response: web.StreamResponse = conn.response
            tunnel = conn
        elif upgrade == "websocket":
            offered = [p.strip() for p in headers.get("Sec-WebSocket-Protocol", "").split(",")]
            if PORTFORWARD_PROTOCOL not in offered:
                raise BadRequest(f"requested protocol(s) are not supported: {offered}; supports "
                                 f"[{PORTFORWARD_PROTOCOL}]")
            ws = web.WebSocketResponse(protocols=(PORTFORWARD_PROTOCOL,), autoping=True, compress=False)
            if not ws.can_prepare(request).ok:
                raise BadRequest("malformed WebSocket upgrade request")
            await ws.prepare(request)
            response, tunnel = ws, WebSocketTunnel(ws)
        else:
            raise BadRequest("Upgrade request required")
        self.active["portforward"] += 1
        try:
            await PortForwardSession(tunnel, pod_name=name, pod_uid=uid, pod_ip=pod_ip).run()
        finally:
            self.active["portforward"] -= 1
        return response
