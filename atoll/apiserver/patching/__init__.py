"""PATCH and server-side apply, with kube-apiserver's semantics and status codes.

* :func:`json_patch` (RFC 6902) and :func:`merge_patch` (RFC 7386) need no schema;
* :func:`strategic_merge_patch` reads patch strategies and merge keys from a
  :class:`TypeResolver` (built-in kinds only; custom resources get ``415``);
* :func:`apply` (server-side apply) and :func:`update_managed_fields` (every other
  write) maintain ``metadata.managedFields``.

:func:`resolver_for` gives the resolver of a served resource; it is the seam between
patching and :mod:`atoll.api.schemas` / a CRD's ``openAPIV3Schema``.
"""

from atoll.apiserver.patching.apply import (
    ANCIENT_CHANGES,
    BEFORE_FIRST_APPLY,
    LAST_APPLIED_ANNOTATION,
    Managed,
    ManagerKey,
    apply,
    conflict_error,
    decode_managed_fields,
    encode_managed_fields,
    reset_fields_for,
    update_managed_fields,
    validate_patch_options,
)
from atoll.apiserver.patching.documents import MAX_JSON_PATCH_OPERATIONS, json_patch, merge_patch
from atoll.apiserver.patching.fieldpaths import from_fields_v1, path_string, to_fields_v1
from atoll.apiserver.patching.strategic import strategic_merge_patch
from atoll.apiserver.patching.typeinfo import (
    UNTYPED,
    SchemaResolver,
    TypeNode,
    TypeResolver,
    builtin_resolver,
    custom_resolver,
    resolver_for,
    resolver_for_object,
)

__all__ = [
    "ANCIENT_CHANGES",
    "BEFORE_FIRST_APPLY",
    "LAST_APPLIED_ANNOTATION",
    "MAX_JSON_PATCH_OPERATIONS",
    "UNTYPED",
    "Managed",
    "ManagerKey",
    "SchemaResolver",
    "TypeNode",
    "TypeResolver",
    "apply",
    "builtin_resolver",
    "conflict_error",
    "custom_resolver",
    "decode_managed_fields",
    "encode_managed_fields",
    "from_fields_v1",
    "json_patch",
    "merge_patch",
    "path_string",
    "reset_fields_for",
    "resolver_for",
    "resolver_for_object",
    "strategic_merge_patch",
    "to_fields_v1",
    "update_managed_fields",
    "validate_patch_options",
]
