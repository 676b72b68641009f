"""etcd key prefixes (``etcd://H:P/PREFIX``, kube's ``--etcd-prefix``): the whole conformance suite under a
prefix, with a neighbour writing under a sibling prefix in the same etcd, plus isolation itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atoll.storage import open_store
from atoll.storage.etcd import parse_url
from atoll.storage.etcd_server import EtcdServer
from atoll.storage.protocol import Store
from tests.conftest import require_etcd
from tests.storage.test_conformance import (  # noqa: F401 - collected here again, against a prefixed store
    test_compaction_makes_old_revisions_gone,
    test_concurrent_conditional_updates_one_winner,
    test_concurrent_creates_lose_nothing,
    test_create_get_update_delete_with_preconditions,
    test_many_watchers_see_every_event,
    test_range_prefix_limit_continue_and_past_revision,
    test_revisions_are_global_and_monotonic,
    test_watch_replays_then_follows_live,
)

pytestmark = pytest.mark.etcd


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A store under ``/atoll/a`` while another one writes the same keys under the sibling ``/atoll/ab``."""
    require_etcd()
    async with EtcdServer(tmp_path / "etcd") as endpoint:
        neighbour = await open_store(f"{endpoint}/atoll/ab")
        s = await open_store(f"{endpoint}/atoll/a")
        try:
            for key in ("/t/a", "/r/0", "/p/x", "/w/1", "/c/0"):
                await neighbour.create(key, b"neighbour")
            yield s
        finally:
            await s.close()
            await neighbour.close()


@pytest.mark.parametrize(("url", "endpoints", "prefix"), [
    ("etcd://127.0.0.1:2379", [("127.0.0.1", 2379)], ""),
    ("etcd://127.0.0.1:2379/", [("127.0.0.1", 2379)], ""),
    ("etcd://127.0.0.1:2379/atoll", [("127.0.0.1", 2379)], "/atoll"),
    ("etcd://a:1,b:2/atoll/aws-eu-west-1/", [("a", 1), ("b", 2)], "/atoll/aws-eu-west-1"),
    ("etcd://[::1]:2379/x", [("::1", 2379)], "/x"),
])
def test_urls_name_endpoints_and_a_prefix(url: str, endpoints: list[tuple[str, int]], prefix: str) -> None:
    assert parse_url(url) == (endpoints, prefix)


def test_a_prefix_without_endpoints_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="etcd://HOST:PORT"):
        parse_url("etcd:///atoll")


async def test_prefixed_stores_share_revisions_but_not_keys(tmp_path: Path) -> None:
    require_etcd()
    async with EtcdServer(tmp_path / "etcd") as endpoint:
        a, b, raw = (await open_store(f"{endpoint}/fed"), await open_store(f"{endpoint}/fed2"),
                     await open_store(endpoint))
        try:
            ka = await a.create("/registry/pods/x", b"a")
            kb = await b.create("/registry/pods/x", b"b")  # same key, other prefix: no AlreadyExists
            assert kb.mod_revision > ka.mod_revision  # one etcd, one revision sequence
            got = await a.get("/registry/pods/x")
            assert got is not None and got.value == b"a" and got.key == "/registry/pods/x"
            assert [kv.key for kv in (await a.range("")).kvs] == ["/registry/pods/x"]
            assert sorted(kv.key for kv in (await raw.range("")).kvs) == ["/fed/registry/pods/x",
                                                                          "/fed2/registry/pods/x"]
            await b.delete("/registry/pods/x")
            assert await a.get("/registry/pods/x") is not None
        finally:
            for s in (a, b, raw):
                await s.close()
