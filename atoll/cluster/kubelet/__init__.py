"""Kubelets: node agents that register Nodes, renew Leases and run the pods bound to them.

- :mod:`.kubelet` — the real kubelet (pod workers, status manager, probes, restart back-off)
  over a :class:`~.runtime.ContainerRuntime`; :mod:`.process` runs containers as child
  processes, :mod:`.images` says what an image means to it, :mod:`.limits` enforces limits.
- :mod:`.simulated` — KWOK-style nodes for scale: pods run without processes.
- :mod:`.connector` — the node side of ``pods/log`` and ``pods/exec`` for the API server.
"""
