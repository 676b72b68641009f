"""Deployment controller: roll a pod template out through ReplicaSets, as kube-controller-manager does.

Each template gets its own ReplicaSet, ``<deployment>-<pod-template-hash>``; the
Deployment moves replicas from old ReplicaSets to the new one (RollingUpdate, within
maxSurge/maxUnavailable; Recreate, old pods gone first), records revisions in
annotations so ``kubectl rollout history/undo`` work, shares replicas proportionally
when scaled mid-rollout, keeps ``revisionHistoryLimit`` old ReplicaSets, and reports
status with the Available and Progressing conditions ``kubectl rollout status`` reads.

Every write carries the resourceVersion it was decided on: a decision taken on a stale
cache fails with Conflict and is retried on fresh data rather than applied twice. The
controller reads its own writes (:class:`OwnWrites`) until the informers catch up, so
those conflicts are the real races, not its own echo. The replica arithmetic lives in
:mod:`.rollout`.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

from atoll.api.errors import AlreadyExists, APIError, Conflict, NotFound
from atoll.api.selectors import LabelSelector
from atoll.client import Client, Resource
from atoll.cluster.controllers import rollout as ro
from atoll.cluster.controllers.replicaset import PODS, REPLICASETS, controller_of
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.events import EventRecorder
from atoll.machinery.informing import Informer, key_of

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
DEPLOYMENTS = Resource("apps/v1", "deployments", True, "Deployment")


OWN_WRITES_TTL = 30.0
"""Seconds a written object may stand in for a cache that has not caught up with it."""


class HashCollision(Exception):
    """A ReplicaSet with the new name but another template exists; collisionCount was raised."""


def _rv(obj: Obj | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or -1)
    except (TypeError, ValueError):
        return -1


class OwnWrites:
    """Read-your-writes over an informer cache: the answers to our own writes, until the cache has them.

    Without it, the sync that follows a write would often start from the older cached
    object and fail with Conflict (or, for a ReplicaSet created a moment ago, try to
    create it again). An entry is dropped as soon as the cache reports that resourceVersion
    or newer, when the object is deleted, or after :data:`OWN_WRITES_TTL`.
    """

    def __init__(self, informer: Informer) -> None:
        self._informer = informer
        self._objects: dict[str, tuple[float, Obj]] = {}
        informer.add_handler(self._on_event)

    def _on_event(self, event: str, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        if obj is None:
            return
        key = key_of(obj)
        mine = self._objects.get(key)
        if mine is not None and (event == "DELETED" or _rv(obj) >= _rv(mine[1])):
            del self._objects[key]

    def remember(self, obj: Obj) -> None:
        self._objects[key_of(obj)] = (time.monotonic(), obj)

    def _mine(self, key: str) -> Obj | None:
        entry = self._objects.get(key)
        if entry is None:
            return None
        if time.monotonic() - entry[0] > OWN_WRITES_TTL:
            del self._objects[key]
            return None
        return entry[1]

    def get(self, key: str) -> Obj | None:
        cached, mine = self._informer.lister.get(key), self._mine(key)
        return mine if mine is not None and _rv(mine) > _rv(cached) else cached

    def list(self, namespace: str | None) -> list[Obj]:
        out = {key_of(o): o for o in self._informer.lister.list(namespace)}
        for key in [k for k in self._objects if namespace is None or k.startswith(f"{namespace}/")]:
            mine = self._mine(key)
            if mine is not None and _rv(mine) > _rv(out.get(key)):
                out[key] = mine
        return list(out.values())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _typed(obj: Obj, api_version: str, kind: str) -> Obj:
    """A deep copy carrying kind and apiVersion (list items may lack them; events and PUTs need them)."""
    out = copy.deepcopy(obj)
    out.setdefault("apiVersion", api_version)
    out.setdefault("kind", kind)
    return out


def _selector(d: Obj) -> LabelSelector:
    return LabelSelector.from_dict((d.get("spec") or {}).get("selector"))


def _strategy(d: Obj) -> str:
    return str(((d.get("spec") or {}).get("strategy") or {}).get("type") or "RollingUpdate")


class DeploymentController(Controller):
    """``DeploymentController(client).run(stop)``, next to a ReplicaSetController on the same client.

    It watches Deployments, ReplicaSets (mapped to their owner, or to the Deployments
    that may adopt them) and pods (only their departure matters, for Recreate). ``now``
    is the clock for condition times and progress deadlines (tests pass a fixed one).
    """

    NAME: ClassVar[str] = "deployment-controller"

    def __init__(self, client: Client, *, now: Callable[[], dt.datetime] | None = None) -> None:
        super().__init__()
        self.client = client
        self.now = now or _now
        self.recorder = EventRecorder(client, self.NAME)
        self.deployments = self.watch(Informer(client, DEPLOYMENTS))
        self.replicasets = Informer(client, REPLICASETS)
        self.replicasets.add_handler(self._on_replica_set)
        self.pods = Informer(client, PODS)
        self.pods.add_handler(self._on_pod)
        self.informers += [self.replicasets, self.pods]
        self.own_deployments = OwnWrites(self.deployments)
        self.own_replicasets = OwnWrites(self.replicasets)

    # -- event handlers: map ReplicaSets and pods to their Deployment ------------------------------
    def _deployment_for_ref(self, namespace: str | None, ref: Obj) -> Obj | None:
        if ref.get("kind") != "Deployment":
            return None
        d = self.deployments.lister.get(f"{namespace}/{ref.get('name')}")
        if d is None or (d.get("metadata") or {}).get("uid") != ref.get("uid"):
            return None
        return d

    def _rs_keys(self, rs: Obj) -> set[str]:
        md = rs.get("metadata") or {}
        ns = md.get("namespace")
        ref = controller_of(rs)
        if ref is not None:
            d = self._deployment_for_ref(ns, ref)
            return {key_of(d)} if d is not None else set()
        # An orphan: every Deployment whose selector matches may adopt it.
        labels = md.get("labels") or {}
        return {key_of(d) for d in self.deployments.lister.list(ns) if _selector(d).matches(labels)}

    def _on_replica_set(self, _event: str, old: Obj | None, new: Obj | None) -> None:
        keys: set[str] = set()
        for obj in (old, new):
            if obj is not None:
                keys |= self._rs_keys(obj)
        for key in keys:
            self.queue.add(key)

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """Recreate waits for old pods to be gone: a pod leaving wakes its Deployment."""
        pod = new if new is not None else old
        if pod is None:
            return
        terminal = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if event != "DELETED" and not terminal:
            return
        ns = (pod.get("metadata") or {}).get("namespace")
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.replicasets.lister.get(f"{ns}/{ref.get('name')}")
        rs_ref = controller_of(rs) if rs is not None else None
        d = self._deployment_for_ref(ns, rs_ref) if rs_ref is not None else None
        if d is not None and _strategy(d) == "Recreate":
            self.queue.add(key_of(d))

    # -- the sync -------------------------------------------------------------------------------
    async def reconcile(self, key: str) -> Result:
        cached = self.own_deployments.get(key)
        if cached is None:
            return Result()
        d = _typed(cached, "apps/v1", "Deployment")
        spec = d.get("spec") or {}
        selector = spec.get("selector")
        if isinstance(selector, dict) and not selector.get("matchLabels") and not selector.get("matchExpressions"):
            await self.recorder.record(d, "Warning", "SelectingAll",
                                       "This deployment is selecting all pods. A non-empty selector is required.")
            generation = (d.get("metadata") or {}).get("generation", 0)
            if (d.get("status") or {}).get("observedGeneration", 0) < generation:
                d.setdefault("status", {})["observedGeneration"] = generation
                await self._write_status(d)
            return Result()
        rs_list = await self._claim_replica_sets(d)
        if (d.get("metadata") or {}).get("deletionTimestamp"):
            new_rs, old_rss = await self._all_replica_sets(d, rs_list, create=False)
            await self._sync_status(d, [*old_rss, new_rs], new_rs)
            return Result()
        await self._check_paused_conditions(d)
        if spec.get("paused"):
            return await self._sync(d, rs_list)
        if await self._is_scaling_event(d, rs_list):
            return await self._sync(d, rs_list)
        if _strategy(d) == "Recreate":
            return await self._rollout_recreate(d, rs_list)
        return await self._rollout_rolling(d, rs_list)

    # -- ownership ----------------------------------------------------------------------------------
    async def _claim_replica_sets(self, d: Obj) -> list[Obj]:
        """``ClaimReplicaSets``: owned ones that still match, plus matching orphans adopted."""
        md = d["metadata"]
        ns, uid = md.get("namespace"), md.get("uid")
        selector = _selector(d)
        deleting = bool(md.get("deletionTimestamp"))
        claimed: list[Obj] = []
        fresh_checked = False
        for cached in self.own_replicasets.list(ns):
            rs = _typed(cached, "apps/v1", "ReplicaSet")
            rmd = rs.get("metadata") or {}
            labels = rmd.get("labels") or {}
            ref = controller_of(rs)
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if selector.matches(labels):
                    claimed.append(rs)
                elif not deleting:
                    await self._release(rs, uid)
                continue
            if deleting or rmd.get("deletionTimestamp") or not selector.matches(labels):
                continue
            if not fresh_checked:
                # As kube's canAdopt: never adopt for a Deployment that is being deleted or replaced.
                live = await self.client.get(DEPLOYMENTS, md["name"], ns)
                if (live.get("metadata") or {}).get("uid") != uid or (live.get("metadata") or {}).get(
                        "deletionTimestamp"):
                    return claimed
                fresh_checked = True
            adopted = await self._adopt(rs, d)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    async def _adopt(self, rs: Obj, d: Obj) -> Obj | None:
        md = d["metadata"]
        ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": md["name"], "uid": md["uid"],
               "controller": True, "blockOwnerDeletion": True}
        refs = [*((rs.get("metadata") or {}).get("ownerReferences") or []), ref]
        try:
            updated = await self.client.patch(
                REPLICASETS, rs["metadata"]["name"],
                {"metadata": {"ownerReferences": refs, "resourceVersion": rs["metadata"].get("resourceVersion")}},
                rs["metadata"].get("namespace"))
        except (NotFound, Conflict):
            return None
        logger.info("deployment %s/%s adopted replica set %s", md.get("namespace"), md["name"],
                    rs["metadata"]["name"])
        self.own_replicasets.remember(updated)
        return _typed(updated, "apps/v1", "ReplicaSet")

    async def _release(self, rs: Obj, uid: str | None) -> None:
        refs = [r for r in (rs.get("metadata") or {}).get("ownerReferences") or [] if r.get("uid") != uid]
        try:
            await self.client.patch(
                REPLICASETS, rs["metadata"]["name"],
                {"metadata": {"ownerReferences": refs or None,
                              "resourceVersion": rs["metadata"].get("resourceVersion")}},
                rs["metadata"].get("namespace"))
        except (NotFound, Conflict):
            pass

    def _old_pods_running(self, d: Obj, new_rs: Obj | None, old_rss: list[Obj], rs_list: list[Obj]) -> bool:
        """``oldPodsRunning``: any old ReplicaSet reports pods, or a non-terminal pod of one still exists."""
        if ro.total_status(old_rss, "replicas") > 0:
            return True
        new_uid = (new_rs.get("metadata") or {}).get("uid") if new_rs is not None else None
        uids = {(rs.get("metadata") or {}).get("uid") for rs in rs_list} - {new_uid}
        selector = _selector(d)
        for pod in self.pods.lister.list((d.get("metadata") or {}).get("namespace"), selector):
            ref = controller_of(pod)
            if ref is None or ref.get("uid") not in uids:
                continue
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                return True
        return False

    # -- revisions and the new ReplicaSet -----------------------------------------------------------
    async def _all_replica_sets(self, d: Obj, rs_list: list[Obj], *, create: bool) -> tuple[Obj | None, list[Obj]]:
        """``getAllReplicaSetsAndSyncRevision``: (the new ReplicaSet or None, every old one)."""
        _, old_rss = ro.find_old(d, rs_list)
        new_rs = await self._new_replica_set(d, rs_list, old_rss, create=create)
        return new_rs, old_rss

    async def _new_replica_set(self, d: Obj, rs_list: list[Obj], old_rss: list[Obj], *,
                               create: bool) -> Obj | None:
        existing = ro.find_new(d, rs_list)
        new_revision = ro.max_revision(old_rss) + 1
        spec = d.get("spec") or {}
        min_ready = spec.get("minReadySeconds", 0) or 0
        if existing is not None:
            rs = copy.deepcopy(existing)
            changed = ro.set_new_rs_annotations(d, rs, new_revision, exists=True)
            if changed or ((rs.get("spec") or {}).get("minReadySeconds", 0) or 0) != min_ready:
                rs["spec"]["minReadySeconds"] = min_ready
                return await self._replace_rs(rs)
            needs_update = self._set_revision(d, ro.annotations_of(rs).get(ro.REVISION, ""))
            status = d.setdefault("status", {})
            if ro.has_progress_deadline(d) and ro.get_condition(status, ro.PROGRESSING) is None:
                ro.set_condition(status, ro.new_condition(ro.PROGRESSING, "True", ro.FOUND_NEW_RS_REASON,
                                                          f'Found new replica set "{rs["metadata"]["name"]}"',
                                                          self.now()))
                needs_update = True
            if needs_update:
                await self._write_status(d)
            return rs
        if not create:
            return None
        return await self._create_new_replica_set(d, old_rss, new_revision)

    async def _create_new_replica_set(self, d: Obj, old_rss: list[Obj], new_revision: int) -> Obj:
        md, spec = d["metadata"], d.get("spec") or {}
        ns = md.get("namespace")
        collisions = (d.get("status") or {}).get("collisionCount")
        template = copy.deepcopy(spec.get("template") or {})
        pod_hash = ro.template_hash(template, collisions)
        tmd = template.setdefault("metadata", {})
        tmd["labels"] = {**(tmd.get("labels") or {}), ro.HASH_LABEL: pod_hash}
        selector = copy.deepcopy(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), ro.HASH_LABEL: pod_hash}
        name = f"{md['name']}-{pod_hash}"
        rs: Obj = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                   "metadata": {"name": name, "namespace": ns, "labels": dict(tmd["labels"]),
                                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                                     "name": md["name"], "uid": md["uid"], "controller": True,
                                                     "blockOwnerDeletion": True}]},
                   "spec": {"replicas": 0, "minReadySeconds": spec.get("minReadySeconds", 0) or 0,
                            "selector": selector, "template": template}}
        replicas = ro.new_rs_replicas(d, [*old_rss, rs], rs)
        rs["spec"]["replicas"] = replicas
        ro.set_new_rs_annotations(d, rs, new_revision, exists=False)
        already = False
        try:
            created = _typed(await self.client.create(REPLICASETS, rs), "apps/v1", "ReplicaSet")
            self.own_replicasets.remember(created)
        except AlreadyExists:
            already = True
            current = await self.client.get(REPLICASETS, name, ns)
            ref = controller_of(current)
            if ref is None or ref.get("uid") != md["uid"] or not ro.equal_ignore_hash(
                    spec.get("template"), (current.get("spec") or {}).get("template")):
                status = d.setdefault("status", {})
                status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
                await self._write_status(d)
                raise HashCollision(f"replica set {name} exists with another template; "
                                    f"collisionCount now {status['collisionCount']}") from None
            created = _typed(current, "apps/v1", "ReplicaSet")
        except (NotFound, Conflict):
            raise
        except Exception as exc:
            if isinstance(exc, APIError) and any(c.get("reason") == "NamespaceTerminating"
                                                 for c in exc.details.get("causes") or []):
                raise  # every create fails from now on; nothing worth reporting
            msg = f'Failed to create new replica set "{name}": {exc}'
            if ro.has_progress_deadline(d):
                ro.set_condition(d.setdefault("status", {}), ro.new_condition(
                    ro.PROGRESSING, "False", ro.FAILED_RS_CREATE_REASON, msg, self.now()))
                try:
                    await self._write_status(d)
                except Exception as status_exc:  # the create failure is the news; this is secondary
                    logger.debug("deployment %s/%s: status not written: %s", ns, md["name"], status_exc)
            await self.recorder.record(d, "Warning", ro.FAILED_RS_CREATE_REASON, msg)
            raise
        if not already and replicas > 0:
            await self.recorder.record(d, "Normal", "ScalingReplicaSet",
                                       f"Scaled up replica set {name} from 0 to {replicas}")
        needs_update = self._set_revision(d, str(new_revision))
        if not already and ro.has_progress_deadline(d):
            ro.set_condition(d.setdefault("status", {}), ro.new_condition(
                ro.PROGRESSING, "True", ro.NEW_RS_REASON, f'Created new replica set "{name}"', self.now()))
            needs_update = True
        if needs_update:
            await self._write_status(d)
        return created

    @staticmethod
    def _set_revision(d: Obj, revision: str) -> bool:
        ann = d.setdefault("metadata", {}).setdefault("annotations", {})
        if ann.get(ro.REVISION) == revision:
            return False
        ann[ro.REVISION] = revision
        return True

    # -- writes -------------------------------------------------------------------------------------
    async def _write_status(self, d: Obj) -> None:
        """PUT ``/status`` (annotations ride along, as kube's revision sync does) and adopt the answer."""
        fresh = await self.client.replace_status(DEPLOYMENTS, d)
        self.own_deployments.remember(fresh)
        d.clear()
        d.update(_typed(fresh, "apps/v1", "Deployment"))

    async def _replace_rs(self, rs: Obj) -> Obj:
        updated = await self.client.replace(REPLICASETS, rs)
        self.own_replicasets.remember(updated)
        return _typed(updated, "apps/v1", "ReplicaSet")

    async def _scale(self, rs: Obj, new_scale: int, d: Obj, operation: str) -> tuple[bool, Obj]:
        """``scaleReplicaSet``: write size and replica annotations; an event when the size changed."""
        old_scale = ro.spec_replicas(rs)
        desired = ro.spec_replicas(d)
        max_replicas = desired + ro.max_surge(d)
        size_changed = old_scale != new_scale
        if not size_changed and not ro.replicas_annotations_need_update(rs, desired, max_replicas):
            return False, rs
        updated = copy.deepcopy(rs)
        updated["spec"]["replicas"] = new_scale
        ro.set_replicas_annotations(updated, desired, max_replicas)
        updated = await self._replace_rs(updated)
        if size_changed:
            await self.recorder.record(d, "Normal", "ScalingReplicaSet",
                                       f"Scaled {operation} replica set {rs['metadata']['name']} "
                                       f"from {old_scale} to {new_scale}")
        return size_changed, updated

    async def _scale_and_record(self, rs: Obj, new_scale: int, d: Obj) -> tuple[bool, Obj]:
        if ro.spec_replicas(rs) == new_scale:
            return False, rs
        return await self._scale(rs, new_scale, d, "down" if ro.spec_replicas(rs) > new_scale else "up")

    # -- strategies ---------------------------------------------------------------------------------
    async def _is_scaling_event(self, d: Obj, rs_list: list[Obj]) -> bool:
        """Some active ReplicaSet was sized for another Deployment size than the current one."""
        new_rs, old_rss = await self._all_replica_sets(d, rs_list, create=False)
        replicas = ro.spec_replicas(d)
        for rs in ro.active([*old_rss, new_rs]):
            desired = ro.annotations_of(rs).get(ro.DESIRED_REPLICAS)
            if desired is not None and desired.isdigit() and int(desired) != replicas:
                return True
        return False

    async def _sync(self, d: Obj, rs_list: list[Obj]) -> Result:
        """Scaling events and paused Deployments: resize, clean history (paused), report status."""
        new_rs, old_rss = await self._all_replica_sets(d, rs_list, create=False)
        resized = {}
        for rs, size, operation in ro.scale_targets(d, new_rs, old_rss):
            _, updated = await self._scale(rs, size, d, operation)
            resized[rs["metadata"]["name"]] = updated
        new_rs = resized.get(new_rs["metadata"]["name"], new_rs) if new_rs is not None else None
        old_rss = [resized.get(rs["metadata"]["name"], rs) for rs in old_rss]
        if (d.get("spec") or {}).get("paused"):
            await self._cleanup(d, old_rss)
        await self._sync_status(d, [*old_rss, new_rs], new_rs)
        return Result()

    async def _rollout_rolling(self, d: Obj, rs_list: list[Obj]) -> Result:
        new_rs, old_rss = await self._all_replica_sets(d, rs_list, create=True)
        assert new_rs is not None
        replicas = ro.spec_replicas(d)
        # reconcileNewReplicaSet
        scaled_up = False
        if ro.spec_replicas(new_rs) > replicas:
            scaled_up, new_rs = await self._scale_and_record(new_rs, replicas, d)
        elif ro.spec_replicas(new_rs) < replicas:
            target = ro.new_rs_replicas(d, [*old_rss, new_rs], new_rs)
            scaled_up, new_rs = await self._scale_and_record(new_rs, target, d)
        if scaled_up:
            return await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)
        # reconcileOldReplicaSets
        scaled_down = False
        resized = {}
        for rs, size in ro.old_rs_targets(d, [*old_rss, new_rs], ro.active(old_rss), new_rs):
            changed, updated = await self._scale_and_record(rs, size, d)
            scaled_down = scaled_down or changed
            resized[rs["metadata"]["name"]] = updated
        old_rss = [resized.get(rs["metadata"]["name"], rs) for rs in old_rss]
        if scaled_down:
            return await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)
        if ro.deployment_complete(d, d.get("status") or {}):
            await self._cleanup(d, old_rss)
        return await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)

    async def _rollout_recreate(self, d: Obj, rs_list: list[Obj]) -> Result:
        # No new ReplicaSet before the old pods are gone: never both at once.
        new_rs, old_rss = await self._all_replica_sets(d, rs_list, create=False)
        scaled_down = False
        resized = {}
        for rs in ro.active(old_rss):
            changed, updated = await self._scale_and_record(rs, 0, d)
            scaled_down = scaled_down or changed
            resized[rs["metadata"]["name"]] = updated
        old_rss = [resized.get(rs["metadata"]["name"], rs) for rs in old_rss]
        if scaled_down or self._old_pods_running(d, new_rs, old_rss, rs_list):
            return await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)
        if new_rs is None:
            new_rs, old_rss = await self._all_replica_sets(d, rs_list, create=True)
        assert new_rs is not None
        _, new_rs = await self._scale_and_record(new_rs, ro.spec_replicas(d), d)
        if ro.deployment_complete(d, d.get("status") or {}):
            await self._cleanup(d, old_rss)
        return await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)

    async def _cleanup(self, d: Obj, old_rss: list[Obj]) -> None:
        for rs in ro.history_to_clean(d, old_rss):
            logger.info("deployment %s: deleting old replica set %s (revision history limit)", key_of(d),
                        rs["metadata"]["name"])
            try:
                await self.client.delete(REPLICASETS, rs["metadata"]["name"], rs["metadata"].get("namespace"),
                                         uid=rs["metadata"].get("uid"))
            except (NotFound, Conflict):
                pass

    # -- status -------------------------------------------------------------------------------------
    async def _check_paused_conditions(self, d: Obj) -> None:
        """Progressing=Unknown while paused (and once when resumed), so the deadline does not run meanwhile."""
        if not ro.has_progress_deadline(d):
            return
        status = d.setdefault("status", {})
        cond = ro.get_condition(status, ro.PROGRESSING)
        if cond is not None and cond.get("reason") == ro.TIMED_OUT_REASON:
            return
        paused_cond = cond is not None and cond.get("reason") == ro.PAUSED_REASON
        paused = bool((d.get("spec") or {}).get("paused"))
        if paused and not paused_cond:
            ro.set_condition(status, ro.new_condition(ro.PROGRESSING, "Unknown", ro.PAUSED_REASON,
                                                      "Deployment is paused", self.now()))
        elif not paused and paused_cond:
            ro.set_condition(status, ro.new_condition(ro.PROGRESSING, "Unknown", ro.RESUMED_REASON,
                                                      "Deployment is resumed", self.now()))
        else:
            return
        await self._write_status(d)

    async def _sync_status(self, d: Obj, all_rss: list[Obj | None], new_rs: Obj | None) -> None:
        """``syncDeploymentStatus``: counts and Available only (no progress estimate)."""
        status = ro.calculate_status(all_rss, new_rs, d, self.now())
        if not ro.same_status(d.get("status") or {}, status):
            d["status"] = status
            await self._write_status(d)

    async def _sync_rollout_status(self, d: Obj, all_rss: list[Obj | None], new_rs: Obj | None) -> Result:
        status, recheck = ro.rollout_status(d, all_rss, new_rs, self.now())
        if ro.same_status(d.get("status") or {}, status):
            return Result(requeue_after=recheck)
        d["status"] = status
        await self._write_status(d)
        return Result()
