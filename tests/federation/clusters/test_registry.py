"""What join writes for each kind of member credentials (table-driven)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from atoll.client import ClusterConfig
from atoll.federation.clusters.registry import CLUSTER_FINALIZER, JoinError, cluster_for, secret_for


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(("config", "data"), [
    (ClusterConfig(server="https://127.0.0.1:6443", token="tok", ca_data=b"CA"),
     {"token": b64(b"tok"), "caBundle": b64(b"CA")}),
    (ClusterConfig(server="https://127.0.0.1:6443", cert_data=b"C", key_data=b"K", ca_data=b"CA"),
     {"caBundle": b64(b"CA"), "tls.crt": b64(b"C"), "tls.key": b64(b"K")}),
    (ClusterConfig(server="https://127.0.0.1:6443", token="tok", insecure=True), {"token": b64(b"tok")}),
])
def test_secret_for(config: ClusterConfig, data: dict[str, str]) -> None:
    secret = secret_for("m1", config)
    assert secret["metadata"] == {"name": "m1", "namespace": "karmada-cluster"}
    assert secret["data"] == data


def test_secret_for_needs_token_or_certificate() -> None:
    with pytest.raises(JoinError, match="neither a token nor a client certificate"):
        secret_for("m1", ClusterConfig(server="https://127.0.0.1:6443", username="u", password="p"))


@pytest.mark.parametrize(("kwargs", "spec"), [
    ({}, {}),
    ({"provider": "aws", "region": "us-east-1", "zone": "us-east-1a", "cluster_id": "uid-1"},
     {"provider": "aws", "region": "us-east-1", "zones": ["us-east-1a"], "id": "uid-1"}),
])
def test_cluster_for(kwargs: dict[str, Any], spec: dict[str, Any]) -> None:
    config = ClusterConfig(server="https://127.0.0.1:7443", token="t", insecure=bool(kwargs))
    cluster = cluster_for("m1", config, labels={"env": "prod"}, **kwargs)
    expected = {"syncMode": "Push", "apiEndpoint": "https://127.0.0.1:7443",
                "secretRef": {"namespace": "karmada-cluster", "name": "m1"}, **spec}
    if kwargs:
        expected["insecureSkipTLSVerification"] = True
    assert cluster["spec"] == expected
    assert cluster["metadata"] == {"name": "m1", "finalizers": [CLUSTER_FINALIZER], "labels": {"env": "prod"}}
    assert (cluster["apiVersion"], cluster["kind"]) == ("cluster.karmada.io/v1alpha1", "Cluster")
