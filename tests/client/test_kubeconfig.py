"""Kubeconfig loading, table-driven: kubectl's merge rules, relative paths, data vs files, tokens."""

from __future__ import annotations

import base64
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from atoll.apiserver import security
from atoll.client import ClusterConfig, KubeconfigError, load, read


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def config(*, current: str | None = None, clusters: dict[str, dict[str, Any]] | None = None,
           users: dict[str, dict[str, Any]] | None = None,
           contexts: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "Config",
                           "clusters": [{"name": n, "cluster": c} for n, c in (clusters or {}).items()],
                           "users": [{"name": n, "user": u} for n, u in (users or {}).items()],
                           "contexts": [{"name": n, "context": c} for n, c in (contexts or {}).items()]}
    if current is not None:
        doc["current-context"] = current
    return doc


ONE = config(current="one", clusters={"c1": {"server": "https://127.0.0.1:6443/"}},
             users={"u1": {"token": "t1"}}, contexts={"one": {"cluster": "c1", "user": "u1"}})


@dataclass
class Case:
    id: str
    files: dict[str, Any]  # relative path -> kubeconfig dict, or str/bytes file content
    paths: list[str] | str  # what ``load`` gets: a list (KUBECONFIG) or one file (--kubeconfig)
    context: str | None = None
    want: dict[str, Any] = field(default_factory=dict)  # ClusterConfig attributes
    error: str = ""  # KubeconfigError match instead


CASES = [
    Case("current-context", {"a": ONE}, "a",
         want={"server": "https://127.0.0.1:6443", "namespace": "default", "token": "t1", "context": "one",
               "cluster_name": "c1", "user_name": "u1", "insecure": False, "ca_data": None}),
    Case("explicit-context-and-namespace",
         {"a": config(current="one", clusters={"c1": {"server": "https://a"}, "c2": {"server": "https://b"}},
                      contexts={"one": {"cluster": "c1"}, "two": {"cluster": "c2", "namespace": "web"}})},
         "a", context="two", want={"server": "https://b", "namespace": "web", "token": None, "context": "two"}),
    Case("first-file-wins-per-name",
         {"a": ONE, "b": config(current="two", clusters={"c1": {"server": "https://ignored"},
                                                         "c2": {"server": "https://c2"}},
                                users={"u1": {"token": "ignored"}},
                                contexts={"one": {"cluster": "c2"}, "two": {"cluster": "c1", "user": "u1"}})},
         ["a", "b"], context="two", want={"server": "https://127.0.0.1:6443", "token": "t1", "context": "two"}),
    Case("first-current-context-wins",
         {"a": ONE, "b": config(current="two", clusters={"c2": {"server": "https://c2"}},
                                contexts={"two": {"cluster": "c2"}})},
         ["b", "a"], want={"context": "two", "server": "https://c2"}),
    Case("current-context-from-a-later-file",
         {"a": config(clusters={"c1": {"server": "https://c1"}}, contexts={"x": {"cluster": "c1"}}),
          "b": config(current="x")},
         ["a", "b"], want={"context": "x", "server": "https://c1"}),
    Case("missing-and-empty-list-entries-are-skipped", {"a": ONE}, ["", "nope", "a", "a"], want={"context": "one"}),
    Case("explicit-file-must-exist", {}, "nope", error="no kubeconfig found"),
    Case("a-list-needs-one-file", {}, ["nope", "neither"], error="no kubeconfig found"),
    Case("unknown-context", {"a": ONE}, "a", context="nope", error='context "nope" not found'),
    Case("no-current-context", {"a": config(clusters={"c": {"server": "https://x"}})}, "a",
         error="no current-context"),
    Case("unknown-cluster", {"a": config(current="x", contexts={"x": {"cluster": "gone"}})}, "a",
         error='cluster "gone" of context "x" not found'),
    Case("cluster-without-server", {"a": config(current="x", clusters={"c": {}}, contexts={"x": {"cluster": "c"}})},
         "a", error="has no server"),
    Case("unknown-user-is-anonymous",
         {"a": config(current="x", clusters={"c": {"server": "https://x"}}, contexts={"x": {"cluster": "c",
                                                                                          "user": "gone"}})},
         "a", want={"token": None, "cert_data": None, "user_name": "gone"}),
    Case("server-without-scheme", {"a": config(current="x", clusters={"c": {"server": "10.0.0.1:6443"}},
                                               contexts={"x": {"cluster": "c"}})},
         "a", want={"server": "https://10.0.0.1:6443"}),
    Case("relative-files-against-their-own-kubeconfig",
         {"certs/ca.crt": b"CA", "users/token": "from-file\n", "users/tls.crt": b"CERT", "users/tls.key": b"KEY",
          "certs/cluster.yaml": config(current="x", clusters={"c": {"server": "https://x",
                                                                    "certificate-authority": "ca.crt"}},
                                       contexts={"x": {"cluster": "c", "user": "u"}}),
          "users/user.yaml": config(users={"u": {"tokenFile": "token", "client-certificate": "tls.crt",
                                                 "client-key": "./tls.key"}})},
         ["certs/cluster.yaml", "users/user.yaml"],
         want={"ca_data": b"CA", "token": "from-file", "cert_data": b"CERT", "key_data": b"KEY"}),
    Case("absolute-and-home-paths",
         {"home/ca.crt": b"HOME-CA", "a": config(current="x", clusters={"c": {"server": "https://x",
                                                                              "certificate-authority": "~/ca.crt"}},
                                                 contexts={"x": {"cluster": "c"}})},
         "a", want={"ca_data": b"HOME-CA"}),
    Case("data-wins-over-files",
         {"a": config(current="x", clusters={"c": {"server": "https://x", "certificate-authority": "missing.crt",
                                                   "certificate-authority-data": b64(b"INLINE-CA")}},
                      users={"u": {"client-certificate": "missing", "client-certificate-data": b64(b"C"),
                                   "client-key-data": b64(b"K")}},
                      contexts={"x": {"cluster": "c", "user": "u"}})},
         "a", want={"ca_data": b"INLINE-CA", "cert_data": b"C", "key_data": b"K"}),
    Case("token-wins-over-token-file",
         {"a": config(current="x", clusters={"c": {"server": "https://x"}},
                      users={"u": {"token": "inline", "tokenFile": "missing"}},
                      contexts={"x": {"cluster": "c", "user": "u"}})},
         "a", want={"token": "inline"}),
    Case("missing-token-file",
         {"a": config(current="x", clusters={"c": {"server": "https://x"}}, users={"u": {"tokenFile": "nope"}},
                      contexts={"x": {"cluster": "c", "user": "u"}})},
         "a", error='cannot read tokenFile .*nope of user "u"'),
    Case("missing-certificate-file",
         {"a": config(current="x", clusters={"c": {"server": "https://x", "certificate-authority": "nope.crt"}},
                      contexts={"x": {"cluster": "c"}})},
         "a", error='cannot read certificate-authority .*nope.crt of cluster "c"'),
    Case("bad-base64",
         {"a": config(current="x", clusters={"c": {"server": "https://x", "certificate-authority-data": "!!"}},
                      contexts={"x": {"cluster": "c"}})},
         "a", error="certificate-authority-data of cluster \"c\" is not valid base64"),
    Case("insecure-and-server-name",
         {"a": config(current="x", clusters={"c": {"server": "https://x", "insecure-skip-tls-verify": True,
                                                   "tls-server-name": "api.internal"}},
                      contexts={"x": {"cluster": "c"}})},
         "a", want={"insecure": True, "tls_server_name": "api.internal"}),
    Case("basic-auth",
         {"a": config(current="x", clusters={"c": {"server": "https://x"}},
                      users={"u": {"username": "admin", "password": "pw"}}, contexts={"x": {"cluster": "c",
                                                                                             "user": "u"}})},
         "a", want={"username": "admin", "password": "pw", "token": None}),
    Case("exec-plugins-are-not-run",
         {"a": config(current="x", clusters={"c": {"server": "https://x"}},
                      users={"u": {"exec": {"command": "aws", "apiVersion": "client.authentication.k8s.io/v1"}}},
                      contexts={"x": {"cluster": "c", "user": "u"}})},
         "a", error="exec credential plugins"),
    Case("not-yaml", {"a": "{ not yaml"}, "a", error="not valid YAML"),
    Case("not-a-mapping", {"a": "- a\n- b\n"}, "a", error="is not a kubeconfig"),
    Case("clusters-not-a-list", {"a": {"clusters": {"c": {}}}}, "a", error="clusters must be a list"),
    Case("entry-without-name", {"a": {"contexts": [{"context": {}}]}}, "a", error="needs a name"),
    Case("empty-file", {"a": ""}, "a", error="no current-context"),
]


def materialise(root: Path, files: dict[str, Any]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content)
        else:
            path.write_text(yaml.safe_dump(content))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_load(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    materialise(tmp_path, case.files)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "home" if (tmp_path / "home").exists() else "/")  # relative != cwd
    paths: list[Path | str] | Path
    if isinstance(case.paths, str):
        paths = tmp_path / case.paths
    else:
        paths = [tmp_path / p if p else "" for p in case.paths]
    if case.error:
        with pytest.raises(KubeconfigError, match=case.error):
            load(paths, context=case.context)
        return
    got = load(paths, context=case.context)
    assert {k: getattr(got, k) for k in case.want} == case.want


def test_kubeconfig_environment_variable_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    materialise(tmp_path, {"a": ONE, "b": config(current="b", clusters={"cb": {"server": "https://b"}},
                                                 contexts={"b": {"cluster": "cb"}}),
                           "home/.kube/config": config(current="h", clusters={"ch": {"server": "https://home"}},
                                                       contexts={"h": {"cluster": "ch"}})})
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "missing"), str(tmp_path / "b"),
                                                      str(tmp_path / "a")]))
    assert load().context == "b"
    merged = read()
    assert merged.context_names() == ["b", "one"] and merged.current_context == "b"
    assert merged.resolve("one").token == "t1"
    monkeypatch.delenv("KUBECONFIG")
    assert load().server == "https://home"
    (tmp_path / "home" / ".kube" / "config").unlink()
    with pytest.raises(KubeconfigError, match="no kubeconfig found"):
        load()


def test_secrets_stay_out_of_repr() -> None:
    cfg = ClusterConfig(server="https://x", token="sekret-token", key_data=b"sekret-key", password="sekret-pw")
    assert "sekret" not in repr(cfg)


# -- ssl contexts --------------------------------------------------------------------------

def test_ssl_contexts(tmp_path: Path) -> None:
    pki = security.ensure_pki(tmp_path / "pki", hosts=[])
    assert ClusterConfig(server="http://127.0.0.1:1").ssl_context() is False
    verified = ClusterConfig(server="https://127.0.0.1:1", ca_data=pki.ca_pem, cert_data=pki.admin_cert_pem,
                             key_data=pki.admin_key_pem).ssl_context()
    assert isinstance(verified, ssl.SSLContext)
    assert verified.verify_mode == ssl.CERT_REQUIRED and verified.check_hostname
    assert [c["subject"] for c in verified.get_ca_certs()] == [
        ((("commonName", x509_cn(pki.ca_pem)),),)]
    insecure = ClusterConfig(server="https://127.0.0.1:1", insecure=True).ssl_context()
    assert isinstance(insecure, ssl.SSLContext) and insecure.verify_mode == ssl.CERT_NONE
    with pytest.raises(KubeconfigError, match="not a PEM certificate"):
        ClusterConfig(server="https://x", ca_data=b"garbage").ssl_context()
    with pytest.raises(KubeconfigError, match="without a key"):
        ClusterConfig(server="https://x", cert_data=pki.admin_cert_pem).ssl_context()
    with pytest.raises(KubeconfigError, match="cannot be used"):
        ClusterConfig(server="https://x", cert_data=pki.admin_cert_pem, key_data=pki.server_key_pem).ssl_context()


def x509_cn(pem: bytes) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    value = x509.load_pem_x509_certificate(pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(value, str)
    return value
