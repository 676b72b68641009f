"""``atoll up``, ``down``, ``kill`` and ``revive``: the multi-cloud on one machine, as a user drives it.

The supervisor itself is :mod:`atoll.cli.supervisor`; this module is its face: options,
the live progress display (rich when stdout is a terminal, one plain line per step
otherwise, so CI logs read well), the summary a user needs next, and the commands that
talk to a running supervisor over its control socket. Module-level imports stay light:
every ``atoll`` invocation imports this module to register the commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from atoll.cli import supervisor as sv

if TYPE_CHECKING:
    from rich.console import Console

logger = logging.getLogger(__name__)

StateDir = Annotated[Path, typer.Option(
    "--state-dir", envvar="ATOLL_STATE_DIR",
    help="The multi-cloud's state directory (kubeconfig, logs, every API server's data).")]


def fail(message: str, code: int = sv.EXIT_FAILED) -> typer.Exit:
    """One clear line for a mistake or a failure, no traceback."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    probe = Console(stderr=stderr)
    # Not a terminal (CI, a pipe): no colours, and tables wide enough that URLs are never cut.
    return probe if probe.is_terminal else Console(stderr=stderr, width=200, no_color=True, highlight=False)


# -- progress ----------------------------------------------------------------------------------------

STAGES = ("starting", "API ready", "nodes Ready", "joined", "ready")


class Progress:
    """One line per process: starting -> API ready -> nodes Ready -> joined (the federation: -> ready)."""

    def __init__(self, names: list[str], where: dict[str, str], out: Console) -> None:
        self.names = names
        self.where = where
        self.out = out
        self.rows: dict[str, sv.Stage] = {n: sv.Stage(n, "waiting") for n in names}
        self.since: dict[str, float] = {}
        self.t0 = time.monotonic()
        self.live: Any = None

    def __enter__(self) -> Progress:
        if self.out.is_terminal:
            from rich.live import Live

            self.live = Live(self._table(), console=self.out, auto_refresh=False, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self._table(), refresh=True)
            self.live.__exit__(None, None, None)
            self.live = None

    def __call__(self, stage: sv.Stage) -> None:
        self.rows[stage.name] = stage
        self.since[stage.name] = time.monotonic() - self.t0
        if self.live is not None:
            self.live.update(self._table(), refresh=True)
        else:
            detail = f" ({stage.detail})" if stage.detail else ""
            self.out.print(f"[{time.monotonic() - self.t0:5.1f}s] {stage.name}: {stage.stage}{detail}",
                           markup=False, highlight=False, soft_wrap=True)

    def tick(self) -> None:
        if self.live is not None:
            self.live.update(self._table(), refresh=True)

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(title=f"atoll up  {time.monotonic() - self.t0:4.1f}s", title_justify="left",
                      box=None, pad_edge=False)
        for col in ("", "CLUSTER", "WHERE", "STAGE", "AT"):
            table.add_column(col, no_wrap=True)
        table.add_column("DETAIL", no_wrap=True, min_width=23)  # an API URL is never cut
        for name in self.names:
            row = self.rows[name]
            done = row.stage in ("joined", "ready")
            mark = "[green]✓[/]" if done else "[red]✗[/]" if row.failed else "[yellow]…[/]"
            at = f"{self.since[name]:.1f}s" if name in self.since else ""
            table.add_row(mark, name, self.where.get(name, ""), row.stage, at, row.detail)
        return table


# -- the summary -------------------------------------------------------------------------------------

def summary_rows(sup: sv.Supervisor) -> list[dict[str, str]]:
    """What runs, one row per API server (the federation first): the summary table and ``-o`` data."""
    fed = sup.state.federation
    rows = [{"cluster": sv.FEDERATION_CONTEXT, "provider": "federation", "region": "", "nodes": "", "cost": "",
             "api": fed.url}]
    for cluster in sup.topology.clusters:
        rec = sup.state.members[cluster.name]
        rows.append({"cluster": cluster.name, "provider": cluster.provider, "region": cluster.region,
                     "nodes": str(len(cluster.nodes)),
                     "cost": f"${cluster.cost_per_hour:.2f}", "api": rec.url})
    return rows


def print_summary(sup: sv.Supervisor, out: Console) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("CONTEXT", "PROVIDER", "REGION", "NODES", "COST/H"):
        table.add_column(col, no_wrap=True)
    table.add_column("API", no_wrap=True, min_width=23)  # what users copy: never cut
    for row in summary_rows(sup):
        table.add_row(row["cluster"], row["provider"], row["region"], row["nodes"], row["cost"], row["api"])
    out.print(table)
    kc = sup.kubeconfig_path
    first = sup.topology.clusters[0].name
    state = _shown(sup.state_dir)
    flag = "" if state == ".atoll" else f" --state-dir {state}"
    out.print("\nNext steps:", markup=False, highlight=False, soft_wrap=True)
    steps = [(f"export KUBECONFIG={kc}", ""),
             ("kubectl get clusters", "the members, as the federation sees them"),
             (f"kubectl --context {first} get nodes", "one member"),
             (f"atoll demo{flag}", "a Deployment spread over every cloud"),
             (f"atoll status{flag}", "health, capacity and cost per cluster"),
             (f"atoll kill {first}{flag}", f"a cloud outage (atoll revive {first} ends it)")]
    width = max(len(cmd) for cmd, _ in steps[1:]) + 2
    for cmd, why in steps:
        out.print(f"  {cmd.ljust(width)}{'# ' + why if why else ''}".rstrip(), markup=False, highlight=False, soft_wrap=True)
    out.print(f"Logs in {sup.state_dir / 'logs'}. Stop with Ctrl-C or `atoll down{flag}`.", markup=False,
              highlight=False, soft_wrap=True)


def _shown(path: Path) -> str:
    """A state directory as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


# -- atoll up ----------------------------------------------------------------------------------------

def topology_text(topology: Path | None, state_dir: Path) -> tuple[str, str]:
    """(text, where it came from): ``--topology``, else the one this state directory runs, else the default."""
    from atoll import topology as topo_mod

    if topology is not None:
        try:
            text = topology.read_text()
        except OSError as exc:
            raise sv.SupervisorError(f"cannot read topology {topology}: {exc.strerror or exc}", sv.EXIT_USAGE) \
                from None
        source = str(topology)
    elif (state_dir / sv.TOPOLOGY_FILE).is_file():
        text, source = (state_dir / sv.TOPOLOGY_FILE).read_text(), str(state_dir / sv.TOPOLOGY_FILE)
    else:
        text, source = topo_mod.default_text(), "the default topology"
    try:
        topo_mod.parse(text, source=source)
    except topo_mod.TopologyError as exc:
        raise sv.SupervisorError(str(exc), sv.EXIT_USAGE) from None
    return text, source


def up(
    topology: Annotated[Path | None, typer.Option(
        help="Topology file (YAML: clusters, providers, regions, nodes; see atoll/topology.py). Default: the one "
             "the state directory already runs, else the shipped three-cloud topology.")] = None,
    state_dir: StateDir = Path(".atoll"),
    storage: Annotated[str, typer.Option(
        help="sqlite (each API server's own file) or etcd://HOST:PORT\\[,HOST:PORT]\\[/PREFIX] (one etcd, "
             "one key prefix per API server).")] = "",
    runtime: Annotated[str | None, typer.Option(
        help="process (pods are real processes) or simulated (KWOK-style) for every cluster; default: the "
             "topology's.")] = None,
    federation_port: Annotated[int, typer.Option(
        min=0, max=65535, help="Port of the federation API server (0: the recorded one, else a free one).")] = 0,
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help="More logs (-v, -vv).")] = 0,
) -> None:
    """Start the federation and every member cluster of a topology, join them, and watch them.

    Runs in the foreground: a progress line per cluster, then what runs and how to use it.

    Writes STATE_DIR/kubeconfig: context `atoll` is the federation, one context per member.

    Ctrl-C (or `atoll down` from another terminal) stops everything; nothing is left running.

    A state directory that already holds a multi-cloud is resumed with all its objects.

    Examples:

        atoll up

        atoll up --topology my-clouds.yaml --state-dir /tmp/clouds

        atoll up --runtime simulated --storage etcd://127.0.0.1:2379

        kubectl --kubeconfig .atoll/kubeconfig --context aws-eu-west-1 get pods -A

    Exit codes: 0 stopped cleanly; 1 a process did not start; 2 bad option or topology; 4 already running.
    """
    logging.basicConfig(level=logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from atoll import topology as topo_mod

    if runtime is not None and runtime not in topo_mod.RUNTIMES:
        raise fail(f"--runtime must be one of {', '.join(topo_mod.RUNTIMES)}, got {runtime!r}", sv.EXIT_USAGE)
    try:
        text, _ = topology_text(topology, state_dir)
        sv.member_storage(storage, "x")
        sup = sv.Supervisor(state_dir, topology_text=text, storage=storage, runtime=runtime or "",
                            federation_port=federation_port)
    except sv.SupervisorError as exc:
        raise fail(str(exc), exc.code) from None
    code = asyncio.run(_run_up(sup))
    raise typer.Exit(code)


async def _run_up(sup: sv.Supervisor) -> int:
    out = console()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal went away
        loop.add_signal_handler(sig, sup.stop_event.set)
    sv.make_subreaper()
    try:
        sup.acquire()
    except sv.SupervisorError as exc:
        typer.echo(f"error: {exc}", err=True)
        return exc.code
    names = [sv.FEDERATION, *(c.name for c in sup.topology.clusters)]
    where = {sv.FEDERATION: "context atoll"}
    where.update({c.name: f"{c.provider} {c.region}" for c in sup.topology.clusters})
    code = sv.EXIT_OK
    try:
        await sup.serve_control()
        with Progress(names, where, out) as progress:
            sup.report = progress
            started = asyncio.create_task(sup.start(), name="start")
            stopped = asyncio.create_task(sup.stop_event.wait(), name="stop-requested")
            while not started.done() and not stopped.done():
                await asyncio.wait({started, stopped}, timeout=0.25)
                progress.tick()
            if not started.done():
                started.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception, BaseExceptionGroup):
                    await started
                out.print("atoll up: interrupted while starting; stopping", markup=False, highlight=False, soft_wrap=True)
                return sv.EXIT_OK
            stopped.cancel()
            error = _first_error(started)
            if error is not None:
                failed = next((n for n in names if n in str(error)), "")
                if failed:
                    progress(sv.Stage(failed, "failed", failed=True))
        if error is not None:
            typer.echo(f"error: {error}", err=True)
            code = error.code
            return code
        sup.report = lambda s: None  # from now on, supervisor events say what happens
        elapsed = sup.elapsed()
        nodes = sum(len(c.nodes) for c in sup.topology.clusters)
        print_summary(sup, out)
        out.print(f"atoll up: ready in {elapsed:.1f}s: {len(sup.topology.clusters)} clusters ({nodes} nodes) joined "
                  f"to the federation at {sup.state.federation.url} (kubeconfig: {sup.kubeconfig_path})",
                  markup=False, highlight=False, soft_wrap=True)
        await _watch(sup, out)
        return code
    finally:
        with contextlib.suppress(Exception):
            sup.report = lambda s: None
        out.print("atoll up: stopping (federation first, then the members)", markup=False, highlight=False, soft_wrap=True)
        await sup.stop()
        sup.release()
        out.print(f"atoll up: stopped; nothing left running (state kept in {sup.state_dir}; "
                  "`atoll up` resumes it)", markup=False, highlight=False, soft_wrap=True)


def _first_error(task: asyncio.Task[None]) -> sv.SupervisorError | None:
    exc = task.exception()
    if exc is None:
        return None
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    if isinstance(exc, sv.SupervisorError):
        return exc
    logger.error("atoll up failed", exc_info=exc)
    return sv.SupervisorError(f"{type(exc).__name__}: {exc}")


async def _watch(sup: sv.Supervisor, out: Console) -> None:
    async def announce() -> None:
        while True:
            line = await sup.events.get()
            out.print(f"{time.strftime('%H:%M:%S')} {line}", markup=False, highlight=False, soft_wrap=True)

    printer = asyncio.create_task(announce(), name="announce")
    try:
        await sup.watch()
    finally:
        printer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await printer
        while not sup.events.empty():
            out.print(f"{time.strftime('%H:%M:%S')} {sup.events.get_nowait()}", markup=False, highlight=False, soft_wrap=True)


# -- atoll down / kill / revive ----------------------------------------------------------------------

def _wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def down(state_dir: StateDir = Path(".atoll")) -> None:
    """Stop the multi-cloud running from the state directory: every member, the federation, every pod.

    Signals the running `atoll up`; if that supervisor is gone, stops what it recorded and every pod left.

    The data stays: `atoll up` resumes it.

    Examples:

        atoll down

        atoll down --state-dir /tmp/clouds

    Exit codes: 0 stopped; 1 it did not stop in time; 3 nothing was running.
    """
    try:
        pid = sv.running_supervisor(state_dir) if state_dir.is_dir() else 0
        if pid:
            state = sv.load_state(state_dir)
            try:
                sv.request(state.socket if state and state.socket else sv.socket_address(state_dir), "down",
                           timeout=10)
            except sv.SupervisorError:
                if pid > 0:
                    os.kill(pid, signal.SIGTERM)
            if not _wait_until(lambda: sv.running_supervisor(state_dir) == 0, sv.STOP_GRACE * 2 + 30):
                raise fail(f"the supervisor (pid {pid}) did not stop within {sv.STOP_GRACE * 2 + 30:g}s")
            typer.echo(f"stopped the multi-cloud in {state_dir}")
            return
        if not state_dir.is_dir():
            raise fail(f"nothing is running from {state_dir} (no such directory)", sv.EXIT_NOT_RUNNING)
        stopped = sv.clean_leftovers(state_dir.resolve(), sv.load_state(state_dir))
    except sv.SupervisorError as exc:
        raise fail(str(exc), exc.code) from None
    for name in (sv.PID_FILE,):
        with contextlib.suppress(OSError):
            (state_dir / name).unlink()
    if not stopped:
        raise fail(f"nothing is running from {state_dir}", sv.EXIT_NOT_RUNNING)
    typer.echo(f"the supervisor was gone; stopped what it left: {', '.join(stopped)}")


def _control(state_dir: Path, op: str, cluster: str) -> None:
    try:
        if not state_dir.is_dir() or sv.running_supervisor(state_dir) == 0:
            raise sv.SupervisorError(f"no multi-cloud is running from {state_dir} (start it with `atoll up`)",
                                     sv.EXIT_NOT_RUNNING)
        state = sv.load_state(state_dir)
        if state is not None and cluster not in state.members and cluster != sv.FEDERATION:
            known = ", ".join([*state.members, sv.FEDERATION])
            raise sv.SupervisorError(f"no cluster named {cluster!r} (have: {known})", sv.EXIT_USAGE)
        answer = sv.request(state.socket if state and state.socket else sv.socket_address(state_dir), op,
                            cluster=cluster)
    except sv.SupervisorError as exc:
        raise fail(str(exc), exc.code) from None
    if not answer.get("ok"):
        raise fail(str(answer.get("message")), int(answer.get("code") or sv.EXIT_FAILED))
    typer.echo(str(answer.get("message")))


ClusterArg = Annotated[str, typer.Argument(help="A member cluster of the topology (or `federation`).")]


def kill(cluster: ClusterArg, state_dir: StateDir = Path(".atoll")) -> None:
    """Simulate a cloud outage: SIGKILL the member's process and every pod it runs.

    It stays down (the federation marks it NotReady, failover moves its replicas) until `atoll revive`.

    Examples:

        atoll kill aws-eu-west-1

        kubectl --context atoll get clusters -w

    Exit codes: 0 killed; 2 no such cluster; 3 nothing is running.
    """
    _control(state_dir, "kill", cluster)


def revive(cluster: ClusterArg, state_dir: StateDir = Path(".atoll")) -> None:
    """End an outage: restart the member on its port with its data, and re-join it.

    Examples:

        atoll revive aws-eu-west-1

    Exit codes: 0 running again; 1 it did not start; 2 no such cluster; 3 nothing is running.
    """
    _control(state_dir, "revive", cluster)


def register(app: typer.Typer) -> None:
    """Add ``up``, ``down``, ``kill`` and ``revive`` to the ``atoll`` command."""
    for command in (up, down, kill, revive):
        app.command()(command)
