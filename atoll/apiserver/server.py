"""The Atoll API server: one process serving the Kubernetes REST API over one store.

``APIServer`` wires storage, the object registry, admission, the in-process lifecycle
controllers and the HTTP(S) front end, and writes a kubeconfig for it. It is an async
context manager; ``atoll apiserver`` runs one until SIGTERM/SIGINT, and member clusters
and the federation embed one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from atoll import __version__
from atoll.api.builtin import new_registry
from atoll.api.errors import APIError, InternalError, NotFound, Unauthorized
from atoll.apiserver import security
from atoll.apiserver.admission import DefaultTolerationSeconds, NamespaceLifecycle, ServiceAccountAdmission
from atoll.apiserver.allocation import ServiceAllocation
from atoll.apiserver.customresources import CustomResources
from atoll.apiserver.discovery import Discovery, wants_aggregated
from atoll.apiserver.handlers import ResourceHandler, json_response, parse_path, status_response
from atoll.apiserver.lifecycle import Lifecycle
from atoll.apiserver.openapi import OpenAPIBuilder
from atoll.apiserver.registry import ObjectRegistry, RequestContext
from atoll.apiserver.subresources import Subresources
from atoll.storage import open_store
from atoll.storage.protocol import Store

logger = logging.getLogger(__name__)

KUBERNETES_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-atoll." + __version__,
                      "gitCommit": "atoll", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                      "goVersion": "go1.23.0", "compiler": "gc", "platform": "linux/amd64",
                      "emulationMajor": "1", "emulationMinor": "32",
                      "minCompatibilityMajor": "1", "minCompatibilityMinor": "31"}
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")
COMPACTION_INTERVAL = 60.0
COMPACTION_RETENTION = 300.0


@dataclass
class ServerConfig:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 6443
    storage: str = ""
    """Store URL; default ``sqlite:///<state_dir>/store.db``."""
    name: str = "atoll"
    """Cluster name used in the kubeconfig."""
    tls: bool = True
    authenticate: bool = True
    extra_hosts: list[str] = field(default_factory=list)
    compaction_interval: float = COMPACTION_INTERVAL
    compaction_retention: float = COMPACTION_RETENTION
    service_cidr: str = "127.80.0.0/16"
    """Service cluster IPs (loopback, so traffic to them stays on this machine)."""
    node_port_range: str = "30000-32767"
    default_toleration_seconds: int = 300
    """tolerationSeconds new pods get for not-ready/unreachable nodes (kube's DefaultTolerationSeconds)."""

    def store_url(self) -> str:
        return self.storage or f"sqlite:///{(self.state_dir / 'store.db').resolve()}"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("apiserver_request_total", "API requests by verb, resource and code",
                                ["verb", "group", "resource", "code"], registry=self.registry)
        self.latency = Histogram("apiserver_request_duration_seconds", "API request latency",
                                 ["verb", "group", "resource"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.watchers = Gauge("apiserver_registered_watchers", "Open watch requests", registry=self.registry)
        self.revision = Gauge("etcd_current_revision", "Current store revision", registry=self.registry)
        self.watch_caches = Gauge("apiserver_watch_cache_resources", "Resources with a watch cache",
                                  registry=self.registry)


class APIServer:
    def __init__(self, config: ServerConfig, *, store: Store | None = None) -> None:
        self.config = config
        self._given_store = store
        self.store: Store | None = store
        self.resources = new_registry()
        self.objects: ObjectRegistry | None = None
        self.metrics = Metrics()
        self.extra_metrics: list[CollectorRegistry] = []
        """Registries of components running in this process (proxy, controllers), served on /metrics too."""
        self.pki: security.PKI | None = None
        self.authenticator: security.Authenticator | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.port = config.port
        self.kubeconfig_path = config.state_dir / "kubeconfig"
        self._ready = False

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls else "http"
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        return f"{scheme}://{host}:{self.port}"

    async def __aenter__(self) -> APIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        cfg = self.config
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        if self.store is None:
            self.store = await open_store(cfg.store_url())
        objects = ObjectRegistry(self.store, self.resources)
        self.objects = objects
        self.subresources = Subresources(objects)
        self.handler = ResourceHandler(objects, self.subresources)
        self.discovery = Discovery(self.resources)
        self.openapi = OpenAPIBuilder(self.resources)
        self.custom = CustomResources(objects)
        objects.admission.append(NamespaceLifecycle(objects))
        objects.admission.append(ServiceAccountAdmission())
        objects.admission.append(DefaultTolerationSeconds(not_ready_seconds=cfg.default_toleration_seconds,
                                                          unreachable_seconds=cfg.default_toleration_seconds))
        self.allocation = ServiceAllocation(objects, service_cidr=cfg.service_cidr,
                                            node_port_range=cfg.node_port_range)
        objects.admission.append(self.allocation)
        objects.after_write.append(self.allocation.after_write)
        objects.admission.append(self.custom)
        objects.after_write.append(self.custom.after_write)
        await self.custom.load()
        await self._ensure_namespaces()
        # Watch caches start now, so that their windows cover every resourceVersion a
        # client can have seen from this server.
        await asyncio.gather(*(objects.cache_for(info) for info in self.resources
                               if info.storage_version and "watch" in info.verbs))
        self.lifecycle = Lifecycle(self.store, objects)
        self._tasks.append(asyncio.create_task(self.lifecycle.run(), name="lifecycle"))
        self._tasks.append(asyncio.create_task(self._compactor(), name="compactor"))
        self._tasks.append(asyncio.create_task(self._gc_tuner(), name="gc-tuner"))
        await asyncio.wait_for(self.lifecycle.wait_ready(), 30)

        ssl_ctx: ssl.SSLContext | None = None
        if cfg.tls:
            self.pki = security.ensure_pki(cfg.state_dir / "pki", hosts=[cfg.host, *cfg.extra_hosts])
            ssl_ctx = security.server_ssl_context(self.pki)
            if cfg.authenticate:
                self.authenticator = security.Authenticator(self.pki)
        app = web.Application(middlewares=[self._middleware], client_max_size=4 * 1024 * 1024,
                              handler_args={"max_field_size": 65536})
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.host, cfg.port, ssl_context=ssl_ctx, reuse_address=True,
                           backlog=1024)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        if self.pki is not None:
            security.write_kubeconfig(self.kubeconfig_path, server=self.url, pki=self.pki,
                                      cluster_name=cfg.name, user_name=f"{cfg.name}-admin", context_name=cfg.name)
        await self.allocation.ensure_kubernetes_service(cfg.host, self.port)
        self._tasks.append(asyncio.create_task(self.allocation.run(), name="service-allocation"))
        self._ready = True
        logger.info("API server %s listening on %s (storage %s)", cfg.name, self.url,
                    cfg.store_url().split("?")[0])

    async def stop(self) -> None:
        self._ready = False
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.objects is not None:
            await self.objects.close()
        if self.store is not None and self._given_store is None:
            await self.store.close()
            self.store = None

    async def _ensure_namespaces(self) -> None:
        assert self.objects is not None
        namespaces = self.resources.get("", "v1", "namespaces")
        assert namespaces is not None
        ctx = RequestContext(user="system:apiserver", field_manager="atoll-apiserver")
        for name in DEFAULT_NAMESPACES:
            if await self.objects.try_get(namespaces, None, name) is None:
                with contextlib.suppress(APIError):
                    await self.objects.create(namespaces, None, {"apiVersion": "v1", "kind": "Namespace",
                                                                 "metadata": {"name": name}}, ctx)

    async def _gc_tuner(self) -> None:
        """Keep CPython's cyclic GC from pausing requests for hundreds of milliseconds.

        The watch caches hold every object as Python dicts; a full collection walks all of
        them. Objects that survived a while are frozen (moved out of the collector's sight;
        refcounting still frees them), and the young-generation threshold is raised.
        """
        import gc

        gc.set_threshold(50_000, 20, 20)
        while True:
            await asyncio.sleep(10.0)
            gc.freeze()

    async def _compactor(self) -> None:
        """Keep about ``compaction_retention`` seconds of history, as kube-apiserver does."""
        assert self.store is not None
        samples: list[tuple[float, int]] = []
        while True:
            await asyncio.sleep(self.config.compaction_interval)
            try:
                now = time.monotonic()
                rev = await self.store.current_revision()
                samples.append((now, rev))
                old = [r for t, r in samples if now - t >= self.config.compaction_retention]
                if old:
                    target = old[-1]
                    samples = [(t, r) for t, r in samples if r >= target]
                    if target > await self.store.compacted_revision():
                        await self.store.compact(target)
                        logger.debug("compacted store to revision %d", target)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("compaction failed: %s", exc)

    # -- HTTP ------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        start = time.perf_counter()
        verb = request.method
        target = parse_path(request.path)
        group = target.group if target else ""
        resource = (target.plural + ("/" + target.subresource if target.subresource else "")) if target else ""
        if target and verb == "GET":
            verb = "WATCH" if (target.watch_path or request.query.get("watch") in ("true", "1")) else (
                "LIST" if target.name is None else "GET")
        code = 500
        try:
            if self.authenticator is not None and request.path not in PUBLIC_PATHS:
                user = self.authenticator.authenticate(request)
                if user is None:
                    raise Unauthorized("Unauthorized")
                request["user"] = user
            resp: web.StreamResponse = await handler(request)
            code = resp.status
            return resp
        except APIError as err:
            code = err.code
            return status_response(err)
        except web.HTTPException as exc:
            code = exc.status
            return status_response(APIError.from_status({"message": exc.reason, "code": exc.status}, exc.status))
        except (asyncio.CancelledError, ConnectionError):
            code = 499
            raise
        except Exception as exc:
            logger.exception("internal error serving %s %s", request.method, request.path)
            return status_response(InternalError(f"Internal error occurred: {exc}"))
        finally:
            self.metrics.requests.labels(verb, group, resource, str(code)).inc()
            if verb != "WATCH":
                self.metrics.latency.labels(verb, group, resource).observe(time.perf_counter() - start)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            return self._health(request, path)
        if path == "/version":
            return json_response(KUBERNETES_VERSION)
        if path == "/metrics":
            assert self.store is not None
            with contextlib.suppress(Exception):
                self.metrics.revision.set(await self.store.current_revision())
            self.metrics.watchers.set(self.handler.active_watches)
            assert self.objects is not None
            self.metrics.watch_caches.set(len(self.objects.watch_caches))
            body = b"".join(generate_latest(r) for r in (self.metrics.registry, *self.extra_metrics))
            return web.Response(body=body,
                                headers={"Content-Type": CONTENT_TYPE_LATEST})
        if path.startswith("/openapi/"):
            return self._openapi(request, path)
        target = parse_path(path)
        if target is not None:
            return await self.handler.handle(request, target)
        accept = request.headers.get("Accept", "")
        if path == "/api":
            agg = wants_aggregated(accept)
            if agg:
                return json_response(self.discovery.aggregated(core=True, api_version=_agg_version(agg)),
                                     content_type=agg)
            return json_response(self.discovery.api_versions(f"{self.config.host}:{self.port}"))
        if path == "/apis":
            agg = wants_aggregated(accept)
            if agg:
                return json_response(self.discovery.aggregated(core=False, api_version=_agg_version(agg)),
                                     content_type=agg)
            return json_response(self.discovery.api_group_list())
        parts = [p for p in path.split("/") if p]
        if len(parts) == 2 and parts[0] == "api":
            doc = self.discovery.resource_list("", parts[1])
            if doc is not None:
                return json_response(doc)
        if len(parts) == 2 and parts[0] == "apis":
            doc = self.discovery.api_group(parts[1])
            if doc is not None:
                return json_response(doc)
        if len(parts) == 3 and parts[0] == "apis":
            doc = self.discovery.resource_list(parts[1], parts[2])
            if doc is not None:
                return json_response(doc)
        if path == "/":
            paths = sorted({"/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/metrics", "/version",
                            "/openapi/v2", "/openapi/v3"}
                           | {f"/apis/{g}" for g, _ in self.resources.groups() if g}
                           | {f"/apis/{g}/{v}" for g, vs in self.resources.groups() if g for v in vs})
            return json_response({"paths": paths})
        raise NotFound("the server could not find the requested resource")

    def _health(self, request: web.Request, path: str) -> web.Response:
        ok = self._ready
        checks = ["ping", "log", "etcd", "poststarthook/start-apiextensions-controllers",
                  "poststarthook/garbage-collector", "informer-sync"]
        if "verbose" in request.query:
            lines = [f"[+]{c} ok" for c in checks]
            lines.append(f"{path.strip('/')} check {'passed' if ok else 'failed'}")
            return web.Response(text="\n".join(lines) + "\n", status=200 if ok else 500)
        return web.Response(text="ok" if ok else "not ready", status=200 if ok else 500)

    def _openapi(self, request: web.Request, path: str) -> web.Response:
        if path == "/openapi/v3":
            return json_response(self.openapi.index())
        if path.startswith("/openapi/v3/"):
            doc = self.openapi.group_version_document(path[len("/openapi/v3/"):])
            if doc is None:
                raise NotFound("the server could not find the requested resource")
            return web.Response(body=doc if isinstance(doc, bytes) else orjson.dumps(doc),
                                headers={"Content-Type": "application/json",
                                         "Cache-Control": "public, immutable" if "hash" in request.query
                                         else "no-cache, private"})
        if path == "/openapi/v2":
            v2 = getattr(self.openapi, "v2_document", None)
            if v2 is not None:
                doc2 = v2()
                return web.Response(body=doc2 if isinstance(doc2, bytes) else orjson.dumps(doc2),
                                    headers={"Content-Type": "application/json"})
        raise NotFound("the server could not find the requested resource")


def _agg_version(content_type: str) -> str:
    return "apidiscovery.k8s.io/v2beta1" if "v=v2beta1" in content_type else "apidiscovery.k8s.io/v2"
