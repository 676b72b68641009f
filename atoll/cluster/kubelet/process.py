"""The process runtime: every container instance is a real child process of the kubelet's process.

Each instance runs in its own session (so its process group is the container: a
signal to the group reaches everything it forked), with stdin closed and stdout/stderr
piped into a log file in the CRI format kube's ``kubectl logs`` path reads::

    <RFC3339Nano timestamp> <stdout|stderr> <F|P> <text>

Layout under ``root`` (kube's ``/var/log/pods`` layout, plus pid files)::

    pods/<namespace>_<name>_<uid>/<container>/<attempt>.log
    pods/<namespace>_<name>_<uid>/work/          default working directory
    run/<container id>.pid                       "<pid> <start time>" while it runs
    run/<container id>-exec-<pid>.pid            the same for processes exec'd into it

Containers without limits to apply in the child are started with ``posix_spawn``
(``setsid``; the working directory through coreutils' ``env -C``) and reaped through a
pidfd: no ``fork`` of the kubelet's large process blocking the event loop for
milliseconds per container, and no waiter thread per child. Containers whose limits
must be set in the child before ``exec`` (rlimits, joining a cgroup) use
``fork``/``exec`` with a pre-exec function.

When the main process exits, what is left of its process group is killed, as a
container's PID namespace dies with its init. A kubelet that restarts finds the pid
files of the instances its predecessor left running and kills them
(:meth:`ProcessRuntime.cleanup_stale`), checking the process start time so a reused
pid is never signalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import logging
import os
import pty
import shutil
import signal
import termios
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from atoll.api.errors import BadRequest, NotFound
from atoll.cluster.kubelet import limits as limits_mod
from atoll.cluster.kubelet.runtime import ContainerConfig, ContainerID, ContainerState, StartError

logger = logging.getLogger(__name__)

MAX_LINE = 16 * 1024
"""Longer lines are split into partial (``P``) records, as containerd does."""
PUMP_GRACE = 0.5


def cri_timestamp(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def cri_lines(stream: str, buffer: bytearray, *, final: bool = False) -> bytes:
    """Turn what ``buffer`` holds into CRI log records, leaving an unfinished line in it."""
    out = bytearray()
    ts = cri_timestamp().encode()
    tag = stream.encode()
    while True:
        nl = buffer.find(b"\n")
        if 0 <= nl <= MAX_LINE:
            out += ts + b" " + tag + b" F " + buffer[:nl] + b"\n"
            del buffer[:nl + 1]
        elif len(buffer) > MAX_LINE:
            out += ts + b" " + tag + b" P " + buffer[:MAX_LINE] + b"\n"
            del buffer[:MAX_LINE]
        else:
            break
    if final and buffer:
        out += ts + b" " + tag + b" F " + bytes(buffer) + b"\n"
        buffer.clear()
    return bytes(out)


def _start_time(pid: int) -> str:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks); empty if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class _PtyProtocol(asyncio.StreamReaderProtocol):
    """A pty master reports EIO once the terminal's last user exits: that is the end of output."""

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, OSError) and exc.errno == errno.EIO:
            exc = None
        super().connection_lost(exc)


class _Child(Protocol):
    """A container's main process: what asyncio's ``Process`` and :class:`_SpawnedChild` both offer."""

    pid: int
    stdout: asyncio.StreamReader | None
    stderr: asyncio.StreamReader | None

    async def wait(self) -> int: ...


def _env_chdir() -> str | None:
    """coreutils' ``env`` if it supports ``-C`` (a working directory for ``posix_spawn``), else None."""
    env = shutil.which("env")
    if env is None or not hasattr(os, "posix_spawn") or not hasattr(os, "pidfd_open"):
        return None
    try:
        import subprocess

        ok = subprocess.run([env, "-C", "/", "--", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return None
    return env if ok else None


class _SpawnedChild:
    """A child started with ``posix_spawn``, reaped when its pidfd becomes readable."""

    def __init__(self, pid: int, stdout: asyncio.StreamReader, stderr: asyncio.StreamReader) -> None:
        self.pid = pid
        self.stdout: asyncio.StreamReader | None = stdout
        self.stderr: asyncio.StreamReader | None = stderr
        self.returncode: int | None = None
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[int] = self._loop.create_future()
        self._pidfd = os.pidfd_open(pid)
        self._loop.add_reader(self._pidfd, self._reap)

    def _reap(self) -> None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else: the exit status is lost
            pid, status = self.pid, 255 << 8
        if pid == 0:
            return
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self.returncode = os.waitstatus_to_exitcode(status)
        if not self._done.done():
            self._done.set_result(self.returncode)

    async def wait(self) -> int:
        return await asyncio.shield(self._done)


def _close_all(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _kill_spawned(fut: asyncio.Future[int]) -> None:
    if not fut.cancelled() and fut.exception() is None:
        pid = fut.result()
        _killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


async def _read_pipe(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0))
    return reader


@dataclass
class _Instance:
    state: ContainerState
    config: ContainerConfig
    proc: _Child
    cgroup: Path | None
    working_dir: Path
    pid_file: Path
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    execs: set[int] = field(default_factory=set)


class ProcessRuntime:
    """Runs containers as child processes under ``root``; see the module docstring.

    ``ProcessRuntime(root, node="node-1")``; ``enforcement`` defaults to what
    :func:`atoll.cluster.kubelet.limits.detect` finds on this host.
    """

    name = "atoll-process"
    version = "1"

    def __init__(self, root: Path, *, node: str = "node", enforcement: limits_mod.Enforcement | None = None) -> None:
        self.root = Path(root)
        self.node = node
        self.limits = enforcement or limits_mod.detect()
        self.enforcement = self.limits.describe()
        self._cgroups: limits_mod.CgroupTree | None = None
        if self.limits.mode == "cgroup2":
            try:
                self._cgroups = limits_mod.CgroupTree(node)
                self._cgroups.prepare()
            except OSError as exc:
                self._cgroups = None
                self.limits = limits_mod.Enforcement("rlimit", memory=True, cpu=False,
                                                     detail=f"cgroup2 setup failed: {exc}")
                self.enforcement = self.limits.describe()
        self._instances: dict[ContainerID, _Instance] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._env_chdir = _env_chdir()
        (self.root / "run").mkdir(parents=True, exist_ok=True)
        (self.root / "pods").mkdir(parents=True, exist_ok=True)

    # -- layout ----------------------------------------------------------------------------
    def pod_dir(self, namespace: str, name: str, uid: str) -> Path:
        return self.root / "pods" / f"{namespace}_{name}_{uid}"

    def log_file(self, namespace: str, pod_name: str, pod_uid: str, container: str, attempt: int) -> Path:
        return self.pod_dir(namespace, pod_name, pod_uid) / container / f"{attempt}.log"

    # -- lifecycle of instances --------------------------------------------------------------
    async def start(self, config: ContainerConfig) -> ContainerState:
        if not config.argv:
            raise StartError("no command specified")
        pod_dir = self.pod_dir(config.namespace, config.pod_name, config.pod_uid)
        log_path = self.log_file(config.namespace, config.pod_name, config.pod_uid, config.name, config.attempt)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        working_dir = config.working_dir or pod_dir / "work"
        if config.working_dir is None:
            working_dir.mkdir(parents=True, exist_ok=True)
        cid = ContainerID(uuid.uuid4().hex)
        cgroup = None
        if self._cgroups is not None and (config.limits.memory is not None or config.limits.milli_cpu is not None):
            cgroup = self._cgroups.create(config.pod_uid, config.name, config.attempt, config.limits)
        preexec_fn = limits_mod.preexec(self.limits, config.limits, cgroup)
        try:
            proc: _Child
            if preexec_fn is None and self._env_chdir is not None:
                proc = await self._posix_spawn(config, working_dir)
            else:
                proc = await asyncio.create_subprocess_exec(
                    *config.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE, env=dict(config.env), cwd=working_dir, start_new_session=True,
                    preexec_fn=preexec_fn)
        except FileNotFoundError as exc:
            if not working_dir.is_dir():
                raise StartError(f"chdir to cwd (\"{working_dir}\") set in config.json failed: "
                                 "no such file or directory") from exc
            raise StartError(f"exec: \"{config.argv[0]}\": executable file not found in $PATH") from exc
        except (PermissionError, NotADirectoryError, OSError) as exc:
            raise StartError(f"exec: \"{config.argv[0]}\": {exc.strerror or exc}") from exc
        pid_file = self.root / "run" / f"{cid}.pid"
        pid_file.write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
        state = ContainerState(id=cid, pod_uid=config.pod_uid, name=config.name, attempt=config.attempt,
                               pid=proc.pid, started_at=time.time(), log_path=log_path)
        inst = _Instance(state=state, config=config, proc=proc, cgroup=cgroup, working_dir=working_dir,
                         pid_file=pid_file)
        self._instances[cid] = inst
        self._spawn(self._supervise(inst), f"container-{config.name}-{cid[:8]}")
        logger.debug("started %s/%s container %s attempt %d (pid %d)", config.namespace, config.pod_name,
                     config.name, config.attempt, proc.pid)
        return state

    async def _posix_spawn(self, config: ContainerConfig, working_dir: Path) -> _SpawnedChild:
        """Start the main process without forking the kubelet (see the module docstring)."""
        assert self._env_chdir is not None
        env = dict(config.env)
        exe = config.argv[0]
        if "/" not in exe and shutil.which(exe, path=env.get("PATH", os.defpath)) is None:
            raise FileNotFoundError(errno.ENOENT, "executable file not found", exe)
        if "/" in exe and not os.access(exe, os.X_OK):
            raise PermissionError(errno.EACCES, "permission denied", exe) if os.path.exists(exe) else \
                FileNotFoundError(errno.ENOENT, "no such file or directory", exe)
        if not working_dir.is_dir():
            raise FileNotFoundError(errno.ENOENT, "no such working directory", str(working_dir))
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        devnull = os.open(os.devnull, os.O_RDONLY)
        argv = [self._env_chdir, "-C", str(working_dir), "--", *config.argv]
        actions = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)]
        # posix_spawn returns once the child has exec'd; on a loaded host that takes milliseconds of
        # scheduling, so it runs in a thread (it releases the GIL) and never stalls the event loop.
        spawned = asyncio.get_running_loop().run_in_executor(
            None, functools.partial(os.posix_spawn, argv[0], argv, env, setsid=True, file_actions=actions))
        try:
            pid = await asyncio.shield(spawned)
        except asyncio.CancelledError:
            spawned.add_done_callback(_kill_spawned)  # no child may outlive a cancelled start
            os.close(out_r)
            os.close(err_r)
            raise
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            if spawned.done():
                _close_all(out_w, err_w, devnull)
            else:
                spawned.add_done_callback(lambda _f: _close_all(out_w, err_w, devnull))
        return _SpawnedChild(pid, await _read_pipe(out_r), await _read_pipe(err_r))

    def _spawn(self, coro: object, name: str) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _supervise(self, inst: _Instance) -> None:
        """Copy output into the log, wait for the exit, then clean up the process group."""
        proc = inst.proc
        assert proc.stdout is not None and proc.stderr is not None
        log = open(inst.state.log_path, "ab", buffering=0)  # closed below, after both pumps
        pumps = [asyncio.ensure_future(self._pump(proc.stdout, "stdout", log)),
                 asyncio.ensure_future(self._pump(proc.stderr, "stderr", log))]
        try:
            returncode = await proc.wait()
            _killpg(proc.pid, signal.SIGKILL)  # the container ends with its main process
            _, pending = await asyncio.wait(pumps, timeout=PUMP_GRACE)
            for p in pending:
                p.cancel()
            code = _exit_code(returncode)
            oom = inst.cgroup is not None and limits_mod.CgroupTree.oom_killed(inst.cgroup)
            reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
            message = ""
            if code != 0 and self.limits.mode == "rlimit" and inst.config.limits.memory is not None:
                message = (f"exit code {code}; the memory limit ({inst.config.limits.memory} bytes) is enforced as "
                           "RLIMIT_AS here: allocations beyond it fail inside the process, which is not OOM-killed")
            inst.state = replace(inst.state, finished_at=time.time(), exit_code=code, reason=reason, message=message)
        finally:
            for p in pumps:
                p.cancel()
            for p in pumps:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await p
            log.close()
            with contextlib.suppress(OSError):
                inst.pid_file.unlink()
            for pgid in list(inst.execs):
                _killpg(pgid, signal.SIGKILL)
            if inst.cgroup is not None:
                limits_mod.CgroupTree.remove(inst.cgroup)
            if inst.state.exit_code is None:  # cancelled (runtime closing): it was killed
                inst.state = replace(inst.state, finished_at=time.time(), exit_code=137, reason="Error")
            inst.exited.set()

    @staticmethod
    async def _pump(stream: asyncio.StreamReader, name: str, log: object) -> None:
        buffer = bytearray()
        write: Callable[[bytes], object] = log.write  # type: ignore[attr-defined]
        try:
            while chunk := await stream.read(65536):
                buffer += chunk
                if records := cri_lines(name, buffer):
                    write(records)
        finally:
            if records := cri_lines(name, buffer, final=True):
                write(records)

    def state(self, cid: ContainerID) -> ContainerState | None:
        inst = self._instances.get(cid)
        return inst.state if inst is not None else None

    async def wait(self, cid: ContainerID) -> ContainerState:
        inst = self._instances.get(cid)
        if inst is None:
            raise NotFound(f"container {cid} not found")
        await inst.exited.wait()
        return inst.state

    async def stop(self, cid: ContainerID, grace: float) -> ContainerState:
        inst = self._instances.get(cid)
        if inst is None:
            raise NotFound(f"container {cid} not found")
        if not inst.exited.is_set():
            _killpg(inst.proc.pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
            try:
                await asyncio.wait_for(inst.exited.wait(), max(grace, 0.0))
            except TimeoutError:
                _killpg(inst.proc.pid, signal.SIGKILL)
                await inst.exited.wait()
        return inst.state

    async def exec(self, cid: ContainerID, command: list[str], *, tty: bool = False
                   ) -> asyncio.subprocess.Process:
        """A new process in the container's context: its env, working directory, limits and cgroup.

        With ``tty`` the process gets a pseudo-terminal as its controlling terminal on
        stdin, stdout and stderr; ``proc.stdin``/``proc.stdout`` are the master side
        (stderr is merged into stdout, as with ``kubectl exec -t``) and ``proc.stderr``
        is None.
        """
        inst = self._instances.get(cid)
        if inst is None:
            raise NotFound(f"container {cid} not found")
        if inst.exited.is_set():
            raise BadRequest(f"container {inst.config.name} is not running")
        if not command:
            raise BadRequest("you must specify at least one command for the container")
        limits_fn = limits_mod.preexec(self.limits, inst.config.limits, inst.cgroup)
        kwargs: dict[str, object] = {"env": dict(inst.config.env), "cwd": inst.working_dir,
                                     "start_new_session": True}
        master = slave = -1
        if tty:
            master, slave = pty.openpty()

            def setup() -> None:
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)
                if limits_fn is not None:
                    limits_fn()

            kwargs.update(stdin=slave, stdout=slave, stderr=slave, preexec_fn=setup)
        else:
            kwargs.update(stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                          stderr=asyncio.subprocess.PIPE, preexec_fn=limits_fn)
        try:
            proc = await asyncio.create_subprocess_exec(*command, **kwargs)  # type: ignore[arg-type]
        except OSError as exc:
            if tty:
                os.close(master)
                os.close(slave)
            raise BadRequest(f"exec: \"{command[0]}\": {exc.strerror or exc}") from exc
        inst.execs.add(proc.pid)
        exec_pid_file = self.root / "run" / f"{cid}-exec-{proc.pid}.pid"  # killed by a successor as well
        exec_pid_file.write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
        if tty:
            os.close(slave)
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader()
            await loop.connect_read_pipe(lambda: _PtyProtocol(reader), os.fdopen(master, "rb", 0))
            transport, protocol = await loop.connect_write_pipe(
                lambda: asyncio.streams.FlowControlMixin(), os.fdopen(os.dup(master), "wb", 0))
            proc.stdin = asyncio.StreamWriter(transport, protocol, None, loop)
            proc.stdout = reader
            proc.stderr = None

        async def forget() -> None:
            with contextlib.suppress(Exception):
                await proc.wait()
            inst.execs.discard(proc.pid)
            exec_pid_file.unlink(missing_ok=True)

        self._spawn(forget(), f"exec-{proc.pid}")
        return proc

    # -- pods and the runtime as a whole ---------------------------------------------------------
    async def remove_pod(self, pod_uid: str) -> None:
        gone = [cid for cid, inst in self._instances.items() if inst.state.pod_uid == pod_uid]
        dirs: set[Path] = set()
        for cid in gone:
            inst = self._instances[cid]
            if not inst.exited.is_set():
                await self.stop(cid, 0)
            dirs.add(inst.state.log_path.parent.parent)
            del self._instances[cid]
        dirs.update(self.root.joinpath("pods").glob(f"*_{pod_uid}"))  # also what an earlier run left
        for d in dirs:
            await asyncio.to_thread(shutil.rmtree, d, True)
        if self._cgroups is not None:
            self._cgroups.remove_pod(pod_uid)

    async def cleanup_stale(self) -> int:
        killed = 0
        ours = {inst.pid_file for inst in self._instances.values()}
        ours |= {self.root / "run" / f"{cid}-exec-{pid}.pid" for cid, inst in self._instances.items()
                 for pid in inst.execs}
        for pid_file in (self.root / "run").glob("*.pid"):
            if pid_file in ours:
                continue
            try:
                pid_text, _, started = pid_file.read_text().strip().partition(" ")
                pid = int(pid_text)
            except (OSError, ValueError):
                pid_file.unlink(missing_ok=True)
                continue
            if started and _start_time(pid) == started:
                logger.warning("killing process group %d left by an earlier run (%s)", pid, pid_file.name)
                _killpg(pid, signal.SIGKILL)
                killed += 1
            pid_file.unlink(missing_ok=True)
        return killed

    async def close(self) -> None:
        running = [cid for cid, inst in self._instances.items() if not inst.exited.is_set()]
        await asyncio.gather(*(self.stop(cid, 1.0) for cid in running), return_exceptions=True)
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
