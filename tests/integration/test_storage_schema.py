"""Stored-schema versions (bus.schema) and ``k8n upgrade plan|apply`` against a real nats-server and API server:

- a new cluster writes schema 2 (the ``K8n-Schema`` header; a Secret's data as raw bytes in the bucket) and serves
  the API form on get, list, watch and history;
- a cluster whose storage schema is 1 (what k8n 0.1 wrote: no header, base64 text) is read alike; ``upgrade plan``
  names what keeps the schema back (a control-plane connection that says no version, as 0.1's did; a Node whose
  agent reports 0.1.0) and ``apply`` is refused with a Conflict naming them; once they are gone ``apply`` raises the
  schema and rewrites every older value, which reads back unchanged.
"""

from __future__ import annotations

import asyncio
import base64

import nats
import pytest
from nats.aio.client import RawCredentials

from bus import errors, roles, schema, subjects
from bus.cli.upgrade import ask
from bus.client import ApiClient
from bus.history import read_object
from bus.resources import by_plural
from bus.roles import Identity
from bus.store import NatsStore
from tests import builders as b
from tests.rig import K8N
from tests.waiting import eventually

NS = "kube-system"
SECRET_BYTES = b"s3cr3t\x00\xff binary"


@pytest.fixture
async def cluster(nats_server, monkeypatch):
    """An API server in this loop that holds the cluster's bus keys (it lists the bus's connections with them)."""
    from master.apiserver.server import ApiServer
    from tests.conftest import connect_as

    monkeypatch.setenv("K8N_BUS_AUTH_DIR", str(nats_server.auth.dir))
    nc = await connect_as(nats_server, Identity(roles.APISERVER))
    api = ApiServer(nc)
    await api.start()
    client = await ApiClient.connect(nats_server.url)
    yield api, client
    await client.close()
    await api.stop()
    await nc.close()


async def raw(nc, bucket: str, ns: str, name: str):
    return await nc.jetstream().get_msg(subjects.stream(bucket), subject=subjects.kv_subject(bucket, ns, name),
                                        direct=True)


def node(name: str, version: str) -> dict:
    """A Node as a k8n agent of ``version`` registers it."""
    return {**b.node(name), "status": {"nodeInfo": {"kubeletVersion": f"v1.32.0-k8n.{version}"}}}


def secret_body() -> dict:
    return b.secret("creds", NS, data={"token": SECRET_BYTES})


async def test_a_new_cluster_writes_the_newest_schema_and_serves_the_api_form(cluster):
    api, client = cluster
    cm = await client.get("configmaps", schema.STORAGE_CONFIGMAP, NS)
    assert cm["data"] == {"schema": str(schema.CURRENT)}
    assert (await ask(client, "apply", 30))["objects"] == 0, "a new cluster has nothing in an older schema"
    watch = await client.watch("secrets", NS)
    made = await client.create(secret_body())
    stored = await raw(client.nc, "secrets", NS, "creds")
    assert stored.headers[schema.HEADER] == "2"
    assert SECRET_BYTES in stored.data, "schema 2 keeps a Secret's bytes as they are"
    assert base64.b64encode(SECRET_BYTES) not in stored.data
    want = base64.b64encode(SECRET_BYTES).decode()
    assert made["data"] == {"token": want}
    assert (await client.get("secrets", "creds", NS))["data"] == {"token": want}
    assert [s["data"] for s in (await client.list("secrets", NS))[0] if s["metadata"]["name"] == "creds"] == \
        [{"token": want}]
    async for ev in watch:
        if ev.object["metadata"]["name"] == "creds":
            assert ev.object["data"] == {"token": want}
            break
    await watch.stop()
    assert [r["object"]["data"] for r in await read_object(client.nc, by_plural("secrets"), NS, "creds")] == \
        [{"token": want}]


async def test_an_old_schema_is_read_and_upgrade_apply_waits_for_old_components_then_rewrites(cluster, nats_server):
    api, client = cluster
    # the cluster as k8n 0.1 left it: storage schema 1, values without the header, a Secret's data as base64 text
    cm = await client.get("configmaps", schema.STORAGE_CONFIGMAP, NS)
    cm["data"] = {"schema": "1"}
    await client.update(cm)
    await eventually(lambda: api.store.write_schema == schema.LEGACY, 5, "the API server follows the storage schema")
    await client.create(secret_body())
    await client.create(b.configmap("plain", NS, data={"a": "1"}))
    stored = await raw(client.nc, "secrets", NS, "creds")
    assert schema.HEADER not in (stored.headers or {})
    assert base64.b64encode(SECRET_BYTES) in stored.data
    want = base64.b64encode(SECRET_BYTES).decode()
    assert (await client.get("secrets", "creds", NS))["data"] == {"token": want}

    # a controller manager of k8n 0.1 (its connection names its identity and no version) and a 0.1 agent's Node
    old_cm = await nats.connect(nats_server.url, name="controller-manager", user_credentials=RawCredentials(
        nats_server.auth.mint(Identity(roles.CONTROLLER_MANAGER))),
        inbox_prefix=Identity(roles.CONTROLLER_MANAGER).inbox_prefix)
    await client.create(node("old-agent", "0.1.0"))
    plan = await ask(client, "plan", 10)
    assert plan["storageSchema"] == 1 and plan["latestSchema"] == 2
    listed = {c["identity"]: c["version"] for c in plan["components"]}
    assert listed.get("controller-manager") == "0.1.0" and listed.get("apiserver") == "0.2.0", plan["components"]
    assert any("controller-manager" in x for x in plan["blockers"]), plan["blockers"]
    assert any("node old-agent" in x for x in plan["blockers"]), plan["blockers"]
    with pytest.raises(errors.ApiError) as refused:
        await ask(client, "apply", 30)
    assert refused.value.code == 409 and "controller-manager" in refused.value.message
    assert api.store.write_schema == schema.LEGACY

    await old_cm.close()
    await client.delete("nodes", "old-agent")
    done = await ask(client, "apply", 60)
    assert done["storageSchema"] == 2 and done["migrated"].get("secrets", 0) >= 1, done
    assert done["migrated"].get("configmaps", 0) >= 1
    stored = await raw(client.nc, "secrets", NS, "creds")
    assert stored.headers[schema.HEADER] == "2" and SECRET_BYTES in stored.data
    assert (await client.get("secrets", "creds", NS))["data"] == {"token": want}
    assert (await client.get("configmaps", "plain", NS))["data"] == {"a": "1"}
    assert (await client.get("configmaps", schema.STORAGE_CONFIGMAP, NS))["data"] == {"schema": "2"}
    again = await ask(client, "apply", 60)
    assert again["objects"] == 0, "nothing is left in an older schema"
    # every value of every bucket now carries the newest schema
    store = NatsStore(client.nc)
    for bucket in ("secrets", "configmaps", "namespaces"):
        res = by_plural(bucket)
        for obj in (await store.list(res))[0]:
            m = await raw(client.nc, bucket, obj["metadata"].get("namespace"), obj["metadata"]["name"])
            assert (m.headers or {}).get(schema.HEADER) == "2", (bucket, obj["metadata"]["name"])


async def test_upgrade_plan_from_the_cli_names_the_components(cluster, nats_server):
    """``k8n upgrade plan`` prints the components and the schema (run by a person, as the admin)."""
    proc = await asyncio.create_subprocess_exec(K8N, "upgrade", "plan", "--server", nats_server.url,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "storage schema: 2 (newest: 2)" in text and "apiserver" in text and "0.2.0" in text, text
