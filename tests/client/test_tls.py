"""The client over TLS with the API server's PKI: kubeconfigs written by security.py, end to end."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from atoll.api import errors
from atoll.apiserver import security
from atoll.client import Client, Resource
from tests.client.conftest import FakeAPI, event, reply, status_body

CMS = Resource("v1", "configmaps")


@dataclass
class Secured:
    api: FakeAPI
    pki: security.PKI
    auth: security.Authenticator


async def _secured(pki: security.PKI, *, host: str = "127.0.0.1") -> Secured:
    """A scripted server behind our TLS context, answering 401 to anonymous requests as the API server does."""
    auth = security.Authenticator(pki)
    api = FakeAPI()

    async def whoami(request: web.Request) -> web.StreamResponse:
        user = auth.authenticate(request)
        if user is None:
            return reply(status_body(401, "Unauthorized"), 401)
        return reply({"user": user.name, "groups": list(user.groups)})

    api.on("GET", "/whoami", whoami)
    await api.start(ssl_context=security.server_ssl_context(pki), host=host)
    return Secured(api, pki, auth)


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    s = await _secured(security.ensure_pki(tmp_path / "pki", hosts=["127.0.0.1"]))
    try:
        yield s
    finally:
        await s.api.stop()


def _kubeconfig(path: Path, s: Secured, *, use_token: bool = False) -> Path:
    security.write_kubeconfig(path, server=s.api.url, pki=s.pki, cluster_name="atoll", user_name="atoll-admin",
                              context_name="atoll", use_token=use_token)
    return path


@pytest.mark.parametrize("use_token", [False, True], ids=["client-certificate", "token"])
async def test_kubeconfig_credentials_authenticate(secured: Secured, tmp_path: Path, use_token: bool) -> None:
    path = _kubeconfig(tmp_path / "kc", secured, use_token=use_token)
    async with Client.from_kubeconfig(path) as client:
        assert await client.request("GET", "/whoami") == {
            "user": "atoll-admin", "groups": ["system:masters", "system:authenticated"]}


async def test_the_session_is_reused_across_requests(secured: Secured, tmp_path: Path) -> None:
    async def watch(request: web.Request) -> web.StreamResponse:
        return await secured.api.stream(request, [event("ADDED", "a", "2")])

    secured.api.on("GET", "/api/v1/namespaces/ns/configmaps", watch)
    async with Client.from_kubeconfig(_kubeconfig(tmp_path / "kc", secured)) as client:
        for _ in range(3):
            await client.request("GET", "/whoami")
        assert [ev.type async for ev in client.watch(CMS, "ns")] == ["ADDED"]
        connector = client.session.connector
        assert connector is not None and connector.limit == 100


async def test_missing_credentials_are_unauthorized(secured: Secured, tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path / "kc", secured)
    doc = yaml.safe_load(path.read_text())
    doc["users"][0]["user"] = {}
    path.write_text(yaml.safe_dump(doc))
    async with Client.from_kubeconfig(path) as client:
        with pytest.raises(errors.Unauthorized):
            await client.request("GET", "/whoami")
    async with Client(server=secured.api.url, ssl_context=Client.from_kubeconfig(path).config.ssl_context(),
                      token=secured.pki.admin_token) as explicit:
        assert (await explicit.request("GET", "/whoami"))["user"] == "atoll-admin"


async def test_a_server_of_another_ca_is_not_trusted(secured: Secured, tmp_path: Path) -> None:
    other = security.ensure_pki(tmp_path / "other", hosts=[])
    security.write_kubeconfig(tmp_path / "kc", server=secured.api.url, pki=other, cluster_name="x",
                              user_name="x", context_name="x")
    async with Client.from_kubeconfig(tmp_path / "kc") as client:
        with pytest.raises(errors.ServiceUnavailable, match="certificate"):
            await client.request("GET", "/whoami")
    doc = yaml.safe_load((tmp_path / "kc").read_text())
    doc["clusters"][0]["cluster"] = {"server": secured.api.url, "insecure-skip-tls-verify": True}
    (tmp_path / "kc").write_text(yaml.safe_dump(doc))
    async with Client.from_kubeconfig(tmp_path / "kc") as client:
        # The server is no longer checked, but the other CA's client certificate still is.
        with pytest.raises(errors.ServiceUnavailable):
            await client.request("GET", "/whoami")


def _loopback_alias_usable(host: str) -> bool:
    try:
        with socket.socket() as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


async def test_tls_server_name(tmp_path: Path) -> None:
    """A server reached by an address its certificate does not name, verified under another name."""
    if not _loopback_alias_usable("127.0.0.2"):
        pytest.skip("127.0.0.2 is not a loopback address here")
    s = await _secured(security.ensure_pki(tmp_path / "pki", hosts=["apiserver.atoll.test"]), host="127.0.0.2")

    async def watch(request: web.Request) -> web.StreamResponse:
        return await s.api.stream(request, [event("ADDED", "a", "2")])

    s.api.on("GET", "/api/v1/namespaces/ns/configmaps", watch)
    try:
        path = _kubeconfig(tmp_path / "kc", s)
        async with Client.from_kubeconfig(path) as client:
            with pytest.raises(errors.ServiceUnavailable, match=r"127\.0\.0\.2"):
                await client.request("GET", "/whoami")
        doc = yaml.safe_load(path.read_text())
        doc["clusters"][0]["cluster"]["tls-server-name"] = "apiserver.atoll.test"
        path.write_text(yaml.safe_dump(doc))
        async with Client.from_kubeconfig(path) as client:
            assert (await client.request("GET", "/whoami"))["user"] == "atoll-admin"
            assert [ev.type async for ev in client.watch(CMS, "ns")] == ["ADDED"]  # watches too
    finally:
        await s.api.stop()


async def test_one_kubeconfig_many_servers(tmp_path: Path) -> None:
    """``atoll up``'s kubeconfig: a context per API server, each with its own CA and admin certificate."""
    servers = [await _secured(security.ensure_pki(tmp_path / name, hosts=[])) for name in ("atoll", "aws-1")]
    try:
        entries = [security.kubeconfig_entries(server=s.api.url, pki=s.pki, cluster_name=name,
                                               user_name=f"{name}-admin", context_name=name)
                   for name, s in zip(("atoll", "aws-1"), servers, strict=True)]
        path = tmp_path / "kubeconfig"
        security.merge_kubeconfig(path, entries, current_context="atoll")
        for name, s in zip(("atoll", "aws-1"), servers, strict=True):
            async with Client.from_kubeconfig(path, context=name) as client:
                assert client.server == s.api.url
                assert (await client.request("GET", "/whoami"))["user"] == "atoll-admin"
        async with Client.from_kubeconfig(path) as client:
            assert client.config.context == "atoll"
    finally:
        for s in servers:
            await s.api.stop()
