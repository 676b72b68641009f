"""The arithmetic of Deployment rollouts, kept pure so it can be tested step by step.

These are kube's ``pkg/controller/deployment/util`` rules over plain dicts: the
pod-template hash that names a Deployment's ReplicaSets, maxSurge/maxUnavailable
resolution, which ReplicaSet is "new" and which are "old", revision bookkeeping in
annotations, how many replicas each ReplicaSet gets in a rolling step or a
proportional scale, which old ReplicaSets history cleanup removes, and the status and
conditions a Deployment reports. The controller (:mod:`.deployment`) only reads caches,
calls these, and writes the results.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

Obj = dict[str, Any]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
SKIP_COPY = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO})
"""Deployment annotations never copied to its ReplicaSets (kube's ``annotationsToSkip``)."""
MAX_REV_HISTORY_CHARS = 2000

# Condition types and reasons, with kube's spelling (kubectl and dashboards match on them).
AVAILABLE = "Available"
PROGRESSING = "Progressing"
REPLICA_FAILURE = "ReplicaFailure"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"
NEW_RS_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
RS_UPDATED_REASON = "ReplicaSetUpdated"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
PAUSED_REASON = "DeploymentPaused"
RESUMED_REASON = "DeploymentResumed"
FAILED_RS_CREATE_REASON = "ReplicaSetCreateError"
MAX_INT32 = 2**31 - 1

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""apimachinery's ``rand.SafeEncodeString`` alphabet: no vowels (no words), no 0/1/3 (no look-alikes)."""


# -- small accessors ------------------------------------------------------------------------


def _md(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    value = obj.get("metadata")
    return value if isinstance(value, Mapping) else {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    value = obj.get("spec")
    return value if isinstance(value, Mapping) else {}


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    value = obj.get("status")
    return value if isinstance(value, Mapping) else {}


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def spec_replicas(obj: Mapping[str, Any]) -> int:
    """``*spec.replicas`` (kube defaults it to 1; the API server already did)."""
    return _int(_spec(obj).get("replicas"), 1)


def status_count(obj: Mapping[str, Any], field: str) -> int:
    return _int(_status(obj).get(field))


def annotations_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    value = _md(obj).get("annotations")
    return value if isinstance(value, Mapping) else {}


def creation_key(rs: Mapping[str, Any]) -> tuple[str, str]:
    """``ReplicaSetsByCreationTimestamp``: older first, then by name (RFC 3339 strings sort as times)."""
    md = _md(rs)
    return (str(md.get("creationTimestamp") or ""), str(md.get("name") or ""))


def by_creation(rss: Iterable[Obj]) -> list[Obj]:
    return sorted(rss, key=creation_key)


def active(rss: Iterable[Obj | None]) -> list[Obj]:
    """``FilterActiveReplicaSets``: the ones with replicas wanted."""
    return [rs for rs in rss if rs is not None and spec_replicas(rs) > 0]


def total_spec(rss: Iterable[Obj | None]) -> int:
    """``GetReplicaCountForReplicaSets``: replicas wanted."""
    return sum(spec_replicas(rs) for rs in rss if rs is not None)


def total_status(rss: Iterable[Obj | None], field: str) -> int:
    """The sum of one status counter (``replicas``, ``readyReplicas``, ``availableReplicas``)."""
    return sum(status_count(rs, field) for rs in rss if rs is not None)


# -- the pod-template hash ----------------------------------------------------------------


def safe_encode(text: str) -> str:
    """``rand.SafeEncodeString``: each byte mapped into an alphabet safe for names."""
    return "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in text.encode())


def fnv32a(data: bytes, h: int = 0x811C9DC5) -> int:
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template: Mapping[str, Any], collision_count: int | None = None) -> str:
    """``controller.ComputeHash``: FNV-32a over the template, plus collisionCount, safely encoded.

    kube hashes the Go struct's spew dump; a canonical JSON rendering (sorted keys) plays
    the same role here: equal templates give equal names, any change gives a new one.
    The collision count is written as 8 little-endian bytes of which only 4 are used,
    exactly as kube does, so bumping it always moves the hash.
    """
    h = fnv32a(orjson.dumps(template, option=orjson.OPT_SORT_KEYS))
    if collision_count is not None:
        h = fnv32a((collision_count & 0xFFFFFFFF).to_bytes(4, "little") + b"\0\0\0\0", h)
    return safe_encode(str(h))


def _semantic(value: Any) -> Any:
    """Drop nulls and empty maps/lists: kube's semantic equality treats nil and empty alike."""
    if isinstance(value, Mapping):
        out = {k: _semantic(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_semantic(v) for v in value]
    return value


def without_hash(template: Mapping[str, Any] | None) -> Obj:
    t = copy.deepcopy(dict(template or {}))
    md = t.get("metadata")
    if isinstance(md, dict) and isinstance(md.get("labels"), dict):
        md["labels"].pop(HASH_LABEL, None)
    return t


def equal_ignore_hash(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """``EqualIgnoreHash``: the same pod template once the pod-template-hash label is ignored."""
    return bool(_semantic(without_hash(a)) == _semantic(without_hash(b)))


# -- surge and unavailability ---------------------------------------------------------------


def scaled_value(value: Any, total: int, *, round_up: bool) -> int:
    """``intstr.GetScaledValueFromIntOrPercent``: ints as they are, ``"N%"`` of ``total``."""
    if value is None:
        return 0
    if isinstance(value, str):
        if not value.endswith("%"):
            raise ValueError(f"invalid value for IntOrString: invalid type: string is not a percentage: {value!r}")
        percent = int(value[:-1])
        scaled = percent * total
        return -(-scaled // 100) if round_up else scaled // 100
    return _int(value)


def resolve_fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    """``ResolveFenceposts``: surge rounds up, unavailable rounds down; both 0 means unavailable 1."""
    surge = scaled_value(max_surge if max_surge is not None else 0, desired, round_up=True)
    unavailable = scaled_value(max_unavailable if max_unavailable is not None else 0, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def is_rolling(d: Mapping[str, Any]) -> bool:
    strategy = _spec(d).get("strategy") or {}
    return (strategy.get("type") or "RollingUpdate") == "RollingUpdate"


def _rolling_params(d: Mapping[str, Any]) -> tuple[Any, Any]:
    rolling = (_spec(d).get("strategy") or {}).get("rollingUpdate") or {}
    return rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%")


def max_surge(d: Mapping[str, Any]) -> int:
    if not is_rolling(d):
        return 0
    surge, _ = resolve_fenceposts(*_rolling_params(d), spec_replicas(d))
    return surge


def max_unavailable(d: Mapping[str, Any]) -> int:
    """``MaxUnavailable``: never more than the Deployment's replicas (0 for Recreate or 0 replicas)."""
    replicas = spec_replicas(d)
    if not is_rolling(d) or replicas == 0:
        return 0
    _, unavailable = resolve_fenceposts(*_rolling_params(d), replicas)
    return min(unavailable, replicas)


# -- new and old ReplicaSets, revisions ---------------------------------------------------------


def find_new(d: Mapping[str, Any], rss: Iterable[Obj]) -> Obj | None:
    """``FindNewReplicaSet``: the oldest ReplicaSet whose template is the Deployment's.

    The oldest wins when several match (they can after a hash collision), so the choice
    is stable across syncs.
    """
    template = _spec(d).get("template")
    return next((rs for rs in by_creation(rss) if equal_ignore_hash(_spec(rs).get("template"), template)), None)


def find_old(d: Mapping[str, Any], rss: Iterable[Obj]) -> tuple[list[Obj], list[Obj]]:
    """``FindOldReplicaSets``: (old ones with replicas wanted, every old one)."""
    rss = list(rss)
    new = find_new(d, rss)
    new_uid = _md(new).get("uid") if new is not None else None
    every = [rs for rs in rss if new is None or _md(rs).get("uid") != new_uid]
    return [rs for rs in every if spec_replicas(rs) != 0], every


def revision(obj: Mapping[str, Any]) -> int:
    """The revision annotation as a number (0 when missing or garbled)."""
    try:
        return int(annotations_of(obj).get(REVISION, ""))
    except ValueError:
        return 0


def max_revision(rss: Iterable[Obj | None]) -> int:
    return max((revision(rs) for rs in rss if rs is not None), default=0)


def replicas_annotations_need_update(rs: Mapping[str, Any], desired: int, max_replicas: int) -> bool:
    ann = annotations_of(rs)
    return ann.get(DESIRED_REPLICAS) != str(desired) or ann.get(MAX_REPLICAS) != str(max_replicas)


def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    """Record the Deployment size the ReplicaSet was scaled for: proportional scaling reads it back."""
    ann = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(max_replicas))):
        if ann.get(key) != value:
            ann[key] = value
            changed = True
    return changed


def set_new_rs_annotations(d: Mapping[str, Any], rs: Obj, new_revision: int, *, exists: bool,
                           history_chars: int = MAX_REV_HISTORY_CHARS) -> bool:
    """``SetNewReplicaSetAnnotations``: copy the Deployment's annotations, raise the revision.

    A ReplicaSet that becomes new again (a rollback) keeps the revisions it had in
    ``revision-history``; a ReplicaSet about to be created also gets the replica
    annotations. Returns whether anything changed.
    """
    ann = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for key, value in annotations_of(d).items():
        if key in SKIP_COPY or ann.get(key) == value:
            continue
        ann[key] = value
        changed = True
    had = REVISION in ann
    old_revision = ann.get(REVISION, "")
    try:
        old = int(old_revision) if old_revision != "" else 0
    except ValueError:
        return changed
    if old < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if had:
            history = ann.get(REVISION_HISTORY, "")
            previous = history.split(",") if history else []
            total = len(history) + len(old_revision) + 1
            start = 0
            while total > history_chars and start < len(previous):
                total -= len(previous[start]) + 1
                start += 1
            if total <= history_chars:
                ann[REVISION_HISTORY] = ",".join([*previous[start:], old_revision])
    if not exists and set_replicas_annotations(rs, spec_replicas(d), spec_replicas(d) + max_surge(d)):
        changed = True
    return changed


# -- replica arithmetic -------------------------------------------------------------------------


def new_rs_replicas(d: Mapping[str, Any], all_rss: Sequence[Obj | None], new_rs: Mapping[str, Any]) -> int:
    """``NewRSNewReplicas``: how far the new ReplicaSet may grow now.

    RollingUpdate: up to ``replicas + maxSurge`` pods in total, never past ``replicas``
    for the new one. Recreate: all at once (old ones are gone by then).
    """
    replicas = spec_replicas(d)
    if not is_rolling(d):
        return replicas
    surge = scaled_value(_rolling_params(d)[0], replicas, round_up=True)
    current = total_spec(all_rss)
    max_total = replicas + surge
    if current >= max_total:
        return spec_replicas(new_rs)
    scale_up = min(max_total - current, replicas - spec_replicas(new_rs))
    return spec_replicas(new_rs) + scale_up


def old_rs_targets(d: Mapping[str, Any], all_rss: Sequence[Obj | None], old_rss: Sequence[Obj],
                   new_rs: Mapping[str, Any] | None) -> list[tuple[Obj, int]]:
    """``reconcileOldReplicaSets``: which old ReplicaSets shrink, and to what, in order.

    First the unhealthy replicas of old ReplicaSets go (they serve nobody), within what
    the availability budget allows; then healthy old replicas, oldest ReplicaSet first,
    only as far as ``replicas - maxUnavailable`` pods stay available. Returns
    ``(replica set, new spec.replicas)`` pairs, one per ReplicaSet that changes.
    """
    if total_spec(old_rss) == 0:
        return []
    replicas = spec_replicas(d)
    min_available = replicas - max_unavailable(d)
    new_unavailable = (spec_replicas(new_rs) - status_count(new_rs, "availableReplicas")) if new_rs else 0
    max_scaled_down = total_spec(all_rss) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return []
    targets: dict[str, tuple[Obj, int]] = {}
    sizes: dict[str, int] = {}
    cleaned = 0
    for rs in by_creation(old_rss):  # cleanupUnhealthyReplicas
        if cleaned >= max_scaled_down:
            break
        want, avail = spec_replicas(rs), status_count(rs, "availableReplicas")
        if want == 0 or want == avail:
            continue
        down = min(max_scaled_down - cleaned, want - avail)
        if down <= 0:
            continue
        sizes[_md(rs).get("name", "")] = want - down
        targets[_md(rs).get("name", "")] = (rs, want - down)
        cleaned += down
    # scaleDownOldReplicaSetsForRollingUpdate, over the sizes after the cleanup.
    available = total_status(all_rss, "availableReplicas")
    if available > min_available:
        budget = available - min_available
        done = 0
        for rs in by_creation(old_rss):
            if done >= budget:
                break
            name = _md(rs).get("name", "")
            want = sizes.get(name, spec_replicas(rs))
            if want == 0:
                continue
            down = min(want, budget - done)
            targets[name] = (rs, want - down)
            done += down
    return [(rs, n) for rs, n in targets.values() if n != spec_replicas(rs)]


def replica_set_fraction(rs: Mapping[str, Any], d: Mapping[str, Any]) -> int:
    """``getReplicaSetFraction``: this ReplicaSet's share of a resize, from the size it was made for."""
    if spec_replicas(d) == 0:
        return -spec_replicas(rs)
    max_replicas = spec_replicas(d) + max_surge(d)
    try:
        before = int(annotations_of(rs).get(MAX_REPLICAS, ""))
    except ValueError:
        before = 0
    if before == 0:
        before = status_count(d, "replicas")
        if before == 0:
            return 0
    size = spec_replicas(rs) * max_replicas / before
    return int(math.floor(size + 0.5) if size >= 0 else -math.floor(-size + 0.5)) - spec_replicas(rs)


def proportion(rs: Mapping[str, Any] | None, d: Mapping[str, Any], to_add: int, added: int) -> int:
    """``GetReplicaSetProportion``: the fraction, capped by what is left to add (or remove)."""
    if rs is None or spec_replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = replica_set_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def is_saturated(d: Mapping[str, Any], rs: Mapping[str, Any] | None) -> bool:
    """The new ReplicaSet has all the Deployment's replicas, wanted, annotated and available."""
    if rs is None:
        return False
    replicas = spec_replicas(d)
    return (annotations_of(rs).get(DESIRED_REPLICAS) == str(replicas) and spec_replicas(rs) == replicas
            and status_count(rs, "availableReplicas") == replicas)


def active_or_latest(new_rs: Obj | None, old_rss: Sequence[Obj]) -> Obj | None:
    """``FindActiveOrLatest``: the one ReplicaSet to resize, when at most one is active."""
    if new_rs is None and not old_rss:
        return None
    newest_first = sorted(old_rss, key=creation_key, reverse=True)
    live = active([*newest_first, new_rs])
    if not live:
        return new_rs if new_rs is not None else newest_first[0]
    return live[0] if len(live) == 1 else None


def scale_targets(d: Mapping[str, Any], new_rs: Obj | None, old_rss: Sequence[Obj]) -> list[tuple[Obj, int, str]]:
    """``scale``: the resizes a scaling event (or a paused Deployment) needs.

    One active ReplicaSet takes the whole size; a saturated new one means old ones go to
    zero; otherwise (RollingUpdate mid-rollout) the difference between the allowed size
    (``replicas + maxSurge``) and what the active ReplicaSets have is shared in
    proportion to the size each was made for, the leftover going to the largest.
    Returns ``(replica set, new size, "up"|"down"|"")`` for every ReplicaSet to write.
    """
    replicas = spec_replicas(d)
    only = active_or_latest(new_rs, old_rss)
    if only is not None:
        return [] if spec_replicas(only) == replicas else [
            (only, replicas, "up" if replicas > spec_replicas(only) else "down")]
    if is_saturated(d, new_rs):
        return [(rs, 0, "down") for rs in active(old_rss)]
    if not is_rolling(d):
        return []
    live = active([*old_rss, new_rs])
    allowed = replicas + max_surge(d) if replicas > 0 else 0
    to_add = allowed - total_spec(live)
    operation = ""
    if to_add > 0:  # ReplicaSetsBySizeNewer: larger first, newer first among equals
        live.sort(key=creation_key, reverse=True)
        live.sort(key=spec_replicas, reverse=True)
        operation = "up"
    elif to_add < 0:  # ReplicaSetsBySizeOlder: larger first, older first among equals
        live.sort(key=creation_key)
        live.sort(key=spec_replicas, reverse=True)
        operation = "down"
    added = 0
    sizes: list[int] = []
    for rs in live:
        if to_add != 0:
            share = proportion(rs, d, to_add, added)
            sizes.append(spec_replicas(rs) + share)
            added += share
        else:
            sizes.append(spec_replicas(rs))
    if live and to_add != 0:
        sizes[0] = max(0, sizes[0] + to_add - added)
    return [(rs, size, operation) for rs, size in zip(live, sizes, strict=True)]


def history_to_clean(d: Mapping[str, Any], old_rss: Sequence[Obj]) -> list[Obj]:
    """``cleanupDeployment``: the oldest revisions beyond ``revisionHistoryLimit`` that are idle.

    Only ReplicaSets with no pods wanted or running, whose status has caught up, and not
    already being deleted are removed; busy ones are kept and retried on later syncs.
    """
    limit = _spec(d).get("revisionHistoryLimit")
    if not isinstance(limit, int) or isinstance(limit, bool):
        return []
    alive = [rs for rs in old_rss if not _md(rs).get("deletionTimestamp")]
    diff = len(alive) - limit
    if diff <= 0:
        return []
    ordered = sorted(alive, key=lambda rs: (revision(rs), *creation_key(rs)))
    out = []
    for rs in ordered[:diff]:
        if (status_count(rs, "replicas") != 0 or spec_replicas(rs) != 0
                or _int(_md(rs).get("generation"), 0) > status_count(rs, "observedGeneration")):
            continue
        out.append(rs)
    return out


# -- status and conditions ----------------------------------------------------------------------


def rfc3339(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def get_condition(status: Mapping[str, Any], type_: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


def new_condition(type_: str, status: str, reason: str, message: str, now: dt.datetime) -> Obj:
    t = rfc3339(now)
    return {"type": type_, "status": status, "lastUpdateTime": t, "lastTransitionTime": t, "reason": reason,
            "message": message}


def set_condition(status: Obj, condition: Obj) -> None:
    """``SetDeploymentCondition``: same status and reason is no change; same status keeps the transition time."""
    current = get_condition(status, condition["type"])
    if current is not None and current.get("status") == condition["status"] \
            and current.get("reason") == condition["reason"]:
        return
    if current is not None and current.get("status") == condition["status"]:
        condition = {**condition, "lastTransitionTime": current.get("lastTransitionTime")}
    status["conditions"] = [*(c for c in status.get("conditions") or [] if c.get("type") != condition["type"]),
                            condition]


def remove_condition(status: Obj, type_: str) -> None:
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != type_]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)


def has_progress_deadline(d: Mapping[str, Any]) -> bool:
    deadline = _spec(d).get("progressDeadlineSeconds")
    return isinstance(deadline, int) and deadline != MAX_INT32


def calculate_status(all_rss: Sequence[Obj | None], new_rs: Mapping[str, Any] | None, d: Mapping[str, Any],
                     now: dt.datetime) -> Obj:
    """``calculateStatus``: counts summed over the ReplicaSets, the Available condition set.

    Zero counts are left out, as Go's ``omitempty`` leaves them out of kube's status.
    """
    available = total_status(all_rss, "availableReplicas")
    unavailable = max(0, total_spec(all_rss) - available)
    counts = {"observedGeneration": _int(_md(d).get("generation"), 0),
              "replicas": total_status(all_rss, "replicas"),
              "updatedReplicas": status_count(new_rs, "replicas") if new_rs is not None else 0,
              "readyReplicas": total_status(all_rss, "readyReplicas"),
              "availableReplicas": available, "unavailableReplicas": unavailable}
    status: Obj = {k: v for k, v in counts.items() if v}
    collisions = _status(d).get("collisionCount")
    if collisions is not None:
        status["collisionCount"] = collisions
    conditions = [dict(c) for c in _status(d).get("conditions") or []]
    if conditions:
        status["conditions"] = conditions
    if available >= spec_replicas(d) - max_unavailable(d):
        set_condition(status, new_condition(AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.",
                                            now))
    else:
        set_condition(status, new_condition(AVAILABLE, "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability.", now))
    return status


def deployment_complete(d: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    replicas = spec_replicas(d)
    return (_int(status.get("updatedReplicas")) == replicas and _int(status.get("replicas")) == replicas
            and _int(status.get("availableReplicas")) == replicas
            and _int(status.get("observedGeneration")) >= _int(_md(d).get("generation")))


def deployment_progressing(d: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Progress: more updated, ready or available replicas, or fewer old ones, than last recorded."""
    old = _status(d)
    old_old = _int(old.get("replicas")) - _int(old.get("updatedReplicas"))
    new_old = _int(status.get("replicas")) - _int(status.get("updatedReplicas"))
    return (_int(status.get("updatedReplicas")) > _int(old.get("updatedReplicas")) or new_old < old_old
            or _int(status.get("readyReplicas")) > _int(old.get("readyReplicas"))
            or _int(status.get("availableReplicas")) > _int(old.get("availableReplicas")))


def deployment_timed_out(d: Mapping[str, Any], status: Mapping[str, Any], now: dt.datetime) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE_REASON:
        return False
    if cond.get("reason") == TIMED_OUT_REASON:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return False
    return since + dt.timedelta(seconds=_int(_spec(d).get("progressDeadlineSeconds"))) < now


def replica_failure(all_rss: Sequence[Obj | None], new_rs: Mapping[str, Any] | None) -> Obj | None:
    """``getReplicaFailures``: a ReplicaFailure condition of the new ReplicaSet (else of an old one)."""
    ordered = ([new_rs] if new_rs is not None else []) + [rs for rs in all_rss if rs is not None and rs is not new_rs]
    for rs in ordered:
        for c in _status(rs).get("conditions") or []:
            if c.get("type") == REPLICA_FAILURE and c.get("status") == "True":
                return {"type": REPLICA_FAILURE, "status": "True",
                        "lastUpdateTime": c.get("lastTransitionTime"),
                        "lastTransitionTime": c.get("lastTransitionTime"), "reason": c.get("reason", ""),
                        "message": c.get("message", "")}
    return None


def rollout_status(d: Mapping[str, Any], all_rss: Sequence[Obj | None], new_rs: Mapping[str, Any] | None,
                   now: dt.datetime) -> tuple[Obj, float | None]:
    """``syncRolloutStatus``: the new status (Progressing judged against the deadline) and when to look again.

    The second value is the delay after which a stuck rollout must be re-examined for
    ``ProgressDeadlineExceeded`` (kube's ``requeueStuckDeployment``), or None.
    """
    status = calculate_status(all_rss, new_rs, d, now)
    if not has_progress_deadline(d):
        remove_condition(status, PROGRESSING)
    current = get_condition(_status(d), PROGRESSING)
    name = _md(new_rs).get("name") if new_rs is not None else None
    complete_already = (_int(status.get("replicas")) == _int(status.get("updatedReplicas")) and current is not None
                        and current.get("reason") == NEW_RS_AVAILABLE_REASON)
    if has_progress_deadline(d) and not complete_already:
        if deployment_complete(d, status):
            msg = (f'ReplicaSet "{name}" has successfully progressed.' if name
                   else f'Deployment "{_md(d).get("name")}" has successfully progressed.')
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE_REASON, msg, now))
        elif deployment_progressing(d, status):
            msg = (f'ReplicaSet "{name}" is progressing.' if name
                   else f'Deployment "{_md(d).get("name")}" is progressing.')
            cond = new_condition(PROGRESSING, "True", RS_UPDATED_REASON, msg, now)
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                remove_condition(status, PROGRESSING)
            set_condition(status, cond)
        elif deployment_timed_out(d, status, now):
            msg = (f'ReplicaSet "{name}" has timed out progressing.' if name
                   else f'Deployment "{_md(d).get("name")}" has timed out progressing.')
            set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT_REASON, msg, now))
    failure = replica_failure(all_rss, new_rs)
    if failure is not None:
        set_condition(status, failure)
    else:
        remove_condition(status, REPLICA_FAILURE)
    return status, stuck_recheck(d, status, now)


def stuck_recheck(d: Mapping[str, Any], status: Mapping[str, Any], now: dt.datetime) -> float | None:
    """Seconds until a rollout without progress should be checked against its deadline."""
    current = get_condition(_status(d), PROGRESSING)
    if not has_progress_deadline(d) or current is None:
        return None
    if deployment_complete(d, status) or current.get("reason") == TIMED_OUT_REASON:
        return None
    since = parse_time(current.get("lastUpdateTime"))
    if since is None:
        return None
    after = (since + dt.timedelta(seconds=_int(_spec(d).get("progressDeadlineSeconds"))) - now).total_seconds()
    return 0.5 if after < 1 else after + 1


def same_status(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal as kube would see them once decoded (zero counts and empty lists are absent)."""
    return bool(_semantic(_drop_zero(a)) == _semantic(_drop_zero(b)))


def _drop_zero(status: Mapping[str, Any]) -> Obj:
    return {k: v for k, v in status.items() if not (isinstance(v, int) and not isinstance(v, bool) and v == 0
                                                   and k != "collisionCount")}
