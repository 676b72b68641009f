"""ServiceAccount controller: default ServiceAccounts and the root CA ConfigMap, kept in every namespace."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

import pytest

from atoll.api.errors import NotFound
from atoll.client import Client
from atoll.cluster.controllers.serviceaccount import (
    CONFIGMAPS,
    DESCRIPTION,
    DESCRIPTION_ANNOTATION,
    NAMESPACES,
    ROOT_CA_CONFIGMAP,
    SERVICEACCOUNTS,
    ServiceAccountController,
    is_active,
    root_ca_needs_write,
)
from tests.conftest import RunningServer
from tests.waiting import eventually

Obj = dict[str, Any]
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(("namespace", "active"), [
    ({"metadata": {"name": "a"}}, True),
    ({"metadata": {"name": "a"}, "status": {"phase": "Active"}}, True),
    ({"metadata": {"name": "a"}, "status": {"phase": "Terminating"}}, False),
    ({"metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:00:00Z"}}, False),
])
def test_is_active(namespace: Obj, active: bool) -> None:
    assert is_active(namespace) is active


@pytest.mark.parametrize(("current", "needed"), [
    (None, True),
    ({"data": {"ca.crt": PEM}, "metadata": {"annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}}}, False),
    ({"data": {"ca.crt": PEM}, "metadata": {}}, True),                              # the description is missing
    ({"data": {"ca.crt": "other"}, "metadata": {"annotations": {DESCRIPTION_ANNOTATION: "x"}}}, True),
    ({"data": {"ca.crt": PEM, "extra": "1"}, "metadata": {"annotations": {DESCRIPTION_ANNOTATION: "x"}}}, True),
])
def test_root_ca_needs_write(current: Obj | None, needed: bool) -> None:
    assert root_ca_needs_write(current, PEM) is needed


async def _exists(client: Client, res: Any, name: str, ns: str) -> Obj | None:
    try:
        obj: Obj = await client.get(res, name, ns)
        return obj
    except NotFound:
        return None


async def test_default_service_accounts_and_root_ca_everywhere(apiserver: RunningServer) -> None:
    ca_file = apiserver.state_dir / "pki" / "ca.crt"
    ca_pem = ca_file.read_text() if ca_file.exists() else PEM
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        stop = asyncio.Event()
        controller = ServiceAccountController(client, ca_pem=ca_pem)
        task = asyncio.create_task(controller.run(stop))
        try:
            await client.create(NAMESPACES, {"metadata": {"name": "sa-new"}})
            for ns in ("default", "kube-system", "sa-new"):
                await eventually(functools.partial(_exists, client, SERVICEACCOUNTS, "default", ns), 20)
                cm = await eventually(functools.partial(_exists, client, CONFIGMAPS, ROOT_CA_CONFIGMAP, ns), 20)
                assert cm["data"] == {"ca.crt": ca_pem}
                assert cm["metadata"]["annotations"][DESCRIPTION_ANNOTATION] == DESCRIPTION
            # Deleted: recreated (a new uid).
            old = await client.get(SERVICEACCOUNTS, "default", "sa-new")
            await client.delete(SERVICEACCOUNTS, "default", "sa-new")

            async def recreated() -> bool:
                sa = await _exists(client, SERVICEACCOUNTS, "default", "sa-new")
                return sa is not None and sa["metadata"]["uid"] != old["metadata"]["uid"]

            await eventually(recreated, 20)
            # Edited: put back; deleted: recreated.
            await client.patch(CONFIGMAPS, ROOT_CA_CONFIGMAP, {"data": {"ca.crt": "tampered"}}, "sa-new")

            async def restored() -> bool:
                cm = await _exists(client, CONFIGMAPS, ROOT_CA_CONFIGMAP, "sa-new")
                return cm is not None and cm["data"] == {"ca.crt": ca_pem}

            await eventually(restored, 20)
            await client.delete(CONFIGMAPS, ROOT_CA_CONFIGMAP, "sa-new")
            await eventually(restored, 20)
            # Other ServiceAccounts are none of its business.
            await client.create(SERVICEACCOUNTS, {"metadata": {"name": "builder", "namespace": "sa-new"}})
            await client.delete(SERVICEACCOUNTS, "builder", "sa-new")
            await asyncio.sleep(0.3)
            assert await _exists(client, SERVICEACCOUNTS, "builder", "sa-new") is None
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)


async def test_without_a_ca_no_configmap_is_published(apiserver: RunningServer) -> None:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        stop = asyncio.Event()
        task = asyncio.create_task(ServiceAccountController(client).run(stop))
        try:
            await client.create(NAMESPACES, {"metadata": {"name": "sa-noca"}})
            await eventually(lambda: _exists(client, SERVICEACCOUNTS, "default", "sa-noca"), 20)
            assert await _exists(client, CONFIGMAPS, ROOT_CA_CONFIGMAP, "sa-noca") is None
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)
