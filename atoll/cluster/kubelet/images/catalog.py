"""The image catalog: what an image reference means to the process runtime.

There are no image layers here: an image is an entrypoint (a host command, or a Python
module run as ``sys.executable -m <module>``) with default arguments (the image's
``CMD``), environment, working directory and ports, so kube's command rules apply
unchanged (``command`` replaces the entrypoint, ``args`` the default arguments).

References are parsed as container runtimes do (``[registry[:port]/]path[:tag][@digest]``)
and looked up by repository, first with the tag (``atoll/echo:2.0``) and then without,
first with the registry and then without it (``docker.io/library/nginx:1.25`` → ``nginx``;
``ghcr.io/atoll/echo`` → ``atoll/echo``).

Built-in images:

- ``atoll/echo`` — HTTP echo server (JSON naming pod, namespace, node, cluster, pod IP,
  image and tag, request path and headers; ``/healthz``) on ``$POD_IP:$PORT`` (8080).
- ``atoll/static`` — static file server (``PORT`` 8080; directory from the first argument
  or ``STATIC_ROOT``, else a default index page); ``nginx`` is the same on port 80.
- ``atoll/tcp-echo`` — TCP echo server on ``$POD_IP:$PORT`` (9000).
- ``busybox``, ``atoll/busybox`` — the host's ``/bin/sh`` tools: runs the given command
  (``sh -c ...``, ``sleep 3600``); with none it sleeps forever.
- ``pause``, ``registry.k8s.io/pause`` — sleeps forever.
- ``python`` — the Python interpreter running Atoll.

An image the catalog does not know cannot be "pulled" (``ErrImagePull``) — unless the
container gives a ``command``: then it runs that command as if the image were a plain
base image (no entrypoint, no defaults).

User-defined images come from a YAML file (:meth:`ImageCatalog.load`); its entries
override the built-ins::

    images:
      myorg/api:                      # repository, optionally with a tag: myorg/api:2.0
        command: [/usr/bin/python3, -m, http.server]   # the image's ENTRYPOINT
        args: ["8000"]                # the image's CMD (default arguments)
        env: {PORT: "8000"}
        workingDir: /srv/api
        ports: [8000]
      myorg/worker:
        module: myorg.worker          # shorthand: command [<python>, -m, myorg.worker]
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_REGISTRY = "docker.io"


@dataclass(frozen=True, slots=True)
class ImageRef:
    registry: str
    repository: str
    tag: str
    digest: str

    @property
    def familiar(self) -> str:
        """The name as people write it: ``nginx`` rather than ``docker.io/library/nginx``."""
        if self.registry == DEFAULT_REGISTRY:
            return self.repository.removeprefix("library/")
        return f"{self.registry}/{self.repository}"


def parse_reference(ref: str) -> ImageRef:
    """Split an image reference; raises ``ValueError`` for an empty or malformed one."""
    text = ref.strip()
    if not text or any(c.isspace() for c in text):
        raise ValueError(f"invalid reference format: {ref!r}")
    name, _, digest = text.partition("@")
    registry = DEFAULT_REGISTRY
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, name = first, rest
    tag = ""
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:
        name, tag = name[:colon], name[colon + 1:]
    if not name or name.endswith("/"):
        raise ValueError(f"invalid reference format: {ref!r}")
    if registry == DEFAULT_REGISTRY and "/" not in name:
        name = f"library/{name}"
    return ImageRef(registry=registry, repository=name.lower(), tag=tag or ("" if digest else "latest"),
                    digest=digest)


@dataclass(frozen=True, slots=True)
class Image:
    """An image as the process runtime runs it."""

    name: str
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    ports: tuple[int, ...] = ()
    builtin: bool = False

    @property
    def id(self) -> str:
        """For ``imageID`` in container statuses."""
        return f"atoll-catalog://{self.name}"


def _module(name: str) -> tuple[str, ...]:
    return (sys.executable, "-m", name)


_SLEEP_FOREVER = ("sleep", "infinity")
BUILTIN: tuple[tuple[tuple[str, ...], Image], ...] = (
    (("atoll/echo", "echo"), Image("atoll/echo", _module("atoll.cluster.kubelet.images.echo"),
                                   env={"PORT": "8080"}, ports=(8080,), builtin=True)),
    (("atoll/static",), Image("atoll/static", _module("atoll.cluster.kubelet.images.static"),
                              env={"PORT": "8080"}, ports=(8080,), builtin=True)),
    (("nginx",), Image("nginx", _module("atoll.cluster.kubelet.images.static"), env={"PORT": "80"},
                       ports=(80,), builtin=True)),
    (("atoll/tcp-echo",), Image("atoll/tcp-echo", _module("atoll.cluster.kubelet.images.tcpecho"),
                                env={"PORT": "9000"}, ports=(9000,), builtin=True)),
    (("busybox", "atoll/busybox"), Image("busybox", cmd=_SLEEP_FOREVER, builtin=True)),
    (("pause", "registry.k8s.io/pause", "k8s.gcr.io/pause"), Image("pause", cmd=_SLEEP_FOREVER, builtin=True)),
    (("python",), Image("python", cmd=(sys.executable,), builtin=True)),
)


def _key(name: str) -> str:
    """Catalog keys are familiar names, with an optional tag."""
    ref = parse_reference(name)
    explicit_tag = ":" in name.rpartition("/")[2]
    return f"{ref.familiar}:{ref.tag}" if explicit_tag else ref.familiar


class ImageCatalog:
    """Resolves image references to :class:`Image`; built-ins plus user entries."""

    def __init__(self, extra: Mapping[str, Image] | None = None) -> None:
        self._images: dict[str, Image] = {}
        for names, image in BUILTIN:
            for n in names:
                self._images[n] = image
        for name, image in (extra or {}).items():
            self._images[_key(name)] = image

    @classmethod
    def load(cls, path: Path | str) -> ImageCatalog:
        """Built-ins plus the entries of a YAML file (format in the module docstring)."""
        doc = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: an image catalog is a mapping of image name to entry")
        entries = doc.get("images", doc)
        if not isinstance(entries, dict):
            raise ValueError(f"{path}: 'images' must be a mapping")
        return cls({str(name): image_from_entry(str(name), entry) for name, entry in entries.items()})

    def names_by_image(self) -> list[tuple[list[str], Image]]:
        """Each image once, with every name it answers to (for the Node's ``status.images``)."""
        groups: dict[int, tuple[list[str], Image]] = {}
        for name, image in self._images.items():
            groups.setdefault(id(image), ([], image))[0].append(name)
        return list(groups.values())

    def builtin_names(self) -> list[str]:
        return sorted(n for n, i in self._images.items() if i.builtin)

    def resolve(self, reference: str) -> Image | None:
        try:
            ref = parse_reference(reference)
        except ValueError:
            return None
        names = [ref.familiar]
        if ref.registry != DEFAULT_REGISTRY:
            names.append(ref.repository.removeprefix("library/"))
        for name in names:
            for key in (f"{name}:{ref.tag}", name):
                if key in self._images:
                    return self._images[key]
        return None

    def not_found_message(self, reference: str) -> str:
        return (f"image not found in the Atoll image catalog (built-in: {', '.join(self.builtin_names())})")


def _strings(value: Any, what: str, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise ValueError(f"image {name}: {what} must be a list of strings")
    return tuple(str(v) for v in value)


def image_from_entry(name: str, entry: Any) -> Image:
    if not isinstance(entry, dict):
        raise ValueError(f"image {name}: entry must be a mapping")
    entrypoint = _strings(entry.get("command"), "command", name)
    if entry.get("module"):
        entrypoint = _module(str(entry["module"]))
    env = entry.get("env") or {}
    if not isinstance(env, dict):
        raise ValueError(f"image {name}: env must be a mapping")
    ports = tuple(int(p) for p in entry.get("ports") or ())
    working_dir = entry.get("workingDir")
    return Image(name=name, entrypoint=entrypoint, cmd=_strings(entry.get("args"), "args", name),
                 env={str(k): str(v) for k, v in env.items()},
                 working_dir=str(working_dir) if working_dir else None, ports=ports)
