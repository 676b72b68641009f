"""PKI, TLS and authentication against a real HTTPS server on loopback, and the real kubectl."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import shutil
import ssl
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from atoll.apiserver import security
from atoll.apiserver.security import UserInfo


@dataclass
class Served:
    pki: security.PKI
    auth: security.Authenticator
    port: int

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


async def _serve(pki: security.PKI, auth: security.Authenticator, *, host: str = "127.0.0.1"
                 ) -> tuple[web.AppRunner, int]:
    """A tiny app behind our TLS context: /whoami and /healthz answer only authenticated users."""

    def user_of(request: web.Request) -> UserInfo:
        user = auth.authenticate(request)
        if user is None:
            raise web.HTTPUnauthorized(
                text='{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized",'
                     '"reason":"Unauthorized","code":401}', content_type="application/json")
        return user

    async def whoami(request: web.Request) -> web.Response:
        user = user_of(request)
        return web.json_response({"user": user.name, "uid": user.uid, "groups": list(user.groups)})

    async def healthz(request: web.Request) -> web.Response:
        user_of(request)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/whoami", whoami)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0, ssl_context=security.server_ssl_context(pki))
    await site.start()
    port = runner.addresses[0][1]
    return runner, port


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    pki = security.ensure_pki(tmp_path / "pki", hosts=["127.0.0.1"])
    auth = security.Authenticator(pki)
    runner, port = await _serve(pki, auth)
    try:
        yield Served(pki, auth, port)
    finally:
        await runner.cleanup()


def _ctx(pki: security.PKI, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=pki.ca_pem.decode())
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


async def _whoami(served: Served, ctx: ssl.SSLContext, headers: dict[str, str] | None = None
                  ) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(f"{served.url}/whoami", ssl=ctx, headers=headers,
                                                          timeout=aiohttp.ClientTimeout(total=10)) as r:
        return r.status, await r.json()


# -- the PKI -------------------------------------------------------------------------------

def test_pki_is_private_complete_and_reused(tmp_path: Path) -> None:
    first = security.ensure_pki(tmp_path / "pki", hosts=["127.0.0.1", "api.example.test"])
    assert stat.S_IMODE((tmp_path / "pki").stat().st_mode) == 0o700
    for path in (first.ca_cert, first.ca_key, first.server_cert, first.server_key, first.admin_cert,
                 first.admin_key, first.tokens_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert first.ca_pem == first.ca_cert.read_bytes() and b"PRIVATE KEY" in first.admin_key_pem

    ca = x509.load_pem_x509_certificate(first.ca_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert dt.timedelta(days=3649) < lifetime < dt.timedelta(days=3651)

    server = x509.load_pem_x509_certificate(first.server_cert_pem)
    server.verify_directly_issued_by(ca)
    assert security._cert_hosts(first.server_cert) == {"127.0.0.1", "::1", "localhost", "api.example.test"}
    assert server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH])

    admin = x509.load_pem_x509_certificate(first.admin_cert_pem)
    admin.verify_directly_issued_by(ca)
    assert admin.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "atoll-admin"
    assert admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"

    again = security.ensure_pki(tmp_path / "pki", hosts=["api.example.test", "127.0.0.1"])
    assert (again.ca_pem, again.server_cert_pem, again.admin_cert_pem, again.admin_token) == (
        first.ca_pem, first.server_cert_pem, first.admin_cert_pem, first.admin_token)


def test_server_certificate_follows_the_hosts(tmp_path: Path) -> None:
    first = security.ensure_pki(tmp_path / "pki", hosts=["127.0.0.1"])
    wider = security.ensure_pki(tmp_path / "pki", hosts=["127.0.0.1", "10.1.2.3", "[fd00::1]", "0.0.0.0"])
    assert wider.server_cert_pem != first.server_cert_pem
    assert security._cert_hosts(wider.server_cert) == {"127.0.0.1", "::1", "localhost", "10.1.2.3", "fd00::1"}
    narrower = security.ensure_pki(tmp_path / "pki", hosts=[])
    assert security._cert_hosts(narrower.server_cert) == {"127.0.0.1", "::1", "localhost"}
    # The CA, the admin identity and the token do not move.
    assert {p.ca_pem for p in (first, wider, narrower)} == {first.ca_pem}
    assert {p.admin_cert_pem for p in (first, wider, narrower)} == {first.admin_cert_pem}
    assert {p.admin_token for p in (first, wider, narrower)} == {first.admin_token}


def test_a_new_ca_reissues_the_certificates(tmp_path: Path) -> None:
    first = security.ensure_pki(tmp_path / "pki", hosts=[])
    first.ca_cert.unlink()
    first.ca_key.unlink()
    second = security.ensure_pki(tmp_path / "pki", hosts=[])
    assert second.ca_pem != first.ca_pem
    ca = x509.load_pem_x509_certificate(second.ca_pem)
    for pem in (second.server_cert_pem, second.admin_cert_pem):
        x509.load_pem_x509_certificate(pem).verify_directly_issued_by(ca)
    assert second.admin_token == first.admin_token


def test_a_key_of_another_ca_is_refused(tmp_path: Path) -> None:
    security.ensure_pki(tmp_path / "a", hosts=[])
    other = security.ensure_pki(tmp_path / "b", hosts=[])
    shutil.copy(other.ca_key, tmp_path / "a" / "ca.key")
    with pytest.raises(security.PKIError, match="not the key"):
        security.ensure_pki(tmp_path / "a", hosts=[])


def test_token_file_is_kube_format_and_keeps_other_tokens(tmp_path: Path) -> None:
    pki = security.ensure_pki(tmp_path / "pki", hosts=[])
    line = pki.tokens_file.read_text().strip()
    assert line == f'{pki.admin_token},atoll-admin,atoll-admin,"system:masters,system:authenticated"'
    # Someone replaces the file with other users only: the admin row is added back, theirs are kept.
    pki.tokens_file.write_text('svc-token,system:serviceaccount:a:b,uid-1,"system:serviceaccounts"\n'
                               "# a comment\n\nbare,bob,uid-2\n")
    again = security.ensure_pki(tmp_path / "pki", hosts=[])
    tokens = security.read_token_file(again.tokens_file)
    assert tokens["svc-token"] == UserInfo("system:serviceaccount:a:b", "uid-1", ("system:serviceaccounts",))
    assert tokens["bare"] == UserInfo("bob", "uid-2", ())
    assert tokens[again.admin_token].name == "atoll-admin" and again.admin_token != pki.admin_token
    assert stat.S_IMODE(again.tokens_file.stat().st_mode) == 0o600
    pki.tokens_file.write_text("only-a-token\n")
    with pytest.raises(security.PKIError, match="token,user,uid"):
        security.read_token_file(pki.tokens_file)


def test_secrets_stay_out_of_logs_and_reprs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        pki = security.ensure_pki(tmp_path / "pki", hosts=[])
        security.write_kubeconfig(tmp_path / "kc", server="https://127.0.0.1:1", pki=pki, cluster_name="c",
                                  user_name="u", context_name="c", use_token=True)
    assert caplog.records, "creating a PKI says so"
    key_body = pki.admin_key_pem.decode().splitlines()[1]
    for text in (caplog.text, repr(pki), str(pki)):
        assert pki.admin_token not in text and key_body not in text and "PRIVATE KEY" not in text


def test_server_context_is_tls12_with_optional_client_certificates(tmp_path: Path) -> None:
    ctx = security.server_ssl_context(security.ensure_pki(tmp_path / "pki", hosts=[]))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert len(ctx.get_ca_certs()) == 1


# -- authentication over HTTPS -------------------------------------------------------------

async def test_anonymous_and_bad_tokens_are_not_authenticated(served: Served) -> None:
    ctx = _ctx(served.pki)
    for headers in (None, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer "},
                    {"Authorization": f"Basic {served.pki.admin_token}"},
                    {"Authorization": f"Bearer {served.pki.admin_token}x"}):
        status, body = await _whoami(served, ctx, headers)
        assert status == 401 and body["reason"] == "Unauthorized", headers


async def test_bearer_token(served: Served) -> None:
    status, body = await _whoami(served, _ctx(served.pki), {"Authorization": f"Bearer {served.pki.admin_token}"})
    assert status == 200
    assert body == {"user": "atoll-admin", "uid": "atoll-admin", "groups": ["system:masters", "system:authenticated"]}
    status, _ = await _whoami(served, _ctx(served.pki), {"authorization": f"bearer  {served.pki.admin_token} "})
    assert status == 200


async def test_added_and_removed_service_tokens(served: Served) -> None:
    served.auth.add_token("svc-123", UserInfo("system:serviceaccount:kube-system:default", "u-1",
                                              ("system:serviceaccounts",)))
    status, body = await _whoami(served, _ctx(served.pki), {"Authorization": "Bearer svc-123"})
    assert status == 200 and body == {"user": "system:serviceaccount:kube-system:default", "uid": "u-1",
                                      "groups": ["system:serviceaccounts", "system:authenticated"]}
    assert served.auth.remove_token("svc-123") and not served.auth.remove_token("svc-123")
    status, _ = await _whoami(served, _ctx(served.pki), {"Authorization": "Bearer svc-123"})
    assert status == 401
    with pytest.raises(ValueError):
        served.auth.add_token("", UserInfo("nobody"))


async def test_client_certificate(served: Served) -> None:
    pki = served.pki
    status, body = await _whoami(served, _ctx(pki, (pki.admin_cert, pki.admin_key)))
    assert status == 200
    assert body == {"user": "atoll-admin", "uid": "", "groups": ["system:masters", "system:authenticated"]}
    # kube's order: a verified certificate authenticates even when a bad token comes along.
    status, body = await _whoami(served, _ctx(pki, (pki.admin_cert, pki.admin_key)),
                                 {"Authorization": "Bearer wrong"})
    assert status == 200 and body["user"] == "atoll-admin"


async def test_certificates_we_did_not_issue_for_clients_are_refused(served: Served, tmp_path: Path) -> None:
    other = security.ensure_pki(tmp_path / "other", hosts=[])
    # Signed by another CA: the TLS handshake fails.
    with pytest.raises(aiohttp.ClientError):
        await _whoami(served, _ctx(served.pki, (other.admin_cert, other.admin_key)))
    # Our CA's serving certificate is not a client certificate (extended key usage).
    with pytest.raises(aiohttp.ClientError):
        await _whoami(served, _ctx(served.pki, (served.pki.server_cert, served.pki.server_key)))
    # And a client trusting only the other CA does not trust this server.
    with pytest.raises(aiohttp.ClientError):
        await _whoami(served, _ctx(other), {"Authorization": f"Bearer {served.pki.admin_token}"})


# -- kubeconfig files ----------------------------------------------------------------------

def test_write_and_merge_kubeconfig(tmp_path: Path) -> None:
    pki = security.ensure_pki(tmp_path / "pki", hosts=[])
    path = tmp_path / "kubeconfig"
    security.write_kubeconfig(path, server="https://127.0.0.1:1", pki=pki, cluster_name="atoll",
                              user_name="atoll-admin", context_name="atoll")
    doc = yaml.safe_load(path.read_text())
    assert doc["current-context"] == "atoll" and doc["kind"] == "Config"
    user = doc["users"][0]["user"]
    assert set(user) == {"client-certificate-data", "client-key-data"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    member = security.kubeconfig_entries(server="https://127.0.0.1:2", pki=pki, cluster_name="aws-1",
                                         user_name="aws-1-admin", context_name="aws-1", use_token=True,
                                         namespace="web")
    security.merge_kubeconfig(path, [member])
    merged = yaml.safe_load(path.read_text())
    assert [c["name"] for c in merged["contexts"]] == ["atoll", "aws-1"]
    assert merged["current-context"] == "atoll"  # kept: it was set
    assert merged["contexts"][1]["context"] == {"cluster": "aws-1", "user": "aws-1-admin", "namespace": "web"}
    assert merged["users"][1]["user"] == {"token": pki.admin_token}

    moved = security.kubeconfig_entries(server="https://127.0.0.1:3", pki=pki, cluster_name="aws-1",
                                        user_name="aws-1-admin", context_name="aws-1")
    security.merge_kubeconfig(path, [moved], current_context="aws-1")
    merged = yaml.safe_load(path.read_text())
    assert [c["name"] for c in merged["clusters"]] == ["atoll", "aws-1"]
    assert merged["clusters"][1]["cluster"]["server"] == "https://127.0.0.1:3"
    assert merged["current-context"] == "aws-1"

    fresh = tmp_path / "fresh"
    security.merge_kubeconfig(fresh, [member, moved._replace(context={"name": "other", "context": {}})])
    assert yaml.safe_load(fresh.read_text())["current-context"] == "aws-1"
    broken = tmp_path / "broken"
    broken.write_text("{ not yaml")
    with pytest.raises(ValueError, match="not overwriting"):
        security.merge_kubeconfig(broken, [member])
    assert broken.read_text() == "{ not yaml"


# -- the real kubectl ----------------------------------------------------------------------

async def _kubectl(kubeconfig: Path, *args: str, home: Path) -> tuple[int, str, str]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed")
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "--kubeconfig", str(kubeconfig), "--request-timeout=10s", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "HOME": str(home), "KUBECONFIG": ""})
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.kubectl
@pytest.mark.parametrize("use_token", [False, True], ids=["client-certificate", "token"])
async def test_kubectl_connects_with_the_kubeconfig(served: Served, tmp_path: Path, use_token: bool) -> None:
    path = tmp_path / "kubeconfig"
    security.write_kubeconfig(path, server=served.url, pki=served.pki, cluster_name="atoll",
                              user_name="atoll-admin", context_name="atoll", use_token=use_token)
    code, out, err = await _kubectl(path, "get", "--raw", "/healthz", home=tmp_path)
    assert (code, out) == (0, "ok"), err


@pytest.mark.kubectl
async def test_kubectl_with_a_wrong_token_is_unauthorized(served: Served, tmp_path: Path) -> None:
    # (A user with no credentials at all makes kubectl prompt for a password instead.)
    path = tmp_path / "kubeconfig"
    security.write_kubeconfig(path, server=served.url, pki=served.pki, cluster_name="atoll",
                              user_name="atoll-admin", context_name="atoll", use_token=True)
    doc = yaml.safe_load(path.read_text())
    doc["users"][0]["user"] = {"token": "not-the-token"}
    path.write_text(yaml.safe_dump(doc))
    code, _, err = await _kubectl(path, "get", "--raw", "/healthz", home=tmp_path)
    assert code != 0 and "Unauthorized" in err


@pytest.mark.kubectl
async def test_kubectl_switches_between_merged_contexts(tmp_path: Path) -> None:
    """What ``atoll up`` writes: one file, one context per API server, each with its own CA."""
    runners: list[web.AppRunner] = []
    entries: list[security.KubeconfigEntry] = []
    try:
        for name in ("atoll", "member-1"):
            pki = security.ensure_pki(tmp_path / name, hosts=[])
            runner, port = await _serve(pki, security.Authenticator(pki))
            runners.append(runner)
            entries.append(security.kubeconfig_entries(server=f"https://127.0.0.1:{port}", pki=pki,
                                                       cluster_name=name, user_name=f"{name}-admin",
                                                       context_name=name))
        path = tmp_path / "kubeconfig"
        security.merge_kubeconfig(path, entries, current_context="atoll")
        for context in ("atoll", "member-1"):
            code, out, err = await _kubectl(path, "--context", context, "get", "--raw", "/healthz", home=tmp_path)
            assert (code, out) == (0, "ok"), err
        # A context whose CA is the other server's does not trust it.
        doc = yaml.safe_load(path.read_text())
        doc["clusters"][0]["cluster"]["server"] = entries[1].cluster["cluster"]["server"]
        path.write_text(yaml.safe_dump(doc))
        code, _, err = await _kubectl(path, "--context", "atoll", "get", "--raw", "/healthz", home=tmp_path)
        assert code != 0 and "certificate" in err
    finally:
        for runner in runners:
            await runner.cleanup()
