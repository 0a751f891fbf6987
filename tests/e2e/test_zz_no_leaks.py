"""Runs last (file order): after the whole suite, nothing k8n made on this machine is left —
no pod containers, no k8n bridges or pod veths, no k8n firewall rules, no test network namespaces."""

from __future__ import annotations

import os
import subprocess

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to inspect Docker and netlink")


def _out(*cmd: str) -> str:
    r = subprocess.run(list(cmd), capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else ""


def test_no_pod_containers_left():
    assert _out("docker", "ps", "-aq", "--filter", "label=io.k8n.node").split() == []


def test_no_bridges_or_pod_veths_left():
    links = _out("ip", "-o", "link", "show")
    names = [line.split(": ")[1].split("@")[0] for line in links.splitlines() if ": " in line]
    assert [n for n in names if n.startswith("k8nbr-")] == []
    bridged = _out("ip", "-o", "link", "show", "type", "veth")
    assert [line for line in bridged.splitlines() if "master k8nbr-" in line] == []


def test_no_firewall_rules_left():
    assert "k8n:" not in _out("iptables", "-S", "DOCKER-USER")
    assert "k8n:" not in _out("iptables", "-t", "nat", "-S", "POSTROUTING")


def test_no_test_namespaces_left():
    assert [n for n in _out("ip", "netns", "list").split() if n.startswith("t-")] == []
