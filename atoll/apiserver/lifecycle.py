"""Object lifecycle controllers that every Atoll API server runs in-process.

kube-apiserver leaves these to kube-controller-manager, but an Atoll API server is also
the federation's API server, which has no member-cluster controllers, and deletion must
work the same everywhere. So the server itself runs:

* the **garbage collector**: ownerReferences; Background (dependents of a deleted owner
  go), Foreground (the owner waits, with the ``foregroundDeletion`` finalizer, until its
  blocking dependents are gone) and Orphan (the ``orphan`` finalizer: dependents lose
  the owner reference and stay);
* the **namespace lifecycle**: a terminating namespace is emptied of every namespaced
  resource, then its ``kubernetes`` finalizer is removed and it disappears;
* the **CRD lifecycle**: deleting a CustomResourceDefinition first deletes all its
  custom objects (``customresourcecleanup.apiextensions.k8s.io`` finalizer).

They watch the store directly (one watch on ``/registry/``) and write through the
:class:`ObjectRegistry`, so every change obeys the same rules as an API request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import orjson

from atoll.api.errors import APIError, Conflict, NotFound
from atoll.api.resources import ResourceInfo
from atoll.apiserver.registry import DeleteOptions, ObjectRegistry, RequestContext
from atoll.storage.protocol import Store, WatchEvent

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
GC_CONTEXT = RequestContext(user="system:serviceaccount:kube-system:generic-garbage-collector",
                            field_manager="atoll-garbage-collector")
NS_CONTEXT = RequestContext(user="system:serviceaccount:kube-system:namespace-controller",
                            field_manager="atoll-namespace-controller")


@dataclass(frozen=True, slots=True)
class ObjectRef:
    group: str
    plural: str
    namespace: str | None
    name: str
    uid: str


class _KeyQueue:
    """A set-like queue: a key waiting to be processed is queued only once."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._pending: set[Any] = set()

    def add(self, item: Any) -> None:
        if item not in self._pending:
            self._pending.add(item)
            self._queue.put_nowait(item)

    def add_after(self, item: Any, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self.add, item)

    async def get(self) -> Any:
        item = await self._queue.get()
        self._pending.discard(item)
        return item

    def empty(self) -> bool:
        return self._queue.empty()


class Lifecycle:
    """Runs the garbage collector, namespace and CRD lifecycle over one store."""

    def __init__(self, store: Store, objects: ObjectRegistry) -> None:
        self.store = store
        self.objects = objects
        self.resources = objects.resources
        self._objects_by_uid: dict[str, ObjectRef] = {}
        self._owners_of: dict[str, list[Obj]] = {}
        self._dependents: dict[str, set[str]] = defaultdict(set)
        self._queue = _KeyQueue()
        self._ready = asyncio.Event()
        self.revision = 0

    # -- index -----------------------------------------------------------------------
    def _info_for_key(self, key: str) -> tuple[ResourceInfo, str | None, str] | None:
        parts = key.split("/")
        # /registry/<group>/<plural>/<ns>/<name> or /registry/<group>/<plural>/<name>
        if len(parts) < 5 or parts[1] != "registry":
            return None
        group = "" if parts[2] == "core" else parts[2]
        plural = parts[3]
        versions = self.resources.versions_of(group, plural)
        if not versions:
            return None
        info = next((v for v in versions if v.storage_version), versions[0])
        if info.namespaced and len(parts) == 6:
            return info, parts[4], parts[5]
        if not info.namespaced and len(parts) == 5:
            return info, None, parts[4]
        return None

    def _index(self, key: str, obj: Obj | None, old_uid: str | None) -> None:
        if old_uid is not None:
            for ref in self._owners_of.pop(old_uid, []):
                self._dependents[ref.get("uid", "")].discard(old_uid)
            self._objects_by_uid.pop(old_uid, None)
        if obj is None:
            return
        md = obj.get("metadata") or {}
        uid = md.get("uid")
        if not uid:
            return
        located = self._info_for_key(key)
        if located is None:
            return
        info, ns, name = located
        self._objects_by_uid[uid] = ObjectRef(info.group, info.plural, ns, name, uid)
        refs = [r for r in md.get("ownerReferences") or [] if isinstance(r, dict) and r.get("uid")]
        if refs:
            self._owners_of[uid] = refs
            for r in refs:
                self._dependents[r["uid"]].add(uid)

    # -- run -------------------------------------------------------------------------
    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch_loop(), name="lifecycle-watch")
            await self._ready.wait()
            for _ in range(4):
                tg.create_task(self._worker(), name="lifecycle-worker")

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def _watch_loop(self) -> None:
        while True:
            try:
                listing = await self.store.range("/registry/")
                self._objects_by_uid.clear()
                self._owners_of.clear()
                self._dependents.clear()
                for kv in listing.kvs:
                    obj = orjson.loads(kv.value)
                    self._index(kv.key, obj, None)
                    self._consider(kv.key, obj)
                # Objects whose owners are gone since the last run get looked at once.
                for uid in list(self._owners_of):
                    self._queue.add(("gc", uid))
                self.revision = listing.revision
                self._ready.set()
                async for ev in self.store.watch("/registry/", after_revision=listing.revision):
                    self._on_event(ev)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("lifecycle watch failed (%s); relisting", exc)
                await asyncio.sleep(0.5)

    def _on_event(self, ev: WatchEvent) -> None:
        self.revision = ev.revision
        if ev.type == "DELETE":
            old = orjson.loads(ev.kv.value) if ev.kv.value else None
            uid = ((old or {}).get("metadata") or {}).get("uid")
            if uid:
                owners = [r["uid"] for r in self._owners_of.get(uid, [])]
                dependents = list(self._dependents.get(uid, ()))
                self._index(ev.kv.key, None, uid)
                for dep in dependents:
                    self._queue.add(("gc", dep))
                for owner in owners:
                    self._queue.add(("owner", owner))
            self._on_deleted(ev.kv.key, old)
            return
        obj = orjson.loads(ev.kv.value)
        uid = (obj.get("metadata") or {}).get("uid")
        self._index(ev.kv.key, obj, uid)
        self._consider(ev.kv.key, obj)

    def _consider(self, key: str, obj: Obj) -> None:
        md = obj.get("metadata") or {}
        uid = md.get("uid")
        if not uid:
            return
        finalizers = md.get("finalizers") or []
        if md.get("deletionTimestamp"):
            if "foregroundDeletion" in finalizers or "orphan" in finalizers:
                self._queue.add(("owner", uid))
            located = self._info_for_key(key)
            if located is not None:
                info = located[0]
                if info.group == "" and info.plural == "namespaces":
                    self._queue.add(("namespace", located[2]))
                elif info.group == "apiextensions.k8s.io" and info.plural == "customresourcedefinitions":
                    self._queue.add(("crd", located[2]))
        if md.get("ownerReferences"):
            self._queue.add(("gc", uid))

    def _on_deleted(self, key: str, old: Obj | None) -> None:
        del key, old

    async def _worker(self) -> None:
        while True:
            item = await self._queue.get()
            kind, arg = item
            try:
                if kind == "gc":
                    await self._attempt_to_delete(arg)
                elif kind == "owner":
                    await self._process_owner(arg)
                elif kind == "namespace":
                    await self._process_namespace(arg)
                elif kind == "crd":
                    await self._process_crd(arg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.info("lifecycle %s %s: %s; retrying", kind, arg, exc)
                self._queue.add_after(item, 1.0)

    # -- garbage collector ---------------------------------------------------------------
    async def _load(self, ref: ObjectRef | None) -> tuple[ObjectRef, ResourceInfo, Obj] | None:
        """The object behind ``ref`` if it still exists with the same UID."""
        if ref is None:
            return None
        info = self._info_of(ref)
        if info is None:
            return None
        obj = await self.objects.try_get(info, ref.namespace, ref.name)
        if obj is None or (obj.get("metadata") or {}).get("uid") != ref.uid:
            return None
        return ref, info, obj

    async def _owner_state(self, owner_ref: Obj, namespace: str | None) -> str:
        """``solid``, ``dangling`` or ``waiting`` (being deleted in the foreground)."""
        info = self.resources.by_api_version_kind(owner_ref.get("apiVersion", ""), owner_ref.get("kind", ""))
        if info is None:
            # An owner of a kind this server does not know: keep the dependent (kube logs and skips).
            return "solid"
        owner = await self.objects.try_get(info, namespace if info.namespaced else None, owner_ref.get("name", ""))
        if owner is None or owner["metadata"].get("uid") != owner_ref.get("uid"):
            return "dangling"
        md = owner["metadata"]
        if md.get("deletionTimestamp") and "foregroundDeletion" in (md.get("finalizers") or []):
            return "waiting"
        return "solid"

    async def _attempt_to_delete(self, uid: str) -> None:
        loaded = await self._load(self._objects_by_uid.get(uid))
        if loaded is None:
            return
        ref, info, obj = loaded
        md = obj["metadata"]
        owners = [r for r in md.get("ownerReferences") or [] if isinstance(r, dict)]
        if not owners:
            return
        states = [(r, await self._owner_state(r, ref.namespace)) for r in owners]
        solid = [r for r, s in states if s == "solid"]
        dangling = [r for r, s in states if s == "dangling"]
        waiting = [r for r, s in states if s == "waiting"]
        if solid:
            if dangling or waiting:
                # Some owners remain: only drop the references to the ones that are gone/going.
                gone_uids = {r["uid"] for r in dangling + waiting}
                await self._patch_owner_refs(info, ref, lambda refs: [r for r in refs
                                                                      if r.get("uid") not in gone_uids])
            return
        if md.get("deletionTimestamp"):
            return
        foreground = any(r.get("blockOwnerDeletion") for r in waiting)
        policy = "Foreground" if foreground else "Background"
        logger.info("garbage collector: deleting %s %s/%s (%s)", info.group_resource, ref.namespace or "",
                    ref.name, policy)
        with contextlib.suppress(NotFound):
            await self.objects.delete(info, ref.namespace, ref.name,
                                      DeleteOptions(propagation_policy=policy, preconditions_uid=uid), GC_CONTEXT)

    async def _patch_owner_refs(self, info: ResourceInfo, ref: ObjectRef, change: Any) -> None:
        import copy

        def mutate(current: Obj) -> Obj:
            if current["metadata"].get("uid") != ref.uid:
                raise NotFound("gone")
            new = copy.deepcopy(current)
            refs = change(list(new["metadata"].get("ownerReferences") or []))
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            return new

        with contextlib.suppress(NotFound):
            await self.objects.guaranteed_update(info, ref.namespace, ref.name, mutate, GC_CONTEXT)

    async def _process_owner(self, uid: str) -> None:
        loaded = await self._load(self._objects_by_uid.get(uid))
        if loaded is None:
            return
        ref, info, owner = loaded
        md = owner["metadata"]
        if not md.get("deletionTimestamp"):
            return
        finalizers = md.get("finalizers") or []
        dependents = [self._objects_by_uid[d] for d in list(self._dependents.get(uid, ()))
                      if d in self._objects_by_uid]
        if "orphan" in finalizers:
            for dep in dependents:
                dep_info = self._info_of(dep)
                if dep_info is not None:
                    await self._patch_owner_refs(dep_info, dep, lambda refs: [r for r in refs if r.get("uid") != uid])
            await self.objects.remove_finalizer(info, ref.namespace, ref.name, "orphan")
            return
        if "foregroundDeletion" in finalizers:
            blocking = 0
            for dep in dependents:
                dep_info = self._info_of(dep)
                if dep_info is None:
                    continue
                loaded_dep = await self._load(dep)
                if loaded_dep is None:
                    continue
                dep_obj = loaded_dep[2]
                owner_ref = next((r for r in dep_obj["metadata"].get("ownerReferences") or []
                                  if r.get("uid") == uid), None)
                if owner_ref is None:
                    continue
                if owner_ref.get("blockOwnerDeletion"):
                    blocking += 1
                await self._attempt_to_delete(dep.uid)
            if blocking == 0:
                await self.objects.remove_finalizer(info, ref.namespace, ref.name, "foregroundDeletion")
            # Otherwise the dependents' deletions re-enqueue this owner.

    def _info_of(self, ref: ObjectRef) -> ResourceInfo | None:
        versions = self.resources.versions_of(ref.group, ref.plural)
        if not versions:
            return None
        return next((v for v in versions if v.storage_version), versions[0])

    # -- namespaces ----------------------------------------------------------------------
    def _namespaced_resources(self) -> list[ResourceInfo]:
        seen: set[tuple[str, str]] = set()
        out: list[ResourceInfo] = []
        for info in self.resources:
            if not info.namespaced or "delete" not in info.verbs or "list" not in info.verbs:
                continue
            if (info.group, info.plural) in seen or not info.storage_version:
                continue
            seen.add((info.group, info.plural))
            out.append(info)
        return out

    async def _process_namespace(self, name: str) -> None:
        namespaces = self.resources.get("", "v1", "namespaces")
        assert namespaces is not None
        ns = await self.objects.try_get(namespaces, None, name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        remaining = 0
        for info in self._namespaced_resources():
            listed = await self.objects.list(info, name)
            for obj in listed.items:
                remaining += 1
                if obj["metadata"].get("deletionTimestamp"):
                    continue
                with contextlib.suppress(NotFound, Conflict):
                    await self.objects.delete(info, name, obj["metadata"]["name"],
                                              DeleteOptions(propagation_policy="Background"), NS_CONTEXT)
        if remaining:
            self._queue.add_after(("namespace", name), 0.5)
            return
        if "kubernetes" in ((ns.get("spec") or {}).get("finalizers") or []):
            import copy

            def mutate(current: Obj) -> Obj:
                new = copy.deepcopy(current)
                fins = [f for f in (new.get("spec") or {}).get("finalizers") or [] if f != "kubernetes"]
                if fins:
                    new["spec"]["finalizers"] = fins
                else:
                    new.get("spec", {}).pop("finalizers", None)
                return new

            with contextlib.suppress(NotFound):
                await self.objects.guaranteed_update(namespaces, None, name, mutate, NS_CONTEXT,
                                                     subresource="finalize")

    # -- CRDs ------------------------------------------------------------------------------
    async def _process_crd(self, name: str) -> None:
        crds = self.resources.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert crds is not None
        crd = await self.objects.try_get(crds, None, name)
        if crd is None or not crd["metadata"].get("deletionTimestamp"):
            return
        spec = crd.get("spec") or {}
        group, plural = spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
        versions = self.resources.versions_of(group, plural)
        if versions:
            info = next((v for v in versions if v.storage_version), versions[0])
            listed = await self.objects.list(info, None)
            for obj in listed.items:
                omd = obj["metadata"]
                if omd.get("deletionTimestamp"):
                    continue
                with contextlib.suppress(APIError):
                    await self.objects.delete(info, omd.get("namespace"), omd["name"],
                                              DeleteOptions(propagation_policy="Background"), GC_CONTEXT)
            if listed.items:
                self._queue.add_after(("crd", name), 0.5)
                return
        await self.objects.remove_finalizer(crds, None, name, CRD_CLEANUP_FINALIZER)
