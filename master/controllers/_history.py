"""ControllerRevisions, as Kubernetes' ``pkg/controller/history`` keeps them for StatefulSets and DaemonSets (a
leading ``_`` keeps the controller manager from taking this module for a controller).

A revision snapshots an owner's pod template as the patch that restores it (``getPatch``:
``{"spec": {"template": {..., "$patch": "replace"}}}``, what ``kubectl rollout undo`` sends back as a strategic
merge patch). Its name is ``<owner>-<hash>``, the hash an FNV-32 of the patch (plus the owner's collisionCount)
spelled with ``rand.SafeEncodeString``'s alphabet; ``revision`` numbers grow by one per new template, and going
back to an old template renumbers that revision instead of making a copy.
"""

from __future__ import annotations

from typing import Any

import orjson

from bus import errors
from bus.informer import BY_OWNER, Informer, deep_copy
from bus.meta import safe_encode
from master.controllers._ownership import owner_ref_to

HASH_LABEL = "controller.kubernetes.io/hash"  # history.ControllerRevisionHashLabel
_MAX_PREFIX = 223  # 253 less a hash and a dash


# ---- pure logic ------------------------------------------------------------------------------


def fnv32(data: bytes) -> int:
    """Go's ``hash/fnv.New32`` (FNV-1)."""
    h = 0x811C9DC5
    for b in data:
        h = ((h * 0x01000193) & 0xFFFFFFFF) ^ b
    return h


def canonical(data: Any) -> bytes:
    """The bytes a revision is hashed and compared by (Go's json.Marshal of a map sorts its keys)."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def hash_revision(data: Any, collision_count: int | None = None) -> str:
    """``history.HashControllerRevision``."""
    raw = canonical(data)
    if collision_count is not None:
        raw += str(collision_count).encode()
    return safe_encode(str(fnv32(raw)))


def revision_name(owner_name: str, hash_: str) -> str:
    return f"{owner_name[:_MAX_PREFIX]}-{hash_}"


def template_patch(owner: dict) -> dict:
    """``getPatch``: the owner's template as a patch that replaces it wholesale."""
    template = deep_copy((owner.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def template_of(revision: dict) -> dict:
    """The pod template a revision holds (its patch without the directive)."""
    t = deep_copy((((revision.get("data") or {}).get("spec") or {}).get("template")) or {})
    t.pop("$patch", None)
    return t


def apply_revision(owner: dict, revision: dict) -> dict:
    """``ApplyRevision``: a copy of the owner with the revision's template."""
    out = deep_copy(owner)
    out.setdefault("spec", {})["template"] = template_of(revision)
    return out


def new_revision(owner: dict, number: int, collision_count: int | None, labels: dict[str, str] | None = None,
                 hash_label: str = HASH_LABEL) -> dict:
    """``history.NewControllerRevision``: the owner's current template as revision ``number``, labelled with the
    template's labels and the hash, controlled by the owner."""
    data = template_patch(owner)
    h = hash_revision(data, collision_count)
    meta = owner["metadata"]
    tlabels = ((owner.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
    rmeta: dict[str, Any] = {"name": revision_name(meta["name"], h), "namespace": meta.get("namespace"),
                             "labels": {**tlabels, **(labels or {}), hash_label: h},
                             "ownerReferences": [owner_ref_to(owner)]}
    if meta.get("annotations"):
        rmeta["annotations"] = dict(meta["annotations"])  # kubectl's change-cause travels with the revision
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": rmeta, "data": data,
            "revision": number}


def by_revision(revisions: list[dict]) -> list[dict]:
    """Oldest first (``history.SortControllerRevisions``: revision, then creation time, then name)."""
    return sorted(revisions, key=lambda r: (int(r.get("revision") or 0), r["metadata"].get("creationTimestamp") or "",
                                            r["metadata"].get("name") or ""))


def next_revision(revisions: list[dict]) -> int:
    return max((int(r.get("revision") or 0) for r in revisions), default=0) + 1


def equal_revisions(revisions: list[dict], wanted: dict) -> list[dict]:
    """``history.FindEqualRevisions``: the revisions holding the same patch."""
    raw = canonical(wanted.get("data"))
    return [r for r in revisions if canonical(r.get("data")) == raw]


def to_trim(revisions: list[dict], live: set[str], limit: int) -> list[dict]:
    """The revisions to delete so that at most ``limit`` not in ``live`` (names pods or the status still use)
    remain, oldest first (``truncateHistory``)."""
    idle = [r for r in by_revision(revisions) if r["metadata"]["name"] not in live]
    return idle[:max(0, len(idle) - max(0, limit))]


# ---- acting on the API -----------------------------------------------------------------------


def owned_revisions(revisions: Informer, owner: dict) -> list[dict]:
    uid = owner["metadata"]["uid"]
    return [r for r in revisions.by_index(BY_OWNER, uid)
            if any(ref.get("uid") == uid and ref.get("controller") for ref in r["metadata"].get("ownerReferences") or ())]


async def create_revision(client: Any, owner: dict, revision: dict, collision_count: int,
                          hash_label: str = HASH_LABEL, extra_labels: dict[str, str] | None = None
                          ) -> tuple[dict, int]:
    """``controllerHistory.CreateControllerRevision``: create it; when the name is taken by a revision with other
    data, bump the collision count and try the next hash. Returns (the revision, the collision count)."""
    while True:
        try:
            return await client.create(revision), collision_count
        except errors.AlreadyExists:
            meta = revision["metadata"]
            existing = await client.get("controllerrevisions", meta["name"], meta.get("namespace"))
            same_owner = any(r.get("uid") == owner["metadata"]["uid"]
                             for r in existing["metadata"].get("ownerReferences") or ())
            if same_owner and canonical(existing.get("data")) == canonical(revision.get("data")):
                return existing, collision_count
            collision_count += 1
            revision = new_revision(owner, int(revision.get("revision") or 1), collision_count, extra_labels,
                                    hash_label)


async def renumber(client: Any, revision: dict, number: int) -> dict:
    """``UpdateControllerRevision``: give an existing revision a new number (a rollback to its template)."""
    if int(revision.get("revision") or 0) == number:
        return revision
    new = deep_copy(revision)
    new["revision"] = number
    return await client.update(new)


async def trim(client: Any, revisions: list[dict], live: set[str], limit: int) -> None:
    for r in to_trim(revisions, live, limit):
        try:
            await client.delete("controllerrevisions", r["metadata"]["name"], r["metadata"].get("namespace"),
                                preconditions={"uid": r["metadata"]["uid"]})
        except (errors.NotFound, errors.Conflict):
            pass
