"""Kubernetes API client: kubeconfig loading and an async REST client."""

from atoll.client.client import Client, Resource, WatchEvent
from atoll.client.kubeconfig import ClusterConfig, KubeconfigError, load

__all__ = ["Client", "ClusterConfig", "KubeconfigError", "Resource", "WatchEvent", "load"]
