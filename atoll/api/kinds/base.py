"""The strategy shape every kind shares, and the generic custom-resource strategy.

A strategy is kube's ``RESTCreateStrategy``/``RESTUpdateStrategy`` over plain dicts: the
API server hands it the decoded object (a copy it owns; every method mutates in place)
and asks it to default, prepare and validate. The order kube-apiserver uses, which
:meth:`Strategy.before_create` and friends run in one call:

create
    ``default`` (kube defaults on decode) -> drop deletion fields, fix the namespace ->
    fill ``uid``/``creationTimestamp``/name from ``generateName`` -> ``prepare_for_create``
    -> ``meta.validate_object_meta`` + ``validate``.
update (main endpoint)
    ``default`` -> server-owned metadata copied from the old object ->
    ``prepare_for_update`` (status kept from the old object when the kind has a status
    subresource) -> ``generation`` + 1 if ``spec_changed`` ->
    ``meta.validate_object_meta_update`` + ``validate_update``.
update (``/status``)
    server-owned metadata copied -> ``prepare_for_status_update`` (everything but
    status comes from the old object) -> ``validate_status_update``.

``validate`` checks the name with the kind's rule and everything outside
``metadata``; the generic ObjectMeta rules live in :mod:`atoll.api.meta`, so
``meta.validate_object_meta(obj, namespaced=...) + strategy.validate(obj)`` is the
complete create-time validation, with no cause repeated.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from atoll.api import meta
from atoll.api.meta import Cause
from atoll.api.resources import ResourceInfo

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

_SERVER_OWNED_METADATA = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                          "generation", "namespace", "name")
_NOT_SPEC = frozenset({"apiVersion", "kind", "metadata", "status"})


def child(obj: Obj, key: str) -> Obj:
    """``obj[key]`` as a dict, created when missing (``setdefault`` that also fixes non-dicts)."""
    value = obj.get(key)
    if not isinstance(value, dict):
        value = {}
        obj[key] = value
    return value


def md_of(obj: Obj) -> Obj:
    return child(obj, "metadata")


def dict_at(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def list_at(obj: Mapping[str, Any], key: str) -> list[Any]:
    value = obj.get(key)
    return value if isinstance(value, list) else []


def set_default(obj: Obj, key: str, value: Any) -> None:
    """Set ``key`` when it is missing or null (kube's ``if x == nil { x = default }``)."""
    if obj.get(key) is None:
        obj[key] = copy.deepcopy(value)


def set_default_str(obj: Obj, key: str, value: str) -> None:
    """Set a string field when missing or empty (kube's ``if x == "" { x = default }``)."""
    if not obj.get(key):
        obj[key] = value


def copy_key(dst: Obj, src: Mapping[str, Any], key: str) -> None:
    """``dst[key] = src[key]``, removing the key when ``src`` has none."""
    if key in src:
        dst[key] = copy.deepcopy(src[key])
    else:
        dst.pop(key, None)


def spec_part(obj: Mapping[str, Any], *, include_status: bool = False) -> dict[str, Any]:
    """Everything outside metadata (and status), for generation decisions."""
    skip = {"apiVersion", "kind", "metadata"} if include_status else _NOT_SPEC
    return {k: v for k, v in obj.items() if k not in skip}


class Strategy:
    """Per-kind behaviour the API server calls; the defaults fit a plain kind without spec rules."""

    tracks_generation: ClassVar[bool] = False
    """kube sets ``generation`` to 1 on create and bumps it on spec changes for this kind."""
    kube_finalizers: ClassVar[bool] = True
    """Built-in kinds: unprefixed finalizers must be standard ones (custom resources: False)."""
    status_update_keeps_metadata: ClassVar[tuple[str, ...]] = ()
    """Metadata fields ``/status`` may not change for this kind (kube resets them to the old values)."""

    def __init__(self, info: ResourceInfo) -> None:
        self.info = info

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.info.group_resource})"

    # -- facts --------------------------------------------------------------------------
    @property
    def has_status_subresource(self) -> bool:
        return "status" in self.info.subresources

    @property
    def namespaced(self) -> bool:
        return self.info.namespaced

    # -- defaulting and preparation -------------------------------------------------------
    def default(self, obj: Obj) -> None:
        """kube's defaulting (``SetDefaults_*``), applied to every create and update body."""

    def initial_status(self, obj: Obj) -> Obj | None:
        """The status a new object starts with (None: drop it). Only used with a status subresource."""
        return {}

    def prepare_for_create(self, obj: Obj) -> None:
        """Reset what a create may not set: status (kinds with /status); generation = 1 if tracked."""
        if self.has_status_subresource:
            status = self.initial_status(obj)
            if status is None:
                obj.pop("status", None)
            else:
                obj["status"] = status
        if self.tracks_generation:
            md_of(obj)["generation"] = 1

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """Main endpoint: a kind with a status subresource keeps its old status."""
        if self.has_status_subresource:
            copy_key(new, old, "status")

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """``/status``: only status changes; spec and the kind's protected metadata come from ``old``."""
        for key in set(new) | set(old):
            if key not in ("status", "metadata", "apiVersion", "kind"):
                copy_key(new, old, key)
        nmd, omd = md_of(new), dict_at(old, "metadata")
        for key in self.status_update_keeps_metadata:
            copy_key(nmd, omd, key)

    def spec_changed(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
        """Whether kube bumps ``metadata.generation`` for this update (False for untracked kinds)."""
        if not self.tracks_generation:
            return False
        return spec_part(new) != spec_part(old)

    # -- validation ----------------------------------------------------------------------------
    def name_rule(self, name: str, prefix: bool) -> list[str]:
        """The kind's name rule (kube's ``ValidateXName``): DNS subdomain unless overridden."""
        return meta.name_is_dns_subdomain(name, prefix)

    def validate_name(self, obj: Mapping[str, Any]) -> list[Cause]:
        md = dict_at(obj, "metadata")
        causes: list[Cause] = []
        fn = self.name_rule
        if md.get("generateName"):
            causes += [meta.invalid_value("metadata.generateName", md["generateName"], m)
                       for m in fn(str(md["generateName"]), True)]
        if md.get("name"):
            causes += [meta.invalid_value("metadata.name", md["name"], m) for m in fn(str(md["name"]), False)]
        return causes

    def validate(self, obj: Obj) -> list[Cause]:
        """Create-time checks: the name (kind rule) and everything outside metadata."""
        return self.validate_name(obj) + self.validate_spec(obj)

    def validate_spec(self, obj: Obj) -> list[Cause]:
        """The kind's checks of everything outside metadata (override per kind)."""
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        """Update checks beyond ObjectMeta: the new object's spec plus the kind's immutable fields."""
        return self.validate_spec(new) + self.validate_spec_update(new, old)

    def validate_spec_update(self, new: Obj, old: Obj) -> list[Cause]:
        return []

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        return []

    # -- whole sequences ---------------------------------------------------------------------
    def before_create(self, obj: Obj, *, namespace: str | None = None, now: str | None = None) -> list[Cause]:
        """Run kube-apiserver's create sequence on ``obj``; returns the causes (empty: valid)."""
        self.default(obj)
        md = md_of(obj)
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "selfLink"):
            md.pop(key, None)
        if self.namespaced:
            if namespace:
                md["namespace"] = namespace
        else:
            md.pop("namespace", None)
        md["uid"] = meta.new_uid()
        md["creationTimestamp"] = now or meta.now_rfc3339()
        if not md.get("name") and md.get("generateName"):
            md["name"] = meta.generate_name(str(md["generateName"]))
        self.prepare_for_create(obj)
        return (meta.validate_object_meta(obj, namespaced=self.namespaced, kube_finalizers=self.kube_finalizers)
                + self.validate(obj))

    def _keep_server_metadata(self, new: Obj, old: Obj) -> None:
        nmd, omd = md_of(new), dict_at(old, "metadata")
        for key in _SERVER_OWNED_METADATA:
            if key in ("uid", "name", "namespace") and nmd.get(key):
                continue  # a changed value is reported by validation, as kube does
            copy_key(nmd, omd, key)

    def before_update(self, new: Obj, old: Obj) -> list[Cause]:
        """kube-apiserver's update sequence for the main endpoint; bumps generation when due."""
        self.default(new)
        self._keep_server_metadata(new, old)
        self.prepare_for_update(new, old)
        if self.spec_changed(new, old):
            md_of(new)["generation"] = int(dict_at(old, "metadata").get("generation") or 0) + 1
        return (meta.validate_object_meta_update(new, old, namespaced=self.namespaced,
                                                 kube_finalizers=self.kube_finalizers)
                + self.validate_update(new, old))

    def before_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        """kube-apiserver's sequence for ``PUT/PATCH .../status``."""
        self._keep_server_metadata(new, old)
        self.prepare_for_status_update(new, old)
        return (meta.validate_object_meta_update(new, old, namespaced=self.namespaced,
                                                 kube_finalizers=self.kube_finalizers)
                + self.validate_status_update(new, old))


class PathSegmentNameStrategy(Strategy):
    """Kinds kube names with only the URL-safety rule (RBAC kinds, core Events)."""

    def name_rule(self, name: str, prefix: bool) -> list[str]:
        return meta.validate_path_segment_name(name, prefix)


class CustomResourceStrategy(Strategy):
    """Objects of a CustomResourceDefinition (``customresource.strategy`` in kube).

    * names are DNS subdomains; finalizers only need to be qualified names;
    * ``generation`` is 1 on create and grows on any change outside ``metadata`` (and
      outside ``status`` when the CRD enables the status subresource);
    * with the status subresource: a create drops ``status``, the main endpoint keeps the
      old one, and ``/status`` changes nothing but ``status``.
    """

    tracks_generation = True
    kube_finalizers = False

    def initial_status(self, obj: Obj) -> Obj | None:
        return None

    def spec_changed(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
        include_status = not self.has_status_subresource
        return spec_part(new, include_status=include_status) != spec_part(old, include_status=include_status)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """Everything comes from ``old`` except ``status`` (and the new managedFields)."""
        status_present = "status" in new
        status = new.get("status")
        managed = dict_at(new, "metadata").get("managedFields")
        has_managed = "managedFields" in dict_at(new, "metadata")
        new.clear()
        new.update(copy.deepcopy(old))
        if status_present:
            new["status"] = status
        else:
            new.pop("status", None)
        if has_managed:
            md_of(new)["managedFields"] = managed
        else:
            md_of(new).pop("managedFields", None)


class ReviewStrategy(Strategy):
    """Create-only review kinds (SubjectAccessReview, TokenReview...): never stored, no name needed."""

    def validate_name(self, obj: Mapping[str, Any]) -> list[Cause]:
        return []

    def before_create(self, obj: Obj, *, namespace: str | None = None, now: str | None = None) -> list[Cause]:
        """Reviews are answered, not stored: only defaulting and the kind's own checks apply."""
        self.default(obj)
        if self.namespaced and namespace:
            md_of(obj)["namespace"] = namespace
        return self.validate(obj)


__all__ = [
    "CustomResourceStrategy",
    "Obj",
    "PathSegmentNameStrategy",
    "ReviewStrategy",
    "Strategy",
    "child",
    "copy_key",
    "dict_at",
    "list_at",
    "md_of",
    "set_default",
    "set_default_str",
    "spec_part",
]
