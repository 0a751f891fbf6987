"""StatefulSet controller logic (pure): pod identity and storage, ordered and parallel management, rolling
updates with a partition, OnDelete, status, claim retention, and ControllerRevision history."""

from __future__ import annotations

from master.controllers import _history as history
from master.controllers.statefulset import (POD_INDEX_LABEL, POD_NAME_LABEL, REVISION_LABEL, claim_refs,
                                            compute_status, new_claims, new_pod, plan)
from tests import builders

NOW = 1_700_000_000.0
CUR, UPD = "web-aaa", "web-bbb"


def sts(replicas: int = 3, policy: str = "OrderedReady", strategy: dict | None = None, generation: int = 1,
        **kw) -> dict:
    s = builders.statefulset("web", replicas=replicas, serviceName="web", podManagementPolicy=policy,
                             updateStrategy=strategy or {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                             uid="sts-uid", generation=generation, **kw)
    s["status"] = {}
    return s


def pod(ordinal: int, rev: str = CUR, phase: str = "Running", ready: bool = True, deleting: bool = False) -> dict:
    name = f"web-{ordinal}"
    return builders.pod(name, uid=f"uid-{name}", labels={"app": "web", REVISION_LABEL: rev}, bare=True, node="n1",
                        phase=phase, ready=ready, ready_since=NOW - 100, deleting=NOW if deleting else None)


def run(s: dict, pods: list[dict], current: str = CUR, update: str = UPD):
    return plan(s, pods, s, s, current, update, 0, NOW)


def names(pods: list[dict]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


# ---- identity ----------------------------------------------------------------------------------


def test_a_pod_gets_its_ordinal_name_labels_dns_identity_and_claims():
    s = sts(volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}])
    s["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    p = new_pod(s, 2, UPD)
    assert p["metadata"]["name"] == "web-2"
    assert p["metadata"]["labels"] == {"app": "web", POD_NAME_LABEL: "web-2", POD_INDEX_LABEL: "2",
                                       REVISION_LABEL: UPD}
    assert p["spec"]["hostname"] == "web-2" and p["spec"]["subdomain"] == "web"
    assert p["metadata"]["ownerReferences"][0] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                                                   "uid": "sts-uid", "controller": True, "blockOwnerDeletion": True}
    assert p["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-2"}},
                                    {"name": "tmp", "emptyDir": {}}]
    [claim] = new_claims(s, 2)
    assert claim["metadata"]["name"] == "data-web-2" and claim["metadata"]["labels"] == {"app": "web"}
    assert claim["spec"]["resources"] == {"requests": {"storage": "1Gi"}}


# ---- OrderedReady ------------------------------------------------------------------------------


def test_ordered_ready_creates_one_pod_at_a_time_after_its_predecessor_is_ready():
    s = sts(3)
    p = run(s, [])
    assert names(p.create) == ["web-0"] and not p.delete
    p = run(s, [pod(0, phase="Pending", ready=False)])
    assert p.create == [] and "web-0" in p.waiting_for
    p = run(s, [pod(0)])
    assert names(p.create) == ["web-1"]
    assert run(s, [pod(0), pod(1, ready=False)]).create == []


def test_ordered_ready_scales_down_from_the_highest_ordinal_one_at_a_time():
    s = sts(1)
    p = run(s, [pod(0), pod(1), pod(2)])
    assert names(p.delete) == ["web-2"]
    p = run(s, [pod(0), pod(1), pod(2, deleting=True)])
    assert p.delete == [] and "web-2" in p.waiting_for


def test_ordered_ready_stops_at_an_unhealthy_pod_and_never_replaces_a_terminating_one():
    s = sts(3)
    p = run(s, [pod(0, deleting=True), pod(1), pod(2)])
    assert p.create == [] and p.delete == []  # web-0 keeps its name until the object is gone
    p = run(s, [pod(0), pod(1, ready=False)])
    assert p.create == [] and p.delete == []


def test_min_ready_seconds_holds_the_next_pod_and_requeues_when_it_is_due():
    s = sts(2, minReadySeconds=150)  # web-0 has been Ready for 100 s
    p = run(s, [pod(0)])
    assert p.create == [] and "available" in p.waiting_for and abs(p.requeue_after - 50) < 0.01
    assert names(run(sts(2, minReadySeconds=50), [pod(0)]).create) == ["web-1"]


def test_a_failed_pod_is_deleted_and_recreated_on_a_later_pass():
    s = sts(2)
    p = run(s, [pod(0, phase="Failed", ready=False), pod(1)])
    assert names(p.delete) == ["web-0"] and p.create == []
    assert names(run(s, [pod(1)]).create) == ["web-0"]


# ---- Parallel ----------------------------------------------------------------------------------


def test_parallel_creates_and_deletes_without_waiting_but_never_reuses_a_held_name():
    s = sts(3, policy="Parallel")
    assert names(run(s, []).create) == ["web-0", "web-1", "web-2"]
    p = run(s, [pod(0, deleting=True), pod(1, phase="Pending", ready=False)])
    assert names(p.create) == ["web-2"]
    s1 = sts(1, policy="Parallel")
    assert sorted(names(run(s1, [pod(0), pod(1, ready=False), pod(2)], update=CUR).delete)) == ["web-1", "web-2"]


# ---- updates -----------------------------------------------------------------------------------


def test_rolling_update_replaces_the_highest_ordinal_first_one_at_a_time():
    s = sts(3)
    assert names(run(s, [pod(0), pod(1), pod(2)]).delete) == ["web-2"]
    assert run(s, [pod(0), pod(1), pod(2, rev=UPD, ready=False)]).delete == []  # waits for web-2 to be ready
    assert names(run(s, [pod(0), pod(1), pod(2, rev=UPD)]).delete) == ["web-1"]
    assert run(s, [pod(0), pod(1), pod(2, deleting=True)]).delete == []


def test_partition_keeps_lower_ordinals_on_the_current_revision():
    s = sts(3, strategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    assert names(run(s, [pod(0), pod(1), pod(2)]).delete) == ["web-2"]
    assert run(s, [pod(0), pod(1), pod(2, rev=UPD)]).delete == []
    p = run(s, [pod(1), pod(2, rev=UPD)])  # web-0 deleted by someone: recreated at the current revision
    assert names(p.create) == ["web-0"] and p.create[0]["metadata"]["labels"][REVISION_LABEL] == CUR


def test_on_delete_replaces_nothing_and_recreates_at_the_update_revision():
    s = sts(2, strategy={"type": "OnDelete"})
    assert run(s, [pod(0), pod(1)]).delete == []
    p = run(s, [pod(1)])
    assert p.create[0]["metadata"]["labels"][REVISION_LABEL] == UPD


def test_status_counts_and_completes_the_rollout_when_every_pod_is_updated_and_ready():
    s = sts(2, generation=4)
    st = compute_status(s, [pod(0), pod(1, rev=UPD, ready=False)], CUR, UPD, 0, NOW)
    assert st == {"observedGeneration": 4, "replicas": 2, "readyReplicas": 1, "currentReplicas": 1,
                  "updatedReplicas": 1, "currentRevision": CUR, "updateRevision": UPD, "collisionCount": 0,
                  "availableReplicas": 1}
    st = compute_status(s, [pod(0, rev=UPD), pod(1, rev=UPD)], CUR, UPD, 0, NOW)
    assert st["currentRevision"] == UPD and st["currentReplicas"] == 2


# ---- claims retention --------------------------------------------------------------------------


def test_claim_owners_follow_the_retention_policy():
    claim = {"metadata": {"name": "data-web-2", "uid": "c"}}
    p2 = pod(2)
    retain = sts(3)
    assert claim_refs(retain, p2, 2, claim) is None
    on_delete = sts(3, persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete", "whenScaled": "Retain"})
    assert [r["uid"] for r in claim_refs(on_delete, p2, 2, claim)] == ["sts-uid"]
    on_scale = sts(2, persistentVolumeClaimRetentionPolicy={"whenDeleted": "Retain", "whenScaled": "Delete"})
    assert [r["uid"] for r in claim_refs(on_scale, p2, 2, claim)] == ["uid-web-2"]  # web-2 is scaled away
    assert claim_refs(on_scale, pod(1), 1, {"metadata": {"name": "data-web-1"}}) is None


# ---- history -----------------------------------------------------------------------------------


def test_revisions_name_hash_and_restore_the_template():
    s = sts(2)
    r1 = history.new_revision(s, 1, 0)
    assert r1["metadata"]["name"].startswith("web-") and r1["revision"] == 1
    assert r1["data"]["spec"]["template"]["$patch"] == "replace"
    assert r1["metadata"]["labels"]["app"] == "web"
    assert history.template_of(r1) == s["spec"]["template"]
    assert history.new_revision(s, 7, 0)["metadata"]["name"] == r1["metadata"]["name"]  # same template, same name
    assert history.new_revision(s, 1, 1)["metadata"]["name"] != r1["metadata"]["name"]  # collision count moves it
    s2 = sts(2)
    s2["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    r2 = history.new_revision(s2, 2, 0)
    assert history.equal_revisions([r1, r2], history.new_revision(s, 3, 0)) == [r1]
    assert history.next_revision([r2, r1]) == 3


def test_history_is_trimmed_oldest_first_sparing_live_revisions():
    revs = [{"metadata": {"name": f"r{i}"}, "revision": i} for i in range(1, 6)]
    assert [r["metadata"]["name"] for r in history.to_trim(revs, {"r1", "r5"}, 2)] == ["r2"]
    assert history.to_trim(revs, set(), 10) == []


# ---- API: validation and tables ----------------------------------------------------------------


def _causes(obj: dict, old: dict | None = None) -> list[str]:
    from bus.resources import resolve
    from bus.validation import validate_object, validate_update

    model, causes = validate_object(resolve("sts"), obj)
    if old is not None:
        causes = causes + validate_update(resolve("sts"), old, model)
    return [f"{c.field}: {c.message}" for c in causes]


def test_validation_messages_are_kubernetes_ones():
    s = builders.statefulset("web", serviceName="web")
    s["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    assert _causes(s) == ['spec.template.metadata.labels: Invalid value: {"app": "other"}: '
                          '`selector` does not match template `labels`']
    s = builders.statefulset("web", podManagementPolicy="Sometimes", serviceName="web")
    assert _causes(s) == ["spec.podManagementPolicy: Invalid value: \"Sometimes\": must be 'OrderedReady' or "
                          "'Parallel'"]
    s = builders.statefulset("web", serviceName="web", updateStrategy={"type": "OnDelete",
                                                                      "rollingUpdate": {"partition": 1}})
    assert _causes(s)[0].startswith("spec.updateStrategy.rollingUpdate: Invalid value: ")
    claim = {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                    "resources": {"requests": {"storage": "1Gi"}}}}
    mounted = builders.statefulset("web", serviceName="web", volumeClaimTemplates=[claim], containers=[
        builders.container("c", volumeMounts=[{"name": "data", "mountPath": "/data"}])])
    assert _causes(mounted) == []  # a claim template is a volume the containers may mount
    from bus.models import to_dict
    from bus.resources import resolve
    from bus.validation import validate_object

    old = to_dict(validate_object(resolve("sts"), builders.statefulset("web", serviceName="web"))[0])
    assert _causes(builders.statefulset("web", serviceName="web", replicas=5, minReadySeconds=3), old) == []
    assert _causes(builders.statefulset("web", serviceName="other"), old) == [
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
        "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"]


def test_tables_of_statefulsets_and_controller_revisions():
    from datetime import datetime, timezone

    from bus.cli import printers
    from bus.resources import resolve

    now = datetime.fromtimestamp(NOW, timezone.utc)
    s = sts(3)
    s["status"] = {"readyReplicas": 2}
    headers, rows = printers.table(resolve("sts"), [s], wide=True, now=now)
    assert headers == ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"] and rows[0][:2] == ["web", "2/3"]
    rev = history.new_revision(s, 4, 0)
    headers, rows = printers.table(resolve("controllerrevisions"), [rev], now=now)
    assert headers == ["NAME", "CONTROLLER", "REVISION", "AGE"]
    assert rows[0][1:3] == ["statefulset.apps/web", "4"]


# ---- DaemonSet history (the reconciler against a fake client) ----------------------------------


class HistoryClient:
    def __init__(self):
        self.created, self.updated, self.deleted, self.statuses = [], [], [], []

    async def create(self, obj):
        self.created.append(obj)
        return obj

    async def update(self, obj):
        self.updated.append(obj)
        return obj

    async def update_status(self, obj):
        self.statuses.append(obj["status"])
        return obj

    async def delete(self, plural, name, namespace=None, **kw):
        self.deleted.append((plural, name))


def _ds(labels: dict) -> dict:
    ds = builders.daemonset("d", uid="d1", generation=1, rv="1", app={"app": "d"},
                            template=builders.template({"app": "d", **labels}))
    ds["status"] = {}
    return ds


async def _reconcile_history(ds: dict, revisions: list[dict], limit: int = 10) -> HistoryClient:
    from master.controllers.daemonset import DaemonSetController
    from tests.unit.test_job_controller import Recorder, informer

    ds["spec"]["revisionHistoryLimit"] = limit
    client = HistoryClient()
    infs = [await informer("daemonsets", [ds]), await informer("pods", []), await informer("nodes", []),
            await informer("controllerrevisions", revisions)]
    try:
        await DaemonSetController(client, *infs[:3], Recorder(), revisions=infs[3]).reconcile("default.d")
    finally:
        for inf in infs:
            await inf.stop()
    return client


def _stored(rev: dict, rv: str) -> dict:
    return {**rev, "metadata": {**rev["metadata"], "uid": f"u-{rev['revision']}", "resourceVersion": rv}}


async def test_a_daemonset_template_becomes_a_revision_and_a_rollback_renumbers_the_old_one():
    from master.controllers.daemonset import HASH_LABEL, template_hash

    v1, v2 = _ds({}), _ds({"v": "2"})
    client = await _reconcile_history(v1, [])
    [rev] = client.created
    h = template_hash(v1["spec"]["template"])
    assert rev["metadata"]["name"] == f"d-{h}" and rev["revision"] == 1
    assert rev["metadata"]["labels"] == {"app": "d", HASH_LABEL: h}
    assert history.template_of(rev) == v1["spec"]["template"]
    r1 = _stored(rev, "1")
    r2 = _stored(history.new_revision(v2, 2, None, hash_label=HASH_LABEL), "2")
    client = await _reconcile_history(_ds({}), [r1, r2])  # kubectl rollout undo: back to the first template
    assert client.created == [] and [(u["metadata"]["name"], u["revision"]) for u in client.updated] == [
        (rev["metadata"]["name"], 3)]
    client = await _reconcile_history(_ds({"v": "3"}), [r1, r2], limit=0)  # a third template, no history kept
    assert [c["revision"] for c in client.created] == [3]
    assert sorted(client.deleted) == sorted(("controllerrevisions", r["metadata"]["name"]) for r in (r1, r2))
