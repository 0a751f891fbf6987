"""A small operator written with kopf (the well-known Python operator framework), as its users write one: it
reconciles ``CronTab`` objects (stable.example.com/v1) by keeping a ConfigMap that mirrors each one's schedule,
records what it did in the object's status, and on deletion (kopf's finalizer) writes a tombstone ConfigMap.
``tests/e2e/test_crds_kubectl.py`` runs it with ``kopf run --standalone`` against ``k8n up``."""

from __future__ import annotations

import kopf
import kubernetes

GROUP, VERSION, PLURAL = "stable.example.com", "v1", "crontabs"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_) -> None:
    settings.persistence.finalizer = "kopf.example.com/cleanup"
    settings.posting.level = 20  # events for info and above
    kubernetes.config.load_kube_config()


def _mirror(name: str, namespace: str, schedule: str, body: dict) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-schedule"},
          "data": {"schedule": schedule}}
    kopf.adopt(cm, owner=body)
    api = kubernetes.client.CoreV1Api()
    try:
        api.create_namespaced_config_map(namespace, cm)
    except kubernetes.client.ApiException as e:
        if e.status != 409:
            raise
        api.patch_namespaced_config_map(f"{name}-schedule", namespace, {"data": {"schedule": schedule}})


@kopf.on.create(GROUP, VERSION, PLURAL)
def created(spec, name, namespace, body, patch, **_):
    _mirror(name, namespace, spec["cronSpec"], body)
    patch.status["phase"] = "Mirrored"
    return {"schedule": spec["cronSpec"]}


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec.cronSpec")
def updated(new, name, namespace, body, patch, **_):
    _mirror(name, namespace, new, body)
    patch.status["phase"] = "Updated"


@kopf.on.delete(GROUP, VERSION, PLURAL)
def deleted(name, namespace, **_):
    kubernetes.client.CoreV1Api().create_namespaced_config_map(namespace, {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-tombstone"}, "data": {"gone": "yes"}})
