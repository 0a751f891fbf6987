"""The Job reconciler against a fake client and informers whose cache lags behind: expectations keep
a second pass from creating the same pods again; a Job without a selector is given one before any
pod is made. (The fakes are shared with test_daemonset_controller.)"""

from __future__ import annotations

import asyncio

import pytest

from bus.informer import Informer
from master.controllers.job import JobController

pytestmark = pytest.mark.asyncio


class LaggingStore:
    """Lists a fixed set of objects; the watch never delivers anything (a cache that lags)."""

    def __init__(self, objects):
        self.objects = objects

    async def list(self, res, namespace=None):
        return list(self.objects), 1

    async def watch(self, res, namespace=None, since=None):
        return _Silent()


class _Silent:
    last_revision = 1

    def __aiter__(self):
        return self

    async def __anext__(self):
        await asyncio.Event().wait()

    async def stop(self):
        pass


class FakeClient:
    def __init__(self):
        self.created, self.patched, self.statuses = [], [], []

    async def create(self, obj):
        made = {**obj, "metadata": {**obj["metadata"], "name": f"pod-{len(self.created)}"}}
        self.created.append(made)
        return made

    async def patch(self, plural, name, body, namespace=None):
        self.patched.append((plural, name, body))
        return body

    async def update_status(self, obj):
        self.statuses.append(obj["status"])
        return obj

    async def delete(self, *a, **kw):
        raise AssertionError("nothing to delete here")


class Recorder:
    def __init__(self):
        self.events = []

    async def event(self, obj, type_, reason, message, field_path=None):
        self.events.append(reason)


async def informer(plural, objects):
    inf = Informer(LaggingStore(objects), plural)
    await inf.start()
    return inf


def job_obj(selector=True):
    spec = {"parallelism": 2, "completions": 4, "backoffLimit": 6,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}
    if selector:
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}
    return {"apiVersion": "batch/v1", "kind": "Job", "spec": spec, "status": {},
            "metadata": {"name": "j", "namespace": "default", "uid": "u1", "resourceVersion": "1"}}


async def test_job_expectations_prevent_duplicate_creates_while_the_cache_lags():
    client, rec = FakeClient(), Recorder()
    jobs, pods = await informer("jobs", [job_obj()]), await informer("pods", [])
    jc = JobController(client, jobs, pods, rec)
    await jc.reconcile("default.j")
    await jc.reconcile("default.j")
    assert len(client.created) == 2, "parallelism 2, and no more while the pods are not seen yet"
    assert rec.events.count("SuccessfulCreate") == 2
    assert client.statuses[-1]["active"] == 2
    for inf in (jobs, pods):
        await inf.stop()


async def test_job_without_selector_is_patched_before_pods_are_made():
    client = FakeClient()
    jobs, pods = await informer("jobs", [job_obj(selector=False)]), await informer("pods", [])
    jc = JobController(client, jobs, pods, Recorder())
    await jc.reconcile("default.j")
    assert client.created == []
    (plural, name, body), = client.patched
    assert (plural, name) == ("jobs", "j")
    assert body["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}
    for inf in (jobs, pods):
        await inf.stop()
