"""ReplicaSet controller: keep ``spec.replicas`` pods matching the selector, report status.

Pods are created from the template with a controller ownerReference, deleted newest and
least-ready first when scaling down, and orphans matching the selector are adopted.
Status counts replicas, fully-labelled, ready and available (ready for
``minReadySeconds``) pods, with ``observedGeneration``.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
from typing import Any, ClassVar

from atoll.api.errors import Conflict, NotFound
from atoll.api.meta import generate_name
from atoll.api.selectors import LabelSelector
from atoll.client import Client, Resource
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.expectations import Expectations
from atoll.machinery.informing import Informer, key_of, split_key

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS = Resource("v1", "pods", True, "Pod")
REPLICASETS = Resource("apps/v1", "replicasets", True, "ReplicaSet")
BURST = 500


def controller_of(obj: Obj) -> Obj | None:
    return next((r for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if r.get("controller")), None)


def is_active(pod: Obj) -> bool:
    return (not (pod.get("metadata") or {}).get("deletionTimestamp")
            and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def ready_since(pod: Obj) -> dt.datetime | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "True" and c.get("lastTransitionTime"):
            return dt.datetime.fromisoformat(str(c["lastTransitionTime"]).replace("Z", "+00:00"))
    return None


def deletion_rank(pod: Obj) -> tuple[int, int, float]:
    """Pods to delete first: unscheduled, then not ready, then the newest."""
    scheduled = 1 if (pod.get("spec") or {}).get("nodeName") else 0
    created = str((pod.get("metadata") or {}).get("creationTimestamp") or "")
    try:
        age_key = -dt.datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        age_key = 0.0
    return (scheduled, 1 if is_ready(pod) else 0, age_key)


class ReplicaSetController(Controller):
    NAME: ClassVar[str] = "replicaset-controller"

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client
        self.expectations = Expectations()
        self.replicasets = self.watch(Informer(client, REPLICASETS))
        pods = Informer(client, PODS)
        pods.add_handler(self._observe)  # before the key is queued, so the reconcile sees it counted
        self.pods = self.watch(pods, key_for=self._owner_keys)

    def _observe(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """Tick off expectations: a pod of ours appeared, or one went (or started going)."""
        pod = new if new is not None else old
        if pod is None:
            return
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        owner = f"{pod['metadata'].get('namespace')}/{ref['name']}"
        if event == "ADDED" and not pod["metadata"].get("deletionTimestamp"):
            self.expectations.creation_observed(owner)
        elif event == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            self.expectations.deletion_observed(owner, key_of(pod))

    def _owner_keys(self, pod: Obj) -> list[str]:
        ref = controller_of(pod)
        ns = (pod.get("metadata") or {}).get("namespace")
        if ref is not None:
            return [f"{ns}/{ref['name']}"] if ref.get("kind") == "ReplicaSet" else []
        # An orphan: every ReplicaSet in its namespace whose selector matches may adopt it.
        labels = (pod.get("metadata") or {}).get("labels") or {}
        return [key_of(rs) for rs in self.replicasets.lister.list(ns)
                if LabelSelector.from_dict((rs.get("spec") or {}).get("selector")).matches(labels)]

    def owned_pods(self, rs: Obj) -> tuple[list[Obj], list[Obj]]:
        """(pods this ReplicaSet controls, orphans it should adopt)."""
        md = rs["metadata"]
        selector = LabelSelector.from_dict((rs.get("spec") or {}).get("selector"))
        owned, orphans = [], []
        for pod in self.pods.lister.list(md.get("namespace")):
            ref = controller_of(pod)
            if ref is not None:
                if ref.get("uid") == md.get("uid"):
                    owned.append(pod)
            elif selector.matches((pod.get("metadata") or {}).get("labels") or {}) and is_active(pod):
                orphans.append(pod)
        return owned, orphans

    async def reconcile(self, key: str) -> Result:
        rs = self.replicasets.lister.get(key)
        if rs is None:
            self.expectations.forget(key)
            return Result()  # the garbage collector removes its pods
        ns, _ = split_key(key)
        md, spec = rs["metadata"], rs.get("spec") or {}
        owned, orphans = self.owned_pods(rs)
        if not md.get("deletionTimestamp"):
            for orphan in orphans:
                await self._adopt(rs, orphan)
                owned.append(orphan)
        active = [p for p in owned if is_active(p)]
        wanted = int(spec.get("replicas", 1))
        diff = wanted - len(active)
        if md.get("deletionTimestamp") or not self.expectations.satisfied(key):
            diff = 0  # the cache has not caught up with our own last creates/deletes yet
        if diff > 0:
            count = min(diff, BURST)
            self.expectations.expect_creations(key, count)
            for i in range(count):
                try:
                    await self._create_pod(rs)
                except BaseException:
                    for _ in range(count - i):  # these will never be observed
                        self.expectations.creation_observed(key)
                    raise
        elif diff < 0:
            victims = sorted(active, key=deletion_rank)[: -diff]
            self.expectations.expect_deletions(key, [key_of(p) for p in victims])
            for pod in victims:
                try:
                    await self.client.delete(PODS, pod["metadata"]["name"], ns, uid=pod["metadata"].get("uid"))
                except (NotFound, Conflict):
                    self.expectations.deletion_observed(key, key_of(pod))
                except BaseException:
                    self.expectations.deletion_observed(key, key_of(pod))
                    raise
        return await self._update_status(rs, active)

    async def _adopt(self, rs: Obj, pod: Obj) -> None:
        md = rs["metadata"]
        ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": md["name"], "uid": md["uid"],
               "controller": True, "blockOwnerDeletion": True}
        refs = [*((pod.get("metadata") or {}).get("ownerReferences") or []), ref]
        try:
            await self.client.patch(PODS, pod["metadata"]["name"],
                                    {"metadata": {"ownerReferences": refs,
                                                  "resourceVersion": pod["metadata"].get("resourceVersion")}},
                                    md.get("namespace"))
        except (NotFound, Conflict):
            pass

    async def _create_pod(self, rs: Obj) -> None:
        md = rs["metadata"]
        template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
        pod_md = template.get("metadata") or {}
        pod_md.pop("name", None)
        pod_md["name"] = generate_name(f"{md['name']}-")
        pod_md["namespace"] = md.get("namespace")
        pod_md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": md["name"],
                                      "uid": md["uid"], "controller": True, "blockOwnerDeletion": True}]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_md, "spec": template.get("spec") or {}}
        await self.client.create(PODS, pod)

    async def _update_status(self, rs: Obj, active: list[Obj]) -> Result:
        md, spec = rs["metadata"], rs.get("spec") or {}
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        min_ready = int(spec.get("minReadySeconds", 0) or 0)
        now = dt.datetime.now(dt.UTC)
        ready = [p for p in active if is_ready(p)]
        available = 0
        recheck: float | None = None
        for p in ready:
            since = ready_since(p)
            waited = (now - since).total_seconds() if since else min_ready
            if waited >= min_ready:
                available += 1
            else:
                recheck = min(recheck or min_ready, min_ready - waited)
        fully_labelled = sum(1 for p in active
                             if all(((p.get("metadata") or {}).get("labels") or {}).get(k) == v
                                    for k, v in template_labels.items()))
        status = {"replicas": len(active), "fullyLabeledReplicas": fully_labelled, "readyReplicas": len(ready),
                  "availableReplicas": available, "observedGeneration": md.get("generation", 1)}
        current = rs.get("status") or {}
        if any(current.get(k, 0) != v for k, v in status.items()):
            try:
                await self.client.patch(REPLICASETS, md["name"], {"status": status}, md.get("namespace"),
                                        subresource="status")
            except NotFound:
                return Result()
        return Result(requeue_after=recheck)
