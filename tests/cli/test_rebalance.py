"""`atoll rebalance`: how workloads are named on the command line."""

from __future__ import annotations

import pytest

from atoll.cli.rebalance import parse_target


@pytest.mark.parametrize(("text", "expected"), [
    ("deployment/nginx", ("deployment", "nginx")),
    ("deploy/web", ("deploy", "web")),
    ("statefulsets.apps/db", ("statefulsets.apps", "db")),
])
def test_targets(text: str, expected: tuple[str, str]) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize("text", ["nginx", "deployment/", "/nginx", "a/b/c"])
def test_bad_targets(text: str) -> None:
    with pytest.raises(ValueError, match="is not TYPE/NAME"):
        parse_target(text)
