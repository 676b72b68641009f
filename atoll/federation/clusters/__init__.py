"""Member clusters: joining them, reaching them, and watching their health.

* :mod:`~atoll.federation.clusters.registry` — ``join`` / ``unjoin`` (what ``karmadactl join``
  and ``unjoin`` write: the credentials Secret in ``karmada-cluster`` and the Cluster object);
* :mod:`~atoll.federation.clusters.clients` — a client per member, built from the Cluster and
  its Secret, plus on-demand informers on member resources;
* :mod:`~atoll.federation.clusters.status` — the cluster status controller (Ready condition
  with thresholds, API enablements, node and resource summaries, not-ready/unreachable taints).

A member is reached only through its Kubernetes API, so a real kube-apiserver works as a
member exactly like an Atoll one.
"""

from atoll.federation.clusters.clients import MemberClients, MemberInformers
from atoll.federation.clusters.registry import join, unjoin

__all__ = ["MemberClients", "MemberInformers", "join", "unjoin"]
