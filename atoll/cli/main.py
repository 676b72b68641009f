"""The ``atoll`` command."""

from __future__ import annotations

import asyncio
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
