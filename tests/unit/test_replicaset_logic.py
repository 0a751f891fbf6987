"""Replication controller logic: slow-start batches, which pods to delete, status, templates,
and the reconcile against a fake client with a lagging cache (expectations: no duplicates)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bus import errors
from bus.informer import Informer
from bus.meta import format_time
from master.controllers.replicaset import (ReplicaManager, compute_status, is_active, pod_from_template,
                                           pods_to_delete, selector_of, slow_start, slow_start_batches)
from tests import builders

NOW = 1_700_000_000.0


def ts(t: float) -> str:
    return format_time(t)


def pod(name: str, node: str | None = "n1", phase: str = "Running", ready: bool | None = True, since: float = NOW - 100,
        restarts: int = 0, created: float = NOW - 1000, labels: dict | None = None, owner: dict | None = None,
        deleting: bool = False) -> dict:
    return builders.pod(name, uid=f"uid-{name}", created=created, labels={"app": "web"} if labels is None else labels,
                        rv="1", owners=owner, deleting=NOW if deleting else None, node=node, bare=True, phase=phase,
                        ready=ready, ready_since=since, status={"conditions": []} if ready is None else None,
                        statuses=[{"name": "c", "restartCount": restarts}])


def rs(replicas: int = 3, min_ready: int = 0, generation: int = 2, status: dict | None = None) -> dict:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web", "namespace": "default", "uid": "rs-uid", "generation": generation,
                         "resourceVersion": "5"},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", "tier": "front"}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
            "status": status or {}}


# ---- slow start --------------------------------------------------------------------------------


def test_slow_start_batches_double_until_the_count_is_reached():
    assert slow_start_batches(0) == []
    assert slow_start_batches(1) == [1]
    assert slow_start_batches(10) == [1, 2, 4, 3]
    assert slow_start_batches(15) == [1, 2, 4, 8]
    assert slow_start_batches(5, initial=2) == [2, 3]


async def test_slow_start_stops_after_the_first_failing_batch():
    calls = itertools.count(1)

    async def create():
        if next(calls) == 3:
            raise errors.ApiError(500, "boom")

    ok, err = await slow_start(10, create)
    assert (ok, str(err)) == (2, "boom")
    assert next(calls) == 4, "batches 1 and 2 were tried (3 calls), nothing after the failure"


# ---- which pods go -----------------------------------------------------------------------------


def names(pods):
    return [p["metadata"]["name"] for p in pods]


def test_deletes_unscheduled_then_pending_then_not_ready_first():
    pods = [pod("running"), pod("pending", phase="Pending", ready=False), pod("unscheduled", node=None,
                                                                              phase="Pending", ready=None),
            pod("notready", ready=False)]
    assert names(pods_to_delete(pods, 3)) == ["unscheduled", "pending", "notready"]


def test_among_ready_pods_doubled_up_then_recently_ready_then_restarts_then_newest_go_first():
    pods = [pod("old", node="a", created=NOW - 500), pod("new", node="b", created=NOW - 10),
            pod("crashy", node="c", restarts=4), pod("fresh", node="d", since=NOW - 5)]
    assert names(pods_to_delete(pods, 3)) == ["fresh", "crashy", "new"]
    doubled = [pod("alone", node="a", since=NOW - 1), pod("twin1", node="b"), pod("twin2", node="b", created=NOW - 5)]
    assert names(pods_to_delete(doubled, 2)) == ["twin2", "twin1"]


def test_more_to_delete_than_pods_deletes_all():
    pods = [pod("a"), pod("b")]
    assert names(pods_to_delete(pods, 5)) == ["a", "b"]


def test_terminating_and_finished_pods_are_not_active():
    assert is_active(pod("a"))
    assert not is_active(pod("b", deleting=True))
    assert not is_active(pod("c", phase="Succeeded"))
    assert not is_active(pod("d", phase="Failed"))


# ---- status ------------------------------------------------------------------------------------


def test_status_counts_ready_available_and_fully_labeled():
    pods = [pod("a", labels={"app": "web", "tier": "front"}), pod("b", ready=False),
            pod("c", labels={"app": "web", "tier": "front"}, since=NOW - 3)]
    status, recheck = compute_status(rs(min_ready=10), pods, NOW)
    assert status == {"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 1,
                      "observedGeneration": 2}
    assert recheck == pytest.approx(7.0), "look again when pod c has been ready for minReadySeconds"
    status, recheck = compute_status(rs(min_ready=0), pods, NOW)
    assert status["availableReplicas"] == 2 and recheck is None


def test_replica_failure_condition_is_set_kept_and_cleared():
    status, _ = compute_status(rs(), [], NOW, ("FailedCreate", "quota exceeded"))
    cond = status["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"], cond["message"]) == \
        ("ReplicaFailure", "True", "FailedCreate", "quota exceeded")
    again, _ = compute_status(rs(status=status), [], NOW + 60, ("FailedCreate", "other"))
    assert again["conditions"] == [cond], "an existing failure condition is kept as it was"
    cleared, _ = compute_status(rs(status=status), [], NOW)
    assert "conditions" not in cleared


# ---- templates and selectors -------------------------------------------------------------------


def test_pod_from_template_has_generate_name_labels_and_a_controller_reference():
    p = pod_from_template(rs())
    assert p["metadata"]["generateName"] == "web-"
    assert p["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert p["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                                 "uid": "rs-uid", "controller": True, "blockOwnerDeletion": True}]
    assert p["spec"]["containers"][0]["image"] == "busybox"


def test_selectors_of_both_kinds():
    assert selector_of(rs()).matches({"app": "web", "x": "y"})
    rc = {"kind": "ReplicationController", "spec": {"selector": {"app": "web"}}}
    assert selector_of(rc).matches({"app": "web"}) and not selector_of(rc).matches({"app": "db"})
    assert not selector_of({"kind": "ReplicationController", "spec": {}}).matches({"app": "web"})


# ---- reconcile with a fake client and a lagging cache ------------------------------------------


class FakeClient:
    def __init__(self, owner: dict, pods: list[dict]) -> None:
        self.owner = owner
        self.pods = {p["metadata"]["name"]: p for p in pods}
        self.created: list[dict] = []
        self.deleted: list[str] = []
        self.patched: list[tuple[str, dict]] = []
        self.statuses: list[dict] = []
        self.seq = itertools.count()

    async def create(self, obj):
        obj = {**obj, "metadata": {**obj["metadata"]}}
        n = next(self.seq)
        obj["metadata"].update(name=f"{obj['metadata']['generateName']}{n}", uid=f"new-{n}", resourceVersion="1",
                               creationTimestamp=ts(NOW))
        self.created.append(obj)
        return obj

    async def delete(self, ref, name, namespace=None, **kw):
        self.deleted.append(name)

    async def patch(self, ref, name, body, namespace=None, **kw):
        self.patched.append((name, body))
        cur = self.pods[name]
        return {**cur, "metadata": {**cur["metadata"], **body["metadata"]}}

    async def get(self, ref, name, namespace=None, **kw):
        return self.owner

    async def update_status(self, obj):
        self.statuses.append(obj["status"])
        return obj


class Recorder:
    def __init__(self):
        self.events = []

    async def event(self, obj, type_, reason, message, field_path=None):
        self.events.append((reason, message))


def fill(inf: Informer, objs: list[dict]) -> None:
    inf._replace(objs, 1)  # what a list does: the cache as of that list


def manager(owner, pods):
    client, recorder = FakeClient(owner, pods), Recorder()
    owners, pod_inf = Informer(object(), "replicasets"), Informer(object(), "pods")
    fill(owners, [owner])
    fill(pod_inf, pods)
    return ReplicaManager(client, "ReplicaSet", owners, pod_inf, recorder), client, recorder, pod_inf


async def test_lagging_cache_never_makes_duplicates():
    m, client, recorder, pods = manager(rs(replicas=5), [])
    await m.reconcile("default.web")
    assert len(client.created) == 5
    assert [r for r, _ in recorder.events] == ["SuccessfulCreate"] * 5
    await m.reconcile("default.web")  # the cache has not seen the new pods yet
    await m.reconcile("default.web")
    assert len(client.created) == 5, "expectations hold back creates until the cache catches up"
    fill(pods, client.created)  # the informer sees them (on_add lowers the expectations)
    await m.reconcile("default.web")
    assert len(client.created) == 5 and not client.deleted
    assert client.statuses[-1]["replicas"] == 5


async def test_surplus_is_deleted_and_adoption_never_steals():
    ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs-uid", "controller": True}
    theirs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "other", "uid": "other-uid", "controller": True}
    pods = [pod("mine1", owner=ref), pod("mine2", owner=ref), pod("mine3", owner=ref, ready=False),
            pod("stolen", owner=theirs), pod("orphan"), pod("stranger", labels={"app": "db"})]
    m, client, recorder, _ = manager(rs(replicas=3), pods)
    await m.reconcile("default.web")
    assert [name for name, _ in client.patched] == ["orphan"], "only the matching orphan is adopted"
    assert client.patched[0][1]["metadata"]["ownerReferences"][0]["uid"] == "rs-uid"
    assert client.deleted == ["mine3"], "4 claimed for 3 replicas: the not-ready one goes"
    assert ("SuccessfulDelete", "Deleted pod: mine3") in recorder.events
    assert not client.created


async def test_owned_pod_that_stops_matching_is_released():
    ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs-uid", "controller": True}
    m, client, _, _ = manager(rs(replicas=1), [pod("moved", owner=ref, labels={"app": "debug"})])
    await m.reconcile("default.web")
    assert client.patched == [("moved", {"metadata": {"resourceVersion": "1", "ownerReferences": []}})]
    assert len(client.created) == 1, "a replacement is created"


async def test_create_errors_set_replica_failure_and_requeue():
    m, client, recorder, _ = manager(rs(replicas=4), [])

    async def refuse(obj):
        raise errors.ApiError(403, 'pods "web-" is forbidden: exceeded quota', "Forbidden")

    client.create = refuse
    with pytest.raises(errors.ApiError):
        await m.reconcile("default.web")
    assert recorder.events == [("FailedCreate", 'Error creating: pods "web-" is forbidden: exceeded quota')], \
        "slow start stops after the first failing batch"
    assert client.statuses[-1]["conditions"][0]["reason"] == "FailedCreate"
    assert m.expectations.satisfied("default.web"), "failed creates are not waited for"


async def test_a_changed_pod_is_seen_afresh_and_an_unchanged_one_reuses_what_was_learnt():
    ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs-uid", "controller": True}
    labels = {"app": "web", "tier": "front"}
    pods = [pod(f"p{i}", owner=ref, labels=labels, ready=False) for i in range(3)]
    m, client, _, pod_inf = manager(rs(replicas=3), pods)
    await m.reconcile("default.web")
    assert client.statuses[-1]["readyReplicas"] == 0
    learnt = dict(m._facts["default.web"][2])
    ready = pod("p1", owner=ref, labels=labels, ready=True)
    ready["metadata"]["resourceVersion"] = "2"
    pod_inf._replace([pods[0], ready, pods[2]], 2)  # p1 became ready: a new object in the cache
    m.owners._replace([{**rs(replicas=3), "status": client.statuses[-1]}], 2)
    await m.reconcile("default.web")
    assert client.statuses[-1]["readyReplicas"] == 1 and client.statuses[-1]["availableReplicas"] == 1
    now = m._facts["default.web"][2]
    assert now[id(pods[0])][1] is learnt[id(pods[0])][1], "an unchanged pod's facts are reused"
    assert id(pods[1]) not in now, "what was learnt of the replaced object is forgotten"


async def test_events_never_hold_up_pod_creation_and_are_dropped_past_the_limit():
    from master.controllers.replicaset import EventQueue

    release = asyncio.Event()

    class Slow:
        def __init__(self):
            self.events = []

        async def event(self, obj, type_, reason, message, field_path=None):
            await release.wait()
            self.events.append(reason)

    q = EventQueue(Slow(), limit=2)
    for _ in range(3):
        q.event({}, "Normal", "SuccessfulCreate", "Created pod")
    assert q.dropped == 1, "a third event while two wait is dropped (Kubernetes' broadcaster drops when full)"
    release.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert q.recorder.events == ["SuccessfulCreate"] * 2 and not q._pending
