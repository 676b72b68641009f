"""ControllerRevisions: the template history of StatefulSets and DaemonSets.

Both controllers snapshot the part of their spec that pods are made from (the pod
template, as a strategic-merge ``$patch: replace`` document, as kube does) into
immutable ControllerRevisions named ``<owner>-<hash>``. Pods carry the revision in
their ``controller-revision-hash`` label, which is how a rolling update tells old pods
from new ones and how ``status.currentRevision``/``updateRevision`` are reported.

The hash is kube's: FNV-32a over the revision data (plus ``collisionCount`` when a name
is taken by a revision with different data), spelled with ``rand.SafeEncodeString``'s
alphabet so it never forms words.

The module also holds the two ownership patches (adopt an orphan, release a pod that
stopped matching) both revisioned controllers make.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import orjson

from atoll.api.errors import AlreadyExists, Conflict, NotFound
from atoll.client import Client, Resource

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
CONTROLLER_REVISIONS = Resource("apps/v1", "controllerrevisions", True, "ControllerRevision")
HASH_LABEL = "controller.kubernetes.io/hash"
REVISION_LABEL = "controller-revision-hash"
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MAX_COLLISIONS = 32


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """``rand.SafeEncodeString``: each byte picks a letter, so hashes are never words or digits only."""
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in text.encode())


def hash_revision(data: Any, collision_count: int = 0) -> str:
    raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    if collision_count:
        raw += collision_count.to_bytes(4, "little")
    return safe_encode(str(fnv32a(raw)))


def template_patch(owner: Obj) -> Obj:
    """What a revision stores: the owner's pod template, replacing the whole template when applied."""
    template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def template_of(revision: Obj) -> Obj:
    """The pod template a revision snapshots (the inverse of :func:`template_patch`)."""
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def revision_number(revision: Obj) -> int:
    return int(revision.get("revision") or 0)


def owned_revisions(revisions: list[Obj], owner: Obj) -> list[Obj]:
    uid = owner["metadata"].get("uid")
    out = [r for r in revisions
           if any(ref.get("controller") and ref.get("uid") == uid
                  for ref in (r.get("metadata") or {}).get("ownerReferences") or [])]
    return sorted(out, key=lambda r: (revision_number(r), r["metadata"]["name"]))


def equal_revisions(revisions: list[Obj], data: Obj) -> list[Obj]:
    return [r for r in revisions if r.get("data") == data]


def stale_revisions(revisions: list[Obj], *, live: set[str], limit: int) -> list[Obj]:
    """Revisions to delete, oldest first: those beyond ``limit`` that no pod or status still names."""
    history = [r for r in sorted(revisions, key=revision_number) if r["metadata"]["name"] not in live]
    excess = len(history) - max(limit, 0)
    return history[:excess] if excess > 0 else []


class RevisionHistory:
    """Creates, renumbers and truncates one kind's ControllerRevisions.

    ``hash_label`` is the label a revision carries its hash in (StatefulSets use
    ``controller.kubernetes.io/hash``, DaemonSets ``controller-revision-hash``).
    """

    def __init__(self, client: Client, *, kind: str, api_version: str = "apps/v1",
                 hash_label: str = HASH_LABEL) -> None:
        self.client = client
        self.kind = kind
        self.api_version = api_version
        self.hash_label = hash_label

    async def sync(self, owner: Obj, revisions: list[Obj]) -> tuple[Obj, int, list[Obj]]:
        """The update revision for ``owner``'s current template, its collisionCount, and all revisions.

        An equal older revision is reused and renumbered to be the newest (a rollback reuses
        history); otherwise a new one is created, bumping collisionCount on a hash collision.
        """
        md = owner["metadata"]
        data = template_patch(owner)
        collision_count = int((owner.get("status") or {}).get("collisionCount") or 0)
        revisions = owned_revisions(revisions, owner)
        newest = max((revision_number(r) for r in revisions), default=0)
        equal = equal_revisions(revisions, data)
        if equal:
            chosen = equal[-1]
            if revision_number(chosen) != newest:
                chosen = await self.client.patch(CONTROLLER_REVISIONS, chosen["metadata"]["name"],
                                                 {"revision": newest + 1}, md.get("namespace"))
                revisions = [chosen if r["metadata"]["name"] == chosen["metadata"]["name"] else r
                             for r in revisions]
            return chosen, collision_count, revisions
        for _ in range(MAX_COLLISIONS):
            hash_ = hash_revision(data, collision_count)
            labels = dict(((owner.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
            labels.update((((owner.get("spec") or {}).get("template") or {}).get("metadata") or {})
                           .get("labels") or {})
            labels[self.hash_label] = hash_
            revision: Obj = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
                        "metadata": {"name": f"{md['name']}-{hash_}", "namespace": md.get("namespace"),
                                     "labels": labels,
                                     "ownerReferences": [{"apiVersion": self.api_version, "kind": self.kind,
                                                          "name": md["name"], "uid": md["uid"], "controller": True,
                                                          "blockOwnerDeletion": True}]},
                        "data": data, "revision": newest + 1}
            try:
                created = await self.client.create(CONTROLLER_REVISIONS, revision)
                return created, collision_count, [*revisions, created]
            except AlreadyExists:
                existing = await self.client.get(CONTROLLER_REVISIONS, revision["metadata"]["name"],
                                                 md.get("namespace"))
                if existing.get("data") == data and any(
                        ref.get("uid") == md["uid"] for ref in existing["metadata"].get("ownerReferences") or []):
                    return existing, collision_count, [*revisions, existing]
                collision_count += 1
        raise Conflict(f"{self.kind} {md['name']}: too many ControllerRevision hash collisions")

    async def truncate(self, owner: Obj, revisions: list[Obj], *, live: set[str]) -> None:
        limit = int((owner.get("spec") or {}).get("revisionHistoryLimit", 10) or 0)
        for revision in stale_revisions(revisions, live=live, limit=limit):
            try:
                await self.client.delete(CONTROLLER_REVISIONS, revision["metadata"]["name"],
                                         owner["metadata"].get("namespace"))
            except (NotFound, Conflict):
                pass


# -- ownership ---------------------------------------------------------------------------------
# StatefulSets and DaemonSets, like kube's ``ClaimPods``, adopt matching orphans and release
# pods whose labels no longer match; both need the same two patches.

PODS = Resource("v1", "pods", True, "Pod")


def controller_ref(owner: Obj, kind: str, api_version: str = "apps/v1") -> Obj:
    md = owner["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": md["name"], "uid": md["uid"], "controller": True,
            "blockOwnerDeletion": True}


async def adopt(client: Client, owner: Obj, pod: Obj, kind: str) -> Obj | None:
    """Make ``owner`` the controller of an orphan pod; the pod as patched, or None if it is gone.

    A Conflict (the pod changed since the cache saw it) propagates: the caller must retry
    rather than act on a view that lacks the pod, or it would create a duplicate.
    """
    pmd = pod["metadata"]
    refs = [*(pmd.get("ownerReferences") or []), controller_ref(owner, kind)]
    try:
        patched: Obj = await client.patch(PODS, pmd["name"], {"metadata": {
            "ownerReferences": refs, "resourceVersion": pmd.get("resourceVersion")}},
            pmd.get("namespace"))
        return patched
    except NotFound:
        return None


async def release(client: Client, owner: Obj, pod: Obj) -> None:
    """Drop ``owner``'s reference from a pod that no longer matches its selector."""
    pmd = pod["metadata"]
    refs = [r for r in pmd.get("ownerReferences") or [] if r.get("uid") != owner["metadata"].get("uid")]
    try:
        await client.patch(PODS, pmd["name"], {"metadata": {
            "ownerReferences": refs or None, "resourceVersion": pmd.get("resourceVersion")}},
            pmd.get("namespace"))
    except (NotFound, Conflict):
        pass
