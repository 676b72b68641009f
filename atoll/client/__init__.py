"""Kubernetes API client: kubeconfig loading, an async REST client and a blocking facade."""

from atoll.client.client import Client, PatchType, Resource, WatchEvent
from atoll.client.kubeconfig import ClusterConfig, Kubeconfig, KubeconfigError, load, read
from atoll.client.sync import SyncClient

__all__ = ["Client", "ClusterConfig", "Kubeconfig", "KubeconfigError", "PatchType", "Resource", "SyncClient",
           "WatchEvent", "load", "read"]
