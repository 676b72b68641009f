"""ServiceAccount controller: every active namespace has its ``default`` ServiceAccount and root CA.

Two of kube-controller-manager's loops in one (pkg/controller/serviceaccount and the
root-CA-cert publisher in pkg/controller/certificates/rootcacertpublisher), since both
are "make sure this namespace has X": the ``default`` ServiceAccount, which pods get
when they name none (see ``ServiceAccountAdmission``), recreated when deleted; and the
``kube-root-ca.crt`` ConfigMap whose ``ca.crt`` lets workloads verify the API server,
rewritten when its data drifts and recreated when deleted. Terminating namespaces are
left alone (creating content there is refused anyway). Without a CA PEM the ConfigMap
is not published.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from atoll.api.errors import AlreadyExists, Forbidden, NotFound
from atoll.client import Client, Resource
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.informing import Informer

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
NAMESPACES = Resource("v1", "namespaces", False, "Namespace")
SERVICEACCOUNTS = Resource("v1", "serviceaccounts", True, "ServiceAccount")
CONFIGMAPS = Resource("v1", "configmaps", True, "ConfigMap")

DEFAULT_SERVICE_ACCOUNT = "default"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
               "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
               "distributions of Kubernetes clusters.")


def is_active(namespace: Obj) -> bool:
    return not (namespace.get("metadata") or {}).get("deletionTimestamp") and \
        (namespace.get("status") or {}).get("phase", "Active") == "Active"


def root_ca_needs_write(current: Obj | None, ca_pem: str) -> bool:
    """Create or rewrite unless the data is exactly ``ca.crt`` and the description is there (kube's rule)."""
    if current is None:
        return True
    annotations = (current.get("metadata") or {}).get("annotations") or {}
    return (current.get("data") or {}) != {"ca.crt": ca_pem} or not annotations.get(DESCRIPTION_ANNOTATION)


class ServiceAccountController(Controller):
    NAME: ClassVar[str] = "serviceaccount-controller"

    def __init__(self, client: Client, *, ca_pem: str = "") -> None:
        super().__init__()
        self.client = client
        self.ca_pem = ca_pem
        self.namespaces = self.watch(Informer(client, NAMESPACES))
        self.accounts = self.watch(Informer(client, SERVICEACCOUNTS,
                                            field_selector=f"metadata.name={DEFAULT_SERVICE_ACCOUNT}"),
                                   key_for=self._namespace_of)
        self.configmaps: Informer | None = None
        if ca_pem:
            self.configmaps = self.watch(Informer(client, CONFIGMAPS, field_selector=f"metadata.name={ROOT_CA_CONFIGMAP}"),
                                         key_for=self._namespace_of)

    @staticmethod
    def _namespace_of(obj: Obj) -> list[str]:
        ns = (obj.get("metadata") or {}).get("namespace")
        return [ns] if ns else []

    async def reconcile(self, key: str) -> Result:
        namespace = self.namespaces.lister.get(key)
        if namespace is None or not is_active(namespace):
            return Result()
        if self.accounts.lister.get(f"{key}/{DEFAULT_SERVICE_ACCOUNT}") is None:
            await self._create(SERVICEACCOUNTS, {"apiVersion": "v1", "kind": "ServiceAccount",
                                                 "metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": key}})
        if self.configmaps is not None:
            current = self.configmaps.lister.get(f"{key}/{ROOT_CA_CONFIGMAP}")
            if root_ca_needs_write(current, self.ca_pem):
                await self._write_root_ca(key, current)
        return Result()

    async def _create(self, res: Resource, obj: Obj) -> None:
        try:
            await self.client.create(res, obj)
        except AlreadyExists:
            pass  # the cache is behind; its event follows
        except Forbidden:
            pass  # the namespace started terminating meanwhile

    async def _write_root_ca(self, namespace: str, current: Obj | None) -> None:
        if current is None:
            await self._create(CONFIGMAPS, {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": namespace,
                             "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                "data": {"ca.crt": self.ca_pem}})
            return
        updated = {**current, "data": {"ca.crt": self.ca_pem}}
        md = dict(current.get("metadata") or {})
        md["annotations"] = {**(md.get("annotations") or {}), DESCRIPTION_ANNOTATION: DESCRIPTION}
        updated["metadata"] = md
        try:
            await self.client.replace(CONFIGMAPS, updated, namespace)  # Conflict: retried with the fresh one
        except NotFound:
            pass  # deleted meanwhile: its DELETED event brings us back
