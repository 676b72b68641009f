"""The published Kubernetes schemas, as shipped by PyPI's ``kubernetes-validate``.

They carry everything the API server needs from the upstream OpenAPI: field types,
``x-kubernetes-patch-strategy``/``x-kubernetes-patch-merge-key`` for strategic merge
patch, ``x-kubernetes-list-type``/``x-kubernetes-list-map-keys``/``x-kubernetes-map-type``
for server-side apply, and ``x-kubernetes-group-version-kind`` to find a kind's schema.
References are JSON-Schema style: ``{"$ref": "#/$defs/<definition name>"}``.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import orjson

logger = logging.getLogger(__name__)

KUBERNETES_SCHEMA_VERSION = "v1.32.0"
REF_PREFIX = "#/$defs/"


def _schema_dir() -> Path:
    import kubernetes_validate

    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    wanted = base / f"{KUBERNETES_SCHEMA_VERSION}-local"
    if wanted.is_dir():
        return wanted
    # Fall back to the newest shipped version if 1.32 is ever dropped from the package.
    candidates = sorted(p for p in base.iterdir() if p.name.endswith("-local"))
    if not candidates:
        raise RuntimeError(f"kubernetes-validate ships no schemas under {base}")
    logger.warning("Kubernetes %s schemas not shipped; using %s", KUBERNETES_SCHEMA_VERSION, candidates[-1].name)
    return candidates[-1]


@functools.cache
def definitions() -> dict[str, dict[str, Any]]:
    """All definitions by name, e.g. ``io.k8s.api.apps.v1.Deployment``. Loaded once; do not mutate."""
    raw = orjson.loads((_schema_dir() / "_definitions.json").read_bytes())
    defs: dict[str, dict[str, Any]] = raw["$defs"]
    return defs


@functools.cache
def _gvk_index() -> dict[tuple[str, str, str], str]:
    index: dict[tuple[str, str, str], str] = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or ():
            index.setdefault((gvk.get("group", ""), gvk["version"], gvk["kind"]), name)
    return index


def definition_name(group: str, version: str, kind: str) -> str | None:
    """The definition name for a built-in kind, or None if Kubernetes does not define it."""
    return _gvk_index().get((group, version, kind))


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a ``$ref`` (also one wrapped in ``allOf``) to the referenced definition."""
    seen = 0
    while True:
        ref = schema.get("$ref")
        if ref is None and len(schema.get("allOf") or ()) == 1:
            ref = schema["allOf"][0].get("$ref")
        if not ref or not ref.startswith(REF_PREFIX):
            return schema
        schema = definitions()[ref[len(REF_PREFIX):]]
        seen += 1
        if seen > 64:
            raise RuntimeError("schema $ref cycle")
