"""JSON values as Go sees them: equality, encoding, printing."""

from __future__ import annotations

from typing import Any

import pytest

from atoll.apiserver.patching.values import drop_nulls, go_json, go_quote, go_string, json_equal

EQUALITY = [
    (1, 1.0, True),
    (True, 1, False),
    (False, 0, False),
    ({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}, True),
    ({"a": 1}, {"a": 1, "b": 2}, False),
    ([1, 2], [2, 1], False),
    ("1", 1, False),
    (None, None, True),
]


@pytest.mark.parametrize(("a", "b", "equal"), EQUALITY)
def test_json_equal(a: Any, b: Any, equal: bool) -> None:
    assert json_equal(a, b) is equal
    assert json_equal(b, a) is equal


GO_JSON = [
    ({"b": 1, "a": [True, None, "x"]}, '{"a":[true,null,"x"],"b":1}'),
    ("<a&b>", '"\\u003ca\\u0026b\\u003e"'),
    ("tab\there\x01", '"tab\\there\\u0001"'),
    ("ünï", '"ünï"'),
    (80.0, "80"),
    (1.5, "1.5"),
    (1e21, "1e+21"),
    (1e-7, "1e-7"),
]


@pytest.mark.parametrize(("value", "text"), GO_JSON)
def test_go_json(value: Any, text: str) -> None:
    assert go_json(value) == text


GO_STRING = [("nginx", '"nginx"'), (80, "80"), (True, "true"), (None, "null"), (1e6, "1e+06"),
             (123.25, "123.25"), ("a\nb", '"a\\nb"')]


@pytest.mark.parametrize(("value", "text"), GO_STRING)
def test_go_string(value: Any, text: str) -> None:
    assert go_string(value) == text


def test_go_quote_escapes_non_printable() -> None:
    assert go_quote("a\x07b\u200bc") == '"a\\ab\\u200bc"'


def test_drop_nulls_keeps_list_elements() -> None:
    assert drop_nulls({"a": None, "b": {"c": None, "d": [None, {"e": None}]}}) == {"b": {"d": [None, {}]}}
