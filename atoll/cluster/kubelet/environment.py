"""A container's command line and environment, by kube's rules.

- Command: ``command`` replaces the image's entrypoint and drops its default
  arguments; ``args`` replace the default arguments; so ``args`` alone run after the
  image's entrypoint (kubelet's ``kubecontainer.ExpandContainerCommandAndArgs``).
- ``$(VAR)`` in ``env[].value``, ``command`` and ``args`` expands to a variable defined
  earlier (for env values) or anywhere (for command and args); ``$$`` escapes a ``$``;
  an undefined reference stays as written (kube's ``third_party/forked/golang/expansion``).
- Environment order: the image's defaults, Atoll's pod variables (``POD_IP``, ``POD_NAME``,
  ``POD_NAMESPACE``, ``NODE_NAME``, ``ATOLL_CLUSTER``, ``ATOLL_IMAGE``), ``envFrom``
  sources in order (``prefix`` applied), then ``env`` entries in order — later wins.
- Downward API (``fieldRef``): metadata.name, metadata.namespace, metadata.uid,
  metadata.labels['k'], metadata.annotations['k'], spec.nodeName, spec.serviceAccountName,
  status.podIP, status.podIPs, status.hostIP, status.hostIPs; ``resourceFieldRef``:
  limits/requests of cpu, memory and ephemeral-storage with ``divisor`` (rounded up;
  a missing limit is the node's allocatable, as kube does).
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from atoll.api.errors import NotFound
from atoll.api.meta import parse_quantity

Obj = dict[str, Any]
Reader = Callable[[str, str, str], Awaitable[Obj]]
"""``reader(kind, namespace, name)`` → the ConfigMap or Secret; raises NotFound."""


class ConfigError(Exception):
    """The container cannot be configured yet (``CreateContainerConfigError``)."""


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Expand ``$(VAR)`` references in ``text``; ``$$`` is a literal ``$``."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "$" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end < 0:
                out.append(text[i:])
                break
            name = text[i + 2:end]
            value = lookup(name) if name else None
            out.append(value if value is not None else f"$({name})")
            i = end + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def command_line(entrypoint: tuple[str, ...], cmd: tuple[str, ...], container: Obj,
                 env: Mapping[str, str]) -> tuple[str, ...]:
    """The argv a container runs: image defaults combined with ``command``/``args``, expanded."""
    command = [str(x) for x in container.get("command") or []]
    args = [str(x) for x in container.get("args") or []]
    if command:
        return tuple(expand(a, env.get) for a in command + args)
    if args:
        return entrypoint + tuple(expand(a, env.get) for a in args)
    return entrypoint + cmd


_LABEL_RE = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_value(pod: Obj, path: str) -> str:
    """The downward API's value of ``path`` for ``pod``; raises ConfigError for unsupported ones."""
    md, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    simple = {
        "metadata.name": md.get("name"), "metadata.namespace": md.get("namespace"), "metadata.uid": md.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName") or spec.get("serviceAccount") or "default",
        "status.podIP": status.get("podIP"), "status.hostIP": status.get("hostIP"),
        "status.podIPs": ",".join(x.get("ip", "") for x in status.get("podIPs") or []) or status.get("podIP"),
        "status.hostIPs": ",".join(x.get("ip", "") for x in status.get("hostIPs") or []) or status.get("hostIP"),
    }
    if path in simple:
        return str(simple[path] or "")
    m = _LABEL_RE.match(path)
    if m:
        return str((md.get(m.group(1)) or {}).get(m.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = md.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


def resource_value(container: Obj, ref: Obj, allocatable: Mapping[str, str]) -> str:
    """``resourceFieldRef``: a container's limit or request in units of ``divisor``, rounded up."""
    resource = str(ref.get("resource") or "")
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or name not in ("cpu", "memory", "ephemeral-storage"):
        raise ConfigError(f"unsupported resourceFieldRef resource {resource!r}")
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(name)
    if value is None and kind == "requests":
        value = (resources.get("limits") or {}).get(name)
    if value is None:
        value = allocatable.get(name, "0") if kind == "limits" else "0"
    divisor = parse_quantity(ref.get("divisor") or "1")
    if divisor <= 0:
        raise ConfigError(f"invalid divisor {ref.get('divisor')!r}")
    return str(math.ceil(parse_quantity(value) / divisor))


@dataclass(frozen=True, slots=True)
class EnvContext:
    pod: Obj
    container: Obj
    base: Mapping[str, str]
    """Image defaults and Atoll's pod variables, overridable by the container's own."""
    allocatable: Mapping[str, str]


def _decode(kind: str, obj: Obj) -> dict[str, str]:
    if kind == "Secret":
        out = {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
        out.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
        return out
    return {k: str(v) for k, v in (obj.get("data") or {}).items()}


async def container_env(ctx: EnvContext, read: Reader) -> dict[str, str]:
    """The container's environment; raises ConfigError for a missing required source."""
    env: dict[str, str] = dict(ctx.base)
    namespace = (ctx.pod.get("metadata") or {}).get("namespace") or "default"
    cache: dict[tuple[str, str], dict[str, str] | None] = {}

    async def source(kind: str, name: str, optional: bool) -> dict[str, str] | None:
        if (kind, name) not in cache:
            try:
                cache[(kind, name)] = _decode(kind, await read(kind, namespace, name))
            except NotFound:
                cache[(kind, name)] = None
        data = cache[(kind, name)]
        if data is None and not optional:
            raise ConfigError(f'{kind.lower()} "{name}" not found')
        return data

    for entry in ctx.container.get("envFrom") or []:
        prefix = str(entry.get("prefix") or "")
        for field_name, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            ref = entry.get(field_name)
            if ref:
                data = await source(kind, str(ref.get("name") or ""), bool(ref.get("optional")))
                for k, v in (data or {}).items():
                    env[prefix + k] = v
    for var in ctx.container.get("env") or []:
        name = str(var.get("name") or "")
        if not name:
            continue
        vf = var.get("valueFrom")
        if not vf:
            env[name] = expand(str(var.get("value") or ""), env.get)
            continue
        if vf.get("fieldRef"):
            env[name] = field_value(ctx.pod, str(vf["fieldRef"].get("fieldPath") or ""))
        elif vf.get("resourceFieldRef"):
            env[name] = resource_value(ctx.container, vf["resourceFieldRef"], ctx.allocatable)
        else:
            for field_name, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                ref = vf.get(field_name)
                if not ref:
                    continue
                optional = bool(ref.get("optional"))
                data = await source(kind, str(ref.get("name") or ""), optional)
                key = str(ref.get("key") or "")
                if data is not None and key in data:
                    env[name] = data[key]
                elif not optional:
                    if data is None:
                        raise ConfigError(f'{kind.lower()} "{ref.get("name")}" not found')
                    raise ConfigError(f"couldn't find key {key} in {kind} {namespace}/{ref.get('name')}")
    return env
