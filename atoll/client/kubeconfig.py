"""Kubeconfig loading: what kubectl reads, turned into what an HTTP client needs.

The rules are kubectl's (client-go ``clientcmd``):

* one explicit file (``--kubeconfig``) must exist; a list (``KUBECONFIG=a:b``) skips
  missing and empty names, and at least one file must exist; without either,
  ``~/.kube/config``;
* merging a list, the first file that defines a cluster, user or context name wins,
  and so does the first file that sets ``current-context``;
* file paths in an entry (``certificate-authority``, ``client-certificate``,
  ``client-key``, ``tokenFile``) are relative to the file that defined that entry;
* ``-data`` wins over the matching file, ``token`` over ``tokenFile``;
* a context's missing ``namespace`` is ``default``; a context naming a user that does
  not exist is anonymous, one naming a missing cluster is an error.

Exec credential plugins and auth-provider users are not run: they raise
:class:`KubeconfigError` saying so.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

KubeconfigPaths = Path | str | Sequence[Path | str] | None


class KubeconfigError(Exception):
    """The kubeconfig is missing, malformed, or does not name what was asked for."""


@dataclass(frozen=True)
class ClusterConfig:
    """Everything needed to reach and authenticate to one API server (secrets out of ``repr``)."""

    server: str
    namespace: str = "default"
    token: str | None = field(default=None, repr=False)
    ca_data: bytes | None = field(default=None, repr=False)
    cert_data: bytes | None = field(default=None, repr=False)
    key_data: bytes | None = field(default=None, repr=False)
    insecure: bool = False
    tls_server_name: str | None = None
    context: str = ""
    cluster_name: str = ""
    user_name: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def ssl_context(self) -> ssl.SSLContext | bool:
        """An SSL context for ``https`` servers (CA, client certificate); ``False`` for ``http``."""
        if not self.server.startswith("https://"):
            return False
        try:
            ctx = ssl.create_default_context(cadata=self.ca_data.decode() if self.ca_data else None)
        except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
            raise KubeconfigError(f'the certificate authority of cluster "{self.cluster_name}" '
                                  f"is not a PEM certificate: {exc}") from exc
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if bool(self.cert_data) != bool(self.key_data):
            raise KubeconfigError(f'user "{self.user_name}" has a client certificate without a key '
                                  "or a key without a certificate")
        if self.cert_data and self.key_data:
            # ssl loads certificate chains only from files: use private temporary files.
            with tempfile.TemporaryDirectory(prefix="atoll-kc-") as tmp:
                cert, key = Path(tmp) / "client.crt", Path(tmp) / "client.key"
                cert.write_bytes(self.cert_data)
                key.touch(mode=0o600)
                key.write_bytes(self.key_data)
                try:
                    ctx.load_cert_chain(str(cert), str(key))
                except ssl.SSLError as exc:
                    raise KubeconfigError(f'the client certificate or key of user "{self.user_name}" '
                                          f"cannot be used: {exc.reason or exc}") from exc
        return ctx


@dataclass(frozen=True)
class _Entry:
    body: dict[str, Any]
    base: Path  # the directory relative paths in ``body`` are resolved against
    source: Path


@dataclass
class Kubeconfig:
    """Several kubeconfig files merged by kubectl's rules; :meth:`resolve` picks one context."""

    files: list[Path]
    clusters: dict[str, _Entry] = field(default_factory=dict)
    users: dict[str, _Entry] = field(default_factory=dict)
    contexts: dict[str, _Entry] = field(default_factory=dict)
    current_context: str = ""

    def context_names(self) -> list[str]:
        return list(self.contexts)

    def resolve(self, context: str | None = None) -> ClusterConfig:
        ctx_name = context or self.current_context
        if not ctx_name:
            raise KubeconfigError("the kubeconfig has no current-context; name a context")
        if ctx_name not in self.contexts:
            raise KubeconfigError(f'context "{ctx_name}" not found in the kubeconfig '
                                  f"({os.pathsep.join(str(f) for f in self.files)})")
        ctx = self.contexts[ctx_name].body
        cluster_name, user_name = str(ctx.get("cluster") or ""), str(ctx.get("user") or "")
        if cluster_name not in self.clusters:
            raise KubeconfigError(f'cluster "{cluster_name}" of context "{ctx_name}" not found')
        cluster_entry = self.clusters[cluster_name]
        cluster = cluster_entry.body
        server = str(cluster.get("server") or "").strip()
        if not server:
            raise KubeconfigError(f'cluster "{cluster_name}" has no server')
        if "://" not in server:
            server = f"https://{server}"
        user_entry = self.users.get(user_name)
        if user_entry is None and user_name:
            logger.debug('user "%s" of context "%s" not found: anonymous', user_name, ctx_name)
        user = user_entry.body if user_entry else {}
        ubase = user_entry.base if user_entry else Path.cwd()
        token = _token(user, ubase, user_name)
        cert_data = _read(user, "client-certificate", ubase, f'user "{user_name}"')
        key_data = _read(user, "client-key", ubase, f'user "{user_name}"')
        if not (token or cert_data or user.get("username")) and (user.get("exec") or user.get("auth-provider")):
            plugin = "exec credential plugins" if user.get("exec") else "auth-provider users"
            raise KubeconfigError(f'user "{user_name}" needs {plugin}, which are not supported; '
                                  "use a token or a client certificate")
        return ClusterConfig(
            server=server.rstrip("/"),
            namespace=str(ctx.get("namespace") or "default"),
            token=token,
            ca_data=_read(cluster, "certificate-authority", cluster_entry.base, f'cluster "{cluster_name}"'),
            cert_data=cert_data,
            key_data=key_data,
            insecure=_bool(cluster.get("insecure-skip-tls-verify")),
            tls_server_name=str(cluster["tls-server-name"]) if cluster.get("tls-server-name") else None,
            context=ctx_name,
            cluster_name=cluster_name,
            user_name=user_name,
            username=str(user["username"]) if user.get("username") else None,
            password=str(user["password"]) if user.get("password") is not None else None,
        )


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "on")
    return bool(value)


def _path(value: str, base: Path) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else base / p


def _read(entry: dict[str, Any], key: str, base: Path, owner: str) -> bytes | None:
    data = entry.get(f"{key}-data")
    if data:
        try:
            return base64.b64decode(str(data), validate=True)
        except (ValueError, binascii.Error) as exc:
            raise KubeconfigError(f"{key}-data of {owner} is not valid base64") from exc
    path = entry.get(key)
    if path:
        p = _path(str(path), base)
        try:
            return p.read_bytes()
        except OSError as exc:
            raise KubeconfigError(f"cannot read {key} {p} of {owner}: {exc.strerror}") from exc
    return None


def _token(user: dict[str, Any], base: Path, user_name: str) -> str | None:
    if user.get("token"):
        return str(user["token"]).strip()
    if user.get("tokenFile"):
        p = _path(str(user["tokenFile"]), base)
        try:
            return p.read_text().strip() or None
        except OSError as exc:
            raise KubeconfigError(f'cannot read tokenFile {p} of user "{user_name}": {exc.strerror}') from exc
    return None


def default_paths() -> list[Path]:
    """``$KUBECONFIG`` (a path list) or ``~/.kube/config``."""
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def _files(paths: KubeconfigPaths) -> tuple[list[Path], bool]:
    """The files to read, and whether each must exist (one explicit file) or may be missing (a list)."""
    if paths is None:
        env = os.environ.get("KUBECONFIG")
        return default_paths(), not env
    if isinstance(paths, str | Path):
        return [Path(os.path.expanduser(str(paths)))], True
    files: list[Path] = []
    for p in paths:
        if str(p) and Path(os.path.expanduser(str(p))) not in files:
            files.append(Path(os.path.expanduser(str(p))))
    return files, False


def _sections(doc: dict[str, Any], source: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for section in ("clusters", "users", "contexts"):
        entries = doc.get(section) or []
        if not isinstance(entries, list):
            raise KubeconfigError(f"{source}: {section} must be a list")
        for entry in entries:
            if not isinstance(entry, dict) or not entry.get("name"):
                raise KubeconfigError(f"{source}: every entry of {section} needs a name")
        out[section] = entries
    return out


def read(paths: KubeconfigPaths = None) -> Kubeconfig:
    """Read and merge kubeconfig files (see the module docstring for the rules)."""
    files, must_exist = _files(paths)
    config = Kubeconfig(files=files)
    found = False
    for f in files:
        if not f.exists():
            if must_exist:
                raise KubeconfigError(f"no kubeconfig found at {f}")
            continue
        found = True
        try:
            doc = yaml.safe_load(f.read_text()) or {}
        except yaml.YAMLError as exc:
            raise KubeconfigError(f"{f} is not valid YAML: {exc}") from exc
        except OSError as exc:
            raise KubeconfigError(f"cannot read {f}: {exc.strerror}") from exc
        if not isinstance(doc, dict):
            raise KubeconfigError(f"{f} is not a kubeconfig")
        config.current_context = config.current_context or str(doc.get("current-context") or "")
        base = f.absolute().parent
        sections = _sections(doc, f)
        for section, inner, target in (("clusters", "cluster", config.clusters), ("users", "user", config.users),
                                       ("contexts", "context", config.contexts)):
            for entry in sections[section]:
                name = str(entry["name"])
                body = entry.get(inner) or {}
                if not isinstance(body, dict):
                    raise KubeconfigError(f'{f}: {inner} "{name}" must be a mapping')
                target.setdefault(name, _Entry(body, base, f))
    if not found:
        raise KubeconfigError(f"no kubeconfig found at {os.pathsep.join(str(f) for f in files)}")
    return config


def load(paths: KubeconfigPaths = None, *, context: str | None = None) -> ClusterConfig:
    """The :class:`ClusterConfig` of ``context`` (default: the current context)."""
    return read(paths).resolve(context)
