"""Expectations: what a controller created or deleted and has not yet seen in its cache.

kube's ``ControllerExpectations``: a controller that just created three pods must not
count pods again until its informer has seen those three, or a reconcile in between
(triggered by any event) sees too few and creates more. Before acting it records what
it expects; the informer's handlers tick them off; ``satisfied(key)`` says whether the
cache can be trusted for that owner again. Records expire (kube: 5 minutes) so that a
lost event cannot stall a controller for ever.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

EXPECTATIONS_TTL = 300.0


@dataclass
class _Record:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)
    """Keys of objects whose deletion is expected (kube's UID-tracking expectations)."""
    at: float = 0.0


class Expectations:
    def __init__(self, *, ttl: float = EXPECTATIONS_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._records: dict[str, _Record] = {}

    def expect_creations(self, owner: str, count: int) -> None:
        record = self._records.setdefault(owner, _Record())
        record.adds += count
        record.at = self._clock()

    def expect_deletions(self, owner: str, keys: list[str]) -> None:
        record = self._records.setdefault(owner, _Record())
        record.deletes.update(keys)
        record.at = self._clock()

    def creation_observed(self, owner: str) -> None:
        """An object the owner created appeared (or a create failed and will not)."""
        record = self._records.get(owner)
        if record is not None and record.adds > 0:
            record.adds -= 1

    def deletion_observed(self, owner: str, key: str) -> None:
        record = self._records.get(owner)
        if record is not None:
            record.deletes.discard(key)

    def satisfied(self, owner: str) -> bool:
        record = self._records.get(owner)
        if record is None:
            return True
        if (record.adds <= 0 and not record.deletes) or self._clock() - record.at > self.ttl:
            del self._records[owner]
            return True
        return False

    def forget(self, owner: str) -> None:
        self._records.pop(owner, None)
