"""Schema-free patches: JSON Patch (RFC 6902) and JSON Merge Patch (RFC 7386).

Status codes follow kube-apiserver: a body that is not a JSON Patch document (not an
array of objects) is ``400 BadRequest``; a document whose operations cannot be applied
(unknown op, missing path, failed ``test``) is ``422 Invalid`` with kube's generic
"the server rejected our request due to an error in our request"; more than 10000
operations is ``413``. A merge patch of ``null`` is ``400 Invalid JSON Patch``, and a
patch whose result is not an object is ``422`` (kube fails to decode it).
"""

from __future__ import annotations

import logging
from typing import Any

import jsonpatch
import jsonpointer
import orjson

from atoll.api.errors import BadRequest, Invalid, RequestEntityTooLarge
from atoll.apiserver.patching.values import category, deep_copy

logger = logging.getLogger(__name__)

MAX_JSON_PATCH_OPERATIONS = 10000
REJECTED = "the server rejected our request due to an error in our request"


def decode(patch: bytes | str | Any) -> Any:
    """Parse a patch body given as bytes or text; anything else is taken as already parsed."""
    if isinstance(patch, bytes | bytearray | memoryview | str):
        try:
            return orjson.loads(patch)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"error decoding patch: {exc}") from None
    return patch


def _not_an_object(result: Any) -> Invalid:
    text = orjson.dumps(result).decode()
    detail = f"json: cannot unmarshal {category(result)} into Go value of type map[string]interface {{}}"
    cause = {"reason": "FieldValueInvalid", "field": "patch", "message": f"Invalid value: {text!r}: {detail}"}
    return Invalid(f' "" is invalid: patch: Invalid value: {text!r}: {detail}', details={"causes": [cause]})


def json_patch(obj: dict[str, Any], patch: bytes | str | list[Any], *, in_place: bool = False) -> dict[str, Any]:
    """Apply an RFC 6902 JSON Patch to a copy of ``obj`` (to ``obj`` itself if ``in_place``:
    the caller's own copy, which saves a second one)."""
    ops = decode(patch)
    if not isinstance(ops, list):
        raise BadRequest(f"json: cannot unmarshal {category(ops)} into Go value of type jsonpatch.Patch")
    for op in ops:
        if not isinstance(op, dict):
            raise BadRequest(f"json: cannot unmarshal {category(op)} into Go value of type jsonpatch.Operation")
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise RequestEntityTooLarge(f"The allowed maximum operations in a JSON patch is "
                                    f"{MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}")
    try:
        result = jsonpatch.JsonPatch(ops).apply(obj if in_place else deep_copy(obj), in_place=True)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, KeyError, IndexError,
            TypeError, ValueError) as exc:
        logger.debug("json patch rejected: %s", exc)
        raise Invalid(REJECTED) from None
    if not isinstance(result, dict):
        raise _not_an_object(result)
    return result


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return deep_copy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


def merge_patch(obj: dict[str, Any], patch: bytes | str | dict[str, Any], *, in_place: bool = False) -> dict[str, Any]:
    """Apply an RFC 7386 JSON Merge Patch: objects merge, ``null`` deletes, anything else replaces.

    ``obj`` is not changed unless ``in_place`` (the caller hands over its own copy)."""
    doc = decode(patch)
    if doc is None:
        raise BadRequest("Invalid JSON Patch")
    result = _merge(obj if in_place else deep_copy(obj), doc)
    if not isinstance(result, dict):
        raise _not_an_object(result)
    return result
