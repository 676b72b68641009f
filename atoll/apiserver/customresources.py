"""CustomResourceDefinitions at run time: admission, serving, and custom object schemas.

A CRD is validated and gets its status (``NamesAccepted``, ``Established``) as it is
written, and its versions are registered in the same request, so a custom object can be
created right after ``kubectl apply`` of its CRD returns. Custom objects are pruned,
defaulted and validated against their version's ``openAPIV3Schema``.
"""

from __future__ import annotations

import logging
from typing import Any

from atoll.api.errors import invalid
from atoll.api.resources import ResourceInfo
from atoll.apiserver import crds
from atoll.apiserver.lifecycle import CRD_CLEANUP_FINALIZER
from atoll.apiserver.registry import ObjectRegistry, Operation, RequestContext, now_rfc3339

logger = logging.getLogger(__name__)

Obj = dict[str, Any]


class CustomResources:
    def __init__(self, objects: ObjectRegistry) -> None:
        self.objects = objects
        self.resources = objects.resources
        self._schemas: dict[tuple[str, str, str], crds.CustomSchema] = {}
        self._served: dict[str, list[tuple[str, str, str]]] = {}
        """CRD name → the (group, version, plural) it registered."""

    @property
    def crd_info(self) -> ResourceInfo:
        info = self.resources.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert info is not None
        return info

    async def load(self) -> None:
        listed = await self.objects.list(self.crd_info, None)
        for crd in listed.items:
            self.register(crd)
        if listed.items:
            logger.info("serving %d custom resource definitions", len(listed.items))

    def register(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        self.unregister(name)
        infos = crds.resources_for_crd(crd)
        keys: list[tuple[str, str, str]] = []
        for info in infos:
            self.resources.add(info)
            key = (info.group, info.version, info.plural)
            keys.append(key)
            if info.schema is not None:
                self._schemas[key] = crds.CustomSchema(info.schema)
        self._served[name] = keys

    def unregister(self, name: str) -> None:
        for key in self._served.pop(name, []):
            self.resources.remove(*key)
            self._schemas.pop(key, None)

    def schema_for(self, info: ResourceInfo) -> crds.CustomSchema | None:
        return self._schemas.get((info.group, info.version, info.plural))

    async def admit(self, op: Operation, info: ResourceInfo, obj: Obj | None, old: Obj | None,
                    ctx: RequestContext) -> None:
        if obj is None or op == "DELETE":
            return
        if info.group == "apiextensions.k8s.io" and info.plural == "customresourcedefinitions":
            self._admit_crd(op, obj, old)
        elif info.custom:
            schema = self.schema_for(info)
            if schema is None:
                return
            schema.prune(obj)
            schema.apply_defaults(obj)
            causes = schema.validate(obj)
            if causes:
                raise invalid(info.kind, obj["metadata"].get("name", ""), causes, group=info.group)

    def _admit_crd(self, op: Operation, crd: Obj, old: Obj | None) -> None:
        name = crd["metadata"].get("name", "")
        causes = crds.validate_crd(crd)
        if old is not None:
            old_spec, new_spec = old.get("spec") or {}, crd.get("spec") or {}
            if old_spec.get("group") != new_spec.get("group"):
                causes.append({"reason": "FieldValueInvalid", "field": "spec.group",
                               "message": "Invalid value: field is immutable"})
            if old_spec.get("scope") != new_spec.get("scope"):
                causes.append({"reason": "FieldValueInvalid", "field": "spec.scope",
                               "message": "Invalid value: field is immutable"})
        if causes:
            raise invalid("CustomResourceDefinition", name, causes, group="apiextensions.k8s.io")
        if op == "CREATE":
            fins = crd["metadata"].setdefault("finalizers", [])
            if CRD_CLEANUP_FINALIZER not in fins:
                fins.append(CRD_CLEANUP_FINALIZER)
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        conflict = self._names_conflict(name, spec)
        now = now_rfc3339()
        old_conditions = {c.get("type"): c for c in ((old or {}).get("status") or {}).get("conditions") or []}

        def condition(ctype: str, status: str, reason: str, message: str) -> Obj:
            prev = old_conditions.get(ctype)
            since = prev.get("lastTransitionTime") if prev and prev.get("status") == status else now
            return {"type": ctype, "status": status, "lastTransitionTime": since, "reason": reason,
                    "message": message}

        accepted = dict(names)
        accepted.setdefault("singular", str(names.get("kind", "")).lower())
        accepted.setdefault("listKind", f"{names.get('kind', '')}List")
        if conflict:
            conditions = [condition("NamesAccepted", "False", "NameConflict", conflict),
                          condition("Established", "False", "NotAccepted", "not all names are accepted")]
        else:
            conditions = [condition("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
                          condition("Established", "True", "InitialNamesAccepted",
                                    "the initial names have been accepted")]
        if crd["metadata"].get("deletionTimestamp"):
            conditions.append(condition("Terminating", "True", "InstanceDeletionInProgress",
                                        "CustomResource deletion is in progress"))
        status = crd.setdefault("status", {})
        status["conditions"] = conditions
        status["acceptedNames"] = accepted if not conflict else (old or {}).get("status", {}).get("acceptedNames", {})
        status["storedVersions"] = sorted({*((old or {}).get("status") or {}).get("storedVersions", []),
                                           *[v["name"] for v in spec.get("versions") or [] if v.get("storage")]})

    def _names_conflict(self, crd_name: str, spec: Obj) -> str:
        group, names = spec.get("group", ""), spec.get("names") or {}
        plural, kind = names.get("plural", ""), names.get("kind", "")
        for info in self.resources:
            if info.group != group:
                continue
            owner = next((n for n, keys in self._served.items()
                          if (info.group, info.version, info.plural) in keys), None)
            if owner == crd_name:
                continue
            if info.plural == plural:
                return f'"{plural}" is already in use'
            if info.kind == kind and owner is not None:
                return f'"{kind}" is already in use'
        return ""

    async def after_write(self, op: str, info: ResourceInfo, obj: Obj | None, old: Obj | None) -> None:
        if not (info.group == "apiextensions.k8s.io" and info.plural == "customresourcedefinitions"):
            return
        if op == "DELETE":
            if old is not None:
                self.unregister(old["metadata"]["name"])
            return
        if obj is not None:
            established = any(c.get("type") == "Established" and c.get("status") == "True"
                              for c in (obj.get("status") or {}).get("conditions") or [])
            if established:
                self.register(obj)
