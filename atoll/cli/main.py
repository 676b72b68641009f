"""The ``atoll`` command."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from atoll.api.errors import APIError

app = typer.Typer(
    name="atoll",
    help="Atoll: run many Kubernetes clusters, across clouds, as one.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

logger = logging.getLogger(__name__)


@app.callback()
def root() -> None:
    """Atoll: run many Kubernetes clusters, across clouds, as one."""


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def fail(message: str, code: int = 1) -> typer.Exit:
    """One clear line for a user mistake, no traceback."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise fail(f"--listen must be HOST:PORT, got {listen!r}", 2)
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def run_async(main: object) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    asyncio.run(main)  # type: ignore[arg-type]


@app.command()
def apiserver(
    listen: Annotated[str, typer.Option(help="Address to serve on, HOST:PORT (port 0 picks a free one).")]
    = "127.0.0.1:6443",
    storage: Annotated[str, typer.Option(help="sqlite:///PATH (default: STATE_DIR/store.db) or etcd://HOST:PORT")]
    = "",
    state_dir: Annotated[Path, typer.Option(help="Where certificates, tokens, kubeconfig and SQLite data live.")]
    = Path(".atoll/apiserver"),
    name: Annotated[str, typer.Option(help="Cluster name used in the kubeconfig.")] = "atoll",
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help="More logs (-v, -vv).")] = 0,
) -> None:
    """Run a Kubernetes-compatible API server.

    Prints one line when ready and writes STATE_DIR/kubeconfig.

    Example:

        atoll apiserver --listen 127.0.0.1:6443 --state-dir /tmp/a

        kubectl --kubeconfig /tmp/a/kubeconfig get namespaces
    """
    _setup_logging(verbose)
    host, port = parse_listen(listen)
    from atoll.apiserver.server import APIServer, ServerConfig

    config = ServerConfig(state_dir=state_dir, host=host, port=port, storage=storage, name=name)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        server = APIServer(config)
        try:
            await server.start()
        except OSError as exc:
            await server.stop()
            raise fail(f"cannot serve on {listen}: {exc.strerror or exc}") from None
        except (ValueError, APIError) as exc:
            await server.stop()
            raise fail(str(exc)) from None
        print(f"atoll apiserver ready at {server.url} (kubeconfig: {server.kubeconfig_path})", flush=True)
        try:
            await stop.wait()
        finally:
            await server.stop()

    run_async(main())


cluster_app = typer.Typer(help="Run a member cluster.", no_args_is_help=True)
app.add_typer(cluster_app, name="cluster")


@cluster_app.command("run")
def cluster_run(
    name: Annotated[str, typer.Option(help="Cluster name (a DNS label); picks the cluster from --topology.")]
    = "atoll",
    state_dir: Annotated[Path | None, typer.Option(help="State directory (default .atoll/NAME).")] = None,
    nodes: Annotated[int, typer.Option(min=1, max=10000, help="Number of nodes (without --topology).")] = 3,
    runtime: Annotated[str | None, typer.Option(
        help="process (real child processes) or simulated (KWOK-style); default: the topology's, else process.")]
    = None,
    topology: Annotated[Path | None, typer.Option(help="Topology file; the cluster named --name is run.")]
    = None,
    listen: Annotated[str, typer.Option(help="API server address, HOST:PORT (port 0 picks a free one).")]
    = "127.0.0.1:0",
    storage: Annotated[str, typer.Option(help="sqlite:///PATH (default: STATE_DIR/store.db) or etcd://HOST:PORT")]
    = "",
    images: Annotated[Path | None, typer.Option(help="YAML file of user-defined images (process runtime).")]
    = None,
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help="More logs (-v, -vv).")] = 0,
) -> None:
    """Run one whole cluster in one process: API server, scheduler, controllers, kubelets, service proxy.

    Prints one line when every node is Ready and writes STATE_DIR/kubeconfig.

    Examples:

        atoll cluster run --name dev --nodes 3

        atoll cluster run --name aws-eu-west-1 --topology topology.yaml --runtime simulated

        kubectl --kubeconfig .atoll/dev/kubeconfig get nodes
    """
    _setup_logging(verbose)
    host, port = parse_listen(listen)
    from atoll import topology as topo_mod

    if runtime is not None and runtime not in topo_mod.RUNTIMES:
        raise fail(f"--runtime must be one of {', '.join(topo_mod.RUNTIMES)}, got {runtime!r}", 2)
    try:
        if topology is not None:
            cluster = topo_mod.load(topology).cluster(name)
            if runtime is not None:
                cluster = dataclasses.replace(cluster, runtime=runtime)
        else:
            cluster = topo_mod.single(name, nodes=nodes, runtime=runtime or "process")
    except topo_mod.TopologyError as exc:
        raise fail(str(exc), 2) from None
    from atoll.cluster.member import MemberCluster, MemberConfig

    if images is not None and not images.is_file():
        raise fail(f"--images: no such file: {images}", 2)
    config = MemberConfig(topology=cluster, state_dir=state_dir or Path(".atoll") / name, host=host, port=port,
                          storage=storage, images=images)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        member = MemberCluster(config)
        try:
            await member.start()
            await member.wait_ready()
        except OSError as exc:
            await member.stop()
            raise fail(f"cannot serve on {listen}: {exc.strerror or exc}") from None
        except (ValueError, APIError, TimeoutError, RuntimeError) as exc:
            await member.stop()
            raise fail(f"cluster {name} did not start: {exc or type(exc).__name__}") from None
        print(f"atoll cluster {name} ready at {member.url} with {len(cluster.nodes)} {cluster.runtime} nodes "
              f"(kubeconfig: {member.kubeconfig_path})", flush=True)
        try:
            await stop.wait()
        finally:
            await member.stop()

    run_async(main())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
