"""Property-based fuzzing of API requests: no payload crashes or wedges the API server, and every
answer is a Kubernetes Status with a client-error code (never a 500)."""

from __future__ import annotations

import asyncio
import signal

from bus import roles
from bus.roles import Identity
from tests.conftest import connect_as
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus import codec, subjects
from bus.resources import RESOURCES
from tests.conftest import start_apiserver_process, wait_for_api

pytestmark = pytest.mark.slow

VERBS = ["create", "get", "list", "update", "patch", "delete", "deletecollection", "bogus"]
CLIENT_ERRORS = {400, 403, 404, 405, 409, 410, 413, 415, 422}
OK = {200, 201}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)

VALID_POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fz", "namespace": "default"},
    "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80}],
                             "resources": {"limits": {"cpu": "100m"}}}]},
}
PATHS = [("metadata",), ("metadata", "name"), ("metadata", "labels"), ("spec",), ("spec", "containers"),
         ("spec", "containers", 0), ("spec", "containers", 0, "image"), ("spec", "containers", 0, "ports"),
         ("spec", "containers", 0, "resources", "limits", "cpu"), ("spec", "restartPolicy"), ("spec", "volumes"),
         ("spec", "nodeSelector"), ("spec", "tolerations"), ("spec", "affinity"), ("status",), ("kind",)]


def mutate(path: tuple, value):
    import copy

    obj = copy.deepcopy(VALID_POD)
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return obj


requests = st.one_of(
    st.tuples(st.sampled_from(RESOURCES).map(lambda r: r.plural), st.sampled_from(VERBS), st.binary(max_size=200)),
    st.tuples(
        st.sampled_from(RESOURCES).map(lambda r: r.plural), st.sampled_from(VERBS),
        st.fixed_dictionaries({"namespace": st.sampled_from(["default", "kube-system", "", "x" * 70]),
                               "name": st.text(max_size=20), "body": json_values,
                               "options": st.dictionaries(st.sampled_from(
                                   ["labelSelector", "fieldSelector", "patchType", "gracePeriodSeconds",
                                    "propagationPolicy", "preconditions", "dryRun"]), json_values, max_size=3)},
                              optional={"subresource": st.sampled_from(["status", "scale", "binding", "nope"])})
        .map(codec.pack)),
    st.tuples(st.just("pods"), st.sampled_from(["create", "update", "patch"]),
              st.tuples(st.sampled_from(PATHS), json_values).map(
                  lambda pv: codec.pack({"namespace": "default", "name": "fz", "body": mutate(*pv)}))),
)


@pytest.fixture
def apiserver_proc(nats_server, tmp_path):
    proc = start_apiserver_process(nats_server.url, tmp_path / "api.log")
    asyncio.run(wait_for_api(nats_server.url))
    yield proc
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


def test_fuzzed_requests_never_crash_the_apiserver(nats_server, apiserver_proc):
    with asyncio.Runner() as runner:
        nc = runner.run(connect_as(nats_server, Identity(roles.ADMIN)))

        async def send(subject: str, data: bytes) -> dict:
            msg = await nc.request(subject, data, timeout=10)
            return codec.from_json(msg.data) if codec.is_json(data) else codec.unpack(msg.data)

        @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
        @given(requests)
        def check(req):
            resource, verb, data = req
            reply = runner.run(send(subjects.api_subject("admin", resource, verb), data))
            assert isinstance(reply, dict)
            code = reply["code"]
            assert code in OK | CLIENT_ERRORS, reply
            if code >= 400:
                assert reply["body"]["kind"] == "Status" and reply["body"]["message"]

        check()
        # still alive and correct afterwards
        reply = runner.run(send(subjects.api_subject("admin", "namespaces", "get"), codec.pack({"name": "default"})))
        assert reply["code"] == 200
        runner.run(nc.close())
    assert apiserver_proc.poll() is None
