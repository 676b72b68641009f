"""Health probing against a stand-in member whose /readyz and /healthz answers the test chooses.

A reachable member whose health endpoint fails is ``ClusterNotReady`` (tainted not-ready),
one without ``/readyz`` is probed on ``/healthz`` — cases a healthy real API server never shows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from atoll.client import Client
from atoll.federation import kinds
from atoll.federation.clusters import join
from atoll.federation.clusters.status import TAINT_NOT_READY, probe
from tests.conftest import RunningServer
from tests.federation.clusters.harness import federation
from tests.waiting import eventually


class StandIn:
    """A plain-HTTP member answering /version, /readyz, /healthz and empty discovery."""

    def __init__(self) -> None:
        self.readyz = 200
        self.healthz = 200

    def app(self) -> web.Application:
        async def version(_request: web.Request) -> web.Response:
            return web.json_response({"gitVersion": "v1.32.0-standin"})

        async def readyz(_request: web.Request) -> web.Response:
            return web.Response(status=self.readyz, text="[-]etcd failed")

        async def healthz(_request: web.Request) -> web.Response:
            return web.Response(status=self.healthz, text="ok")

        async def core(_request: web.Request) -> web.Response:
            return web.json_response({"kind": "APIVersions", "versions": []})

        async def groups(_request: web.Request) -> web.Response:
            return web.json_response({"kind": "APIGroupList", "groups": []})

        app = web.Application()
        for path, handler in (("/version", version), ("/readyz", readyz), ("/healthz", healthz), ("/api", core),
                              ("/apis", groups)):
            app.router.add_get(path, handler)
        return app


@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[StandIn, str]]:
    member = StandIn()
    runner = web.AppRunner(member.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield member, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("readyz", "healthz", "online", "healthy"), [
    (200, 200, True, True),
    (500, 200, True, False),
    (404, 200, True, True),      # no /readyz: /healthz decides
    (404, 503, True, False),
])
async def test_probe(stand_in: tuple[StandIn, str], readyz: int, healthz: int, online: bool, healthy: bool) -> None:
    member, url = stand_in
    member.readyz, member.healthz = readyz, healthz
    async with Client(server=url, token="t") as client:
        assert await probe(client) == (online, healthy)


async def test_probe_of_nothing_listening() -> None:
    async with Client(server="http://127.0.0.1:9", token="t") as client:
        assert await probe(client, timeout=2) == (False, False)


def cond(cluster: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (cluster.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


async def test_unhealthy_member_is_not_ready_and_tainted(apiserver: RunningServer, stand_in: tuple[StandIn, str],
                                                         tmp_path: Path) -> None:
    member, url = stand_in
    member.readyz = 500
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{{name: c, cluster: "
                          f"{{server: '{url}'}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\n"
                          "contexts: [{name: c, context: {cluster: c, user: u}}]\n")
    async with federation(apiserver) as fed:
        await join(fed.client, "stand-in", kubeconfig)

        async def not_ready() -> dict[str, Any] | None:
            c = await fed.client.get(kinds.CLUSTERS, "stand-in")
            taints = {(t["key"], t["effect"]) for t in c["spec"].get("taints") or []}
            ok = cond(c, "Ready").get("reason") == "ClusterNotReady" and taints == {
                (TAINT_NOT_READY, "NoSchedule"), (TAINT_NOT_READY, "NoExecute")}
            return c if ok else None

        c = await eventually(not_ready, timeout=10)
        assert cond(c, "Ready")["message"] == "cluster is reachable but health endpoint responded without ok"

        member.readyz = 200

        async def ready() -> dict[str, Any] | None:
            c = await fed.client.get(kinds.CLUSTERS, "stand-in")
            ok = cond(c, "Ready").get("status") == "True" and not c["spec"].get("taints")
            return c if ok and cond(c, "CompleteAPIEnablements") else None

        c = await eventually(ready, timeout=10)
        assert c["status"]["kubernetesVersion"] == "v1.32.0-standin"
        assert cond(c, "CompleteAPIEnablements")["reason"] == "Empty"  # it serves no APIs
        await fed.client.delete(kinds.CLUSTERS, "stand-in")

        async def gone() -> bool:
            items = (await fed.client.list(kinds.CLUSTERS))["items"]
            return not any(i["metadata"]["name"] == "stand-in" for i in items)

        await eventually(gone, timeout=10)
