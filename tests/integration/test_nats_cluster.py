"""deploy/nats-cluster exercised: ``k8n nats-config`` renders the shipped template for three servers on loopback;
the three nats-servers form a cluster over mutual-TLS routes, serve clients over TLS only, refuse anonymous and
plain-text clients, and an API server keeps its buckets with three replicas on them. Also the embedded server's
TLS when asked for."""

from __future__ import annotations

import asyncio
import ssl
import subprocess

import nats
import pytest

from bus import natscluster, roles
from bus.client import ApiClient
from bus.natsserver import NatsServer, binary, free_port, port_busy
from bus.proc import die_with_parent, stop_process
from bus.roles import Identity
from master.apiserver.server import ApiServer
from tests.conftest import connect_as
from tests.waiting import eventually


@pytest.fixture
def cluster(tmp_path):
    servers = [natscluster.Server(f"nats-{i}", "127.0.0.1", free_port(), free_port()) for i in (1, 2, 3)]
    confs = natscluster.render(tmp_path, servers)
    procs = []
    for s, conf in zip(servers, confs):
        log = open(tmp_path / f"{s.name}.log", "wb")
        procs.append(subprocess.Popen([binary(), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                                      preexec_fn=die_with_parent))
    for s, p in zip(servers, procs):
        for _ in range(100):
            if port_busy(s.port) or p.poll() is not None:
                break
            import time
            time.sleep(0.1)
        assert p.poll() is None, (tmp_path / f"{s.name}.log").read_text()
    yield tmp_path, servers, confs
    for p in procs:
        stop_process(p, 10)


def test_the_template_carries_tls_auth_and_route_tls(cluster):
    _, _, confs = cluster
    text = confs[0].read_text()
    assert 'include "auth.conf"' in text and "verify: true" in text and text.count("cert_file") == 2
    auth = (confs[0].parent / "auth.conf").read_text()
    assert "operator:" in auth and "type: full" in auth and f'dir: "{confs[0].parent / "jwt"}"' in auth
    assert (confs[0].parent / "pki" / "nats.key").stat().st_mode & 0o777 == 0o600


async def test_three_servers_serve_r3_buckets_to_tls_clients_with_credentials(cluster, monkeypatch):
    data, servers, _ = cluster
    monkeypatch.setenv("K8N_CREDS_DIR", str(data / "creds"))
    url = ",".join(s.client_url for s in servers)
    with pytest.raises(Exception):  # plain text: the servers require TLS
        await nats.connect(f"nats://127.0.0.1:{servers[0].port}", allow_reconnect=False, connect_timeout=2,
                           max_reconnect_attempts=0)
    ctx = ssl.create_default_context(cafile=str(data / "creds" / "nats-ca.crt"))
    with pytest.raises(Exception):  # TLS but anonymous
        await nats.connect(servers[0].client_url, tls=ctx, allow_reconnect=False, connect_timeout=2,
                           max_reconnect_attempts=0)

    async def connected_apiserver():
        nc = await connect_as_url(url, data, Identity(roles.APISERVER))
        api = ApiServer(nc)
        await api.start()
        return nc, api

    nc, api = await eventually(connected_apiserver, 60, "the cluster to elect a JetStream leader",
                               ignore=(Exception,))
    client = await ApiClient.connect(url, creds=data / "creds" / "admin.creds")
    try:
        made = await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "r3"}})
        assert made["metadata"]["name"] == "r3"
        info = await client.nc.jetstream().stream_info("KV_k8n-configmaps")
        assert info.config.num_replicas == 3
        assert info.cluster is not None and len(info.cluster.replicas or []) == 2  # a leader and two followers
        # each server answers for the same data
        for s in servers:
            one = await ApiClient.connect(s.client_url, creds=data / "creds" / "admin.creds")
            try:
                assert (await one.get("configmaps", "r3"))["metadata"]["uid"] == made["metadata"]["uid"]
            finally:
                await one.close()
    finally:
        await client.close()
        await api.stop()
        await nc.close()


async def connect_as_url(url, data, identity):
    from bus.connect import connect
    from bus.natsauth import Credentials

    return await connect(url, Credentials.load(data / "creds" / f"{identity.file_name}.creds"))


async def test_the_embedded_server_speaks_tls_only_when_asked(tmp_path):
    srv = NatsServer(tmp_path / "js", port=0, log_file=tmp_path / "nats.log", tls=True)
    srv.start()
    try:
        assert srv.url.startswith("tls://")
        with pytest.raises(Exception):
            await nats.connect(f"nats://127.0.0.1:{srv.port}", allow_reconnect=False, connect_timeout=2,
                               max_reconnect_attempts=0)
        nc = await connect_as(srv, Identity(roles.ADMIN))  # finds nats-ca.crt beside its credentials
        try:
            assert nc.is_connected and nc._current_server.uri.scheme == "tls"
        finally:
            await nc.close()
    finally:
        srv.stop()
    assert not NatsServer(tmp_path / "js2", host="127.0.0.1").tls and NatsServer(tmp_path / "js3", host="10.0.0.1").tls
