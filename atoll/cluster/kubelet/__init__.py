"""Kubelets: node registration, leases, and pod runtimes (simulated now, processes next)."""
