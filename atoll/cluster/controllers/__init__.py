"""Workload controllers of a member cluster (kube-controller-manager's, one module each)."""
