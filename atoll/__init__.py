"""Atoll: run many Kubernetes clusters as one."""

__version__ = "0.1.0"
