"""ResourceQuota, LimitRange and PriorityClass against a real nats-server, API server(s) and the resourcequota
controller: counts and compute resources charged at admission and refused with Kubernetes' messages, usage given
back when objects go or finish, LimitRange defaults on the stored pod, priority classes resolved, and concurrent
creates through two API servers never taking a quota past its hard limit."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bus import errors, roles
from bus.client import ApiClient
from bus.informer import SharedInformerFactory
from bus.roles import Identity
from master.apiserver.server import ApiServer
from master.controllers import resourcequota
from master.controllers.manager import Context
from tests import builders
from tests.conftest import connect_as
from tests.harness import running_controllers
from tests.waiting import eventually

NS = "default"


def quota(name: str, hard: dict, ns: str = NS, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name, "namespace": ns},
            "spec": {"hard": hard, **spec}}


def pod(name: str, ns: str = NS, cpu: str | None = None, memory: str | None = None, limits: dict | None = None,
        **kw) -> dict:
    res: dict = builders.requests(cpu, memory) if cpu or memory else {}
    if limits:
        res["limits"] = limits
    return builders.pod(name, ns, containers=[builders.container("app", resources=res)],
                        automountServiceAccountToken=False, **kw)


def forbidden(exc: pytest.ExceptionInfo) -> str:
    assert exc.value.code == 403, exc.value
    return str(exc.value.message)


@contextlib.asynccontextmanager
async def quota_controller(client: ApiClient):
    ctx = Context(client, SharedInformerFactory(client))
    async with running_controllers(ctx, resourcequota):
        yield


@pytest.fixture
async def controller(client):
    async with quota_controller(client):
        yield


async def status_used(client: ApiClient, name: str, ns: str = NS) -> dict | None:
    q = await client.get("resourcequotas", name, ns)
    return (q.get("status") or {}).get("used")


async def used_is(client: ApiClient, name: str, want: dict, ns: str = NS) -> bool:
    return await status_used(client, name, ns) == want


async def make_quota(client: ApiClient, name: str, hard: dict, ns: str = NS, **spec) -> dict:
    """Create a quota and wait for the controller to compute its usage (until then it limits nothing)."""
    await client.create(quota(name, hard, ns, **spec))
    await eventually(lambda: status_used(client, name, ns), 10, f"quota {name} to have its usage computed")
    return await client.get("resourcequotas", name, ns)


# ---- object counts -------------------------------------------------------------------------------------------


async def test_pod_count_is_enforced_with_kubernetes_message_and_released_on_delete(client, controller):
    q = await make_quota(client, "q", {"pods": "2", "configmaps": "1"})
    assert q["status"] == {"hard": {"pods": "2", "configmaps": "1"}, "used": {"pods": "0", "configmaps": "0"}}
    for i in range(2):
        await client.create(pod(f"p{i}"))
    assert await status_used(client, "q") == {"pods": "2", "configmaps": "0"}
    with pytest.raises(errors.ApiError) as exc:
        await client.create(pod("p2"))
    assert forbidden(exc) == ('pods "p2" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, '
                              'limited: pods=2')
    await client.create(builders.configmap("c0"))
    with pytest.raises(errors.ApiError) as exc:
        await client.create(builders.configmap("c1"))
    assert forbidden(exc) == ('configmaps "c1" is forbidden: exceeded quota: q, requested: configmaps=1, '
                              'used: configmaps=1, limited: configmaps=1')

    await client.delete("pods", "p0", NS, grace_period_seconds=0)
    await eventually(lambda: used_is(client, "q", {"pods": "1", "configmaps": "1"}), 10, "the deleted pod released")
    await client.create(pod("p2"))


async def test_finished_pods_use_nothing_but_their_count(client, controller):
    await make_quota(client, "q", {"pods": "1", "count/pods": "5", "requests.cpu": "1"})
    p = await client.create(pod("done", cpu="500m"))
    assert await status_used(client, "q") == {"pods": "1", "count/pods": "1", "requests.cpu": "500m"}
    p["status"] = {**p.get("status", {}), "phase": "Succeeded"}
    await client.update_status(p)
    await eventually(lambda: used_is(client, "q", {"pods": "0", "count/pods": "1", "requests.cpu": "0"}), 10,
                     "the finished pod's pods and cpu released")
    await client.create(pod("next", cpu="1"))


async def test_services_nodeports_and_generic_counts(client, controller):
    await make_quota(client, "q", {"services": "3", "services.nodeports": "1", "count/deployments.apps": "1"})
    await client.create(builders.service("np", selector={"app": "x"}, ports=[{"port": 80}], type="NodePort"))
    with pytest.raises(errors.ApiError) as exc:
        await client.create(builders.service("np2", selector={"app": "x"}, ports=[{"port": 80}], type="NodePort"))
    assert forbidden(exc) == ('services "np2" is forbidden: exceeded quota: q, requested: services.nodeports=1, '
                              'used: services.nodeports=1, limited: services.nodeports=1')
    await client.create(builders.service("plain", selector={"app": "x"}, ports=[{"port": 80}]))
    await client.create(builders.deployment("d1"))
    with pytest.raises(errors.ApiError) as exc:
        await client.create(builders.deployment("d2"))
    assert forbidden(exc) == ('deployments.apps "d2" is forbidden: exceeded quota: q, requested: '
                              'count/deployments.apps=1, used: count/deployments.apps=1, '
                              'limited: count/deployments.apps=1')


# ---- compute resources ---------------------------------------------------------------------------------------


async def test_compute_quota_requires_requests_and_refuses_over_hard(client, controller):
    await make_quota(client, "compute", {"requests.cpu": "1", "limits.memory": "1Gi"})
    with pytest.raises(errors.ApiError) as exc:
        await client.create(pod("bare"))
    assert forbidden(exc) == ('pods "bare" is forbidden: failed quota: compute: must specify limits.memory for: app; '
                              'requests.cpu for: app')
    await client.create(pod("a", cpu="600m", limits={"memory": "512Mi"}))
    assert await status_used(client, "compute") == {"requests.cpu": "600m", "limits.memory": "512Mi"}
    with pytest.raises(errors.ApiError) as exc:
        await client.create(pod("b", cpu="600m", limits={"memory": "256Mi"}))
    assert forbidden(exc) == ('pods "b" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, '
                              'used: requests.cpu=600m, limited: requests.cpu=1')
    await client.create(pod("c", cpu="400m", limits={"memory": "512Mi"}))
    assert await status_used(client, "compute") == {"requests.cpu": "1", "limits.memory": "1Gi"}


async def test_scoped_quota_counts_only_pods_in_scope(client, controller):
    await make_quota(client, "be", {"pods": "1"}, scopes=["BestEffort"])
    await client.create(pod("be1"))
    await client.create(pod("burstable", cpu="100m"))  # not BestEffort: not this quota's
    with pytest.raises(errors.ApiError) as exc:
        await client.create(pod("be2"))
    assert "exceeded quota: be, requested: pods=1, used: pods=1, limited: pods=1" in forbidden(exc)


# ---- LimitRange ----------------------------------------------------------------------------------------------


def limit_range(name: str, *items: dict) -> dict:
    return {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": name, "namespace": NS},
            "spec": {"limits": list(items)}}


async def test_limitrange_defaults_are_on_the_created_pod_and_bounds_refused(client):
    lr = await client.create(limit_range("lr", {"type": "Container", "default": {"cpu": "500m", "memory": "128Mi"},
                                                "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "1"}}))
    assert lr["spec"]["limits"][0]["defaultRequest"] == {"cpu": "100m", "memory": "128Mi"}  # defaulted from default
    p = await client.create(pod("defaulted"))
    assert p["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "500m", "memory": "128Mi"},
                                                       "requests": {"cpu": "100m", "memory": "128Mi"}}
    assert p["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container app; cpu, memory limit for container app")
    assert p["status"]["qosClass"] == "Burstable"
    with pytest.raises(errors.ApiError) as exc:
        await client.create(pod("big", limits={"cpu": "2"}))
    assert forbidden(exc) == 'pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2'
    two = builders.pod("two", NS, automountServiceAccountToken=False, containers=[
        builders.container("a", resources={"limits": {"cpu": "1500m"}}),
        builders.container("b", resources={"limits": {"cpu": "2"}})])
    with pytest.raises(errors.ApiError) as exc:
        await client.create(two)
    assert forbidden(exc) == ('pods "two" is forbidden: [maximum cpu usage per Container is 1, but limit is 1500m, '
                              'maximum cpu usage per Container is 1, but limit is 2]')


async def test_limitrange_validation_messages(client):
    with pytest.raises(errors.Invalid) as exc:
        await client.create(limit_range("bad", {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}))
    assert exc.value.causes[0] == {"reason": "FieldValueInvalid", "field": "spec.limits[0].min[cpu]",
                                   "message": 'Invalid value: "2": min value 2 is greater than max value 1'}


# ---- PriorityClass -------------------------------------------------------------------------------------------


def priority_class(name: str, value: int, **kw) -> dict:
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": value, **kw}


async def test_system_priority_classes_exist_and_resolve_on_pods(client):
    pcs = {o["metadata"]["name"]: o["value"] for o in (await client.list("priorityclasses"))[0]}
    assert pcs == {"system-cluster-critical": 2000000000, "system-node-critical": 2000001000}
    p = await client.create(pod("critical", priorityClassName="system-node-critical"))
    assert (p["spec"]["priority"], p["spec"]["preemptionPolicy"]) == (2000001000, "PreemptLowerPriority")
    plain = await client.create(pod("plain"))
    assert plain["spec"]["priority"] == 0
    with pytest.raises(errors.ApiError) as exc:
        await client.delete("priorityclasses", "system-node-critical")
    assert forbidden(exc) == ('priorityclasses.scheduling.k8s.io "system-node-critical" is forbidden: this is a '
                              'system priority class and cannot be deleted')


async def test_user_priority_classes_default_and_refusals(client):
    await client.create(priority_class("high", 1000, preemptionPolicy="Never"))
    p = await client.create(pod("hi", priorityClassName="high"))
    assert (p["spec"]["priority"], p["spec"]["preemptionPolicy"]) == (1000, "Never")
    with pytest.raises(errors.ApiError) as exc:
        await client.create(pod("nope", priorityClassName="missing"))
    assert forbidden(exc) == 'pods "nope" is forbidden: no PriorityClass with name missing was found'
    with pytest.raises(errors.ApiError) as exc:
        await client.create(pod("own", priorityClassName="high", priority=5))
    assert forbidden(exc) == ('pods "own" is forbidden: the integer value of priority (5) must not be provided in pod '
                              'spec; priority admission controller computed 1000 from the given PriorityClass name')
    with pytest.raises(errors.Invalid) as exc:
        await client.create(priority_class("huge", 2000000000))
    assert exc.value.causes[0]["message"] == "Forbidden: maximum allowed value of a user defined priority is 1000000000"
    with pytest.raises(errors.Invalid) as exc:
        await client.create(priority_class("system-mine", 10))
    assert exc.value.causes[0]["field"] == "metadata.name"

    await client.create(priority_class("everyone", 7, globalDefault=True))
    p = await client.create(pod("defaulted"))
    assert (p["spec"]["priorityClassName"], p["spec"]["priority"]) == ("everyone", 7)
    with pytest.raises(errors.ApiError) as exc:
        await client.create(priority_class("another", 8, globalDefault=True))
    assert forbidden(exc) == ('priorityclasses.scheduling.k8s.io "another" is forbidden: PriorityClass everyone is '
                              'already marked as default. Only one default can exist')


# ---- concurrency -----------------------------------------------------------------------------------------------


async def test_concurrent_creates_through_two_api_servers_never_exceed_hard(nats_server, apiserver, client):
    nc2 = await connect_as(nats_server, Identity(roles.APISERVER))
    second = ApiServer(nc2)
    await second.start()
    clients = [await ApiClient.connect(nats_server.url) for _ in range(4)]
    hard = 7
    served: dict[str, int] = {}
    for name, api in (("first", apiserver), ("second", second)):
        def spy(name=name, handle=api.handlers.handle):
            async def handle_(req):
                if req.res.plural == "pods" and req.verb == "create":
                    served[name] = served.get(name, 0) + 1
                return await handle(req)
            return handle_
        api.handlers.handle = spy()
    try:
        async with quota_controller(client):
            # two quotas on every pod: "small" on the count, "cpu" (room for 6 pods of 10m) binds first
            await make_quota(client, "small", {"pods": str(hard), "configmaps": str(hard)})
            await make_quota(client, "cpu", {"requests.cpu": "60m"})
            for round_ in range(2):
                before, _ = await client.list("pods", NS)
                results = await asyncio.gather(*(
                    clients[i % len(clients)].create(pod(f"r{round_}-{i}", cpu="10m")) for i in range(40)),
                    return_exceptions=True)
                made = [r for r in results if isinstance(r, dict)]
                refused = [r for r in results if not isinstance(r, dict)]
                # Refused by a quota, and mostly by "cpu", which binds first. Two quotas are charged one after the
                # other (as Kubernetes' evaluator does), so while a request "cpu" refuses still holds its charge on
                # "small", another may be told "exceeded quota: small": never a create beyond either.
                assert all(isinstance(r, errors.ApiError) and r.code == 403 and "exceeded quota: " in r.message
                           for r in refused), refused[:3]
                pods, _ = await client.list("pods", NS)
                assert made and len(pods) == len(before) + len(made)
                assert len(pods) <= 6, f"{len(pods)} pods of 10m: the cpu quota (60m) was exceeded"
                # each quota charged exactly what was made: nothing a refused create was charged stays charged
                await eventually(lambda: used_is(client, "small", {"pods": str(len(pods)), "configmaps": "0"}), 10,
                                 "small charged what was made")
                assert await status_used(client, "cpu") == {"requests.cpu": f"{10 * len(pods)}m"}
                for p in pods[:3]:  # make room for the next round: released by the controller
                    await client.delete("pods", p["metadata"]["name"], NS, grace_period_seconds=0)
                left = max(0, len(pods) - 3)
                await eventually(lambda: used_is(client, "cpu", {"requests.cpu": f"{10 * left}m"}), 10,
                                 "the deleted pods released")
            assert served.get("first") and served.get("second"), served  # both servers admitted pods at once
    finally:
        for c in clients:
            await c.close()
        await second.stop()
        await nc2.close()


async def test_a_defaulted_limit_below_the_request_is_invalid(client):
    await client.create(limit_range("lr", {"type": "Container", "default": {"cpu": "500m"}}))
    with pytest.raises(errors.Invalid) as exc:
        await client.create(pod("greedy", cpu="1"))
    assert exc.value.causes[0]["field"] == "spec.containers[0].resources.requests[cpu]"
    assert exc.value.causes[0]["message"] == 'Invalid value: "1": must be less than or equal to cpu limit of 500m'
