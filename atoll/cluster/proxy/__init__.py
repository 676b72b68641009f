"""The service proxy of a member cluster (a userspace kube-proxy over loopback addresses)."""

from atoll.cluster.proxy.backends import Balancer, Endpoint, endpoints_for_port, usable_endpoints
from atoll.cluster.proxy.proxying import ProxyMetrics, ServicePortName, ServiceProxy

__all__ = ["Balancer", "Endpoint", "ProxyMetrics", "ServicePortName", "ServiceProxy", "endpoints_for_port",
           "usable_endpoints"]
