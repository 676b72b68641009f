"""Karmada's API as CustomResourceDefinitions, and ``install()`` that serves them on the federation.

The federation API server is an ordinary Atoll API server: Karmada's kinds exist there
because the federation writes their CRDs through the API when it starts, exactly as
Karmada's installer applies its CRDs to the karmada-apiserver. The definitions carry
Karmada's names (groups, plurals, short names, the ``karmada-io`` category), its
printer columns and structural schemas transcribed from its Go types (see
``cluster.py``, ``policy.py``, ``work.py``), so pruning, defaulting, validation and
``kubectl explain`` behave as on Karmada.

Deviation: Karmada also serves ResourceBinding and ClusterResourceBinding in v1alpha1
through a conversion webhook; without conversion the federation serves v1alpha2 only.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from atoll.api.errors import AlreadyExists, Conflict, NotFound, Timeout
from atoll.client import Client, Resource
from atoll.federation import kinds
from atoll.federation.crds import cluster, policy, work
from atoll.federation.crds.schema import Schema

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

CRDS = Resource("apiextensions.k8s.io/v1", "customresourcedefinitions", False, "CustomResourceDefinition")
SPEC_HASH_ANNOTATION = "federation.atoll.io/spec-hash"
"""The hash of the spec the federation last wrote: an unchanged definition is not rewritten at start."""
MANAGED_BY = {"app.kubernetes.io/managed-by": "atoll-federation", "app.kubernetes.io/part-of": "karmada"}


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0


AGE = Column("AGE", ".metadata.creationTimestamp", "date")


@dataclass(frozen=True, slots=True)
class Definition:
    """One Karmada kind: what its CRD names, serves and shows."""

    resource: Resource
    singular: str
    schema: Callable[[], Schema]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = (kinds.CATEGORY,)
    status: bool = False
    columns: tuple[Column, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.resource.plural}.{self.resource.group}"

    def manifest(self) -> Obj:
        """The CustomResourceDefinition, as ``kubectl apply`` would send it."""
        version: Obj = {"name": self.resource.version, "served": True, "storage": True,
                        "schema": {"openAPIV3Schema": self.schema()}}
        if self.status:
            version["subresources"] = {"status": {}}
        if self.columns:
            version["additionalPrinterColumns"] = [
                {"name": c.name, "type": c.type, "jsonPath": c.json_path, **({"priority": c.priority}
                                                                            if c.priority else {})}
                for c in self.columns]
        names: Obj = {"kind": self.resource.kind, "listKind": f"{self.resource.kind}List",
                      "plural": self.resource.plural, "singular": self.singular}
        if self.short_names:
            names["shortNames"] = list(self.short_names)
        if self.categories:
            names["categories"] = list(self.categories)
        spec: Obj = {"group": self.resource.group, "names": names,
                     "scope": "Namespaced" if self.resource.namespaced else "Cluster", "versions": [version]}
        return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": self.name, "labels": dict(MANAGED_BY),
                             "annotations": {SPEC_HASH_ANNOTATION: spec_hash(spec)}},
                "spec": spec}


def spec_hash(spec: Obj) -> str:
    return hashlib.sha256(orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


_POLICY_COLUMNS = (Column("CONFLICT-RESOLUTION", ".spec.conflictResolution"),
                   Column("PRIORITY", ".spec.priority"), AGE)
_BINDING_COLUMNS = (Column("SCHEDULED", '.status.conditions[?(@.type=="Scheduled")].status'),
                    Column("FULLYAPPLIED", '.status.conditions[?(@.type=="FullyApplied")].status'), AGE)

DEFINITIONS: tuple[Definition, ...] = (
    # Karmada's table printer for clusters (pkg/printers/internalversion), wide columns at priority 1.
    Definition(kinds.CLUSTERS, "cluster", cluster.cluster_schema, categories=(), status=True, columns=(
        Column("VERSION", ".status.kubernetesVersion"), Column("MODE", ".spec.syncMode"),
        Column("READY", '.status.conditions[?(@.type=="Ready")].status'), AGE,
        Column("ZONES", ".spec.zones", priority=1), Column("REGION", ".spec.region", priority=1),
        Column("PROVIDER", ".spec.provider", priority=1), Column("API-ENDPOINT", ".spec.apiEndpoint", priority=1),
        Column("PROXY-URL", ".spec.proxyURL", priority=1))),
    Definition(kinds.PROPAGATION_POLICIES, "propagationpolicy", policy.propagation_policy_schema,
               short_names=("pp",), columns=_POLICY_COLUMNS),
    Definition(kinds.CLUSTER_PROPAGATION_POLICIES, "clusterpropagationpolicy",
               policy.cluster_propagation_policy_schema, short_names=("cpp",), columns=_POLICY_COLUMNS),
    Definition(kinds.OVERRIDE_POLICIES, "overridepolicy", policy.override_policy_schema, short_names=("op",)),
    Definition(kinds.CLUSTER_OVERRIDE_POLICIES, "clusteroverridepolicy", policy.cluster_override_policy_schema,
               short_names=("cop",)),
    Definition(kinds.RESOURCE_BINDINGS, "resourcebinding", work.resource_binding_schema, short_names=("rb",),
               status=True, columns=_BINDING_COLUMNS),
    Definition(kinds.CLUSTER_RESOURCE_BINDINGS, "clusterresourcebinding", work.cluster_resource_binding_schema,
               short_names=("crb",), status=True, columns=_BINDING_COLUMNS),
    Definition(kinds.WORKS, "work", work.work_schema, short_names=("wk",), status=True, columns=(
        Column("WORKLOAD-KIND", ".spec.workload.manifests[*].kind"),
        Column("APPLIED", '.status.conditions[?(@.type=="Applied")].status'), AGE)),
)


def manifests(definitions: Iterable[Definition] = DEFINITIONS) -> list[Obj]:
    """The CRDs of ``definitions`` (by default every Karmada kind), fresh copies."""
    return [d.manifest() for d in definitions]


async def install(client: Client, *, timeout: float = 30, definitions: Iterable[Definition] = DEFINITIONS) -> None:
    """Create or update every Karmada CRD, then wait until each is Established and in discovery.

    Safe to call at every start: a definition whose spec is unchanged is left alone, a
    changed one (a newer Atoll) is replaced in place, keeping the objects already stored.
    Raises ``Timeout`` naming the CRDs that are not served in time (a name taken by
    another CRD keeps one from being Established). ``definitions`` lets other API
    families (the MCS API, for one) be installed the same way.
    """
    started = time.monotonic()
    wanted = manifests(definitions)
    try:
        async with asyncio.timeout(timeout):
            # gather, not a TaskGroup: every write finishes (or fails) on its own, and the
            # caller gets the first APIError itself rather than an ExceptionGroup.
            results = await asyncio.gather(*(_create_or_update(client, crd) for crd in wanted),
                                           return_exceptions=True)
    except TimeoutError as exc:
        raise Timeout(f"writing the Karmada CRDs took longer than {timeout:g}s") from exc
    for result in results:
        if isinstance(result, BaseException):
            raise result
    await _wait_served(client, wanted, deadline=started + timeout)
    client.invalidate_discovery()
    logger.info("Karmada API served: %d CRDs in %.2fs", len(wanted), time.monotonic() - started)


async def _create_or_update(client: Client, desired: Obj, *, attempts: int = 5) -> None:
    name = desired["metadata"]["name"]
    want_hash = desired["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    for _ in range(attempts):
        try:
            current = await client.get(CRDS, name)
        except NotFound:
            try:
                await client.create(CRDS, desired)
                logger.info("created CRD %s", name)
                return
            except AlreadyExists:
                continue  # another federation process won the race: compare with what it wrote
        meta = current.get("metadata") or {}
        if (meta.get("annotations") or {}).get(SPEC_HASH_ANNOTATION) == want_hash:
            return
        updated = copy.deepcopy(current)
        updated["spec"] = desired["spec"]
        updated_meta = updated["metadata"]
        updated_meta["labels"] = {**(meta.get("labels") or {}), **desired["metadata"]["labels"]}
        updated_meta["annotations"] = {**(meta.get("annotations") or {}), SPEC_HASH_ANNOTATION: want_hash}
        try:
            await client.replace(CRDS, updated)
            logger.info("updated CRD %s", name)
            return
        except Conflict:
            continue
    raise Conflict(f"CustomResourceDefinition {name} kept changing while the federation updated it")


def _established(crd: Obj) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])


async def _served_plurals(client: Client, api_version: str) -> set[str]:
    try:
        doc = await client.request("GET", f"/apis/{api_version}")
    except NotFound:
        return set()
    return {r.get("name", "") for r in (doc or {}).get("resources") or []}


async def _wait_served(client: Client, wanted: list[Obj], *, deadline: float, interval: float = 0.1) -> None:
    """Poll until every CRD is Established and its plural is listed in discovery."""
    pending = {crd["metadata"]["name"]: crd for crd in wanted}
    while True:
        for name, crd in list(pending.items()):
            try:
                current = await client.get(CRDS, name)
            except NotFound:
                continue
            if not _established(current):
                continue
            spec = crd["spec"]
            api_version = f"{spec['group']}/{spec['versions'][0]['name']}"
            if spec["names"]["plural"] in await _served_plurals(client, api_version):
                del pending[name]
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise Timeout(f"Karmada CRDs not served in time: {', '.join(sorted(pending))}")
        await asyncio.sleep(interval)


__all__ = ["CRDS", "DEFINITIONS", "Column", "Definition", "install", "manifests"]
