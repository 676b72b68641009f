"""TLS and authentication, on by default.

Every API server owns a small PKI under its state directory, made on first start and
reused afterwards:

    ca.crt / ca.key          a self-signed CA (EC P-256, 10 years)
    server.crt / server.key  the serving certificate, SANs = loopback + the listen hosts;
                             re-issued when the hosts change, the CA changes or it nears expiry
    admin.crt / admin.key    a client certificate CN=atoll-admin, O=system:masters
    tokens.csv               kube's ``--token-auth-file`` format: token,user,uid,"group1,group2"

Everything is written 0600 through a temporary file and a rename, so a concurrent
reader never sees half a key. Private keys and tokens are never logged nor shown in a
``repr``.

Authentication follows kube-apiserver's union order: a client certificate verified by
our CA (CN is the user, each O a group) first, then a bearer token. Every authenticated
user also gets the ``system:authenticated`` group. Anonymous requests get ``None`` and
the server answers 401 with a ``Status``.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import datetime as dt
import hashlib
import hmac
import io
import ipaddress
import logging
import os
import secrets
import ssl
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

logger = logging.getLogger(__name__)

ADMIN_USER = "atoll-admin"
MASTERS_GROUP = "system:masters"
AUTHENTICATED_GROUP = "system:authenticated"
ADMIN_GROUPS = (MASTERS_GROUP, AUTHENTICATED_GROUP)
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")

CA_DAYS = 3650
LEAF_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=30)


class PKIError(Exception):
    """The PKI directory holds files that do not fit together (for example a key of another CA)."""


@dataclass(frozen=True, slots=True)
class UserInfo:
    """Who made a request: kube's ``user.Info`` (name, uid, groups)."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class PKI:
    """Paths of the PKI files and their PEM contents (secrets are kept out of ``repr``)."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path
    tokens_file: Path
    admin_token: str = field(repr=False)
    ca_pem: bytes = field(repr=False)
    server_cert_pem: bytes = field(repr=False)
    server_key_pem: bytes = field(repr=False)
    admin_cert_pem: bytes = field(repr=False)
    admin_key_pem: bytes = field(repr=False)

    def pem(self, path: Path) -> bytes:
        return path.read_bytes()


# -- files ---------------------------------------------------------------------------------

def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` with mode 0600, atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise PKIError(f"{path} is not a PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PKIError(f"{path} is not an EC private key")
    return key


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


# -- certificates --------------------------------------------------------------------------

def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, key_cert_sign=ca, crl_sign=ca, key_encipherment=not ca,
                         content_commitment=False, data_encipherment=False, key_agreement=False,
                         encipher_only=False, decipher_only=False)


def _issue(subject: x509.Name, key: ec.EllipticCurvePrivateKey, *, issuer: x509.Certificate | None,
           issuer_key: ec.EllipticCurvePrivateKey, days: int, sans: list[x509.GeneralName] | None = None,
           usage: list[x509.ObjectIdentifier] | None = None) -> x509.Certificate:
    """Sign a certificate; ``issuer=None`` makes a self-signed CA."""
    now = dt.datetime.now(dt.UTC)
    ca = issuer is None
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(subject if issuer is None else issuer.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(_key_usage(ca=ca), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _normalise_host(host: str) -> str:
    host = host.strip().strip("[]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _cert_hosts(path: Path) -> set[str]:
    """The SANs of a certificate file, normalised as ``_normalise_host`` does."""
    cert = _load_cert(path)
    if cert is None:
        return set()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return ({str(v) for v in san.get_values_for_type(x509.IPAddress)}
            | {v.lower() for v in san.get_values_for_type(x509.DNSName)})


def _wanted_hosts(hosts: Iterable[str]) -> set[str]:
    wanted = {_normalise_host(h) for h in (*LOOPBACK_HOSTS, *hosts)}
    # Wildcard listen addresses are not names a client can dial.
    return wanted - {"", "0.0.0.0", "::"}


def _usable(cert_path: Path, key_path: Path, ca: x509.Certificate) -> bool:
    """Whether a leaf certificate exists, matches its key, was signed by ``ca`` and is not near expiry."""
    cert = _load_cert(cert_path)
    if cert is None or not key_path.exists():
        return False
    try:
        cert.verify_directly_issued_by(ca)
        if _load_key(key_path).public_key().public_numbers() != _ec_public(cert).public_numbers():
            return False
    except (ValueError, TypeError, InvalidSignature, PKIError):
        return False
    return cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > RENEW_BEFORE


def _ec_public(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise PKIError("certificate key is not an EC key")
    return public


# -- tokens --------------------------------------------------------------------------------

def read_token_file(path: Path) -> dict[str, UserInfo]:
    """Parse kube's static token file: ``token,user,uid[,"group1,group2"]`` per line."""
    tokens: dict[str, UserInfo] = {}
    for lineno, row in enumerate(csv.reader(io.StringIO(path.read_text())), start=1):
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 3:
            raise PKIError(f"{path}:{lineno}: a token line needs at least token,user,uid")
        groups = tuple(g.strip() for g in (row[3] if len(row) > 3 else "").split(",") if g.strip())
        tokens[row[0].strip()] = UserInfo(row[1].strip(), row[2].strip(), groups)
    return tokens


def _token_file_text(tokens: Mapping[str, UserInfo]) -> bytes:
    with io.StringIO() as buf:
        writer = csv.writer(buf, lineterminator="\n")
        for token, user in tokens.items():
            writer.writerow([token, user.name, user.uid, ",".join(user.groups)])
        return buf.getvalue().encode()


# -- the PKI -------------------------------------------------------------------------------

def ensure_pki(state_dir: Path, *, hosts: list[str]) -> PKI:
    """Create (or reuse) the CA, serving cert, admin cert and admin token under ``state_dir``."""
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    ca_cert_path, ca_key_path = state_dir / "ca.crt", state_dir / "ca.key"
    server_cert_path, server_key_path = state_dir / "server.crt", state_dir / "server.key"
    admin_cert_path, admin_key_path = state_dir / "admin.crt", state_dir / "admin.key"
    tokens_path = state_dir / "tokens.csv"

    if not (ca_cert_path.exists() and ca_key_path.exists()):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"atoll-ca-{secrets.token_hex(4)}")])
        cert = _issue(name, key, issuer=None, issuer_key=key, days=CA_DAYS)
        _write_private(ca_key_path, _key_pem(key))
        _write_private(ca_cert_path, _cert_pem(cert))
        logger.info("created a certificate authority in %s", state_dir)
    ca = _load_cert(ca_cert_path)
    if ca is None:
        raise PKIError(f"{ca_cert_path} is not a PEM certificate")
    ca_key = _load_key(ca_key_path)
    if ca_key.public_key().public_numbers() != _ec_public(ca).public_numbers():
        raise PKIError(f"{ca_key_path} is not the key of {ca_cert_path}")

    wanted = _wanted_hosts(hosts)
    if not _usable(server_cert_path, server_key_path, ca) or _cert_hosts(server_cert_path) != wanted:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "atoll-apiserver")]), key,
                      issuer=ca, issuer_key=ca_key, days=LEAF_DAYS,
                      sans=[_san(h) for h in sorted(wanted)], usage=[ExtendedKeyUsageOID.SERVER_AUTH])
        _write_private(server_key_path, _key_pem(key))
        _write_private(server_cert_path, _cert_pem(cert))
        logger.info("issued a serving certificate for %s", ", ".join(sorted(wanted)))

    if not _usable(admin_cert_path, admin_key_path, ca):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, MASTERS_GROUP),
                                 x509.NameAttribute(NameOID.COMMON_NAME, ADMIN_USER)]), key,
                      issuer=ca, issuer_key=ca_key, days=LEAF_DAYS, usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
        _write_private(admin_key_path, _key_pem(key))
        _write_private(admin_cert_path, _cert_pem(cert))
        logger.info("issued the %s client certificate", ADMIN_USER)

    tokens = read_token_file(tokens_path) if tokens_path.exists() else {}
    admin_token = next((t for t, u in tokens.items() if u.name == ADMIN_USER), "")
    if not admin_token:
        admin_token = secrets.token_urlsafe(32)
        tokens[admin_token] = UserInfo(ADMIN_USER, ADMIN_USER, ADMIN_GROUPS)
        _write_private(tokens_path, _token_file_text(tokens))
        logger.info("created the %s bearer token in %s", ADMIN_USER, tokens_path)
    else:
        os.chmod(tokens_path, 0o600)

    return PKI(
        directory=state_dir, ca_cert=ca_cert_path, ca_key=ca_key_path, server_cert=server_cert_path,
        server_key=server_key_path, admin_cert=admin_cert_path, admin_key=admin_key_path,
        tokens_file=tokens_path, admin_token=admin_token, ca_pem=ca_cert_path.read_bytes(),
        server_cert_pem=server_cert_path.read_bytes(), server_key_pem=server_key_path.read_bytes(),
        admin_cert_pem=admin_cert_path.read_bytes(), admin_key_pem=admin_key_path.read_bytes())


def server_ssl_context(pki: PKI) -> ssl.SSLContext:
    """TLS 1.2+; client certificates are optional but, when presented, must chain to our CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    ctx.load_verify_locations(cadata=pki.ca_pem.decode())
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


# -- authentication ------------------------------------------------------------------------

def _with_authenticated(user: UserInfo) -> UserInfo:
    if AUTHENTICATED_GROUP in user.groups:
        return user
    return UserInfo(user.name, user.uid, (*user.groups, AUTHENTICATED_GROUP))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Authenticator:
    """Client certificates signed by our CA, then bearer tokens (kube token-file format)."""

    def __init__(self, pki: PKI | None = None, *, tokens: Mapping[str, UserInfo] | None = None) -> None:
        # Keyed by the token's SHA-256, so a lookup does not walk every token; the stored
        # token is then compared in constant time.
        self._tokens: dict[bytes, tuple[bytes, UserInfo]] = {}
        if pki is not None and pki.tokens_file.exists():
            for token, user in read_token_file(pki.tokens_file).items():
                self.add_token(token, user)
        for token, user in (tokens or {}).items():
            self.add_token(token, user)

    def add_token(self, token: str, user: UserInfo) -> None:
        """Accept ``token`` as ``user`` from now on (service-account tokens, join tokens)."""
        if not token:
            raise ValueError("an empty token cannot authenticate anyone")
        self._tokens[_digest(token)] = (token.encode(), _with_authenticated(user))

    def remove_token(self, token: str) -> bool:
        return self._tokens.pop(_digest(token), None) is not None

    def authenticate_token(self, token: str) -> UserInfo | None:
        entry = self._tokens.get(_digest(token))
        if entry is None or not hmac.compare_digest(entry[0], token.encode()):
            return None
        return entry[1]

    @staticmethod
    def user_from_certificate(peercert: Mapping[str, Any]) -> UserInfo | None:
        """kube's x509 mapping: CN is the user name, each O a group."""
        name = ""
        groups: list[str] = []
        for rdn in peercert.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    name = value
                elif key == "organizationName":
                    groups.append(value)
        if not name:
            return None
        return UserInfo(name, "", (*groups, AUTHENTICATED_GROUP))

    def authenticate(self, request: web.Request) -> UserInfo | None:
        peer = _peercert(request)
        if peer:
            user = self.user_from_certificate(peer)
            if user is not None:
                return user
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return self.authenticate_token(credentials.strip())
        return None


def _peercert(request: web.Request) -> Mapping[str, Any] | None:
    """The verified client certificate, if the client presented one (CERT_OPTIONAL verifies it)."""
    transport = request.transport
    if transport is None:
        return None
    peer: Any = transport.get_extra_info("peercert")
    if not peer:
        ssl_object = transport.get_extra_info("ssl_object")
        if isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
            peer = ssl_object.getpeercert()
    return peer if isinstance(peer, Mapping) and peer else None


# -- kubeconfig ----------------------------------------------------------------------------

class KubeconfigEntry(NamedTuple):
    """One named cluster, user and context, as they go into a kubeconfig's lists."""

    cluster: dict[str, Any]
    user: dict[str, Any]
    context: dict[str, Any]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig_entries(*, server: str, pki: PKI, cluster_name: str, user_name: str, context_name: str,
                       use_token: bool = False, namespace: str | None = None) -> KubeconfigEntry:
    """The cluster (CA inline), user (admin certificate or token) and context for one server."""
    cluster = {"name": cluster_name, "cluster": {"server": server, "certificate-authority-data": _b64(pki.ca_pem)}}
    if use_token:
        user: dict[str, Any] = {"name": user_name, "user": {"token": pki.admin_token}}
    else:
        user = {"name": user_name, "user": {"client-certificate-data": _b64(pki.admin_cert_pem),
                                            "client-key-data": _b64(pki.admin_key_pem)}}
    context: dict[str, Any] = {"name": context_name, "context": {"cluster": cluster_name, "user": user_name}}
    if namespace:
        context["context"]["namespace"] = namespace
    return KubeconfigEntry(cluster, user, context)


def _dump(doc: Mapping[str, Any]) -> bytes:
    return yaml.safe_dump(dict(doc), sort_keys=False, default_flow_style=False).encode()


def write_kubeconfig(path: Path, *, server: str, pki: PKI, cluster_name: str, user_name: str, context_name: str,
                     use_token: bool = False) -> None:
    """Write a kubeconfig with one context (client certificate, or the admin token), 0600."""
    entry = kubeconfig_entries(server=server, pki=pki, cluster_name=cluster_name, user_name=user_name,
                               context_name=context_name, use_token=use_token)
    doc = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "clusters": [entry.cluster],
           "users": [entry.user], "contexts": [entry.context], "current-context": context_name}
    _write_private(path, _dump(doc))


def merge_kubeconfig(path: Path, entries: Iterable[KubeconfigEntry | tuple[dict[str, Any], dict[str, Any],
                                                                          dict[str, Any]]],
                     *, current_context: str | None = None) -> None:
    """Add or replace clusters/users/contexts by name in the kubeconfig at ``path`` (made if missing).

    Entries of other names are kept. ``current_context`` is set when given, or when the
    file had none (then the first merged context becomes current).
    """
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "clusters": [], "users": [],
                           "contexts": []}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is not valid YAML; not overwriting it") from exc
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} is not a kubeconfig; not overwriting it")
        doc.update({k: v for k, v in loaded.items() if v is not None})
    first = ""
    for cluster, user, context in entries:
        first = first or context["name"]
        for section, entry in (("clusters", cluster), ("users", user), ("contexts", context)):
            kept = [e for e in doc.get(section) or [] if not isinstance(e, dict) or e.get("name") != entry["name"]]
            doc[section] = [*kept, entry]
    if current_context:
        doc["current-context"] = current_context
    elif not doc.get("current-context") and first:
        doc["current-context"] = first
    _write_private(path, _dump(doc))
