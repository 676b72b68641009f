"""Field paths and sets of them, and their ``FieldsV1`` form in ``managedFields``.

A path is a tuple of elements, each one of

* ``("f", name)``   a member of a map (``f:name`` in FieldsV1, ``.name`` in messages);
* ``("k", json)``   an item of a ``map`` list, by its keys (``k:{"name":"nginx"}``,
  ``[name="nginx"]``); the JSON is canonical (sorted keys, Go escaping) so equal
  keys are equal strings;
* ``("v", json)``   an item of a ``set`` list, by value (``v:"a"``, ``[="a"]``);
* ``("i", index)``  a list index (``i:0``, ``[0]``); read, never produced.

A field set is a plain Python ``set`` of paths: union, difference and intersection
are the set operators, exactly structured-merge-diff's (non-recursive) ones.
In FieldsV1 a path that is both owned itself and has owned descendants carries
``".": {}``; ordering follows structured-merge-diff (fields, then keys, values,
indexes; each sorted), which is what kube-apiserver serialises.
"""

from __future__ import annotations

import functools
import json
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

from atoll.apiserver.patching.values import category, go_json, go_string

PathElement = tuple[str, Any]
Path = tuple[PathElement, ...]
FieldSet = set[Path]


def field(name: str) -> PathElement:
    return ("f", name)


@functools.lru_cache(maxsize=4096)
def _scalar_key_text(items: tuple[tuple[str, type, Any], ...]) -> str:
    return go_json({name: value for name, _, value in items})


def key_element(keys: Mapping[str, Any]) -> PathElement:
    if all(isinstance(v, str | int | float | bool) or v is None for v in keys.values()):
        # typed so that True and 1 (equal and equally hashed in Python) stay apart
        return ("k", _scalar_key_text(tuple(sorted((k, type(v), v) for k, v in keys.items()))))
    return ("k", go_json(dict(keys)))


def value_element(value: Any) -> PathElement:
    return ("v", go_json(value))


def _value_rank(v: Any) -> tuple[Any, ...]:
    cat = category(v)
    if cat == "number":
        return (0, float(v))
    if cat == "string":
        return (1, v)
    if cat == "boolean":
        return (2, v)
    if cat == "array":
        return (3, tuple(_value_rank(x) for x in v))
    if cat == "object":
        return (4, tuple((k, _value_rank(v[k])) for k in sorted(v)))
    return (5,)


def element_sort_key(pe: PathElement) -> tuple[Any, ...]:
    """structured-merge-diff's order: field names, then keys, then values, then indexes."""
    kind, raw = pe
    if kind == "f":
        return (0, raw)
    if kind == "k":
        keys = json.loads(raw)
        return (1, tuple((k, _value_rank(keys[k])) for k in sorted(keys)))
    if kind == "v":
        return (2, _value_rank(json.loads(raw)))
    return (3, raw)


def element_string(pe: PathElement) -> str:
    """One element as structured-merge-diff prints it (``.name``, ``[name="x"]``, ``[="v"]``, ``[0]``)."""
    kind, raw = pe
    if kind == "f":
        return "." + str(raw)
    if kind == "k":
        keys = json.loads(raw)
        return "[" + ",".join(f"{k}={go_string(keys[k])}" for k in sorted(keys)) + "]"
    if kind == "v":
        return f"[={go_string(json.loads(raw))}]"
    return f"[{raw}]"


def path_string(path: Path) -> str:
    """A path as kube-apiserver prints it in conflicts: ``.spec.containers[name="nginx"].image``."""
    return "".join(element_string(pe) for pe in path)


def element_key(pe: PathElement) -> str:
    """The FieldsV1 key of one element: ``f:name``, ``k:{...}``, ``v:...``, ``i:0``."""
    kind, raw = pe
    return f"{kind}:{raw}"


def parse_element(key: str) -> PathElement | None:
    """A FieldsV1 key back into an element; None for element types this version ignores."""
    if len(key) < 2 or key[1] != ":":
        raise ValueError(f"missing colon: {key}")
    kind, raw = key[0], key[2:]
    if kind == "f":
        return ("f", raw)
    if kind == "k":
        keys = json.loads(raw)
        if not isinstance(keys, dict):
            raise ValueError(f"key element is not an object: {key}")
        return key_element(keys)
    if kind == "v":
        return value_element(json.loads(raw))
    if kind == "i":
        return ("i", int(raw))
    return None


def with_prefix(paths: Iterable[Path], pe: PathElement) -> FieldSet:
    """The descendants of ``pe`` (relative to it), as structured-merge-diff's ``WithPrefix``."""
    return {p[1:] for p in paths if len(p) > 1 and p[0] == pe}


def filter_out(paths: Iterable[Path], prefixes: Iterable[Path]) -> FieldSet:
    """``paths`` without any that start with one of ``prefixes`` (reset/ignored fields)."""
    pre = [tuple(p) for p in prefixes]
    if not pre:
        return set(paths)
    return {p for p in paths if not any(p[:len(x)] == x for x in pre)}


class _Tree:
    __slots__ = ("children", "member")

    def __init__(self) -> None:
        self.member = False
        self.children: dict[PathElement, _Tree] = {}


def _tree(paths: Iterable[Path]) -> _Tree:
    root = _Tree()
    for path in paths:
        node = root
        for pe in path:
            node = node.children.setdefault(pe, _Tree())
        node.member = True
    return root


_MEMO_SIZE = 2048


class _Memo:
    """A small LRU of conversions between field sets and FieldsV1.

    Every write re-decodes and re-encodes each manager's entry of the object it changes,
    and almost all of those entries are the same from one write to the next (a kubelet's
    status entry, a controller's spec entry), so both directions are remembered. Values
    are kept immutable (``frozenset``, encoded bytes) and handed out as fresh copies.
    """

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._size = size

    def get(self, key: Any) -> Any:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self._items[key] = value
        if len(self._items) > self._size:
            self._items.popitem(last=False)


_TO_FIELDS = _Memo(_MEMO_SIZE)
_FROM_FIELDS = _Memo(_MEMO_SIZE)


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """The FieldsV1 object of a set of paths."""
    key = frozenset(paths)
    encoded: bytes | None = _TO_FIELDS.get(key)
    if encoded is None:
        fields = _to_fields_v1(key)
        try:
            encoded = orjson.dumps(fields)
        except TypeError:
            return fields
        _TO_FIELDS.put(key, encoded)
        return fields
    out: dict[str, Any] = orjson.loads(encoded)
    return out


def _to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:

    def emit(node: _Tree) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if node.member and node.children:
            out["."] = {}
        for pe in sorted(node.children, key=element_sort_key):
            out[element_key(pe)] = emit(node.children[pe])
        return out

    return emit(_tree(paths))


def from_fields_v1(fields: Mapping[str, Any]) -> FieldSet:
    """The paths of a FieldsV1 object; raises ValueError if it is malformed."""
    try:
        key = orjson.dumps(fields)
    except TypeError:
        return _from_fields_v1(fields)
    known: frozenset[Path] | None = _FROM_FIELDS.get(key)
    if known is None:
        out = _from_fields_v1(fields)
        _FROM_FIELDS.put(key, frozenset(out))
        return out
    return set(known)


def _from_fields_v1(fields: Mapping[str, Any]) -> FieldSet:
    out: FieldSet = set()

    def walk(obj: Mapping[str, Any], prefix: Path) -> None:
        for key, sub in obj.items():
            if key == ".":
                continue
            if not isinstance(sub, Mapping):
                raise ValueError(f"expected an object at {key!r}")
            pe = parse_element(key)
            if pe is None:
                continue
            path = (*prefix, pe)
            if not sub or "." in sub:
                out.add(path)
            walk(sub, path)

    if not isinstance(fields, Mapping):
        raise ValueError("fieldsV1 must be an object")
    walk(fields, ())
    return out


def iterate_sorted(paths: Iterable[Path]) -> Iterator[Path]:
    """Paths in structured-merge-diff's iteration order (members of a level before its subtrees)."""

    def walk(node: _Tree, prefix: Path) -> Iterator[Path]:
        keys = sorted(node.children, key=element_sort_key)
        for pe in keys:
            if node.children[pe].member:
                yield (*prefix, pe)
        for pe in keys:
            child = node.children[pe]
            if child.children:
                yield from walk(child, (*prefix, pe))

    return walk(_tree(paths), ())
