"""What the API server serves: one :class:`ResourceInfo` per group/version/resource.

The registry is the single source for discovery, routing, storage keys and OpenAPI.
Built-in kinds are registered at start-up (see ``atoll.api.builtin``); every established
CustomResourceDefinition adds its versions at run time and removes them when deleted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

DEFAULT_VERBS: tuple[str, ...] = (
    "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch",
)


@dataclass(frozen=True, slots=True)
class ScalePaths:
    """Where a kind keeps what ``/scale`` exposes (dotted JSON paths, as in a CRD)."""

    spec_replicas: str = ".spec.replicas"
    status_replicas: str = ".status.replicas"
    label_selector: str | None = ".status.selector"


@dataclass(frozen=True, slots=True)
class PrinterColumn:
    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    format: str = ""


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = DEFAULT_VERBS
    subresources: tuple[str, ...] = ()
    """Subresource names served: ``status``, ``scale``, ``binding``, ``log``, ``eviction``..."""
    scale: ScalePaths | None = None
    printer_columns: tuple[PrinterColumn, ...] = ()
    """Extra Table columns (CRDs: ``additionalPrinterColumns``); built-ins get theirs elsewhere."""
    selectable_fields: tuple[str, ...] = ()
    """Field paths (``.spec.x``) usable in field selectors besides metadata.name/namespace."""
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    """For custom resources: the version's ``openAPIV3Schema``."""
    storage_version: bool = True
    served: bool = True
    custom: bool = False
    """True for kinds defined by a CustomResourceDefinition."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def group_resource(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def key_prefix(self, namespace: str | None = None) -> str:
        """Storage key prefix; every version of one group/resource shares the same keys."""
        base = f"/registry/{self.group or 'core'}/{self.plural}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"/registry/{self.group or 'core'}/{self.plural}/{namespace}/{name}"
        return f"/registry/{self.group or 'core'}/{self.plural}/{name}"


class Registry:
    """Thread-safe map of served resources, in registration order (discovery order)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_gvr: dict[tuple[str, str, str], ResourceInfo] = {}
        self._group_order: list[str] = []
        self.generation = 0
        """Bumped on every change, so discovery/OpenAPI caches know when to rebuild."""

    def add(self, info: ResourceInfo) -> None:
        with self._lock:
            self._by_gvr[(info.group, info.version, info.plural)] = info
            if info.group not in self._group_order:
                self._group_order.append(info.group)
            self.generation += 1

    def remove(self, group: str, version: str, plural: str) -> None:
        with self._lock:
            self._by_gvr.pop((group, version, plural), None)
            if not any(g == group for (g, _, _) in self._by_gvr):
                self._group_order = [g for g in self._group_order if g != group]
            self.generation += 1

    def get(self, group: str, version: str, plural: str) -> ResourceInfo | None:
        return self._by_gvr.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> ResourceInfo | None:
        for info in list(self._by_gvr.values()):
            if info.group == group and info.version == version and info.kind == kind:
                return info
        return None

    def by_api_version_kind(self, api_version: str, kind: str) -> ResourceInfo | None:
        group, _, version = api_version.rpartition("/")
        return self.by_kind(group, version, kind)

    def __iter__(self) -> Iterator[ResourceInfo]:
        return iter(list(self._by_gvr.values()))

    def groups(self) -> list[tuple[str, list[str]]]:
        """``(group, [versions, preferred first])`` in registration order; "" is the core group."""
        out: list[tuple[str, list[str]]] = []
        infos = list(self._by_gvr.values())
        for group in list(self._group_order):
            versions: list[str] = []
            for info in infos:
                if info.group == group and info.version not in versions:
                    versions.append(info.version)
            if versions:
                out.append((group, sort_versions(versions)))
        return out

    def resources(self, group: str, version: str) -> list[ResourceInfo]:
        return [i for i in list(self._by_gvr.values()) if i.group == group and i.version == version]

    def versions_of(self, group: str, plural: str) -> list[ResourceInfo]:
        return [i for i in list(self._by_gvr.values()) if i.group == group and i.plural == plural]


def version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first (kube-aggregator rules)."""
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (0, 0, 0)
    major = int(m.group(1))
    stage = {"alpha": 1, "beta": 2, None: 3}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (stage, major, minor)


def sort_versions(versions: list[str]) -> list[str]:
    return sorted(versions, key=lambda v: (version_priority(v), v), reverse=True)
