"""Server-side apply and ``managedFields``, as kube-apiserver's field manager does them.

Every write records who set which field. ``metadata.managedFields`` holds one entry per
manager identity, ``(manager, operation, apiVersion, subresource)`` for Update and
``(manager, operation, subresource)`` for Apply, each with the fields it owns in FieldsV1
form and the time it last changed the object.

* :func:`update_managed_fields` runs on create, PUT and non-apply PATCH: the fields the
  write added or changed become its manager's, and leave every other manager (changes
  by an update never conflict); removed fields leave everyone.
* :func:`apply` merges an applied configuration into the live object: the manager then
  owns exactly the configuration's fields; fields it applied before and omits now are
  removed unless another manager owns them; changing a field another manager owns is a
  409 ``Conflict`` unless ``force`` takes the field over.

The pipeline mirrors k8s.io/apimachinery's managedfields (strip of metadata fields,
``before-first-apply`` for objects without managed fields, at most ten Update managers
with the oldest folded into ``ancient-changes``, last-applied-configuration interplay
for the ``kubectl`` manager) on top of structured-merge-diff's updater semantics.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from atoll.api.errors import BadRequest, Conflict, InternalError, Invalid
from atoll.apiserver.patching.fieldpaths import (
    FieldSet,
    Path,
    filter_out,
    from_fields_v1,
    iterate_sorted,
    path_string,
    to_fields_v1,
)
from atoll.apiserver.patching.structured import (
    TypedValueError,
    compare,
    ensure_named_fields,
    merge,
    remove_items,
    to_field_set,
    validate,
)
from atoll.apiserver.patching.typeinfo import TypeNode, TypeResolver, resolver_for_object
from atoll.apiserver.patching.values import deep_copy, drop_nulls, go_json, go_quote, json_equal

logger = logging.getLogger(__name__)

LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
MAX_UPDATE_MANAGERS = 10
ANCIENT_CHANGES = "ancient-changes"
BEFORE_FIRST_APPLY = "before-first-apply"
FIELD_MANAGER_MAX_LENGTH = 128
_ANNOTATIONS_MAX_BYTES = 256 * 1024

Operation = Literal["Apply", "Update"]


def _f(*names: str) -> Path:
    return tuple(("f", n) for n in names)


# Fields no manager ever owns (kube's stripMetaManager).
_STRIPPED: frozenset[Path] = frozenset({
    _f("apiVersion"), _f("kind"), _f("metadata"), _f("metadata", "name"), _f("metadata", "namespace"),
    _f("metadata", "creationTimestamp"), _f("metadata", "selfLink"), _f("metadata", "uid"),
    _f("metadata", "clusterName"), _f("metadata", "generation"), _f("metadata", "managedFields"),
    _f("metadata", "resourceVersion"),
})


@dataclass(frozen=True, slots=True)
class ManagerKey:
    """A manager identity; Apply identities carry no apiVersion."""

    manager: str
    operation: str
    api_version: str = ""
    subresource: str = ""

    def identifier(self) -> str:
        """kube's identifier: the entry's JSON without fields/time (sorts conflict messages)."""
        parts = [f'"manager":{go_json(self.manager)}', f'"operation":{go_json(self.operation)}']
        if self.api_version:
            parts.append(f'"apiVersion":{go_json(self.api_version)}')
        if self.subresource:
            parts.append(f'"subresource":{go_json(self.subresource)}')
        return "{" + ",".join(parts) + "}"

    def describe(self) -> str:
        """How kube-apiserver names the manager in a conflict."""
        text = go_quote(self.manager)
        if self.subresource:
            text += f" with subresource {go_quote(self.subresource)}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text


_CURRENT_OPERATION = ManagerKey("\x00current-operation", "Update")


@dataclass
class Managed:
    """Decoded managedFields: each identity's owned fields, apiVersion and time."""

    fields: dict[ManagerKey, FieldSet] = field(default_factory=dict)
    versions: dict[ManagerKey, str] = field(default_factory=dict)
    times: dict[ManagerKey, str | None] = field(default_factory=dict)

    def put(self, key: ManagerKey, fields: FieldSet, version: str) -> None:
        self.fields[key] = fields
        self.versions[key] = version

    def drop_empty(self) -> None:
        for key in [k for k, v in self.fields.items() if not v]:
            del self.fields[key]


class _Conflicts(Exception):
    def __init__(self, conflicts: dict[ManagerKey, FieldSet]) -> None:
        super().__init__(f"{sum(len(v) for v in conflicts.values())} conflict(s)")
        self.conflicts = conflicts


# -- managedFields encoding ------------------------------------------------------------------------

def decode_managed_fields(entries: Any) -> Managed:
    """Decode ``metadata.managedFields``; raises ValueError the way kube rejects an entry."""
    managed = Managed()
    if entries is None:
        return managed
    if not isinstance(entries, list):
        raise ValueError("managedFields must be a list")
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ValueError(f"managed fields entry {i} is not an object")
        operation = entry.get("operation")
        if operation not in ("Apply", "Update"):
            raise ValueError("operation must be `Apply` or `Update`")
        api_version = entry.get("apiVersion") or ""
        if not api_version:
            raise ValueError("apiVersion must not be empty")
        fields_type = entry.get("fieldsType") or ""
        if not fields_type:
            raise ValueError(f"missing fieldsType in managed fields entry {i}")
        if fields_type != "FieldsV1":
            raise ValueError(f"invalid fieldsType {fields_type!r} in managed fields entry {i}")
        key = ManagerKey(str(entry.get("manager") or ""), str(operation),
                         "" if operation == "Apply" else str(api_version), str(entry.get("subresource") or ""))
        managed.put(key, from_fields_v1(entry.get("fieldsV1") or {}), str(api_version))
        managed.times[key] = entry.get("time")
    return managed


def _seconds(ts: str | None) -> int:
    if not ts:
        return 0
    try:
        return int(datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def encode_managed_fields(managed: Managed) -> list[dict[str, Any]] | None:
    """The ``metadata.managedFields`` list, in kube-apiserver's order (None when nobody manages)."""
    if not managed.fields:
        return None
    entries: list[dict[str, Any]] = []
    for key, fields in managed.fields.items():
        entry: dict[str, Any] = {"manager": key.manager, "operation": key.operation,
                                 "apiVersion": managed.versions.get(key) or key.api_version}
        ts = managed.times.get(key)
        if ts:
            entry["time"] = ts
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = to_fields_v1(fields)
        if key.subresource:
            entry["subresource"] = key.subresource
        entries.append(entry)
    entries.sort(key=lambda e: (e["operation"], _seconds(e.get("time")), e["manager"], e["apiVersion"],
                                e.get("subresource", "")))
    return entries


def _is_reset(entries: Any) -> bool:
    if isinstance(entries, list):
        return not entries or (len(entries) == 1 and entries[0] == {})
    return False


# -- structured-merge-diff's updater ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Context:
    root: TypeNode
    version: str
    reset: tuple[Path, ...]
    now: str

    def keep(self, paths: FieldSet) -> FieldSet:
        return filter_out(paths, self.reset)


def _reconcile_others(ctx: _Context, live: Any, new: Any, managed: Managed, workflow: ManagerKey, *,
                      force: bool) -> tuple[FieldSet, FieldSet, FieldSet]:
    """Take changed fields away from the other managers (or refuse: conflicts)."""
    cmp = compare(ctx.root, live, new)
    added, modified, removed = ctx.keep(cmp.added), ctx.keep(cmp.modified), ctx.keep(cmp.removed)
    changed = added | modified
    conflicts: dict[ManagerKey, FieldSet] = {}
    for key, owned in managed.fields.items():
        if key == workflow:
            continue
        clash = owned & changed
        if clash:
            conflicts[key] = clash
    if conflicts and not force:
        raise _Conflicts(conflicts)
    for key, owned in list(managed.fields.items()):
        if key == workflow:
            continue
        managed.fields[key] = owned - conflicts.get(key, set()) - removed
    managed.drop_empty()
    return added, modified, removed


def _strip(managed: Managed, key: ManagerKey) -> None:
    owned = managed.fields.get(key)
    if owned is None:
        return
    owned = owned - _STRIPPED
    if owned:
        managed.fields[key] = owned
    else:
        del managed.fields[key]


def _update(ctx: _Context, live: Any, new: Any, managed: Managed, key: ManagerKey) -> None:
    """Record an Update by ``key`` that turned ``live`` into ``new``."""
    op = _CURRENT_OPERATION
    added, modified, removed = _reconcile_others(ctx, live, new, managed, op, force=True)
    owned = ctx.keep((managed.fields.get(op, set()) - removed) | modified | added)
    managed.put(op, owned, ctx.version)
    if not owned:
        del managed.fields[op]
    _strip(managed, op)
    if op in managed.fields:
        changed = managed.fields.pop(op)
        managed.put(key, changed | managed.fields.get(key, set()), ctx.version)
        managed.times[key] = ctx.now
    managed.versions.pop(op, None)
    _cap_update_managers(managed)


def _cap_update_managers(managed: Managed) -> None:
    updaters = [k for k in managed.fields if k.operation == "Update"]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return
    updaters.sort(key=lambda k: (_seconds(managed.times.get(k)), k.identifier()))
    first_by_version: dict[str, ManagerKey] = {}
    remaining = len(updaters)
    for key in updaters:
        if remaining <= MAX_UPDATE_MANAGERS:
            break
        version = managed.versions.get(key, key.api_version)
        bucket = ManagerKey(ANCIENT_CHANGES, "Update", version)
        first = first_by_version.get(version)
        if first is None:
            first_by_version[version] = key
            continue
        if key == bucket:
            continue
        if bucket not in managed.fields:
            managed.put(bucket, managed.fields.pop(first), version)
        managed.put(bucket, managed.fields.pop(key) | managed.fields[bucket], version)
        managed.times[bucket] = managed.times.get(key)
        remaining -= 1


def _prune(ctx: _Context, merged: dict[str, Any], managed: Managed, last: FieldSet | None) -> dict[str, Any]:
    """Remove what the applier applied last time, omits now, and nobody else owns."""
    if not last:
        return merged
    root = ctx.root

    def remove(paths: FieldSet) -> Any:
        out = remove_items(root, merged, paths)
        return out if isinstance(out, dict) else {}

    def named(paths: Iterable[Path]) -> FieldSet:
        return ensure_named_fields(root, paths)

    last_named = named(last)
    pruned = remove(last_named)
    owned: FieldSet = set().union(*managed.fields.values()) if managed.fields else set()
    merged_named = named(to_field_set(root, merged))
    pruned = remove(merged_named - (named(to_field_set(root, pruned)) | named(owned)))
    result = remove((merged_named - named(to_field_set(root, pruned))) & last_named)
    return result if isinstance(result, dict) else {}


def _smd_apply(ctx: _Context, live: dict[str, Any], config: dict[str, Any], managed: Managed,
               key: ManagerKey, *, force: bool) -> dict[str, Any] | None:
    """Merge, own the configuration's fields, prune, settle conflicts; None if nothing changed."""
    merged = merge(ctx.root, live, config)
    new = merged if isinstance(merged, dict) else {}
    last = managed.fields.get(key)
    managed.put(key, ctx.keep(to_field_set(ctx.root, config)), ctx.version)
    new = _prune(ctx, new, managed, last)
    _reconcile_others(ctx, live, new, managed, key, force=force)
    new = drop_nulls(new)
    return None if json_equal(live, new) else new


# -- last-applied-configuration interplay (the ``kubectl`` manager) ----------------------------------

def _last_applied(obj: Mapping[str, Any]) -> str:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(LAST_APPLIED_ANNOTATION) if isinstance(annotations, Mapping) else None
    return value if isinstance(value, str) else ""


def _allowed_by_last_applied(ctx: _Context, live: dict[str, Any]) -> FieldSet | None:
    """Fields kubectl's client-side apply last set and that still hold those values."""
    raw = _last_applied(live)
    if not raw:
        return None
    try:
        last = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(last, dict) or last.get("apiVersion") != ctx.version:
        return None
    try:
        validate(ctx.root, last)
    except TypedValueError:
        return None
    cmp = compare(ctx.root, last, live)
    return to_field_set(ctx.root, last) - cmp.modified - cmp.added - cmp.removed


def _set_last_applied(obj: dict[str, Any], config: Mapping[str, Any]) -> None:
    applied = deep_copy(dict(config))
    md = applied.get("metadata")
    if isinstance(md, dict) and isinstance(md.get("annotations"), dict):
        md["annotations"].pop(LAST_APPLIED_ANNOTATION, None)
    meta = obj.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    annotations[LAST_APPLIED_ANNOTATION] = go_json(applied) + "\n"
    size = sum(len(k.encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > _ANNOTATIONS_MAX_BYTES:
        del annotations[LAST_APPLIED_ANNOTATION]
    meta["annotations"] = annotations


# -- errors --------------------------------------------------------------------------------------------

def conflict_error(conflicts: Mapping[ManagerKey, Iterable[Path]]) -> Conflict:
    """The 409 kube-apiserver answers when an apply changes fields other managers own."""
    ordered = sorted(conflicts, key=lambda k: k.identifier())
    items = [(key, path) for key in ordered for path in iterate_sorted(conflicts[key])]
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {key.describe()}",
               "field": path_string(path)} for key, path in items]
    if len(items) == 1:
        key, path = items[0]
        message = f"Apply failed with 1 conflict: conflict with {key.describe()}: {path_string(path)}"
    else:
        lines: list[str] = []
        for key in ordered:
            lines.append(f"conflicts with {key.describe()}:")
            lines.extend(f"- {path_string(p)}" for p in iterate_sorted(conflicts[key]))
        message = f"Apply failed with {len(items)} conflicts: " + "\n".join(lines)
    return Conflict(message, details={"causes": causes})


def _options_invalid(causes: list[dict[str, str]]) -> Invalid:
    parts = "; ".join(f"{c['field']}: {c['message']}" for c in causes)
    return Invalid(f'PatchOptions.meta.k8s.io "" is invalid: {parts}',
                   details={"group": "meta.k8s.io", "kind": "PatchOptions", "causes": causes})


def _field_manager_causes(field_manager: str) -> list[dict[str, str]]:
    causes: list[dict[str, str]] = []
    if len(field_manager.encode()) > FIELD_MANAGER_MAX_LENGTH:
        causes.append({"reason": "FieldValueTooLong", "field": "fieldManager",
                       "message": f"Too long: may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes"})
    for i, ch in enumerate(field_manager):
        if not ch.isprintable():
            causes.append({"reason": "FieldValueInvalid", "field": "fieldManager",
                           "message": f"Invalid value: {go_quote(field_manager)}: invalid character "
                                      f"U+{ord(ch):04X} (at position {i})"})
    return causes


def validate_patch_options(patch_type: str, *, field_manager: str, force: bool | None) -> None:
    """PatchOptions checks kube-apiserver runs before patching (422 ``Invalid``).

    ``patch_type`` is ``json``, ``merge``, ``strategic`` or ``apply``; ``force`` is None
    when the request did not set it.
    """
    causes: list[dict[str, str]] = []
    if patch_type == "apply":
        if not field_manager:
            causes.append({"reason": "FieldValueRequired", "field": "fieldManager",
                           "message": "Required value: is required for apply patch"})
    elif force is not None:
        causes.append({"reason": "FieldValueForbidden", "field": "force",
                       "message": "Forbidden: may not be specified for non-apply patch"})
    causes.extend(_field_manager_causes(field_manager))
    if causes:
        raise _options_invalid(causes)


def _gvk_string(api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    return f"{group}/{version}, Kind={kind}"


def _object_gvknn(obj: Mapping[str, Any]) -> str:
    md = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    assert isinstance(md, Mapping)
    return (f"{md.get('namespace') or ''}/{md.get('name') or ''}; "
            f"{_gvk_string(str(obj.get('apiVersion') or ''), str(obj.get('kind') or ''))}")


# -- public API ----------------------------------------------------------------------------------------

def _resolver_version(resolver: TypeResolver, obj: Mapping[str, Any]) -> str:
    if resolver.version:
        return f"{resolver.group}/{resolver.version}" if resolver.group else resolver.version
    return str(obj.get("apiVersion") or "")


def _reset_paths(reset_fields: Iterable[Sequence[str]]) -> tuple[Path, ...]:
    return tuple(_f(*p) for p in reset_fields)


def _decode_or_empty(entries: Any) -> Managed:
    try:
        return decode_managed_fields(entries)
    except ValueError:
        return Managed()


def update_managed_fields(old: Mapping[str, Any] | None, new: Mapping[str, Any], *, manager: str,
                          now: str, operation: str = "Update", subresource: str = "",
                          resolver: TypeResolver | None = None,
                          reset_fields: Iterable[Sequence[str]] = ()) -> dict[str, Any]:
    """``new`` with ``managedFields`` updated for a create/update/patch by ``manager``.

    ``old`` is the stored object (None on create). The request's own ``managedFields``
    win if they decode (a client may rewrite them), unless the write goes to a
    subresource; ``[]`` or ``[{}]`` clears them, after which updates are not tracked
    until the next apply. ``reset_fields`` are top-level paths the endpoint ignores
    (``("status",)`` on the main resource of kinds with a status subresource) and nobody
    gains by writing. ``resolver`` defaults to the built-in schema of ``new``'s kind.
    """
    if operation != "Update":
        raise ValueError(f"update_managed_fields records Update operations, not {operation!r}")
    resolver = resolver or resolver_for_object(new)
    result = dict(new)
    md = dict(result.get("metadata") or {})
    result["metadata"] = md
    old_md = (old or {}).get("metadata") or {}
    if subresource:
        managed = _decode_or_empty(old_md.get("managedFields"))
    elif _is_reset(md.get("managedFields")):
        managed = Managed()
    else:
        try:
            managed = decode_managed_fields(md.get("managedFields"))
        except ValueError:
            managed = Managed()
        if not managed.fields:
            managed = _decode_or_empty(old_md.get("managedFields"))
    md.pop("managedFields", None)
    if not managed.fields and old is not None and old_md.get("uid"):
        # Existing objects whose managed fields were cleared stay untracked until an apply.
        return result
    live = _without_managed(old) if old is not None else {}
    ctx = _Context(resolver.root, _resolver_version(resolver, new), _reset_paths(reset_fields), now)
    key = ManagerKey(manager or "unknown", "Update", ctx.version, subresource)
    _update(ctx, live, _without_managed(result), managed, key)
    encoded = encode_managed_fields(managed)
    if encoded is not None:
        md["managedFields"] = encoded
    return result


def _without_managed(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    md = out.get("metadata")
    if isinstance(md, Mapping) and "managedFields" in md:
        out["metadata"] = {k: v for k, v in md.items() if k != "managedFields"}
    return out


def _check_config(config: Any, resolver: TypeResolver) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise BadRequest("error decoding patch: the apply configuration must be an object")
    api_version = str(config.get("apiVersion") or "")
    kind = str(config.get("kind") or "")
    expected_version = f"{resolver.group}/{resolver.version}" if resolver.group else resolver.version
    if (resolver.kind and kind != resolver.kind) or (resolver.version and api_version != expected_version) \
            or not api_version or not kind:
        raise BadRequest(f"invalid object type: {_gvk_string(api_version, kind)}")
    md = config.get("metadata")
    if isinstance(md, Mapping) and md.get("managedFields") is not None:
        raise BadRequest("metadata.managedFields must be nil")
    try:
        validate(resolver.root, config)
    except TypedValueError as exc:
        raise InternalError(f"failed to create typed patch object ({_object_gvknn(config)}): {exc.text()}") \
            from None
    return config


def _check_name(md: Mapping[str, Any], name: str | None, namespace: str | None) -> None:
    """kube's checkName on the applied object."""
    obj_name = str(md.get("name") or "")
    if name is not None and obj_name != name:
        raise BadRequest(f"the name of the object ({obj_name}) does not match the name on the URL ({name})")
    obj_namespace = str(md.get("namespace") or "")
    if namespace and obj_namespace and obj_namespace != namespace:
        raise BadRequest(f"the namespace of the object ({obj_namespace}) does not match the namespace on the "
                         f"request ({namespace})")


def apply(live: Mapping[str, Any] | None, config: Mapping[str, Any], *, manager: str, force: bool,
          resolver: TypeResolver, now: str, subresource: str = "",
          reset_fields: Iterable[Sequence[str]] = (), name: str | None = None,
          namespace: str | None = None) -> dict[str, Any]:
    """Server-side apply ``config`` by ``manager`` to ``live`` (None: create); returns the new object.

    The result carries the updated ``managedFields``; on a no-op it is ``live`` with
    (possibly) changed ownership. ``name``/``namespace`` are the request URL's; when
    given, the result must carry them (a configuration without ``metadata.name`` cannot
    create an object). Raises ``Invalid`` without a field manager, ``BadRequest`` for a
    configuration of another kind/version, one that sets ``managedFields`` or names
    another object, ``InternalError`` (as kube does) for one that does not fit the
    schema, and ``Conflict`` (409, cause ``FieldManagerConflict`` per field) when it
    changes fields other managers own and ``force`` is false.
    """
    if not manager:
        raise _options_invalid([{"reason": "FieldValueRequired", "field": "fieldManager",
                                 "message": "Required value: is required for apply patch"}])
    cfg = _check_config(config, resolver)
    base = _without_managed(live) if live is not None else {}
    try:
        managed = decode_managed_fields(((live or {}).get("metadata") or {}).get("managedFields"))
    except ValueError as exc:
        raise InternalError(f"failed to decode managed fields: {exc}") from None
    ctx = _Context(resolver.root, _resolver_version(resolver, cfg), _reset_paths(reset_fields), now)

    def attempt(force_now: bool) -> tuple[dict[str, Any], Managed]:
        work = Managed(dict(managed.fields), dict(managed.versions), dict(managed.times))
        current = base
        if not work.fields:
            # Fields set before anyone applied belong to "before-first-apply".
            _update(ctx, {}, current, work, ManagerKey(BEFORE_FIRST_APPLY, "Update", ctx.version))
        key = ManagerKey(manager, "Apply", "", subresource)
        new = _smd_apply(ctx, current, cfg, work, key, force=force_now)
        _strip(work, key)
        if new is None:
            new = deep_copy(current)
        else:
            work.times[key] = now
        return new, work

    try:
        new, managed = attempt(force)
    except _Conflicts as exc:
        if manager != "kubectl":
            raise conflict_error(exc.conflicts) from None
        allowed = _allowed_by_last_applied(ctx, base)
        if allowed is None:
            raise conflict_error(exc.conflicts) from None
        remaining = {k: v - allowed for k, v in exc.conflicts.items() if v - allowed}
        if remaining:
            raise conflict_error(remaining) from None
        new, managed = attempt(True)
    if manager == "kubectl" and _last_applied(new):
        _set_last_applied(new, cfg)
    md = new.setdefault("metadata", {})
    _check_name(md, name, namespace)
    encoded = encode_managed_fields(managed)
    if encoded is None:
        md.pop("managedFields", None)
    else:
        md["managedFields"] = encoded
    return new


def reset_fields_for(subresources: Iterable[str], subresource: str) -> tuple[tuple[str, ...], ...]:
    """Top-level fields a write through ``subresource`` cannot set (kube's reset fields).

    The main resource of a kind with a ``status`` subresource ignores ``status``; the
    ``status`` subresource ignores ``spec``.
    """
    if subresource == "status":
        return (("spec",),)
    if not subresource and "status" in tuple(subresources):
        return (("status",),)
    return ()
