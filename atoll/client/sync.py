"""A blocking facade over :class:`Client` for the CLI and scripts.

The async client runs on its own event loop in a daemon thread; each call is handed
over with ``run_coroutine_threadsafe`` and waited for. One loop for the facade's life
keeps the connection pool (and TLS sessions) warm across calls, which ``asyncio.run``
per call would throw away. Ctrl-C while waiting cancels the request on the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from atoll.client.client import Client, Obj, ObjList, Resource, WatchEvent
from atoll.client.kubeconfig import ClusterConfig, KubeconfigPaths

T = TypeVar("T")


class SyncClient:
    """The :class:`Client` verbs, blocking. Keyword options are the async client's."""

    def __init__(self, config: ClusterConfig | None = None, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="atoll-sync-client", daemon=True)
        self._thread.start()
        self._closed = False
        self.client = Client(config, **kwargs)

    @classmethod
    def from_kubeconfig(cls, path: KubeconfigPaths = None, *, context: str | None = None,
                        **kwargs: Any) -> SyncClient:
        from atoll.client import kubeconfig

        return cls(kubeconfig.load(path, context=context), **kwargs)

    @property
    def config(self) -> ClusterConfig:
        return self.client.config

    @property
    def namespace(self) -> str:
        return self.client.namespace

    def call(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run ``coro`` on the client's loop and wait for its result."""
        if self._closed:
            coro.close()
            raise RuntimeError("the client is closed")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("SyncClient called from its own event loop thread; use the async Client")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError("the request did not finish in time") from None
        except BaseException:
            future.cancel()  # KeyboardInterrupt: do not leave the request running
            raise

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.call(self.client.close())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- verbs -----------------------------------------------------------------------------
    def request(self, method: str, path: str, **options: Any) -> Any:
        return self.call(self.client.request(method, path, **options))

    def version(self) -> Obj:
        return self.call(self.client.version())

    def api_resources(self, api_version: str) -> ObjList:
        return self.call(self.client.api_resources(api_version))

    def resource_for(self, api_version: str, kind: str) -> Resource:
        return self.call(self.client.resource_for(api_version, kind))

    def get(self, res: Resource, name: str, namespace: str | None = None, **options: Any) -> Obj:
        return self.call(self.client.get(res, name, namespace, **options))

    def get_status(self, res: Resource, name: str, namespace: str | None = None) -> Obj:
        return self.call(self.client.get_status(res, name, namespace))

    def list(self, res: Resource, namespace: str | None = None, **options: Any) -> Obj:
        return self.call(self.client.list(res, namespace, **options))

    def list_all(self, res: Resource, namespace: str | None = None, **options: Any) -> tuple[ObjList, str]:
        return self.call(self.client.list_all(res, namespace, **options))

    def create(self, res: Resource, obj: Obj, namespace: str | None = None, **options: Any) -> Obj:
        return self.call(self.client.create(res, obj, namespace, **options))

    def replace(self, res: Resource, obj: Obj, namespace: str | None = None, **options: Any) -> Obj:
        return self.call(self.client.replace(res, obj, namespace, **options))

    def replace_status(self, res: Resource, obj: Obj, namespace: str | None = None) -> Obj:
        return self.call(self.client.replace_status(res, obj, namespace))

    def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None, **options: Any) -> Obj:
        return self.call(self.client.patch(res, name, patch, namespace, **options))

    def patch_status(self, res: Resource, name: str, patch: Any, namespace: str | None = None,
                     **options: Any) -> Obj:
        return self.call(self.client.patch_status(res, name, patch, namespace, **options))

    def apply(self, res: Resource, obj: Obj, **options: Any) -> Obj:
        return self.call(self.client.apply(res, obj, **options))

    def delete(self, res: Resource, name: str, namespace: str | None = None, **options: Any) -> Obj | None:
        return self.call(self.client.delete(res, name, namespace, **options))

    def delete_collection(self, res: Resource, namespace: str | None = None, **options: Any) -> Obj | None:
        return self.call(self.client.delete_collection(res, namespace, **options))

    def watch(self, res: Resource, namespace: str | None = None, **options: Any) -> Iterator[WatchEvent]:
        """Events of one watch request, blocking between them; closing the iterator ends the watch."""
        events = self.client.watch(res, namespace, **options)

        async def step() -> WatchEvent:
            return await events.__anext__()

        try:
            while True:
                try:
                    yield self.call(step())
                except StopAsyncIteration:
                    return
        finally:
            if not self._closed:
                self.call(events.aclose())
