"""Field validation: unknown and duplicate fields (``fieldValidation=Strict|Warn|Ignore``).

Built-in kinds are walked against the published Kubernetes schemas; custom resources
against their ``openAPIV3Schema``. Paths use kube's strict-decoding format
(``spec.replicass``, ``spec.template.spec.containers[0].imagee``).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from atoll.api import schemas
from atoll.api.resources import ResourceInfo

Obj = dict[str, Any]
_META_FIELDS = frozenset(("apiVersion", "kind", "metadata"))


def _is_open(schema: Obj) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("x-kubernetes-embedded-resource"))


@functools.cache
def _object_meta() -> Obj:
    return schemas.resolve({"$ref": schemas.REF_PREFIX + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"})


def _walk(value: Any, schema: Obj, path: str, out: list[str], *, depth: int = 0, prune: bool = False) -> None:
    if depth > 64:
        return
    schema = schemas.resolve(schema)
    if _is_open(schema):
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        if props is None:
            if isinstance(addl, dict):
                for k, v in value.items():
                    _walk(v, addl, f"{path}.{k}" if path else str(k), out, depth=depth + 1, prune=prune)
            return
        for k, v in list(value.items()):
            sub = props.get(k)
            child = f"{path}.{k}" if path else str(k)
            if sub is None:
                if isinstance(addl, dict):
                    _walk(v, addl, child, out, depth=depth + 1, prune=prune)
                elif addl is not True:
                    out.append(child)
                    if prune:
                        del value[k]
                continue
            _walk(v, sub, child, out, depth=depth + 1, prune=prune)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, v in enumerate(value):
                _walk(v, items, f"{path}[{i}]", out, depth=depth + 1, prune=prune)


def prune_builtin(info: ResourceInfo, obj: Obj) -> list[str]:
    """Drop fields a built-in kind does not have (kube's typed decoding loses them too)."""
    if info.custom:
        return []
    name = schemas.definition_name(info.group, info.version, info.kind)
    if name is None:
        return []
    out: list[str] = []
    _walk(obj, {"$ref": schemas.REF_PREFIX + name}, "", out, prune=True)
    return out


def unknown_fields_for(info: ResourceInfo, obj: Obj) -> list[str]:
    """Paths of fields the kind's schema does not know (empty when it has no schema)."""
    out: list[str] = []
    if info.custom:
        if not info.schema:
            return []
        root = info.schema
        if _is_open(root):
            return []
        props = root.get("properties") or {}
        for k, v in obj.items():
            if k in _META_FIELDS:
                if k == "metadata" and isinstance(v, dict):
                    _walk(v, _object_meta(), "metadata", out)
                continue
            if k in props:
                _walk(v, props[k], k, out)
            elif root.get("additionalProperties") is not True:
                out.append(k)
        return out
    name = schemas.definition_name(info.group, info.version, info.kind)
    if name is None:
        return []
    _walk(obj, {"$ref": schemas.REF_PREFIX + name}, "", out)
    return out


def duplicate_fields(raw: bytes) -> list[str]:
    """Paths of keys that appear twice in one JSON object (kube's Strict rejects them)."""
    found: list[str] = []

    def hook(pairs: list[tuple[str, Any]]) -> Obj:
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                found.append(k)
            seen.add(k)
        return dict(pairs)

    try:
        json.loads(raw, object_pairs_hook=hook)
    except (ValueError, UnicodeDecodeError):
        return []
    return found
