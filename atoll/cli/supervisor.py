"""The ``atoll up`` supervisor: one federation process and one process per member cluster, as a unit.

Why a supervisor and not a shell script: an outage is simulated by SIGKILLing a member
process, and a member's pods are processes in their own sessions (see
``cluster/kubelet/process.py``), so nothing in the kernel takes them down with it. The
supervisor is the one place that knows every process of the multi-cloud and can make
"stop" mean *nothing is left*:

* it makes itself a child subreaper (``PR_SET_CHILD_SUBREAPER``): pods orphaned by a
  killed member are re-parented to it rather than to init, and it kills and reaps them;
* it kills what a member's kubelets recorded in their pid files
  (``<member>/kubelet/<node>/run/*.pid``, "<pid> <start time>", so a reused pid is never
  signalled) — which also works from ``atoll down`` after the supervisor itself died;
* its children get ``PR_SET_PDEATHSIG`` (SIGTERM), so a supervisor killed with SIGKILL
  still takes its members down gracefully (they stop their pods themselves).

State on disk, under the state directory (default ``.atoll``)::

    supervisor.json       pids (with start times), ports, URLs, kubeconfigs, each process's state
    supervisor.pid        the supervisor's pid while it runs
    supervisor.lock       flock()ed for the supervisor's life: a second ``atoll up`` fails fast
    supervisor.sock       control channel (``atoll kill|revive|down``): one JSON request per line
    topology.yaml         the topology this multi-cloud runs (copied at the first ``up``)
    kubeconfig            context ``atoll`` (the federation) plus one per member
    logs/<name>.log       stdout and stderr of each process
    federation/, <member>/  each API server's state (certificates, SQLite store, kubelet dirs)

Ports are picked once and recorded; a later ``atoll up`` reuses them when they are free, so
the kubeconfigs users exported stay valid across restarts.

Shutdown order: the federation first, then the members. Were the members stopped first,
the federation's cluster status controller would see them fail, taint them and let
failover evict their replicas — and that would be the state a resumed multi-cloud
started from.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

logger = logging.getLogger(__name__)

STATE_FILE = "supervisor.json"
PID_FILE = "supervisor.pid"
LOCK_FILE = "supervisor.lock"
SOCKET_FILE = "supervisor.sock"
TOPOLOGY_FILE = "topology.yaml"
KUBECONFIG_FILE = "kubeconfig"
FEDERATION = "federation"
"""The federation's name in the state file and logs; its kubeconfig context is :data:`FEDERATION_CONTEXT`."""
FEDERATION_CONTEXT = "atoll"
RESERVED_NAMES = (FEDERATION, FEDERATION_CONTEXT, "logs")
"""Names a member cannot have: they are the federation's directory and context, and the log directory."""
STATE_VERSION = 1
STOP_GRACE = 20.0
"""Seconds a process gets after SIGTERM before SIGKILL (a member stops its pods in that time)."""
READY_TIMEOUT = 120.0
POLL = 0.25

ProcessState = Literal["stopped", "starting", "running", "killed", "exited", "stopping"]
PROCESS_STATES: tuple[str, ...] = ("stopped", "starting", "running", "killed", "exited", "stopping")

# Exit codes of the atoll management commands (documented in ``atoll up --help``).
EXIT_OK = 0
EXIT_FAILED = 1
"""Something did not work: a process did not start, a member refused, a timeout."""
EXIT_USAGE = 2
"""A user mistake: bad option, bad topology, unknown cluster or kind."""
EXIT_NOT_RUNNING = 3
"""No multi-cloud runs from that state directory (or its federation does not answer)."""
EXIT_ALREADY_RUNNING = 4
"""``atoll up`` on a state directory another supervisor is running."""


class SupervisorError(Exception):
    """A failure to report as one line; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


# -- the state file --------------------------------------------------------------------------------

@dataclass
class ProcessRecord:
    """One supervised process: what ``atoll down`` needs to find it and users need to reach it."""

    name: str
    port: int = 0
    pid: int = 0
    start_time: str = ""
    """Field 22 of ``/proc/<pid>/stat``: tells the recorded process from a later one with the same pid."""
    url: str = ""
    kubeconfig: str = ""
    state: ProcessState = "stopped"
    exit_code: int | None = None

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> ProcessRecord:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise SupervisorError(f"{where}: expected a process record with a name")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        for key in ("port", "pid"):
            if not isinstance(values.get(key, 0), int):
                raise SupervisorError(f"{where}.{key}: expected a number, got {values[key]!r}")
        if values.get("state", "stopped") not in PROCESS_STATES:
            raise SupervisorError(f"{where}.state: unknown state {values['state']!r}")
        return cls(**values)


@dataclass
class SupervisorState:
    """``supervisor.json``: the whole multi-cloud as the supervisor last saw it."""

    state_dir: str
    supervisor_pid: int = 0
    supervisor_start_time: str = ""
    socket: str = ""
    storage: str = ""
    runtime: str = ""
    federation: ProcessRecord = field(default_factory=lambda: ProcessRecord(FEDERATION))
    members: dict[str, ProcessRecord] = field(default_factory=dict)

    def records(self) -> list[ProcessRecord]:
        return [self.federation, *self.members.values()]

    def to_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "stateDir": self.state_dir,
                "supervisor": {"pid": self.supervisor_pid, "startTime": self.supervisor_start_time,
                               "socket": self.socket},
                "storage": self.storage, "runtime": self.runtime,
                "federation": dataclasses.asdict(self.federation),
                "members": [dataclasses.asdict(m) for m in self.members.values()]}

    @classmethod
    def from_dict(cls, raw: Any, source: str = STATE_FILE) -> SupervisorState:
        if not isinstance(raw, dict):
            raise SupervisorError(f"{source}: not a supervisor state (expected a JSON object)")
        if raw.get("version") != STATE_VERSION:
            raise SupervisorError(f"{source}: unsupported version {raw.get('version')!r} (expected {STATE_VERSION})")
        sup = raw.get("supervisor") or {}
        if not isinstance(sup, dict):
            raise SupervisorError(f"{source}: supervisor: expected an object")
        members_raw = raw.get("members") or []
        if not isinstance(members_raw, list):
            raise SupervisorError(f"{source}: members: expected a list")
        members = [ProcessRecord.from_dict(m, f"{source}: members[{i}]") for i, m in enumerate(members_raw)]
        return cls(state_dir=str(raw.get("stateDir") or ""), supervisor_pid=int(sup.get("pid") or 0),
                   supervisor_start_time=str(sup.get("startTime") or ""), socket=str(sup.get("socket") or ""),
                   storage=str(raw.get("storage") or ""), runtime=str(raw.get("runtime") or ""),
                   federation=ProcessRecord.from_dict(raw.get("federation") or {"name": FEDERATION},
                                                      f"{source}: federation"),
                   members={m.name: m for m in members})


def load_state(state_dir: Path) -> SupervisorState | None:
    """The recorded state, ``None`` if there is none; a damaged file is a :class:`SupervisorError`."""
    path = state_dir / STATE_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SupervisorError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise SupervisorError(f"{path} is not valid JSON ({exc}); remove it to start afresh") from None
    return SupervisorState.from_dict(raw, str(path))


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write atomically (temporary file + rename): a reader never sees half a state file or kubeconfig."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def save_state(state_dir: Path, state: SupervisorState) -> None:
    write_private(state_dir / STATE_FILE, json.dumps(state.to_dict(), indent=2).encode() + b"\n")


# -- processes -------------------------------------------------------------------------------------

def start_time(pid: int) -> str:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks); "" if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


def is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def alive(pid: int, started: str) -> bool:
    """The recorded process still runs (same pid *and* start time; zombies count as gone)."""
    return pid > 0 and bool(started) and start_time(pid) == started and not is_zombie(pid)


def _signal(pid: int, sig: int, *, group: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def kubelet_pid_files(member_dir: Path) -> list[Path]:
    return sorted(member_dir.glob("kubelet/*/run/*.pid"))


def kill_pods(member_dir: Path) -> int:
    """SIGKILL the process group of every container a member's kubelets recorded; returns how many ran."""
    killed = 0
    for pid_file in kubelet_pid_files(member_dir):
        try:
            pid_text, _, started = pid_file.read_text().strip().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            continue
        if started and start_time(pid) == started:
            _signal(pid, signal.SIGKILL, group=True)
            _signal(pid, signal.SIGKILL)
            killed += 1
        with contextlib.suppress(OSError):
            pid_file.unlink()
    return killed


def processes_under(root: Path, *, exclude: Iterable[int] = ()) -> list[int]:
    """Processes whose working directory is inside ``root`` (pods run in ``<member>/kubelet/<node>/pods/``)."""
    skip = {os.getpid(), *exclude}
    root_text = str(root.resolve()) + os.sep
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if (cwd + os.sep).startswith(root_text):
            found.append(int(entry.name))
    return found


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (``/proc/<pid>/task/*/children``, else a scan of ``/proc/*/stat``)."""
    out: list[int] = []
    tasks = Path(f"/proc/{pid}/task")
    try:
        for task in tasks.iterdir():
            out.extend(int(p) for p in (task / "children").read_text().split())
        return out
    except (OSError, ValueError):
        out.clear()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if len(fields) > 1 and fields[1] == str(pid):
                out.append(int(entry.name))
    return out


def make_subreaper() -> bool:
    """``PR_SET_CHILD_SUBREAPER``: orphaned descendants (pods of a killed member) become our children."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(36, 1, 0, 0, 0)) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A pre-exec function: SIGTERM the child when the supervisor goes, even by SIGKILL (PR_SET_PDEATHSIG).

    ``prctl`` is looked up here, in the parent: the child between fork and exec must not
    load anything (another thread of the parent may have held the loader's lock at fork).
    """
    try:
        prctl: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        prctl = None
    term = int(signal.SIGTERM)

    def preexec() -> None:
        if prctl is not None:
            prctl(1, term, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the supervisor died between fork and prctl
            os._exit(1)
    return preexec


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(preferred: int = 0, *, taken: Iterable[int] = (), host: str = "127.0.0.1") -> int:
    """``preferred`` when it is free (kubeconfigs stay valid across restarts), else a free port."""
    avoid = set(taken)
    if preferred and preferred not in avoid and port_free(preferred, host):
        return preferred
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in avoid:
            return port
    raise SupervisorError("no free port on the loopback interface")


def member_storage(storage: str, name: str) -> str:
    """Each API server's own storage: SQLite in its state directory, or its own prefix in a shared etcd."""
    if not storage or storage == "sqlite":
        return ""
    if storage.startswith("etcd://"):
        hosts, _, prefix = storage.removeprefix("etcd://").partition("/")
        base = "/" + prefix.strip("/") if prefix.strip("/") else "/atoll"
        return f"etcd://{hosts}{base}/{name}"
    raise SupervisorError(f"--storage must be sqlite or etcd://HOST:PORT[,HOST:PORT][/PREFIX], got {storage!r}",
                          EXIT_USAGE)


# -- kubeconfig ------------------------------------------------------------------------------------

_PATH_KEYS = {"cluster": ("certificate-authority",), "user": ("client-certificate", "client-key", "tokenFile")}


def _absolute(entry: Mapping[str, Any], keys: tuple[str, ...], base: Path) -> dict[str, Any]:
    out = dict(entry)
    for key in keys:
        value = out.get(key)
        if isinstance(value, str) and value and not os.path.isabs(os.path.expanduser(value)):
            out[key] = str((base / value).resolve())
    return out


def kubeconfig_entry(doc: Mapping[str, Any], name: str, *, base: Path, source: str = "kubeconfig"
                     ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The current context of one kubeconfig as (cluster, user, context) entries all named ``name``.

    Relative file paths become absolute (they were relative to the file they came from,
    which the merged kubeconfig does not live beside).
    """
    contexts = {c.get("name"): c for c in doc.get("contexts") or [] if isinstance(c, dict)}
    current = doc.get("current-context") or (next(iter(contexts)) if contexts else None)
    ctx = contexts.get(current)
    if ctx is None:
        raise SupervisorError(f"{source}: no context {current!r}")
    body = ctx.get("context") or {}
    clusters = {c.get("name"): c for c in doc.get("clusters") or [] if isinstance(c, dict)}
    users = {u.get("name"): u for u in doc.get("users") or [] if isinstance(u, dict)}
    cluster = clusters.get(body.get("cluster"))
    if cluster is None:
        raise SupervisorError(f"{source}: context {current!r} names no cluster in the file")
    user = users.get(body.get("user")) or {"user": {}}
    user_name = f"{name}-admin"
    context: dict[str, Any] = {"cluster": name, "user": user_name}
    if body.get("namespace"):
        context["namespace"] = body["namespace"]
    return ({"name": name, "cluster": _absolute(cluster.get("cluster") or {}, _PATH_KEYS["cluster"], base)},
            {"name": user_name, "user": _absolute(user.get("user") or {}, _PATH_KEYS["user"], base)},
            {"name": name, "context": context})


def merge_kubeconfigs(sources: Mapping[str, Path], *, current: str = FEDERATION_CONTEXT) -> dict[str, Any]:
    """One kubeconfig with a context per API server (context name = key of ``sources``), ``current`` current."""
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "clusters": [], "users": [],
                           "contexts": [], "current-context": current}
    for name, path in sources.items():
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SupervisorError(f"cannot read the kubeconfig of {name} ({path}): {exc}") from None
        if not isinstance(loaded, dict):
            raise SupervisorError(f"{path} is not a kubeconfig")
        cluster, user, context = kubeconfig_entry(loaded, name, base=path.parent, source=str(path))
        doc["clusters"].append(cluster)
        doc["users"].append(user)
        doc["contexts"].append(context)
    return doc


def write_kubeconfig(path: Path, sources: Mapping[str, Path]) -> None:
    doc = merge_kubeconfigs(sources)
    write_private(path, yaml.safe_dump(doc, sort_keys=False, default_flow_style=False).encode())


# -- the control channel ---------------------------------------------------------------------------

def socket_address(state_dir: Path) -> str:
    """The control socket: a file in the state directory, or (path too long for ``sun_path``) an
    abstract socket named after the directory."""
    path = str((state_dir / SOCKET_FILE).resolve())
    if len(path.encode()) < 100:
        return path
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:24]
    return "\0atoll-supervisor-" + digest


def request(address: str, op: str, *, timeout: float = 150.0, **args: str) -> dict[str, Any]:
    """Send one request to a running supervisor; its answer ``{"ok", "message", "code"}``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(address)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise SupervisorError("the supervisor does not answer on its control socket", EXIT_NOT_RUNNING) from exc
        s.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
        data = b""
        try:
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError as exc:
            raise SupervisorError(f"the supervisor did not answer {op} within {timeout:g}s") from exc
    try:
        answer: dict[str, Any] = json.loads(data)
    except ValueError:
        raise SupervisorError(f"the supervisor gave no answer to {op}") from None
    return answer


# -- finding a running supervisor ------------------------------------------------------------------

def running_supervisor(state_dir: Path) -> int:
    """The pid of the supervisor running from ``state_dir`` (its lock is held), else 0."""
    lock = state_dir / LOCK_FILE
    if not lock.exists():
        return 0
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return 0
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        try:
            return int((state_dir / PID_FILE).read_text().strip() or 0) or -1
        except (OSError, ValueError):
            return -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return 0
    finally:
        os.close(fd)


def terminate(pid: int, started: str, *, grace: float = STOP_GRACE) -> bool:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; True if it was running."""
    if not alive(pid, started):
        return False
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and alive(pid, started):
        time.sleep(0.1)
    if alive(pid, started):
        _signal(pid, signal.SIGKILL)
        for _ in range(50):
            if not alive(pid, started):
                break
            time.sleep(0.1)
    return True


def clean_leftovers(state_dir: Path, state: SupervisorState | None) -> list[str]:
    """After a supervisor that is gone: stop every recorded process and every pod; what was stopped."""
    stopped = []
    if state is not None:
        for rec in [state.federation, *state.members.values()]:  # the federation first, as in shutdown
            if terminate(rec.pid, rec.start_time):
                stopped.append(rec.name)
    for member_dir in sorted(p for p in state_dir.iterdir() if (p / "kubelet").is_dir()):
        if kill_pods(member_dir):
            stopped.append(f"pods of {member_dir.name}")
        for pid in processes_under(member_dir / "kubelet"):
            _signal(pid, signal.SIGKILL)
    return stopped


# -- the supervisor --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stage:
    """Progress of one process: what the display shows."""

    name: str
    stage: str
    detail: str = ""
    failed: bool = False


Reporter = Callable[[Stage], None]


@dataclass
class _Child:
    record: ProcessRecord
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    offset: int = 0
    """Where this run's output starts in the log (earlier runs' ``ready at`` lines are not this one's)."""


class Supervisor:
    """Starts, joins, watches and stops the processes of one multi-cloud (see the module docstring)."""

    def __init__(self, state_dir: Path, *, topology_text: str, storage: str = "", runtime: str = "",
                 federation_port: int = 0, report: Reporter | None = None, python: str = sys.executable) -> None:
        from atoll import topology as topo_mod

        self.state_dir = state_dir.resolve()
        self.topology = topo_mod.parse(topology_text, source=str(state_dir / TOPOLOGY_FILE))
        for cluster in self.topology.clusters:
            if cluster.name in RESERVED_NAMES:
                raise SupervisorError(f"cluster name {cluster.name!r} is reserved by atoll up "
                                      f"({', '.join(RESERVED_NAMES)}); rename it in the topology", EXIT_USAGE)
        self.topology_text = topology_text
        self.storage = storage
        self.runtime = runtime
        self.federation_port = federation_port
        self.report: Reporter = report or (lambda s: None)
        self.python = python
        self.state = SupervisorState(state_dir=str(self.state_dir))
        self.children: dict[str, _Child] = {}
        self.stop_event = asyncio.Event()
        self.events: asyncio.Queue[str] = asyncio.Queue()
        """Lines for the user while watching (a member exited, was killed, revived)."""
        self._lock_fd = -1
        self._server: asyncio.AbstractServer | None = None
        self._ops = asyncio.Lock()
        self._started_at = time.monotonic()

    # -- paths --------------------------------------------------------------------------------------
    @property
    def kubeconfig_path(self) -> Path:
        return self.state_dir / KUBECONFIG_FILE

    def _dir_of(self, name: str) -> Path:
        return self.state_dir / name

    # -- locking and the state file ------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the state directory: the lock, the pid file; resume from what a previous run left."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "logs").mkdir(exist_ok=True)
        fd = os.open(self.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            pid = running_supervisor(self.state_dir)
            raise SupervisorError(
                f"a multi-cloud is already running from {self.state_dir} (supervisor pid {pid}); "
                f"stop it with: atoll down --state-dir {self.state_dir}", EXIT_ALREADY_RUNNING) from None
        self._lock_fd = fd
        previous = load_state(self.state_dir)
        clean_leftovers(self.state_dir, previous)
        write_private(self.state_dir / PID_FILE, f"{os.getpid()}\n".encode(), 0o644)
        write_private(self.state_dir / TOPOLOGY_FILE, self.topology_text.encode(), 0o644)
        self._plan(previous)

    def _plan(self, previous: SupervisorState | None) -> None:
        """Ports and commands of every process, reusing recorded ports when they are free."""
        old = previous or SupervisorState(state_dir=str(self.state_dir))
        self.storage = self.storage or old.storage
        self.runtime = self.runtime or old.runtime
        member_storage(self.storage, FEDERATION)  # validates --storage
        taken: list[int] = []
        if self.federation_port:
            if not port_free(self.federation_port):
                raise SupervisorError(f"port 127.0.0.1:{self.federation_port} is in use; choose another "
                                      "--federation-port or 0 for a free one", EXIT_USAGE)
            fed_port = self.federation_port
        else:
            fed_port = pick_port(old.federation.port)
        taken.append(fed_port)
        fed = ProcessRecord(FEDERATION, port=fed_port)
        self.children[FEDERATION] = _Child(fed, self._federation_argv(fed_port),
                                           self.state_dir / "logs" / f"{FEDERATION}.log")
        members: dict[str, ProcessRecord] = {}
        for cluster in self.topology.clusters:
            recorded = old.members.get(cluster.name)
            port = pick_port(recorded.port if recorded else 0, taken=taken)
            taken.append(port)
            rec = ProcessRecord(cluster.name, port=port)
            members[cluster.name] = rec
            self.children[cluster.name] = _Child(rec, self._member_argv(cluster.name, port),
                                                 self.state_dir / "logs" / f"{cluster.name}.log")
        self.state = SupervisorState(state_dir=str(self.state_dir), supervisor_pid=os.getpid(),
                                     supervisor_start_time=start_time(os.getpid()),
                                     socket=socket_address(self.state_dir), storage=self.storage,
                                     runtime=self.runtime, federation=fed, members=members)
        save_state(self.state_dir, self.state)

    def _federation_argv(self, port: int) -> list[str]:
        argv = [self.python, "-m", "atoll.cli.main", "federation", "run", "--state-dir",
                str(self._dir_of(FEDERATION)), "--listen", f"127.0.0.1:{port}"]
        if storage := member_storage(self.storage, FEDERATION):
            argv += ["--storage", storage]
        return argv

    def _member_argv(self, name: str, port: int) -> list[str]:
        argv = [self.python, "-m", "atoll.cli.main", "cluster", "run", "--name", name, "--topology",
                str(self.state_dir / TOPOLOGY_FILE), "--state-dir", str(self._dir_of(name)), "--listen",
                f"127.0.0.1:{port}"]
        if self.runtime:
            argv += ["--runtime", self.runtime]
        if storage := member_storage(self.storage, name):
            argv += ["--storage", storage]
        return argv

    def save(self) -> None:
        save_state(self.state_dir, self.state)

    def release(self) -> None:
        for name in (PID_FILE, SOCKET_FILE):
            with contextlib.suppress(OSError):
                (self.state_dir / name).unlink()
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

    # -- starting -----------------------------------------------------------------------------------
    def _spawn(self, child: _Child) -> None:
        rec = child.record
        child.ready.clear()
        with open(child.log, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} atoll up: starting {rec.name}\n".encode())
            log.flush()
            child.offset = log.tell()
            child.popen = subprocess.Popen(
                child.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.state_dir,
                env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()))
        rec.pid, rec.start_time = child.popen.pid, start_time(child.popen.pid)
        rec.state, rec.exit_code, rec.url = "starting", None, ""
        rec.kubeconfig = str(self._dir_of(rec.name) / KUBECONFIG_FILE)
        self.save()
        self.report(Stage(rec.name, "starting", f"pid {rec.pid}, port {rec.port}"))

    async def _await_ready(self, child: _Child, timeout: float = READY_TIMEOUT) -> None:
        """Until the process prints its ``ready at`` line; stages on the way; a clear error if it dies."""
        rec, popen = child.record, child.popen
        assert popen is not None
        offset = child.offset
        api_ready = False
        deadline = time.monotonic() + timeout
        text = ""
        while True:
            with open(child.log, "rb") as f:
                f.seek(offset)
                text += f.read().decode(errors="replace")
                offset = f.tell()
            for line in text.splitlines():
                if " ready at " in line and line.startswith("atoll "):
                    rec.url = line.split(" ready at ", 1)[1].split()[0]
                    rec.state = "running"
                    self.save()
                    child.ready.set()
                    return
            if popen.poll() is not None:
                rec.state, rec.exit_code = "exited", popen.returncode
                self.save()
                raise SupervisorError(f"{rec.name} did not start: {last_error(child.log).removeprefix('error: ')} "
                                      f"(log: {child.log})")
            if not api_ready and await _answers(rec.port):
                api_ready = True
                self.report(Stage(rec.name, "API ready", f"https://127.0.0.1:{rec.port}"))
            if time.monotonic() > deadline:
                raise SupervisorError(f"{rec.name} was not ready within {timeout:g}s (log: {child.log})")
            await asyncio.sleep(POLL)

    async def start(self) -> None:
        """Every process in parallel; members join as soon as they and the federation are ready."""
        self._started_at = time.monotonic()
        for child in self.children.values():
            self._spawn(child)
        async with asyncio.TaskGroup() as group:
            fed = self.children[FEDERATION]
            group.create_task(self._start_federation(fed))
            for name in self.state.members:
                group.create_task(self._start_member(self.children[name]))

    async def _start_federation(self, child: _Child) -> None:
        await self._await_ready(child)
        self.report(Stage(FEDERATION, "ready", child.record.url))
        self._write_kubeconfig()

    async def _start_member(self, child: _Child) -> None:
        await self._await_ready(child)
        cluster = self.topology.cluster(child.record.name)
        self.report(Stage(child.record.name, "nodes Ready", f"{len(cluster.nodes)} {cluster.runtime} nodes"))
        await self.children[FEDERATION].ready.wait()
        self._write_kubeconfig()
        await self._join(child.record.name)
        self.report(Stage(child.record.name, "joined", child.record.url))

    def _write_kubeconfig(self) -> None:
        sources = {FEDERATION_CONTEXT: Path(self.state.federation.kubeconfig)}
        for name, rec in self.state.members.items():
            if rec.kubeconfig and Path(rec.kubeconfig).exists():
                sources[name] = Path(rec.kubeconfig)
        write_kubeconfig(self.kubeconfig_path, sources)

    async def _join(self, name: str) -> None:
        from atoll.api.errors import APIError
        from atoll.client import Client
        from atoll.federation import kinds
        from atoll.federation.clusters.registry import JoinError, join

        cluster = self.topology.cluster(name)
        rec = self.state.members[name]
        try:
            async with Client.from_kubeconfig(Path(self.state.federation.kubeconfig), timeout=15) as fed:
                for attempt in range(5):
                    try:
                        await join(fed, name, Path(rec.kubeconfig), provider=cluster.provider, region=cluster.region,
                                   zone=cluster.zones[0] if cluster.zones else "", labels=dict(cluster.labels))
                        break
                    except APIError:
                        if attempt == 4:
                            raise
                        await asyncio.sleep(0.5)
                if len(cluster.zones) > 1:
                    await fed.patch(kinds.CLUSTERS, name, {"spec": {"zones": list(cluster.zones)}})
        except JoinError as exc:
            raise SupervisorError(f"cannot join {name}: {exc}") from None
        except APIError as exc:
            raise SupervisorError(f"the federation refused to join {name}: {exc}") from None

    # -- the control channel ------------------------------------------------------------------------
    async def serve_control(self) -> None:
        address = self.state.socket
        if not address.startswith("\0"):
            with contextlib.suppress(OSError):
                os.unlink(address)
        self._server = await asyncio.start_unix_server(self._handle, path=address)
        if not address.startswith("\0"):
            os.chmod(address, 0o600)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            try:
                req = json.loads(line)
                op, name = str(req.get("op")), str(req.get("cluster") or "")
            except (ValueError, AttributeError):
                answer = {"ok": False, "message": "bad request", "code": EXIT_USAGE}
            else:
                answer = await self.control(op, name)
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def control(self, op: str, name: str = "") -> dict[str, Any]:
        """One ``atoll kill|revive|down|ping`` request; never raises."""
        if op == "ping":
            return {"ok": True, "message": "running", "code": EXIT_OK}
        if op == "down":
            self.stop_event.set()
            return {"ok": True, "message": "stopping", "code": EXIT_OK}
        if op not in ("kill", "revive"):
            return {"ok": False, "message": f"unknown operation {op!r}", "code": EXIT_USAGE}
        if name not in self.children:
            known = ", ".join([*self.state.members, FEDERATION])
            return {"ok": False, "message": f"no cluster named {name!r} (have: {known})", "code": EXIT_USAGE}
        async with self._ops:
            try:
                message = await (self.kill(name) if op == "kill" else self.revive(name))
            except SupervisorError as exc:
                return {"ok": False, "message": str(exc), "code": exc.code}
            except Exception as exc:  # a control request must never take the supervisor down
                logger.exception("%s %s failed", op, name)
                return {"ok": False, "message": f"{op} {name} failed: {exc}", "code": EXIT_FAILED}
        return {"ok": True, "message": message, "code": EXIT_OK}

    # -- outages ------------------------------------------------------------------------------------
    async def kill(self, name: str) -> str:
        """A cloud outage: SIGKILL the process and every pod of it; it stays down until revived."""
        child = self.children[name]
        rec = child.record
        if rec.state in ("killed", "exited", "stopped") or child.popen is None or child.popen.poll() is not None:
            rec.state = "killed"
            self.save()
            return f"{name} is already down"
        rec.state = "killed"
        self.save()
        child.popen.kill()
        await wait_exit(child.popen, 5.0)
        pods = await self._kill_pods_of(name)
        rec.exit_code = child.popen.returncode
        self.save()
        message = f"{name} killed (process {rec.pid}" + (f" and {pods} pod processes)" if pods else ")")
        await self.events.put(message)
        return message

    async def _kill_pods_of(self, name: str) -> int:
        if name == FEDERATION:
            self.reap_orphans()
            return 0
        pods = kill_pods(self._dir_of(name))
        for _ in range(20):  # orphans arrive as our children once their parent is gone
            orphans = self.reap_orphans()
            left = processes_under(self._dir_of(name) / "kubelet")
            for pid in left:
                _signal(pid, signal.SIGKILL)
            if not orphans and not left:
                break
            await asyncio.sleep(0.05)
        return pods

    async def revive(self, name: str) -> str:
        """Restart a killed (or crashed) process on its recorded port and state directory; re-join it."""
        child = self.children[name]
        if child.popen is not None and child.popen.poll() is None:
            return f"{name} is already running"
        if not port_free(child.record.port):
            raise SupervisorError(f"cannot revive {name}: port 127.0.0.1:{child.record.port} is taken")
        self._spawn(child)
        await self._await_ready(child)
        if name != FEDERATION:
            await self._join(name)
        message = f"{name} revived at {child.record.url}"
        await self.events.put(message)
        return message

    def reap_orphans(self) -> list[int]:
        """Kill and reap children we did not start: descendants of a dead member re-parented to us."""
        ours = {c.popen.pid for c in self.children.values() if c.popen is not None}
        found = [pid for pid in children_of(os.getpid()) if pid not in ours]
        for pid in found:
            _signal(pid, signal.SIGKILL, group=True)
            _signal(pid, signal.SIGKILL)
        for pid in found:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        return found

    # -- watching and stopping ----------------------------------------------------------------------
    async def watch(self) -> None:
        """Until stopped: report processes that exit unexpectedly (they are not restarted)."""
        while not self.stop_event.is_set():
            for name, child in self.children.items():
                rec, popen = child.record, child.popen
                if popen is None or rec.state not in ("running", "starting") or self._ops.locked():
                    continue
                code = popen.poll()
                if code is not None:
                    rec.state, rec.exit_code = "exited", code
                    self.save()
                    pods = await self._kill_pods_of(name)
                    tail = last_error(child.log)
                    await self.events.put(f"{name} exited unexpectedly (code {code}"
                                          + (f", {pods} pod processes stopped" if pods else "")
                                          + f"): {tail}; `atoll revive {name}` restarts it (log: {child.log})")
            self.reap_orphans()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), 0.5)

    async def stop(self) -> None:
        """The federation first (no failover from a shutdown), then every member; nothing left behind."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        await self._stop_children([FEDERATION])
        await self._stop_children(list(self.state.members))
        self.reap_orphans()
        self.save()

    async def _stop_children(self, names: list[str]) -> None:
        async def one(name: str) -> None:
            child = self.children[name]
            rec, popen = child.record, child.popen
            if popen is not None and popen.poll() is None:
                rec.state = "stopping"
                self.report(Stage(name, "stopping"))
                popen.terminate()
                if not await wait_exit(popen, STOP_GRACE):
                    popen.kill()
                    await wait_exit(popen, 5.0)
            await self._kill_pods_of(name)
            rec.state = "stopped"
            if popen is not None:
                rec.exit_code = popen.returncode

        await asyncio.gather(*(one(n) for n in names))

    def elapsed(self) -> float:
        return time.monotonic() - self._started_at


async def wait_exit(popen: subprocess.Popen[bytes], timeout: float) -> bool:
    """Until ``popen`` exits (True) or ``timeout`` passes (False); a Popen offers nothing to await."""
    deadline = time.monotonic() + timeout
    while popen.poll() is None:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _answers(port: int) -> bool:
    """The API server on ``port`` answers ``/readyz`` (anonymous, so no credentials needed)."""
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=ctx), 1.0)
    except (OSError, TimeoutError, ssl.SSLError):
        return False
    try:
        writer.write(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        status = await asyncio.wait_for(reader.readline(), 1.0)
        return b" 200 " in status
    except (OSError, TimeoutError, ssl.SSLError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def last_error(log: Path, *, limit: int = 200) -> str:
    """The line of a log that says what went wrong: the last ``error:`` line, else the last line."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    for line in reversed(lines):
        if line.startswith("error:") or "Error:" in line:
            return line[:limit]
    return lines[-1][:limit] if lines else "no output"
