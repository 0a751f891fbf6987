"""Server-side printing: ``meta.k8s.io/v1`` Tables with kubectl's columns per kind.

The columns are the ones ``k8n get`` prints (``bus.tables``): the default ones, then the
``-o wide`` ones as ``priority: 1``. kubectl adds NAMESPACE (``-A``) and LABELS
(``--show-labels``) itself from ``rows[].object``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from bus import crd
from bus.resources import Resource
from bus.tables import kind_columns

TABLE_API_VERSION = "meta.k8s.io/v1"
INCLUDE_OBJECT = ("None", "Metadata", "Object")

# What Kubernetes' column descriptions say of the common ones (kubectl shows them in no output,
# but clients may); others get an empty description.
_DESCRIPTIONS = {
    "NAME": "Name must be unique within a namespace. More info: "
            "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    "AGE": "CreationTimestamp is a timestamp representing the server time when this object was created.",
}


def column_definitions(kind: str) -> list[dict]:
    base, wide = kind_columns(kind)
    out = []
    for priority, cols in ((0, base), (1, wide)):
        for header, _fn in cols:
            d = {"name": header.title() if header in ("NAME", "AGE") else header, "type": "string",
                 "format": "name" if header == "NAME" else "", "description": _DESCRIPTIONS.get(header, ""),
                 "priority": priority}
            out.append(d)
    return out


def partial_metadata(obj: dict) -> dict:
    return {"kind": "PartialObjectMetadata", "apiVersion": TABLE_API_VERSION, "metadata": obj.get("metadata") or {}}


def row(kind: str, obj: dict, include: str = "Metadata", now: datetime | None = None) -> dict:
    now = now or datetime.now(timezone.utc)
    base, wide = kind_columns(kind)
    cells = [fn(obj, now) for _h, fn in base + wide]
    return _with_object({"cells": cells}, obj, include)


def _with_object(r: dict, obj: dict, include: str) -> dict:
    if include == "Object":
        r["object"] = obj
    elif include != "None":
        r["object"] = partial_metadata(obj)
    return r


def table(res: Resource, objs: list[dict], resource_version: str | None = None, include: str = "Metadata",
          with_columns: bool = True, now: datetime | None = None) -> dict:
    """A Table of ``objs`` (one object for a get or a watch event)."""
    now = now or datetime.now(timezone.utc)
    t: dict = {"kind": "Table", "apiVersion": TABLE_API_VERSION, "metadata": {}}
    if resource_version:
        t["metadata"]["resourceVersion"] = resource_version
    if res.custom is not None:  # the definition's additionalPrinterColumns
        t["columnDefinitions"] = crd.column_definitions(res) if with_columns else None
        t["rows"] = [_with_object({"cells": crd.cells(res, o, now)}, crd.convert(res, o), include) for o in objs]
        return t
    t["columnDefinitions"] = column_definitions(res.kind) if with_columns else None
    t["rows"] = [row(res.kind, o, include, now) for o in objs]
    return t
