"""Expectations: a controller trusts its cache again only once its own writes show in it."""

from __future__ import annotations

import pytest

from atoll.machinery.expectations import Expectations


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("creates", "observed", "deletes", "deleted", "satisfied"), [
    (0, 0, [], [], True),                       # nothing expected
    (3, 2, [], [], False),                      # one creation not yet seen
    (3, 3, [], [], True),
    (3, 4, [], [], True),                       # extra observations do not go negative
    (0, 0, ["ns/a", "ns/b"], ["ns/a"], False),  # one deletion not yet seen
    (0, 0, ["ns/a", "ns/b"], ["ns/b", "ns/a"], True),
    (2, 2, ["ns/a"], [], False),
])
def test_satisfied_when_every_expected_write_was_observed(creates: int, observed: int, deletes: list[str],
                                                          deleted: list[str], satisfied: bool) -> None:
    exp = Expectations()
    if creates:
        exp.expect_creations("ns/rs", creates)
    if deletes:
        exp.expect_deletions("ns/rs", deletes)
    for _ in range(observed):
        exp.creation_observed("ns/rs")
    for key in deleted:
        exp.deletion_observed("ns/rs", key)
    assert exp.satisfied("ns/rs") is satisfied
    assert exp.satisfied("ns/other")


def test_expectations_expire_and_can_be_forgotten() -> None:
    clock = Clock()
    exp = Expectations(ttl=300, clock=clock)
    exp.expect_creations("ns/rs", 2)
    clock.now = 299
    assert not exp.satisfied("ns/rs")
    clock.now = 301
    assert exp.satisfied("ns/rs")
    exp.expect_creations("ns/rs", 1)
    exp.forget("ns/rs")
    assert exp.satisfied("ns/rs")
