"""Runs last (file order): after the whole suite, nothing k8n made on this machine is left — no pod
containers, no k8n bridges or pod veths, no k8n firewall rules, no test network namespaces, no service proxy nft tables —
beyond what was there when the suite started (tests/conftest.py takes that snapshot)."""

from __future__ import annotations

import os

import pytest

from tests import leaks

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to inspect Docker and netlink")


@pytest.mark.parametrize("kind", ["containers", "bridges", "pod veths", "firewall rules", "test netns", "nft tables"])
def test_nothing_left_behind(kind, pytestconfig):
    before = pytestconfig.stash[leaks.BASELINE][kind]
    assert leaks.snapshot()[kind] - before == set()
