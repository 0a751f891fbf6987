"""CustomResourceDefinitions: what a definition serves (a :class:`bus.resources.Resource` with its
:class:`CustomInfo`), the checks a definition must pass, its printer columns and scale paths, and
:class:`CrdRegistry`, which keeps ``bus.resources``' custom part in step with the definitions in the cluster.

A custom resource's bus name is its definition's name with ``.`` as ``_`` (``crontabs_stable_example_com``): its
request subjects are ``k8n.api.<caller>.crontabs_stable_example_com.<verb>``, its bucket
``k8n-crontabs_stable_example_com``, so two groups that both define ``services`` never meet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from bus import crdschema, resources
from bus.errors import Cause
from bus.labels import dns1123_subdomain_errors
from bus.meta import parse_time
from bus.resources import Resource

log = logging.getLogger(__name__)

CRDS = "customresourcedefinitions"
GROUP = "apiextensions.k8s.io"
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
APPROVAL_ANNOTATION = "api-approved.kubernetes.io"
COLUMN_TYPES = ("integer", "number", "string", "boolean", "date")
SCOPES = ("Cluster", "Namespaced")
MAX_NAME = 240  # a definition's name is its bucket's, in JetStream's stream name ``KV_k8n-<name>``
DEFAULT_COLUMNS = ({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},)


@dataclass(frozen=True)
class VersionInfo:
    name: str
    served: bool
    storage: bool
    schema: Any  # the openAPIV3Schema (a dict)
    subresources: tuple[str, ...]
    scale: Any  # {specReplicasPath, statusReplicasPath, labelSelectorPath} or None
    columns: tuple[dict, ...]
    deprecated: bool = False
    deprecation_warning: str | None = None


@dataclass(frozen=True)
class CustomInfo:
    """What a Resource built from a definition carries besides the Resource fields."""

    crd_name: str
    uid: str
    versions: tuple[VersionInfo, ...]
    list_kind: str
    singular: str
    storage: str  # the storage version's name
    terminating: bool = False

    def version(self, name: str) -> VersionInfo | None:
        for v in self.versions:
            if v.name == name:
                return v
        return None

    def at_version(self, res: Resource, name: str) -> Resource:
        """``res`` as served at version ``name`` (its subresources are that version's)."""
        v = self.version(name)
        if v is None or v.name == res.version:
            return res
        return replace(res, version=v.name, subresources=v.subresources, custom=self)

    def at_versions(self, res: Resource) -> list[Resource]:
        return [self.at_version(res, v.name) for v in self.versions if v.served]

    def api_versions(self, res: Resource) -> set[str]:
        return {f"{res.group}/{v.name}" for v in self.versions if v.served}

    def names(self, res: Resource) -> set[str]:
        return {n.lower() for n in (res.plural, self.singular, res.kind, *res.short_names,
                                    f"{res.plural}.{res.group}", f"{self.singular}.{res.group}")}


def storage_version(crd: dict) -> str | None:
    for v in (crd.get("spec") or {}).get("versions") or []:
        if v.get("storage"):
            return v.get("name")
    return None


def resource_from_crd(crd: dict) -> Resource | None:
    """The Resource a definition serves (at its storage version), or None when it serves nothing."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    meta = crd.get("metadata") or {}
    storage = storage_version(crd)
    if not storage or not names.get("plural") or not names.get("kind") or not spec.get("group"):
        return None
    versions = []
    for v in spec.get("versions") or []:
        subs = v.get("subresources") or {}
        sub_names = tuple(s for s in ("status", "scale") if subs.get(s) is not None)
        cols = tuple(v.get("additionalPrinterColumns") or ()) or DEFAULT_COLUMNS
        versions.append(VersionInfo(str(v.get("name")), bool(v.get("served")), bool(v.get("storage")),
                                    (v.get("schema") or {}).get("openAPIV3Schema"), sub_names, subs.get("scale"),
                                    cols, bool(v.get("deprecated")), v.get("deprecationWarning")))
    kind = names["kind"]
    info = CustomInfo(str(meta.get("name")), str(meta.get("uid") or ""), tuple(versions),
                      names.get("listKind") or f"{kind}List", names.get("singular") or kind.lower(), storage,
                      bool(meta.get("deletionTimestamp")))
    store_v = info.version(storage)
    return Resource(kind, names["plural"], spec["group"], storage, spec.get("scope") == "Namespaced",
                    tuple(names.get("shortNames") or ()), store_v.subresources if store_v else (),
                    tuple(names.get("categories") or ()), custom=info)


def established(crd: dict) -> bool:
    for c in (crd.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Established":
            return c.get("status") == "True"
    return False


# ---- checks on a definition (called from bus.validation) --------------------------------------------------

def _dns1035(value: str) -> list[str]:
    from bus.validation import dns1035_label_errors

    return dns1035_label_errors(value)


def check_crd(e: Any, crd: Any) -> None:
    """apiextensions' validation of a definition (the parts k8n serves), into ``e`` (``bus.validation.Errors``)."""
    spec = crd.spec
    meta = crd.metadata
    names = spec.names
    group = spec.group or ""
    if not group:
        e.required("spec.group")
    elif dns1123_subdomain_errors(group) or "." not in group:
        e.invalid("spec.group", group, "should be a domain with at least one dot")
    elif (group.endswith(".k8s.io") or group.endswith(".kubernetes.io") or group in ("k8s.io", "kubernetes.io")) \
            and not (meta.annotations or {}).get(APPROVAL_ANNOTATION):
        e.required(f"metadata.annotations[{APPROVAL_ANNOTATION}]",
                   f'protected groups must have approval annotation "{APPROVAL_ANNOTATION}", see '
                   "https://github.com/kubernetes/enhancements/pull/1111")
    plural = names.plural if names else None
    if names is None or not plural:
        e.required("spec.names.plural")
    else:
        _name_errors(e, "spec.names.plural", plural)
    if meta.name and plural and group and meta.name != f"{plural}.{group}":
        e.invalid("metadata.name", meta.name, 'must be spec.names.plural+"."+spec.group')
    elif meta.name and len(meta.name) > MAX_NAME:  # k8n: the name becomes a JetStream stream's (255 at most)
        e.too_long("metadata.name", MAX_NAME)
    if names is not None:
        if names.singular:
            _name_errors(e, "spec.names.singular", names.singular)
        for i, s in enumerate(names.short_names or ()):
            _name_errors(e, f"spec.names.shortNames[{i}]", s)
        if not names.kind:
            e.required("spec.names.kind")
        else:
            _kind_errors(e, "spec.names.kind", names.kind)
        if names.list_kind:
            _kind_errors(e, "spec.names.listKind", names.list_kind)
            if names.kind and names.list_kind == names.kind:
                e.invalid("spec.names.listKind", names.list_kind, "kind and listKind may not be the same")
    if not spec.scope:
        e.required("spec.scope")
    else:
        e.one_of("spec.scope", spec.scope, SCOPES)
    _check_versions(e, spec)
    strategy = (spec.conversion.strategy if spec.conversion else None) or "None"
    e.one_of("spec.conversion.strategy", strategy, ("None",))  # k8n calls no conversion webhooks
    if spec.preserve_unknown_fields:
        e.invalid("spec.preserveUnknownFields", True, "must be false")


def _name_errors(e: Any, path: str, value: str) -> None:
    errs = _dns1035(value)
    if errs or value != value.lower():
        e.invalid(path, value, "; ".join(errs) or "must be lowercase")


def _kind_errors(e: Any, path: str, value: str) -> None:
    errs = _dns1035(value.lower())
    if errs:
        e.invalid(path, value, "; ".join(errs))


def _check_versions(e: Any, spec: Any) -> None:
    versions = spec.versions or []
    if not versions:
        e.invalid("spec.versions", [], "must have exactly one version marked as storage version")
        return
    storage = [v for v in versions if v.storage]
    if len(storage) != 1:
        e.invalid("spec.versions", [v.name for v in versions], "must have exactly one version marked as storage "
                                                               "version")
    seen: set = set()
    for i, v in enumerate(versions):
        p = f"spec.versions[{i}]"
        if not v.name:
            e.required(f"{p}.name")
        else:
            errs = _dns1035(v.name)
            if errs:
                e.invalid(f"{p}.name", v.name, "; ".join(errs))
            e.unique(f"{p}.name", v.name, seen)
        schema = v.schema_.open_apiv3_schema if v.schema_ else None
        sp = f"{p}.schema.openAPIV3Schema"
        if schema is None:
            e.required(sp, "schemas are required")
        else:
            e.causes.extend(crdschema.structural_errors(schema, sp))
        subs = v.subresources
        if subs is not None and subs.scale is not None:
            _check_scale(e, f"{p}.subresources.scale", subs.scale)
        for j, col in enumerate(v.additional_printer_columns or ()):
            cp = f"{p}.additionalPrinterColumns[{j}]"
            if not col.name:
                e.required(f"{cp}.name")
            if not col.type:
                e.required(f"{cp}.type")
            else:
                e.one_of(f"{cp}.type", col.type, COLUMN_TYPES)
            if not col.json_path:
                e.required(f"{cp}.jsonPath")
            elif _compile_path(col.json_path) is None:
                e.invalid(f"{cp}.jsonPath", col.json_path, "must be a simple json path")
            if col.priority is not None and col.priority < 0:
                e.invalid(f"{cp}.priority", col.priority, "must be greater than or equal to 0")


def _check_scale(e: Any, path: str, scale: Any) -> None:
    if not scale.spec_replicas_path:
        e.required(f"{path}.specReplicasPath")
    elif not scale.spec_replicas_path.startswith(".spec.") or _compile_path(scale.spec_replicas_path) is None:
        e.invalid(f"{path}.specReplicasPath", scale.spec_replicas_path, "should be a json path under .spec")
    if not scale.status_replicas_path:
        e.required(f"{path}.statusReplicasPath")
    elif not scale.status_replicas_path.startswith(".status.") or _compile_path(scale.status_replicas_path) is None:
        e.invalid(f"{path}.statusReplicasPath", scale.status_replicas_path, "should be a json path under .status")
    lsp = scale.label_selector_path
    if lsp and (not lsp.startswith((".spec.", ".status.")) or _compile_path(lsp) is None):
        e.invalid(f"{path}.labelSelectorPath", lsp, "should be a json path under either .spec or .status")


# ---- JSON paths (printer columns, scale) -------------------------------------------------------------------

@lru_cache(maxsize=512)
def _compile_path(path: str) -> Any:
    from jsonpath_ng.ext import parse

    if not path.startswith("."):
        return None
    try:
        return parse("$" + path)
    except Exception:  # jsonpath_ng raises its own exception types for a bad expression
        return None


def find(obj: dict, path: str) -> list[Any]:
    """The values at ``path`` (``.spec.replicas``, ``.status.conditions[?(@.type=="Ready")].status``)."""
    expr = _compile_path(path)
    if expr is None:
        return []
    return [m.value for m in expr.find(obj)]


def set_path(obj: dict, path: str, value: Any) -> None:
    """Set a simple dotted path (``.spec.replicas``), making the maps on the way."""
    keys = [k for k in path.split(".") if k]
    cur = obj
    for k in keys[:-1]:
        nxt = cur.get(k)
        if not isinstance(nxt, dict):
            nxt = cur[k] = {}
        cur = nxt
    cur[keys[-1]] = value


# ---- printing ---------------------------------------------------------------------------------------------

def column_definitions(res: Resource) -> list[dict]:
    """Table columns of a custom resource: Name, then the version's additionalPrinterColumns."""
    out = [{"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a "
            "namespace. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
            "priority": 0}]
    for c in _columns(res):
        out.append({"name": c.get("name", ""), "type": c.get("type", "string"), "format": c.get("format") or "",
                    "description": c.get("description") or "", "priority": int(c.get("priority") or 0)})
    return out


def _columns(res: Resource) -> tuple[dict, ...]:
    v = res.custom.version(res.version)
    return v.columns if v is not None else DEFAULT_COLUMNS


def cells(res: Resource, obj: dict, now: datetime | None = None) -> list[Any]:
    """One Table row's cells, as apiextensions' table convertor fills them."""
    now = now or datetime.now(timezone.utc)
    out: list[Any] = [(obj.get("metadata") or {}).get("name", "")]
    for c in _columns(res):
        found = find(obj, c.get("jsonPath") or "")
        out.append(_cell(c.get("type") or "string", found[0], now) if found else None)
    return out


def _cell(typ: str, value: Any, now: datetime) -> Any:
    if typ == "string":
        if isinstance(value, (dict, list)):
            import orjson

            return orjson.dumps(value).decode()
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    if typ == "integer":
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if typ == "number":
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if typ == "boolean":
        return value if isinstance(value, bool) else None
    if typ == "date":
        if parse_time(value) is None:
            return None
        from bus.tables import since

        return since(value, now)
    return None


# ---- scale ------------------------------------------------------------------------------------------------

def scale_paths(res: Resource) -> dict | None:
    v = res.custom.version(res.version) if res.custom else None
    return v.scale if v is not None else None


def scale_of(res: Resource, obj: dict) -> dict:
    """The autoscaling/v1 Scale of a custom resource, from its definition's scale paths."""
    paths = scale_paths(res) or {}
    meta = obj.get("metadata") or {}
    spec_r = find(obj, paths.get("specReplicasPath") or "")
    status_r = find(obj, paths.get("statusReplicasPath") or "")
    sel = find(obj, paths["labelSelectorPath"]) if paths.get("labelSelectorPath") else []
    return {
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": {"replicas": int(spec_r[0]) if spec_r and isinstance(spec_r[0], int) else 0},
        "status": {"replicas": int(status_r[0]) if status_r and isinstance(status_r[0], int) else 0,
                   **({"selector": sel[0]} if sel and isinstance(sel[0], str) else {})},
    }


# ---- versions -------------------------------------------------------------------------------------------

def convert(res: Resource, body: Any) -> Any:
    """A reply's object(s) at the version the request named (only ``apiVersion`` changes)."""
    if res.custom is None or not isinstance(body, dict):
        return body
    want = res.api_version
    if body.get("kind") == res.custom.list_kind or isinstance(body.get("items"), list):
        for item in body.get("items") or []:
            if isinstance(item, dict) and item.get("kind") == res.kind:
                item["apiVersion"] = want
        if body.get("kind") == res.custom.list_kind:
            body["apiVersion"] = want
    elif body.get("kind") == res.kind:
        body["apiVersion"] = want
    return body


# ---- the registry kept in step with the cluster ----------------------------------------------------------

def register(crd: dict) -> Resource | None:
    """Serve what ``crd`` defines (replacing what an earlier version of it served); None if it serves nothing."""
    res = resource_from_crd(crd)
    if res is None:
        return None
    resources.register_custom(res)
    return res


def unregister(crd: dict) -> None:
    name = str((crd.get("metadata") or {}).get("name") or "")
    if name:
        resources.unregister_custom(name.replace(".", "_"))


class CrdRegistry:
    """Watch the definitions (an informer over ``customresourcedefinitions``) and keep the custom resources
    registered: what a component that serves or reads custom resources starts. ``lookup`` fetches a definition
    the watch has not delivered yet, so a resource created a moment ago is served at once."""

    def __init__(self, client_or_store: Any) -> None:
        from bus.informer import Informer

        self.source = client_or_store
        self.informer = Informer(client_or_store, CRDS)
        self.informer.add_handler(on_add=self._set, on_update=lambda old, new: self._set(new), on_delete=self._gone)
        self.listeners: list[Any] = []  # called with (crd, resource or None when it is gone) after every change

    def _set(self, crd: dict) -> None:
        self._tell(crd, register(crd))

    def _gone(self, crd: dict) -> None:
        unregister(crd)
        self._tell(crd, None)

    def _tell(self, crd: dict, res: Resource | None) -> None:
        for fn in self.listeners:
            try:
                fn(crd, res)
            except Exception:
                log.exception("CRD listener failed on %s", (crd.get("metadata") or {}).get("name"))

    async def start(self) -> None:
        await self.informer.start()

    async def stop(self) -> None:
        await self.informer.stop()

    async def lookup(self, bus_name: str) -> Resource | None:
        """The custom resource named ``bus_name`` (``crontabs_stable_example_com``), asking the store when the
        watch has not delivered its definition yet."""
        res = resources.by_bus_name(bus_name)
        if res is not None:
            return res
        from bus import errors
        from bus.subjects import decode_name

        from bus.client import ApiClient

        store = self.source.store if isinstance(self.source, ApiClient) else self.source  # read off the bucket
        try:
            crd = await store.get(resources.by_plural(CRDS), None, decode_name(bus_name))
        except errors.ApiError:  # not found: not served
            return None
        return register(crd) if isinstance(crd, dict) else None
