"""A scriptable aiohttp server standing in for an API server, to test the client's wire behaviour."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def reply(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def status_body(code: int, reason: str, message: str = "", **extra: Any) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message or reason, "reason": reason, "code": code, **extra}


def event(kind: str, name: str = "", rv: str = "1", **obj: Any) -> bytes:
    """One watch event line for an object named ``name`` at ``rv`` (a bookmark: no name)."""
    return orjson.dumps({"type": kind, "object": {"metadata": {"name": name, "resourceVersion": rv}, **obj}}) + b"\n"


def error_event(status: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": "ERROR", "object": status}) + b"\n"


@dataclass
class FakeAPI:
    """Records every request; ``routes[(method, path)]`` answers it (404 Status otherwise)."""

    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    _runner: web.AppRunner | None = None

    def on(self, method: str, path: str, handler: Handler | Any, status: int = 200) -> None:
        """Route to a handler, or to a fixed JSON answer."""
        if callable(handler):
            self.routes[(method, path)] = handler
        else:
            async def fixed(request: web.Request) -> web.StreamResponse:
                return reply(handler, status)
            self.routes[(method, path)] = fixed

    def requests(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        return [s for s in self.seen if (method is None or s.method == method) and (path is None or s.path == path)]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path, dict(request.query), dict(request.headers), body))
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            return reply(status_body(404, "NotFound", f"{request.path} not found"), 404)
        return await handler(request)

    async def start(self, *, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, 0, ssl_context=ssl_context)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"{'https' if ssl_context else 'http'}://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        self.closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def stream(self, request: web.Request, chunks: list[bytes], *, hold: bool = False) -> web.StreamResponse:
        """Answer with a watch stream written in the given chunks; ``hold`` keeps it open afterwards."""
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        for chunk in chunks:
            await resp.write(chunk)
            await asyncio.sleep(0.005)  # let the chunks travel separately
        if hold:
            await self.closing.wait()
        return resp


@pytest.fixture
async def fake() -> AsyncIterator[FakeAPI]:
    api = FakeAPI()
    await api.start()
    try:
        yield api
    finally:
        await api.stop()
