"""The desired datapath rendered as nftables objects (kube-proxy's nftables layout), the
transactions that install it (all at once, or only what changed) and running them through
``nft -j -f -`` (one atomic transaction per call).

Layout (table ``ip k8n-<hash of node name>``):
- base chains ``nat-prerouting``/``nat-output`` jump to ``services``: ``ip daddr . meta l4proto .
  th dport vmap @service-ips`` (ClusterIPs) and, for the node's address, ``meta l4proto . th dport
  vmap @service-nodeports``;
- ``service-…`` chain per service port: masquerade-mark traffic from outside the cluster CIDR, the
  session-affinity checks, then ``numgen random mod N vmap`` onto the endpoint chains;
  ``external-…`` (NodePort): masquerade-mark, then the service chain;
- ``endpoint-…`` chain per endpoint: masquerade-mark hairpin traffic (source is the endpoint),
  record the client in the affinity set, DNAT;
- ``nat-postrouting`` → ``masquerading``: masquerade what was marked;
- filter chains (before DNAT) reject new connections to service ports with no ready endpoint
  (``@no-endpoint-services``/``@no-endpoint-nodeports``), and (after DNAT) to ClusterIP ports
  that are not a service port (``@cluster-ips``).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from functools import lru_cache

import orjson

from .model import Desired, ServicePort

FAMILY = "ip"
MASQ_MARK = 0x4000
# Chains, maps and sets every table has (their content depends only on the node's IP and cluster CIDR).
BASE_CHAINS = [  # name, type, hook, priority (dstnat = -100, srcnat = 100)
    ("filter-prerouting", "filter", "prerouting", -110),
    ("filter-input", "filter", "input", -110),
    ("filter-forward", "filter", "forward", -110),
    ("filter-output", "filter", "output", -110),
    ("filter-output-post-dnat", "filter", "output", -90),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
]
MAPS = {  # name → key type
    "service-ips": ["ipv4_addr", "inet_proto", "inet_service"],
    "service-nodeports": ["inet_proto", "inet_service"],
    "no-endpoint-services": ["ipv4_addr", "inet_proto", "inet_service"],
    "no-endpoint-nodeports": ["inet_proto", "inet_service"],
}
SETS = {"cluster-ips": "ipv4_addr", "nodeport-ips": "ipv4_addr"}


def table_name(node_name: str) -> str:
    return f"k8n-{hashlib.sha256(node_name.encode()).hexdigest()[:8]}"


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def service_chain(sp: ServicePort) -> str:
    return f"service-{_hash(sp.id)}-{sp.id}"


def external_chain(sp: ServicePort) -> str:
    return f"external-{_hash(sp.id)}-{sp.id}"


def endpoint_chain(sp: ServicePort, ip: str, port: int) -> str:
    ep = f"{sp.id}__{ip}/{port}"
    return f"endpoint-{_hash(ep)}-{ep}"


def affinity_set(sp: ServicePort, ip: str, port: int) -> str:
    ep = f"{sp.id}__{ip}/{port}"
    return f"affinity-{_hash(ep)}-{ep}"


# ---- JSON expression helpers ---------------------------------------------------------------

def _payload(proto: str, fld: str) -> dict:
    return {"payload": {"protocol": proto, "field": fld}}


def _meta(key: str) -> dict:
    return {"meta": {"key": key}}


def _match(left, right, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def _jump(target: str) -> dict:
    return {"jump": {"target": target}}


def _goto(target: str) -> dict:
    return {"goto": {"target": target}}


SADDR, DADDR, DPORT = _payload("ip", "saddr"), _payload("ip", "daddr"), _payload("th", "dport")
L4PROTO, CT_NEW = _meta("l4proto"), _match({"ct": {"key": "state"}}, "new", "in")
MARK_FOR_MASQ = _jump("mark-for-masquerade")


def _prefix(cidr: str) -> dict:
    addr, length = cidr.split("/")
    return {"prefix": {"addr": addr, "len": int(length)}}


# ---- the state: what one table holds ---------------------------------------------------------

Rule = tuple  # statements (JSON-able dicts), compared by value
Key = tuple


@dataclass
class State:
    """Everything the table holds: ``fixed`` (node IP, cluster CIDR) decides the base; chains are
    name → rules; ``elements`` are map name → key → verdict target, set name → key → None;
    ``affinity`` are the dynamic sets name → timeout."""

    fixed: tuple[str, str]
    chains: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    elements: dict[str, dict[Key, tuple[str, str] | None]] = field(default_factory=dict)
    affinity: dict[str, int] = field(default_factory=dict)


def _fixed_chains(node_ip: str) -> dict[str, tuple[Rule, ...]]:
    return {
        "filter-prerouting": (),
        "filter-input": ((CT_NEW, _jump("nodeport-endpoints-check")), (CT_NEW, _jump("service-endpoints-check"))),
        "filter-forward": ((CT_NEW, _jump("service-endpoints-check")), (CT_NEW, _jump("cluster-ips-check"))),
        "filter-output": ((CT_NEW, _jump("service-endpoints-check")),),
        "filter-output-post-dnat": ((CT_NEW, _jump("cluster-ips-check")),),
        "nat-prerouting": ((_jump("services"),),),
        "nat-output": ((_jump("services"),),),
        "nat-postrouting": ((_jump("masquerading"),),),
        "masquerading": (
            (_match({"&": [_meta("mark"), MASQ_MARK]}, 0), {"return": None}),
            ({"mangle": {"key": _meta("mark"), "value": {"^": [_meta("mark"), MASQ_MARK]}}},),
            # not fully-random (kube-proxy's choice): with a server that closes first (busybox httpd) and
            # one node source address, random ports hit the server's TIME_WAIT sockets and wait for a 1 s
            # SYN retry; measured ClusterIP/pod-IP throughput 0.41-0.64 with it, 0.95-1.04 without
            ({"masquerade": None},),
        ),
        "mark-for-masquerade": (({"mangle": {"key": _meta("mark"), "value": {"|": [_meta("mark"), MASQ_MARK]}}},),),
        "services": (
            ({"vmap": {"key": {"concat": [DADDR, L4PROTO, DPORT]}, "data": "@service-ips"}},),
            (_match(DADDR, "@nodeport-ips"), {"vmap": {"key": {"concat": [L4PROTO, DPORT]},
                                                       "data": "@service-nodeports"}}),
        ),
        "service-endpoints-check": (
            ({"vmap": {"key": {"concat": [DADDR, L4PROTO, DPORT]}, "data": "@no-endpoint-services"}},),),
        "nodeport-endpoints-check": (
            (_match(DADDR, "@nodeport-ips"), {"vmap": {"key": {"concat": [L4PROTO, DPORT]},
                                                       "data": "@no-endpoint-nodeports"}}),),
        "cluster-ips-check": ((_match(DADDR, "@cluster-ips"), {"reject": None}),),
        "reject-chain": ((_match(L4PROTO, "tcp"), {"reject": {"type": "tcp reset"}}), ({"reject": None},)),
    }


def render(d: Desired) -> State:
    """The table content for a desired datapath (pure; each service port's part is cached, so a
    re-render after one change costs little more than the changed service)."""
    st = State((d.node_ip, d.cluster_cidr), _fixed_chains(d.node_ip),
               {name: {} for name in (*MAPS, *SETS)})
    st.elements["nodeport-ips"][(d.node_ip,)] = None
    for sp in d.ports.values():
        chains, elements, affinity = _render_port(sp, d.cluster_cidr)
        st.chains.update(chains)
        for name, key, value in elements:
            st.elements[name][key] = value
        st.affinity.update(affinity)
    return st


@lru_cache(maxsize=1 << 16)
def _render_port(sp: ServicePort, cluster_cidr: str) -> tuple[tuple, tuple, tuple]:
    """One service port's chains, map/set elements and affinity sets."""
    chains: dict[str, tuple[Rule, ...]] = {}
    elements: list[tuple[str, Key, tuple[str, str] | None]] = [("cluster-ips", (sp.cluster_ip,), None)]
    affinity: dict[str, int] = {}
    ip_key = (sp.cluster_ip, sp.protocol, sp.port)
    np_key = (sp.protocol, sp.node_port)
    if not sp.endpoints:
        elements.append(("no-endpoint-services", ip_key, ("goto", "reject-chain")))
        if sp.node_port:
            elements.append(("no-endpoint-nodeports", np_key, ("goto", "reject-chain")))
        return (), tuple(elements), ()
    svc = service_chain(sp)
    elements.append(("service-ips", ip_key, ("goto", svc)))
    rules: list[Rule] = [(_match(DADDR, sp.cluster_ip), _match(L4PROTO, sp.protocol), _match(DPORT, sp.port),
                          _match(SADDR, _prefix(cluster_cidr), "!="), MARK_FOR_MASQ)]
    eps = [(ep, endpoint_chain(sp, ep.ip, ep.port)) for ep in sp.endpoints]
    if sp.affinity_seconds:
        for ep, chain in eps:
            aff = affinity_set(sp, ep.ip, ep.port)
            affinity[aff] = sp.affinity_seconds
            rules.append((_match(SADDR, f"@{aff}"), _goto(chain)))
    rules.append(({"vmap": {"key": {"numgen": {"mode": "random", "mod": len(eps), "offset": 0}},
                            "data": {"set": [[i, _goto(chain)] for i, (_, chain) in enumerate(eps)]}}},))
    chains[svc] = tuple(rules)
    for ep, chain in eps:
        ep_rules: list[Rule] = [(_match(SADDR, ep.ip), MARK_FOR_MASQ)]
        if sp.affinity_seconds:
            ep_rules.append(({"set": {"op": "update", "elem": SADDR,
                                      "set": f"@{affinity_set(sp, ep.ip, ep.port)}"}},))
        ep_rules.append((_match(L4PROTO, sp.protocol), {"dnat": {"addr": ep.ip, "port": ep.port}}))
        chains[chain] = tuple(ep_rules)
    if sp.node_port:
        ext = external_chain(sp)
        elements.append(("service-nodeports", np_key, ("goto", ext)))
        chains[ext] = ((MARK_FOR_MASQ,), (_goto(svc),))
    return tuple(chains.items()), tuple(elements), tuple(affinity.items())


# ---- transactions ----------------------------------------------------------------------------

class Tx:
    """Builds the command list of one ``nft -j`` transaction for one table."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.cmds: list[dict] = []

    def _obj(self, **kw) -> dict:
        return {"family": FAMILY, "table": self.table, **kw}

    def add(self, kind: str, **kw) -> None:
        self.cmds.append({"add": {kind: self._obj(**kw)}})

    def verb(self, verb: str, kind: str, **kw) -> None:
        self.cmds.append({verb: {kind: self._obj(**kw)}})

    def rules(self, chain: str, rules: tuple[Rule, ...]) -> None:
        for r in rules:
            self.add("rule", chain=chain, expr=list(r))

    def elements(self, name: str, items: list[tuple[Key, tuple[str, str] | None]], verb: str = "add") -> None:
        if not items:
            return
        elems = []
        for key, value in items:
            k = key[0] if len(key) == 1 else {"concat": list(key)}
            elems.append(k if value is None else [k, {value[0]: {"target": value[1]}}])
        self.cmds.append({verb: {"element": self._obj(name=name, elem=elems)}})

    def payload(self) -> bytes:
        return orjson.dumps({"nftables": self.cmds})

    def __len__(self) -> int:
        return len(self.cmds)


def full(table: str, st: State) -> Tx:
    """Replace the whole table atomically: add (so the delete cannot fail), delete, re-create."""
    tx = Tx(table)
    tx.cmds.append({"add": {"table": {"family": FAMILY, "name": table}}})
    tx.cmds.append({"delete": {"table": {"family": FAMILY, "name": table}}})
    tx.cmds.append({"add": {"table": {"family": FAMILY, "name": table}}})
    for name, kind, hook, prio in BASE_CHAINS:
        tx.add("chain", name=name, type=kind, hook=hook, prio=prio, policy="accept")
    for name, key in MAPS.items():
        tx.add("map", name=name, type=key, map="verdict")
    for name, key in SETS.items():
        tx.add("set", name=name, type=key)
    for name, timeout in st.affinity.items():
        _add_affinity(tx, name, timeout)
    base = {c[0] for c in BASE_CHAINS}
    for name in st.chains:
        if name not in base:
            tx.add("chain", name=name)
    for name, rules in st.chains.items():
        tx.rules(name, rules)
    for name, elems in st.elements.items():
        tx.elements(name, list(elems.items()))
    return tx


def _add_affinity(tx: Tx, name: str, timeout: int) -> None:
    tx.add("set", name=name, type="ipv4_addr", flags=["timeout"], timeout=timeout)


def diff(table: str, old: State, new: State) -> Tx | None:
    """Only what changed, in an order nft accepts within one transaction (None: a full resync is
    needed because the base changed)."""
    if old.fixed != new.fixed:
        return None
    tx = Tx(table)
    for name, timeout in new.affinity.items():
        if old.affinity.get(name) != timeout:
            if name in old.affinity:
                return None  # a changed timeout: rare, let the full resync recreate the set
            _add_affinity(tx, name, timeout)
    added = [n for n in new.chains if n not in old.chains]
    changed = [n for n in new.chains if n in old.chains and old.chains[n] != new.chains[n]]
    removed = [n for n in old.chains if n not in new.chains]
    for name in added:
        tx.add("chain", name=name)
    for name in changed:
        tx.verb("flush", "chain", name=name)
    for name in added + changed:
        tx.rules(name, new.chains[name])
    for name in set(old.elements) | set(new.elements):
        o, n = old.elements.get(name, {}), new.elements.get(name, {})
        tx.elements(name, [(k, v) for k, v in o.items() if k not in n or n[k] != v], "delete")
        tx.elements(name, [(k, v) for k, v in n.items() if k not in o or o[k] != v], "add")
    for name in removed:  # no longer referenced: the elements and rules pointing here are gone above
        tx.verb("flush", "chain", name=name)
    for name in removed:
        tx.verb("delete", "chain", name=name)
    for name in old.affinity:
        if name not in new.affinity:
            tx.verb("delete", "set", name=name)
    return tx


class NftError(RuntimeError):
    pass


async def run(payload: bytes, check: bool = False) -> None:
    """Run one transaction (``nft -j -f -``); raises NftError with nft's message."""
    args = ["nft", "-j", *(["-c"] if check else []), "-f", "-"]
    proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(payload)
    if proc.returncode != 0:
        raise NftError((err or out).decode(errors="replace").strip()[:2000])


async def delete_table(table: str) -> None:
    """Remove the table if present (add first so the delete cannot fail)."""
    await run(orjson.dumps({"nftables": [{"add": {"table": {"family": FAMILY, "name": table}}},
                                         {"delete": {"table": {"family": FAMILY, "name": table}}}]}))
