"""Versioned key-value storage with watch: memory (tests), SQLite (default) and etcd."""

from __future__ import annotations

from pathlib import Path

from atoll.storage.protocol import KeyValue, RangeResult, Store, WatchEvent

__all__ = ["KeyValue", "RangeResult", "Store", "WatchEvent", "open_store"]


async def open_store(url: str) -> Store:
    """Open ``memory://``, ``sqlite:///ABS/PATH.db`` / ``sqlite://REL.db`` or ``etcd://H:P[,H:P][/PREFIX]``.

    An etcd URL's path is a key prefix (kube-apiserver's ``--etcd-prefix``): API servers
    sharing one etcd each keep their objects under their own.
    """
    if url.startswith("memory://"):
        from atoll.storage.memory import MemoryStore

        return MemoryStore()
    if url.startswith("sqlite://"):
        from atoll.storage.sqlite import SqliteStore

        path = url[len("sqlite://"):]
        if not path or path == "/":
            raise ValueError(f"bad storage URL {url!r}: expected sqlite:///PATH/TO/FILE.db")
        return SqliteStore(Path(path))
    if url.startswith("etcd://"):
        from atoll.storage.etcd import EtcdStore

        store = EtcdStore(url)
        await store.connect()
        return store
    raise ValueError(f"unknown storage URL {url!r}: use sqlite:///PATH, etcd://HOST:PORT[/PREFIX] or memory://")
