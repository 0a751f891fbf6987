"""Serving CustomResourceDefinitions: what the API server does when a definition is written (defaults, its bucket
made before it is acknowledged, its status Established), when one is gone (its bucket deleted, its resource no
longer served), and for requests on custom resources (the version a request names, conversion of apiVersion
between versions, the definition's registry kept by a watch — ``bus.crd.CrdRegistry``).

Conversion strategy None, as Kubernetes': objects are stored at the storage version and only ``apiVersion``
differs between the versions served.
"""

from __future__ import annotations

import logging
from typing import Any

from bus import crd as crds
from bus import errors, resources
from bus.meta import now, set_condition
from bus.resources import Resource
from bus.store import NatsStore

log = logging.getLogger(__name__)


def prepare_crd(obj: dict) -> dict:
    """Defaults of a new (or updated) definition, in place: names' singular and listKind, conversion None."""
    spec = obj.setdefault("spec", {})
    names = spec.setdefault("names", {})
    kind = names.get("kind") or ""
    names.setdefault("singular", kind.lower())
    names.setdefault("listKind", f"{kind}List")
    spec.setdefault("conversion", {"strategy": "None"})
    return obj


def initial_status(obj: dict, stored: list[str] | None = None) -> dict:
    """The status of a definition whose bucket exists: names accepted, Established (kube-apiserver's
    NamingConditionController and EstablishingController conditions), its storage version recorded."""
    spec = obj.get("spec") or {}
    storage = crds.storage_version(obj)
    status = dict(obj.get("status") or {})
    t = now()
    conds = status.get("conditions") or []
    conds = set_condition(conds, {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                                  "message": "no conflicts found", "lastTransitionTime": t})
    conds = set_condition(conds, {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                                  "message": "the initial names have been accepted", "lastTransitionTime": t})
    status["conditions"] = conds
    status["acceptedNames"] = dict(spec.get("names") or {})
    versions = list(stored or status.get("storedVersions") or [])
    if storage and storage not in versions:
        versions.append(storage)
    status["storedVersions"] = versions
    return status


class CustomResources:
    """The API server's side of custom resources (one per API server)."""

    def __init__(self, store: NatsStore) -> None:
        self.store = store
        self.registry = crds.CrdRegistry(store)

    async def start(self) -> None:
        await self.registry.start()
        for res in resources.custom_resources():  # made before a restart: their buckets exist (idempotent)
            await self._ensure_bucket(res)

    async def stop(self) -> None:
        await self.registry.stop()

    async def resolve(self, bus_name: str) -> Resource | None:
        """The resource a request subject names, looking a definition up when the watch has not delivered it."""
        res = resources.by_bus_name(bus_name)
        if res is not None:
            return res
        res = await self.registry.lookup(bus_name)
        return res if res is not None and self._served(res) else None

    @staticmethod
    def _served(res: Resource) -> bool:
        return any(v.served for v in res.custom.versions)

    @staticmethod
    def at_version(res: Resource, version: Any) -> Resource:
        """``res`` at the version a request names; 404 for a version the definition does not serve."""
        if res.custom is None or version in (None, ""):
            return res
        v = res.custom.version(str(version))
        if v is None or not v.served:
            raise errors.NotFound(404, f"the server could not find the requested resource "
                                       f"({res.group}/{version}, {res.plural})")
        return res.custom.at_version(res, v.name)

    async def _ensure_bucket(self, res: Resource) -> None:
        await self.store.ensure_buckets((res,))

    # ---- definitions written ----------------------------------------------------------------------------

    async def before_create(self, obj: dict, dry_run: bool) -> None:
        """A new definition: defaults, the cleanup finalizer, its bucket made (so it is Established when
        acknowledged: the first object can be created at once), its status."""
        prepare_crd(obj)
        meta = obj.setdefault("metadata", {})
        fins = list(meta.get("finalizers") or [])
        if crds.CLEANUP_FINALIZER not in fins:
            fins.append(crds.CLEANUP_FINALIZER)
        meta["finalizers"] = fins
        res = crds.resource_from_crd(obj)
        if res is not None and not dry_run:
            await self._ensure_bucket(res)
        obj["status"] = initial_status(obj)

    @staticmethod
    def before_update(obj: dict) -> None:
        """An updated definition: its defaults, and its new storage version recorded in ``status.storedVersions``
        (its status otherwise kept)."""
        prepare_crd(obj)
        if obj.get("status") is not None:
            obj["status"]["storedVersions"] = initial_status(obj)["storedVersions"]

    def after_write(self, crd: dict) -> None:
        """Serve what a definition now says on this server at once (others learn it from their watch)."""
        crds.register(crd)

    async def removed(self, crd: dict) -> None:
        """A definition is gone: its objects were deleted before its finalizer was removed; its bucket goes."""
        res = crds.resource_from_crd(crd)
        crds.unregister(crd)
        if res is not None:
            try:
                await self.store.delete_bucket(res)
            except Exception as e:  # the definition is gone either way; a leftover bucket is only storage
                log.error("could not delete the bucket of %s: %s", res.qualified, e)

    @staticmethod
    def check_create(res: Resource) -> None:
        """New objects are refused while the definition is being deleted (kube-apiserver's message)."""
        if res.custom is not None and res.custom.terminating:
            raise errors.method_not_allowed('create not allowed while custom resource definition is terminating')
