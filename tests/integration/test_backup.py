"""``k8n backup`` / ``k8n restore`` against real nats-servers and API servers: objects of every kind (namespaces,
pods, workloads, Services with their ClusterIP claims, Secrets, ConfigMaps, RBAC, a CustomResourceDefinition and a
custom resource, Ingresses) backed up while the API server serves, then changed and deleted, restored into a fresh
NATS and compared; the restored cluster serves them with resourceVersions above the backup's; the file is 0600 and
refused to identities that may not read everything; the CLI refuses a non-empty data directory."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from bus import errors, roles
from bus.backup import Reader
from bus.client import ApiClient
from bus.cli.backup import restore, take
from bus.natsserver import NatsServer
from bus.resources import RESOURCES, custom_resources
from bus.roles import Identity
from tests import builders as b
from tests.conftest import STANDARD_IDENTITIES, connect_as
from tests.integration.test_crds import crontab, definition
from tests.waiting import eventually

NS = "bk"


def ingress(name: str) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name, "namespace": NS},
            "spec": {"rules": [{"host": "web.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}


def rbac(kind: str, name: str, **body) -> dict:
    meta = {"name": name, **({"namespace": NS} if kind in ("Role", "RoleBinding") else {})}
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta, **body}


async def populate(client: ApiClient) -> None:
    await client.create(b.namespace(NS))
    await client.create(b.configmap("settings", NS, data={"a": "1"}))
    await client.create(b.configmap("doomed", NS, data={"b": "2"}))
    await client.create(b.secret("creds", NS, data={"password": "czNjcjN0"}))
    await client.create(b.pod("solo", NS))
    await client.create(b.deployment("web", NS, replicas=2))
    await client.create(b.service("web", NS, selector={"app": "web"}))
    await client.create(ingress("web"))
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    await client.create(rbac("Role", "reader", rules=rules))
    await client.create(rbac("ClusterRole", "bk-reader", rules=rules))
    subject = [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}]
    await client.create(rbac("RoleBinding", "jane", subjects=subject,
                             roleRef={"kind": "Role", "name": "reader", "apiGroup": "rbac.authorization.k8s.io"}))
    await client.create(definition())
    await eventually(lambda: client.create({**crontab("nightly"), "metadata": {"name": "nightly", "namespace": NS}}),
                     10, "the custom resource to be served", ignore=(errors.NotFound,))


async def everything(client: ApiClient) -> dict[str, dict[str, dict]]:
    """Every object of every stored kind, by kind and namespace/name, without its resourceVersion."""
    await client.load_definitions()
    out: dict[str, dict[str, dict]] = {}
    for res in [r for r in RESOURCES if r.stored] + custom_resources():
        items, _ = await client.list(res)
        objs = {}
        for o in items:
            meta = dict(o["metadata"])
            meta.pop("resourceVersion")
            objs[f"{meta.get('namespace', '')}/{meta['name']}"] = {**o, "metadata": meta}
        if objs:
            out[res.bus_name] = objs
    return out


@pytest.fixture
async def fresh_nats(tmp_path):
    """A second nats-server, empty, with its own keys (a new machine)."""
    srv = NatsServer(tmp_path / "restored" / "jetstream", port=0, log_file=tmp_path / "restored.log")
    for role in STANDARD_IDENTITIES:
        srv.credentials(Identity(role))
    srv.start()
    yield srv
    srv.stop()


async def test_backup_change_restore_compare(client, nats_server, fresh_nats, tmp_path, monkeypatch):
    from master.apiserver.server import ApiServer

    await populate(client)
    before = await everything(client)
    assert {"namespaces", "pods", "deployments", "services", "secrets", "configmaps", "roles", "clusterroles",
            "rolebindings", "customresourcedefinitions", "crontabs_stable_example_com", "ingresses"} <= set(before)
    path = tmp_path / "cluster.k8nbak"
    head = await take(client.nc, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, "a backup holds Secrets: owner only"
    revisions = {b: i["revision"] for b, i in head["buckets"].items()}
    assert revisions["pods"] > 0 and revisions["configmaps"] > 0
    assert "replies" not in revisions and "nodepods" not in revisions
    assert len(head["apiservers"]) == 1, "the API server held its writes for the cut"
    with Reader(path) as r:
        assert r.header["buckets"]["secrets"]["revision"] == revisions["secrets"]
        keys = {name: [k for k, _, _ in entries] for name, entries in r.buckets()}
    assert "bk.creds" in keys["secrets"] and "bk.nightly" in keys["crontabs_stable_example_com"]

    # changes after the backup: none of them may come back
    await client.delete("configmaps", "doomed", NS)
    cm = await client.get("configmaps", "settings", NS)
    cm["data"] = {"a": "changed"}
    await client.update(cm)
    await client.create(b.configmap("later", NS))
    await client.delete("pods", "solo", NS)

    nc = await connect_as(fresh_nats, Identity(roles.APISERVER))
    try:
        got = await restore(nc, path)
        assert got["objects"] == sum(len(k) for k in keys.values())
        with pytest.raises(Exception, match="already holds k8n buckets"):
            await restore(nc, path)
        monkeypatch.setenv("K8N_CREDS_DIR", str(fresh_nats.creds_dir))
        api = ApiServer(nc)
        await api.start()
        try:
            other = await ApiClient.connect(fresh_nats.url)
            try:
                after = await everything(other)
                assert after == before, "the restored cluster holds exactly what the backup covered"
                restored_cm = await other.get("configmaps", "settings", NS)
                assert restored_cm["data"] == {"a": "1"}
                assert int(restored_cm["metadata"]["resourceVersion"]) > revisions["configmaps"], \
                    "restored resourceVersions come after every one the old cluster handed out"
                assert await other.get("pods", "solo", NS)
                with pytest.raises(errors.NotFound):
                    await other.get("configmaps", "later", NS)
                # the restored cluster takes writes: a custom resource, and a ClusterIP not handed out twice
                await other.create({**crontab("second"), "metadata": {"name": "second", "namespace": NS}})
                svc = await other.create(b.service("api", NS, selector={"app": "api"}))
                assert svc["spec"]["clusterIP"] != before["services"][f"{NS}/web"]["spec"]["clusterIP"]
            finally:
                await other.close()
        finally:
            await api.stop()
    finally:
        await nc.close()


async def test_only_who_may_read_everything_backs_up(client, nats_server, tmp_path):
    path = tmp_path / "x.k8nbak"
    for ident in (Identity(roles.CONTROLLER_MANAGER), Identity.node("n1")):
        nc = await connect_as(nats_server, ident)
        try:
            with pytest.raises(errors.ApiError) as e:
                await take(nc, path)
            assert e.value.code == 403
        finally:
            await nc.close()
    assert not path.exists()
    await take(client.nc, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def k8n(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bus.cli", *args], capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k not in ("K8N_DATA_DIR", "K8N_CREDS_DIR")})


async def test_cli_restores_into_a_new_data_dir_only(client, nats_server, tmp_path):
    await client.create(b.configmap("kept", "default", data={"x": "y"}))
    path = tmp_path / "b.k8nbak"
    await take(client.nc, path)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("x")
    out = k8n("restore", str(path), "--data-dir", str(busy))
    assert out.returncode == 1 and "not empty" in out.stderr
    assert sorted(p.name for p in busy.iterdir()) == ["something"], "a refused restore touches nothing"
    bad = tmp_path / "bad.k8nbak"
    bad.write_bytes(b"not a backup")
    out = k8n("restore", str(bad), "--data-dir", str(tmp_path / "never"))
    assert out.returncode == 1 and "not a k8n backup" in out.stderr and not (tmp_path / "never").exists()

    new = tmp_path / "new"
    out = k8n("restore", str(path), "--data-dir", str(new))
    assert out.returncode == 0, out.stderr
    assert "restored" in out.stdout
    # the restored data directory, served as `k8n up` serves it (its NATS on <dir>/jetstream, its keys)
    srv = NatsServer(new / "jetstream", port=0, log_file=tmp_path / "new.log")
    srv.credentials(Identity(roles.ADMIN))
    srv.start()
    try:
        admin = await ApiClient.connect(srv.url, creds=str(srv.credentials(Identity(roles.ADMIN))))
        try:
            items, _ = await admin.list("configmaps", "default")
            assert [o["data"] for o in items if o["metadata"]["name"] == "kept"] == [{"x": "y"}]
        finally:
            await admin.close()
    finally:
        srv.stop()


async def test_the_cut_is_consistent_across_buckets_and_replicas(client, nats_server, tmp_path):
    """A writer alternates ConfigMap i, Secret i, ConfigMap i+1 … through two API server replicas while backups are
    taken: every backup holds ConfigMaps 0..n and Secrets 0..n or 0..n-1 — never a Secret without its ConfigMap, nor
    a ConfigMap past a missing Secret (the buckets are read at one point in time, both replicas' writes held)."""
    import asyncio

    from master.apiserver.server import ApiServer

    nc2 = await connect_as(nats_server, Identity(roles.APISERVER))
    second = ApiServer(nc2)
    await second.start()
    stop = asyncio.Event()

    async def writer() -> int:
        i = 0
        while not stop.is_set():
            await client.create(b.configmap(f"c{i}", "default"))
            await client.create(b.secret(f"c{i}", "default"))
            i += 1
        return i

    task = asyncio.ensure_future(writer())
    try:
        for n in range(3):
            await asyncio.sleep(0.3)
            head = await take(client.nc, tmp_path / f"{n}.k8nbak")
            assert len(head["apiservers"]) == 2, "both replicas held their writes"
            with Reader(tmp_path / f"{n}.k8nbak") as r:
                got = {name: {int(k.rsplit(".c", 1)[1]) for k, _, _ in entries if ".c" in k}
                       for name, entries in r.buckets() if name in ("configmaps", "secrets")}
            cms, secrets = got.get("configmaps", set()), got.get("secrets", set())
            assert cms == set(range(len(cms))) and secrets == set(range(len(secrets)))
            assert len(cms) - len(secrets) in (0, 1), (len(cms), len(secrets))
    finally:
        stop.set()
        assert await task > 0
        await second.stop()
        await nc2.close()


def test_a_truncated_or_foreign_file_is_refused(tmp_path):
    from bus.backup import BackupError, Writer

    path = tmp_path / "f.k8nbak"
    with Writer(path) as w:
        w.header({"format": "k8n-backup/1", "buckets": {"configmaps": {"revision": 3, "config": {}}}})
        w.bucket("configmaps", [("default.a", b"\x80", 2), ("default.b", b"\x80", 3)])
    with Reader(path) as r:
        assert [(n, len(e)) for n, e in r.buckets()] == [("configmaps", 2)]
    import gzip

    raw = gzip.decompress(path.read_bytes())
    (tmp_path / "cut.k8nbak").write_bytes(gzip.compress(raw[:-12]))
    with Reader(tmp_path / "cut.k8nbak") as r, pytest.raises(BackupError, match="truncated"):
        list(r.buckets())
    (tmp_path / "other").write_bytes(gzip.compress(b"hello"))
    with pytest.raises(BackupError, match="not a k8n backup"):
        Reader(tmp_path / "other")
    with pytest.raises(RuntimeError), Writer(tmp_path / "never.k8nbak") as w:
        raise RuntimeError("failed half way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.k8nbak", "f.k8nbak", "other"], \
        "a failed backup leaves no file, not even a temporary one"


async def test_a_bad_backup_request_is_a_4xx(client):
    from bus import codec, subjects

    msg = await client.nc.request(subjects.backup_subject("admin"), b"\xc1garbage", timeout=5)
    assert codec.unpack(msg.data)["code"] == 400
    msg = await client.nc.request(subjects.backup_subject("admin"), codec.pack({"user": {"username": "x"}}), timeout=5)
    assert codec.unpack(msg.data)["code"] == 403, "only the gateway names another user"
