"""etcd v3 store (real etcd, e.g. Debian's ``etcd-server``), through the ``aetcd`` client.

Preconditions are etcd transactions comparing ``create_revision`` (create: must be 0)
and ``mod_revision`` (update/delete with an expected revision); the store revision is
etcd's own, so ``resourceVersion`` means the same thing as on kube-apiserver. Several
endpoints (``etcd://h1:p1,h2:p2``) are tried in turn when one stops answering.

A path after the endpoints (``etcd://h1:p1,h2:p2/atoll/aws``) is a key prefix, as
kube-apiserver's ``--etcd-prefix``: every key this store writes, reads, ranges over and
watches lives under it, so several API servers (the federation and every member of an
``atoll up``) share one etcd cluster without seeing each other's objects. Keys handed
out are the store's own (the prefix stripped); revisions stay etcd's global ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aetcd
from aetcd import rpc
from aetcd.exceptions import (
    ClientError,
    ConnectionFailedError,
    ConnectionTimeoutError,
    RevisionCompactedError,
)

from atoll.api.errors import AlreadyExists, Conflict, Gone, NotFound, ServiceUnavailable
from atoll.storage.protocol import KeyValue, RangeResult, WatchEvent

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _range_end(prefix: bytes) -> bytes:
    """etcd's prefix range end: the prefix with its last byte incremented."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\x00"


def parse_url(url: str) -> tuple[list[tuple[str, int]], str]:
    """``etcd://H:P[,H:P][/PREFIX]`` -> endpoints and the key prefix ("" or "/PREFIX", no trailing slash)."""
    rest = url.removeprefix("etcd://")
    hosts, slash, path = rest.partition("/")
    prefix = ("/" + path.strip("/")) if slash and path.strip("/") else ""
    return parse_endpoints("etcd://" + hosts), prefix


def parse_endpoints(url: str) -> list[tuple[str, int]]:
    rest = url.removeprefix("etcd://")
    out: list[tuple[str, int]] = []
    for part in rest.split(","):
        part = part.strip().rstrip("/")
        host, sep, port = part.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ValueError(f"bad etcd endpoint {part!r} in {url!r}: expected etcd://HOST:PORT[,HOST:PORT][/PREFIX]")
        out.append((host.strip("[]"), int(port)))
    return out


def _kv(kv: Any, strip: int = 0) -> KeyValue:
    return KeyValue(kv.key.decode()[strip:], bytes(kv.value), int(kv.create_revision), int(kv.mod_revision))


class EtcdStore:
    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self._endpoints, self.prefix = parse_url(url)
        self._strip = len(self.prefix.encode())
        self._current = 0
        self._timeout = timeout
        self._client: aetcd.Client | None = None
        self._lock = asyncio.Lock()
        self._compacted = 0

    async def _get_client(self) -> aetcd.Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    host, port = self._endpoints[self._current]
                    client = aetcd.Client(host=host, port=port, timeout=int(self._timeout))
                    await client.connect()
                    self._client = client
        return self._client

    async def _failover(self) -> None:
        async with self._lock:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    await self._client.close()
            self._client = None
            self._current = (self._current + 1) % len(self._endpoints)
            logger.warning("etcd endpoint failed; switching to %s:%d", *self._endpoints[self._current])

    async def _call(self, fn: Callable[[aetcd.Client], Awaitable[T]]) -> T:
        last: Exception | None = None
        for _ in range(max(2, len(self._endpoints) + 1)):
            try:
                return await fn(await self._get_client())
            except (ConnectionFailedError, ConnectionTimeoutError, OSError) as exc:
                last = exc
                await self._failover()
        raise ServiceUnavailable(f"etcd unavailable at {self.url}: {last}")

    def _key(self, key: str) -> bytes:
        return (self.prefix + key).encode()

    def _range_key(self, prefix: str) -> bytes:
        """A range prefix; the whole store under a key prefix is ``PREFIX/`` (never a sibling ``PREFIX2/``)."""
        if prefix or not self.prefix:
            return self._key(prefix)
        return (self.prefix + "/").encode()

    async def connect(self) -> None:
        await self._call(lambda c: c.status())

    # -- Store protocol ---------------------------------------------------------------------
    async def get(self, key: str) -> KeyValue | None:
        got = await self._call(lambda c: c.get(self._key(key)))
        return _kv(got, self._strip) if got is not None else None

    async def create(self, key: str, value: bytes) -> KeyValue:
        k = self._key(key)

        async def txn(c: aetcd.Client) -> tuple[bool, list[Any]]:
            result: tuple[bool, list[Any]] = await c.transaction(
                compare=[c.transactions.create(k) == 0], success=[c.transactions.put(k, value)], failure=[])
            return result

        ok, responses = await self._call(txn)
        if not ok:
            raise AlreadyExists(f"key {key} already exists")
        rev = int(responses[0].response_put.header.revision)
        return KeyValue(key, value, rev, rev)

    async def _guarded(self, key: str, expected: int | None, success: Callable[[aetcd.Client], list[Any]]
                       ) -> tuple[Any, KeyValue]:
        k = self._key(key)

        async def txn(c: aetcd.Client) -> tuple[bool, list[Any]]:
            compare = [c.transactions.create(k) > 0]
            if expected is not None:
                compare.append(c.transactions.mod(k) == expected)
            result: tuple[bool, list[Any]] = await c.transaction(
                compare=compare, success=[c.transactions.get(k), *success(c)], failure=[c.transactions.get(k)])
            return result

        ok, responses = await self._call(txn)
        current = responses[0]
        if not current:
            raise NotFound(f"key {key} not found")
        old = _kv(current[0][1], self._strip)
        if not ok:
            raise Conflict(f"key {key} was modified (revision {old.mod_revision}, expected {expected})")
        return responses[1], old

    async def update(self, key: str, value: bytes, *, expected_revision: int | None = None) -> KeyValue:
        resp, old = await self._guarded(key, expected_revision, lambda c: [c.transactions.put(self._key(key), value)])
        rev = int(resp.response_put.header.revision)
        return KeyValue(key, value, old.create_revision, rev)

    async def delete(self, key: str, *, expected_revision: int | None = None) -> KeyValue:
        resp, old = await self._guarded(key, expected_revision, lambda c: [c.transactions.delete(self._key(key))])
        rev = int(resp.response_delete_range.header.revision)
        return KeyValue(key, old.value, old.create_revision, rev)

    async def range(self, prefix: str, *, revision: int | None = None, limit: int | None = None,
                    start_after: str | None = None) -> RangeResult:
        p = self._range_key(prefix)
        start = (self._key(start_after) + b"\x00") if start_after and start_after >= prefix else p
        request = rpc.RangeRequest(key=start or b"\x00", range_end=_range_end(p), revision=revision or 0,
                                   limit=limit or 0, sort_order=rpc.RangeRequest.ASCEND,
                                   sort_target=rpc.RangeRequest.KEY)

        async def do(c: aetcd.Client) -> Any:
            return await c.kvstub.Range(request, timeout=self._timeout, metadata=c.metadata)

        try:
            resp = await self._call(do)
        except Exception as exc:
            if "compacted" in str(exc):
                raise Gone(f"required revision {revision} has been compacted") from exc
            if "future revision" in str(exc):
                raise Gone(f"required revision {revision} is a future revision") from exc
            raise
        kvs = [_kv(kv, self._strip) for kv in resp.kvs]
        at = revision or int(resp.header.revision)
        return RangeResult(kvs, at, bool(resp.more), int(resp.count))

    def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[WatchEvent]:
        return self._watch(prefix, after_revision)

    async def _watch(self, prefix: str, after_revision: int) -> AsyncIterator[WatchEvent]:
        p = self._range_key(prefix)
        client = await self._get_client()
        try:
            w = await client.watch(p or b"\x00", range_end=_range_end(p), start_revision=after_revision + 1, prev_kv=True)
        except RevisionCompactedError as exc:
            raise Gone(f"required revision {after_revision + 1} has been compacted") from exc
        try:
            async for ev in w:
                kv = _kv(ev.kv, self._strip)
                prev = _kv(ev.prev_kv, self._strip) if ev.prev_kv is not None else None
                if ev.kind == "DELETE":
                    gone = KeyValue(kv.key, prev.value if prev else b"", prev.create_revision if prev else 0,
                                    kv.mod_revision)
                    yield WatchEvent("DELETE", gone, kv.mod_revision, prev)
                else:
                    yield WatchEvent("PUT", kv, kv.mod_revision, prev)
        except RevisionCompactedError as exc:
            raise Gone(f"required revision {after_revision + 1} has been compacted") from exc
        except ClientError as exc:
            raise ServiceUnavailable(f"etcd watch failed: {exc}") from exc
        finally:
            with contextlib.suppress(Exception):
                await w.cancel()

    async def current_revision(self) -> int:
        async def do(c: aetcd.Client) -> Any:
            return await c.kvstub.Range(rpc.RangeRequest(key=b"\x00", limit=1), timeout=self._timeout,
                                        metadata=c.metadata)

        resp = await self._call(do)
        return int(resp.header.revision)

    async def compacted_revision(self) -> int:
        """The newest compaction this client made or saw (etcd does not report it directly)."""
        return self._compacted

    async def compact(self, revision: int) -> None:
        try:
            await self._call(lambda c: c.compact(revision))
        except Exception as exc:
            if "compacted" not in str(exc):
                raise
        self._compacted = max(self._compacted, revision)

    async def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None
