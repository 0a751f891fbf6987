"""iptables rules a node bridge needs on a host where Docker runs (pyroute2 has no iptables support).

br_netfilter sends bridged frames through iptables FORWARD, whose policy dockerd sets to DROP, and an
accept in a table of our own does not override that drop: the accepts go into Docker's ``DOCKER-USER``
chain (created if missing). Pods reach destinations outside the cluster CIDR through a masquerade rule.
The VXLAN device gets the same accepts (traffic forwarded into or out of the overlay other than to or
from the bridge, e.g. a NodePort DNAT'd to a pod on a node behind the overlay).
Every rule carries a ``k8n:<bridge>`` (or ``k8n:<VXLAN device>``) comment, is added once (``-C`` before
insert) and removed by spec.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

DOCKER_USER = "DOCKER-USER"


class FirewallError(RuntimeError):
    pass


@dataclass(frozen=True)
class Rule:
    table: str
    chain: str
    spec: tuple[str, ...]
    insert: bool  # first in the chain (before Docker's RETURN) rather than appended


def _tag(device: str) -> tuple[str, ...]:
    return ("-m", "comment", "--comment", f"k8n:{device}")


def forward_rules(device: str) -> list[Rule]:
    """Accept what is forwarded into or out of ``device``, ahead of Docker's FORWARD drop."""
    return [Rule("filter", DOCKER_USER, (flag, device, *_tag(device), "-j", "ACCEPT"), insert=True)
            for flag in ("-i", "-o")]


def bridge_rules(bridge: str, pod_cidr: str, cluster_cidr: str) -> list[Rule]:
    tag = _tag(bridge)
    return [
        *forward_rules(bridge),
        Rule("nat", "POSTROUTING", ("-s", pod_cidr, "!", "-d", cluster_cidr, *tag, "-j", "MASQUERADE"),
             insert=False),
    ]


async def _iptables(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "iptables", "-w", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    return proc.returncode, err.decode(errors="replace").strip()


async def _exists(rule: Rule) -> bool:
    code, _ = await _iptables("-t", rule.table, "-C", rule.chain, *rule.spec)
    return code == 0


async def _ensure_chain(table: str, chain: str) -> None:
    if (await _iptables("-t", table, "-n", "-L", chain))[0] != 0:
        await _iptables("-t", table, "-N", chain)  # may lose a race with dockerd: checked by the insert


async def ensure_rules(rules: list[Rule]) -> None:
    for chain in {(r.table, r.chain) for r in rules if r.chain == DOCKER_USER}:
        await _ensure_chain(*chain)
    for rule in rules:
        if await _exists(rule):
            continue
        code, err = await _iptables("-t", rule.table, "-I" if rule.insert else "-A", rule.chain, *rule.spec)
        if code != 0:
            raise FirewallError(f"iptables -t {rule.table} {rule.chain} {' '.join(rule.spec)}: {err}")


async def delete_rules(rules: list[Rule]) -> None:
    for rule in rules:
        while await _exists(rule):  # also removes duplicates left by a race
            code, err = await _iptables("-t", rule.table, "-D", rule.chain, *rule.spec)
            if code != 0:
                raise FirewallError(f"iptables -t {rule.table} -D {rule.chain} {' '.join(rule.spec)}: {err}")
