"""What k8n can leave on a machine: pod containers, bridges, pod veths, firewall rules, test
network namespaces, service proxy nft tables. The suite snapshots it at the start (tests/conftest.py) and the last test
module checks that the suite added nothing."""

from __future__ import annotations

import subprocess

import pytest

BASELINE = pytest.StashKey[dict]()


def _out(*cmd: str) -> str:
    r = subprocess.run(list(cmd), capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else ""


def snapshot() -> dict[str, set[str]]:
    links = [line.split(": ")[1].split("@")[0] for line in _out("ip", "-o", "link", "show").splitlines()
             if ": " in line]
    veths = _out("ip", "-o", "link", "show", "type", "veth")
    return {
        "containers": set(_out("docker", "ps", "-aq", "--filter", "label=io.k8n.node").split()),
        "bridges": {n for n in links if n.startswith("k8nbr-")},
        "pod veths": {line.split(": ")[1].split("@")[0] for line in veths.splitlines() if "master k8nbr-" in line},
        "firewall rules": {r for r in _out("iptables", "-S", "DOCKER-USER").splitlines() if "k8n:" in r}
        | {r for r in _out("iptables", "-t", "nat", "-S", "POSTROUTING").splitlines() if "k8n:" in r},
        "test netns": {n for n in _out("ip", "netns", "list").split() if n.startswith("t-")},
        "nft tables": {line for line in _out("nft", "list", "tables").splitlines() if " k8n-" in line},
    }
