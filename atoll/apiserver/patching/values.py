"""JSON values the way Go sees them: strict equality, canonical text, quoting.

Patching compares and prints values that came from JSON. Python's ``==`` says
``True == 1`` and ``1 == 1.0``; Kubernetes (Go) does not confuse booleans with
numbers, and it prints keys of managed fields and conflict paths with Go's
encoders. These helpers keep those details in one place.
"""

from __future__ import annotations

import decimal
import math
import re
from typing import Any

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING", "__slots__": ()})()
"""Marks an absent value (as opposed to an explicit JSON ``null``)."""


def shape(value: Any) -> str:
    """``map``, ``list`` or ``scalar`` (``null`` included)."""
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    return "scalar"


def category(value: Any) -> str:
    """The JSON type: ``object``, ``array``, ``string``, ``number``, ``boolean`` or ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def json_equal(a: Any, b: Any) -> bool:
    """Deep JSON equality: numbers by value, booleans only equal booleans."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict):
        if not isinstance(b, dict) or len(a) != len(b):
            return False
        return all(k in b and json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return False
        return all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(b, dict | list):
        return False
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


def drop_nulls(value: Any) -> Any:
    """A copy without ``null`` object members (what a round trip through Go types leaves)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def deep_copy(value: Any) -> Any:
    """A copy of a JSON value (faster than :func:`copy.deepcopy` for plain containers)."""
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    return value


_GO_ESCAPES = {
    '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
    "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029",
}


_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\<>&\u2028\u2029]')


def _go_string(s: str) -> str:
    if not _NEEDS_ESCAPE.search(s):
        return f'"{s}"'
    out = ['"']
    for ch in s:
        esc = _GO_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _go_float(f: float) -> str:
    if math.isnan(f) or math.isinf(f):
        raise ValueError(f"unsupported value: {f!r}")
    if f == 0:
        return "0"
    mag = abs(f)
    if 1e-6 <= mag < 1e21:
        text = format(decimal.Decimal(repr(f)).normalize(), "f")
        return text
    text = repr(f)
    mantissa, _, exponent = text.partition("e")
    sign = "-" if exponent.startswith("-") else "+"
    return f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"


def _go_g(f: float) -> str:
    """Go's ``%v`` of a float64 (``%g`` with the shortest precision)."""
    if math.isnan(f) or math.isinf(f):
        return "NaN" if math.isnan(f) else ("+Inf" if f > 0 else "-Inf")
    if f == 0:
        return "0"
    d = decimal.Decimal(repr(f)).normalize()
    sign, digits, exponent = d.as_tuple()
    assert isinstance(exponent, int)
    exp = len(digits) + exponent - 1
    if exp < -4 or exp >= 6:
        mantissa = "".join(map(str, digits))
        text = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
        return f"{'-' if sign else ''}{text}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return format(d, "f")


def go_json(value: Any) -> str:
    """Compact JSON as Go's ``encoding/json`` writes it: sorted keys, HTML-safe escapes."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_go_string(str(k))}:{go_json(value[k])}" for k in sorted(value)) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


_QUOTE_ESCAPES = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n",
                  "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(s: str) -> str:
    """Go's ``%q`` of a string (``strconv.Quote``)."""
    out = ['"']
    for ch in s:
        esc = _QUOTE_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif not ch.isprintable() and ch != " ":
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x80 else (f"\\u{code:04x}" if code <= 0xFFFF
                                                               else f"\\U{code:08x}"))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_string(value: Any) -> str:
    """A value as structured-merge-diff prints it in a field path (``value.ToString``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_g(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, list):
        return "[" + ",".join(go_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return "".join(f"{k}={go_string(v)}" for k, v in value.items())
    return str(value)
