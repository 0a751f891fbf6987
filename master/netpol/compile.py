"""NetworkPolicy semantics (networking.k8s.io/v1), pure: which pods a policy selects, which pods and
addresses a rule's peers admit, which ports it opens, and one pod's compiled rules per direction.

Kubernetes' rules, as ``pkg/apis/networking/types.go`` states them:
- ``spec.podSelector`` selects pods of the policy's namespace (``{}``: all of them); a selected pod is isolated
  in each direction the policy's ``policyTypes`` name (default ``[Ingress]``, plus ``Egress`` when it has egress
  rules); a pod no policy selects is open in that direction. Rules of all policies selecting a pod add up.
- a rule with no (or an empty) ``from``/``to`` admits every address; with no (or empty) ``ports`` every port.
- a peer: ``podSelector`` alone selects pods of the policy's namespace, ``namespaceSelector`` alone every pod of
  the matching namespaces (``{}``: all namespaces), both together the pods matching both (AND); ``ipBlock`` admits
  its CIDR minus its ``except`` ranges, for any address, pods included.
- a port: ``protocol`` (default TCP), ``port`` a number or a container port name, ``endPort`` a range's end;
  without ``port`` every port of the protocol. A named port matches the ports of that name: for ingress those of
  the selected pod, for egress those of each destination pod (so a named port never matches a non-pod address).

Compiled form (what ``master/netpol/index.py`` writes for the agent): a pod's direction is absent (open) or a list
of entries ``{"id": rule, "peers": [prefix, …] | None, "ports": [[protocol, port | None, endPort | None], …]}``;
``peers`` None admits any address, ``ports`` [] any port and protocol. An entry whose peers or ports came out empty admits
nothing and is left out.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from bus.labels import Selector, selector_from_label_selector

INGRESS, EGRESS = "Ingress", "Egress"
DIRECTIONS = (INGRESS, EGRESS)
Port = tuple[str, "int | None", "int | None"]  # protocol, port (None: all), endPort (None: just port)


# ---- pods ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PodInfo:
    """What policies look at in a pod: where it runs, its address, labels and named container ports."""

    namespace: str
    name: str
    node: str
    ip: str
    labels: tuple[tuple[str, str], ...]
    ports: tuple[tuple[str, str, int], ...]  # (name, protocol, number) of named container ports

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ip_int(self) -> int:
        """The IPv4 address as a number (-1 for IPv6: k8n's datapath is IPv4)."""
        try:
            return int.from_bytes(socket.inet_aton(self.ip), "big")
        except OSError:
            return -1

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def named_port(self, name: str, protocol: str) -> list[int]:
        return [n for pn, proto, n in self.ports if pn == name and proto == protocol]


def pod_info(pod: Mapping[str, Any]) -> PodInfo | None:
    """A pod as policies see it; None when it has no pod network address of its own (not running yet, finished,
    or on the host network): such pods are neither selected nor peers."""
    meta, spec, status = (pod.get(k) or {} for k in ("metadata", "spec", "status"))
    ip = status.get("podIP")
    if not ip or spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
        return None
    ports = []
    for c in spec.get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") and p.get("containerPort"):
                ports.append((p["name"], p.get("protocol") or "TCP", int(p["containerPort"])))
    return PodInfo(meta.get("namespace") or "default", meta.get("name") or "", spec.get("nodeName") or "", ip,
                   tuple(sorted((meta.get("labels") or {}).items())), tuple(sorted(ports)))


# ---- policies ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Peer:
    pods: Selector | None  # None: not given
    namespaces: Selector | None
    cidr: str | None = None
    excepts: tuple[str, ...] = ()

    @property
    def key(self) -> tuple:
        """Identity of the set of pods it admits (with the policy namespace): peers alike share their sets."""
        return (str(self.pods) if self.pods else None, str(self.namespaces) if self.namespaces else None)


@dataclass(frozen=True)
class Rule:
    peers: tuple[Peer, ...] | None  # None: every address
    ports: tuple[tuple[str, "int | str | None", "int | None"], ...]  # () = every port


@dataclass(frozen=True)
class Policy:
    namespace: str
    name: str
    selector: Selector
    types: frozenset[str]
    ingress: tuple[Rule, ...]
    egress: tuple[Rule, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def selects(self, pod: PodInfo) -> bool:
        return pod.namespace == self.namespace and self.selector.matches(pod.label_map)

    def rules(self, direction: str) -> tuple[Rule, ...]:
        return self.ingress if direction == INGRESS else self.egress

    def needs_every_pod(self) -> bool:
        """Whether an egress rule names ports without pod peers (its destinations are every pod, or those inside
        its ipBlocks)."""
        return any(_named(r) and (r.peers is None or any(p.cidr for p in r.peers)) for r in self.egress)

    def pod_peers(self) -> list[Peer]:
        return [p for d in DIRECTIONS for r in self.rules(d) for p in r.peers or () if p.cidr is None]


def _selector(sel: Any) -> Selector | None:
    return None if sel is None else selector_from_label_selector(sel)


def _peer(p: Mapping[str, Any]) -> Peer:
    block = p.get("ipBlock")
    if block:
        return Peer(None, None, str(ipaddress.ip_network(block["cidr"], strict=False)),
                    tuple(str(ipaddress.ip_network(e, strict=False)) for e in block.get("except") or ()))
    return Peer(_selector(p.get("podSelector")), _selector(p.get("namespaceSelector")))


def _rule(r: Mapping[str, Any], peers_field: str) -> Rule:
    peers = r.get(peers_field) or None
    ports = tuple((p.get("protocol") or "TCP", p.get("port"), p.get("endPort")) for p in r.get("ports") or ())
    return Rule(None if peers is None else tuple(_peer(p) for p in peers), ports)


def parse_policy(obj: Mapping[str, Any]) -> Policy:
    """A NetworkPolicy object (validated by the API server) in the compiler's terms."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    types = spec.get("policyTypes") or [INGRESS] + ([EGRESS] if spec.get("egress") else [])
    return Policy(meta.get("namespace") or "default", meta.get("name") or "",
                  selector_from_label_selector(spec.get("podSelector") or {}), frozenset(types),
                  tuple(_rule(r, "from") for r in spec.get("ingress") or ()),
                  tuple(_rule(r, "to") for r in spec.get("egress") or ()))


def peer_admits(peer: Peer, policy_ns: str, pod: PodInfo, ns_labels: Mapping[str, str] | None) -> bool:
    """Whether a pod peer (no ipBlock) admits ``pod`` (``ns_labels``: the labels of the pod's namespace)."""
    if peer.namespaces is None:
        if pod.namespace != policy_ns:
            return False
    elif ns_labels is None or not peer.namespaces.matches(ns_labels):
        return False
    return peer.pods is None or peer.pods.matches(pod.label_map)


def block_prefixes(peer: Peer) -> list[ipaddress.IPv4Network]:
    """An ipBlock as prefixes: its CIDR minus its excepts."""
    nets = [ipaddress.ip_network(peer.cidr)]
    for e in peer.excepts:
        ex = ipaddress.ip_network(e)
        nets = [piece for n in nets for piece in ((n,) if not n.overlaps(ex) else
                                                   (() if n.subnet_of(ex) else n.address_exclude(ex)))]
    return nets


def prefixes(pods: Iterable[PodInfo], blocks: Iterable[ipaddress.IPv4Network] = ()) -> list[str]:
    """Addresses as a sorted list of non-overlapping prefixes, as an nftables interval set needs them: the blocks
    merged, and each pod outside them as its /32 (never merged with its neighbours, so that a pod joining or leaving
    is one element added or removed)."""
    nets = list(ipaddress.collapse_addresses(b for b in blocks if b.version == 4))
    spans = [(int(n.network_address), int(n.broadcast_address)) for n in nets]
    ips = sorted({p.ip_int for p in pods if p.ip_int >= 0 and not any(lo <= p.ip_int <= hi for lo, hi in spans)})
    out = [(lo, str(n)) for (lo, _), n in zip(spans, nets)]
    out += [(ip, f"{socket.inet_ntoa(ip.to_bytes(4, 'big'))}/32") for ip in ips]
    return [text for _, text in sorted(out)]


def _numeric_ports(rule: Rule, local: PodInfo | None) -> list[Port] | None:
    """The rule's ports with names resolved on ``local`` (ingress: the selected pod; None: leave named ports
    out); None when the rule admits every port."""
    if not rule.ports:
        return None
    out: list[Port] = []
    for proto, port, end in rule.ports:
        if port is None:
            out.append((proto, None, None))
        elif isinstance(port, int) or str(port).isdigit():
            out.append((proto, int(port), int(end) if end is not None else None))
        elif local is not None:
            out += [(proto, n, None) for n in local.named_port(str(port), proto)]
    return out


def _named(rule: Rule) -> list[tuple[str, str]]:
    return [(proto, str(port)) for proto, port, _ in rule.ports
            if port is not None and not isinstance(port, int) and not str(port).isdigit()]


def _ports_json(ports: Iterable[Port]) -> list[list]:
    return [list(p) for p in sorted(set(ports), key=lambda p: (p[0], p[1] or 0, p[2] or 0))]


def compile_rule(rule: Rule, direction: str, local: PodInfo, peer_pods: Any, rule_id: str = "") -> list[dict]:
    """One rule of one policy for the selected pod ``local`` as compiled entries. ``peer_pods(peer)`` gives the
    pods (PodInfo) a pod peer of this policy admits. Each entry carries an ``id`` (``rule_id``, and for egress to a
    named port the destination's address), the same for every pod the rule applies to, so the datapath can share
    one address set per entry and update it in place."""
    pods: dict[str, PodInfo] = {}
    blocks: list[ipaddress.IPv4Network] = []
    if rule.peers is not None:
        for peer in rule.peers:
            if peer.cidr is not None:
                blocks += block_prefixes(peer)
            else:
                for p in peer_pods(peer):
                    pods[p.key] = p
    peers = None if rule.peers is None else prefixes(pods.values(), blocks)
    if direction == INGRESS:
        ports = _numeric_ports(rule, local)
        if ports is not None and not ports or peers is not None and not peers:
            return []
        return [{"id": rule_id, "peers": peers, "ports": _ports_json(ports or ())}]
    numeric = _numeric_ports(rule, None)
    entries = []
    if numeric is None or numeric:
        if peers is None or peers:
            entries.append({"id": rule_id, "peers": peers, "ports": _ports_json(numeric or ())})
    named = _named(rule)
    if named:
        # egress to named ports: each destination pod's own numbers (pods the peers admit; any pod without peers)
        dests = pods.values() if rule.peers is not None else peer_pods(None)
        if rule.peers is not None and blocks:
            dests = list(dests) + [p for p in peer_pods(None) if p.key not in pods and _in_blocks(p, blocks)]
        for p in sorted(dests, key=lambda p: p.ip):
            ports = [(proto, n, None) for proto, name in named for n in p.named_port(name, proto)]
            if ports:
                entries.append({"id": f"{rule_id}/{p.ip}", "peers": prefixes([p]), "ports": _ports_json(ports)})
    return entries


def _in_blocks(pod: PodInfo, blocks: list[ipaddress.IPv4Network]) -> bool:
    addr = ipaddress.ip_address(pod.ip)
    return any(addr in b for b in blocks)


def compile_pod(pod: PodInfo, policies: Iterable[Policy], rule_entries: Any) -> dict:
    """The compiled rules of one pod: ``{"pod": ns/name, "Ingress": [entries], "Egress": [entries]}`` holding only
    the directions some selecting policy isolates (``policies``: those selecting the pod). ``rule_entries(policy,
    direction, index, rule, pod)`` compiles one rule (:func:`compile_rule`, or a cache of it)."""
    out: dict[str, Any] = {"pod": pod.key}
    for direction in DIRECTIONS:
        entries: list[dict] | None = None
        for pol in policies:
            if direction not in pol.types:
                continue
            entries = entries if entries is not None else []
            for i, rule in enumerate(pol.rules(direction)):
                entries += rule_entries(pol, direction, i, rule, pod)
        if entries is not None:
            out[direction] = entries
    return out


def depends_on_local_pod(rule: Rule, direction: str) -> bool:
    """Whether a rule compiles differently per selected pod (ingress named ports resolve on that pod)."""
    return direction == INGRESS and bool(_named(rule))
