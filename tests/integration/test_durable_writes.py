"""An acknowledged write is on disk: the embedded nats-server (what `k8n up` and the tests run) fsyncs every
JetStream write before acknowledging it, and `deploy/nats-cluster/` configures the same."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import nats
from bus import roles
from bus.roles import Identity
from tests.conftest import connect_as

from bus.client import ApiClient
from bus.natsserver import NatsServer, free_port
from bus.resources import resolve
from master.apiserver.server import ApiServer

ROOT = Path(__file__).resolve().parents[2]


def _jetstream_config(monitor_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{monitor_port}/varz", timeout=5) as r:
        return json.load(r)["jetstream"]["config"]


def test_embedded_server_fsyncs_every_write(tmp_path):
    port = free_port()
    srv = NatsServer(tmp_path / "js", port=0, log_file=tmp_path / "nats.log", monitor_port=port)
    srv.start()
    try:
        assert _jetstream_config(port)["sync_always"] is True
    finally:
        srv.stop()


def test_opting_out_is_visible_to_the_server(tmp_path):
    """The setting reaches nats-server (the check above is not vacuous): a 2-minute interval is not sync_always."""
    port = free_port()
    srv = NatsServer(tmp_path / "js", port=0, log_file=tmp_path / "nats.log", monitor_port=port,
                     sync_interval="120s")
    srv.start()
    try:
        config = _jetstream_config(port)
        assert not config.get("sync_always") and config["sync_interval"] == 120 * 10**9
    finally:
        srv.stop()


async def test_acknowledged_create_survives_a_kill_9_of_nats(tmp_path):
    """A create the API server acknowledged is read back after nats-server is killed with SIGKILL and restarted
    on the same store (the process dies without flushing anything)."""
    srv = NatsServer(tmp_path / "js", port=0, log_file=tmp_path / "nats.log")
    srv.start()
    try:
        nc = await connect_as(srv, Identity(roles.APISERVER))
        api = ApiServer(nc)
        await api.start()
        c = await ApiClient.connect(srv.url, creds=srv.credentials(Identity(roles.ADMIN)))
        made = await c.create({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "durable", "namespace": "default"}, "data": {"k": "v"}})
        await c.close()
        await api.stop()
        await nc.close()
        srv.kill()
        srv.start()
        c = await ApiClient.connect(srv.url, creds=srv.credentials(Identity(roles.ADMIN)))
        try:
            got = await c.store.get(resolve("configmaps"), "default", "durable")
            assert got["data"] == {"k": "v"}
            assert got["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]
        finally:
            await c.close()
    finally:
        srv.stop()


def test_cluster_configs_fsync_every_write(tmp_path):
    """deploy/nats-cluster/nats.conf, as `k8n nats-config` renders it for each server."""
    from bus import natscluster

    servers = [natscluster.Server(f"nats-{i}", "127.0.0.1", 14220 + i, 16220 + i) for i in (1, 2, 3)]
    assert natscluster.TEMPLATE == ROOT / "deploy" / "nats-cluster" / "nats.conf"
    for conf in natscluster.render(tmp_path, servers):
        block = re.search(r"jetstream\s*\{([^}]*)\}", conf.read_text())
        assert block and re.search(r"^\s*sync_interval:\s*always\s*$", block.group(1), re.M), conf
