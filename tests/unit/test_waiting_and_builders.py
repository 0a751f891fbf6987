"""The tests' own helpers: ``tests.waiting`` (eventually / stays, async and blocking) and ``tests.builders`` (the
objects they build are valid API objects, and mutating one never changes another)."""

from __future__ import annotations

import asyncio
import time

import pytest

from bus.resources import by_kind
from bus.validation import validate_object
from tests import builders
from tests.waiting import eventually, eventually_sync, stays, stays_sync

# ---- eventually / stays ---------------------------------------------------------------------------------------------


async def test_eventually_returns_the_first_truthy_value_of_a_plain_or_async_predicate():
    calls = []

    def pred():
        calls.append(1)
        return "done" if len(calls) >= 3 else None

    assert await eventually(pred, 2, "three calls") == "done"

    async def apred():
        return {"ready": True}

    assert await eventually(apred, 1) == {"ready": True}


async def test_eventually_times_out_naming_what_it_waited_for_and_the_last_value():
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match=r"timed out after 0.3s waiting for the moon \(last: \[\]\)"):
        await eventually(lambda: [], 0.3, "the moon")
    assert 0.3 <= time.monotonic() - t0 < 1.5
    with pytest.raises(AssertionError, match="waiting for late text"):
        await eventually(lambda: False, 0.05, lambda: "late text")


async def test_eventually_retries_ignored_errors_and_fails_at_once_on_others():
    tries = []

    def flaky():
        tries.append(1)
        if len(tries) < 3:
            raise ConnectionError("not yet")
        return True

    assert await eventually(flaky, 2, ignore=(ConnectionError,)) is True
    with pytest.raises(AssertionError, match=r"last error: ConnectionError\('down'\)"):
        await eventually(lambda: (_ for _ in ()).throw(ConnectionError("down")), 0.1, ignore=(ConnectionError,))
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match="no more pods than needed"):  # a predicate's own assertion
        await eventually(lambda: (_ for _ in ()).throw(AssertionError("no more pods than needed")), 5)
    assert time.monotonic() - t0 < 1


async def test_stays_checks_for_the_whole_time_and_fails_when_the_condition_breaks():
    t0 = time.monotonic()
    assert await stays(lambda: "still", 0.3, "the value") == "still"
    assert 0.3 <= time.monotonic() - t0 < 1.5

    state = {"n": 0}

    async def grows():
        await asyncio.sleep(0)
        state["n"] += 1
        return state["n"] < 4

    with pytest.raises(AssertionError, match=r"no longer true: few calls \(value: False\)"):
        await stays(grows, 5, "few calls", interval=0.01)
    assert state["n"] == 4
    with pytest.raises(AssertionError, match="no longer true"):  # false at once: fails at once
        await stays(lambda: None, 5)


def test_blocking_flavours():
    seen = []
    assert eventually_sync(lambda: seen.append(1) or len(seen) >= 2, 2, interval=0.01) is True
    with pytest.raises(AssertionError, match="waiting for nothing"):
        eventually_sync(lambda: 0, 0.05, "nothing")
    t0 = time.monotonic()
    assert stays_sync(lambda: 1, 0.2, interval=0.05) == 1
    assert time.monotonic() - t0 >= 0.2
    with pytest.raises(AssertionError, match="no longer true: never"):
        stays_sync(lambda: False, 1, "never")


# ---- builders ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,obj", [
    ("Pod", builders.pod("web", script="sleep 3600", node="n1", grace=1, labels={"app": "web"})),
    ("Pod", builders.pod("two", containers=["a", builders.container("b", "true", ports=[{"containerPort": 80}])])),
    ("Node", builders.node("n1", ready=True, taints=[builders.taint("dedicated", "NoSchedule", "x")])),
    ("Deployment", builders.deployment("web", replicas=3, script="sleep 3600", strategy=builders.rolling(1, 0))),
    ("ReplicaSet", builders.replicaset("web", replicas=2, grace=1)),
    ("DaemonSet", builders.daemonset("agent", script="sleep 3600")),
    ("Job", builders.job("work", script="true", backoffLimit=2)),
    ("Service", builders.service("web", selector={"app": "web"}, cluster_ip="10.96.0.10")),
    ("ConfigMap", builders.configmap("settings", data={"k": "v"})),
    ("Secret", builders.secret("creds", data={"user": b"admin"})),
    ("Namespace", builders.namespace("shop")),
])
def test_built_objects_are_valid(kind, obj):
    assert obj["kind"] == kind
    _, causes = validate_object(by_kind(kind), obj)
    assert [(c.field, c.message) for c in causes] == []


def test_pod_fields_land_where_kubernetes_has_them():
    p = builders.pod("p", "shop", node="n1", grace=2, phase="Running", ready=True, ready_since=0, ip="10.244.0.5",
                     uid="u1", owners=builders.owner_ref("ReplicaSet", "rs", "rs-uid"), deleting=True,
                     restartPolicy="Never")
    assert p["metadata"] == {"name": "p", "namespace": "shop", "uid": "u1", "deletionTimestamp": builders.DELETING,
                             "ownerReferences": [{"kind": "ReplicaSet", "name": "rs", "uid": "rs-uid",
                                                  "controller": True}]}
    assert p["spec"]["nodeName"] == "n1" and p["spec"]["terminationGracePeriodSeconds"] == 2
    assert p["spec"]["restartPolicy"] == "Never"
    assert p["spec"]["containers"] == [{"name": "main", "image": builders.IMAGE, "imagePullPolicy": "Never"}]
    assert p["status"] == {"phase": "Running", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}],
                           "conditions": [{"type": "Ready", "status": "True",
                                           "lastTransitionTime": "1970-01-01T00:00:00Z"}]}
    assert "status" not in builders.pod("p") and "containers" not in builders.pod("p", bare=True)["spec"]


def test_builders_share_nothing_between_objects():
    c = builders.container("c", "true", env=[{"name": "A", "value": "1"}])
    labels = {"app": "web"}
    a, b = builders.pod("a", containers=[c], labels=labels), builders.pod("b", containers=[c], labels=labels)
    a["spec"]["containers"][0]["env"].append({"name": "B", "value": "2"})
    a["metadata"]["labels"]["x"] = "y"
    assert b["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}] == c["env"]
    assert b["metadata"]["labels"] == {"app": "web"} == labels


def test_images_are_k8n_own_tags():
    assert builders.IMAGE.startswith("k8n/") and builders.IMAGE_ALIAS.startswith("k8n/")
    assert builders.PAUSE_IMAGE.startswith("k8n/")
