"""Namespace controller: the order content is deleted in, and finalizing once nothing is left."""

from __future__ import annotations

from bus import errors
from bus.resources import RESOURCES
from bus.workqueue import Result
from master.controllers.namespace import NamespaceController, deletion_order, remaining_condition


def test_deletion_order_controllers_then_pods_then_the_rest_events_last():
    kinds = [r.kind for r in deletion_order()]
    # every namespaced kind that is stored, once (a LocalSubjectAccessReview is never stored)
    assert sorted(kinds) == sorted(r.kind for r in RESOURCES if r.namespaced and r.stored)
    assert "LocalSubjectAccessReview" not in kinds
    assert "Namespace" not in kinds and "Node" not in kinds and "PersistentVolume" not in kinds
    pos = kinds.index
    assert pos("Deployment") < pos("ReplicaSet") < pos("Pod")
    assert pos("ReplicationController") < pos("Pod") and pos("Job") < pos("Pod") and pos("DaemonSet") < pos("Pod")
    assert pos("Pod") < pos("Service") < pos("ServiceAccount") < pos("Secret")
    assert pos("Pod") < pos("PersistentVolumeClaim")
    assert kinds[-1] == "Event"


def test_remaining_condition():
    c = remaining_condition({"pods": 2, "configmaps": 1})
    assert c["status"] == "True" and c["message"].endswith("configmaps has 1 resource instances, pods has 2 resource instances")
    assert remaining_condition({})["status"] == "False"


class FakeNamespaces:
    def __init__(self, ns):
        self.ns = ns

    def add_handler(self, **handlers):
        pass

    def get_by_key(self, key):
        return self.ns if key == self.ns["metadata"]["name"] else None


class FakeClient:
    """Objects by (plural, namespace, name); deletes of pods only mark them (they go when their
    'agent' says so), everything else goes at once."""

    def __init__(self, ns, objects):
        self.ns, self.objects, self.deleted, self.updates = ns, objects, [], []

    async def list(self, res, namespace=None):
        return [o for (p, n, _), o in sorted(self.objects.items())
                if p == res.plural and namespace in (None, n)], 1

    async def delete(self, res, name, namespace, **kw):
        key = (res.plural, namespace, name)
        if key not in self.objects:
            raise errors.not_found(res.plural, name)
        self.deleted.append(res.kind)
        if res.kind == "Pod":
            self.objects[key]["metadata"]["deletionTimestamp"] = "now"
        else:
            del self.objects[key]

    async def update_status(self, obj):
        self.ns = obj
        self.updates.append(("status", obj["status"]["conditions"][-1]["status"]))

    async def get(self, plural, name):
        return self.ns

    async def update(self, obj):
        self.ns = obj
        self.updates.append(("finalizers", obj["spec"]["finalizers"]))


def _ns(phase="Terminating"):
    return {"metadata": {"name": "team", **({"deletionTimestamp": "t"} if phase == "Terminating" else {})},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": phase}}


def _obj(name):
    return {"metadata": {"name": name, "namespace": "team", "uid": name}}


async def test_reconcile_deletes_content_waits_then_finalizes():
    ns = _ns()
    objects = {(p, "team", n): _obj(n) for p, n in [("pods", "web-1"), ("configmaps", "cfg"), ("replicasets", "web"),
                                                    ("events", "e1"), ("secrets", "s")]}
    client = FakeClient(ns, objects)
    ctl = NamespaceController(client, FakeNamespaces(ns), recheck=0.5)
    out = await ctl.reconcile("team")
    assert isinstance(out, Result) and out.requeue_after == 0.5       # the pod is still shutting down
    assert client.deleted == ["ReplicaSet", "Pod", "Secret", "ConfigMap", "Event"]
    assert client.updates == [("status", "True")]
    del objects[("pods", "team", "web-1")]                             # its agent removed it
    assert await ctl.reconcile("team") is None
    assert client.deleted.count("Pod") == 1                           # not deleted twice
    assert client.updates[-1] == ("finalizers", [])


async def test_active_namespaces_are_left_alone():
    ns = _ns("Active")
    client = FakeClient(ns, {("configmaps", "team", "cfg"): _obj("cfg")})
    assert await NamespaceController(client, FakeNamespaces(ns)).reconcile("team") is None
    assert client.deleted == [] and client.updates == []
