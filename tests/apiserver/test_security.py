"""PKI, TLS and authentication against a real HTTPS server on loopback."""

from __future__ import annotations

import ssl
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web

from atoll.apiserver import security


async def _serve(pki: security.PKI) -> tuple[web.AppRunner, int]:
    auth = security.Authenticator(pki)

    async def whoami(request: web.Request) -> web.Response:
        user = auth.authenticate(request)
        if user is None:
            return web.json_response({"code": 401}, status=401)
        return web.json_response({"user": user.name, "groups": list(user.groups)})

    app = web.Application()
    app.router.add_get("/whoami", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=security.server_ssl_context(pki))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[security.PKI, int]]:
    pki = security.ensure_pki(tmp_path / "pki", hosts=["127.0.0.1"])
    runner, port = await _serve(pki)
    try:
        yield pki, port
    finally:
        await runner.cleanup()


def test_pki_is_private_and_reused(tmp_path: Path) -> None:
    first = security.ensure_pki(tmp_path / "pki", hosts=["127.0.0.1"])
    for key in (first.ca_key, first.server_key, first.admin_key, first.tokens_file):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ca = first.ca_cert.read_bytes()
    again = security.ensure_pki(tmp_path / "pki", hosts=["127.0.0.1"])
    assert again.ca_cert.read_bytes() == ca and again.admin_token == first.admin_token
    server = first.server_cert.read_bytes()
    wider = security.ensure_pki(tmp_path / "pki", hosts=["127.0.0.2"])
    assert wider.server_cert.read_bytes() != server and wider.ca_cert.read_bytes() == ca
    assert "127.0.0.2" in security._cert_hosts(wider.server_cert)
    assert repr(first).count(first.admin_token) == 0  # the token never shows in reprs/logs


async def test_anonymous_token_and_certificate(served: tuple[security.PKI, int], tmp_path: Path) -> None:
    pki, port = served
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    url = f"https://127.0.0.1:{port}/whoami"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, ssl=ctx) as r:
            assert r.status == 401
        async with http.get(url, ssl=ctx, headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401
        async with http.get(url, ssl=ctx, headers={"Authorization": f"Bearer {pki.admin_token}"}) as r:
            assert r.status == 200 and (await r.json())["user"] == security.ADMIN_USER
    cert_ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    cert_ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    async with aiohttp.ClientSession() as http, http.get(url, ssl=cert_ctx) as r:
        body = await r.json()
        assert r.status == 200 and body["user"] == "atoll-admin" and "system:masters" in body["groups"]
    # A certificate from another CA is refused during the TLS handshake.
    other = security.ensure_pki(tmp_path / "other", hosts=[])
    bad_ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    bad_ctx.load_cert_chain(str(other.admin_cert), str(other.admin_key))
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(url, ssl=bad_ctx) as r:
                await r.read()


def test_kubeconfig_files(tmp_path: Path) -> None:
    pki = security.ensure_pki(tmp_path / "pki", hosts=[])
    path = tmp_path / "kubeconfig"
    security.write_kubeconfig(path, server="https://127.0.0.1:1", pki=pki, cluster_name="a", user_name="a-admin",
                              context_name="a")
    doc = yaml.safe_load(path.read_text())
    assert doc["current-context"] == "a" and doc["users"][0]["user"]["client-key-data"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    entries = security.kubeconfig_entries(server="https://127.0.0.1:2", pki=pki, cluster_name="b",
                                           user_name="b-admin", context_name="b", use_token=True)
    security.merge_kubeconfig(path, [entries], current_context="b")
    merged = yaml.safe_load(path.read_text())
    assert [c["name"] for c in merged["contexts"]] == ["a", "b"] and merged["current-context"] == "b"
    security.merge_kubeconfig(path, [entries])
    assert len(yaml.safe_load(path.read_text())["contexts"]) == 2
