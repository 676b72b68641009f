"""OverridePolicy and ClusterOverridePolicy: per-cluster changes to a manifest before it becomes a Work.

Pure functions over plain dicts, reproducing Karmada's ``overridemanager``:

* which policies apply: every ClusterOverridePolicy, then (for a namespaced manifest)
  every OverridePolicy of the manifest's namespace, whose ``resourceSelectors`` match
  (none means all); within each group sorted by implicit priority ascending (match-all,
  then label selector, then name) and then by policy name, so the most specific policy
  is applied last and wins;
* which rules of a policy apply: ``overrideRules[]`` whose ``targetCluster`` (a
  ClusterAffinity: clusterNames, labelSelector, fieldSelector on provider/region/zone,
  exclude) matches the Cluster object, or the deprecated ``targetCluster``/``overriders``
  pair when there are no rules;
* within a rule, the overriders in Karmada's order: imageOverrider, commandOverrider,
  argsOverrider, labelsOverrider, annotationsOverrider, fieldOverrider, plaintext —
  each is turned into RFC 6902 operations and applied in turn.

The applied policies are reported as Karmada's ``policy.karmada.io/applied-overrides``
and ``applied-cluster-overrides`` annotations (a JSON list of ``{policyName, overriders}``
sorted by name) so ``kubectl get work -o yaml`` shows what changed a manifest.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import jsonpointer
import orjson
import yaml

from atoll.api.selectors import LabelSelector

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

APPLIED_OVERRIDES = "policy.karmada.io/applied-overrides"
APPLIED_CLUSTER_OVERRIDES = "policy.karmada.io/applied-cluster-overrides"

# Implicit priorities of a resource selector match (Karmada's util.ImplicitPriority).
PRIORITY_MISMATCH = 0
PRIORITY_MATCH_ALL = 1
PRIORITY_MATCH_LABEL_SELECTOR = 2
PRIORITY_MATCH_NAME = 3

POD_SPEC_PREFIX = "/spec"
POD_TEMPLATE_PREFIX = "/spec/template/spec"
_TEMPLATE_KINDS = frozenset({"ReplicaSet", "Deployment", "DaemonSet", "StatefulSet", "Job"})
_OVERRIDER_ORDER = ("plaintext", "imageOverrider", "commandOverrider", "argsOverrider", "labelsOverrider",
                    "annotationsOverrider", "fieldOverrider")
"""Field order of Karmada's ``Overriders`` struct: the order keys take in the annotation JSON."""


class OverrideError(ValueError):
    """An overrider that cannot be applied to the manifest (bad path, bad image, failed patch)."""


# -- matching -------------------------------------------------------------------------------


def selector_priority(obj: Mapping[str, Any], selector: Mapping[str, Any], *,
                      default_namespace: str = "") -> int:
    """How well one ``resourceSelector`` matches an object (``util.ResourceSelectorPriority``).

    A name, when given, decides alone (the label selector is then ignored); else a label
    selector; else everything of that apiVersion/kind (in the namespace, if one is given).
    ``default_namespace`` is the namespace Karmada's webhook fills into a namespaced
    PropagationPolicy's selectors.
    """
    md = obj.get("metadata") or {}
    if obj.get("apiVersion") != selector.get("apiVersion") or obj.get("kind") != selector.get("kind"):
        return PRIORITY_MISMATCH
    namespace = selector.get("namespace") or default_namespace
    if namespace and md.get("namespace", "") != namespace:
        return PRIORITY_MISMATCH
    name = selector.get("name") or ""
    if name:
        return PRIORITY_MATCH_NAME if name == md.get("name") else PRIORITY_MISMATCH
    label_selector = selector.get("labelSelector")
    if label_selector is None:
        return PRIORITY_MATCH_ALL
    try:
        matches = LabelSelector.from_dict(label_selector).matches(md.get("labels") or {})
    except Exception:  # an invalid selector matches nothing, as Karmada's webhook would have refused it
        return PRIORITY_MISMATCH
    return PRIORITY_MATCH_LABEL_SELECTOR if matches else PRIORITY_MISMATCH


def selectors_priority(obj: Mapping[str, Any], selectors: Iterable[Mapping[str, Any]] | None, *,
                       default_namespace: str = "") -> int:
    """The best priority over several selectors (``util.ResourceMatchSelectorsPriority``)."""
    return max((selector_priority(obj, s, default_namespace=default_namespace) for s in selectors or ()),
               default=PRIORITY_MISMATCH)


def matches_selectors(obj: Mapping[str, Any], selectors: Iterable[Mapping[str, Any]] | None, *,
                      default_namespace: str = "") -> bool:
    return selectors_priority(obj, selectors, default_namespace=default_namespace) > PRIORITY_MISMATCH


def _requirement_matches(req: Mapping[str, Any], value: str | None) -> bool:
    """A NodeSelectorRequirement against one field value (None: the field is unset)."""
    op = req.get("operator")
    values = [str(v) for v in req.get("values") or []]
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            left, right = int(value), int(values[0])
        except ValueError:
            return False
        return left > right if op == "Gt" else left < right
    return False


def _zones_match(req: Mapping[str, Any], zones: Sequence[str]) -> bool:
    """Karmada's ``matchZones``: a cluster may span several zones."""
    op = req.get("operator")
    values = set(req.get("values") or [])
    if op == "In":
        return any(z in values for z in zones)
    if op == "NotIn":
        return not any(z in values for z in zones)
    if op == "Exists":
        return bool(zones)
    if op == "DoesNotExist":
        return not zones
    return False


def cluster_zones(cluster: Mapping[str, Any]) -> list[str]:
    spec = cluster.get("spec") or {}
    zones = [str(z) for z in spec.get("zones") or []]
    if not zones and spec.get("zone"):
        zones = [str(spec["zone"])]
    return zones


def cluster_matches(cluster: Mapping[str, Any], affinity: Mapping[str, Any]) -> bool:
    """Whether a Cluster matches a ClusterAffinity (``util.ClusterMatches``): every given part must hold."""
    md = cluster.get("metadata") or {}
    name = md.get("name")
    if name in (affinity.get("exclude") or []):
        return False
    label_selector = affinity.get("labelSelector")
    if label_selector is not None:
        try:
            if not LabelSelector.from_dict(label_selector).matches(md.get("labels") or {}):
                return False
        except Exception:
            return False
    field_selector = affinity.get("fieldSelector")
    if field_selector is not None:
        spec = cluster.get("spec") or {}
        fields = {"provider": spec.get("provider") or None, "region": spec.get("region") or None}
        for req in field_selector.get("matchExpressions") or []:
            key = req.get("key")
            if key == "zone":
                if not _zones_match(req, cluster_zones(cluster)):
                    return False
            elif key in fields:
                if not _requirement_matches(req, fields[key]):
                    return False
            elif not _requirement_matches(req, None):
                return False
    names = affinity.get("clusterNames") or []
    return not names or name in names


# -- images ---------------------------------------------------------------------------------

_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
_NAME_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$")
_DOMAIN_RE = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
                        r"(?::[0-9]+)?$")


@dataclass
class Image:
    """An image reference split as Karmada's ``imageparser.Components``: ``[host/]repository[:tag|@digest]``."""

    hostname: str = ""
    repository: str = ""
    tag: str = ""
    digest: str = ""

    @classmethod
    def parse(cls, image: str) -> Image:
        """Parse like ``distribution/reference.Parse`` (no normalisation: ``nginx`` stays ``nginx``)."""
        rest, digest = image, ""
        if "@" in rest:
            rest, _, digest = rest.partition("@")
            if not _DIGEST_RE.match(digest):
                raise OverrideError(f"invalid reference format: {image!r}")
        tag = ""
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            rest, tag = rest[:colon], rest[colon + 1:]
            if not _TAG_RE.match(tag):
                raise OverrideError(f"invalid reference format: {image!r}")
        if not rest:
            raise OverrideError(f"invalid reference format: {image!r}")
        first, sep, remainder = rest.partition("/")
        if sep and (("." in first or ":" in first) or first == "localhost"):
            hostname, repository = first, remainder
            if not _DOMAIN_RE.match(hostname):
                raise OverrideError(f"invalid reference format: {image!r}")
        else:
            hostname, repository = "", rest
        if not all(_NAME_COMPONENT_RE.match(part) for part in repository.split("/")):
            raise OverrideError(f"invalid reference format: {image!r}")
        # Like Karmada: a tagged reference keeps its tag, and the digest is then dropped.
        return cls(hostname, repository, tag, "" if tag else digest)

    def full_repository(self) -> str:
        return f"{self.hostname}/{self.repository}" if self.hostname else self.repository

    def __str__(self) -> str:
        if self.tag:
            return f"{self.full_repository()}:{self.tag}"
        if self.digest:
            return f"{self.full_repository()}@{self.digest}"
        return self.full_repository()

    def set_tag_or_digest(self, value: str) -> None:
        if _TAG_RE.match(value):
            self.tag, self.digest = value, ""
        elif _DIGEST_RE.match(value):
            self.digest, self.tag = value, ""


def override_image(image: str, overrider: Mapping[str, Any]) -> str:
    """One imageOverrider applied to one image string."""
    parts = Image.parse(image)
    component, op, value = overrider.get("component"), overrider.get("operator"), str(overrider.get("value") or "")
    if component == "Registry":
        if op == "add":
            parts.hostname += value
        elif op == "replace":
            parts.hostname = value
        elif op == "remove":
            parts.hostname = ""
    elif component == "Repository":
        if op == "add":
            parts.repository += value
        elif op == "replace":
            parts.repository = value
        elif op == "remove":
            parts.repository = ""
    elif component == "Tag":
        if op == "add":
            parts.set_tag_or_digest((parts.tag or parts.digest) + value)
        elif op == "replace":
            parts.set_tag_or_digest(value)
        elif op == "remove":
            if parts.tag:
                parts.tag = ""
            else:
                parts.digest = ""
    else:
        raise OverrideError(f"unsupported image component({component})")
    return str(parts)


def _pod_spec_prefix(obj: Mapping[str, Any]) -> str | None:
    kind = obj.get("kind")
    if kind == "Pod":
        return POD_SPEC_PREFIX
    if kind in _TEMPLATE_KINDS:
        return POD_TEMPLATE_PREFIX
    return None


def _pod_spec(obj: Mapping[str, Any], prefix: str) -> Mapping[str, Any]:
    """The pod spec at ``prefix`` (``{}`` when the object has none)."""
    node: Any = obj
    for part in prefix.strip("/").split("/"):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def _resolve(obj: Any, pointer: str) -> Any:
    try:
        return jsonpointer.resolve_pointer(obj, pointer)
    except (jsonpointer.JsonPointerException, KeyError, IndexError, TypeError) as exc:
        raise OverrideError(f"path {pointer!r} not found: {exc}") from None


def image_patches(obj: Mapping[str, Any], overrider: Mapping[str, Any]) -> list[Obj]:
    """JSON patch operations for one imageOverrider.

    With ``predicate.path`` only that image is changed; without one, every container of a
    Pod, ReplicaSet, Deployment, DaemonSet, StatefulSet or Job (init containers are left
    alone, as in Karmada); any other kind is not changed.
    """
    predicate = overrider.get("predicate")
    if predicate:
        path = str(predicate.get("path") or "")
        if not path.startswith("/"):
            raise OverrideError("imagePath should be start with / character")
        current = _resolve(obj, path)
        if not isinstance(current, str):
            raise OverrideError(f"failed to convert path({path}) to string")
        return [{"op": "replace", "path": path, "value": override_image(current, overrider)}]
    prefix = _pod_spec_prefix(obj)
    if prefix is None:
        return []
    containers = _pod_spec(obj, prefix).get("containers") or []
    return [{"op": "replace", "path": f"{prefix}/containers/{i}/image",
             "value": override_image(str(c.get("image") or ""), overrider)}
            for i, c in enumerate(containers)]


def command_args_patches(target: str, obj: Mapping[str, Any], overrider: Mapping[str, Any]) -> list[Obj]:
    """JSON patch operations for one commandOverrider (``target="command"``) or argsOverrider (``"args"``)."""
    prefix = _pod_spec_prefix(obj)
    if prefix is None:
        return []
    containers = _pod_spec(obj, prefix).get("containers")
    if not containers:
        return []
    patches: list[Obj] = []
    for i, container in enumerate(containers):
        if container.get("name") != overrider.get("containerName"):
            continue
        current = container.get(target)
        values = [str(v) for v in overrider.get("value") or []]
        base = [str(v) for v in current or []]
        if overrider.get("operator") == "add":
            new = base + values
        elif overrider.get("operator") == "remove":
            new = [v for v in base if v not in set(values)]
        else:
            new = base
        patches.append({"op": "add" if current is None else "replace",
                        "path": f"{prefix}/containers/{i}/{target}", "value": new})
    return patches


def label_annotation_patches(obj: Obj, overrider: Mapping[str, Any], where: str) -> list[Obj]:
    """JSON patch operations for one labelsOverrider/annotationsOverrider (``where`` is the metadata key).

    ``replace`` and ``remove`` skip keys the object does not have; ``add`` creates the map if needed.
    """
    patches: list[Obj] = []
    op = overrider.get("operator")
    md = obj.setdefault("metadata", {})
    for key, value in (overrider.get("value") or {}).items():
        if op in ("remove", "replace"):
            if key not in (md.get(where) or {}):
                continue
        elif op == "add" and md.get(where) is None:
            md[where] = {}
        escaped = str(key).replace("~", "~0").replace("/", "~1")
        patches.append({"op": op, "path": f"/metadata/{where}/{escaped}", "value": value})
    return patches


def _operations(ops: Iterable[Mapping[str, Any]], *, path_key: str) -> list[Obj]:
    """Karmada's overrideOption list: ``value`` is left out when empty (``json:",omitempty"``)."""
    out: list[Obj] = []
    for op in ops:
        entry: Obj = {"op": op.get("operator"), "path": op.get(path_key, "")}
        if op.get("value") is not None:
            entry["value"] = op["value"]
        out.append(entry)
    return out


def apply_json_patch(obj: Any, ops: list[Obj]) -> Any:
    if not ops:
        return obj
    try:
        return jsonpatch.JsonPatch(ops).apply(obj, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, KeyError, IndexError, TypeError,
            ValueError) as exc:
        raise OverrideError(f"failed to apply patch {ops}: {exc}") from None


def apply_field_overrider(obj: Obj, overrider: Mapping[str, Any]) -> Obj:
    """A fieldOverrider: patch a JSON or YAML document held in a string field (a ConfigMap key, say)."""
    path = str(overrider.get("fieldPath") or "")
    current = _resolve(obj, path)
    if not isinstance(current, str):
        raise OverrideError(f"Get object's value by overrider's path({path}) is not string")
    if overrider.get("yaml"):
        try:
            doc = yaml.safe_load(current)
        except yaml.YAMLError as exc:
            raise OverrideError(f"field {path} is not YAML: {exc}") from None
        patched = apply_json_patch(doc, _operations(overrider["yaml"], path_key="subPath"))
        text = yaml.safe_dump(patched, default_flow_style=False, sort_keys=True)
    elif overrider.get("json"):
        try:
            doc = orjson.loads(current)
        except orjson.JSONDecodeError as exc:
            raise OverrideError(f"field {path} is not JSON: {exc}") from None
        patched = apply_json_patch(doc, _operations(overrider["json"], path_key="subPath"))
        text = orjson.dumps(patched).decode()
    else:
        text = ""
    result: Obj = apply_json_patch(obj, [{"op": "replace", "path": path, "value": text}])
    return result


def apply_overriders(obj: Obj, overriders: Mapping[str, Any]) -> Obj:
    """Every overrider of one rule, in Karmada's order; returns a new object."""
    out = copy.deepcopy(obj)
    for item in overriders.get("imageOverrider") or []:
        out = apply_json_patch(out, image_patches(out, item))
    for item in overriders.get("commandOverrider") or []:
        out = apply_json_patch(out, command_args_patches("command", out, item))
    for item in overriders.get("argsOverrider") or []:
        out = apply_json_patch(out, command_args_patches("args", out, item))
    for item in overriders.get("labelsOverrider") or []:
        out = apply_json_patch(out, label_annotation_patches(out, item, "labels"))
    for item in overriders.get("annotationsOverrider") or []:
        out = apply_json_patch(out, label_annotation_patches(out, item, "annotations"))
    for item in overriders.get("fieldOverrider") or []:
        out = apply_field_overrider(out, item)
    result: Obj = apply_json_patch(out, _operations(overriders.get("plaintext") or [], path_key="path"))
    return result


# -- policies -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppliedItem:
    policy_name: str
    overriders: Obj

    def as_dict(self) -> Obj:
        ordered = {k: self.overriders[k] for k in _OVERRIDER_ORDER if self.overriders.get(k)}
        return {"policyName": self.policy_name, "overriders": ordered}


@dataclass
class OverrideResult:
    """The overridden manifest and what was applied (cluster-scoped and namespaced policies)."""

    manifest: Obj
    cluster_overrides: list[AppliedItem] = field(default_factory=list)
    overrides: list[AppliedItem] = field(default_factory=list)

    def annotations(self) -> dict[str, str]:
        """Karmada's Work annotations recording the applied policies (absent when none applied)."""
        out: dict[str, str] = {}
        for key, items in ((APPLIED_CLUSTER_OVERRIDES, self.cluster_overrides), (APPLIED_OVERRIDES, self.overrides)):
            if items:
                ordered = sorted(items, key=lambda i: i.policy_name)
                out[key] = orjson.dumps([i.as_dict() for i in ordered]).decode()
        return out


def _policy_rank(obj: Mapping[str, Any], policy: Mapping[str, Any]) -> tuple[int, str]:
    selectors = (policy.get("spec") or {}).get("resourceSelectors") or []
    priority = selectors_priority(obj, selectors) if selectors else PRIORITY_MATCH_ALL
    return (priority, str((policy.get("metadata") or {}).get("name") or ""))


def matching_rules(obj: Mapping[str, Any], cluster: Mapping[str, Any],
                   policies: Iterable[Mapping[str, Any]]) -> list[AppliedItem]:
    """The (policy, overriders) pairs that apply to ``obj`` on ``cluster``, in application order."""
    matching = [p for p in policies if not (p.get("spec") or {}).get("resourceSelectors")
                or matches_selectors(obj, (p.get("spec") or {}).get("resourceSelectors"))]
    matching.sort(key=lambda p: _policy_rank(obj, p))
    out: list[AppliedItem] = []
    for policy in matching:
        spec = policy.get("spec") or {}
        rules = spec.get("overrideRules") or [{"targetCluster": spec.get("targetCluster"),
                                                "overriders": spec.get("overriders") or {}}]
        name = str((policy.get("metadata") or {}).get("name") or "")
        for rule in rules:
            target = rule.get("targetCluster")
            if target is None or cluster_matches(cluster, target):
                out.append(AppliedItem(name, dict(rule.get("overriders") or {})))
    return out


def apply_overrides(manifest: Obj, cluster: Mapping[str, Any], *,
                    cluster_policies: Iterable[Mapping[str, Any]] = (),
                    policies: Iterable[Mapping[str, Any]] = ()) -> OverrideResult:
    """Apply ClusterOverridePolicies, then the OverridePolicies of the manifest's namespace.

    ``policies`` may hold OverridePolicies of any namespace: only those of the manifest's
    own namespace are considered, and none for a cluster-scoped manifest. Policies being
    deleted are skipped. Raises :class:`OverrideError` when an overrider cannot be applied.
    """
    live = [p for p in cluster_policies if not (p.get("metadata") or {}).get("deletionTimestamp")]
    result = OverrideResult(copy.deepcopy(manifest))
    for item in matching_rules(result.manifest, cluster, live):
        result.manifest = apply_overriders(result.manifest, item.overriders)
        result.cluster_overrides.append(item)
    namespace = (manifest.get("metadata") or {}).get("namespace")
    if namespace:
        own = [p for p in policies if (p.get("metadata") or {}).get("namespace") == namespace
               and not (p.get("metadata") or {}).get("deletionTimestamp")]
        for item in matching_rules(result.manifest, cluster, own):
            result.manifest = apply_overriders(result.manifest, item.overriders)
            result.overrides.append(item)
    return result
