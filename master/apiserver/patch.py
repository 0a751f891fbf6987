"""Patches: JSON merge patch (RFC 7386) and JSON patch (RFC 6902, via the jsonpatch library)."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from bus import errors

MERGE = "merge"
JSON = "json"
PATCH_TYPES = {
    MERGE: MERGE,
    "application/merge-patch+json": MERGE,
    JSON: JSON,
    "application/json-patch+json": JSON,
}


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


def apply_patch(target: dict, patch: Any, patch_type: str | None) -> dict:
    kind = PATCH_TYPES.get(patch_type or MERGE)
    if kind is None:
        raise errors.ApiError(415, f"the patch type {patch_type!r} is not supported; use merge or json",
                              "UnsupportedMediaType")
    if kind == MERGE:
        if not isinstance(patch, dict):
            raise errors.bad_request("a merge patch must be a JSON object")
        return merge_patch(target, patch)
    if not isinstance(patch, list):
        raise errors.bad_request("a JSON patch must be a list of operations")
    try:
        out = jsonpatch.JsonPatch(patch).apply(target)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError, ValueError) as e:
        raise errors.ApiError(422, f"the JSON patch could not be applied: {e}", "Invalid") from None
    if not isinstance(out, dict):
        raise errors.bad_request("the JSON patch replaced the object with a non-object")
    return out
