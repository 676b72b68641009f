"""batch/v1 kinds: Job and CronJob."""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from typing import Any

from atoll.api import meta, selectors
from atoll.api.kinds import podspec
from atoll.api.kinds.apps import selector_immutable, validate_selector_and_template
from atoll.api.kinds.base import Obj, Strategy, child, dict_at, list_at, md_of, set_default, set_default_str
from atoll.api.meta import Cause, FieldPath

logger = logging.getLogger(__name__)

SPEC = FieldPath("spec")
MAX_INT32 = 2**31 - 1
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_JOB_NAME_LABEL = "job-name"
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
JOB_RESTART_POLICIES = ("OnFailure", "Never")
COMPLETION_MODES = ("NonIndexed", "Indexed")
POD_REPLACEMENT_POLICIES = ("TerminatingOrFailed", "Failed")
CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
CRONJOB_NAME_MAX_LENGTH = 52
"""A CronJob's Jobs are named ``<cronjob>-<11 digits>`` and must stay DNS-1035 labels."""


def default_job_spec(spec: Obj) -> None:
    """The JobSpec part of ``SetDefaults_Job`` (also used for CronJob templates' pods)."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    set_default(spec, "parallelism", 1)
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = MAX_INT32 if spec.get("backoffLimitPerIndex") is not None else 6
    set_default(spec, "completionMode", "NonIndexed")
    set_default(spec, "suspend", False)
    set_default(spec, "manualSelector", False)
    failure_policy = spec.get("podFailurePolicy")
    if isinstance(failure_policy, Mapping):
        for rule in list_at(failure_policy, "rules"):
            for cond in list_at(rule, "onPodConditions") if isinstance(rule, Mapping) else []:
                if isinstance(cond, dict):
                    set_default_str(cond, "status", "True")
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = "Failed" if failure_policy is not None else "TerminatingOrFailed"
    podspec.default_pod_template(spec.get("template"))


def _validate_job_spec_common(spec: Mapping[str, Any], path: FieldPath) -> list[Cause]:
    """kube's ``validateJobSpec``: counts, modes and the pod template (no selector rules)."""
    causes: list[Cause] = []
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished",
                "backoffLimitPerIndex", "maxFailedIndexes"):
        causes += meta.non_negative(path.child(key), spec.get(key))
    mode = spec.get("completionMode")
    if mode is not None and mode not in COMPLETION_MODES:
        causes.append(meta.not_supported(path.child("completionMode"), mode, COMPLETION_MODES))
    if mode == "Indexed" and spec.get("completions") is None:
        causes.append(meta.required(path.child("completions"), "when completion mode is Indexed"))
    replacement = spec.get("podReplacementPolicy")
    if replacement is not None and replacement not in POD_REPLACEMENT_POLICIES:
        causes.append(meta.not_supported(path.child("podReplacementPolicy"), replacement, POD_REPLACEMENT_POLICIES))
    return causes


def _generated_selector_causes(job: Mapping[str, Any]) -> list[Cause]:
    """``ValidateGeneratedSelector``: a generated selector must pin this Job's UID."""
    spec = dict_at(job, "spec")
    if spec.get("manualSelector") is True:
        return []
    labels = meta.string_map(dict_at(dict_at(spec, "template"), "metadata").get("labels"))
    uid = str(dict_at(job, "metadata").get("uid") or "")
    causes: list[Cause] = []
    label_path = SPEC.child("template", "metadata", "labels")
    for key in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
        if key in labels and labels[key] != uid:
            causes.append(meta.invalid_value(label_path.key(key), labels[key], f"must be '{uid}'"))
    selector = spec.get("selector")
    if isinstance(selector, Mapping) and not selectors.matches_selector(selector, {CONTROLLER_UID_LABEL: uid}):
        causes.append(meta.invalid_value(SPEC.child("selector"), meta.label_selector_repr(selector),
                                         "`selector` not auto-generated"))
    return causes


def generate_selector(job: Obj) -> None:
    """Jobs without ``manualSelector: true`` select their pods by their own UID (kube's ``generateSelector``).

    Needs ``metadata.name`` and ``metadata.uid``; a missing UID is generated here so the
    sequence also works when the server fills system fields afterwards (it must keep it).
    """
    md = md_of(job)
    if not md.get("uid"):
        md["uid"] = meta.new_uid()
    spec = child(job, "spec")
    template_md = child(child(spec, "template"), "metadata")
    labels = template_md.get("labels")
    if not isinstance(labels, dict):
        labels = {}
        template_md["labels"] = labels
    for key in (LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL):
        labels.setdefault(key, str(md.get("name") or ""))
    for key in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
        labels.setdefault(key, str(md["uid"]))
    selector = child(spec, "selector")
    match_labels = child(selector, "matchLabels")
    match_labels.setdefault(CONTROLLER_UID_LABEL, str(md["uid"]))


SCHEDULING_DIRECTIVES = ("nodeSelector", "tolerations", "affinity", "schedulingGates")


class JobStrategy(Strategy):
    """Jobs: generated selector and labels on create, most of the spec immutable afterwards."""

    tracks_generation = True

    def default(self, obj: Obj) -> None:
        spec = child(obj, "spec")
        default_job_spec(spec)
        md = md_of(obj)
        template_labels = dict_at(dict_at(spec, "template"), "metadata").get("labels")
        if template_labels and not md.get("labels"):
            md["labels"] = copy.deepcopy(template_labels)

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        if dict_at(obj, "spec").get("manualSelector") is not True:
            generate_selector(obj)
        md = md_of(obj)
        if not md.get("labels"):
            # What kube shows: a Job without labels takes its template's, generated ones included.
            template_labels = dict_at(dict_at(dict_at(obj, "spec"), "template"), "metadata").get("labels")
            if template_labels:
                md["labels"] = copy.deepcopy(template_labels)

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = dict_at(obj, "spec")
        causes = _generated_selector_causes(obj)
        causes += _validate_job_spec_common(spec, SPEC)
        causes += validate_selector_and_template(spec, empty_word="", allowed_restart=JOB_RESTART_POLICIES)
        return causes

    def validate_spec_update(self, new: Obj, old: Obj) -> list[Cause]:
        spec, old_spec = dict_at(new, "spec"), dict_at(old, "spec")
        causes = selector_immutable(new, old)
        elastic = spec.get("completionMode") == "Indexed" and spec.get("completions") == spec.get("parallelism")
        if not elastic:
            causes += meta.immutable(SPEC.child("completions"), spec.get("completions"), old_spec.get("completions"))
        for key in ("completionMode", "podFailurePolicy", "backoffLimitPerIndex", "managedBy", "successPolicy"):
            causes += meta.immutable(SPEC.child(key), spec.get(key), old_spec.get(key))
        template, old_template = spec.get("template"), old_spec.get("template")
        if template != old_template:
            never_started = not dict_at(old, "status").get("startTime")
            if old_spec.get("suspend") is True and never_started:
                template = _without_scheduling_directives(template)
                old_template = _without_scheduling_directives(old_template)
            causes += podspec.validate_pod_template_immutable(template, old_template, SPEC.child("template"))
        return causes


def _without_scheduling_directives(template: Any) -> Any:
    if not isinstance(template, Mapping):
        return template
    out = copy.deepcopy(dict(template))
    md = dict(dict_at(out, "metadata"))
    md.pop("labels", None)
    md.pop("annotations", None)
    out["metadata"] = md
    spec = dict(dict_at(out, "spec"))
    for key in SCHEDULING_DIRECTIVES:
        spec.pop(key, None)
    out["spec"] = spec
    return out


# -- CronJob ------------------------------------------------------------------------------------

_CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_CRON_FIELDS = (("minute", 0, 59, None), ("hour", 0, 23, None), ("day of month", 1, 31, None),
                ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                  "dec")),
                ("day of week", 0, 6, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")))
_DURATION_RE = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")


def cron_schedule_error(schedule: str) -> str | None:
    """The standard cron parser's complaint about ``schedule`` (None when it parses)."""
    text = schedule.strip()
    if not text:
        return "empty spec string"
    if text.startswith(("TZ=", "CRON_TZ=")):
        _, _, text = text.partition(" ")
        text = text.strip()
    if text.startswith("@"):
        if text in _CRON_DESCRIPTORS:
            return None
        if text.startswith("@every "):
            duration = text[len("@every "):].strip()
            return None if _DURATION_RE.match(duration) else f"failed to parse duration {text}: time: invalid " \
                f"duration {meta.go_quote(duration)}"
        return f"unrecognized descriptor: {text}"
    fields = text.split()
    if len(fields) != 5:
        return f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]"
    for value, (_, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for part in value.split(","):
            error = _cron_range_error(part, low, high, names)
            if error:
                return error
    return None


def _cron_number(text: str, names: tuple[str, ...] | None, low: int) -> int | None:
    if names and text.lower() in names:
        return names.index(text.lower()) + low
    if text.isdigit():
        return int(text)
    return None


def _cron_range_error(part: str, low: int, high: int, names: tuple[str, ...] | None) -> str | None:
    range_part, _, step = part.partition("/")
    if step and not step.isdigit():
        return f"failed to parse int from {step}: strconv.Atoi: parsing {meta.go_quote(step)}: invalid syntax"
    if range_part in ("*", "?"):
        return None
    start_text, _, end_text = range_part.partition("-")
    start = _cron_number(start_text, names, low)
    if start is None:
        return f"failed to parse int from {start_text}: strconv.Atoi: parsing {meta.go_quote(start_text)}: invalid " \
               "syntax"
    end = start
    if end_text:
        parsed = _cron_number(end_text, names, low)
        if parsed is None:
            return f"failed to parse int from {end_text}: strconv.Atoi: parsing {meta.go_quote(end_text)}: " \
                   "invalid syntax"
        end = parsed
    if start < low:
        return f"beginning of range ({start}) below minimum ({low}): {part}"
    if end > high:
        return f"end of range ({end}) above maximum ({high}): {part}"
    if start > end:
        return f"beginning of range ({start}) beyond end of range ({end}): {part}"
    if step == "0":
        return f"step of range should be a positive number: {part}"
    return None


def _validate_time_zone(tz: Any, path: FieldPath) -> list[Cause]:
    if tz is None:
        return []
    if not isinstance(tz, str) or not tz:
        return [meta.invalid_value(path, tz, "timeZone must be nil or non-empty string")]
    for part in tz.split("/"):
        if part in (".", "..") or part.startswith("-") or not re.fullmatch(r"[A-Za-z.\-_0-9+]{1,14}", part):
            return [meta.invalid_value(path, tz, f"unknown time zone {tz}")]
    if tz.lower() == "local":
        return [meta.invalid_value(path, tz, "timeZone must be an explicit time zone as defined in "
                                   "https://www.iana.org/time-zones")]
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return [meta.invalid_value(path, tz, f"unknown time zone {tz}")]
    return []


class CronJobStrategy(Strategy):
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        spec = child(obj, "spec")
        set_default_str(spec, "concurrencyPolicy", "Allow")
        set_default(spec, "suspend", False)
        set_default(spec, "successfulJobsHistoryLimit", 3)
        set_default(spec, "failedJobsHistoryLimit", 1)
        job_spec = child(child(spec, "jobTemplate"), "spec")
        podspec.default_pod_template(job_spec.get("template"))

    def validate(self, obj: Obj) -> list[Cause]:
        causes = super().validate(obj)
        name = str(dict_at(obj, "metadata").get("name") or "")
        if len(name) > CRONJOB_NAME_MAX_LENGTH:
            causes.append(meta.invalid_value("metadata.name", name,
                                             f"must be no more than {CRONJOB_NAME_MAX_LENGTH} characters"))
        schedule = str(dict_at(obj, "spec").get("schedule") or "")
        if "TZ" in schedule:
            causes.append(meta.invalid_value(SPEC.child("schedule"), schedule,
                                             "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
        return causes

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = dict_at(obj, "spec")
        causes: list[Cause] = []
        schedule = spec.get("schedule")
        if not schedule:
            causes.append(meta.required(SPEC.child("schedule")))
        else:
            error = cron_schedule_error(str(schedule))
            if error:
                causes.append(meta.invalid_value(SPEC.child("schedule"), schedule, error))
        causes += _validate_time_zone(spec.get("timeZone"), SPEC.child("timeZone"))
        policy = spec.get("concurrencyPolicy") or ""
        if policy not in CONCURRENCY_POLICIES:
            causes.append(meta.not_supported(SPEC.child("concurrencyPolicy"), policy, CONCURRENCY_POLICIES))
        for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
            causes += meta.non_negative(SPEC.child(key), spec.get(key))
        template = dict_at(spec, "jobTemplate")
        tpath = SPEC.child("jobTemplate")
        job_spec = dict_at(template, "spec")
        causes += meta.validate_labels(dict_at(template, "metadata").get("labels"), tpath.child("metadata", "labels"))
        causes += meta.validate_annotations(dict_at(template, "metadata").get("annotations"),
                                            tpath.child("metadata", "annotations"))
        if job_spec.get("selector") is not None:
            causes.append(meta.invalid_value(tpath.child("spec", "selector"),
                                             meta.label_selector_repr(dict_at(job_spec, "selector")),
                                             "`selector` will be auto-generated"))
        if job_spec.get("manualSelector") is True:
            causes.append(meta.not_supported(tpath.child("spec", "manualSelector"), True, ["nil", "false"]))
        causes += _validate_job_spec_common(job_spec, tpath.child("spec"))
        jt_path = tpath.child("spec", "template")
        causes += podspec.validate_pod_template(job_spec.get("template"), jt_path)
        restart = dict_at(dict_at(job_spec, "template"), "spec").get("restartPolicy")
        if restart and restart not in JOB_RESTART_POLICIES:
            causes.append(meta.not_supported(jt_path.child("spec", "restartPolicy"), restart, JOB_RESTART_POLICIES))
        return causes


__all__ = [
    "CONTROLLER_UID_LABEL",
    "CRONJOB_NAME_MAX_LENGTH",
    "JOB_NAME_LABEL",
    "LEGACY_CONTROLLER_UID_LABEL",
    "LEGACY_JOB_NAME_LABEL",
    "CronJobStrategy",
    "JobStrategy",
    "cron_schedule_error",
    "default_job_spec",
    "generate_selector",
]
