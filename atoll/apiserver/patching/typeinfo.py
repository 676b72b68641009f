"""What shape a field has: the seam between patching and the schemas.

Every patch flavour needs to know, at a given field, whether it is a list and how
its items are identified, or whether a map is one value or many:

* strategic merge patch reads ``x-kubernetes-patch-strategy`` (``merge``,
  ``replace``, ``retainKeys``, or ``merge,retainKeys``) and
  ``x-kubernetes-patch-merge-key`` (kube-apiserver reads the same markers from the
  Go struct tags; the published schemas mirror them);
* server-side apply reads ``x-kubernetes-list-type`` (``atomic``/``set``/``map``),
  ``x-kubernetes-list-map-keys`` and ``x-kubernetes-map-type`` (``granular``/
  ``atomic``). A list without a list type falls back to its patch strategy (merge
  with a key is a map, merge without one a set) and is otherwise atomic, as
  kube-openapi's ``schemaconv`` decides. Custom resources carry no patch
  strategies, so their unmarked lists are atomic.

A :class:`TypeNode` answers those questions for one field; a :class:`TypeResolver`
hands out the node of a kind's root. Built-in kinds read :mod:`atoll.api.schemas`
(following ``$ref``), custom resources their CRD's ``openAPIV3Schema``; kinds without
a known schema get a *deduced* type (maps granular, lists atomic), which is what
kube-apiserver uses for ``x-kubernetes-preserve-unknown-fields``.

Go detail emulated for built-ins: struct fields of *value* (non-pointer) type, such
as ``spec``, ``spec.template`` or a container's ``resources``, always exist in Go once
their parent exists (as do slices without ``omitempty``, as ``null``), so kube never
records them as added or removed in ``managedFields``. :attr:`TypeNode.implicit_fields`
maps them to the empty value Go has for them (a table, since the schemas do not say
which Go fields are pointers).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol

from atoll.api import schemas

logger = logging.getLogger(__name__)

Shape = Literal["map", "list", "scalar", "any"]
ListType = Literal["atomic", "set", "map"]
MapType = Literal["granular", "atomic"]

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

_SCALAR_TYPES = frozenset({"string", "integer", "number", "boolean"})

# Go struct fields of value (non-pointer) type, per definition. Top-level kinds'
# metadata/spec/status are added by rule (see _implicit_fields).
_VALUE_STRUCT_FIELDS: dict[str, frozenset[str]] = {
    "io.k8s.api.core.v1.PodTemplateSpec": frozenset({"metadata", "spec"}),
    "io.k8s.api.batch.v1.JobTemplateSpec": frozenset({"metadata", "spec"}),
    "io.k8s.api.apps.v1.DeploymentSpec": frozenset({"template", "strategy"}),
    "io.k8s.api.apps.v1.ReplicaSetSpec": frozenset({"template"}),
    "io.k8s.api.apps.v1.StatefulSetSpec": frozenset({"template", "updateStrategy"}),
    "io.k8s.api.apps.v1.DaemonSetSpec": frozenset({"template", "updateStrategy"}),
    "io.k8s.api.batch.v1.JobSpec": frozenset({"template"}),
    "io.k8s.api.batch.v1.CronJobSpec": frozenset({"jobTemplate"}),
    "io.k8s.api.core.v1.PodTemplate": frozenset({"template"}),
    "io.k8s.api.core.v1.Container": frozenset({"resources"}),
    "io.k8s.api.core.v1.EphemeralContainer": frozenset({"resources"}),
    "io.k8s.api.core.v1.ContainerStatus": frozenset({"state", "lastState"}),
    "io.k8s.api.core.v1.ServiceStatus": frozenset({"loadBalancer"}),
    "io.k8s.api.networking.v1.IngressStatus": frozenset({"loadBalancer"}),
    "io.k8s.api.core.v1.NodeStatus": frozenset({"daemonEndpoints", "nodeInfo"}),
    "io.k8s.api.core.v1.NodeDaemonEndpoints": frozenset({"kubeletEndpoint"}),
    "io.k8s.api.core.v1.PersistentVolumeClaimSpec": frozenset({"resources"}),
    "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec": frozenset({"scaleTargetRef"}),
    "io.k8s.api.autoscaling.v1.HorizontalPodAutoscalerSpec": frozenset({"scaleTargetRef"}),
    "io.k8s.api.rbac.v1.RoleBinding": frozenset({"roleRef"}),
    "io.k8s.api.rbac.v1.ClusterRoleBinding": frozenset({"roleRef"}),
    "io.k8s.api.core.v1.Event": frozenset({"involvedObject", "source"}),
    "io.k8s.api.events.v1.Event": frozenset({"regarding", "deprecatedSource"}),
    "io.k8s.api.core.v1.Binding": frozenset({"target"}),
    "io.k8s.api.discovery.v1.Endpoint": frozenset({"conditions"}),
    "io.k8s.api.networking.v1.NetworkPolicySpec": frozenset({"podSelector"}),
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionSpec":
        frozenset({"names"}),
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus":
        frozenset({"acceptedNames"}),
}

# Go slice fields without ``omitempty``: an empty Go object serialises them as ``null``.
_NULL_LIST_FIELDS: dict[str, frozenset[str]] = {
    "io.k8s.api.core.v1.PodSpec": frozenset({"containers"}),
    "io.k8s.api.rbac.v1.Role": frozenset({"rules"}),
    "io.k8s.api.rbac.v1.ClusterRole": frozenset({"rules"}),
    "io.k8s.api.discovery.v1.EndpointSlice": frozenset({"endpoints", "ports"}),
}

# OpenAPI defaults kube-apiserver publishes for list-map key fields; the schemas that
# kubernetes-validate ships carry no defaults, and structured-merge-diff uses them to
# key items that omit the field.
_KEY_DEFAULTS: dict[tuple[str, str], Any] = {
    ("io.k8s.api.core.v1.ContainerPort", "protocol"): "TCP",
    ("io.k8s.api.core.v1.ServicePort", "protocol"): "TCP",
    ("io.k8s.api.core.v1.EndpointPort", "protocol"): "TCP",
    ("io.k8s.api.discovery.v1.EndpointPort", "protocol"): "TCP",
}


def _ref_name(schema: Mapping[str, Any]) -> str | None:
    ref = schema.get("$ref")
    if ref is None and len(schema.get("allOf") or ()) == 1:
        ref = schema["allOf"][0].get("$ref")
    if isinstance(ref, str) and ref.startswith(schemas.REF_PREFIX):
        return ref[len(schemas.REF_PREFIX):]
    return None


def _schema_type(schema: Mapping[str, Any]) -> str | None:
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), None)
    return t if isinstance(t, str) else None


class TypeNode:
    """The type of one field: built from a JSON schema, or deduced from the value.

    ``shape`` is ``map``, ``list``, ``scalar`` or ``any`` (no declared type: the value
    decides; maps are then granular and lists atomic).
    """

    __slots__ = ("_children", "_items", "_props", "_schema", "atomic_any", "custom", "defname",
                 "ext", "implicit_fields", "list_map_keys", "list_type", "map_type", "patch_merge_key",
                 "patch_strategies", "preserve_unknown", "root", "shape")

    def __init__(self, schema: Mapping[str, Any] | None, *, custom: bool, preserve_unknown: bool = False,
                 atomic_any: bool = False, root: bool = False) -> None:
        ext: Mapping[str, Any] = schema or {}
        self.ext = ext
        self.custom = custom
        self.root = root
        self.atomic_any = atomic_any
        self.defname = _ref_name(ext) if not custom else None
        resolved: Mapping[str, Any] = schemas.resolve(dict(ext)) if self.defname else ext
        self._schema = resolved
        self.preserve_unknown = preserve_unknown or resolved.get("x-kubernetes-preserve-unknown-fields") is True
        props = resolved.get("properties")
        self._props: Mapping[str, Any] = props if isinstance(props, Mapping) else {}
        self._children: dict[str, TypeNode | None] = {}
        self._items: TypeNode | None = None
        t = _schema_type(resolved)
        shape: Shape
        if resolved.get("x-kubernetes-int-or-string") is True:
            shape = "any"
        elif t == "object":
            shape = "map"
        elif t == "array":
            shape = "list"
        elif t in _SCALAR_TYPES:
            shape = "scalar"
        elif "properties" in resolved or "additionalProperties" in resolved:
            shape = "map"
        elif "items" in resolved:
            shape = "list"
        else:
            shape = "any"
        self.shape: Shape = shape
        strategy = ext.get("x-kubernetes-patch-strategy") or resolved.get("x-kubernetes-patch-strategy") or ""
        self.patch_strategies: tuple[str, ...] = tuple(s.strip() for s in str(strategy).split(",") if s.strip())
        key = ext.get("x-kubernetes-patch-merge-key") or resolved.get("x-kubernetes-patch-merge-key")
        self.patch_merge_key: str | None = str(key) if key else None
        map_type = ext.get("x-kubernetes-map-type") or resolved.get("x-kubernetes-map-type")
        self.map_type: MapType = "atomic" if (map_type == "atomic" or atomic_any) else "granular"
        self.list_type, self.list_map_keys = self._list_semantics(resolved)
        self.implicit_fields = self._implicit_fields(resolved)

    def _list_semantics(self, s: Mapping[str, Any]) -> tuple[ListType, tuple[str, ...]]:
        if self.atomic_any or self.shape not in ("list", "any"):
            return "atomic", ()
        lt = s.get("x-kubernetes-list-type")
        if lt in ("atomic", "set"):
            return lt, ()
        if lt == "map":
            keys = s.get("x-kubernetes-list-map-keys") or ()
            return "map", tuple(str(k) for k in keys)
        if lt is not None:
            logger.warning("unknown x-kubernetes-list-type %r; treating the list as atomic", lt)
            return "atomic", ()
        if "merge" in self.patch_strategies:
            return ("map", (self.patch_merge_key,)) if self.patch_merge_key else ("set", ())
        return "atomic", ()

    def _implicit_fields(self, s: Mapping[str, Any]) -> Mapping[str, Any]:
        if self.custom or self.shape != "map" or not self.defname:
            return {}
        structs = _VALUE_STRUCT_FIELDS.get(self.defname, frozenset())
        if s.get("x-kubernetes-group-version-kind"):
            structs = structs | (frozenset({"metadata", "spec", "status"}) & frozenset(self._props))
        fields: dict[str, Any] = dict.fromkeys(_NULL_LIST_FIELDS.get(self.defname, ()))
        fields.update((name, {}) for name in structs)
        return fields

    # -- navigation -------------------------------------------------------------------------

    def declares(self, name: str) -> bool:
        """Whether ``name`` is a declared (struct) field, as opposed to a map key."""
        if name in self._props:
            return True
        return self.root and name in ("apiVersion", "kind", "metadata")

    def child(self, name: str) -> TypeNode | None:
        """The type of member ``name`` of a map, or None if the schema does not allow it."""
        if name in self._children:
            return self._children[name]
        node = self._make_child(name)
        self._children[name] = node
        return node

    def _make_child(self, name: str) -> TypeNode | None:
        embedded = self.root or self._schema.get("x-kubernetes-embedded-resource") is True
        if embedded and name == "metadata" and (self.custom or name not in self._props):
            return TypeNode({"$ref": schemas.REF_PREFIX + OBJECT_META}, custom=False)
        if self.shape == "any":
            return TypeNode(None, custom=self.custom, preserve_unknown=True, atomic_any=self.atomic_any)
        if self.shape != "map":
            return None
        if name in self._props:
            return TypeNode(self._props[name], custom=self.custom, preserve_unknown=self.preserve_unknown)
        if embedded and name in ("apiVersion", "kind"):
            return TypeNode({"type": "string"}, custom=self.custom)
        extra = self._schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            return TypeNode(extra, custom=self.custom, preserve_unknown=self.preserve_unknown)
        if extra is True or (extra is None and (self.preserve_unknown or not self._props)):
            return TypeNode(None, custom=self.custom, preserve_unknown=True, atomic_any=self.map_type == "atomic")
        return None

    @property
    def items(self) -> TypeNode:
        """The type of a list's items (deduced and atomic if the schema does not say)."""
        if self._items is None:
            sub = self._schema.get("items")
            if self.shape == "list" and isinstance(sub, Mapping):
                self._items = TypeNode(sub, custom=self.custom, preserve_unknown=self.preserve_unknown)
            else:
                self._items = TypeNode(None, custom=self.custom, preserve_unknown=True, atomic_any=True)
        return self._items

    def key_default(self, name: str) -> Any:
        """The default of a list-map key field of this (item) type, or None."""
        prop = self._props.get(name)
        if isinstance(prop, Mapping) and "default" in prop:
            return prop["default"]
        return _KEY_DEFAULTS.get((self.defname or "", name))

    def shape_of(self, value: Any) -> Shape:
        """The shape to treat ``value`` with: declared, or deduced for untyped fields."""
        if self.shape != "any":
            return self.shape
        if isinstance(value, dict):
            return "map"
        if isinstance(value, list):
            return "list"
        return "scalar"

    def __repr__(self) -> str:
        return (f"TypeNode(shape={self.shape}, def={self.defname}, list_type={self.list_type}, "
                f"keys={self.list_map_keys}, map_type={self.map_type}, strategy={self.patch_strategies}, "
                f"merge_key={self.patch_merge_key})")


UNTYPED = TypeNode(None, custom=False, preserve_unknown=True)
"""A field nothing is known about: maps granular, lists atomic, no patch strategy."""


class TypeResolver(Protocol):
    """The schema of one kind, as patching needs it."""

    @property
    def group(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def custom(self) -> bool:
        """True for custom resources (no strategic merge patch)."""
        ...

    @property
    def root(self) -> TypeNode: ...

    def lookup(self, path: Iterable[str | int]) -> TypeNode | None: ...


class SchemaResolver:
    """A :class:`TypeResolver` over one JSON schema (built-in definition or CRD schema)."""

    def __init__(self, schema: Mapping[str, Any] | None, *, group: str = "", version: str = "", kind: str = "",
                 custom: bool = False) -> None:
        self.group = group
        self.version = version
        self.kind = kind
        self.custom = custom
        self.root = TypeNode(schema, custom=custom, preserve_unknown=schema is None, root=True)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def lookup(self, path: Iterable[str | int]) -> TypeNode | None:
        """The node at ``path``: strings are map members, integers (any) step into list items."""
        node: TypeNode | None = self.root
        for part in path:
            if node is None:
                return None
            node = node.items if isinstance(part, int) else node.child(part)
        return node

    def __repr__(self) -> str:
        return f"SchemaResolver({self.api_version}, {self.kind}, custom={self.custom})"


@functools.lru_cache(maxsize=512)
def builtin_resolver(group: str, version: str, kind: str) -> SchemaResolver:
    """The resolver of a built-in kind; kinds Kubernetes does not define get an untyped one."""
    name = schemas.definition_name(group, version, kind)
    schema = {"$ref": schemas.REF_PREFIX + name} if name else None
    return SchemaResolver(schema, group=group, version=version, kind=kind, custom=False)


def custom_resolver(schema: Mapping[str, Any] | None, *, group: str, version: str, kind: str) -> SchemaResolver:
    """The resolver of a custom resource version from its ``openAPIV3Schema``."""
    return SchemaResolver(schema, group=group, version=version, kind=kind, custom=True)


class _ResourceLike(Protocol):
    @property
    def group(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def custom(self) -> bool: ...

    @property
    def schema(self) -> dict[str, Any] | None: ...


def resolver_for(info: _ResourceLike) -> SchemaResolver:
    """The resolver for a served resource (a :class:`atoll.api.resources.ResourceInfo`)."""
    if info.custom:
        return custom_resolver(info.schema, group=info.group, version=info.version, kind=info.kind)
    return builtin_resolver(info.group, info.version, info.kind)


def resolver_for_object(obj: Mapping[str, Any]) -> SchemaResolver:
    """The built-in resolver named by an object's ``apiVersion``/``kind`` (untyped if unknown)."""
    group, _, version = str(obj.get("apiVersion") or "").rpartition("/")
    return builtin_resolver(group, version, str(obj.get("kind") or ""))
