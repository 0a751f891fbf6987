"""Strategic merge patch (``application/strategic-merge-patch+json``), as apimachinery's strategicpatch
applies it on the server (``StrategicMergeMapPatch``: parallel lists merged, unmatched nulls ignored).

- maps merge recursively; ``null`` deletes a key;
- lists whose field has patch strategy ``merge`` (see :mod:`patchmeta`) merge: lists of maps by their merge
  key (``containers`` by ``name``, ``ports`` by ``containerPort``...), lists of primitives as sets
  (``finalizers``); every other list is replaced;
- directives: ``$patch: replace|delete|merge`` (in a map; ``replace`` / ``delete`` as a list element),
  ``$retainKeys``, ``$deleteFromPrimitiveList/<field>``, ``$setElementOrder/<field>``.

The inputs are never modified. Errors raise :class:`PatchError` with the field path of the patch.
"""

from __future__ import annotations

import copy
from typing import Any

from master.apiserver.patchmeta import Field, lookup, root_type

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/"
SET_ELEMENT_ORDER = "$setElementOrder/"
_DELETED = object()  # a map removed by ``$patch: delete``


class PatchError(Exception):
    def __init__(self, field: str, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.code = code


def strategic_merge_patch(original: dict, patch: dict, kind: str) -> dict:
    """``original`` with ``patch`` applied, for an object of ``kind`` (a new dict)."""
    if not isinstance(patch, dict):
        raise PatchError("", "a strategic merge patch must be a JSON object", 400)
    out = _merge_map(original if isinstance(original, dict) else {}, patch, root_type(kind), "")
    return {} if out is _DELETED else out


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _is_directive_key(k: str) -> bool:
    return k in (DIRECTIVE, RETAIN_KEYS) or k.startswith(SET_ELEMENT_ORDER) or k.startswith(DELETE_FROM_PRIMITIVE_LIST)


def _merge_map(original: dict | None, patch: dict, type_name: str | None, path: str) -> Any:
    directive = patch.get(DIRECTIVE)
    if directive is not None:
        if directive == "replace":
            return _merge_map(None, {k: v for k, v in patch.items() if k != DIRECTIVE}, type_name, path)
        if directive == "delete":
            return _DELETED
        if directive != "merge":
            raise PatchError(_join(path, DIRECTIVE), f'Unsupported value: "{directive}": supported values: '
                             '"replace", "merge", "delete"')
    out = dict(original) if isinstance(original, dict) else {}
    if RETAIN_KEYS in patch:
        out = _retain_keys(out, patch, path)
    done = _set_element_orders(out, patch, type_name, path)
    for k, v in patch.items():
        if k in done or k in (DIRECTIVE, RETAIN_KEYS) or k.startswith(SET_ELEMENT_ORDER):
            continue
        if k.startswith(DELETE_FROM_PRIMITIVE_LIST):
            name = k[len(DELETE_FROM_PRIMITIVE_LIST):]
            if not isinstance(v, list):
                raise PatchError(_join(path, k), "invalid patch format for the primitive list: must be a list", 400)
            cur = out.get(name)
            if isinstance(cur, list):
                out[name] = [x for x in cur if x not in v]
            continue
        if v is None:
            out.pop(k, None)
            continue
        meta = lookup(type_name, k)
        cur = out.get(k)
        child = _join(path, k)
        if isinstance(v, dict):
            merged = _merge_map(cur if isinstance(cur, dict) else None, v, meta.type, child)
            if merged is _DELETED:
                out.pop(k, None)
            else:
                out[k] = merged
        elif isinstance(v, list):
            out[k] = _merge_list(cur if isinstance(cur, list) else None, v, meta, child)
        else:
            out[k] = v
    return out


def _retain_keys(out: dict, patch: dict, path: str) -> dict:
    keys = patch[RETAIN_KEYS]
    if not isinstance(keys, list):
        raise PatchError(_join(path, RETAIN_KEYS), "invalid patch format for retainKeys: must be a list", 400)
    for k, v in patch.items():
        if v is not None and not _is_directive_key(k) and k not in keys:
            raise PatchError(_join(path, RETAIN_KEYS), f'invalid patch format for retainKeys: "{k}" is in the '
                             "patch but not in the $retainKeys list", 400)
    return {k: v for k, v in out.items() if k in keys}


def _set_element_orders(out: dict, patch: dict, type_name: str | None, path: str) -> set[str]:
    """Merge each list that has a ``$setElementOrder`` and order it; returns the names done."""
    done: set[str] = set()
    for k, order in patch.items():
        if not k.startswith(SET_ELEMENT_ORDER):
            continue
        name = k[len(SET_ELEMENT_ORDER):]
        child = _join(path, k)
        if not name or not isinstance(order, list):
            raise PatchError(child, "invalid patch format for $setElementOrder: must be a list", 400)
        meta = lookup(type_name, name)
        orig, plist = out.get(name), patch.get(name)
        orig = orig if isinstance(orig, list) else None
        if plist is not None and not isinstance(plist, list):
            raise PatchError(_join(path, name), "must be a list, as its $setElementOrder", 400)
        key = meta.merge_key if any(isinstance(x, dict) for x in (order or []) + (plist or []) + (orig or [])) else ""
        _check_order(plist or [], order, key, child)
        if orig is None and plist is None:
            continue
        merged = _merge_list(orig or [], plist or [], meta, _join(path, name)) if plist is not None else orig
        if key:
            _require_keys(order, key, child)
        in_order = _keys_of(order, key)
        patch_items = [x for x in merged if _item_key(x, key) in in_order]
        server_only = [x for x in merged if _item_key(x, key) not in in_order]
        out[name] = _normalize(patch_items, server_only, order, orig or [], key)
        done.update((name, k))
    return done


def _check_order(plist: list, order: list, key: str, path: str) -> None:
    """The patch list's items (deletions aside) appear in $setElementOrder in the same relative order."""
    items = [x for x in plist if not (isinstance(x, dict) and DIRECTIVE in x)]
    i = j = 0
    while i < len(items) and j < len(order):
        if _item_key(items[i], key) == _item_key(order[j], key):
            i += 1
        j += 1
    if i < len(items):
        raise PatchError(path, f"the order in the patch list {items} doesn't match the $setElementOrder list {order}",
                         400)


def _merge_list(orig: list | None, patch: list, meta: Field, path: str) -> list:
    if meta.strategy != "merge":  # replace
        out = [_merge_map(None, x, meta.type, f"{path}[{i}]") if isinstance(x, dict) else copy.deepcopy(x)
               for i, x in enumerate(patch)]
        return [x for x in out if x is not _DELETED]
    orig = list(orig or [])
    if not orig and not patch:
        return orig
    kinds = {isinstance(x, dict) for x in orig + patch}
    if len(kinds) > 1 or any(isinstance(x, list) for x in orig + patch):
        raise PatchError(path, "list element types are not identical (or lists of lists)")
    if kinds != {True}:  # primitives: a set
        merged = []
        for x in orig + patch:
            if x not in merged:
                merged.append(x)
        patch_items = [x for x in merged if x in patch]
        server_only = [x for x in merged if x not in patch]
        return _normalize(patch_items, server_only, patch, orig, "")
    key = meta.merge_key
    if not key:
        raise PatchError(path, "cannot merge lists without a merge key")
    plain, replace = [], False
    for i, item in enumerate(patch):
        d = item.get(DIRECTIVE)
        if d is None:
            plain.append((i, item))
        elif d == "delete":
            if key not in item:
                raise PatchError(f"{path}[{i}]", f"map: {item} does not contain declared merge key: {key}")
            orig = [o for o in orig if not (isinstance(o, dict) and o.get(key, _DELETED) == item[key])]
        elif d == "replace":
            replace = True
        elif d == "merge":
            raise PatchError(f"{path}[{i}]", "merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(f"{path}[{i}].{DIRECTIVE}", f'Unsupported value: "{d}": supported values: '
                             '"replace", "delete"')
    if replace:
        return [_merge_map(None, item, meta.type, f"{path}[{i}]") for i, item in plain]
    merged = list(orig)
    for i, item in plain:
        if key not in item:
            raise PatchError(f"{path}[{i}]", f"map: {item} does not contain declared merge key: {key}")
        at = next((n for n, o in enumerate(merged) if isinstance(o, dict) and key in o and o[key] == item[key]), None)
        if at is None:
            merged.append(_merge_map(None, item, meta.type, f"{path}[{i}]"))
        else:
            merged[at] = _merge_map(merged[at], item, meta.type, f"{path}[{i}]")
    merged = [x for x in merged if x is not _DELETED]
    patch_keys = {_item_key(item, key) for _, item in plain}
    patch_items = [x for x in merged if _item_key(x, key) in patch_keys]
    server_only = [x for x in merged if _item_key(x, key) not in patch_keys]
    return _normalize(patch_items, server_only, [item for _, item in plain], orig, key)


def _require_keys(items: list, key: str, path: str) -> None:
    for i, x in enumerate(items):
        if not isinstance(x, dict) or key not in x:
            raise PatchError(f"{path}[{i}]", f"map: {x} does not contain declared merge key: {key}", 400)


class _Key:
    """A hashable identity of a list item: its merge key's value, or the primitive itself."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Key) or isinstance(self.v, bool) != isinstance(other.v, bool):
            return False
        return bool(self.v == other.v)

    def __hash__(self) -> int:
        try:
            return hash(self.v)
        except TypeError:
            return hash(repr(self.v))


def _item_key(item: Any, key: str) -> _Key:
    if key and isinstance(item, dict):
        return _Key(item.get(key))
    return _Key(item)


def _keys_of(items: list, key: str) -> set[_Key]:
    return {_item_key(x, key) for x in items}


def _index(order: list, item: Any, key: str) -> int:
    k = _item_key(item, key)
    for i, o in enumerate(order):
        if _item_key(o, key) == k:
            return i
    return -1


def _sort_by(items: list, order: list, key: str) -> list:
    """Stable sort of ``items`` by their position in ``order`` (items not in it last, in their order)."""
    return sorted(items, key=lambda x: (i if (i := _index(order, x, key)) >= 0 else len(order)))


def _normalize(patch_items: list, server_only: list, patch_order: list, server_order: list, key: str) -> list:
    """apimachinery's normalizeElementOrder: patch items in the patch's order, server-only items in the
    live order, interleaved where the live order relates them (patch items first where it does not)."""
    right = _sort_by(patch_items, patch_order, key)
    left = _sort_by(server_only, server_order, key)
    out: list = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li, ri = _index(server_order, left[i], key), _index(server_order, right[j], key)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out
