"""``meta.k8s.io/v1`` Table output for ``kubectl get``: kube-apiserver's printer columns.

Rows carry ``object`` (PartialObjectMetadata by default, as kubectl asks), which kubectl
needs for ``-A`` and ``--show-labels``. Custom resources use their
``additionalPrinterColumns`` through a small JSONPath evaluator.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from typing import Any

from atoll.api.resources import PrinterColumn, ResourceInfo

Obj = dict[str, Any]
Cell = Any
Column = tuple[str, str, str, int, Callable[[Obj, dt.datetime], Cell]]
"""(name, type, format, priority, cell function)."""


def human_duration(seconds: float) -> str:
    """kube's ``duration.HumanDuration``."""
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 60 * 2:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rem = s % 60
        return f"{minutes}m{rem}s" if rem else f"{minutes}m"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rem = minutes % 60
        return f"{hours}h{rem}m" if rem else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rem = hours % 24
        return f"{hours // 24}d{rem}h" if rem else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{hours // 24 // 365}y"


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(value: Any, now: dt.datetime) -> str:
    t = _parse_time(value)
    return human_duration((now - t).total_seconds()) if t else "<unknown>"


def _md(o: Obj) -> Obj:
    md: Obj = o.get("metadata") or {}
    return md


def _spec(o: Obj) -> Obj:
    spec: Obj = o.get("spec") or {}
    return spec


def _status(o: Obj) -> Obj:
    status: Obj = o.get("status") or {}
    return status


def _age(o: Obj, now: dt.datetime) -> str:
    return age(_md(o).get("creationTimestamp"), now)


def _selector_text(sel: Any) -> str:
    if not isinstance(sel, dict):
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op = e.get("operator")
        if op in ("In", "NotIn"):
            parts.append(f"{e.get('key')} {op.lower()} ({','.join(e.get('values') or [])})")
        elif op == "Exists":
            parts.append(str(e.get("key")))
        elif op == "DoesNotExist":
            parts.append(f"!{e.get('key')}")
    return ",".join(parts) or "<none>"


def pod_status(pod: Obj) -> tuple[str, int, int, int]:
    """STATUS as kubectl shows it, plus (ready, total, restarts)."""
    status = _status(pod)
    reason = status.get("reason") or status.get("phase") or "Pending"
    containers = _spec(pod).get("containers") or []
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    for init in status.get("initContainerStatuses") or []:
        state = init.get("state") or {}
        if "terminated" in state and state["terminated"].get("exitCode") == 0:
            continue
        if "waiting" in state and state["waiting"].get("reason") not in (None, "", "PodInitializing"):
            reason = f"Init:{state['waiting']['reason']}"
            break
    else:
        for c in reversed(statuses):
            state = c.get("state") or {}
            if "waiting" in state and state["waiting"].get("reason"):
                reason = state["waiting"]["reason"]
            elif "terminated" in state:
                term = state["terminated"]
                reason = term.get("reason") or (f"Signal:{term['signal']}" if term.get("signal")
                                                else f"ExitCode:{term.get('exitCode', 0)}")
        if reason == "Running" and statuses and not all(c.get("ready") for c in statuses):
            reason = "Running"
    if _md(pod).get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return reason, ready, len(containers), restarts


def _ports(svc: Obj) -> str:
    out = []
    for p in _spec(svc).get("ports") or []:
        text = f"{p.get('port')}"
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        out.append(f"{text}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _external_ip(svc: Obj) -> str:
    spec = _spec(svc)
    ips = list(spec.get("externalIPs") or [])
    if spec.get("type") == "LoadBalancer":
        ing = (_status(svc).get("loadBalancer") or {}).get("ingress") or []
        ips += [i.get("ip") or i.get("hostname") for i in ing]
        return ",".join(str(i) for i in ips) if ips else "<pending>"
    if spec.get("type") == "ExternalName":
        return str(spec.get("externalName", "<none>"))
    return ",".join(ips) if ips else "<none>"


def _node_status(node: Obj) -> str:
    conds = {c.get("type"): c.get("status") for c in _status(node).get("conditions") or []}
    text = "Ready" if conds.get("Ready") == "True" else "NotReady" if "Ready" in conds else "Unknown"
    if _spec(node).get("unschedulable"):
        text += ",SchedulingDisabled"
    return text


def _node_roles(node: Obj) -> str:
    roles = sorted(k.split("/", 1)[1] for k in (_md(node).get("labels") or {})
                   if k.startswith("node-role.kubernetes.io/") and "/" in k)
    return ",".join(r for r in roles if r) or "<none>"


def _endpoints(ep: Obj) -> str:
    addrs = []
    for subset in ep.get("subsets") or []:
        ports = [p.get("port") for p in subset.get("ports") or []] or [None]
        for a in subset.get("addresses") or []:
            for port in ports:
                addrs.append(f"{a.get('ip')}:{port}" if port else str(a.get("ip")))
    if not addrs:
        return "<none>"
    return ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")


def _job_status(job: Obj) -> str:
    """kube's printer checks conditions in this order, whatever their order in the list."""
    true = {c.get("type") for c in _status(job).get("conditions") or [] if c.get("status") == "True"}
    for kind in ("Complete", "Failed"):
        if kind in true:
            return kind
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    for kind in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if kind in true:
            return kind
    return "Running"


def _job_duration(job: Obj, now: dt.datetime) -> str:
    start = _parse_time(_status(job).get("startTime"))
    if start is None:
        return ""
    end = _parse_time(_status(job).get("completionTime")) or now
    return human_duration((end - start).total_seconds())


def _event_object(ev: Obj) -> str:
    inv = ev.get("involvedObject") or ev.get("regarding") or {}
    return f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}"


def _count(value: Any) -> int:
    return len(value) if isinstance(value, dict | list) else 0


def _containers(o: Obj) -> list[Obj]:
    tmpl: Obj = (_spec(o).get("template") or {}).get("spec") or {}
    containers: list[Obj] = tmpl.get("containers") or []
    return containers


def _wide_containers() -> list[Column]:
    return [
        ("Containers", "string", "", 1, lambda o, n: ",".join(c.get("name", "") for c in _containers(o))),
        ("Images", "string", "", 1, lambda o, n: ",".join(c.get("image", "") for c in _containers(o))),
        ("Selector", "string", "", 1, lambda o, n: _selector_text(_spec(o).get("selector"))),
    ]


AGE: Column = ("Age", "string", "", 0, _age)

BUILTIN_COLUMNS: dict[tuple[str, str], list[Column]] = {
    ("", "pods"): [
        ("Ready", "string", "", 0, lambda o, n: f"{pod_status(o)[1]}/{pod_status(o)[2]}"),
        ("Status", "string", "", 0, lambda o, n: pod_status(o)[0]),
        ("Restarts", "string", "", 0, lambda o, n: str(pod_status(o)[3])),
        AGE,
        ("IP", "string", "", 1, lambda o, n: _status(o).get("podIP") or "<none>"),
        ("Node", "string", "", 1, lambda o, n: _spec(o).get("nodeName") or "<none>"),
        ("Nominated Node", "string", "", 1, lambda o, n: _status(o).get("nominatedNodeName") or "<none>"),
        ("Readiness Gates", "string", "", 1, lambda o, n: "<none>"),
    ],
    ("", "namespaces"): [("Status", "string", "", 0, lambda o, n: _status(o).get("phase", "Active")), AGE],
    ("", "nodes"): [
        ("Status", "string", "", 0, lambda o, n: _node_status(o)),
        ("Roles", "string", "", 0, lambda o, n: _node_roles(o)),
        AGE,
        ("Version", "string", "", 0, lambda o, n: (_status(o).get("nodeInfo") or {}).get("kubeletVersion", "")),
    ],
    ("", "services"): [
        ("Type", "string", "", 0, lambda o, n: _spec(o).get("type", "ClusterIP")),
        ("Cluster-IP", "string", "", 0, lambda o, n: _spec(o).get("clusterIP") or "<none>"),
        ("External-IP", "string", "", 0, lambda o, n: _external_ip(o)),
        ("Port(s)", "string", "", 0, lambda o, n: _ports(o)),
        AGE,
        ("Selector", "string", "", 1, lambda o, n: ",".join(f"{k}={v}" for k, v in sorted(
            (_spec(o).get("selector") or {}).items())) or "<none>"),
    ],
    ("", "endpoints"): [("Endpoints", "string", "", 0, lambda o, n: _endpoints(o)), AGE],
    ("", "configmaps"): [("Data", "integer", "", 0, lambda o, n: _count(o.get("data")) + _count(o.get("binaryData"))),
                         AGE],
    ("", "secrets"): [("Type", "string", "", 0, lambda o, n: o.get("type", "Opaque")),
                      ("Data", "integer", "", 0, lambda o, n: _count(o.get("data"))), AGE],
    ("", "serviceaccounts"): [("Secrets", "integer", "", 0, lambda o, n: _count(o.get("secrets"))), AGE],
    ("", "events"): [
        ("Last Seen", "string", "", 0, lambda o, n: age(o.get("lastTimestamp") or o.get("eventTime")
                                                        or _md(o).get("creationTimestamp"), n)),
        ("Type", "string", "", 0, lambda o, n: o.get("type", "")),
        ("Reason", "string", "", 0, lambda o, n: o.get("reason", "")),
        ("Object", "string", "", 0, lambda o, n: _event_object(o)),
        ("Message", "string", "", 0, lambda o, n: str(o.get("message", "")).strip()),
    ],
    ("", "persistentvolumeclaims"): [
        ("Status", "string", "", 0, lambda o, n: _status(o).get("phase", "Pending")),
        ("Volume", "string", "", 0, lambda o, n: _spec(o).get("volumeName", "")),
        ("Capacity", "string", "", 0, lambda o, n: (_status(o).get("capacity") or {}).get("storage", "")),
        ("Access Modes", "string", "", 0, lambda o, n: ",".join(
            {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
            .get(m, m) for m in _status(o).get("accessModes") or [])),
        ("StorageClass", "string", "", 0, lambda o, n: _spec(o).get("storageClassName") or "<unset>"),
        AGE,
    ],
    ("apps", "deployments"): [
        ("Ready", "string", "", 0, lambda o, n: f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 0)}"),
        ("Up-to-date", "integer", "", 0, lambda o, n: _status(o).get("updatedReplicas", 0)),
        ("Available", "integer", "", 0, lambda o, n: _status(o).get("availableReplicas", 0)),
        AGE,
        *_wide_containers(),
    ],
    ("apps", "replicasets"): [
        ("Desired", "integer", "", 0, lambda o, n: _spec(o).get("replicas", 0)),
        ("Current", "integer", "", 0, lambda o, n: _status(o).get("replicas", 0)),
        ("Ready", "integer", "", 0, lambda o, n: _status(o).get("readyReplicas", 0)),
        AGE,
        *_wide_containers(),
    ],
    ("apps", "statefulsets"): [
        ("Ready", "string", "", 0, lambda o, n: f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 0)}"),
        AGE,
        *_wide_containers()[:2],
    ],
    ("apps", "daemonsets"): [
        ("Desired", "integer", "", 0, lambda o, n: _status(o).get("desiredNumberScheduled", 0)),
        ("Current", "integer", "", 0, lambda o, n: _status(o).get("currentNumberScheduled", 0)),
        ("Ready", "integer", "", 0, lambda o, n: _status(o).get("numberReady", 0)),
        ("Up-to-date", "integer", "", 0, lambda o, n: _status(o).get("updatedNumberScheduled", 0)),
        ("Available", "integer", "", 0, lambda o, n: _status(o).get("numberAvailable", 0)),
        ("Node Selector", "string", "", 0, lambda o, n: ",".join(
            f"{k}={v}" for k, v in sorted(((_spec(o).get("template") or {}).get("spec") or {})
                                          .get("nodeSelector", {}).items())) or "<none>"),
        AGE,
        *_wide_containers(),
    ],
    ("batch", "jobs"): [
        ("Status", "string", "", 0, lambda o, n: _job_status(o)),
        ("Completions", "string", "", 0, lambda o, n: f"{_status(o).get('succeeded', 0)}/"
                                                       f"{_spec(o).get('completions', 1)}"),
        ("Duration", "string", "", 0, _job_duration),
        AGE,
        *_wide_containers(),
    ],
    ("batch", "cronjobs"): [
        ("Schedule", "string", "", 0, lambda o, n: _spec(o).get("schedule", "")),
        ("Timezone", "string", "", 0, lambda o, n: _spec(o).get("timeZone") or "<none>"),
        ("Suspend", "boolean", "", 0, lambda o, n: bool(_spec(o).get("suspend", False))),
        ("Active", "integer", "", 0, lambda o, n: _count(_status(o).get("active"))),
        ("Last Schedule", "string", "", 0, lambda o, n: age(_status(o).get("lastScheduleTime"), n)
         if _status(o).get("lastScheduleTime") else "<none>"),
        AGE,
    ],
    ("coordination.k8s.io", "leases"): [("Holder", "string", "", 0, lambda o, n: _spec(o).get("holderIdentity", "")),
                                        AGE],
    ("discovery.k8s.io", "endpointslices"): [
        ("AddressType", "string", "", 0, lambda o, n: o.get("addressType", "")),
        ("Ports", "string", "", 0, lambda o, n: ",".join(str(p.get("port")) for p in o.get("ports") or [])
         or "<unset>"),
        ("Endpoints", "string", "", 0, lambda o, n: ",".join(
            a for e in o.get("endpoints") or [] for a in e.get("addresses") or []) or "<unset>"),
        AGE,
    ],
    ("apiextensions.k8s.io", "customresourcedefinitions"): [
        ("Created At", "date", "", 0, lambda o, n: _md(o).get("creationTimestamp", "")),
    ],
}


def _jsonpath(obj: Any, path: str) -> Any:
    """A JSONPath subset: ``.a.b``, ``.a[0]``, ``.a[*].b``, ``.a[?(@.k=="v")].b``."""
    tokens = re.findall(r"\.([^.\[]+)|\[([^\]]+)\]", path.strip().lstrip("{").rstrip("}"))
    current: list[Any] = [obj]
    for name, index in tokens:
        nxt: list[Any] = []
        for item in current:
            if name:
                if isinstance(item, dict) and name in item:
                    nxt.append(item[name])
            elif index == "*":
                if isinstance(item, list):
                    nxt.extend(item)
                elif isinstance(item, dict):
                    nxt.extend(item.values())
            elif index.startswith("?("):
                m = re.match(r"\?\(@\.([\w.-]+)\s*==\s*['\"]?([^'\"]*)['\"]?\)", index)
                if m and isinstance(item, list):
                    nxt.extend(e for e in item if isinstance(e, dict) and str(e.get(m.group(1))) == m.group(2))
            elif index.lstrip("-").isdigit() and isinstance(item, list):
                i = int(index)
                if -len(item) <= i < len(item):
                    nxt.append(item[i])
        current = nxt
    if not current:
        return None
    return current[0] if len(current) == 1 else current


def _printer_cell(col: PrinterColumn, obj: Obj, now: dt.datetime) -> Cell:
    value = _jsonpath(obj, col.json_path)
    if value is None:
        return None
    if col.type == "date":
        return age(value, now)
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if col.type == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if col.type == "string" and not isinstance(value, str):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return value


def columns_for(info: ResourceInfo) -> list[Column]:
    if info.printer_columns:
        cols: list[Column] = []
        for pc in info.printer_columns:
            cols.append((pc.name, "string" if pc.type == "date" else pc.type, pc.format, pc.priority,
                         functools.partial(_printer_cell, pc)))
        return cols
    if info.custom:
        return [AGE]
    return BUILTIN_COLUMNS.get((info.group, info.plural), [AGE])


def to_table(info: ResourceInfo, objects: list[Obj], *, include_object: str = "Metadata",
             now: dt.datetime | None = None) -> Obj:
    now = now or dt.datetime.now(dt.UTC)
    cols = columns_for(info)
    definitions = [{"name": "Name", "type": "string", "format": "name", "priority": 0,
                    "description": "Name must be unique within a namespace."}]
    definitions += [{"name": name, "type": typ, "format": fmt, "priority": prio, "description": ""}
                    for name, typ, fmt, prio, _ in cols]
    rows = []
    for obj in objects:
        cells: list[Cell] = [_md(obj).get("name", "")]
        for _name, _typ, _fmt, _prio, fn in cols:
            try:
                cells.append(fn(obj, now))
            except Exception:  # a malformed object still gets a row
                cells.append(None)
        row: Obj = {"cells": cells}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": _md(obj)}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": definitions,
            "rows": rows}
