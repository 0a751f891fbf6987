"""Rotating the bus credentials' signing key (``k8n certs rotate-bus-key`` and ``--finish``) against a real
nats-server, the CLI run as a subprocess on a data dir laid out as ``k8n up`` lays it out (``nats-auth/``,
``creds/``, ``jetstream/``, ``cluster.json`` naming the running server): no outage — old credentials and connections
keep working through the rotation, the re-minted files work, and nats.py picks them up when it reconnects; the finish
waits for the last connection made with a former key's JWT, and from then on the server refuses such credentials.

What nats-server 2.15 does when a signing key leaves the account's ``signing_keys``: it closes, as soon as the
account update arrives, every connection whose user JWT that key issued (the server's closed-connection reason is
"Authentication Failure"; the client sees the connection end, and its reconnects refused with "Authorization
Violation" — or, if its credentials file was minted again meanwhile, it is back at once), and refuses such JWTs at
connect from then on (test_finish_with_force_cuts_the_former_keys_connections_off)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys

import nkeys
import pytest

from bus import config, natsconns, roles
from bus.connect import connect, refusals_of
from bus.natsauth import _JWT_BLOCK, AuthError, ClusterAuth, Credentials, Key, creds_text, decode_jwt
from bus.roles import Identity
from master.apiserver.nodecredentials import NodeCredentialSigner
from tests.integration.test_bus_revocation import connect_creds, ping, serve_calls
from tests.waiting import eventually

NODE = "w1"


async def k8n(*args: str) -> tuple[int, str]:
    """``k8n <args>`` in its own process (the event loop keeps serving this test's connections meanwhile):
    (exit code, stdout + stderr)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bus.cli", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode()


def data_dir(nats_server) -> str:
    """The fixture's directory is laid out as ``k8n up``'s data dir; record the running server as ``k8n up`` does."""
    ddir = nats_server.store_dir.parent
    config.write_cluster_info(ddir, nats_server.url, pid=os.getpid(), dataDir=str(ddir))
    return str(ddir)


def issuer_of(path) -> str:
    return decode_jwt(_JWT_BLOCK.search(path.read_text()).group(1))["iss"]


async def issuers(nats_server) -> dict[str, set[str]]:
    """Connection name -> the issuers of the user JWTs its connections authenticated with, as the server says."""
    out: dict[str, set[str]] = {}
    for c in await natsconns.connections(nats_server.url, ClusterAuth.load(nats_server.auth.dir)):
        out.setdefault(c.name.split(" ")[0], set()).add(c.issuer)
    return out


async def assert_refused(url: str, path) -> None:
    with pytest.raises(AuthError, match="authorization violation"):
        nc = await connect(url, Credentials.load(path), allow_reconnect=False, max_reconnect_attempts=1)
        await nc.close()


async def round_trip(admin, node: str = NODE) -> bool:
    """A request of ``admin``'s answered by ``node`` (serve_calls)."""
    return await ping(admin, node) == node


async def serve(nc, admin, node: str = NODE) -> None:
    """``nc`` answers ``node``'s calls, and ``admin`` gets the answers. (Waited for: nats-server 2.15 now and then
    answers "no responders" to the first request after a new subscription — seen right after its start, whatever
    the keys — and this is about what happens to connections already serving.)"""
    await serve_calls(nc, node)
    await eventually(lambda: round_trip(admin, node), 10, f"{node}'s calls to be answered")


async def test_rotation_without_outage_and_a_finish_that_waits_for_the_last_old_key_connection(nats_server, tmp_path):
    ddir = data_dir(nats_server)
    node_path = nats_server.credentials(Identity.node(NODE))
    admin_path = nats_server.credentials(Identity(roles.ADMIN))
    old_admin = tmp_path / "old-admin.creds"  # a copy of the credentials as they were: a tool elsewhere uses them
    shutil.copy(admin_path, old_admin)
    old_key = issuer_of(admin_path)

    # components running before the rotation, on the files in <data dir>/creds
    admin = await connect(nats_server.url, Credentials.load(admin_path))
    node = await connect(nats_server.url, Credentials.load(node_path))
    await serve(node, admin)

    code, out = await k8n("certs", "rotate-bus-key", "--data-dir", ddir)
    assert code == 0, out
    new_key = ClusterAuth.load(nats_server.auth.dir).keys["signing"].public
    assert f"{old_key} -> {new_key}" in out and f"account update pushed to {nats_server.url}" in out
    for path in (admin_path, node_path):
        assert issuer_of(path) == new_key and str(path) in out
        assert oct(path.stat().st_mode & 0o777) == "0o600"

    # during the rotation: the connections made before it keep working, old and new credentials both connect
    assert await round_trip(admin)
    old_tool = await connect(nats_server.url, Credentials.load(old_admin), name="old-tool")
    assert await round_trip(old_tool)
    fresh = await connect(nats_server.url, Credentials.load(admin_path), name="fresh-admin")
    assert await round_trip(fresh)
    assert (await issuers(nats_server))["fresh-admin"] == {new_key}

    code, out = await k8n("certs", "rotate-bus-key", "--finish", "--data-dir", ddir)
    assert code == 1, out
    assert "still use credentials signed by a former bus signing key" in out
    for name in ("old-tool", "node:w1", "admin"):  # each connection made with a JWT of the former key, by name
        assert f"({name} k8n/" in out, out
    assert "fresh-admin" not in out and old_key in out
    assert ClusterAuth.load(nats_server.auth.dir).former_signing  # nothing dropped

    # the NATS server restarts: the components reconnect on their own, nats.py reading the re-minted files again;
    # its config (rendered by a holder of the keys loaded before the rotation) carries both keys
    nats_server.stop()
    nats_server.start()
    await eventually(lambda: round_trip(admin), 20, "the admin and the node to be back", ignore=(Exception,))

    async def all_back() -> dict | None:
        got = await issuers(nats_server)
        return got if {"admin", "node:w1", "fresh-admin", "old-tool"} <= set(got) else None

    now = await eventually(all_back, 20, "every connection to be back")
    assert now["admin"] == now["node:w1"] == now["fresh-admin"] == {new_key}
    assert now["old-tool"] == {old_key}  # its file still holds the former key's JWT

    code, out = await k8n("certs", "rotate-bus-key", "--finish", "--data-dir", ddir)
    assert code == 1 and "(old-tool k8n/" in out and "(admin k8n/" not in out, out

    await old_tool.close()  # the last user of the former key ends
    code, out = await k8n("certs", "rotate-bus-key", "--finish", "--data-dir", ddir)
    assert code == 0, out
    assert f"former bus signing key dropped: {old_key}" in out
    await assert_refused(nats_server.url, old_admin)
    assert await round_trip(admin) and await round_trip(fresh)
    again = await connect(nats_server.url, Credentials.load(admin_path))
    assert await round_trip(again)
    for nc in (again, fresh, admin, node):
        await nc.close()


async def test_finish_with_force_cuts_the_former_keys_connections_off(nats_server, tmp_path):
    ddir = data_dir(nats_server)
    node_path = nats_server.credentials(Identity.node(NODE))
    admin_path = nats_server.credentials(Identity(roles.ADMIN))
    old_node = tmp_path / "old-node.creds"
    shutil.copy(node_path, old_node)
    signer = NodeCredentialSigner(None, nats_server.auth.dir)  # the API server's, loaded before the rotation
    signer.cluster_auth()

    admin = await connect(nats_server.url, Credentials.load(admin_path))
    closed = asyncio.Event()

    async def on_closed() -> None:
        closed.set()

    stale = await connect_creds(nats_server.url, old_node, closed_cb=on_closed, name="stale-node")
    await serve(stale, admin)

    code, out = await k8n("certs", "rotate-bus-key", "--data-dir", ddir)
    assert code == 0, out
    admin2 = await connect(nats_server.url, Credentials.load(admin_path))  # re-minted: the new key
    assert await round_trip(admin2)

    # a node joining now gets its JWT signed by the new key (the API server reads the changed key files again)
    joiner = Key.generate(nkeys.PREFIX_BYTE_USER)
    joined = tmp_path / "node-w2.creds"
    joined.write_text(creds_text(signer.cluster_auth().sign_user(Identity.node("w2"), joiner.public), joiner.seed))
    new_key = ClusterAuth.load(nats_server.auth.dir).keys["signing"].public
    assert issuer_of(joined) == new_key

    code, out = await k8n("certs", "rotate-bus-key", "--finish", "--force", "--data-dir", ddir)
    assert code == 0, out
    assert "warning (--force)" in out and "(stale-node k8n/" in out
    await asyncio.wait_for(closed.wait(), 20)  # the server closed it and refused its reconnects
    assert any("authorization violation" in r.lower() for r in refusals_of(stale)), refusals_of(stale)
    assert not await round_trip(admin2)  # its subscription went with it
    await assert_refused(nats_server.url, old_node)

    w2 = await connect(nats_server.url, Credentials.load(joined))
    await serve(w2, admin2, "w2")
    # `admin` was connected with the former key too: closed as well, it reconnected with its re-minted file
    await eventually(lambda: round_trip(admin, "w2"), 20, "the admin to be back", ignore=(Exception,))
    node = await connect(nats_server.url, Credentials.load(node_path))  # the re-minted node credentials
    await serve(node, admin2)
    for nc in (node, w2, admin2, admin):
        await nc.close()


async def test_a_rotation_with_the_servers_down_pushes_nothing_and_the_next_start_carries_the_key(nats_server):
    ddir = data_dir(nats_server)
    admin_path = nats_server.credentials(Identity(roles.ADMIN))
    nats_server.stop()
    info = json.loads((nats_server.store_dir.parent / "cluster.json").read_text())
    config.write_cluster_info(nats_server.store_dir.parent, info["server"], pid=2 ** 22 + 12345)  # k8n up is gone

    code, out = await k8n("certs", "rotate-bus-key", "--data-dir", ddir)
    assert code == 0 and "the next start" in out, out
    nats_server.start()
    admin = await connect(nats_server.url, Credentials.load(admin_path))
    assert issuer_of(admin_path) == ClusterAuth.load(nats_server.auth.dir).keys["signing"].public
    await admin.close()
