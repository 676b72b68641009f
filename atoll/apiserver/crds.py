"""CustomResourceDefinitions: validation, what they serve, and their structural schemas.

``CustomSchema`` implements the parts of apiextensions' structural schema handling that
users meet every day: pruning unknown fields, ``default:`` values, and OpenAPI v3
validation with kube's error texts. CEL rules (``x-kubernetes-validations``) are not
evaluated.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from atoll.api import meta
from atoll.api.resources import DEFAULT_VERBS, PrinterColumn, ResourceInfo, ScalePaths

Obj = dict[str, Any]
Cause = dict[str, str]
_META_FIELDS = ("apiVersion", "kind", "metadata")


def _cause(field: str, message: str, reason: str = "FieldValueInvalid") -> Cause:
    return {"reason": reason, "message": message, "field": field}


def validate_crd(crd: Obj) -> list[Cause]:
    causes: list[Cause] = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group") or ""
    plural = names.get("plural") or ""
    name = (crd.get("metadata") or {}).get("name") or ""
    if not group:
        causes.append(_cause("spec.group", "Required value", "FieldValueRequired"))
    elif "." not in group or meta.name_is_dns_subdomain(group):
        causes.append(_cause("spec.group", f'Invalid value: "{group}": should be a domain with at least one dot'))
    if not plural:
        causes.append(_cause("spec.names.plural", "Required value", "FieldValueRequired"))
    elif meta.name_is_dns_label(plural):
        causes.append(_cause("spec.names.plural", f'Invalid value: "{plural}": a lowercase RFC 1123 label'))
    if not names.get("kind"):
        causes.append(_cause("spec.names.kind", "Required value", "FieldValueRequired"))
    if plural and group and name != f"{plural}.{group}":
        causes.append(_cause("metadata.name", f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(_cause("spec.scope", f'Unsupported value: "{spec.get("scope")}": supported values: '
                                           '"Cluster", "Namespaced"', "FieldValueNotSupported"))
    versions = spec.get("versions") or []
    if not versions:
        causes.append(_cause("spec.versions", "Invalid value: must have exactly one version marked as storage "
                                              "version"))
    storage = [v for v in versions if v.get("storage")]
    if versions and len(storage) != 1:
        causes.append(_cause("spec.versions", "Invalid value: must have exactly one version marked as storage "
                                              "version"))
    seen: set[str] = set()
    for i, v in enumerate(versions):
        vname = v.get("name") or ""
        if not vname or meta.name_is_dns1035_label(vname):
            causes.append(_cause(f"spec.versions[{i}].name", f'Invalid value: "{vname}": a DNS-1035 label'))
        if vname in seen:
            causes.append(_cause(f"spec.versions[{i}].name", f'Duplicate value: "{vname}"', "FieldValueDuplicate"))
        seen.add(vname)
        schema = ((v.get("schema") or spec.get("validation") or {}).get("openAPIV3Schema"))
        if not isinstance(schema, dict):
            causes.append(_cause(f"spec.versions[{i}].schema.openAPIV3Schema", "Required value: schemas are "
                                 "required", "FieldValueRequired"))
        elif schema.get("type") != "object":
            causes.append(_cause(f"spec.versions[{i}].schema.openAPIV3Schema.type",
                                 'Invalid value: must be "object" at the root', "FieldValueInvalid"))
    return causes


def resources_for_crd(crd: Obj) -> list[ResourceInfo]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out: list[ResourceInfo] = []
    for v in spec.get("versions") or []:
        if not v.get("served", True):
            continue
        subs = v.get("subresources") or {}
        scale = subs.get("scale")
        sub_names = tuple(n for n in ("status", "scale") if n in subs)
        columns = tuple(PrinterColumn(name=c.get("name", ""), type=c.get("type", "string"),
                                      json_path=c.get("jsonPath", ""), description=c.get("description", ""),
                                      priority=int(c.get("priority", 0)), format=c.get("format", ""))
                        for c in v.get("additionalPrinterColumns") or [])
        out.append(ResourceInfo(
            group=spec.get("group", ""), version=v.get("name", ""), kind=names.get("kind", ""),
            plural=names.get("plural", ""), singular=names.get("singular") or str(names.get("kind", "")).lower(),
            namespaced=spec.get("scope") == "Namespaced", short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()), verbs=DEFAULT_VERBS, subresources=sub_names,
            scale=ScalePaths(scale.get("specReplicasPath", ".spec.replicas"),
                             scale.get("statusReplicasPath", ".status.replicas"),
                             scale.get("labelSelectorPath")) if isinstance(scale, dict) else None,
            printer_columns=columns,
            selectable_fields=tuple(f.get("jsonPath", "") for f in v.get("selectableFields") or []),
            schema=(v.get("schema") or spec.get("validation") or {}).get("openAPIV3Schema"),
            storage_version=bool(v.get("storage")), custom=True))
    return out


_TYPE_NAMES = {"object": "object", "array": "array", "string": "string", "integer": "integer",
               "number": "number", "boolean": "boolean"}


def _go(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "map[string]interface {}{...}"
    if isinstance(value, list):
        return "[]interface {}{...}"
    return str(value)


def _type_ok(value: Any, typ: str) -> bool:
    if typ == "object":
        return isinstance(value, dict)
    if typ == "array":
        return isinstance(value, list)
    if typ == "string":
        return isinstance(value, str)
    if typ == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float)
                                                                           and value.is_integer())
    if typ == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if typ == "boolean":
        return isinstance(value, bool)
    return True


class CustomSchema:
    def __init__(self, schema: Obj) -> None:
        self.schema = schema

    # -- pruning -------------------------------------------------------------------------
    def prune(self, obj: Obj) -> list[str]:
        pruned: list[str] = []
        props = self.schema.get("properties") or {}
        if self.schema.get("x-kubernetes-preserve-unknown-fields"):
            for k in list(obj):
                if k not in _META_FIELDS and k in props:
                    self._prune(obj[k], props[k], k, pruned)
            return pruned
        for k in list(obj):
            if k in _META_FIELDS:
                continue
            if k not in props:
                pruned.append(k)
                del obj[k]
            else:
                self._prune(obj[k], props[k], k, pruned)
        return pruned

    def _prune(self, value: Any, schema: Obj, path: str, pruned: list[str]) -> None:
        if schema.get("x-kubernetes-embedded-resource") and isinstance(value, dict):
            return
        if isinstance(value, dict):
            props = schema.get("properties")
            addl = schema.get("additionalProperties")
            preserve = schema.get("x-kubernetes-preserve-unknown-fields")
            for k in list(value):
                if props is not None and k in props:
                    self._prune(value[k], props[k], f"{path}.{k}", pruned)
                elif isinstance(addl, dict):
                    self._prune(value[k], addl, f"{path}.{k}", pruned)
                elif addl is True or preserve:
                    continue
                elif props is not None or addl is False or not preserve:
                    if schema.get("type") == "object" or props is not None:
                        pruned.append(f"{path}.{k}")
                        del value[k]
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                self._prune(item, schema["items"], f"{path}[{i}]", pruned)

    # -- defaulting ------------------------------------------------------------------------
    def apply_defaults(self, obj: Obj) -> None:
        for k, sub in (self.schema.get("properties") or {}).items():
            if k in _META_FIELDS:
                continue
            if k not in obj and "default" in sub:
                obj[k] = copy.deepcopy(sub["default"])
            if k in obj:
                self._defaults(obj[k], sub)

    def _defaults(self, value: Any, schema: Obj) -> None:
        if isinstance(value, dict):
            for k, sub in (schema.get("properties") or {}).items():
                if k not in value and "default" in sub:
                    value[k] = copy.deepcopy(sub["default"])
                if k in value:
                    self._defaults(value[k], sub)
            addl = schema.get("additionalProperties")
            if isinstance(addl, dict):
                for k in value:
                    self._defaults(value[k], addl)
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for item in value:
                self._defaults(item, schema["items"])

    # -- validation --------------------------------------------------------------------------
    def validate(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        props = self.schema.get("properties") or {}
        for req in self.schema.get("required") or []:
            if req not in obj:
                causes.append(_cause(req, "Required value", "FieldValueRequired"))
        for k, v in obj.items():
            if k in _META_FIELDS or k not in props:
                continue
            self._validate(v, props[k], k, causes)
        return causes

    def _validate(self, value: Any, schema: Obj, path: str, causes: list[Cause]) -> None:
        if value is None:
            if not schema.get("nullable"):
                causes.append(_cause(path, f'Invalid value: "null": {path} in body must be of type '
                                           f'{schema.get("type", "object")}: "null"', "FieldValueTypeInvalid"))
            return
        if schema.get("x-kubernetes-int-or-string"):
            if not (isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))):
                causes.append(_cause(path, f"Invalid value: {_go(value)}: {path} in body must be of type "
                                           f"integer,string: {_go(value)}", "FieldValueTypeInvalid"))
            return
        typ = schema.get("type")
        if typ and not _type_ok(value, typ):
            causes.append(_cause(path, f'Invalid value: "{_TYPE_NAMES.get(_kind(value), _kind(value))}": {path} in '
                                       f'body must be of type {typ}: "{_kind(value)}"', "FieldValueTypeInvalid"))
            return
        if "enum" in schema and value not in schema["enum"]:
            allowed = ", ".join(_go(e) for e in schema["enum"])
            causes.append(_cause(path, f"Unsupported value: {_go(value)}: supported values: {allowed}",
                                 "FieldValueNotSupported"))
        if isinstance(value, str):
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                causes.append(_cause(path, f"Too long: may not be more than {schema['maxLength']} bytes",
                                     "FieldValueTooLong"))
            if "minLength" in schema and len(value) < schema["minLength"]:
                causes.append(_cause(path, f"Invalid value: {_go(value)}: {path} in body should be at least "
                                           f"{schema['minLength']} chars long"))
            if "pattern" in schema and not re.search(schema["pattern"], value):
                causes.append(_cause(path, f"Invalid value: {_go(value)}: {path} in body should match "
                                           f"'{schema['pattern']}'"))
        if isinstance(value, int | float) and not isinstance(value, bool):
            lo, hi = schema.get("minimum"), schema.get("maximum")
            if lo is not None and (value < lo or (schema.get("exclusiveMinimum") and value == lo)):
                word = "greater than" if schema.get("exclusiveMinimum") else "greater than or equal to"
                causes.append(_cause(path, f"Invalid value: {_go(value)}: {path} in body should be {word} {lo}"))
            if hi is not None and (value > hi or (schema.get("exclusiveMaximum") and value == hi)):
                word = "less than" if schema.get("exclusiveMaximum") else "less than or equal to"
                causes.append(_cause(path, f"Invalid value: {_go(value)}: {path} in body should be {word} {hi}"))
        if isinstance(value, list):
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                causes.append(_cause(path, f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                                     "FieldValueTooMany"))
            if "minItems" in schema and len(value) < schema["minItems"]:
                causes.append(_cause(path, f"Invalid value: {len(value)}: {path} in body should have at least "
                                           f"{schema['minItems']} items"))
            list_type = schema.get("x-kubernetes-list-type")
            if schema.get("uniqueItems") or list_type == "set":
                seen: list[Any] = []
                for i, item in enumerate(value):
                    if item in seen:
                        causes.append(_cause(f"{path}[{i}]", f"Duplicate value: {_go(item)}", "FieldValueDuplicate"))
                    seen.append(item)
            if list_type == "map":
                keys = schema.get("x-kubernetes-list-map-keys") or []
                seen_keys: set[tuple[Any, ...]] = set()
                for i, item in enumerate(value):
                    if isinstance(item, dict):
                        k = tuple(_freeze(item.get(key)) for key in keys)
                        if k in seen_keys:
                            causes.append(_cause(f"{path}[{i}]", "Duplicate value: map entry", "FieldValueDuplicate"))
                        seen_keys.add(k)
            if isinstance(schema.get("items"), dict):
                for i, item in enumerate(value):
                    self._validate(item, schema["items"], f"{path}[{i}]", causes)
        if isinstance(value, dict):
            if schema.get("x-kubernetes-embedded-resource"):
                for req in ("apiVersion", "kind"):
                    if not value.get(req):
                        causes.append(_cause(f"{path}.{req}", "Required value: must not be empty",
                                             "FieldValueRequired"))
            for req in schema.get("required") or []:
                if req not in value:
                    causes.append(_cause(f"{path}.{req}", "Required value", "FieldValueRequired"))
            if "maxProperties" in schema and len(value) > schema["maxProperties"]:
                causes.append(_cause(path, f"Too many: {len(value)}: must have at most {schema['maxProperties']} "
                                           "items", "FieldValueTooMany"))
            if "minProperties" in schema and len(value) < schema["minProperties"]:
                causes.append(_cause(path, f"Invalid value: {len(value)}: {path} in body should have at least "
                                           f"{schema['minProperties']} properties"))
            props = schema.get("properties") or {}
            addl = schema.get("additionalProperties")
            for k, v in value.items():
                if k in props:
                    self._validate(v, props[k], f"{path}.{k}", causes)
                elif isinstance(addl, dict):
                    self._validate(v, addl, f"{path}.{k}", causes)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value
