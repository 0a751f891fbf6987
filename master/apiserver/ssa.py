"""Server-side apply and field ownership (``metadata.managedFields``), after Kubernetes' structured-merge-diff.

A *field set* is a set of paths; a path is a tuple of elements as ``fieldsV1`` spells them: ``f:<field>``,
``k:{"name":"web"}`` (an item of an associative list, keyed as :mod:`patchmeta` says), ``v:"x"`` (an item of a
set of primitives). Other lists, atomic structs, scalars and empty maps are leaves.

- :func:`apply` merges an applied configuration into the live object for a field manager: conflicts (a field
  another manager owns would change value) are a 409 unless ``force``, which takes them over; fields the
  manager applied before and omits now are removed unless another manager owns them (or something below them).
- :func:`track_create` / :func:`track_write` record an ``Update`` entry for what a create, update or patch
  changed, taking those fields from other managers. Without a ``fieldManager`` and with no managedFields on
  the object nothing is computed (internal controllers pay nothing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

import orjson

from bus import errors
from bus.meta import deep_copy, now
from bus.resources import Resource
from master.apiserver.patchmeta import Field, lookup, root_type
from master.apiserver.strategy import same_but_status

Path = tuple[str, ...]
APPLY, UPDATE = "Apply", "Update"
BEFORE_FIRST_APPLY = "before-first-apply"
DEFAULT_MANAGER = "k8n"  # writes without a fieldManager to an object that already tracks ownership
MAX_MANAGER_LEN = 128
_ITEM = "<item>"  # value recorded for a list item's own path
_SERVER_META = frozenset({"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                          "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"})


@dataclass
class Entry:
    manager: str
    operation: str
    api_version: str
    time: str | None
    subresource: str | None
    fields: set[Path] = field(default_factory=set)

    def same(self, manager: str, operation: str, subresource: str | None) -> bool:
        return (self.manager, self.operation, self.subresource or None) == (manager, operation, subresource or None)

    def who(self) -> str:
        """How Kubernetes names a manager in conflict messages."""
        s = json.dumps(self.manager)
        if self.subresource:
            s += f" with subresource {json.dumps(self.subresource)}"
        return f"{s} using {self.api_version}" if self.operation == UPDATE else s


# ---- field sets ------------------------------------------------------------------------------------


def _json(v: Any) -> str:
    """Compact JSON with sorted keys (orjson writes what ``json.dumps(sort_keys, separators, ensure_ascii=False)``
    does, faster; integers beyond 64 bits fall back)."""
    try:
        return orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _same(a: Any, b: Any) -> bool:
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def item_element(item: Any, meta: Field) -> str | None:
    """``k:{...}`` for an item of an associative list, None when it lacks a key field."""
    if not isinstance(item, dict):
        return None
    kv = {}
    for k in meta.map_keys:
        v = item.get(k, meta.key_defaults.get(k))
        if v is None:
            if k in item or len(meta.map_keys) == 1:
                return None
            continue  # an optional part of a composite key
        kv[k] = v
    return "k:" + _json(kv) if kv else None


def leaves(obj: dict | None, kind: str) -> dict[Path, Any]:
    """Every owned path of ``obj`` with its value (list items map to a marker)."""
    out: dict[Path, Any] = {}
    if isinstance(obj, dict):
        _walk_map(obj, (), root_type(kind), out)
    return out


def _walk_map(d: dict, path: Path, type_name: str | None, out: dict) -> None:
    for k, v in d.items():
        if v is None or (not path and k in ("apiVersion", "kind")) or (path == ("f:metadata",) and k in _SERVER_META):
            continue
        p = path + (f"f:{k}",)
        if p == ("f:metadata",) and isinstance(v, dict) and not v:
            continue
        _walk_value(v, p, lookup(type_name, k), out)


def _walk_value(v: Any, p: Path, meta: Field, out: dict) -> None:
    if isinstance(v, dict):
        if v and not meta.atomic:
            _walk_map(v, p, meta.type, out)
            return
    elif isinstance(v, list) and v:
        if meta.list_type == "map":
            elems = [item_element(x, meta) for x in v]
            if None not in elems:
                for x, e in zip(v, elems):
                    out[p + (e,)] = _ITEM
                    _walk_map(x, p + (e,), meta.type, out)
                return
        elif meta.list_type == "set" and not any(isinstance(x, (dict, list)) for x in v):
            for x in v:
                out[p + ("v:" + _json(x),)] = _ITEM
            return
    out[p] = v


def _in_scope(p: Path, res: Resource, subresource: str | None) -> bool:
    if subresource == "scale":
        return p == ("f:spec", "f:replicas")
    if not res.has_status:
        return True
    return (p[0] == "f:status") == (subresource == "status")


def _prefixes(paths: Iterable[Path]) -> set[Path]:
    out: set[Path] = set()
    for p in paths:
        for i in range(1, len(p) + 1):
            out.add(p[:i])
    return out


def path_string(p: Path) -> str:
    """``.spec.template.spec.containers[name="web"].image`` as structured-merge-diff prints paths."""
    s = ""
    for e in p:
        tag, rest = e[:2], e[2:]
        if tag == "f:":
            s += "." + rest
        elif tag == "k:":
            kv = json.loads(rest)
            s += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in kv.items()) + "]"
        elif tag == "v:":
            s += f"[={rest}]"
        else:
            s += f"[{rest}]"
    return s


def encode_fields(paths: set[Path]) -> dict:
    """The ``fieldsV1`` form: a trie of path elements; ``"."`` marks a member that also has children."""
    root: dict = {}
    for p in paths:
        node = root
        for e in p:
            child = node.get(e)
            if child is None:
                child = node[e] = {}
            node = child
        node["."] = None  # a member: marked now, kept below only when it also has children
    return _sorted(root)


def _sorted(node: dict) -> dict:
    """Keys in order ("." sorts before every ``f:``, ``k:`` and ``v:`` element), a member's mark only beside children."""
    out = {}
    for k in sorted(node):
        v = node[k]
        if v is None:
            if len(node) > 1:
                out["."] = {}
        else:
            out[k] = _sorted(v) if v else {}
    return out


def _trie_map(d: dict, type_name: str | None, top: bool, skip_status: bool) -> dict:
    """The ``fieldsV1`` trie of every owned path under ``d`` built in one walk (what ``encode_fields(leaves())``
    gives, keys in order): a create's field set without the intermediate path sets."""
    node: dict = {}
    for k in sorted(d):
        v = d[k]
        if v is None:
            continue
        if top:
            if k in ("apiVersion", "kind") or (k == "status" and skip_status):
                continue
            if k == "metadata":
                if isinstance(v, dict):
                    v = {mk: mv for mk, mv in v.items() if mk not in _SERVER_META}
                    if not v:
                        continue
        meta = lookup(type_name, k)
        node["f:" + k] = _trie_value(v, meta, skip_status)
    return node


def _trie_value(v: Any, meta: Field, skip_status: bool) -> dict:
    if isinstance(v, dict):
        if v and not meta.atomic:
            return _trie_map(v, meta.type, False, skip_status)
    elif isinstance(v, list) and v:
        if meta.list_type == "map":
            elems = [item_element(x, meta) for x in v]
            if None not in elems:
                items = {}
                for x, e in zip(v, elems):
                    child = _trie_map(x, meta.type, False, skip_status)
                    items[e] = {".": {}, **child} if child else {}
                return {e: items[e] for e in sorted(items)}
        elif meta.list_type == "set" and not any(isinstance(x, (dict, list)) for x in v):
            return {e: {} for e in sorted("v:" + _json(x) for x in v)}
    return {}


def decode_fields(node: Any, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(node, dict):
        return out
    for k, v in node.items():
        if k == ".":
            if prefix:
                out.add(prefix)
        elif isinstance(v, dict) and v:
            out |= decode_fields(v, prefix + (k,))
        else:
            out.add(prefix + (k,))
    return out


def decode_managed(raw: Any) -> list[Entry]:
    out = []
    for e in raw if isinstance(raw, list) else []:
        if not isinstance(e, dict) or not isinstance(e.get("manager"), str):
            continue
        if e.get("operation") not in (APPLY, UPDATE):
            continue
        out.append(Entry(e["manager"], e["operation"], str(e.get("apiVersion") or ""), e.get("time"),
                         e.get("subresource") or None, decode_fields(e.get("fieldsV1"))))
    return out


def _store(obj: dict, entries: list[Entry], present: set[Path], only_under: str | None = None) -> dict:
    """Write ``entries`` (pruned to paths that exist, empty ones dropped) into ``obj``'s metadata; ``only_under``:
    ``present`` covers that top-level field alone, and only paths under it are pruned."""
    encoded = []
    for e in entries:
        if only_under is None:
            e.fields &= present
        else:
            e.fields = {p for p in e.fields if p[0] != only_under or p in present}
        if not e.fields:
            continue
        d = {"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
             "time": e.time or now(), "fieldsType": "FieldsV1", "fieldsV1": encode_fields(e.fields)}
        if e.subresource:
            d["subresource"] = e.subresource
        encoded.append(d)
    meta = dict(obj.get("metadata") or {})
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)
    obj["metadata"] = meta
    return obj


def _entry(entries: list[Entry], res: Resource, manager: str, operation: str, subresource: str | None) -> Entry:
    for e in entries:
        if e.same(manager, operation, subresource):
            e.api_version = res.api_version
            return e
    e = Entry(manager, operation, res.api_version, None, subresource)
    entries.append(e)
    return e


# ---- options ---------------------------------------------------------------------------------------


def field_manager(options: dict, verb: str = "patch") -> str | None:
    m = options.get("fieldManager")
    if m in (None, ""):
        return None
    kind = f"{verb.capitalize()}Options"
    if not isinstance(m, str):
        raise errors.invalid(kind, "", [errors.Cause("fieldManager", "Invalid value: must be a string")],
                             "meta.k8s.io")
    if len(m.encode()) > MAX_MANAGER_LEN:
        raise errors.invalid(kind, "", [errors.Cause(
            "fieldManager", f"Too long: may not be more than {MAX_MANAGER_LEN} bytes", "FieldValueTooLong")],
            "meta.k8s.io")
    if not m.isprintable():
        raise errors.invalid(kind, "", [errors.Cause(
            "fieldManager", f"Invalid value: {json.dumps(m)}: must only contain printable characters")],
            "meta.k8s.io")
    return m


def apply_options(options: dict) -> tuple[str, bool]:
    manager = field_manager(options)
    if manager is None:
        raise errors.invalid("PatchOptions", "", [errors.Cause(
            "fieldManager", "Required value: fieldManager is required for apply requests", "FieldValueRequired")],
            "meta.k8s.io")
    force = options.get("force")
    if force is not None and not isinstance(force, bool):
        raise errors.bad_request("force must be a boolean")
    return manager, bool(force)


# ---- apply -----------------------------------------------------------------------------------------


def _config(res: Resource, config: Any, name: str, namespace: str | None) -> dict:
    if not isinstance(config, dict):
        raise errors.bad_request("the apply patch must be an object")
    for f, label in (("kind", "Kind"), ("apiVersion", "apiVersion")):
        if not config.get(f):
            raise errors.bad_request(f"Object '{label}' is missing in the apply patch")
    meta = config.get("metadata")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise errors.invalid(res.kind, name, [errors.Cause("metadata", "Invalid value: must be an object")], res.group)
    if meta.get("managedFields") is not None:
        raise errors.bad_request("metadata.managedFields must be nil")
    if meta.get("name") not in (None, name):
        raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
    if res.namespaced and meta.get("namespace") not in (None, "", namespace):
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request")
    cfg = _without_nulls(config)
    cfg.setdefault("metadata", {})["name"] = name
    if res.has_status:
        cfg.pop("status", None)  # owned through the status subresource
    return cfg


def _without_nulls(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _without_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_without_nulls(x) for x in v]
    return v


def apply(res: Resource, live: dict | None, config: Any, manager: str, force: bool, name: str,
          namespace: str | None = None) -> dict:
    """The object after ``manager`` applies ``config`` to ``live`` (None: it does not exist yet), with its
    managedFields; raises a 409 listing the conflicts unless ``force``."""
    cfg = _config(res, config, name, namespace)
    kind = res.kind
    live_l = leaves(live, kind)
    entries = decode_managed((live or {}).get("metadata", {}).get("managedFields"))
    if live is not None and not entries and live_l:
        entries = [Entry(BEFORE_FIRST_APPLY, UPDATE, res.api_version, now(), None, set(live_l))]
    applied = {p for p in leaves(cfg, kind) if _in_scope(p, res, None)}
    me = next((e for e in entries if e.same(manager, APPLY, None)), None)
    before = set(me.fields) if me else set()
    try:
        merged = merge(live or {}, cfg, root_type(kind), "")
    except _BadConfig as e:
        raise errors.invalid(kind, name, [e.cause], res.group) from None
    merged_l = leaves(merged, kind)
    changed = {p for p, v in merged_l.items() if p not in live_l or not _same(live_l[p], v)}
    changed |= set(live_l) - set(merged_l)
    conflicts = [(e, e.fields & changed) for e in entries if e is not me and e.fields & changed]
    if conflicts and not force and manager == KUBECTL:
        # kube-apiserver's upgrade from client-side apply: what the last-applied annotation set, and the object
        # still holds, is kubectl's own, whoever recorded it (kubectl-client-side-apply, before-first-apply, ...)
        allowed = _from_last_applied(live, live_l, kind)
        if not any(c - allowed for _, c in conflicts):
            force = True
        else:
            conflicts = [(e, c - allowed) for e, c in conflicts if c - allowed]
    if conflicts and not force:
        raise conflict_error(conflicts)
    for e, c in conflicts:
        e.fields -= c
    held = _prefixes(f for e in entries if e is not me for f in e.fields)
    kept = _prefixes(applied)  # e.g. a map applied empty before and with members now
    gone = {p for p in before - applied if p not in held and p not in kept}
    if gone:
        merged = remove_paths(merged, gone, kind)
        merged_l = leaves(merged, kind)
    me = _entry(entries, res, manager, APPLY, None)
    me.fields = set(applied)
    if me.fields != before or me.time is None:
        me.time = now()
    if manager == KUBECTL and _last_applied(live) is not None:
        merged = _set_last_applied(merged, cfg)
    return _store(merged, entries, _prefixes(merged_l))


KUBECTL = "kubectl"  # the manager kube-apiserver upgrades client-side apply for
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _last_applied(obj: dict | None) -> str | None:
    value = (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    return value if isinstance(value, str) and value else None


def _from_last_applied(live: dict | None, live_l: dict[Path, Any], kind: str) -> set[Path]:
    """The fields of the last client-side apply whose value the object still holds (lastAppliedManager)."""
    raw = _last_applied(live)
    try:
        last = json.loads(raw) if raw else None
    except ValueError:
        return set()
    if not isinstance(last, dict) or last.get("apiVersion") != (live or {}).get("apiVersion"):
        return set()
    return {p for p, v in leaves(last, kind).items() if p in live_l and _same(live_l[p], v)}


def _set_last_applied(obj: dict, cfg: dict) -> dict:
    """kube-apiserver's lastAppliedUpdater: an apply by kubectl keeps the client-side annotation in step, so a
    later client-side apply still works (the applied configuration, as Go's JSON encoder writes it)."""
    applied = deep_copy(cfg)
    notes = (applied.get("metadata") or {}).get("annotations")
    if isinstance(notes, dict):
        notes.pop(LAST_APPLIED, None)
        if not notes:
            applied["metadata"].pop("annotations")
    text = json.dumps(applied, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"
    meta = obj.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), LAST_APPLIED: text}
    return obj


def conflict_error(conflicts: list[tuple[Entry, set[Path]]]) -> errors.Conflict:
    pairs = [(e.who(), path_string(p)) for e, ps in conflicts for p in ps]
    pairs.sort()
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {who}", "field": f} for who, f in pairs]
    if len(pairs) == 1:
        msg = f"Apply failed with 1 conflict: conflict with {pairs[0][0]}: {pairs[0][1]}"
    else:
        lines, last = [], None
        for who, f in pairs:
            if who != last:
                lines.append(f"conflicts with {who}:")
                last = who
            lines.append(f"- {f}")
        msg = f"Apply failed with {len(pairs)} conflicts: " + "\n".join(lines)
    return errors.Conflict(409, msg, "Conflict", {"causes": causes})


class _BadConfig(Exception):
    def __init__(self, cause: errors.Cause) -> None:
        super().__init__(cause.message)
        self.cause = cause


def merge(live: Any, cfg: dict, type_name: str | None, path: str) -> dict:
    """The applied configuration merged into the live value: maps recursively, associative lists by key,
    sets as unions, everything else replaced."""
    out = dict(live) if isinstance(live, dict) else {}
    for k, v in cfg.items():
        meta = lookup(type_name, k)
        cur = out.get(k)
        child = f"{path}.{k}" if path else k
        if isinstance(v, dict) and not meta.atomic:
            out[k] = merge(cur if isinstance(cur, dict) else {}, v, meta.type, child)
        elif isinstance(v, list) and meta.list_type == "map" and all(isinstance(x, dict) for x in v):
            out[k] = _merge_assoc(cur if isinstance(cur, list) else [], v, meta, child)
        elif isinstance(v, list) and meta.list_type == "set":
            base = list(cur) if isinstance(cur, list) else []
            for x in v:
                if x not in base:
                    base.append(x)
            out[k] = base
        else:
            out[k] = deep_copy(v) if isinstance(v, (dict, list)) else v
    return out


def _merge_assoc(live: list, cfg: list, meta: Field, path: str) -> list:
    elems = []
    for i, item in enumerate(cfg):
        e = item_element(item, meta)
        if e is None:
            raise _BadConfig(errors.Cause(f"{path}[{i}]", "Required value: associative list with keys "
                                          f"{list(meta.map_keys)} has an element that omits a key field",
                                          "FieldValueRequired"))
        if e in elems:
            raise _BadConfig(errors.Cause(f"{path}[{i}]", f"Duplicate value: {e[2:]}", "FieldValueDuplicate"))
        elems.append(e)
    live_elems = [item_element(x, meta) for x in live]
    lhs = {e: x for e, x in zip(live_elems, live) if e is not None}
    lorder = [e for e in dict.fromkeys(live_elems) if e is not None]
    rhs = dict(zip(elems, cfg))
    shared = [e for e in elems if e in lhs]  # structured-merge-diff's order: live-only items keep their
    out: list = []                            # place, shared and new items follow the applied order
    li = ri = 0
    while li < len(lorder) or ri < len(elems):
        if li < len(lorder) and ri < len(elems):
            e = lorder[li]
            if e == elems[ri]:
                out.append(merge(lhs[e], rhs[e], meta.type, path))
                li, ri = li + 1, ri + 1
                if shared and shared[0] == e:
                    shared.pop(0)
                continue
            if e in rhs and shared and shared[0] != e:
                li += 1
                continue
        if li < len(lorder) and lorder[li] not in rhs:
            out.append(lhs[lorder[li]])
            li += 1
            continue
        if ri < len(elems):
            e = elems[ri]
            out.append(merge(lhs.get(e, {}), rhs[e], meta.type, path))
            ri += 1
            if shared and shared[0] == e:
                shared.pop(0)
            continue
        li += 1  # a shared live item already emitted in the applied order
    out.extend(x for x, e in zip(live, live_elems) if e is None)  # items without a key are kept as they are
    return out


def remove_paths(obj: dict, paths: set[Path], kind: str) -> dict:
    """``obj`` without the values at ``paths``; maps and lists emptied by a removal go too."""
    obj = deep_copy(obj)
    for p in sorted(paths, key=len):  # an item before its fields (they name it)
        _remove(obj, p, kind)
    return obj


def _remove(obj: dict, p: Path, kind: str) -> None:
    chain: list[tuple[Any, Any]] = []  # (container, key or index) down to the value
    node: Any = obj
    type_name: str | None = root_type(kind)
    meta = Field()
    item_keys: tuple[str, ...] = ()  # the key fields of the list item ``node`` is, if it is one
    for e in p:
        tag, rest = e[:2], e[2:]
        if tag == "f:" and isinstance(node, dict) and rest in node:
            if rest in item_keys and e is p[-1]:
                return  # an item that stays keeps its key (the item itself goes only with its own path)
            item_keys = ()
            meta = lookup(type_name, rest)
            type_name = meta.type
            chain.append((node, rest))
            node = node[rest]
        elif tag == "k:" and isinstance(node, list):
            at = next((i for i, x in enumerate(node) if item_element(x, meta) == e), None)
            if at is None:
                return
            chain.append((node, at))
            node = node[at]
            item_keys = meta.map_keys
        elif tag == "v:" and isinstance(node, list):
            try:
                value = json.loads(rest)
            except ValueError:
                return
            at = next((i for i, x in enumerate(node) if _same(x, value)), None)
            if at is None:
                return
            chain.append((node, at))
            node = node[at]
        else:
            return
    while chain:
        container, key = chain.pop()
        del container[key]
        if container or len(chain) < 2:  # keep top-level fields (spec, metadata)
            break


# ---- updates ---------------------------------------------------------------------------------------


def track_create(res: Resource, obj: dict, options: dict) -> None:
    """A create with a fieldManager owns every field it set (in place)."""
    manager = field_manager(options, "create")
    if manager is None:
        return
    trie = _trie_map(obj, root_type(res.kind), True, res.has_status)
    meta = dict(obj.get("metadata") or {})
    if trie:
        meta["managedFields"] = [{"manager": manager, "operation": UPDATE, "apiVersion": res.api_version,
                                  "time": now(), "fieldsType": "FieldsV1", "fieldsV1": trie}]
    else:
        meta.pop("managedFields", None)
    obj["metadata"] = meta


def track_write(res: Resource, old: dict, new: dict, options: dict, subresource: str | None = None) -> None:
    """Record on ``new`` (its metadata is replaced, not mutated) an Update entry for the fields this
    update / patch changed from ``old``. Apply patches were recorded by :func:`apply`."""
    if options.get("patchType") in APPLY_PATCH_TYPES:
        return
    manager = field_manager(options, "update")
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    given = new_meta.get("managedFields") if subresource is None else None
    if given and given != old_meta.get("managedFields"):
        entries = decode_managed(given)  # a client may set managedFields (e.g. [{}] clears them)
    elif manager is None and not old_meta.get("managedFields"):
        return
    else:
        entries = decode_managed(old_meta.get("managedFields"))
    # a status write that changed nothing else walks the two statuses only: the rest of the object is the one the
    # entries were last pruned against, so only their status paths can have gone
    only_status = subresource == "status" and same_but_status(old, new)
    walk = _status_leaves if only_status else leaves
    old_l, new_l = walk(old, res.kind), walk(new, res.kind)
    changed = {p for p, v in new_l.items() if _in_scope(p, res, subresource)
               and (p not in old_l or not _same(old_l[p], v))}
    if not changed and not entries:
        _store(new, [], set())
        return
    me = _entry(entries, res, manager or DEFAULT_MANAGER, UPDATE, subresource)
    before = set(me.fields)
    for e in entries:
        if e is not me:
            e.fields -= changed
    me.fields |= changed
    if me.fields != before or me.time is None:
        me.time = now()
    _store(new, entries, _prefixes(new_l), "f:status" if only_status else None)


def _status_leaves(obj: dict, kind: str) -> dict[Path, Any]:
    """:func:`leaves` of ``obj``'s status alone."""
    out: dict[Path, Any] = {}
    if obj.get("status") is not None:
        _walk_value(obj["status"], ("f:status",), lookup(root_type(kind), "status"), out)
    return out


APPLY_PATCH_TYPES = ("apply", "application/apply-patch+yaml", "application/apply-patch+json")
