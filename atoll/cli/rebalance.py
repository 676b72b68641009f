"""``atoll rebalance``: schedule workloads afresh across the members, as Karmada's WorkloadRebalancer does.

A workload keeps its placement when clusters come back or join (the scheduler keeps
running replicas where they are). Rebalancing writes a WorkloadRebalancer naming the
workloads; the rebalancer controller bumps their bindings' ``rescheduleTriggeredAt``
and the scheduler divides their replicas as if they were new. Only the named
workloads move.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from atoll.cli import inspect
from atoll.cli import supervisor as sv
from atoll.cli.up import StateDir, fail

WAIT_SECONDS = 30.0


def parse_target(text: str) -> tuple[str, str]:
    """``deployment/nginx`` → (``deployment``, ``nginx``), kubectl's TYPE/NAME form."""
    kind, sep, name = text.partition("/")
    if not sep or not kind or not name or "/" in name:
        raise ValueError(f"{text!r} is not TYPE/NAME (for example deployment/nginx)")
    return kind, name


def rebalance(
    workloads: Annotated[list[str], typer.Argument(help="Workloads as TYPE/NAME, e.g. deployment/nginx.")],
    namespace: Annotated[str, typer.Option("-n", "--namespace", help="Namespace of the workloads.")] = "default",
    wait: Annotated[bool, typer.Option(help="Wait until every workload has a result.")] = True,
    output: inspect.Output = "table",
    state_dir: StateDir = Path(".atoll"),
) -> None:
    """Re-divide the replicas of the named workloads over the member clusters from scratch.

    Examples:

        atoll rebalance deployment/nginx

        atoll rebalance deployment/web statefulset/db -n shop -o json
    """
    from atoll.api.errors import APIError, ServiceUnavailable
    from atoll.federation import rebalance as rb

    inspect._check_output(output)
    try:
        targets = [parse_target(w) for w in workloads]
    except ValueError as exc:
        raise fail(str(exc), sv.EXIT_USAGE) from None
    client = inspect.federation_client(state_dir)

    async def main() -> dict[str, Any]:
        async with client:
            refs = []
            for kind, name in targets:
                res = await inspect.resolve_kind(client, kind)
                ref: dict[str, Any] = {"apiVersion": res.api_version, "kind": res.kind, "name": name}
                if res.namespaced:
                    ref["namespace"] = namespace
                refs.append(ref)
            created: dict[str, Any] = await client.create(rb.WORKLOAD_REBALANCERS, rb.rebalance_request(refs))
            if not wait:
                return created
            deadline = time.monotonic() + WAIT_SECONDS
            current = created
            while time.monotonic() < deadline and not rb.finished(current):
                await asyncio.sleep(0.2)
                current = await client.get(rb.WORKLOAD_REBALANCERS, created["metadata"]["name"])
            return current

    try:
        result = asyncio.run(main())
    except LookupError as exc:
        raise fail(str(exc), sv.EXIT_USAGE) from None
    except ServiceUnavailable as exc:
        raise fail(f"the federation does not answer: {exc}", sv.EXIT_NOT_RUNNING) from None
    except APIError as exc:
        raise fail(f"the federation refused the rebalance: {exc}") from None
    if output != "table":
        inspect._print_data(result, output)
        return
    rows = [["WORKLOAD", "RESULT", "REASON"]]
    for workload, outcome, reason in rb.results(result):
        ns = workload.get("namespace")
        rows.append([f"{workload.get('kind', '').lower()}/{workload.get('name', '')}" + (f" -n {ns}" if ns else ""),
                     outcome, reason])
    if len(rows) == 1:
        typer.echo(f"rebalance {result['metadata']['name']} requested; no result yet (see kubectl get "
                   "workloadrebalancers)")
        return
    inspect._print_table(rows)
    if any(r[1] != "Successful" for r in rows[1:]):
        raise typer.Exit(sv.EXIT_FAILED)


def register(app: typer.Typer) -> None:
    app.command()(rebalance)
