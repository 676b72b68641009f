"""``atoll demo``: a sample app spread over every cloud, to see the federation work in one command.

It applies, to the federation, what a user would write by hand: a Deployment of
``atoll/echo`` (an HTTP server answering with the pod, node and cluster that served the
request), a Service in front of it, and a PropagationPolicy that divides the replicas
over the multi-cloud's clusters by static weights (the first cluster weighs twice the
others, so the division is visibly a choice). Then it waits until every member reports
its share Ready and prints the distribution, as ``atoll get`` shows it.

Everything goes through server-side apply with a field manager of its own, so running
it again is harmless, and ``--delete`` removes exactly what it made.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from atoll.cli import supervisor as sv
from atoll.cli.inspect import _placements, _print_table, federation_client, get_table
from atoll.cli.up import StateDir, fail

if TYPE_CHECKING:
    from atoll.client import Client

Obj = dict[str, Any]
APP = "echo"
FIELD_MANAGER = "atoll-demo"
FAILOVER_AFTER = 10
"""Seconds the demo tolerates a member's outage before its replicas move (``clusterTolerations``)."""


def manifests(clusters: Sequence[str], *, replicas: int = 8, namespace: str = "default",
              image: str = "atoll/echo") -> list[Obj]:
    """The Deployment, Service and PropagationPolicy of the demo, weighted 2:1:1... over ``clusters``."""
    labels = {"app": APP}
    deployment: Obj = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": APP, "namespace": namespace, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{
                                  "name": APP, "image": image, "ports": [{"containerPort": 8080}],
                                  "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                                  "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                                     "periodSeconds": 2}}]}}},
    }
    service: Obj = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": APP, "namespace": namespace, "labels": labels},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }
    weights = [{"targetCluster": {"clusterNames": [name]}, "weight": 2 if i == 0 else 1}
               for i, name in enumerate(clusters)]
    policy: Obj = {
        "apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
        "metadata": {"name": APP, "namespace": namespace},
        "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": APP},
                                       {"apiVersion": "v1", "kind": "Service", "name": APP}],
                 "placement": {"clusterAffinity": {"clusterNames": list(clusters)},
                               # Fail over after 10 s of outage (Karmada's default toleration is 300 s).
                               "clusterTolerations": [
                                   {"key": key, "operator": "Exists", "effect": "NoExecute",
                                    "tolerationSeconds": FAILOVER_AFTER}
                                   for key in ("cluster.karmada.io/not-ready", "cluster.karmada.io/unreachable")],
                               "replicaScheduling": {"replicaSchedulingType": "Divided",
                                                     "replicaDivisionPreference": "Weighted",
                                                     "weightPreference": {"staticWeightList": weights}}}},
    }
    return [deployment, service, policy]


def _resource(obj: Obj) -> Any:
    from atoll.client import Resource
    from atoll.federation import kinds

    if obj["kind"] == "Deployment":
        return Resource("apps/v1", "deployments", True, "Deployment")
    if obj["kind"] == "Service":
        return Resource("v1", "services", True, "Service")
    return kinds.PROPAGATION_POLICIES


async def _clusters(client: Client) -> list[str]:
    from atoll.federation import kinds

    items = (await client.list(kinds.CLUSTERS)).get("items") or []
    return sorted(str(c["metadata"]["name"]) for c in items)


def demo(
    state_dir: StateDir = Path(".atoll"),
    replicas: Annotated[int, typer.Option(min=1, max=200, help="Replicas of the echo Deployment.")] = 8,
    namespace: Annotated[str, typer.Option("-n", "--namespace", help="Namespace on the federation.")] = "default",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every replica to be Ready.")] = 90.0,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the demo instead.")] = False,
) -> None:
    """Apply a sample app (Deployment + Service + PropagationPolicy) and show how it spreads over the clouds.

    The PropagationPolicy divides the replicas by static weights: the first cluster 2, every other 1.

    Examples:

        atoll demo

        kubectl --context aws-eu-west-1 get pods -l app=echo

        atoll get deployment echo

        atoll demo --delete

    Exit codes: 0 every replica Ready (or deleted); 1 not Ready in time; 3 no multi-cloud runs.
    """
    from atoll.api.errors import APIError, NotFound, ServiceUnavailable, Timeout

    client = federation_client(state_dir)

    async def apply() -> list[Obj]:
        async with client:
            clusters = await _clusters(client)
            if not clusters:
                raise sv.SupervisorError("no member cluster has joined the federation yet")
            for obj in manifests(clusters, replicas=replicas, namespace=namespace):
                await client.apply(_resource(obj), obj, force=True, field_manager=FIELD_MANAGER)
            typer.echo(f"applied deployment/{APP}, service/{APP} and propagationpolicy/{APP} in {namespace}; "
                       f"replicas weighted over {', '.join(clusters)}")
            res = _resource({"kind": "Deployment"})
            deadline = time.monotonic() + timeout
            while True:
                placements = await _placements(client, state_dir, res, APP, namespace)
                p = placements[0]
                done = p["scheduled"] and p["health"] == "Healthy" and p["readyReplicas"] == p["replicas"]
                if done or time.monotonic() > deadline:
                    return placements
                await asyncio.sleep(1.0)

    async def remove() -> None:
        async with client:
            for obj in reversed(manifests([], namespace=namespace)):
                try:
                    await client.delete(_resource(obj), obj["metadata"]["name"], namespace)
                except NotFound:
                    pass

    try:
        if delete:
            asyncio.run(remove())
            typer.echo(f"deleted the demo from namespace {namespace}")
            return
        placements = asyncio.run(apply())
    except (ServiceUnavailable, Timeout):
        raise fail(f"the federation at {client.server} does not answer (is `atoll up` running?)",
                   sv.EXIT_NOT_RUNNING) from None
    except sv.SupervisorError as exc:
        raise fail(str(exc), exc.code) from None
    except APIError as exc:
        raise fail(f"the federation refused the demo: {exc}") from None
    _print_table(get_table(placements))
    p = placements[0]
    if not (p["scheduled"] and p["health"] == "Healthy" and p["readyReplicas"] == p["replicas"]):
        raise fail(f"deployment/{APP} was not Ready on every cluster within {timeout:g}s "
                   f"(see: atoll get deployment {APP} -n {namespace})")
    first = p["clusters"][0]["name"] if p["clusters"] else ""
    typer.echo(f"\nEvery replica is Ready. Try:\n  kubectl --context {first} get pods -l app={APP} -n {namespace}\n"
               f"  atoll kill {first}      # and watch: atoll get deployment {APP}")


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the ``atoll`` command."""
    app.command()(demo)
