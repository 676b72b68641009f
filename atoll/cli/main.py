"""The ``atoll`` command."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from atoll.api.errors import APIError

if TYPE_CHECKING:
    from atoll.client import Client

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
    pod_cidr: Annotated[str, typer.Option(help="Loopback range for pod IPs (without --topology).")]
    = "127.16.0.0/16",
    service_cidr: Annotated[str, typer.Option(help="Loopback range for Service ClusterIPs (without --topology).")]
    = "127.80.0.0/16",
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help="More logs (-v, -vv).")] = 0,
) -> None:
    """Run one whole cluster in one process: API server, scheduler, controllers, kubelets, service proxy.

    Prints one line when every node is Ready and writes STATE_DIR/kubeconfig.

    Examples:

        atoll cluster run --name dev --nodes 3

        atoll cluster run --name second --pod-cidr 127.17.0.0/16 --service-cidr 127.81.0.0/16

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
            cluster = topo_mod.single(name, nodes=nodes, runtime=runtime or "process", pod_cidr=pod_cidr,
                                      service_cidr=service_cidr)
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


federation_app = typer.Typer(help="Run the federation control plane (Karmada-compatible).", no_args_is_help=True)
app.add_typer(federation_app, name="federation")


@federation_app.command("run")
def federation_run(
    state_dir: Annotated[Path, typer.Option(help="State directory.")] = Path(".atoll/federation"),
    listen: Annotated[str, typer.Option(help="API server address, HOST:PORT (port 0 picks a free one).")]
    = "127.0.0.1:0",
    storage: Annotated[str, typer.Option(help="sqlite:///PATH (default: STATE_DIR/store.db) or etcd://HOST:PORT")]
    = "",
    cluster_status_interval: Annotated[float, typer.Option(help="Seconds between member probes.")] = 2.0,
    cluster_failure_threshold: Annotated[float, typer.Option(
        help="Seconds of failed probes before a member is NotReady.")] = 6.0,
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help="More logs (-v, -vv).")] = 0,
) -> None:
    """Run the federation: an API server speaking Karmada's API plus the federation controllers.

    Prints one line when ready and writes STATE_DIR/kubeconfig.

    Examples:

        atoll federation run --state-dir .atoll/federation

        atoll join member1 --kubeconfig .atoll/member1/kubeconfig --federation-kubeconfig .atoll/federation/kubeconfig

        kubectl --kubeconfig .atoll/federation/kubeconfig get clusters
    """
    _setup_logging(verbose)
    host, port = parse_listen(listen)
    from atoll.federation.plane import Federation, FederationConfig

    config = FederationConfig(state_dir=state_dir, host=host, port=port, storage=storage,
                              cluster_status_interval=cluster_status_interval,
                              cluster_failure_threshold=cluster_failure_threshold)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        federation = Federation(config)
        try:
            await federation.start()
        except OSError as exc:
            await federation.stop()
            raise fail(f"cannot serve on {listen}: {exc.strerror or exc}") from None
        except (ValueError, APIError, TimeoutError) as exc:
            await federation.stop()
            raise fail(f"the federation did not start: {exc or type(exc).__name__}") from None
        print(f"atoll federation ready at {federation.url} (kubeconfig: {federation.kubeconfig_path})", flush=True)
        try:
            await stop.wait()
        finally:
            await federation.stop()

    run_async(main())


def _federation_client(kubeconfig: Path | None, context: str | None) -> Client:
    from atoll.client import Client
    from atoll.client import kubeconfig as kc

    path = kubeconfig or Path(".atoll/kubeconfig")
    if kubeconfig is None and not path.exists():
        path = Path(".atoll/federation/kubeconfig")
    try:
        return Client.from_kubeconfig(path, context=context)
    except (kc.KubeconfigError, OSError) as exc:
        raise fail(f"cannot use the federation kubeconfig {path}: {exc}", 2) from None


FederationKubeconfig = Annotated[Path | None, typer.Option(
    "--federation-kubeconfig", help="Kubeconfig of the federation (default .atoll/kubeconfig, context atoll).")]
FederationContext = Annotated[str | None, typer.Option("--federation-context", help="Context in that kubeconfig.")]


@app.command()
def join(
    name: Annotated[str, typer.Argument(help="Name of the member cluster in the federation.")],
    kubeconfig: Annotated[Path, typer.Option(help="Kubeconfig of the member cluster.")],
    context: Annotated[str | None, typer.Option(help="Context of the member in its kubeconfig.")] = None,
    provider: Annotated[str, typer.Option(help="Cloud provider of the member (aws, gcp, onprem...).")] = "",
    region: Annotated[str, typer.Option(help="Region of the member.")] = "",
    zone: Annotated[str, typer.Option(help="Zone of the member.")] = "",
    federation_kubeconfig: FederationKubeconfig = None,
    federation_context: FederationContext = None,
) -> None:
    """Register a member cluster (push mode): its credentials go into a Secret, a Cluster object names it.

    Example:

        atoll join member1 --kubeconfig member1.kubeconfig --provider aws --region eu-west-1 --zone eu-west-1a
    """
    from atoll.federation.clusters.registry import JoinError
    from atoll.federation.clusters.registry import join as do_join

    if not kubeconfig.is_file():
        raise fail(f"--kubeconfig: no such file: {kubeconfig}", 2)
    client = _federation_client(federation_kubeconfig, federation_context or "atoll")

    async def main() -> None:
        async with client:
            await do_join(client, name, kubeconfig, context=context, provider=provider, region=region, zone=zone)

    try:
        run_async(main())
    except JoinError as exc:
        raise fail(str(exc)) from None
    except APIError as exc:
        raise fail(f"the federation refused: {exc}") from None
    typer.echo(f"cluster {name} joined")


@app.command()
def unjoin(
    name: Annotated[str, typer.Argument(help="Name of the member cluster.")],
    federation_kubeconfig: FederationKubeconfig = None,
    federation_context: FederationContext = None,
) -> None:
    """Remove a member cluster; what was propagated to it is removed from it unless preserved.

    Example:

        atoll unjoin member1
    """
    from atoll.federation.clusters.registry import unjoin as do_unjoin

    client = _federation_client(federation_kubeconfig, federation_context or "atoll")

    async def main() -> None:
        async with client:
            await do_unjoin(client, name)

    try:
        run_async(main())
    except APIError as exc:
        raise fail(f"cannot unjoin {name}: {exc}") from None
    typer.echo(f"cluster {name} unjoined")


# Commands of the multi-cloud (atoll up and around it) live in their own modules.
from atoll.cli import demo as _demo  # noqa: E402
from atoll.cli import inspect as _inspect  # noqa: E402
from atoll.cli import rebalance as _rebalance  # noqa: E402
from atoll.cli import up as _up  # noqa: E402

_up.register(app)
_inspect.register(app)
_demo.register(app)
_rebalance.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
