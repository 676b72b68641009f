"""The storage seam: a versioned key-value store with watch.

Every backend (memory, SQLite, etcd) implements :class:`Store`. The semantics follow
etcd v3, because that is what kube-apiserver expects of its storage:

* One global revision counter, bumped by every successful create, update or delete.
  An object's ``mod_revision`` becomes its ``resourceVersion``.
* ``create`` fails with ``AlreadyExists`` if the key exists; ``update``/``delete`` fail
  with ``NotFound`` if it does not and with ``Conflict`` when ``expected_revision`` is
  given and differs from the key's current ``mod_revision``.
* ``range`` reads a consistent snapshot at ``revision`` (default: current).
* ``watch`` yields every change with ``revision > after_revision`` in revision order,
  then follows live changes until the iterator is closed.
* After ``compact(r)``, reading at or watching from a revision below ``r`` raises ``Gone``.
* An acknowledged write (the coroutine returned) survives a crash of the process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, NewType, Protocol, runtime_checkable

Revision = NewType("Revision", int)


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """A change at ``revision``. For DELETE, ``kv`` is the value as it was when deleted
    (``kv.mod_revision`` is the deleting revision) and ``prev`` the same old value."""

    type: Literal["PUT", "DELETE"]
    kv: KeyValue
    revision: int
    prev: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class RangeResult:
    kvs: list[KeyValue]
    revision: int
    """The store revision the snapshot was taken at."""
    more: bool = False
    """True when ``limit`` cut the result short."""
    count: int = 0
    """How many keys matched in all (before ``limit``)."""


@runtime_checkable
class Store(Protocol):
    async def get(self, key: str) -> KeyValue | None: ...

    async def create(self, key: str, value: bytes) -> KeyValue: ...

    async def update(self, key: str, value: bytes, *, expected_revision: int | None = None) -> KeyValue: ...

    async def delete(self, key: str, *, expected_revision: int | None = None) -> KeyValue:
        """Remove ``key``; returns the deleted value with ``mod_revision`` = deleting revision."""
        ...

    async def range(
        self,
        prefix: str,
        *,
        revision: int | None = None,
        limit: int | None = None,
        start_after: str | None = None,
    ) -> RangeResult:
        """Keys starting with ``prefix`` (sorted), optionally only those > ``start_after``."""
        ...

    def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[WatchEvent]: ...

    async def current_revision(self) -> int: ...

    async def compacted_revision(self) -> int: ...

    async def compact(self, revision: int) -> None: ...

    async def close(self) -> None: ...
