"""``/openapi/v3``: just enough OpenAPI for kubectl 1.32.

- Every PATCH operation names its kind (``x-kubernetes-group-version-kind``) and takes a
  ``fieldValidation`` query parameter, so kubectl leaves validation to the server
  (``--validate=strict``, its default, sends ``fieldValidation=Strict``) instead of fetching schemas.
- PATCH does not list ``application/strategic-merge-patch+json``: kubectl then computes the strategic
  merge patch of ``kubectl apply`` from its compiled-in Kubernetes types, which carry the patch merge
  keys (containers by name, ports by containerPort, …) — no schemas needed here.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import orjson

from bus.resources import Resource, custom_resources
from master.gateway import discovery

PATCH_TYPES = ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]


def gv_path(group: str, version: str) -> str:
    """``api/v1`` / ``apis/apps/v1``: the keys of the ``/openapi/v3`` index."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _param(name: str, where: str = "query", required: bool = False) -> dict:
    return {"name": name, "in": where, "required": required, "schema": {"type": "string", "uniqueItems": True}}


_QUERY = [_param("dryRun"), _param("fieldManager"), _param("fieldValidation")]


def _gvk(r: Resource, kind: str | None = None, group: str | None = None, version: str | None = None) -> dict:
    return {"group": r.group if group is None else group, "version": r.version if version is None else version,
            "kind": kind or r.kind}


def _ok(ref: str | None = None) -> dict:
    body = {"schema": {"$ref": ref}} if ref else {"schema": {"type": "object"}}
    return {"200": {"description": "OK", "content": {"application/json": body}}}


def _item_ops(r: Resource, gvk: dict) -> dict:
    obj = {"content": {"*/*": {"schema": {"type": "object"}}}}
    patch_body = {"content": {t: {"schema": {"type": "object"}} for t in PATCH_TYPES}}
    ops = {
        "get": {"operationId": f"read{r.kind}", "x-kubernetes-action": "get", "responses": _ok()},
        "put": {"operationId": f"replace{r.kind}", "x-kubernetes-action": "put", "parameters": _QUERY,
                "requestBody": obj, "responses": _ok()},
        "patch": {"operationId": f"patch{r.kind}", "x-kubernetes-action": "patch", "parameters": _QUERY + [
            _param("force")], "requestBody": patch_body, "responses": _ok()},
        "delete": {"operationId": f"delete{r.kind}", "x-kubernetes-action": "delete",
                   "parameters": [_param("dryRun"), _param("gracePeriodSeconds"), _param("propagationPolicy")],
                   "responses": _ok()},
    }
    for op in ops.values():
        op["x-kubernetes-group-version-kind"] = gvk
    return ops


def gv_document(group: str, version: str) -> dict | None:
    if version not in discovery.groups().get(group, []):
        return None
    paths: dict[str, dict] = {}
    prefix = f"/{gv_path(group, version)}"
    for r in discovery.resources_of(group, version):
        base = f"{prefix}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{prefix}/{r.plural}"
        path_params = ([_param("namespace", "path", True)] if r.namespaced else []) + [_param("name", "path", True)]
        gvk = _gvk(r)
        coll = {
            "get": {"operationId": f"list{r.kind}", "x-kubernetes-action": "list", "responses": _ok(),
                    "parameters": [_param("labelSelector"), _param("fieldSelector"), _param("watch")]},
            "post": {"operationId": f"create{r.kind}", "x-kubernetes-action": "post", "parameters": _QUERY,
                     "requestBody": {"content": {"*/*": {"schema": {"type": "object"}}}}, "responses": _ok()},
        }
        for op in coll.values():
            op["x-kubernetes-group-version-kind"] = gvk
        if r.namespaced:
            coll["parameters"] = [_param("namespace", "path", True)]
        paths[base] = coll
        paths[f"{base}/{{name}}"] = {"parameters": path_params, **_item_ops(r, gvk)}
        for sub in r.subresources:
            g, v, k, _verbs = discovery._sub_kind(r, sub)
            if sub in ("status", "scale"):
                paths[f"{base}/{{name}}/{sub}"] = {"parameters": path_params,
                                                   **_item_ops(r, _gvk(r, k, g, v))}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (k8n)", "version": "v1.32.0"},
            "paths": paths, "components": {"schemas": {}}}


def gv_document_bytes(group: str, version: str) -> bytes | None:
    if any(r.group == group for r in custom_resources()):  # definitions come and go: never cached
        doc = gv_document(group, version)
        return None if doc is None else orjson.dumps(doc)
    return _built_in_bytes(group, version)


@lru_cache(maxsize=None)
def _built_in_bytes(group: str, version: str) -> bytes | None:
    doc = gv_document(group, version)
    return None if doc is None else orjson.dumps(doc)


def index() -> dict:
    paths = {}
    for g, vs in discovery.groups().items():
        for v in vs:
            body = gv_document_bytes(g, v) or b""
            h = hashlib.sha512(body).hexdigest()[:64].upper()
            p = gv_path(g, v)
            paths[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={h}"}
    return {"paths": paths}
