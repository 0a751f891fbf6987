"""Informer against an in-memory store with the Store list()/watch() interface."""

import asyncio
from functools import partial

import pytest

from bus import errors
from bus.controller import Controller
from bus.informer import BY_NAMESPACE, BY_NODE, BY_OWNER, Informer, SharedInformerFactory
from bus.store import MODIFIED, WatchEvent
from tests import builders
from tests.builders import owner_ref
from tests.unit.fakestore import FakeStore
from tests.waiting import eventually

pytestmark = pytest.mark.asyncio
pod = partial(builders.pod, phase="Pending", labels={})  # what the informer sees of a new pod
RS1 = owner_ref("ReplicaSet", "rs", "rs-1", controller=None)


class Recorder:
    def __init__(self):
        self.events = []

    def on_add(self, obj):
        self.events.append(("add", obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))

    def on_update(self, old, new):
        self.events.append(("update", new["metadata"]["name"], old["metadata"]["resourceVersion"],
                            new["metadata"]["resourceVersion"]))

    def on_delete(self, obj):
        self.events.append(("delete", obj["metadata"]["name"], obj["status"]["phase"]))

    def handlers(self):
        return {"on_add": self.on_add, "on_update": self.on_update, "on_delete": self.on_delete}


async def settle(n=20):
    for _ in range(n):
        await asyncio.sleep(0)


@pytest.fixture
async def setup():
    store = FakeStore()
    store.put(pod("a", node="n1", owners=RS1))
    store.put(pod("b", ns="kube-system", node="n2"))
    rec = Recorder()
    inf = Informer(store, "pods", relist_backoff=(0, 0))
    inf.add_handler(**rec.handlers())
    yield store, inf, rec
    await inf.stop()


async def test_initial_sync_fills_cache_indexes_and_handlers(setup):
    store, inf, rec = setup
    assert not inf.synced
    assert await inf.start(timeout=1)
    assert sorted(inf.keys()) == ["default.a", "kube-system.b"]
    assert inf.get("default", "a")["spec"]["nodeName"] == "n1"
    assert inf.get("default", "missing") is None
    assert inf.get_by_key("kube-system.b")["metadata"]["name"] == "b"
    assert [o["metadata"]["name"] for o in inf.list("kube-system")] == ["b"]
    assert len(inf.list()) == 2
    assert [o["metadata"]["name"] for o in inf.by_index(BY_NODE, "n1")] == ["a"]
    assert [o["metadata"]["name"] for o in inf.by_index(BY_OWNER, "rs-1")] == ["a"]
    assert inf.by_index(BY_NAMESPACE, "other") == []
    assert sorted(rec.events) == [("add", "a", "1"), ("add", "b", "2")]
    assert inf.last_revision == 2 and store.watch_since == [2]


async def test_watch_events_update_cache_indexes_and_handlers(setup):
    store, inf, rec = setup
    await inf.start(timeout=1)
    rec.events.clear()
    store.put(pod("c", node="n1"))
    store.put(pod("a", node="n3", owners=RS1, phase="Running"))
    store.remove("default", "c")
    await settle()
    assert rec.events == [("add", "c", "3"), ("update", "a", "1", "4"), ("delete", "c", "Pending")]
    assert inf.get("default", "c") is None
    assert inf.by_index(BY_NODE, "n1") == []  # a moved to n3, c is gone
    assert [o["metadata"]["name"] for o in inf.by_index(BY_NODE, "n3")] == ["a"]
    assert inf.last_revision == 5


async def test_delete_handler_gets_final_state(setup):
    store, inf, rec = setup
    await inf.start(timeout=1)
    rec.events.clear()
    final = store.objects["default.a"]
    final = {**final, "status": {"phase": "Succeeded"}}
    store.objects["default.a"] = final
    store.remove("default", "a")
    await settle()
    assert rec.events == [("delete", "a", "Succeeded")]


async def test_stale_and_out_of_order_events_are_ignored(setup):
    store, inf, rec = setup
    await inf.start(timeout=1)
    rec.events.clear()
    w = store.watches[-1]
    newer = pod("a", phase="Running")
    newer["metadata"]["resourceVersion"] = "10"
    older = pod("a", phase="Failed")
    older["metadata"]["resourceVersion"] = "7"
    w.push(WatchEvent(MODIFIED, newer, 10, "default.a"))
    w.push(WatchEvent(MODIFIED, older, 7, "default.a"))  # arrives late
    replay = pod("b", ns="kube-system")
    replay["metadata"]["resourceVersion"] = "2"
    w.push(WatchEvent(MODIFIED, replay, 2, "kube-system.b"))  # what the list already held
    await settle()
    assert inf.get("default", "a")["status"]["phase"] == "Running"
    assert rec.events == [("update", "a", "1", "10")]
    assert inf.last_revision == 10


async def test_gone_relists_and_delivers_the_difference(setup):
    store, inf, rec = setup
    await inf.start(timeout=1)
    rec.events.clear()
    # changes the watch never delivered (e.g. the bucket was compacted under a slow watcher)
    store.remove("default", "a", emit=False)
    store.put(pod("b", ns="kube-system", node="n2", phase="Running"), emit=False)
    store.put(pod("c"), emit=False)
    store.break_watches(errors.gone("too old resource version"))
    await settle()
    assert store.list_calls == 2
    assert sorted(rec.events) == [
        ("add", "c", "5"),
        ("delete", "a", "Pending"),  # last known state
        ("update", "b", "2", "4"),
    ]
    assert sorted(inf.keys()) == ["default.c", "kube-system.b"]
    assert inf.by_index(BY_OWNER, "rs-1") == []
    assert store.watch_since == [2, 5]  # resumed from the relist's revision
    store.put(pod("d"))
    await settle()
    assert inf.get("default", "d") is not None


async def test_watch_ending_unexpectedly_relists(setup):
    store, inf, rec = setup
    await inf.start(timeout=1)
    rec.events.clear()
    store.put(pod("c"), emit=False)
    store.break_watches()  # plain end of iteration
    await settle()
    assert rec.events == [("add", "c", "3")]
    assert store.watch_since == [2, 3]


async def test_list_failure_is_retried(setup):
    store, inf, rec = setup
    real_list = store.list
    failures = []

    async def flaky(res, namespace=None):
        if not failures:
            failures.append(1)
            raise errors.unavailable("bus down")
        return await real_list(res, namespace)

    store.list = flaky
    assert await inf.start(timeout=1)
    assert failures == [1] and len(inf.keys()) == 2


async def test_failing_handler_does_not_stop_informer(setup):
    store, inf, rec = setup

    def boom(*_):
        raise RuntimeError("handler bug")

    inf.add_handler(on_add=boom, on_update=boom, on_delete=boom)
    inf.add_index("broken", lambda o: 1 / 0)
    await inf.start(timeout=1)
    store.put(pod("c"))
    store.remove("default", "c")
    await settle()
    assert ("add", "c", "3") in rec.events and ("delete", "c", "Pending") in rec.events
    assert inf._task is not None and not inf._task.done()


async def test_custom_index_and_late_handler_replay(setup):
    store, inf, rec = setup
    await inf.start(timeout=1)
    inf.add_index("by_phase", lambda o: [o["status"]["phase"]])
    assert len(inf.by_index("by_phase", "Pending")) == 2
    store.put(pod("a", phase="Running"))
    await settle()
    assert [o["metadata"]["name"] for o in inf.by_index("by_phase", "Running")] == ["a"]
    late = []
    inf.add_handler(on_add=lambda o: late.append(o["metadata"]["name"]))
    assert sorted(late) == ["a", "b"]
    with pytest.raises(KeyError):
        inf.by_index("nope", "x")


async def test_get_copy_is_independent(setup):
    store, inf, rec = setup
    await inf.start(timeout=1)
    c = inf.get_copy("default", "a")
    c["metadata"]["labels"]["x"] = "y"
    c["spec"]["nodeName"] = "other"
    assert inf.get("default", "a")["metadata"]["labels"] == {}
    assert inf.get("default", "a")["spec"]["nodeName"] == "n1"
    assert inf.get_copy("default", "zzz") is None


async def test_resync_redelivers_updates(setup):
    store, inf, rec = setup
    inf.resync_period = 0.01
    await inf.start(timeout=1)
    rec.events.clear()
    await eventually(lambda: ("update", "a", "1", "1") in rec.events and ("update", "b", "2", "2") in rec.events,
                     1, "both pods redelivered")


async def test_stop_ends_the_watch(setup):
    store, inf, rec = setup
    await inf.start(timeout=1)
    w = store.watches[-1]
    await inf.stop()
    assert w.stopped and inf._task is None
    store.put(pod("c"))
    await settle()
    assert inf.get("default", "c") is None


async def test_shared_factory_hands_out_one_informer_per_query():
    store = FakeStore()
    store.put(pod("a"))
    store.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    f = SharedInformerFactory(store)
    pods = f.informer("pods")
    assert f.informer("po") is pods
    assert f.informer("pods", namespace="default") is not pods
    nodes = f.informer("nodes", namespace="ignored-for-cluster-scoped")
    assert nodes.namespace is None
    await f.start()
    assert await f.wait_for_cache_sync(timeout=1)
    assert pods.get("default", "a") is not None
    assert nodes.keys() == ["n1"] and pods.keys() == ["default.a"]
    await f.stop()
    assert all(i._task is None for i in f.informers())


async def test_controller_turns_events_into_owner_keys_and_reconciles():
    store = FakeStore()
    store.put({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "namespace": "default"}})
    store.put(pod("web-1", owners=owner_ref("ReplicaSet", "web", "u")))
    store.put(pod("loose"))
    rs_inf, pod_inf = Informer(store, "replicasets"), Informer(store, "pods")
    seen = []

    async def reconcile(key):
        seen.append((key, rs_inf.get_by_key(key) is not None))

    ctl = Controller("rs", reconcile, workers=2)
    ctl.watches(rs_inf)
    ctl.owns(pod_inf, "ReplicaSet")
    run = asyncio.create_task(ctl.run(sync_timeout=1))
    await rs_inf.start(timeout=1)
    await pod_inf.start(timeout=1)
    await settle()
    assert seen == [("default.web", True)]  # the rs add and its pod's add collapsed into one key
    store.remove("default", "web-1")
    await settle()
    assert seen[-1] == ("default.web", True) and len(seen) == 2
    ctl.shutdown()
    await asyncio.wait_for(run, 1)
    await rs_inf.stop()
    await pod_inf.stop()
