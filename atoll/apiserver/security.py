"""TLS and authentication, on by default.

On first start a server gets, under its PKI directory: a CA, a serving certificate for
loopback (and any extra hosts), an admin client certificate (``O=system:masters``) and
an admin bearer token in a kube-style token file (``token,user,uid,"group1,group2"``).
Later starts reuse them; the serving certificate is re-issued when the hosts change.
Private keys and tokens are written 0600 and never logged.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hmac
import io
import ipaddress
import logging
import os
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

logger = logging.getLogger(__name__)

ADMIN_USER = "atoll-admin"
ADMIN_GROUPS = ("system:masters", "system:authenticated")


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class PKI:
    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path
    tokens_file: Path
    admin_token: str = field(repr=False)

    def pem(self, path: Path) -> bytes:
        return path.read_bytes()


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _issue(subject: x509.Name, key: ec.EllipticCurvePrivateKey, *, issuer: x509.Name,
           issuer_key: ec.EllipticCurvePrivateKey, days: int, ca: bool = False,
           sans: list[x509.GeneralName] | None = None, usage: list[x509.ObjectIdentifier] | None = None
           ) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                      content_commitment=False, key_encipherment=False,
                                                      data_encipherment=False, key_agreement=False,
                                                      encipher_only=False, decipher_only=False), critical=True)
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                                      key_cert_sign=False, crl_sign=False, content_commitment=False,
                                                      data_encipherment=False, key_agreement=False,
                                                      encipher_only=False, decipher_only=False), critical=True)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _cert_hosts(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(san.get_values_for_type(x509.DNSName))


def ensure_pki(directory: Path, *, hosts: list[str]) -> PKI:
    """Create (or reuse) the CA, serving cert, admin cert and admin token under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    ca_cert, ca_key = directory / "ca.crt", directory / "ca.key"
    server_cert, server_key = directory / "server.crt", directory / "server.key"
    admin_cert, admin_key = directory / "admin.crt", directory / "admin.key"
    tokens = directory / "tokens.csv"
    if not (ca_cert.exists() and ca_key.exists()):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"atoll-ca-{secrets.token_hex(4)}")])
        cert = _issue(name, key, issuer=name, issuer_key=key, days=3650, ca=True)
        _write_private(ca_key, _key_pem(key))
        ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        for stale in (server_cert, admin_cert):
            stale.unlink(missing_ok=True)
        logger.info("created a new certificate authority in %s", directory)
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    ca_private = _load_key(ca_key)
    wanted = {"127.0.0.1", "::1", "localhost", *[h for h in hosts if h not in ("", "0.0.0.0", "::")]}
    if not server_cert.exists() or not wanted <= _cert_hosts(server_cert):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "atoll-apiserver")]), key,
                      issuer=ca.subject, issuer_key=ca_private, days=825,
                      sans=[_san(h) for h in sorted(wanted)], usage=[ExtendedKeyUsageOID.SERVER_AUTH])
        _write_private(server_key, _key_pem(key))
        server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if not admin_cert.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ADMIN_USER),
                                 x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters")]), key,
                      issuer=ca.subject, issuer_key=ca_private, days=825,
                      usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
        _write_private(admin_key, _key_pem(key))
        admin_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    admin_token = ""
    if tokens.exists():
        for row in csv.reader(io.StringIO(tokens.read_text())):
            if len(row) >= 2 and row[1] == ADMIN_USER:
                admin_token = row[0]
    if not admin_token:
        admin_token = secrets.token_urlsafe(32)
        with io.StringIO() as buf:
            csv.writer(buf).writerow([admin_token, ADMIN_USER, ADMIN_USER, ",".join(ADMIN_GROUPS)])
            _write_private(tokens, buf.getvalue().encode())
    return PKI(directory, ca_cert, ca_key, server_cert, server_key, admin_cert, admin_key, tokens, admin_token)


def server_ssl_context(pki: PKI) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    ctx.load_verify_locations(cafile=str(pki.ca_cert))
    ctx.verify_mode = ssl.CERT_OPTIONAL  # client certificates are verified when presented
    return ctx


class Authenticator:
    """Bearer tokens (kube token-file format) and client certificates signed by our CA."""

    def __init__(self, pki: PKI) -> None:
        self._tokens: dict[str, UserInfo] = {}
        for row in csv.reader(io.StringIO(pki.tokens_file.read_text())):
            if len(row) >= 3:
                groups = tuple(g for g in (row[3] if len(row) > 3 else "").split(",") if g)
                self._tokens[row[0]] = UserInfo(row[1], row[2], groups)

    def add_token(self, token: str, user: UserInfo) -> None:
        self._tokens[token] = user

    def authenticate(self, request: web.Request) -> UserInfo | None:
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            presented = header[7:].strip()
            for token, user in self._tokens.items():
                if hmac.compare_digest(token.encode(), presented.encode()):
                    return user
            return None
        transport = request.transport
        if transport is None:
            return None
        peer: Any = transport.get_extra_info("peercert")
        if not peer:
            return None
        cn = ""
        groups: list[str] = []
        for rdn in peer.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    cn = value
                elif key == "organizationName":
                    groups.append(value)
        if not cn:
            return None
        return UserInfo(cn, "", (*groups, "system:authenticated"))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig_entries(*, server: str, pki: PKI, cluster_name: str, user_name: str, context_name: str,
                       use_token: bool = False) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    cluster = {"name": cluster_name, "cluster": {"server": server,
                                                 "certificate-authority-data": _b64(pki.ca_cert.read_bytes())}}
    if use_token:
        user: dict[str, Any] = {"name": user_name, "user": {"token": pki.admin_token}}
    else:
        user = {"name": user_name, "user": {"client-certificate-data": _b64(pki.admin_cert.read_bytes()),
                                            "client-key-data": _b64(pki.admin_key.read_bytes())}}
    context = {"name": context_name, "context": {"cluster": cluster_name, "user": user_name}}
    return cluster, user, context


def write_kubeconfig(path: Path, *, server: str, pki: PKI, cluster_name: str, user_name: str, context_name: str,
                     use_token: bool = False) -> None:
    """Write a kubeconfig with one context (client certificate, or the admin token)."""
    cluster, user, context = kubeconfig_entries(server=server, pki=pki, cluster_name=cluster_name,
                                                user_name=user_name, context_name=context_name, use_token=use_token)
    doc = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "clusters": [cluster], "users": [user],
           "contexts": [context], "current-context": context_name}
    _write_private(path, yaml.safe_dump(doc, sort_keys=False).encode())


def merge_kubeconfig(path: Path, entries: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]], *,
                     current_context: str | None = None) -> None:
    """Add or replace clusters/users/contexts in the kubeconfig at ``path`` (created if missing)."""
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "clusters": [], "users": [],
                           "contexts": []}
    if path.exists():
        loaded = yaml.safe_load(path.read_text()) or {}
        doc.update({k: v for k, v in loaded.items() if v is not None})
    for cluster, user, context in entries:
        for section, entry in (("clusters", cluster), ("users", user), ("contexts", context)):
            doc[section] = [e for e in doc.get(section) or [] if e.get("name") != entry["name"]] + [entry]
    if current_context:
        doc["current-context"] = current_context
    _write_private(path, yaml.safe_dump(doc, sort_keys=False).encode())
