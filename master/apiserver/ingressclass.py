"""The DefaultIngressClass admission plugin (``plugin/pkg/admission/network/defaultingressclass``) and the
IngressClasses the cluster starts with.

- A new Ingress naming no class (neither ``spec.ingressClassName`` nor the legacy ``kubernetes.io/ingress.class``
  annotation) gets the class annotated ``ingressclass.kubernetes.io/is-default-class: "true"``; with several, the
  newest (then the first by name), as Kubernetes 1.28+ picks; with none it is left without a class.
- A new Ingress whose annotation and ``spec.ingressClassName`` disagree is a 422 (``ValidateIngressCreate``).
- ``ensure_built_in_classes``: ``k8n`` (controller ``k8n.io/ingress``) and ``nginx`` (``k8s.io/ingress-nginx``, so
  manifests written for ingress-nginx are served by k8n's controller too) are made when missing at each API server
  start; ``k8n`` is made the default unless another class already is. Existing ones are left as they are (a user's
  changes stand); a deleted one comes back at the next start.
"""

from __future__ import annotations

import contextlib

from bus import errors
from bus.errors import Cause
from bus.ingress import (BUILT_IN_CLASSES, DEFAULT_CLASS_ANNOTATION, LEGACY_CLASS_ANNOTATION, default_class,
                         is_default_class)
from bus.models import to_dict
from bus.models.networking import API_VERSION, GROUP
from bus.resources import by_plural
from bus.store import NatsStore
from bus.validation import validate_object
from master.apiserver import strategy
from master.apiserver.listers import CachedLister

PLURAL = "ingressclasses"


def check_class_annotation(ingress: dict) -> None:
    """``ValidateIngressCreate``: the legacy annotation, when set with ``spec.ingressClassName``, must match it."""
    meta = ingress.get("metadata") or {}
    annotation = (meta.get("annotations") or {}).get(LEGACY_CLASS_ANNOTATION)
    name = (ingress.get("spec") or {}).get("ingressClassName")
    if annotation is not None and name is not None and annotation != name:
        cause = Cause(f"annotations.{LEGACY_CLASS_ANNOTATION}", f'Invalid value: "{annotation}": must match '
                      "`ingressClassName` when both are specified", "FieldValueInvalid")
        raise errors.invalid("Ingress", meta.get("name") or "", [cause], GROUP)


def resolve(ingress: dict, classes: list[dict]) -> None:
    """Give a classless Ingress the default class (in place)."""
    spec = ingress.setdefault("spec", {})
    if spec.get("ingressClassName") is not None:
        return
    if LEGACY_CLASS_ANNOTATION in ((ingress.get("metadata") or {}).get("annotations") or {}):
        return
    default = default_class(classes)
    if default is not None:
        spec["ingressClassName"] = default["metadata"]["name"]


class DefaultIngressClass(CachedLister):
    """The plugin over its cache of the IngressClasses (a class made a moment ago may not be in it yet, as with
    Kubernetes' lister)."""

    def __init__(self, store: NatsStore) -> None:
        super().__init__(store, PLURAL)

    def admit_ingress(self, ingress: dict) -> None:
        check_class_annotation(ingress)
        resolve(ingress, self.cached())


def built_in_class(name: str, controller: str, default: bool) -> dict:
    meta: dict = {"name": name, "labels": {"app.kubernetes.io/managed-by": "k8n"}}
    if default:
        meta["annotations"] = {DEFAULT_CLASS_ANNOTATION: "true"}
    body = {"apiVersion": API_VERSION, "kind": "IngressClass", "metadata": meta, "spec": {"controller": controller}}
    model, causes = validate_object(by_plural(PLURAL), body)
    assert not causes, causes
    return to_dict(model)


async def ensure_built_in_classes(store: NatsStore) -> None:
    """Create the built-in IngressClasses that are missing (a KV create: existing ones, or another API server's
    made meanwhile, are left as they are); ``k8n`` is the default only while no other class is."""
    res = by_plural(PLURAL)
    existing, _ = await store.list(res)
    names = {c["metadata"]["name"] for c in existing}
    has_default = any(is_default_class(c) for c in existing)
    for name, controller, default in BUILT_IN_CLASSES:
        if name in names:
            continue
        obj = built_in_class(name, controller, default and not has_default)
        strategy.prepare_create(res, obj, None)
        with contextlib.suppress(errors.AlreadyExists):
            await store.create(res, None, name, obj)
