"""Kubernetes strategic merge patch (``application/strategic-merge-patch+json``).

A JSON merge patch that knows, per field, how lists combine (from the schema's
``x-kubernetes-patch-strategy`` / ``x-kubernetes-patch-merge-key``):

* lists with the ``merge`` strategy merge items by their merge key (maps) or by value
  (primitives); every other list is replaced, maps merge unless their strategy is
  ``replace``; ``null`` deletes a member;
* ``$patch: replace`` replaces a map (or, as a list item, the whole list),
  ``$patch: delete`` deletes a map (or the list item with that merge key), and
  ``$patch: merge`` is rejected inside lists, as kube does;
* ``$retainKeys: [...]`` drops the original's members not listed (the ``retainKeys``
  strategy, e.g. a Deployment's ``strategy``);
* ``$deleteFromPrimitiveList/<list>: [...]`` removes values from a primitive list;
* ``$setElementOrder/<list>: [...]`` fixes the order of the listed items; items only
  the server has keep their relative place.

This follows k8s.io/apimachinery's strategicpatch (``StrategicMergeMapPatch`` with
parallel lists merged and unmatched nulls ignored), including its element ordering.
kube-apiserver refuses strategic merge patches of custom resources with ``415``; so
does :func:`strategic_merge_patch` for a custom resolver. Errors: the format errors
kube reports as ``400`` are ``BadRequest``; lists of lists are ``422``; the errors kube
lets surface as ``500`` (missing merge key, unknown ``$patch``, order mismatch, mixed
element types) are ``BadRequest`` here with kube's message, since the patch is at fault.
"""

from __future__ import annotations

import logging
from typing import Any

from atoll.api.errors import BadRequest, Invalid, UnsupportedMediaType
from atoll.apiserver.patching.documents import REJECTED, decode
from atoll.apiserver.patching.typeinfo import UNTYPED, TypeNode, TypeResolver, resolver_for_object
from atoll.apiserver.patching.values import category, deep_copy, go_json, json_equal

logger = logging.getLogger(__name__)

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
SET_ELEMENT_ORDER = "$setElementOrder"

CUSTOM_RESOURCE_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
                               "application/apply-patch+yaml")

ERR_PRIMITIVE_LIST = "invalid patch format of primitive list"
ERR_RETAIN_KEYS = "invalid patch format of retainKeys"
ERR_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"
ERR_LIST_OF_LISTS = "lists of lists are not supported"


class _BadPatch(Exception):
    """A patch kube-apiserver rejects (as 400, or as 500 for errors it does not classify)."""


class _Unprocessable(Exception):
    """A patch kube-apiserver rejects with 422."""


class _NoElements(Exception):
    pass


_DROP: Any = object()


def _go_fmt(v: Any) -> str:
    """Go's ``%v`` of a decoded JSON value (maps print as ``map[k:v]`` with sorted keys)."""
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_go_fmt(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list | tuple):
        return "[" + " ".join(_go_fmt(x) for x in v) + "]"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    return go_json(v)


def _go_type(v: Any) -> str:
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, list):
        return "[]interface {}"
    if v is None:
        return "%!s(<nil>)"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int64"
    if isinstance(v, float):
        return "float64"
    return "string"


def _bad_arg_type(expected: str, actual: Any) -> _BadPatch:
    return _BadPatch(f"expected a {expected}, but received a {_go_type(actual)}")


def _no_merge_key(item: Any, key: str) -> _BadPatch:
    return _BadPatch(f"map: {_go_fmt(item)} does not contain declared merge key: {key}")


def strategic_merge_patch(obj: dict[str, Any], patch: bytes | str | dict[str, Any],
                          resolver: TypeResolver | None, *, in_place: bool = False) -> dict[str, Any]:
    """Apply a strategic merge patch to a copy of ``obj`` (to ``obj`` itself if ``in_place``).

    ``resolver`` None means the built-in schema named by ``obj``'s apiVersion/kind
    (untyped, so plain merge-patch list semantics, for kinds Kubernetes does not define).
    """
    if resolver is None:
        resolver = resolver_for_object(obj)
    if resolver.custom:
        raise UnsupportedMediaType("the body of the request was in an unknown format - accepted media types "
                                   "include: " + ", ".join(CUSTOM_RESOURCE_PATCH_TYPES))
    doc = decode(patch)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise BadRequest(f"json: cannot unmarshal {category(doc)} into Go value of type map[string]interface {{}}")
    try:
        return _merge_map(obj if in_place else deep_copy(obj), deep_copy(doc), resolver.root)
    except _BadPatch as exc:
        raise BadRequest(str(exc)) from None
    except _Unprocessable as exc:
        logger.debug("strategic merge patch rejected: %s", exc)
        raise Invalid(REJECTED) from None


# -- cleaning values that are added as they are ----------------------------------------------------

def _is_directive_key(key: str) -> bool:
    return key == RETAIN_KEYS or key.startswith((SET_ELEMENT_ORDER, DELETE_FROM_PRIMITIVE_LIST))


def _clean(value: Any) -> Any:
    """Drop directives and ``null`` members from a value taken over from the patch."""
    if isinstance(value, dict):
        if DIRECTIVE in value:
            return _DROP
        out: dict[str, Any] = {}
        for k, v in value.items():
            if v is None or _is_directive_key(k):
                continue
            cleaned = _clean(v)
            if cleaned is not _DROP:
                out[k] = cleaned
        return out
    if isinstance(value, list):
        return [c for c in (_clean(v) for v in value) if c is not _DROP]
    return value


def _take(original: dict[str, Any], key: str, value: Any) -> None:
    cleaned = _clean(value)
    if cleaned is _DROP:
        original.pop(key, None)
    else:
        original[key] = cleaned


# -- maps --------------------------------------------------------------------------------------------

def _strategy(node: TypeNode) -> str:
    """The non-retainKeys patch strategy of a field ("" when none)."""
    others = [s for s in node.patch_strategies if s != "retainKeys"]
    if len(node.patch_strategies) > 2 or len(others) > 1:
        return ""
    return others[0] if others else ""


def _extract_key(key: str, prefix: str) -> str:
    head, sep, rest = key.partition("/")
    if not sep or head != prefix:
        raise _BadPatch(ERR_PRIMITIVE_LIST if prefix == DELETE_FROM_PRIMITIVE_LIST else ERR_SET_ELEMENT_ORDER)
    return rest


def _merge_map(original: dict[str, Any] | None, patch: dict[str, Any], node: TypeNode) -> dict[str, Any]:
    if DIRECTIVE in patch:
        directive = patch[DIRECTIVE]
        if directive == "replace":
            rest = {k: v for k, v in patch.items() if k != DIRECTIVE}
            cleaned = _clean(rest)
            return cleaned if isinstance(cleaned, dict) else {}
        if directive == "delete":
            return {}
        raise _BadPatch(f"unknown patch type: {_go_fmt(directive)} in map: {_go_fmt(patch)}")
    if original is None:
        original = {}
    _apply_retain_keys(original, patch)
    _merge_ordered_lists(original, patch, node)
    for key, value in list(patch.items()):
        deletion_list = key.startswith(DELETE_FROM_PRIMITIVE_LIST)
        if deletion_list:
            key = _extract_key(key, DELETE_FROM_PRIMITIVE_LIST)
        if value is None:
            original.pop(key, None)
            continue
        if key not in original:
            if not deletion_list:
                _take(original, key, value)
            continue
        current = original[key]
        both_maps = isinstance(current, dict) and isinstance(value, dict)
        both_lists = isinstance(current, list) and isinstance(value, list)
        if not (both_maps or both_lists):
            if not deletion_list:
                _take(original, key, value)
            continue
        child = node.child(key) or UNTYPED
        strategy = _strategy(child)
        if both_maps:
            original[key] = _clean(value) if strategy == "replace" else _merge_map(current, value, child)
        else:
            original[key] = _merge_list_field(current, value, child, strategy, deletion_list)
    return original


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if RETAIN_KEYS not in patch:
        return
    retain = patch.pop(RETAIN_KEYS)
    if not isinstance(retain, list):
        raise _BadPatch(ERR_RETAIN_KEYS)
    keep = {k for k in retain if isinstance(k, str)}
    for key, value in patch.items():
        if value is None or key.startswith((DELETE_FROM_PRIMITIVE_LIST, SET_ELEMENT_ORDER)):
            continue
        if key not in keep:
            raise _BadPatch(ERR_RETAIN_KEYS)
    for key in [k for k in original if k not in keep]:
        del original[key]


# -- lists -------------------------------------------------------------------------------------------

def _element_kind(*lists: list[Any]) -> str:
    kind: str | None = None
    for items in lists:
        for item in items:
            k = _go_type(item)
            if kind is None:
                if isinstance(item, list):
                    raise _Unprocessable(ERR_LIST_OF_LISTS)
                kind = k
            elif kind != k:
                raise _BadPatch(f"list element types are not identical: {_go_fmt(list(lists))}")
    if kind is None:
        raise _NoElements
    return "map" if kind == "map[string]interface {}" else "scalar"


def _same_item(a: Any, b: Any, merge_key: str, kind: str) -> bool:
    if kind == "map":
        return isinstance(a, dict) and isinstance(b, dict) and merge_key in a and merge_key in b \
            and json_equal(a[merge_key], b[merge_key])
    return json_equal(a, b)


def _index(items: list[Any], item: Any, merge_key: str, kind: str) -> int:
    for i, candidate in enumerate(items):
        if _same_item(candidate, item, merge_key, kind):
            return i
    return -1


def _merge_list_field(original: list[Any], patch: list[Any], node: TypeNode, strategy: str,
                      deletion_list: bool) -> list[Any]:
    if strategy == "merge" or deletion_list:
        return _merge_list(original, patch, node, node.patch_merge_key or "", deletion_list)
    cleaned = _clean(patch)
    return cleaned if isinstance(cleaned, list) else []


def _merge_list(original: list[Any], patch: list[Any], node: TypeNode, merge_key: str,
                deletion_list: bool) -> list[Any]:
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    if kind != "map":
        if deletion_list:
            return [v for v in original if not any(json_equal(v, d) for d in patch)]
        merged: list[Any] = []
        for v in original + patch:
            if not any(json_equal(v, m) for m in merged):
                merged.append(v)
    else:
        if not merge_key:
            raise _BadPatch(f"cannot merge lists without merge key for {node.defname or 'untyped list'}")
        original, patch = _apply_list_directives(original, patch, merge_key)
        merged = _merge_items(original, patch, merge_key, node.items)
    if merge_key:
        for item in merged:
            if not isinstance(item, dict):
                raise _bad_arg_type("map[string]interface {}", item)
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
    in_patch = [m for m in merged if _index(patch, m, merge_key, kind) >= 0]
    server_only = [m for m in merged if _index(patch, m, merge_key, kind) < 0]
    return _order(in_patch, server_only, patch, original, merge_key, kind)


def _apply_list_directives(original: list[Any], patch: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    plain: list[Any] = []
    replace = False
    for item in patch:
        if not isinstance(item, dict) or DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[DIRECTIVE]
        if directive == "delete":
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            for candidate in original:
                if not isinstance(candidate, dict):
                    raise _BadPatch(f"value for key {original.index(candidate)} is not a map")
            original = [o for o in original
                        if not (merge_key in o and json_equal(o[merge_key], item[merge_key]))]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _BadPatch("merging lists cannot yet be specified in the patch")
        else:
            raise _BadPatch(f"unknown patch type: {_go_fmt(directive)} in map: {_go_fmt(item)}")
    if replace:
        return [c for c in (_clean(p) for p in plain) if c is not _DROP], []
    return original, plain


def _merge_items(original: list[Any], patch: list[Any], merge_key: str, item_node: TypeNode) -> list[Any]:
    out = list(original)
    for item in patch:
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        for i, candidate in enumerate(out):
            if not isinstance(candidate, dict):
                raise _BadPatch(f"value for key {i} is not a map")
            if merge_key in candidate and json_equal(candidate[merge_key], item[merge_key]):
                out[i] = _merge_map(candidate, item, item_node)
                break
        else:
            cleaned = _clean(item)
            if cleaned is not _DROP:
                out.append(cleaned)
    return out


def _sort_by(items: list[Any], order: list[Any], merge_key: str, kind: str) -> list[Any]:
    deleted: list[Any] = []
    if kind == "map":
        for item in (*items, *order):
            if not isinstance(item, dict):
                raise _bad_arg_type("map[string]interface {}", item)
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
        deleted = [i for i in items if i.get(DIRECTIVE) == "delete"]
        items = [i for i in items if i.get(DIRECTIVE) != "delete"]

    def position(item: Any) -> int:
        i = _index(order, item, merge_key, kind)
        return i if i >= 0 else len(order)

    return sorted(items, key=position) + deleted


def _order(in_patch: list[Any], server_only: list[Any], patch_order: list[Any], server_order: list[Any],
           merge_key: str, kind: str) -> list[Any]:
    """Patch items in the patch's order; server-only items keep their place relative to them."""
    right = _sort_by(in_patch, patch_order, merge_key, kind)
    left = _sort_by(server_only, server_order, merge_key, kind)
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _index(server_order, left[i], merge_key, kind)
            ri = _index(server_order, right[j], merge_key, kind)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _has_directive(item: Any) -> bool:
    return isinstance(item, dict) and DIRECTIVE in item


def _check_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    """The patch list's items must appear in ``$setElementOrder`` in the same relative order."""
    if not order or not patch_list:
        return
    items = patch_list
    if merge_key:
        for item in items:
            if not isinstance(item, dict):
                raise _bad_arg_type("map[string]interface {}", item)
        items = [i for i in items if i.get(DIRECTIVE) != "delete"]
    pi = si = 0
    while pi < len(items) and si < len(order):
        if _has_directive(items[pi]):
            pi += 1
            continue
        if merge_key:
            left, right = items[pi], order[si]
            if not isinstance(right, dict):
                raise _bad_arg_type("map[string]interface {}", right)
            for m in (left, right):
                if merge_key not in m:
                    raise _no_merge_key(m, merge_key)
            equal = json_equal(left[merge_key], right[merge_key])
        else:
            equal = json_equal(items[pi], order[si])
        if equal:
            pi += 1
        si += 1
    if pi < len(items) and si >= len(order):
        raise _BadPatch(f"The order in patch list:\n{_go_fmt(patch_list)}\n doesn't match "
                        f"{SET_ELEMENT_ORDER} list:\n{_go_fmt(order)}\n")


def _merge_ordered_lists(original: dict[str, Any], patch: dict[str, Any], node: TypeNode) -> None:
    """Process every ``$setElementOrder/<list>`` with its list."""
    for directive_key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        order = patch.pop(directive_key)
        if not isinstance(order, list):
            raise _bad_arg_type("[]interface {}", order)
        key = _extract_key(directive_key, SET_ELEMENT_ORDER)
        found_original, found_patch = key in original, key in patch
        original_list = original.get(key)
        patch_list = patch.get(key)
        if found_original and not isinstance(original_list, list):
            raise _bad_arg_type("[]interface {}", original_list)
        if found_patch and not isinstance(patch_list, list):
            raise _bad_arg_type("[]interface {}", patch_list)
        olist: list[Any] = original_list if isinstance(original_list, list) else []
        plist: list[Any] = patch_list if isinstance(patch_list, list) else []
        child = node.child(key) or UNTYPED
        merge_key = child.patch_merge_key or ""
        _check_order(plist, order, merge_key)
        if found_original and not found_patch:
            merged = olist
        elif found_patch and not found_original:
            cleaned = _clean(plist)
            merged = cleaned if isinstance(cleaned, list) else []
        elif found_original and found_patch:
            merged = _merge_list_field(olist, plist, child, _strategy(child), False)
        else:
            continue
        try:
            kind = _element_kind(olist, plist)
        except _NoElements:
            original[key] = merged
            patch.pop(key, None)
            continue
        if merge_key:
            for item in merged:
                if not isinstance(item, dict):
                    raise _bad_arg_type("map[string]interface {}", item)
                if merge_key not in item:
                    raise _no_merge_key(item, merge_key)
        in_order = [m for m in merged if _index(order, m, merge_key, kind) >= 0]
        server_only = [m for m in merged if _index(order, m, merge_key, kind) < 0]
        original[key] = _order(in_order, server_only, order, olist, merge_key, kind)
        patch.pop(key, None)
