"""Revoking a node's bus credentials (issue 13) against real nats-servers: the revoked user's connections are closed
and it cannot connect again, everyone else keeps working, a fresh credential for the same node works, the revocation
survives restarts (also with a config written before it), and in a three-server cluster one push reaches all three."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nats
import nats.errors
import pytest

from bus import natscluster, roles, subjects
from bus.connect import connect
from bus.files import write_private
from bus.natsauth import AuthError, ClusterAuth, Credentials
from bus.natsrevoke import AccountPushError, push_account, revoke_users
from bus.natsserver import binary, free_port, port_busy
from bus.proc import die_with_parent, stop_process
from bus.roles import Identity
from tests.conftest import connect_as
from tests.waiting import eventually, eventually_sync, stays

NODE_A, NODE_B = "node-a", "node-b"


async def serve_calls(nc, node: str) -> None:
    """Answer ``k8n.node.<node>.ping`` as the node's agent would answer its calls."""
    async def answer(msg) -> None:
        await msg.respond(node.encode())

    await nc.subscribe(subjects.node_call(node, "ping"), cb=answer)
    await nc.flush()


async def ping(admin, node: str) -> str | None:
    """What the node answers the admin, None when nobody answers."""
    try:
        return (await admin.request(subjects.node_call(node, "ping"), b"", timeout=1)).data.decode()
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
        return None


async def connect_creds(url: str, path, **kw):
    """A connection with ``path``'s credentials that gives up after two reconnect attempts."""
    return await connect(url, Credentials.load(path), max_reconnect_attempts=2, reconnect_time_wait=0.1, **kw)


async def assert_refused(url: str, path) -> None:
    """The server refuses to let ``path``'s credentials connect (bus.connect says so as an AuthError)."""
    assert await _refuses(url, path), f"{url} let {path} connect"


async def test_revoking_a_node_closes_its_connections_and_refuses_it_while_others_keep_working(nats_server):
    creds_a = nats_server.credentials(Identity.node(NODE_A))
    admin = await connect_as(nats_server, Identity(roles.ADMIN))
    a = await connect_creds(nats_server.url, creds_a)
    a2 = await connect_creds(nats_server.url, creds_a)  # a second connection with the same credentials
    b = await connect_as(nats_server, Identity.node(NODE_B))
    try:
        await serve_calls(a, NODE_A)
        await serve_calls(b, NODE_B)
        assert await ping(admin, NODE_A) == NODE_A and await ping(admin, NODE_B) == NODE_B

        key = Credentials.load(creds_a).user_public
        await revoke_users(nats_server.url, nats_server.auth, [key])

        await eventually(lambda: a.is_closed and a2.is_closed, 10, "the revoked node's connections to be closed")
        assert "revoked" in str(a.last_error).lower()  # nats: user authentication revoked
        assert await ping(admin, NODE_A) is None  # nobody serves node A's calls any more
        await assert_refused(nats_server.url, creds_a)
        # the admin and the other node are untouched
        assert admin.is_connected and b.is_connected
        assert await ping(admin, NODE_B) == NODE_B

        # revoking again changes nothing (and still pushes)
        recorded = nats_server.auth.revocations()
        assert list(recorded) == [key]
        await revoke_users(nats_server.url, nats_server.auth, [key])
        assert nats_server.auth.revocations() == recorded
        await stays(lambda: b.is_connected, 0.5, "the other node connected")

        # a fresh credential for the same node (a new user key) works
        fresh = nats_server.auth.write_creds(Identity.node(NODE_A), nats_server.creds_dir)
        assert Credentials.load(fresh).user_public != key
        a3 = await connect_creds(nats_server.url, fresh)
        try:
            await serve_calls(a3, NODE_A)
            # the server may still be applying the account update the second revoke pushed: allow it a moment
            assert await eventually(lambda: ping(admin, NODE_A), 5, "the fresh credentials to serve") == NODE_A
        finally:
            await a3.close()
    finally:
        for nc in (admin, a, a2, b):
            await nc.close()


async def test_revocations_survive_restarts_also_with_a_config_written_before_them(nats_server, tmp_path):
    creds_a = nats_server.credentials(Identity.node(NODE_A))
    creds_b = nats_server.credentials(Identity.node(NODE_B))
    conf = nats_server.store_dir.parent / "nats-server.conf"
    stale = tmp_path / "stale.conf"
    shutil.copyfile(conf, stale)  # its preload: the account JWT without the revocation
    await revoke_users(nats_server.url, nats_server.auth, [Credentials.load(creds_a).user_public])
    await assert_refused(nats_server.url, creds_a)

    nats_server.stop()
    nats_server.start()  # a freshly rendered config
    await assert_refused(nats_server.url, creds_a)
    b = await connect_creds(nats_server.url, creds_b)
    await b.close()

    nats_server.stop()  # the old config: its preload was issued before the update the server stored
    proc = start_server(stale, nats_server.port, tmp_path / "stale.log")
    try:
        await assert_refused(nats_server.url, creds_a)
        b = await connect_creds(nats_server.url, creds_b)
        await b.close()
    finally:
        stop_process(proc, 10)
    nats_server.start()  # (the fixture stops it)


async def test_a_push_to_a_server_without_the_full_resolver_fails_clearly(tmp_path):
    conf = tmp_path / "memory.conf"
    auth = ClusterAuth.load_or_create(tmp_path / "auth")

    port = free_port()
    text = auth.server_config(tmp_path / "jwt").split("resolver: {")[0]  # operator and system account only
    conf.write_text(f'listen: "127.0.0.1:{port}"\n{text}resolver: MEMORY\nresolver_preload: {{\n'
                    f'  {auth.account_public}: "{auth.account_jwt()}"\n'
                    f'  {auth.keys["system"].public}: "{auth.system_jwt()}"\n}}\n')
    proc = start_server(conf, port, tmp_path / "memory.log")
    try:
        with pytest.raises(AccountPushError, match="no NATS server at .* takes account updates"):
            await push_account(f"nats://127.0.0.1:{port}", auth, timeout=2)
    finally:
        stop_process(proc, 10)
    with pytest.raises(AccountPushError, match="cannot connect"):
        await push_account(f"nats://127.0.0.1:{port}", auth, timeout=1)


@pytest.fixture
def three_servers(tmp_path):
    """deploy/nats-cluster rendered for three servers on loopback and started: ``(data dir, servers, processes)``;
    ``processes[i]`` may be replaced by a test that restarts a server."""
    servers = [natscluster.Server(f"nats-{i}", "127.0.0.1", free_port(), free_port()) for i in (1, 2, 3)]
    confs = natscluster.render(tmp_path, servers)
    procs = [start_server(conf, s.port, tmp_path / f"{s.name}.log") for s, conf in zip(servers, confs)]
    yield tmp_path, servers, procs
    for p in procs:
        stop_process(p, 10)


def start_server(conf, port: int, log) -> subprocess.Popen:
    """nats-server with config ``conf``, listening on ``port`` when this returns."""
    proc = subprocess.Popen([binary(), "-c", str(conf)], stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            preexec_fn=die_with_parent)
    eventually_sync(lambda: port_busy(port) or proc.poll() is not None, 15, f"nats-server ({conf}) to listen")
    assert proc.poll() is None, Path(log).read_text()[-2000:]
    return proc


async def test_one_push_revokes_the_user_on_all_three_servers_of_a_cluster(three_servers):
    data, servers, procs = three_servers
    auth = ClusterAuth.load(data / "nats-auth")
    creds = data / "creds"
    a_path = auth.write_creds(Identity.node(NODE_A), creds)
    b_path = auth.write_creds(Identity.node(NODE_B), creds)
    urls = [s.client_url for s in servers]

    # node A on servers 1 and 3, node B on server 3, the admin on server 2
    admin = await connect_creds(urls[1], creds / "admin.creds")
    a1 = await connect_creds(urls[0], a_path)
    a3 = await connect_creds(urls[2], a_path)
    b3 = await connect_creds(urls[2], b_path)
    try:
        await serve_calls(a1, NODE_A)
        await serve_calls(b3, NODE_B)
        # the routes are up when the admin on server 2 reaches the nodes on servers 1 and 3
        await eventually(lambda: _both_answer(admin), 30, "the three servers to form a cluster")

        auth.revoke(Credentials.load(a_path).user_public)
        await push_account(urls[1], auth, tls_ca=creds / "nats-ca.crt")  # through server 2 only

        # by the push, not by the resolvers' comparison (every 2 minutes)
        await eventually(lambda: a1.is_closed and a3.is_closed, 10, "node A's connections on servers 1 and 3 closed")
        for url in urls:
            await assert_refused(url, a_path)
        assert await ping(admin, NODE_B) == NODE_B and b3.is_connected
        for url in urls:  # the other node connects anywhere
            other = await connect_creds(url, b_path)
            await other.close()
    finally:
        for nc in (admin, a1, a3, b3):
            await nc.close()


async def test_a_server_that_was_down_during_the_push_gets_the_revocation_from_the_others(three_servers):
    data, servers, procs = three_servers
    auth = ClusterAuth.load(data / "nats-auth")
    creds = data / "creds"
    a_path = auth.write_creds(Identity.node(NODE_A), creds)
    urls = [s.client_url for s in servers]
    admin = await connect_creds(urls[0], creds / "admin.creds")
    b3 = await connect_creds(urls[2], auth.write_creds(Identity.node(NODE_B), creds))
    try:
        await serve_calls(b3, NODE_B)
        await eventually(lambda: ping(admin, NODE_B), 30, "the servers to form a cluster")
    finally:
        await b3.close()
        await admin.close()
    stop_process(procs[2], 10)
    third = data / "nats" / servers[2].name
    # its config from before the revocation, comparing with the others every second (2 minutes in a real cluster)
    write_private(third / "auth.conf", auth.server_config(third / "jwt", interval="1s"))

    auth.revoke(Credentials.load(a_path).user_public)
    await push_account(urls[0], auth, tls_ca=creds / "nats-ca.crt")
    await assert_refused(urls[0], a_path)

    procs[2] = start_server(third / "nats.conf", servers[2].port, data / "nats-3-again.log")
    await eventually(lambda: _refuses(urls[2], a_path), 15, "the restarted server to refuse the revoked node")


async def _refuses(url: str, path) -> bool:
    try:
        nc = await connect(url, Credentials.load(path), allow_reconnect=False, max_reconnect_attempts=1)
    except AuthError as e:
        return "refused the credentials" in str(e)
    await nc.close()
    return False


async def _both_answer(admin) -> bool:
    return await ping(admin, NODE_A) == NODE_A and await ping(admin, NODE_B) == NODE_B
