"""StatefulSet controller: pods with stable names, storage and an ordered lifecycle.

Pods are ``<set>-<ordinal>`` (labels ``statefulset.kubernetes.io/pod-name`` and
``apps.kubernetes.io/pod-index``, hostname = pod name, subdomain = ``serviceName``), each
with its own PersistentVolumeClaims ``<claim>-<set>-<ordinal>`` made from
``volumeClaimTemplates``. Atoll has no volume provisioner: claims are created and left
``Pending``; nothing waits for them to bind.

The decisions follow kube's ``updateStatefulSet``, written as one pure function,
:func:`plan`:

* ``OrderedReady``: ordinal *i* is created only once 0..i-1 are Running and Ready;
  scale-down removes the highest ordinal first, one at a time, and only while every other
  pod is healthy. ``Parallel`` creates and deletes without waiting.
* Failed (or, for ``restartPolicy: Always``, exited) pods are deleted and recreated.
* ``RollingUpdate`` deletes the highest-ordinal pod not at the update revision (down to
  ``partition``), one at a time, waiting for each replacement to be healthy — or, with
  ``rollingUpdate.maxUnavailable`` (alpha in kube, honoured here), as many as keep at most
  that many pods unavailable; ``OnDelete`` only uses the update revision for pods someone
  else deleted.

Revisions are ControllerRevisions (see :mod:`history`); ``currentRevision`` moves to
``updateRevision`` once every pod is updated and ready, which is what
``kubectl rollout status statefulset/x`` waits for.
``persistentVolumeClaimRetentionPolicy``: ``whenDeleted: Delete`` makes the set an owner
of its claims (the garbage collector removes them with it, and a changed policy is applied
to existing claims); ``whenScaled: Delete`` makes a condemned pod the owner of its claims
before the pod is deleted.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from atoll.api.errors import AlreadyExists, Conflict, NotFound
from atoll.api.selectors import LabelSelector
from atoll.client import Client, Resource
from atoll.cluster.controllers.history import (
    CONTROLLER_REVISIONS,
    REVISION_LABEL,
    RevisionHistory,
    adopt,
    release,
    template_of,
)
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.events import EventRecorder
from atoll.machinery.informing import Informer, key_of, split_key

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS = Resource("v1", "pods", True, "Pod")
PVCS = Resource("v1", "persistentvolumeclaims", True, "PersistentVolumeClaim")
STATEFULSETS = Resource("apps/v1", "statefulsets", True, "StatefulSet")
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"

Action = Literal["create", "delete-failed", "delete-condemned", "delete-update"]


@dataclass(frozen=True, slots=True)
class Member:
    """What :func:`plan` needs to know about one existing pod."""

    revision: str = ""
    phase: str = "Pending"
    healthy: bool = False
    """Running and Ready (for ``minReadySeconds``)."""
    terminating: bool = False

    @property
    def finished(self) -> bool:
        return self.phase in ("Failed", "Succeeded")


def plan(members: dict[int, Member], *, start: int = 0, replicas: int, parallel: bool = False,
         rolling: bool = True, partition: int = 0, update_revision: str = "",
         max_unavailable: int | None = None) -> list[tuple[Action, int]]:
    """What to do this round, in order, as kube's ``updateStatefulSet`` would.

    ``members`` maps ordinals to existing pods. The function stops where kube blocks:
    in ``OrderedReady`` mode at the first pod that is missing, terminating or unhealthy.
    Without ``max_unavailable`` a rolling update replaces one pod at a time; with it
    (kube's ``MaxUnavailableStatefulSet``) up to that many pods may be down at once.
    """
    monotonic = not parallel
    wanted = range(start, start + replicas)
    actions: list[tuple[Action, int]] = []
    for ordinal in wanted:
        m = members.get(ordinal)
        if m is None:
            actions.append(("create", ordinal))
        elif m.finished and not m.terminating:
            actions.append(("delete-failed", ordinal))
        elif m.healthy and not m.terminating:
            continue
        if monotonic:  # missing, replaced, terminating or unhealthy: OrderedReady waits here
            return actions
    condemned = sorted((o for o in members if o not in wanted), reverse=True)
    first_unhealthy = min((o for o in condemned if not members[o].healthy or members[o].terminating), default=None)
    for ordinal in condemned:
        m = members[ordinal]
        if m.terminating:
            if monotonic:
                return actions
            continue
        if monotonic and first_unhealthy is not None and first_unhealthy != ordinal:
            return actions
        actions.append(("delete-condemned", ordinal))
        if monotonic:
            return actions
    if not rolling:
        return actions
    touched = {o for _, o in actions}
    if max_unavailable is not None:
        unavailable = sum(1 for o in wanted if o in touched or (m := members.get(o)) is None or not m.healthy
                          or m.terminating)
        budget = max(1, max_unavailable) - unavailable
        for ordinal in reversed(wanted):
            if budget <= 0 or ordinal - start < partition:
                break
            m = members.get(ordinal)
            if m is not None and ordinal not in touched and m.revision != update_revision and not m.terminating:
                actions.append(("delete-update", ordinal))
                budget -= 1
        return actions
    for ordinal in reversed(wanted):
        if ordinal - start < partition:
            break
        m = members.get(ordinal)
        if m is None or ordinal in touched:
            return actions
        if m.revision != update_revision and not m.terminating:
            actions.append(("delete-update", ordinal))
            return actions
        if not m.healthy or m.terminating:
            return actions
    return actions


def scaled_down(value: Any, total: int) -> int:
    """``intstr.GetScaledValueFromIntOrPercent(value, total, roundUp=false)``, at least 1."""
    if isinstance(value, str) and value.endswith("%"):
        try:
            return max(1, int(value[:-1]) * total // 100)
        except ValueError:
            return 1
    return max(1, int(value or 1))


def uses_current_revision(index: int, *, rolling: bool, partition: int) -> bool:
    """A pod recreated below the partition keeps the current revision (kube's ``newVersionedStatefulSetPod``)."""
    return rolling and index < partition


def ordinal_of(set_name: str, pod: Obj) -> int | None:
    name = str((pod.get("metadata") or {}).get("name") or "")
    prefix, _, number = name.rpartition("-")
    if prefix != set_name or not number.isdigit() or (number != "0" and number.startswith("0")):
        return None
    return int(number)


def controller_of(obj: Obj) -> Obj | None:
    return next((r for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if r.get("controller")), None)


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def ready_for(pod: Obj, now: dt.datetime) -> float | None:
    """Seconds the pod has been Ready (None when it is not)."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "True":
            since = str(c.get("lastTransitionTime") or "")
            try:
                return (now - dt.datetime.fromisoformat(since.replace("Z", "+00:00"))).total_seconds()
            except ValueError:
                return 0.0
    return None


def claim_name(claim: Obj, set_name: str, ordinal: int) -> str:
    return f"{(claim.get('metadata') or {}).get('name')}-{set_name}-{ordinal}"


def retention(sts: Obj) -> tuple[str, str]:
    policy = (sts.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
    return str(policy.get("whenDeleted") or "Retain"), str(policy.get("whenScaled") or "Retain")


def new_pod(sts: Obj, template: Obj, ordinal: int, revision: str) -> Obj:
    md, spec = sts["metadata"], sts.get("spec") or {}
    name = f"{md['name']}-{ordinal}"
    template = copy.deepcopy(template)
    pod_md = template.get("metadata") or {}
    labels = {**(pod_md.get("labels") or {}), POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal),
              REVISION_LABEL: revision}
    pod_md.update({"name": name, "namespace": md.get("namespace"), "labels": labels,
                   "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": md["name"],
                                        "uid": md["uid"], "controller": True, "blockOwnerDeletion": True}]})
    pod_md.pop("generateName", None)
    pod_spec = template.get("spec") or {}
    pod_spec["hostname"] = name
    if spec.get("serviceName"):
        pod_spec["subdomain"] = spec["serviceName"]
    claims = {str((c.get("metadata") or {}).get("name")): c for c in spec.get("volumeClaimTemplates") or []}
    if claims:
        volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") not in claims]
        volumes += [{"name": n, "persistentVolumeClaim": {"claimName": claim_name(c, md["name"], ordinal)}}
                    for n, c in claims.items()]
        pod_spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_md, "spec": pod_spec}


def new_claim(sts: Obj, claim: Obj, ordinal: int) -> Obj:
    md, spec = sts["metadata"], sts.get("spec") or {}
    claim_md = copy.deepcopy(claim.get("metadata") or {})
    labels = {**(claim_md.get("labels") or {}), **((spec.get("selector") or {}).get("matchLabels") or {})}
    out_md: Obj = {"name": claim_name(claim, md["name"], ordinal), "namespace": md.get("namespace"),
                   "labels": labels}
    if claim_md.get("annotations"):
        out_md["annotations"] = claim_md["annotations"]
    if retention(sts)[0] == "Delete":
        out_md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": md["name"],
                                      "uid": md["uid"]}]
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": out_md,
            "spec": copy.deepcopy(claim.get("spec") or {})}


class StatefulSetController(Controller):
    NAME: ClassVar[str] = "statefulset-controller"

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client
        self.events = EventRecorder(client, self.NAME)
        self.history = RevisionHistory(client, kind="StatefulSet")
        self.sets = self.watch(Informer(client, STATEFULSETS))
        self.pods = self.watch(Informer(client, PODS), key_for=self._pod_keys)
        self.revisions = self.watch(Informer(client, CONTROLLER_REVISIONS), key_for=self._owner_keys)
        self.claims = self.watch(Informer(client, PVCS), key_for=lambda _claim: [])  # a cache, no triggers

    @staticmethod
    def _owner_keys(obj: Obj) -> list[str]:
        ref = controller_of(obj)
        if ref is None or ref.get("kind") != "StatefulSet":
            return []
        return [f"{(obj.get('metadata') or {}).get('namespace')}/{ref['name']}"]

    def _pod_keys(self, pod: Obj) -> list[str]:
        """The owner of a pod, or for an orphan the set whose member (by name and labels) it could be."""
        if controller_of(pod) is not None:
            return self._owner_keys(pod)
        md = pod.get("metadata") or {}
        return [key_of(s) for s in self.sets.lister.list(md.get("namespace"))
                if ordinal_of(s["metadata"]["name"], pod) is not None
                and LabelSelector.from_dict((s.get("spec") or {}).get("selector")).matches(md.get("labels") or {})]

    async def _claim_pods(self, sts: Obj) -> list[Obj]:
        """kube's ``ClaimPods``: adopt orphans named and labelled as members, release non-matching pods."""
        md = sts["metadata"]
        selector = LabelSelector.from_dict((sts.get("spec") or {}).get("selector"))
        owned: list[Obj] = []
        for pod in self.pods.lister.list(md.get("namespace")):
            ref, labels = controller_of(pod), (pod.get("metadata") or {}).get("labels") or {}
            if ref is None:
                if ordinal_of(md["name"], pod) is not None and selector.matches(labels) \
                        and not pod["metadata"].get("deletionTimestamp"):
                    adopted = await adopt(self.client, sts, pod, "StatefulSet")
                    if adopted is not None:
                        owned.append(adopted)
            elif ref.get("uid") == md.get("uid"):
                if selector.matches(labels):
                    owned.append(pod)
                else:
                    await release(self.client, sts, pod)
        return owned

    def _owned(self, informer: Informer, sts: Obj) -> list[Obj]:
        md = sts["metadata"]
        return [o for o in informer.lister.list(md.get("namespace"))
                if (controller_of(o) or {}).get("uid") == md.get("uid")]

    async def reconcile(self, key: str) -> Result:
        sts = self.sets.lister.get(key)
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            return Result()  # the garbage collector removes its pods and revisions
        _, name = split_key(key)
        spec = sts.get("spec") or {}
        revisions = self._owned(self.revisions, sts)
        update_rev, collisions, revisions = await self.history.sync(sts, revisions)
        status = sts.get("status") or {}
        current_rev = next((r for r in revisions if r["metadata"]["name"] == status.get("currentRevision")),
                           update_rev)
        pods = {o: p for p in await self._claim_pods(sts) if (o := ordinal_of(name, p)) is not None}
        now = dt.datetime.now(dt.UTC)
        min_ready = int(spec.get("minReadySeconds") or 0)
        recheck: float | None = None
        members: dict[int, Member] = {}
        for ordinal, pod in pods.items():
            phase = str((pod.get("status") or {}).get("phase") or "Pending")
            ready = ready_for(pod, now)
            healthy = phase == "Running" and ready is not None and ready >= min_ready
            if phase == "Running" and ready is not None and not healthy:
                recheck = min(recheck or min_ready, max(min_ready - ready, 0.1))
            members[ordinal] = Member(revision=((pod.get("metadata") or {}).get("labels") or {}).get(
                REVISION_LABEL, ""), phase=phase, healthy=healthy,
                terminating=bool(pod["metadata"].get("deletionTimestamp")))
        strategy = spec.get("updateStrategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        start = int((spec.get("ordinals") or {}).get("start") or 0)
        replicas = int(spec.get("replicas", 1))
        limit = (strategy.get("rollingUpdate") or {}).get("maxUnavailable")
        actions = plan(members, start=start, replicas=replicas, parallel=spec.get("podManagementPolicy") == "Parallel",
                       rolling=rolling, partition=partition, update_revision=update_rev["metadata"]["name"],
                       max_unavailable=None if limit is None else scaled_down(limit, replicas))
        for action, ordinal in actions:
            if action == "create":
                use_current = uses_current_revision(ordinal - start, rolling=rolling, partition=partition)
                revision = current_rev if use_current else update_rev
                await self._create(sts, ordinal, revision)
            else:
                await self._delete(sts, pods[ordinal], action, ordinal >= start + replicas)
        await self._update_status(sts, list(pods.values()), current_rev, update_rev, collisions, min_ready)
        live = {current_rev["metadata"]["name"], update_rev["metadata"]["name"]}
        live |= {m.revision for m in members.values()}
        await self.history.truncate(sts, revisions, live=live)
        await self._sync_claim_owners(sts, range(start, start + replicas))
        return Result(requeue_after=recheck)

    async def _create(self, sts: Obj, ordinal: int, revision: Obj) -> None:
        md = sts["metadata"]
        for claim in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
            pvc = new_claim(sts, claim, ordinal)
            try:
                await self.client.create(PVCS, pvc)
                await self.events.record(sts, "Normal", "SuccessfulCreate",
                                         f"create Claim {pvc['metadata']['name']} Pod {md['name']}-{ordinal} "
                                         f"in StatefulSet {md['name']} success")
            except AlreadyExists:
                pass
        pod = new_pod(sts, template_of(revision), ordinal, revision["metadata"]["name"])
        try:
            await self.client.create(PODS, pod)
        except AlreadyExists:
            return  # the previous pod is still going away; its deletion event brings us back
        await self.events.record(sts, "Normal", "SuccessfulCreate",
                                 f"create Pod {pod['metadata']['name']} in StatefulSet {md['name']} successful")

    async def _delete(self, sts: Obj, pod: Obj, action: Action, condemned: bool) -> None:
        md, pmd = sts["metadata"], pod["metadata"]
        if action == "delete-failed":
            await self.events.record(sts, "Warning", "RecreatingFailedPod",
                                     f"StatefulSet {md.get('namespace')}/{md['name']} is recreating failed Pod "
                                     f"{pmd['name']}")
        if condemned and retention(sts)[1] == "Delete":
            await self._hand_claims_to(sts, pod)
        try:
            await self.client.delete(PODS, pmd["name"], pmd.get("namespace"), uid=pmd.get("uid"))
        except (NotFound, Conflict):
            return
        await self.events.record(sts, "Normal", "SuccessfulDelete",
                                 f"delete Pod {pmd['name']} in StatefulSet {md['name']} successful")

    async def _sync_claim_owners(self, sts: Obj, ordinals: range) -> None:
        """Keep the claims of live ordinals owned by the set exactly when ``whenDeleted: Delete``.

        A changed retention policy applies to existing claims, and a claim handed to a
        condemned pod is taken back when the set scales up again before it is collected.
        """
        md = sts["metadata"]
        owned_by_set = retention(sts)[0] == "Delete"
        set_ref = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": md["name"], "uid": md["uid"]}
        for ordinal in ordinals:
            for claim in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
                name = claim_name(claim, md["name"], ordinal)
                pvc = self.claims.lister.get(f"{md.get('namespace')}/{name}")
                if pvc is None or pvc["metadata"].get("deletionTimestamp"):
                    continue
                refs = pvc["metadata"].get("ownerReferences") or []
                pod = self.pods.lister.get(f"{md.get('namespace')}/{md['name']}-{ordinal}")
                pod_uid = (pod or {}).get("metadata", {}).get("uid")
                wanted = [r for r in refs if r.get("uid") != md["uid"]
                          and not (r.get("kind") == "Pod" and r.get("name") == f"{md['name']}-{ordinal}"
                                   and r.get("uid") != pod_uid)]
                if owned_by_set:
                    wanted.append(set_ref)
                if {(r.get("kind"), r.get("uid")) for r in wanted} != {(r.get("kind"), r.get("uid")) for r in refs}:
                    try:
                        await self.client.patch(PVCS, name, {"metadata": {
                            "ownerReferences": wanted or None,
                            "resourceVersion": pvc["metadata"].get("resourceVersion")}}, md.get("namespace"))
                    except (NotFound, Conflict):
                        continue

    async def _hand_claims_to(self, sts: Obj, pod: Obj) -> None:
        """``whenScaled: Delete``: the condemned pod owns its claims, so the garbage collector removes them."""
        md, pmd = sts["metadata"], pod["metadata"]
        ordinal = ordinal_of(md["name"], pod)
        if ordinal is None:
            return
        for claim in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
            name = claim_name(claim, md["name"], ordinal)
            try:
                pvc = await self.client.get(PVCS, name, md.get("namespace"))
                refs = [r for r in pvc["metadata"].get("ownerReferences") or [] if r.get("uid") != pmd.get("uid")]
                refs.append({"apiVersion": "v1", "kind": "Pod", "name": pmd["name"], "uid": pmd["uid"]})
                await self.client.patch(PVCS, name, {"metadata": {"ownerReferences": refs}}, md.get("namespace"))
            except NotFound:
                continue

    async def _update_status(self, sts: Obj, pods: list[Obj], current: Obj, update: Obj, collisions: int,
                             min_ready: int) -> None:
        md, spec = sts["metadata"], sts.get("spec") or {}
        now = dt.datetime.now(dt.UTC)
        cur, upd = current["metadata"]["name"], update["metadata"]["name"]
        replicas = ready = available = current_n = updated_n = 0
        for pod in pods:
            replicas += 1
            running = (pod.get("status") or {}).get("phase") == "Running"
            since = ready_for(pod, now)
            if running and since is not None:
                ready += 1
                if since >= min_ready:
                    available += 1
            if not pod["metadata"].get("deletionTimestamp"):
                revision = (pod["metadata"].get("labels") or {}).get(REVISION_LABEL)
                current_n += revision == cur
                updated_n += revision == upd
        rolling = ((spec.get("updateStrategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate"
        if rolling and updated_n == replicas and ready == replicas and replicas == int(spec.get("replicas", 1)):
            cur, current_n = upd, updated_n  # kube's completeRollingUpdate
        status: Obj = {"observedGeneration": md.get("generation", 1), "replicas": replicas, "readyReplicas": ready,
                       "currentReplicas": current_n, "updatedReplicas": updated_n, "availableReplicas": available,
                       "currentRevision": cur, "updateRevision": upd, "collisionCount": collisions}
        old = sts.get("status") or {}
        if any(old.get(k) != v for k, v in status.items()):
            try:
                await self.client.patch(STATEFULSETS, md["name"], {"status": status}, md.get("namespace"),
                                        subresource="status")
            except NotFound:
                pass
