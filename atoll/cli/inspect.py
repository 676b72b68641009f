"""``atoll status`` and ``atoll get``: the multi-cloud as one picture, from the federation's own objects.

``status`` reads the federation's Cluster objects (what its cluster status controller
probed: Ready, version, node and resource summaries), adds what only the topology
knows (provider, region, cost per hour) and what only the supervisor knows (is the
process running, or was it ``atoll kill``\\ ed), so a user sees an outage the way the
federation sees it and the way the machine does.

``get`` shows a template on the federation and where it runs: the clusters of its
ResourceBinding's ``spec.clusters`` with their replicas, and per cluster what the
members reported (``status.aggregatedStatus``: ready replicas, health). A cluster the
binding status controller has not reported on yet is asked directly, through its
context in the multi-cloud's kubeconfig, and the row says so (``source: member``).

The row builders are pure functions of objects (tested table-driven); the commands only
fetch and print.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from atoll.cli import supervisor as sv
from atoll.cli.up import StateDir, console, fail

if TYPE_CHECKING:
    from atoll.client import Client, Resource
    from atoll.topology import Topology

Obj = dict[str, Any]
OUTPUTS = ("table", "json", "yaml")

Output = Annotated[str, typer.Option("-o", "--output", help="table (default), json or yaml.")]


# -- status ------------------------------------------------------------------------------------------

def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return {}


def _quantity(value: Any) -> Fraction:
    from atoll.api.meta import parse_quantity

    try:
        return parse_quantity(value) if value not in (None, "") else Fraction(0)
    except ValueError:
        return Fraction(0)


def _resource(summary: Mapping[str, Any], name: str) -> dict[str, str]:
    allocatable = (summary.get("allocatable") or {}).get(name)
    allocated = (summary.get("allocated") or {}).get(name)
    return {"allocated": str(allocated or "0"), "allocatable": str(allocatable or "0")}


def status_rows(clusters: Sequence[Mapping[str, Any]], topology: Topology | None,
                state: sv.SupervisorState | None) -> list[Obj]:
    """One row per member: the federation's Cluster objects, then topology members it does not know yet."""
    rows: list[Obj] = []
    known = {str((c.get("metadata") or {}).get("name")): c for c in clusters}
    names = list(known)
    if topology is not None:
        names += [c.name for c in topology.clusters if c.name not in known]
    for name in names:
        obj = known.get(name) or {}
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        topo = None
        if topology is not None:
            topo = next((c for c in topology.clusters if c.name == name), None)
        ready = _condition(obj, "Ready")
        nodes = status.get("nodeSummary") or {}
        summary = status.get("resourceSummary") or {}
        rec = state.members.get(name) if state is not None else None
        rows.append({
            "name": name,
            "provider": str(spec.get("provider") or (topo.provider if topo else "")),
            "region": str(spec.get("region") or (topo.region if topo else "")),
            "zones": list(spec.get("zones") or (topo.zones if topo else [])),
            "joined": bool(obj),
            "process": rec.state if rec is not None else "",
            "ready": str(ready.get("status") or "Unknown") if obj else "Unknown",
            "reason": str(ready.get("reason") or ("NotJoined" if not obj else "")),
            "kubernetesVersion": str(status.get("kubernetesVersion") or ""),
            "nodes": {"ready": int(nodes.get("readyNum") or 0), "total": int(nodes.get("totalNum") or 0)},
            "cpu": _resource(summary, "cpu"),
            "memory": _resource(summary, "memory"),
            "pods": _resource(summary, "pods"),
            "costPerHour": round(topo.cost_per_hour, 4) if topo is not None else None,
            "apiEndpoint": str(spec.get("apiEndpoint") or (rec.url if rec else "")),
        })
    return rows


def _number(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.2f}".rstrip("0").rstrip(".")


def _human(resource: str, pair: Mapping[str, str]) -> str:
    """``allocated/allocatable`` in a unit a person reads: cores, Gi, a count."""
    used, total = _quantity(pair.get("allocated")), _quantity(pair.get("allocatable"))
    if resource == "memory":
        gib = Fraction(2**30)
        return f"{_number(used / gib)}/{_number(total / gib)}Gi"
    return f"{_number(used)}/{_number(total)}"


def health_of(row: Mapping[str, Any]) -> str:
    """What the STATUS column says: the federation's Ready, and the process state when it is not running."""
    ready = "Ready" if row["ready"] == "True" else "NotReady" if row["ready"] == "False" else "Unknown"
    if not row["joined"]:
        ready = "NotJoined"
    process = row.get("process") or ""
    if process and process not in ("running", "starting"):
        return f"{ready} ({process})"
    return ready


def status_table(rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """The rows ``atoll status`` prints (header first)."""
    out = [["CLUSTER", "PROVIDER", "REGION", "STATUS", "VERSION", "NODES", "CPU", "MEMORY", "PODS", "COST/H"]]
    total = 0.0
    for r in rows:
        cost = r.get("costPerHour")
        total += cost or 0.0
        out.append([r["name"], r["provider"], r["region"], health_of(r), r["kubernetesVersion"] or "-",
                    f"{r['nodes']['ready']}/{r['nodes']['total']}", _human("cpu", r["cpu"]),
                    _human("memory", r["memory"]), _human("pods", r["pods"]),
                    f"${cost:.2f}" if cost is not None else "-"])
    if rows and any(r.get("costPerHour") is not None for r in rows):
        out.append(["total", "", "", "", "", "", "", "", "", f"${total:.2f}"])
    return out


# -- get ---------------------------------------------------------------------------------------------

def desired_replicas(obj: Mapping[str, Any]) -> int | None:
    """Replicas a workload asks for (``spec.replicas``, 1 when a workload leaves it out); None otherwise."""
    spec = obj.get("spec") or {}
    if "replicas" in spec:
        return int(spec.get("replicas") or 0)
    if obj.get("kind") in ("Deployment", "StatefulSet", "ReplicaSet"):
        return 1
    return None


def member_health(obj: Mapping[str, Any] | None) -> tuple[int | None, str]:
    """Ready replicas and health of a member's copy, judged as Karmada's interpreter does for workloads."""
    if obj is None:
        return None, "Unknown"
    status = obj.get("status") or {}
    wanted = desired_replicas(obj)
    if wanted is None:
        return None, "Healthy"
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or ready)
    caught_up = int(status.get("observedGeneration") or 0) >= int((obj.get("metadata") or {}).get("generation") or 0)
    healthy = caught_up and ready >= wanted and updated >= wanted
    return ready, "Healthy" if healthy else "Unhealthy"


def placement(template: Mapping[str, Any], binding: Mapping[str, Any] | None,
              members: Mapping[str, Mapping[str, Any] | None] | None = None,
              unreachable: frozenset[str] = frozenset(), not_ready: frozenset[str] = frozenset()) -> Obj:
    """Where one template runs: per target cluster, replicas desired and ready, health, and the source.

    ``members`` holds, for clusters the binding has no aggregated status for, the object
    as read from the member itself (``None``: absent there); ``unreachable`` names the
    members that did not answer. For a cluster the federation holds NotReady, what it
    last reported is stale: its health is Unknown, whatever the binding still says.
    """
    md = template.get("metadata") or {}
    spec = (binding or {}).get("spec") or {}
    aggregated = {str(i.get("clusterName")): i for i in ((binding or {}).get("status") or {}).get(
        "aggregatedStatus") or []}
    targets = list(spec.get("clusters") or [])
    workload = desired_replicas(template) is not None
    rows: list[Obj] = []
    for target in targets:
        name = str(target.get("name"))
        desired = int(target["replicas"]) if workload and target.get("replicas") is not None else None
        item = aggregated.get(name)
        if item is not None:
            status = item.get("status") or {}
            ready = int(status.get("readyReplicas") or 0) if workload else None
            health, applied, source = str(item.get("health") or "Unknown"), bool(item.get("applied")), "federation"
            if name in not_ready:
                health, source = "Unknown", "cluster NotReady"
        elif name in unreachable:
            ready, health, applied, source = None, "Unknown", False, "unreachable"
        elif members is not None and name in members:
            ready, health = member_health(members[name])
            applied, source = members[name] is not None, "member"
            if members[name] is None:
                ready = None
        else:
            ready, health, applied, source = None, "Unknown", False, "none"
        rows.append({"name": name, "replicas": desired, "readyReplicas": ready, "health": health,
                     "applied": applied, "source": source})
    want = desired_replicas(template)
    total_ready = sum(r["readyReplicas"] or 0 for r in rows) if workload else None
    healthy = bool(rows) and all(r["health"] == "Healthy" for r in rows)
    return {"apiVersion": template.get("apiVersion"), "kind": template.get("kind"),
            "namespace": md.get("namespace") or "", "name": md.get("name"), "replicas": want,
            "readyReplicas": total_ready, "scheduled": bool(targets),
            "health": "Healthy" if healthy else ("Unknown" if not rows else "Unhealthy"), "clusters": rows}


def get_table(placements: Sequence[Mapping[str, Any]], *, all_namespaces: bool = False) -> list[list[str]]:
    """The rows ``atoll get`` prints: one per object, then one per cluster it runs in."""
    head = ["NAMESPACE"] if all_namespaces else []
    out = [[*head, "NAME", "CLUSTER", "READY", "HEALTH", "APPLIED"]]

    def ready(ready_count: int | None, want: int | None) -> str:
        if want is None:
            return "-"
        return f"{ready_count if ready_count is not None else '?'}/{want}"

    for p in placements:
        ns = [str(p["namespace"])] if all_namespaces else []
        n = len(p["clusters"])
        where = f"{n} cluster{'' if n == 1 else 's'}" if p["scheduled"] else "not scheduled"
        out.append([*ns, f"{str(p['kind']).lower()}/{p['name']}", where, ready(p["readyReplicas"], p["replicas"]),
                    str(p["health"]), ""])
        for c in p["clusters"]:
            blank = [""] if all_namespaces else []
            note = "" if c["source"] == "federation" else f" ({c['source']})"
            out.append([*blank, "", str(c["name"]), ready(c["readyReplicas"], c["replicas"]),
                        f"{c['health']}{note}", "yes" if c["applied"] else "no"])
    return out


# -- fetching ----------------------------------------------------------------------------------------

def _print_data(data: Any, output: str) -> None:
    if output == "json":
        typer.echo(json.dumps(data, indent=2))
    else:
        import yaml

        typer.echo(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())


def _print_table(rows: list[list[str]]) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in rows[0]:
        table.add_column(col)
    for row in rows[1:]:
        table.add_row(*row)
    console().print(table)


def _check_output(output: str) -> None:
    if output not in OUTPUTS:
        raise fail(f"-o must be one of {', '.join(OUTPUTS)}, got {output!r}", sv.EXIT_USAGE)


def federation_client(state_dir: Path, context: str = sv.FEDERATION_CONTEXT) -> Client:
    from atoll.client import Client
    from atoll.client import kubeconfig as kc

    path = state_dir / sv.KUBECONFIG_FILE
    if not path.is_file():
        raise fail(f"no multi-cloud in {state_dir} (no kubeconfig; start one with `atoll up`)", sv.EXIT_NOT_RUNNING)
    try:
        return Client.from_kubeconfig(path, context=context, timeout=10, connect_timeout=3)
    except (kc.KubeconfigError, OSError) as exc:
        raise fail(f"cannot use {path}: {exc}", sv.EXIT_USAGE) from None


def member_client(state_dir: Path, cluster: str) -> Client | None:
    """A member through its context in the multi-cloud's kubeconfig; None if it has none."""
    from atoll.client import Client
    from atoll.client import kubeconfig as kc

    try:
        return Client.from_kubeconfig(state_dir / sv.KUBECONFIG_FILE, context=cluster, timeout=5, connect_timeout=2)
    except (kc.KubeconfigError, OSError):
        return None


def _unreachable(state_dir: Path, server: str) -> typer.Exit:
    """Why the federation does not answer, as far as the supervisor's state file tells."""
    hint = "is `atoll up` running?"
    if state_dir.is_dir() and sv.running_supervisor(state_dir) != 0:
        try:
            state = sv.load_state(state_dir)
        except sv.SupervisorError:
            state = None
        fed = state.federation.state if state is not None else ""
        if fed in ("killed", "exited"):
            hint = f"it was {fed}; `atoll revive {sv.FEDERATION}` restarts it"
        else:
            hint = f"its supervisor runs; see {state_dir / 'logs' / (sv.FEDERATION + '.log')}"
    return fail(f"the federation at {server} does not answer ({hint})", sv.EXIT_NOT_RUNNING)


def _topology_of(state_dir: Path) -> Topology | None:
    from atoll import topology as topo_mod

    try:
        return topo_mod.load(state_dir / sv.TOPOLOGY_FILE)
    except topo_mod.TopologyError:
        return None


def status(state_dir: StateDir = Path(".atoll"), output: Output = "table") -> None:
    """Every member cluster: provider and region, health, nodes, capacity used/free and cost per hour.

    Health is the federation's view (its Cluster objects); a member whose process was
    `atoll kill`ed or crashed says so.

    Examples:

        atoll status

        atoll status -o json | jq '.[] | select(.ready != "True") | .name'

    Exit codes: 0 shown; 3 no multi-cloud runs (or the federation does not answer).
    """
    from atoll.api.errors import APIError, ServiceUnavailable, Timeout
    from atoll.federation import kinds

    _check_output(output)
    client = federation_client(state_dir)

    async def fetch() -> list[Obj]:
        async with client:
            items: list[Obj] = (await client.list(kinds.CLUSTERS)).get("items") or []
            return items

    try:
        clusters = asyncio.run(fetch())
    except (ServiceUnavailable, Timeout):
        raise _unreachable(state_dir, client.server) from None
    except APIError as exc:
        raise fail(f"the federation refused to list clusters: {exc}") from None
    try:
        state = sv.load_state(state_dir)
    except sv.SupervisorError:
        state = None
    rows = status_rows(clusters, _topology_of(state_dir), state)
    if output != "table":
        _print_data(rows, output)
        return
    _print_table(status_table(rows))


async def resolve_kind(client: Client, kind: str) -> Resource:
    """A kind as kubectl takes it (``deploy``, ``deployments``, ``Deployment``, ``deployments.apps``)."""
    from atoll.api.errors import NotFound
    from atoll.client import Resource

    wanted, _, group = kind.lower().partition(".")
    versions = ["v1"]
    groups = await client.request("GET", "/apis")
    for g in (groups or {}).get("groups") or []:
        preferred = (g.get("preferredVersion") or {}).get("groupVersion")
        if preferred:
            versions.append(str(preferred))
    for api_version in versions:
        g = api_version.rpartition("/")[0]
        if group and g != group and not g.startswith(group + "."):
            continue
        try:
            resources = await client.api_resources(api_version)
        except NotFound:
            continue
        for r in resources:
            if "/" in str(r.get("name")):
                continue
            names = {str(r.get("name")), str(r.get("singularName") or ""), str(r.get("kind") or "").lower(),
                     *[str(s) for s in r.get("shortNames") or []]}
            if wanted in names:
                return Resource(api_version, str(r["name"]), bool(r.get("namespaced")), str(r.get("kind")))
    raise LookupError(f'the federation has no resource type "{kind}"')


async def _placements(client: Client, state_dir: Path, res: Resource, name: str | None, namespace: str | None,
                      ) -> list[Obj]:
    from atoll.api.errors import APIError, NotFound
    from atoll.federation import kinds
    from atoll.federation.detector import binding_name

    if name:
        templates = [await client.get(res, name, namespace if res.namespaced else None)]
    else:
        templates = (await client.list(res, namespace if res.namespaced else None)).get("items") or []
    clusters = (await client.list(kinds.CLUSTERS)).get("items") or []
    not_ready = frozenset(str(c["metadata"]["name"]) for c in clusters if _condition(c, "Ready").get("status") != "True")
    out = []
    for template in templates:
        template.setdefault("apiVersion", res.api_version)
        template.setdefault("kind", res.kind)
        md = template.get("metadata") or {}
        rb_name = binding_name(res.kind, str(md.get("name")))
        try:
            if res.namespaced:
                binding: Obj | None = await client.get(kinds.RESOURCE_BINDINGS, rb_name, md.get("namespace"))
            else:
                binding = await client.get(kinds.CLUSTER_RESOURCE_BINDINGS, rb_name)
        except NotFound:
            binding = None
        reported = {str(i.get("clusterName")) for i in ((binding or {}).get("status") or {}).get(
            "aggregatedStatus") or []}
        missing = [str(c.get("name")) for c in ((binding or {}).get("spec") or {}).get("clusters") or []
                   if str(c.get("name")) not in reported]
        members: dict[str, Obj | None] = {}
        unreachable: set[str] = set()
        for cluster in missing:
            member = member_client(state_dir, cluster)
            if member is None:
                continue
            try:
                async with member:
                    members[cluster] = await client_get(member, res, template)
            except APIError:
                unreachable.add(cluster)
        out.append(placement(template, binding, members, frozenset(unreachable), not_ready))
    return out


async def client_get(member: Client, res: Resource, template: Mapping[str, Any]) -> Obj | None:
    from atoll.api.errors import NotFound

    md = template.get("metadata") or {}
    try:
        return await member.get(res, str(md.get("name")), md.get("namespace") if res.namespaced else None)
    except NotFound:
        return None


def get(
    kind: Annotated[str, typer.Argument(help="A kind as kubectl takes it: deployment, deploy, svc, configmaps...")],
    name: Annotated[str | None, typer.Argument(help="One object; default: all of that kind.")] = None,
    namespace: Annotated[str | None, typer.Option("-n", "--namespace", help="Namespace (default: default).")]
    = None,
    all_namespaces: Annotated[bool, typer.Option("-A", "--all-namespaces", help="Every namespace.")] = False,
    output: Output = "table",
    state_dir: StateDir = Path(".atoll"),
) -> None:
    """Objects on the federation and where they run: per member cluster, replicas ready/desired and health.

    Examples:

        atoll get deployments

        atoll get deployment echo -n default -o yaml

        atoll get svc -A

    Exit codes: 0 shown; 1 no such object; 2 unknown kind; 3 no multi-cloud runs.
    """
    from atoll.api.errors import APIError, NotFound, ServiceUnavailable, Timeout

    _check_output(output)
    if name and all_namespaces:
        raise fail("a NAME and -A do not go together; give -n NAMESPACE", sv.EXIT_USAGE)
    client = federation_client(state_dir)
    ns = None if all_namespaces else (namespace or client.namespace)

    async def fetch() -> tuple[Resource, list[Obj]]:
        async with client:
            res = await resolve_kind(client, kind)
            return res, await _placements(client, state_dir, res, name, ns)

    try:
        res, placements = asyncio.run(fetch())
    except LookupError as exc:
        raise fail(str(exc), sv.EXIT_USAGE) from None
    except NotFound:
        raise fail(f'{kind} "{name}" not found' + (f" in namespace {ns}" if ns else "")) from None
    except (ServiceUnavailable, Timeout):
        raise _unreachable(state_dir, client.server) from None
    except APIError as exc:
        raise fail(f"the federation refused: {exc}") from None
    if output != "table":
        _print_data(placements[0] if name else placements, output)
        return
    if not placements:
        typer.echo(f"No {res.plural} found" + (f" in namespace {ns}." if ns and res.namespaced else "."))
        return
    _print_table(get_table(placements, all_namespaces=all_namespaces and res.namespaced))


def register(app: typer.Typer) -> None:
    """Add ``status`` and ``get`` to the ``atoll`` command."""
    app.command()(status)
    app.command()(get)
