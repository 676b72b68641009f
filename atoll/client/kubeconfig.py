"""Kubeconfig loading: what kubectl reads, turned into what an HTTP client needs.

Supports several files (``KUBECONFIG=a:b``; for each map entry the first file that
defines a name wins, as kubectl merges), an explicit context, certificate/key/CA as files
(relative to the kubeconfig's directory) or inline ``-data``, bearer tokens and token
files, and ``insecure-skip-tls-verify``.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class KubeconfigError(Exception):
    """The kubeconfig is missing, malformed, or does not name what was asked for."""


@dataclass(frozen=True)
class ClusterConfig:
    server: str
    namespace: str = "default"
    token: str | None = None
    ca_data: bytes | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    context: str = ""

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https://"):
            return False
        ctx = ssl.create_default_context(cadata=self.ca_data.decode() if self.ca_data else None)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_data and self.key_data:
            # ssl only loads certificate chains from files: use private temporary files.
            with tempfile.TemporaryDirectory(prefix="atoll-kc-") as tmp:
                cert, key = Path(tmp) / "c.pem", Path(tmp) / "k.pem"
                cert.write_bytes(self.cert_data)
                key.touch(mode=0o600)
                key.write_bytes(self.key_data)
                ctx.load_cert_chain(str(cert), str(key))
        return ctx


def _read(entry: dict[str, Any], key: str, base: Path) -> bytes | None:
    data = entry.get(f"{key}-data")
    if data:
        try:
            return base64.b64decode(data)
        except ValueError as exc:
            raise KubeconfigError(f"{key}-data is not valid base64") from exc
    path = entry.get(key)
    if path:
        p = Path(os.path.expanduser(path))
        if not p.is_absolute():
            p = base / p
        try:
            return p.read_bytes()
        except OSError as exc:
            raise KubeconfigError(f"cannot read {key} {p}: {exc.strerror}") from exc
    return None


def default_paths() -> list[Path]:
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def load(paths: list[Path] | Path | str | None = None, *, context: str | None = None) -> ClusterConfig:
    if paths is None:
        files = default_paths()
    elif isinstance(paths, list):
        files = paths
    else:
        files = [Path(paths)]
    merged: dict[str, dict[str, tuple[dict[str, Any], Path]]] = {"clusters": {}, "users": {}, "contexts": {}}
    current = ""
    found = False
    for f in files:
        if not f.exists():
            continue
        found = True
        try:
            doc = yaml.safe_load(f.read_text()) or {}
        except yaml.YAMLError as exc:
            raise KubeconfigError(f"{f} is not valid YAML: {exc}") from exc
        if not isinstance(doc, dict):
            raise KubeconfigError(f"{f} is not a kubeconfig")
        current = current or doc.get("current-context") or ""
        for section, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for entry in doc.get(section) or []:
                name = entry.get("name")
                if name and name not in merged[section]:
                    merged[section][name] = (entry.get(inner) or {}, f.parent)
    if not found:
        raise KubeconfigError(f"no kubeconfig found at {os.pathsep.join(str(f) for f in files)}")
    ctx_name = context or current
    if not ctx_name:
        raise KubeconfigError("the kubeconfig has no current-context; name a context")
    if ctx_name not in merged["contexts"]:
        raise KubeconfigError(f'context "{ctx_name}" not found in the kubeconfig')
    ctx, _ = merged["contexts"][ctx_name]
    cluster_name, user_name = ctx.get("cluster", ""), ctx.get("user", "")
    if cluster_name not in merged["clusters"]:
        raise KubeconfigError(f'cluster "{cluster_name}" of context "{ctx_name}" not found')
    cluster, cbase = merged["clusters"][cluster_name]
    user, ubase = merged["users"].get(user_name, ({}, Path(".")))
    server = cluster.get("server")
    if not server:
        raise KubeconfigError(f'cluster "{cluster_name}" has no server')
    token = user.get("token")
    if not token and user.get("tokenFile"):
        tf = Path(user["tokenFile"])
        token = (tf if tf.is_absolute() else ubase / tf).read_text().strip()
    return ClusterConfig(
        server=str(server).rstrip("/"), namespace=ctx.get("namespace") or "default", token=token,
        ca_data=_read(cluster, "certificate-authority", cbase), cert_data=_read(user, "client-certificate", ubase),
        key_data=_read(user, "client-key", ubase), insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name"), context=ctx_name)
