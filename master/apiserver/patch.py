"""Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902, via the jsonpatch library), strategic merge
patch (:mod:`smp`) and server-side apply (:mod:`ssa`, applied by the handlers since it may create).

``patchType`` on the bus is a short name or the HTTP Content-Type kubectl sends."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from bus import errors
from master.apiserver.smp import PatchError, strategic_merge_patch

MERGE = "merge"
JSON = "json"
STRATEGIC = "strategic"
APPLY = "apply"
PATCH_TYPES = {
    MERGE: MERGE,
    "application/merge-patch+json": MERGE,
    JSON: JSON,
    "application/json-patch+json": JSON,
    STRATEGIC: STRATEGIC,
    "application/strategic-merge-patch+json": STRATEGIC,
    APPLY: APPLY,
    "application/apply-patch+yaml": APPLY,
    "application/apply-patch+json": APPLY,
}


def patch_kind(patch_type: str | None, force: Any = None) -> str:
    """The patch kind for a ``patchType`` option (415 when unknown)."""
    kind = PATCH_TYPES.get(patch_type or MERGE)
    if kind is None:
        raise errors.ApiError(415, f"the patch type {patch_type!r} is not supported; use one of "
                              + ", ".join(k for k in PATCH_TYPES if "/" in k), "UnsupportedMediaType")
    if force and kind != APPLY:
        raise errors.invalid("PatchOptions", "", [errors.Cause(
            "force", "Forbidden: may not be specified for non-apply patch", "FieldValueForbidden")], "meta.k8s.io")
    return kind


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def apply_patch(target: dict, patch: Any, patch_type: str | None, kind: str = "") -> dict:
    """``target`` patched; ``kind`` (the object's kind) gives strategic merge patch its list merge keys."""
    ptype = patch_kind(patch_type)
    if ptype == MERGE:
        if not isinstance(patch, dict):
            raise errors.bad_request("a merge patch must be a JSON object")
        return merge_patch(target, patch)
    if ptype == STRATEGIC:
        try:
            return strategic_merge_patch(target, patch, kind)
        except PatchError as e:
            cause = errors.Cause(e.field, e.message).to_dict()
            where = f"{e.field}: " if e.field else ""
            msg = f"the strategic merge patch could not be applied: {where}{e.message}"
            if e.code == 400:
                raise errors.BadRequest(400, msg, details={"kind": kind, "causes": [cause]}) from None
            raise errors.Invalid(422, msg, "Invalid", {"kind": kind, "causes": [cause]}) from None
    if ptype == APPLY:
        raise errors.bad_request("an apply patch is applied by the apiserver's handlers, not as a patch")
    if not isinstance(patch, list):
        raise errors.bad_request("a JSON patch must be a list of operations")
    try:
        out = jsonpatch.JsonPatch(patch).apply(target)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError, ValueError) as e:
        raise errors.ApiError(422, f"the JSON patch could not be applied: {e}", "Invalid") from None
    if not isinstance(out, dict):
        raise errors.bad_request("the JSON patch replaced the object with a non-object")
    return out
