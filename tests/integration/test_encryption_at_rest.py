"""Secrets encrypted at rest: the NATS store directory of a real nats-server (NatsServer, as `k8n up` runs it)
holds no Secret value in clear, neither the current one nor the one in its history, and the key lives outside
it; with encryption off the same bytes are there (the check can fail). An unencrypted store from an earlier k8n is
encrypted at the first start with a key. `k8n encryption rotate` re-encrypts the store with a new key: the Secret
reads back, and the old key alone no longer opens the store."""

from __future__ import annotations

import base64
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from bus import roles
from bus.atrest import KEY_DIR, KEY_FILE, AtRestKeys
from bus.client import ApiClient
from bus.natsserver import NatsServer
from bus.resources import resolve
from bus.roles import Identity
from master.apiserver.server import ApiServer
from tests.conftest import connect_as

SECRETS = resolve("secrets")


def _canaries() -> list[str]:
    return [f"k8n-plaintext-canary-{secrets.token_hex(8)}" for _ in range(2)]


def _needles(values: list[str]) -> list[bytes]:
    """Each value's bytes and their base64 (how a Secret's data travels in JSON)."""
    return [n for v in values for n in (v.encode(), base64.b64encode(v.encode()))]


def _found(store: Path, needles: list[bytes]) -> list[str]:
    """``file: needle`` for every needle found in any file under ``store``."""
    hits = []
    for f in sorted(store.rglob("*")):
        if f.is_file():
            data = f.read_bytes()
            hits += [f"{f.relative_to(store)}: {n.decode()}" for n in needles if n in data]
    return hits


def _streams(data: Path) -> list[str]:
    return sorted(d.name for d in data.glob("jetstream/jetstream/*/streams/*") if (d / "meta.key").exists())


class Cluster:
    """A NatsServer on ``data/jetstream`` with an API server in this event loop."""

    def __init__(self, data: Path, encrypt: bool = True, key_dir: Path | None = None) -> None:
        self.srv = NatsServer(data / "jetstream", port=0, log_file=data / "nats-server.log", encrypt=encrypt,
                              key_dir=key_dir)

    async def __aenter__(self) -> ApiClient:
        self.srv.start()
        self.nc = await connect_as(self.srv, Identity(roles.APISERVER))
        self.api = ApiServer(self.nc)
        await self.api.start()
        self.client = await ApiClient.connect(self.srv.url, creds=self.srv.credentials(Identity(roles.ADMIN)))
        return self.client

    async def __aexit__(self, *exc) -> None:
        await self.client.close()
        await self.api.stop()
        await self.nc.close()
        self.srv.stop()


async def _write_secret(client: ApiClient, values: list[str]) -> None:
    """A Secret holding values[0], then updated to values[-1] (the first stays in its history)."""
    made = await client.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "canary"},
                                "data": {"token": base64.b64encode(values[0].encode()).decode()}}, "default")
    made["data"]["token"] = base64.b64encode(values[-1].encode()).decode()
    await client.update(made, "default")


async def _read_secret(client: ApiClient) -> str:
    return base64.b64decode((await client.get(SECRETS, "canary", "default"))["data"]["token"]).decode()


async def test_secret_values_are_not_in_the_store_in_clear(tmp_path):
    values = _canaries()
    cluster = Cluster(tmp_path)
    async with cluster as client:
        await _write_secret(client, values)
        key = AtRestKeys(tmp_path / KEY_DIR).current()
        pid = cluster.srv.proc.pid
        # the key reaches nats-server neither on its command line nor through its config file
        assert key.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        conf = tmp_path / "nats-server.conf"
        assert key not in conf.read_text() and conf.stat().st_mode & 0o777 == 0o600
        assert await _read_secret(client) == values[-1]
    assert _found(tmp_path / "jetstream", _needles(values)) == []
    key_file = tmp_path / KEY_DIR / KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600 and (tmp_path / KEY_DIR).stat().st_mode & 0o777 == 0o700
    assert not key_file.resolve().is_relative_to((tmp_path / "jetstream").resolve())
    assert _found(tmp_path / "jetstream", [key.encode()]) == []


async def test_an_unencrypted_store_shows_the_values_and_is_encrypted_at_the_next_start(tmp_path):
    """The control (encryption off: the same search finds the values), then what an upgrade from a k8n without
    encryption at rest does: the first start with a key encrypts the existing store in place."""
    values = _canaries()
    async with Cluster(tmp_path, encrypt=False) as client:
        await _write_secret(client, values)
    assert _found(tmp_path / "jetstream", _needles(values)), "the control: values in clear without encryption"
    assert not (tmp_path / KEY_DIR).exists()
    async with Cluster(tmp_path) as client:
        assert await _read_secret(client) == values[-1]
    assert "Encrypting stream" in (tmp_path / "nats-server.log").read_text()
    assert _found(tmp_path / "jetstream", _needles(values)) == []


async def test_rotation_re_encrypts_with_the_new_key(tmp_path):
    values = _canaries()
    async with Cluster(tmp_path) as client:
        await _write_secret(client, values)
    keys = AtRestKeys(tmp_path / KEY_DIR)
    old = keys.current()
    streams = _streams(tmp_path)
    assert any(n.startswith("HIST_") for n in streams) and any(n.startswith("KV_") for n in streams)

    done = subprocess.run([sys.executable, "-m", "bus.cli", "encryption", "rotate", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "re-encrypted" in done.stdout
    assert keys.current() != old and keys.previous() is None  # the old key is gone once the store is re-encrypted
    assert _streams(tmp_path) == streams  # every bucket and history stream, the empty ones too, is still there

    old_only = tmp_path / "old-key"  # the old key alone: nats-server cannot decrypt the store, k8n stops it
    AtRestKeys(old_only)._write(old_only / KEY_FILE, old)
    with pytest.raises(RuntimeError, match="could not decrypt"):
        Cluster(tmp_path, key_dir=old_only).srv.start()

    async with Cluster(tmp_path) as client:  # the new key opens it, nothing lost
        assert await _read_secret(client) == values[-1]
    assert _found(tmp_path / "jetstream", _needles(values) + [old.encode(), keys.current().encode()]) == []


def test_a_second_rotation_waits_for_the_first(tmp_path):
    keys = AtRestKeys(tmp_path / KEY_DIR)
    keys.ensure()
    keys.rotate()
    with pytest.raises(RuntimeError, match="in progress"):
        keys.rotate()


async def test_a_three_server_cluster_encrypts_stores_and_raft_logs_and_refuses_rotation(tmp_path, monkeypatch):
    """`k8n up --nats-servers 3`'s servers (rendered as by `k8n nats-config`): no value in clear in any server's
    directory (streams and RAFT logs); key rotation is refused (nats-server 2.15 cannot re-encrypt the RAFT meta
    log), without touching the key."""
    from bus.cli.runner import nats_cluster_servers, start_nats_cluster
    from tests.integration.test_nats_cluster import connect_as_url
    from tests.waiting import eventually

    monkeypatch.setenv("K8N_CREDS_DIR", str(tmp_path / "creds"))
    plan = nats_cluster_servers("127.0.0.1", 0, 3)
    url = ",".join(s.client_url for s in plan)
    values = _canaries()
    children = start_nats_cluster(tmp_path, plan, tmp_path)
    try:
        async def connected():
            nc = await connect_as_url(url, tmp_path, Identity(roles.APISERVER))
            api = ApiServer(nc)
            await api.start()
            return nc, api
        nc, api = await eventually(connected, 60, "a JetStream leader", ignore=(Exception,))
        client = await ApiClient.connect(url, creds=tmp_path / "creds" / "admin.creds")
        try:
            await _write_secret(client, values)
        finally:
            await client.close()
            await api.stop()
            await nc.close()
    finally:
        for c in children:
            c.stop()
    key_conf = tmp_path / "nats" / plan[0].name / "jetstream-key.conf"
    assert key_conf.stat().st_mode & 0o777 == 0o600 and "cipher: chachapoly" in key_conf.read_text()
    assert any((tmp_path / "nats").rglob("_meta_"))  # the RAFT logs are among what was searched
    assert _found(tmp_path / "nats", _needles(values)) == []
    key = AtRestKeys.of_data_dir(tmp_path).current()
    done = subprocess.run([sys.executable, "-m", "bus.cli", "encryption", "rotate", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "not supported for clustered" in done.stderr
    assert AtRestKeys.of_data_dir(tmp_path).current() == key


async def test_an_encrypted_store_without_its_key_is_refused(tmp_path):
    """A lost key is not replaced by a new one (which would not open the store, and JetStream would answer as if
    the buckets did not exist): the start fails and says why."""
    async with Cluster(tmp_path):  # the API server makes its buckets
        pass
    (tmp_path / KEY_DIR / KEY_FILE).unlink()
    with pytest.raises(RuntimeError, match="is encrypted but its key .* is missing"):
        NatsServer(tmp_path / "jetstream", port=0, log_file=tmp_path / "nats-server.log").start()
    assert not (tmp_path / KEY_DIR / KEY_FILE).exists()
