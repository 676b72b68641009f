"""The federation: an API server speaking Karmada's API plus the controllers that propagate workloads.

It imports ``atoll.machinery``, ``atoll.client``, ``atoll.apiserver`` and ``atoll.api``,
never ``atoll.cluster``: members are reached only through their Kubernetes API, so a real
kube-apiserver member works exactly like an Atoll one. ``atoll.federation.kinds`` names
Karmada's resources, ``atoll.federation.crds`` installs them.
"""
