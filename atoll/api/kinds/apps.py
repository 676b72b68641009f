"""apps/v1 kinds: Deployment, ReplicaSet, StatefulSet, DaemonSet, ControllerRevision."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from atoll.api import meta, selectors
from atoll.api.errors import BadRequest
from atoll.api.kinds import podspec
from atoll.api.kinds.base import Obj, Strategy, child, dict_at, list_at, set_default, set_default_str
from atoll.api.kinds.core import validate_pvc_spec
from atoll.api.meta import Cause, FieldPath

logger = logging.getLogger(__name__)

SPEC = FieldPath("spec")
_PERCENT_RE = re.compile(r"^[0-9]+%$")


# -- shared pieces -----------------------------------------------------------------------------


def intstr_repr(value: Any) -> meta.GoRepr:
    """Go's ``%#v`` of an ``intstr.IntOrString`` (how kube prints maxSurge/maxUnavailable)."""
    if isinstance(value, str):
        return meta.GoRepr(f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{meta.go_quote(value)}}}")
    number = value if isinstance(value, int) and not isinstance(value, bool) else 0
    return meta.GoRepr(f"intstr.IntOrString{{Type:0, IntVal:{number}, StrVal:\"\"}}")


def intstr_value(value: Any) -> int:
    """The number in ``5`` or ``"5%"`` (kube's ``getIntOrPercentValue``)."""
    if isinstance(value, str):
        try:
            return int(value.rstrip("%"))
        except ValueError:
            return 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def validate_int_or_percent(value: Any, path: FieldPath) -> list[Cause]:
    """``ValidatePositiveIntOrPercent`` + ``IsNotMoreThan100Percent`` where the caller wants it."""
    if value is None:
        return []
    if isinstance(value, str):
        if not _PERCENT_RE.match(value):
            return [meta.invalid_value(path, intstr_repr(value),
                                       "a valid percent string must be a numeric string followed by an ending '%' "
                                       "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")]
        return []
    if isinstance(value, int) and not isinstance(value, bool):
        return meta.non_negative(path, value)
    return [meta.invalid_value(path, intstr_repr(value), "must be an integer or percentage (e.g '5%')")]


def not_more_than_100_percent(value: Any, path: FieldPath) -> list[Cause]:
    if isinstance(value, str) and _PERCENT_RE.match(value) and intstr_value(value) > 100:
        return [meta.invalid_value(path, intstr_repr(value), "must not be greater than 100%")]
    return []


def validate_selector_and_template(spec: Mapping[str, Any], *, empty_word: str, path: FieldPath = SPEC,
                                   allowed_restart: tuple[str, ...] = ("Always",),
                                   kind_word: str | None = None) -> list[Cause]:
    """The selector/template rules every replicated workload shares.

    ``spec.selector`` required, valid and non-empty (``empty selector is invalid for
    <empty_word>``; an empty ``empty_word`` allows an empty selector); the template's labels must match it; the template must be a valid
    pod template with an allowed ``restartPolicy`` and (``kind_word`` set) no
    ``activeDeadlineSeconds``.
    """
    causes: list[Cause] = []
    selector = spec.get("selector")
    sel_path = path.child("selector")
    if selector is None:
        causes.append(meta.required(sel_path))
    else:
        causes += selectors.validate_label_selector(selector, sel_path)
        if empty_word and isinstance(selector, Mapping) and not selector.get("matchLabels") \
                and not selector.get("matchExpressions"):
            causes.append(meta.invalid_value(sel_path, meta.label_selector_repr(selector),
                                             f"empty selector is invalid for {empty_word}"))
    template = spec.get("template")
    tpath = path.child("template")
    try:
        parsed = selectors.LabelSelector.from_dict(selector if isinstance(selector, Mapping) else None)
    except BadRequest:
        causes.append(meta.invalid_value(sel_path, meta.label_selector_repr(selector if isinstance(selector, Mapping)
                                                                            else None), "invalid label selector"))
        parsed = None
    if not isinstance(template, Mapping):
        causes.append(meta.required(tpath))
        return causes
    labels = meta.string_map(dict_at(template, "metadata").get("labels"))
    if parsed is not None and not parsed.nothing and not parsed.empty and not parsed.matches(labels):
        causes.append(meta.invalid_value(tpath.child("metadata", "labels"), labels,
                                         "`selector` does not match template `labels`"))
    causes += podspec.validate_pod_template(template, tpath)
    tspec = dict_at(template, "spec")
    restart = tspec.get("restartPolicy")
    if restart and restart not in allowed_restart:
        causes.append(meta.not_supported(tpath.child("spec", "restartPolicy"), restart, allowed_restart))
    if kind_word and tspec.get("activeDeadlineSeconds") is not None:
        causes.append(meta.forbidden(tpath.child("spec", "activeDeadlineSeconds"),
                                     f"activeDeadlineSeconds in {kind_word} is not Supported"))
    return causes


def selector_immutable(new: Obj, old: Obj) -> list[Cause]:
    new_sel, old_sel = dict_at(new, "spec").get("selector"), dict_at(old, "spec").get("selector")
    if new_sel == old_sel:
        return []
    return [meta.invalid_value(SPEC.child("selector"),
                               meta.label_selector_repr(new_sel if isinstance(new_sel, Mapping) else None),
                               meta.FIELD_IMMUTABLE)]


class WorkloadStrategy(Strategy):
    """Common ground of replicated workloads: generation tracking, status reset, template defaults."""

    tracks_generation = True

    def default(self, obj: Obj) -> None:
        spec = child(obj, "spec")
        podspec.default_pod_template(spec.get("template"))


# -- Deployment ---------------------------------------------------------------------------------


class DeploymentStrategy(WorkloadStrategy):
    """Deployments: generation also moves on annotation changes (they are copied to ReplicaSets);
    ``/status`` may not change labels."""

    status_update_keeps_metadata = ("labels",)

    def default(self, obj: Obj) -> None:
        super().default(obj)
        spec = child(obj, "spec")
        set_default(spec, "replicas", 1)
        strategy = child(spec, "strategy")
        set_default_str(strategy, "type", "RollingUpdate")
        if strategy.get("type") == "RollingUpdate":
            rolling = child(strategy, "rollingUpdate")
            set_default(rolling, "maxUnavailable", "25%")
            set_default(rolling, "maxSurge", "25%")
        set_default(spec, "revisionHistoryLimit", 10)
        set_default(spec, "progressDeadlineSeconds", 600)

    def spec_changed(self, new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
        return (dict_at(new, "spec") != dict_at(old, "spec")
                or dict_at(dict_at(new, "metadata"), "annotations") != dict_at(dict_at(old, "metadata"), "annotations"))

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = dict_at(obj, "spec")
        causes = meta.non_negative(SPEC.child("replicas"), spec.get("replicas"))
        causes += validate_selector_and_template(spec, empty_word="deployment", kind_word="ReplicaSet")
        strategy = dict_at(spec, "strategy")
        sp = SPEC.child("strategy")
        stype = strategy.get("type") or ""
        if stype not in ("Recreate", "RollingUpdate"):
            causes.append(meta.not_supported(sp.child("type"), stype, ["Recreate", "RollingUpdate"]))
        rolling = strategy.get("rollingUpdate")
        if stype == "Recreate" and rolling is not None:
            causes.append(meta.forbidden(sp.child("rollingUpdate"),
                                         "may not be specified when strategy `type` is 'Recreate'"))
        if stype == "RollingUpdate" and isinstance(rolling, Mapping):
            rp = sp.child("rollingUpdate")
            unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
            causes += validate_int_or_percent(unavailable, rp.child("maxUnavailable"))
            causes += validate_int_or_percent(surge, rp.child("maxSurge"))
            if intstr_value(unavailable) == 0 and intstr_value(surge) == 0:
                causes.append(meta.invalid_value(rp.child("maxUnavailable"), intstr_repr(unavailable),
                                                 "may not be 0 when `maxSurge` is 0"))
            causes += not_more_than_100_percent(unavailable, rp.child("maxUnavailable"))
        causes += meta.non_negative(SPEC.child("revisionHistoryLimit"), spec.get("revisionHistoryLimit"))
        causes += meta.non_negative(SPEC.child("minReadySeconds"), spec.get("minReadySeconds"))
        deadline = spec.get("progressDeadlineSeconds")
        if deadline is not None:
            causes += meta.non_negative(SPEC.child("progressDeadlineSeconds"), deadline)
            min_ready = spec.get("minReadySeconds") or 0
            if isinstance(deadline, int) and isinstance(min_ready, int) and deadline <= min_ready:
                causes.append(meta.invalid_value(SPEC.child("progressDeadlineSeconds"), deadline,
                                                 "must be greater than minReadySeconds"))
        return causes

    def validate_spec_update(self, new: Obj, old: Obj) -> list[Cause]:
        return selector_immutable(new, old)


class ReplicaSetStrategy(WorkloadStrategy):
    def default(self, obj: Obj) -> None:
        super().default(obj)
        set_default(child(obj, "spec"), "replicas", 1)

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = dict_at(obj, "spec")
        causes = meta.non_negative(SPEC.child("replicas"), spec.get("replicas"))
        causes += meta.non_negative(SPEC.child("minReadySeconds"), spec.get("minReadySeconds"))
        # kube says "deployment" here too (its ReplicaSet validation shares the text).
        causes += validate_selector_and_template(spec, empty_word="deployment", kind_word="ReplicaSet")
        return causes

    def validate_spec_update(self, new: Obj, old: Obj) -> list[Cause]:
        return selector_immutable(new, old)


# -- StatefulSet --------------------------------------------------------------------------------

STATEFULSET_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
                       "persistentVolumeClaimRetentionPolicy", "minReadySeconds")


class StatefulSetStrategy(WorkloadStrategy):
    def default(self, obj: Obj) -> None:
        super().default(obj)
        spec = child(obj, "spec")
        set_default_str(spec, "podManagementPolicy", "OrderedReady")
        update = child(spec, "updateStrategy")
        set_default_str(update, "type", "RollingUpdate")
        if update.get("type") == "RollingUpdate":
            set_default(child(update, "rollingUpdate"), "partition", 0)
        retention = child(spec, "persistentVolumeClaimRetentionPolicy")
        set_default_str(retention, "whenDeleted", "Retain")
        set_default_str(retention, "whenScaled", "Retain")
        set_default(spec, "replicas", 1)
        set_default(spec, "revisionHistoryLimit", 10)
        for claim in list_at(spec, "volumeClaimTemplates"):
            if isinstance(claim, dict):
                set_default_str(child(claim, "spec"), "volumeMode", "Filesystem")
                set_default_str(child(claim, "status"), "phase", "Pending")

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = dict_at(obj, "spec")
        causes: list[Cause] = []
        policy = spec.get("podManagementPolicy") or ""
        if policy not in ("OrderedReady", "Parallel"):
            causes.append(meta.not_supported(SPEC.child("podManagementPolicy"), policy, ["OrderedReady", "Parallel"]))
        update = dict_at(spec, "updateStrategy")
        up = SPEC.child("updateStrategy")
        utype = update.get("type") or ""
        if utype not in ("OnDelete", "RollingUpdate"):
            causes.append(meta.not_supported(up.child("type"), utype, ["OnDelete", "RollingUpdate"]))
        rolling = update.get("rollingUpdate")
        if utype == "OnDelete" and rolling is not None:
            causes.append(meta.invalid_value(up.child("rollingUpdate"), meta.GoRepr("apps.RollingUpdateStatefulSetStrategy"
                                                                                    "{...}"),
                                             "only allowed for updateStrategy 'RollingUpdate'"))
        if isinstance(rolling, Mapping):
            causes += meta.non_negative(up.child("rollingUpdate", "partition"), rolling.get("partition"))
        causes += meta.non_negative(SPEC.child("replicas"), spec.get("replicas"))
        causes += meta.non_negative(SPEC.child("minReadySeconds"), spec.get("minReadySeconds"))
        causes += validate_selector_and_template(spec, empty_word="statefulset", kind_word="StatefulSet")
        retention = dict_at(spec, "persistentVolumeClaimRetentionPolicy")
        for key in ("whenDeleted", "whenScaled"):
            value = retention.get(key)
            if value is not None and value not in ("Retain", "Delete"):
                causes.append(meta.not_supported(SPEC.child("persistentVolumeClaimRetentionPolicy", key), value,
                                                 ["Retain", "Delete"]))
        for i, claim in enumerate(list_at(spec, "volumeClaimTemplates")):
            cp = SPEC.child("volumeClaimTemplates").index(i)
            claim = claim if isinstance(claim, Mapping) else {}
            name = dict_at(claim, "metadata").get("name") or ""
            if not name:
                causes.append(meta.required(cp.child("metadata", "name"), "name or generateName is required"))
            causes += validate_pvc_spec(dict_at(claim, "spec"), cp.child("spec"))
        return causes

    def validate_spec_update(self, new: Obj, old: Obj) -> list[Cause]:
        def frozen(obj: Obj) -> dict[str, Any]:
            return {k: v for k, v in dict_at(obj, "spec").items() if k not in STATEFULSET_MUTABLE}

        if frozen(new) != frozen(old):
            return [meta.forbidden(SPEC, "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                                   "'template', 'updateStrategy', 'revisionHistoryLimit', "
                                   "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")]
        return []


# -- DaemonSet ----------------------------------------------------------------------------------


class DaemonSetStrategy(WorkloadStrategy):
    def default(self, obj: Obj) -> None:
        super().default(obj)
        spec = child(obj, "spec")
        update = child(spec, "updateStrategy")
        set_default_str(update, "type", "RollingUpdate")
        if update.get("type") == "RollingUpdate":
            rolling = child(update, "rollingUpdate")
            set_default(rolling, "maxUnavailable", 1)
            set_default(rolling, "maxSurge", 0)
        set_default(spec, "revisionHistoryLimit", 10)

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = dict_at(obj, "spec")
        causes = validate_selector_and_template(spec, empty_word="daemonset")
        deadline = dict_at(dict_at(spec, "template"), "spec").get("activeDeadlineSeconds")
        if deadline is not None:
            causes.append(meta.invalid_value(SPEC.child("template", "spec", "activeDeadlineSeconds"), deadline,
                                             "activeDeadlineSeconds must be nil for daemon set pods"))
        causes += meta.non_negative(SPEC.child("minReadySeconds"), spec.get("minReadySeconds"))
        causes += meta.non_negative(SPEC.child("revisionHistoryLimit"), spec.get("revisionHistoryLimit"))
        update = dict_at(spec, "updateStrategy")
        up = SPEC.child("updateStrategy")
        utype = update.get("type") or ""
        if utype not in ("OnDelete", "RollingUpdate"):
            causes.append(meta.not_supported(up.child("type"), utype, ["OnDelete", "RollingUpdate"]))
        rolling = update.get("rollingUpdate")
        if utype == "RollingUpdate" and isinstance(rolling, Mapping):
            rp = up.child("rollingUpdate")
            unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
            causes += validate_int_or_percent(unavailable, rp.child("maxUnavailable"))
            causes += validate_int_or_percent(surge, rp.child("maxSurge"))
            if intstr_value(unavailable) == 0 and intstr_value(surge) == 0:
                causes.append(meta.invalid_value(rp.child("maxUnavailable"), intstr_repr(unavailable),
                                                 "may not be 0 when `maxSurge` is 0"))
            causes += not_more_than_100_percent(unavailable, rp.child("maxUnavailable"))
            causes += not_more_than_100_percent(surge, rp.child("maxSurge"))
        return causes

    def validate_spec_update(self, new: Obj, old: Obj) -> list[Cause]:
        return selector_immutable(new, old)


class ControllerRevisionStrategy(Strategy):
    def validate_spec(self, obj: Obj) -> list[Cause]:
        causes = meta.non_negative("revision", obj.get("revision"))
        if obj.get("data") is None:
            causes.append(meta.required("data", "data is mandatory"))
        return causes

    def validate_spec_update(self, new: Obj, old: Obj) -> list[Cause]:
        if new.get("data") != old.get("data"):
            return [meta.invalid_value("data", meta.GoRepr("runtime.RawExtension{...}"), meta.FIELD_IMMUTABLE)]
        return []


__all__ = [
    "STATEFULSET_MUTABLE",
    "ControllerRevisionStrategy",
    "DaemonSetStrategy",
    "DeploymentStrategy",
    "ReplicaSetStrategy",
    "StatefulSetStrategy",
    "WorkloadStrategy",
    "intstr_repr",
    "intstr_value",
    "not_more_than_100_percent",
    "selector_immutable",
    "validate_int_or_percent",
    "validate_selector_and_template",
]
