"""CronJob controller: create a Job at each scheduled time, keep a bounded history.

Follows kube's CronJob controller (v2): the most recent schedule time since
``status.lastScheduleTime`` (or creation) is computed from the cron spec in
``spec.timeZone`` (UTC by default); a time older than ``startingDeadlineSeconds`` is
missed (``MissSchedule``); ``concurrencyPolicy`` Forbid skips while a Job runs and
Replace deletes the running ones first. Jobs are named ``<cronjob>-<minutes since the
epoch>`` (so a retried sync never starts a time twice) and annotated with
``batch.kubernetes.io/cronjob-scheduled-timestamp``. ``status.active`` lists running
Jobs; ``lastSuccessfulTime`` follows completions; finished Jobs beyond
``successfulJobsHistoryLimit``/``failedJobsHistoryLimit`` are deleted, oldest first.
The controller wakes itself for the next schedule time; ``clock`` makes that testable.

The cron grammar is the standard five fields (names, ranges, steps, lists, ``?``)
plus ``@yearly``...``@hourly`` and ``@every <duration>``; the API server has already
validated it. Day-of-month and day-of-week combine with OR when both are restricted,
as in cron.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from atoll.api.errors import AlreadyExists, Conflict, NotFound
from atoll.client import Client, Resource
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.events import EventRecorder
from atoll.machinery.informing import Informer, split_key

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
JOBS = Resource("batch/v1", "jobs", True, "Job")
CRONJOBS = Resource("batch/v1", "cronjobs", True, "CronJob")
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
MAX_MISSED = 100
"""More missed times than this earns a TooManyMissedTimes warning (kube's limit)."""
MAX_STEPS = 200_000
"""A bound on schedule iterations, so a far-away ``lastScheduleTime`` cannot stall a worker."""

DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
               "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


# -- schedules ---------------------------------------------------------------------------------


def _field(text: str, low: int, high: int, names: tuple[str, ...] = ()) -> tuple[frozenset[int], bool]:
    """The values one cron field allows, and whether it was unrestricted (``*``/``?``)."""
    values: set[int] = set()
    star = False
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span in ("*", "?"):
            star = star or not step_text
            start, end = low, high
        else:
            first, _, last = span.partition("-")
            start = _number(first, names, low)
            end = _number(last, names, low) if last else (high if step_text else start)
        values.update(range(start, end + 1, step))
    return frozenset(v for v in values if low <= v <= high), star


def _number(text: str, names: tuple[str, ...], low: int) -> int:
    if names and text.lower() in names:
        return names.index(text.lower()) + low
    return int(text)


@dataclass(frozen=True)
class Schedule:
    """A parsed cron schedule: ``next(after)`` is the first time strictly after ``after``."""

    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()
    days_star: bool = True
    weekdays_star: bool = True
    every: float = 0.0
    """``@every``: a fixed interval in seconds instead of the fields."""

    @classmethod
    def parse(cls, spec: str) -> Schedule:
        text = spec.strip()
        if text.startswith("@every "):
            total = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text[len("@every "):]))
            return cls(every=max(total, 1.0))
        text = DESCRIPTORS.get(text, text)
        fields = text.split()
        if len(fields) != 5:
            raise ValueError(f"expected exactly 5 fields, found {len(fields)}: {spec!r}")
        minutes, _ = _field(fields[0], 0, 59)
        hours, _ = _field(fields[1], 0, 23)
        days, days_star = _field(fields[2], 1, 31)
        months, _ = _field(fields[3], 1, 12, MONTHS)
        weekdays, weekdays_star = _field(fields[4], 0, 7, DAYS)
        if 7 in weekdays:
            weekdays = (weekdays - {7}) | {0}
        return cls(minutes, hours, days, months, weekdays, days_star, weekdays_star)

    def _day_matches(self, t: dt.datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.days_star or self.weekdays_star:
            return dom and dow
        return dom or dow

    def next(self, after: dt.datetime) -> dt.datetime | None:
        """The next activation strictly after ``after`` (in ``after``'s time zone), None within 5 years."""
        if self.every:
            return after.replace(microsecond=0) + dt.timedelta(seconds=self.every)
        tz = after.tzinfo
        t = after.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        limit = t.year + 5
        while t.year <= limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(t):
                t = (t + dt.timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if t.hour not in self.hours:
                t = (t + dt.timedelta(hours=1)).replace(minute=0)
                continue
            if t.minute not in self.minutes:
                t = t + dt.timedelta(minutes=1)
                continue
            return t.replace(tzinfo=tz)
        return None


def most_recent(schedule: Schedule, *, earliest: dt.datetime, now: dt.datetime) -> tuple[dt.datetime | None, int]:
    """(the latest schedule time in (earliest, now], how many there were) — kube's ``mostRecentScheduleTime``."""
    latest: dt.datetime | None = None
    count = 0
    t = schedule.next(earliest)
    while t is not None and t <= now and count < MAX_STEPS:
        latest = t
        count += 1
        t = schedule.next(t)
    return latest, count


def job_name(cronjob: str, scheduled: dt.datetime) -> str:
    return f"{cronjob}-{int(scheduled.timestamp()) // 60}"


def parse_time(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_finished(job: Obj) -> str | None:
    """``Complete`` or ``Failed`` when the Job has that terminal condition."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return None


def to_delete(jobs: list[Obj], limit: int) -> list[Obj]:
    """The oldest finished Jobs beyond ``limit`` (by start time, as kube sorts them)."""
    def started(j: Obj) -> str:
        return str((j.get("status") or {}).get("startTime") or (j.get("metadata") or {}).get("creationTimestamp")
                   or "")

    ordered = sorted(jobs, key=started)
    return ordered[: max(0, len(ordered) - limit)]


def controller_of(obj: Obj) -> Obj | None:
    return next((r for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if r.get("controller")), None)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- the controller ----------------------------------------------------------------------------


class CronJobController(Controller):
    NAME: ClassVar[str] = "cronjob-controller"

    def __init__(self, client: Client, *, clock: Callable[[], dt.datetime] = utc_now) -> None:
        super().__init__()
        self.client = client
        self.clock = clock
        self.events = EventRecorder(client, self.NAME)
        self.cronjobs = self.watch(Informer(client, CRONJOBS))
        self.jobs = self.watch(Informer(client, JOBS), key_for=self._owner_keys)

    @staticmethod
    def _owner_keys(job: Obj) -> list[str]:
        ref = controller_of(job)
        if ref is None or ref.get("kind") != "CronJob":
            return []
        return [f"{(job.get('metadata') or {}).get('namespace')}/{ref['name']}"]

    async def reconcile(self, key: str) -> Result:
        cj = self.cronjobs.lister.get(key)
        if cj is None:
            return Result()
        ns, _ = split_key(key)
        md, spec = cj["metadata"], cj.get("spec") or {}
        status: Obj = copy.deepcopy(cj.get("status") or {})
        original = copy.deepcopy(status)
        children = [j for j in self.jobs.lister.list(ns) if (controller_of(j) or {}).get("uid") == md.get("uid")]
        by_uid = {j["metadata"].get("uid"): j for j in children}

        # status.active: running children only (finished and vanished ones leave).
        active: list[Obj] = []
        for ref in status.get("active") or []:
            job = by_uid.get(ref.get("uid"))
            if job is not None and job_finished(job) is None and not job["metadata"].get("deletionTimestamp"):
                active.append(ref)
        listed = {r.get("uid") for r in active}
        for job in children:
            finished = job_finished(job)
            if finished is None and job["metadata"].get("uid") not in listed \
                    and not job["metadata"].get("deletionTimestamp"):
                active.append(self._ref(job))
            elif finished is not None and job["metadata"].get("uid") in {r.get("uid") for r in status.get("active")
                                                                         or []}:
                await self.events.record(cj, "Normal", "SawCompletedJob",
                                         f"Saw completed job: {job['metadata']['name']}, condition: {finished}")
            if finished == "Complete":
                done = parse_time((job.get("status") or {}).get("completionTime"))
                last = parse_time(status.get("lastSuccessfulTime"))
                if done is not None and (last is None or done > last):
                    status["lastSuccessfulTime"] = rfc3339(done)
        status["active"] = active

        requeue: float | None = None
        if not md.get("deletionTimestamp") and not spec.get("suspend"):
            requeue = await self._schedule(cj, status, active)
        await self._clean_history(cj, children)
        if status.get("active") == []:
            status.pop("active")
        if status != original:
            try:
                await self.client.patch(CRONJOBS, md["name"], {"status": {**{"active": None}, **status}}, ns,
                                        subresource="status")
            except NotFound:
                return Result()
        return Result(requeue_after=requeue)

    @staticmethod
    def _ref(job: Obj) -> Obj:
        jmd = job["metadata"]
        return {"apiVersion": "batch/v1", "kind": "Job", "name": jmd["name"], "namespace": jmd.get("namespace"),
                "uid": jmd.get("uid"), "resourceVersion": jmd.get("resourceVersion")}

    async def _schedule(self, cj: Obj, status: Obj, active: list[Obj]) -> float | None:
        """Start the Job for the most recent unmet schedule time; seconds until the next one."""
        md, spec = cj["metadata"], cj.get("spec") or {}
        try:
            tz = zoneinfo.ZoneInfo(spec["timeZone"]) if spec.get("timeZone") else dt.UTC
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            await self.events.record(cj, "Warning", "UnknownTimeZone", f"invalid timeZone: {spec.get('timeZone')!r}")
            return None
        try:
            schedule = Schedule.parse(str(spec.get("schedule") or ""))
        except ValueError as exc:
            await self.events.record(cj, "Warning", "UnparseableSchedule",
                                     f"unparseable schedule: {spec.get('schedule')!r} : {exc}")
            return None
        now = self.clock().astimezone(tz)
        earliest = (parse_time(status.get("lastScheduleTime")) or parse_time(md.get("creationTimestamp"))
                    or now).astimezone(tz)
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest = max(earliest, now - dt.timedelta(seconds=float(deadline)))
        scheduled, missed = most_recent(schedule, earliest=earliest, now=now)
        upcoming = schedule.next(now)
        wait = (upcoming - now).total_seconds() + 0.1 if upcoming is not None else None
        if missed > MAX_MISSED:
            await self.events.record(cj, "Warning", "TooManyMissedTimes",
                                     f"too many missed start times: {missed}. Set or decrease .spec."
                                     "startingDeadlineSeconds or check clock skew")
        if scheduled is None:
            return wait
        if deadline is not None and (now - scheduled).total_seconds() > float(deadline):
            await self.events.record(cj, "Warning", "MissSchedule",
                                     f"Missed scheduled time to start a job: {rfc3339(scheduled)}")
            return wait
        name = job_name(md["name"], scheduled)
        if any(r.get("name") == name for r in active):
            return wait
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and active:
            logger.info("cronjob %s/%s: not starting %s, a previous run is active (Forbid)", md.get("namespace"),
                        md["name"], name)
            return wait
        if policy == "Replace":
            for ref in list(active):
                try:
                    await self.client.delete(JOBS, ref["name"], md.get("namespace"), propagation_policy="Background")
                except (NotFound, Conflict):
                    pass
                active.remove(ref)
                await self.events.record(cj, "Normal", "SuccessfulDelete", f"Deleted job {ref['name']}")
        job = self._job_for(cj, name, scheduled)
        try:
            created = await self.client.create(JOBS, job)
        except AlreadyExists:
            existing = await self.client.get(JOBS, name, md.get("namespace"))
            if (controller_of(existing) or {}).get("uid") != md.get("uid"):
                return wait
            created = existing
        else:
            await self.events.record(cj, "Normal", "SuccessfulCreate", f"Created job {name}")
        if job_finished(created) is None and not any(r.get("uid") == created["metadata"]["uid"] for r in active):
            active.append(self._ref(created))
        status["lastScheduleTime"] = rfc3339(scheduled)
        return wait

    @staticmethod
    def _job_for(cj: Obj, name: str, scheduled: dt.datetime) -> Obj:
        md = cj["metadata"]
        template = copy.deepcopy((cj.get("spec") or {}).get("jobTemplate") or {})
        tmd = template.get("metadata") or {}
        annotations = {**(tmd.get("annotations") or {}), SCHEDULED_TIMESTAMP: scheduled.isoformat()}
        job_md: Obj = {"name": name, "namespace": md.get("namespace"), "labels": dict(tmd.get("labels") or {}),
                       "annotations": annotations,
                       "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": md["name"],
                                            "uid": md["uid"], "controller": True, "blockOwnerDeletion": True}]}
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_md, "spec": template.get("spec") or {}}

    async def _clean_history(self, cj: Obj, children: list[Obj]) -> None:
        spec = cj.get("spec") or {}
        groups = {"Complete": int(spec.get("successfulJobsHistoryLimit", 3)),
                  "Failed": int(spec.get("failedJobsHistoryLimit", 1))}
        for kind, limit in groups.items():
            finished = [j for j in children if job_finished(j) == kind and not j["metadata"].get("deletionTimestamp")]
            for job in to_delete(finished, limit):
                try:
                    await self.client.delete(JOBS, job["metadata"]["name"], job["metadata"].get("namespace"),
                                             propagation_policy="Background", uid=job["metadata"].get("uid"))
                except (NotFound, Conflict):
                    continue
                await self.events.record(cj, "Normal", "SuccessfulDelete", f"Deleted job {job['metadata']['name']}")
