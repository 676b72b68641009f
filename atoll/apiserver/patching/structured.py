"""Typed operations on objects, as structured-merge-diff defines them for server-side apply.

* :func:`validate` checks an applied configuration against the schema the way
  kube-apiserver converts it to a typed value (unknown fields, list keys, duplicates);
* :func:`to_field_set` lists the fields a configuration sets (what its manager owns);
* :func:`merge` merges a configuration into a live object (maps by member, ``map``
  lists by key, ``set`` lists by value, everything atomic replaced);
* :func:`compare` tells which fields were added, modified or removed;
* :func:`remove_items` drops the fields of a set from an object;
* :func:`ensure_named_fields` adds the struct fields above owned fields to a set.

Lists whose items cannot be keyed in a *live* object are treated as atomic instead of
failing: stored objects are trusted, configurations are validated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from atoll.apiserver.patching.fieldpaths import (
    FieldSet,
    Path,
    PathElement,
    element_string,
    key_element,
    path_string,
    value_element,
    with_prefix,
)
from atoll.apiserver.patching.typeinfo import UNTYPED, TypeNode
from atoll.apiserver.patching.values import MISSING, category, deep_copy, go_json, json_equal


class TypedValueError(Exception):
    """A configuration that does not fit the schema (structured-merge-diff's ValidationErrors)."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__(self.text())

    def text(self) -> str:
        lines = [f"{p}: {m}" if p else m for p, m in self.errors]
        if len(lines) == 1:
            return lines[0]
        return "\n".join(["errors:", *("  " + line for line in lines)])


class _UnkeyableItem(Exception):
    pass


def _child(node: TypeNode, name: str) -> TypeNode:
    return node.child(name) or UNTYPED


def item_element(node: TypeNode, item: Any) -> PathElement:
    """The path element of an item of an associative list ``node``; raises :class:`_UnkeyableItem`."""
    if node.list_type == "map" and node.list_map_keys:
        if item is None:
            raise _UnkeyableItem("associative list with keys may not have a null element")
        if not isinstance(item, dict):
            raise _UnkeyableItem("associative list with keys may not have non-map elements")
        keys: dict[str, Any] = {}
        for name in node.list_map_keys:
            if name in item:
                keys[name] = item[name]
            else:
                default = node.items.key_default(name)
                if default is not None:
                    keys[name] = default
        if not keys:
            names = "[" + " ".join(go_json(k) for k in node.list_map_keys) + "]"
            raise _UnkeyableItem(f"associative list with keys has an element that omits all key fields {names} "
                            "(and doesn't have default values for any key fields)")
        return key_element(keys)
    if isinstance(item, dict):
        raise _UnkeyableItem("associative list without keys has an element that's a map type")
    if isinstance(item, list):
        raise _UnkeyableItem("not supported: associative list with lists as elements")
    if item is None:
        raise _UnkeyableItem("associative list without keys has an element that's an explicit null")
    return value_element(item)


def _elements(node: TypeNode, items: list[Any]) -> list[PathElement] | None:
    """Item path elements, or None if some item cannot be keyed (then: atomic)."""
    try:
        return [item_element(node, item) for item in items]
    except _UnkeyableItem:
        return None


# -- validation ----------------------------------------------------------------------------------

def validate(node: TypeNode, value: Any) -> None:
    """Raise :class:`TypedValueError` if ``value`` does not fit ``node``."""
    errors: list[tuple[str, str]] = []
    _validate(node, value, (), errors)
    if errors:
        raise TypedValueError(errors)


def _validate(node: TypeNode, value: Any, path: Path, errors: list[tuple[str, str]]) -> None:
    if value is None:
        return
    shape = node.shape_of(value)
    if shape == "map":
        if not isinstance(value, dict):
            errors.append((path_string(path), f"expected map, got {go_json(value)}"))
            return
        for k, v in value.items():
            child = node.child(k)
            if child is None:
                errors.append((path_string((*path, ("f", k))), "field not declared in schema"))
                continue
            _validate(child, v, (*path, ("f", k)), errors)
    elif shape == "list":
        if not isinstance(value, list):
            errors.append((path_string(path), f"expected list, got {go_json(value)}"))
            return
        seen: set[PathElement] = set()
        for i, item in enumerate(value):
            pe: PathElement
            if node.list_type == "atomic":
                pe = ("i", i)
            else:
                try:
                    pe = item_element(node, item)
                except _UnkeyableItem as exc:
                    errors.append((path_string(path), f"element {i}: {exc}"))
                    return
                if pe in seen:
                    errors.append((path_string(path), f"duplicate entries for key {element_string(pe)}"))
                seen.add(pe)
            _validate(node.items, item, (*path, pe), errors)
    elif isinstance(value, dict | list) and node.shape == "scalar":
        errors.append((path_string(path), f"expected scalar, got {category(value)}"))


# -- field sets ----------------------------------------------------------------------------------

def to_field_set(node: TypeNode, value: Any) -> FieldSet:
    """The fields ``value`` sets: leaves, list items, null/empty maps and map keys."""
    out: FieldSet = set()
    _to_field_set(node, value, (), out)
    return out


def _to_field_set(node: TypeNode, value: Any, path: Path, out: FieldSet) -> None:
    shape = node.shape_of(value)
    if shape == "map" and isinstance(value, dict):
        if node.map_type == "atomic":
            out.add(path)
            return
        for k, v in value.items():
            child_path = (*path, ("f", k))
            _to_field_set(_child(node, k), v, child_path, out)
            if v is None or (isinstance(v, dict) and not v) or not node.declares(k):
                out.add(child_path)
        return
    if shape == "list" and isinstance(value, list):
        if node.list_type == "atomic":
            out.add(path)
            return
        pes = _elements(node, value)
        if pes is None:
            out.add(path)
            return
        counts: dict[PathElement, int] = {}
        for pe in pes:
            counts[pe] = counts.get(pe, 0) + 1
        for pe, item in zip(pes, value, strict=True):
            item_path = (*path, pe)
            if counts[pe] > 1:
                out.add(item_path)
                continue
            _to_field_set(node.items, item, item_path, out)
            out.add(item_path)
        return
    if shape == "map" and value is None and node.map_type == "granular":
        return
    if shape == "list" and value is None and node.list_type != "atomic":
        return
    out.add(path)


def ensure_named_fields(node: TypeNode, paths: Iterable[Path]) -> FieldSet:
    """``paths`` plus every declared struct field that has owned descendants."""
    out: FieldSet = set(paths)
    types: dict[Path, TypeNode] = {(): node}
    for p in list(out):
        for i in range(1, len(p)):
            prefix = p[:i]
            if prefix in types:
                continue
            parent = types[p[:i - 1]]
            kind, raw = p[i - 1]
            if kind == "f":
                if parent.shape_of({}) == "map" and parent.declares(raw):
                    out.add(prefix)
                types[prefix] = _child(parent, raw)
            else:
                types[prefix] = parent.items
    return out


# -- merge ---------------------------------------------------------------------------------------

def merge(node: TypeNode, lhs: Any, rhs: Any) -> Any:
    """``rhs`` (the configuration) merged into ``lhs`` (the live object); MISSING for absent."""
    if rhs is MISSING:
        return lhs
    if lhs is MISSING:
        return deep_copy(rhs)
    # A null in the configuration owns a granular map or list without emptying it.
    shape = node.shape_of(rhs if rhs is not None else lhs)
    if shape == "map" and isinstance(lhs, dict) and (isinstance(rhs, dict) or rhs is None):
        rmap: dict[str, Any] = rhs or {}
        if node.map_type == "atomic" or (not lhs and not rmap):
            return deep_copy(rhs)
        out: dict[str, Any] = {}
        for k, lv in lhs.items():
            out[k] = merge(_child(node, k), lv, rmap.get(k, MISSING))
        for k, rv in rmap.items():
            if k not in lhs:
                out[k] = deep_copy(rv)
        return out
    if shape == "list" and isinstance(lhs, list) and (isinstance(rhs, list) or rhs is None) and (lhs or rhs):
        if node.list_type != "atomic":
            merged = _merge_list(node, lhs, rhs or [])
            if merged is not None:
                return merged
    return deep_copy(rhs)


def _merge_list(node: TypeNode, lhs: list[Any], rhs: list[Any]) -> list[Any] | None:
    rpes = _elements(node, rhs)
    lpes = _elements(node, lhs)
    if rpes is None or lpes is None:
        return None
    r_items: dict[PathElement, Any] = {}
    for pe, item in zip(rpes, rhs, strict=True):
        r_items.setdefault(pe, item)
    l_items: dict[PathElement, Any] = {}
    for pe, item in zip(lpes, lhs, strict=True):
        # A key the live list holds twice merges as if absent on that side.
        l_items[pe] = MISSING if pe in l_items else item
    # The relative order of shared items follows the configuration; live-only items keep
    # their place among them (structured-merge-diff's merge order).
    shared = iter([pe for pe in rpes if pe in l_items])
    next_shared = next(shared, None)
    emitted: set[PathElement] = set()
    out: list[Any] = []
    li = ri = 0
    while li < len(lpes) or ri < len(rpes):
        if li < len(lpes) and ri < len(rpes):
            pe = lpes[li]
            if pe == rpes[ri]:
                emitted.add(pe)
                out.append(merge(node.items, l_items[pe], r_items[pe]))
                li += 1
                ri += 1
                next_shared = next(shared, None)
                continue
            if pe in r_items and next_shared is not None and next_shared != pe:
                li += 1
                continue
        if li < len(lpes):
            pe = lpes[li]
            if pe not in r_items:
                out.append(lhs[li])
                li += 1
                continue
            if pe in emitted:
                li += 1
        if ri < len(rpes):
            pe = rpes[ri]
            if pe not in emitted:
                out.append(merge(node.items, l_items.get(pe, MISSING), r_items[pe]))
            emitted.add(pe)
            ri += 1
            if next_shared == pe:
                next_shared = next(shared, None)
    return out


# -- compare -------------------------------------------------------------------------------------

@dataclass
class Comparison:
    added: FieldSet = field(default_factory=set)
    modified: FieldSet = field(default_factory=set)
    removed: FieldSet = field(default_factory=set)

    @property
    def same(self) -> bool:
        return not (self.added or self.modified or self.removed)


def compare(node: TypeNode, lhs: Any, rhs: Any) -> Comparison:
    """What changed from ``lhs`` to ``rhs`` (both present; MISSING allowed below the root)."""
    cmp = Comparison()
    _compare(node, lhs, rhs, (), cmp)
    return cmp


def _leaf(lhs: Any, rhs: Any, path: Path, cmp: Comparison) -> None:
    if lhs is MISSING:
        cmp.added.add(path)
    elif rhs is MISSING:
        cmp.removed.add(path)
    elif not json_equal(lhs, rhs):
        cmp.modified.add(path)


_SAME_DEPTH = 3
"""How deep :func:`_compare` looks for unchanged subtrees by their JSON bytes (deeper, the walk is cheap)."""


_SCALARS = frozenset((str, int, float, bool, type(None)))


def same_json(lhs: Any, rhs: Any) -> bool:
    """True when both values are the same JSON (same types, and for containers the same bytes):
    then nothing in them changed. False only means "walk them"."""
    if lhs is rhs:
        return True
    if type(lhs) is not type(rhs):
        return False
    if type(lhs) in _SCALARS:
        return bool(lhs == rhs)
    if not isinstance(lhs, dict | list):
        return False
    try:
        return orjson.dumps(lhs) == orjson.dumps(rhs)
    except TypeError:
        return False


def _compare(node: TypeNode, lhs: Any, rhs: Any, path: Path, cmp: Comparison) -> None:
    if len(path) < _SAME_DEPTH and lhs is not MISSING and rhs is not MISSING and same_json(lhs, rhs):
        # Equal serialisations mean equal types and values everywhere below: no field was
        # added, removed or modified (most of an object is unchanged by a status write).
        return
    present = rhs if rhs is not MISSING else lhs
    shape = node.shape_of(present)
    l_ok = lhs is MISSING or lhs is None
    r_ok = rhs is MISSING or rhs is None
    if shape == "map" and node.map_type == "granular" and (isinstance(lhs, dict) or l_ok) \
            and (isinstance(rhs, dict) or r_ok):
        lmap = lhs if isinstance(lhs, dict) else {}
        rmap = rhs if isinstance(rhs, dict) else {}
        if lmap or rmap:
            implicit = node.implicit_fields
            keys = list(lmap) + [k for k in rmap if k not in lmap]
            for k in keys:
                lv = lmap.get(k, MISSING)
                rv = rmap.get(k, MISSING)
                if k in implicit:
                    # Go value structs (and non-omitempty slices) exist whenever their parent does.
                    if lv is MISSING and isinstance(lhs, dict):
                        lv = deep_copy(implicit[k])
                    if rv is MISSING and isinstance(rhs, dict):
                        rv = deep_copy(implicit[k])
                _compare(_child(node, k), lv, rv, (*path, ("f", k)), cmp)
            if path:
                if lhs is MISSING:
                    cmp.added.add(path)
                elif rhs is MISSING:
                    cmp.removed.add(path)
            return
    if shape == "list" and node.list_type != "atomic" and (isinstance(lhs, list) or l_ok) \
            and (isinstance(rhs, list) or r_ok):
        llist = lhs if isinstance(lhs, list) else []
        rlist = rhs if isinstance(rhs, list) else []
        lpes = _elements(node, llist)
        rpes = _elements(node, rlist)
        if (llist or rlist) and lpes is not None and rpes is not None:
            _compare_items(node, llist, lpes, rlist, rpes, path, cmp)
            if lhs is MISSING:
                cmp.added.add(path)
            elif rhs is MISSING:
                cmp.removed.add(path)
            return
    _leaf(lhs, rhs, path, cmp)


def _compare_items(node: TypeNode, llist: list[Any], lpes: list[PathElement], rlist: list[Any],
                   rpes: list[PathElement], path: Path, cmp: Comparison) -> None:
    order: list[PathElement] = []
    lvals: dict[PathElement, list[Any]] = {}
    rvals: dict[PathElement, list[Any]] = {}
    for pe, item in zip(lpes, llist, strict=True):
        if pe not in lvals:
            order.append(pe)
        lvals.setdefault(pe, []).append(item)
    for pe, item in zip(rpes, rlist, strict=True):
        if pe not in rvals and pe not in lvals:
            order.append(pe)
        rvals.setdefault(pe, []).append(item)
    for pe in order:
        ls = lvals.get(pe, [])
        rs = rvals.get(pe, [])
        item_path = (*path, pe)
        if len(ls) <= 1 and len(rs) <= 1:
            _compare(node.items, ls[0] if ls else MISSING, rs[0] if rs else MISSING, item_path, cmp)
        elif len(ls) >= 2 and len(rs) >= 2:
            if not json_equal(ls, rs):
                cmp.modified.add(item_path)
        elif len(ls) >= 2:
            if rs:
                _compare(node.items, MISSING, rs[0], item_path, cmp)
            cmp.removed.add(item_path)
        else:
            if ls:
                _compare(node.items, ls[0], MISSING, item_path, cmp)
            cmp.added.add(item_path)


# -- removal -------------------------------------------------------------------------------------

def remove_items(node: TypeNode, value: Any, paths: FieldSet) -> Any:
    """``value`` without the fields in ``paths`` (a removed path takes its subtree along).

    A map or list that loses all its members becomes ``None`` (structured-merge-diff
    makes it null; the caller drops nulls).
    """
    if not paths:
        return value
    shape = node.shape_of(value)
    if shape == "map" and isinstance(value, dict):
        if node.map_type == "atomic" or not value:
            return value if value else None
        out: dict[str, Any] = {}
        for k, v in value.items():
            pe: PathElement = ("f", k)
            if (pe,) in paths:
                continue
            sub = with_prefix(paths, pe)
            out[k] = remove_items(_child(node, k), v, sub) if sub else v
        return out or None
    if shape == "list" and isinstance(value, list):
        if node.list_type == "atomic" or not value:
            return value if value else None
        pes = _elements(node, value)
        if pes is None:
            return value
        items: list[Any] = []
        for pe, item in zip(pes, value, strict=True):
            if (pe,) in paths:
                continue
            sub = with_prefix(paths, pe)
            items.append(remove_items(node.items, item, sub) if sub else item)
        return items or None
    return value
