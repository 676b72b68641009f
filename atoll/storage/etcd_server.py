"""Start a real etcd (Debian's ``etcd-server``) on free loopback ports.

Tests, benchmarks and ``--storage etcd`` set-ups on one machine use it; in production
point ``--storage etcd://...`` at an existing etcd cluster instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EtcdServer:
    """``async with EtcdServer(dir) as endpoint:`` yields ``etcd://127.0.0.1:PORT``."""

    def __init__(self, data_dir: Path, *, host: str = "127.0.0.1", binary: str | None = None,
                 ready_timeout: float = 30.0) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.binary = binary or shutil.which("etcd") or "/usr/bin/etcd"
        self.ready_timeout = ready_timeout
        self.client_port = 0
        self.process: asyncio.subprocess.Process | None = None

    @property
    def endpoint(self) -> str:
        return f"etcd://{self.host}:{self.client_port}"

    async def start(self) -> str:
        if not Path(self.binary).exists():
            raise FileNotFoundError("etcd binary not found (install Debian's etcd-server)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.client_port, peer_port = free_port(self.host), free_port(self.host)
        client_url = f"http://{self.host}:{self.client_port}"
        peer_url = f"http://{self.host}:{peer_port}"
        env = {**os.environ, "ETCD_UNSUPPORTED_ARCH": os.environ.get("ETCD_UNSUPPORTED_ARCH", "")}
        if os.uname().machine not in ("x86_64", "amd64"):
            env["ETCD_UNSUPPORTED_ARCH"] = os.uname().machine.replace("aarch64", "arm64")
        log = open(self.data_dir / "etcd.log", "ab")
        self.process = await asyncio.create_subprocess_exec(
            self.binary, "--name", "atoll", "--data-dir", str(self.data_dir / "data"),
            "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"atoll={peer_url}", "--initial-cluster-state", "new",
            "--auto-compaction-retention", "0", "--quota-backend-bytes", str(4 * 1024**3),
            stdout=log, stderr=log, env=env, start_new_session=True)
        log.close()
        await self._wait_ready()
        logger.info("etcd started at %s (pid %d)", self.endpoint, self.process.pid)
        return self.endpoint

    async def _wait_ready(self) -> None:
        from atoll.storage.etcd import EtcdStore

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout
        last: Exception | None = None
        while loop.time() < deadline:
            if self.process is not None and self.process.returncode is not None:
                raise RuntimeError(f"etcd exited with {self.process.returncode}; see {self.data_dir / 'etcd.log'}")
            store = EtcdStore(self.endpoint, timeout=2)
            try:
                await store.current_revision()
                return
            except Exception as exc:
                last = exc
            finally:
                await store.close()
            await asyncio.sleep(0.2)
        await self.stop()
        raise RuntimeError(f"etcd did not become ready: {last}")

    async def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()
