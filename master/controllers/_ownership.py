"""ownerReferences helpers shared by the replication controller and the garbage collector
(a leading ``_`` keeps the controller manager from taking this module for a controller)."""

from __future__ import annotations

from typing import Any

from bus.client import resource_of


def owner_refs(obj: dict) -> list[dict]:
    return [r for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if isinstance(r, dict)]


def controller_ref(obj: dict) -> dict | None:
    """The ownerReference marked ``controller: true``, if any."""
    return next((r for r in owner_refs(obj) if r.get("controller")), None)


def owner_ref_to(owner: dict, controller: bool = True, block: bool = True) -> dict:
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": controller, "blockOwnerDeletion": block}


def deleting(obj: dict) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


async def patch_metadata(client: Any, plural: str, obj: dict, **fields: Any) -> dict:
    """Merge-patch metadata fields (lists are replaced whole) with the cached resourceVersion as a
    precondition: a stale cache answers 409 and the caller's reconcile is retried."""
    meta = obj["metadata"]
    body = {"metadata": {"resourceVersion": meta.get("resourceVersion"), **fields}}
    return await client.patch(resource_of(plural), meta["name"], body, meta.get("namespace"))


async def set_owner_refs(client: Any, plural: str, obj: dict, refs: list[dict]) -> dict:
    return await patch_metadata(client, plural, obj, ownerReferences=refs)
