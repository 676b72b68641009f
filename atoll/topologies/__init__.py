"""Topology files shipped with Atoll (package data); ``default.yaml`` is what ``atoll up`` runs without one."""
