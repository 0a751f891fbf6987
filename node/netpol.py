"""NetworkPolicy enforcement on one node: the compiled document the node view keeps for this node
(``master/netpol``; it arrives with the node's pods, :class:`PodsAndPolicy` takes it out of the pod informer's
stream) programmed into nftables, one atomic ``nft -j -f -`` transaction per change carrying only what changed
(``node.proxy.nft``'s State, diff and transactions).

Table ``ip k8n-np-<hash of node name>`` (its own per node: agents sharing a network namespace each key their rules
by their own pods' addresses), base chain ``forward`` (hook forward, priority filter: after the service DNAT of
prerouting, so a policy sees the pod a Service picked; bridged pod traffic crosses it through br_netfilter):
- ``ct state established,related accept``: replies, and flows a policy admitted when they began;
- ``ip saddr vmap @egress-pods``: a pod isolated for egress jumps to its chain ``egress-<ip>``;
- ``ip daddr vmap @ingress-pods``: likewise ``ingress-<ip>`` for ingress;
- each pod chain ``return``s what one of its entries admits (``ip daddr|saddr @peers-… meta l4proto P th dport
  {ports}``) and drops the rest; ``peers-<hash of the entry's id>`` is the interval set of the entry's addresses,
  shared by the pods the entry applies to, so a pod joining or leaving a policy's peers is one element added or
  removed, the chains untouched.
Traffic the node itself sends to its pods (probes, the agent) takes the output path and is never filtered.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from functools import lru_cache
from typing import Any, Awaitable, Callable

from bus import aio, subjects
from bus.store import DELETED

from .proxy import nft
from .proxy.nft import DADDR, DPORT, L4PROTO, SADDR, State, Tx, _match, _prefix

log = logging.getLogger(__name__)

FORWARD = "forward"
MAPS = {"Ingress": ("ingress-pods", SADDR), "Egress": ("egress-pods", DADDR)}  # map, the peer's address
ACCEPT_ESTABLISHED = (_match({"ct": {"key": "state"}}, ["established", "related"], "in"), {"accept": None})
FIXED: dict[str, tuple] = {FORWARD: (
    ACCEPT_ESTABLISHED,
    ({"vmap": {"key": SADDR, "data": "@egress-pods"}},),
    ({"vmap": {"key": DADDR, "data": "@ingress-pods"}},),
)}


def table_name(node_name: str) -> str:
    return f"k8n-np-{hashlib.sha256(node_name.encode()).hexdigest()[:8]}"


def pod_chain(direction: str, ip: str) -> str:
    return f"{direction.lower()}-{ip}"


def peer_set(entry_id: str) -> str:
    """The interval set of one compiled entry's addresses, shared by every pod the entry applies to."""
    return f"peers-{hashlib.sha256(entry_id.encode()).hexdigest()[:16]}"


def _element(prefix: str) -> Any:
    return prefix.removesuffix("/32") if prefix.endswith("/32") else _prefix(prefix)


def _ports(ports: list[list]) -> Any:
    items = [port if end is None or end == port else {"range": [port, end]} for _, port, end in ports]
    return items[0] if len(items) == 1 else {"set": items}


def entry_rules(direction: str, entry: dict) -> tuple:
    """The rules of one compiled entry: one per protocol (all protocols when it names no port)."""
    ports = tuple(tuple(p) for p in entry.get("ports") or ())
    sets = (peer_set(entry["id"]),) if entry.get("peers") is not None else ()
    return _entry_rules(direction, sets, ports)


@lru_cache(maxsize=1 << 16)
def _entry_rules(direction: str, sets: tuple[str, ...], ports: tuple) -> tuple:
    """(Cached: a re-render shares the rule objects of unchanged entries, so comparing them is cheap.)"""
    by_proto: dict[str, list] = {}
    for proto, port, end in ports:
        by_proto.setdefault(proto.lower(), []).append([proto, port, end])
    matches = [[]]
    for proto, group in sorted(by_proto.items()):
        numbered = [p for p in group if p[1] is not None]
        m = [_match(L4PROTO, proto)]
        if len(numbered) == len(group):
            m.append(_match(DPORT, _ports(numbered)))
        matches.append(m)
    if by_proto:
        matches = matches[1:]
    addrs = [[_match(MAPS[direction][1], f"@{name}")] for name in sets] or [[]]
    return tuple((*a, *m, {"return": None}) for a in addrs for m in matches)


@lru_cache(maxsize=1 << 16)
def _set_elements(peers: tuple[str, ...]) -> dict:
    """An address set's elements (cached and shared: never mutate)."""
    return dict.fromkeys((p,) for p in peers)


def render(doc: dict | None) -> State:
    """The table content for one node's compiled document (None: no pod isolated). ``elements`` holds the two
    verdict maps and the address sets (``peers-…``, keyed by prefix text)."""
    st = State(("netpol",), dict(FIXED), {"ingress-pods": {}, "egress-pods": {}})
    for ip, pod in sorted(((doc or {}).get("pods") or {}).items()):
        for direction in ("Ingress", "Egress"):
            entries = pod.get(direction)
            if entries is None:
                continue
            chain = pod_chain(direction, ip)
            for e in entries:
                if e.get("peers") is not None:
                    st.elements[peer_set(e["id"])] = _set_elements(tuple(e["peers"]))
            rules = [r for e in entries for r in entry_rules(direction, e)]
            st.chains[chain] = (*rules, ({"drop": None},))
            st.elements[MAPS[direction][0]][(ip,)] = ("jump", chain)
    return st


def _is_set(name: str) -> bool:
    return name.startswith("peers-")


def _add_set(tx: Tx, name: str) -> None:
    tx.add("set", name=name, type="ipv4_addr", flags=["interval"])


def _address_elements(tx: Tx) -> Tx:
    """Prefix texts of the address sets as nft's JSON wants them."""
    for cmd in tx.cmds:
        for body in cmd.values():
            el = body.get("element") if isinstance(body, dict) else None
            if el is not None and _is_set(el["name"]):
                el["elem"] = [_element(e) for e in el["elem"]]
    return tx


def full(table: str, st: State) -> Tx:
    """Replace the whole table atomically."""
    tx = Tx(table)
    tx.cmds.append({"add": {"table": {"family": nft.FAMILY, "name": table}}})
    tx.cmds.append({"delete": {"table": {"family": nft.FAMILY, "name": table}}})
    tx.cmds.append({"add": {"table": {"family": nft.FAMILY, "name": table}}})
    tx.add("chain", name=FORWARD, type="filter", hook="forward", prio=0, policy="accept")
    for name in st.elements:
        if _is_set(name):
            _add_set(tx, name)
        else:
            tx.add("map", name=name, type="ipv4_addr", map="verdict")
    for name in st.chains:
        if name != FORWARD:
            tx.add("chain", name=name)
    for name, rules in st.chains.items():
        tx.rules(name, rules)
    for name, elems in st.elements.items():
        tx.elements(name, list(elems.items()))
    return _address_elements(tx)


def _changed_only(old: State, new: State) -> tuple[State, State]:
    """Both states without the chains and sets they hold alike (renders share unchanged parts: mostly an identity
    check), so that ``nft.diff`` only walks what changed."""
    def same(a: Any, b: Any) -> bool:
        return a is b or a == b

    chains = {n for n in old.chains.keys() | new.chains.keys() if not same(old.chains.get(n), new.chains.get(n))}
    sets = {n for n in old.elements.keys() | new.elements.keys() if not same(old.elements.get(n), new.elements.get(n))}
    return tuple(State(s.fixed, {n: r for n, r in s.chains.items() if n in chains},
                       {n: e for n, e in s.elements.items() if n in sets}) for s in (old, new))


def diff(table: str, old: State, new: State) -> Tx:
    """Only what changed: new address sets first, then ``nft.diff``'s chains and elements (a changed set is
    elements removed and added), removed sets last (no rule refers to them any more)."""
    tx = nft.diff(table, *_changed_only(old, new))
    if tx is None:  # the base changed (never: it is fixed)
        return full(table, new)
    head = Tx(table)
    for name in new.elements:
        if _is_set(name) and name not in old.elements:
            _add_set(head, name)
    removed = {name for name in old.elements if _is_set(name) and name not in new.elements}
    tx.cmds = head.cmds + [c for c in tx.cmds if not ("delete" in c and c["delete"].get("element", {}).get("name")
                                                      in removed)]
    for name in removed:
        tx.verb("delete", "set", name=name)
    return _address_elements(tx)


class PolicyEnforcer:
    """Keeps the node's table equal to the latest document: one sync at a time, changes arriving meanwhile
    coalesced into the next; the first sync (and any after a failure) replaces the whole table."""

    def __init__(self, node_name: str, runner: Callable[[bytes], Awaitable[None]] = nft.run) -> None:
        self.node_name = node_name
        self.table = table_name(node_name)
        self.runner = runner
        self.doc: dict | None = None
        self.applied: State | None = None
        self.applied_doc: dict | None = None
        self.syncs = 0
        self.last_commands = 0
        self.last_sync_seconds = 0.0
        self.on_synced: Callable[[dict | None], Any] | None = None  # called after each sync (benchmarks)
        self._dirty = asyncio.Event()
        self._task: asyncio.Task | None = None

    def set_document(self, doc: dict | None) -> None:
        self.doc = doc
        self._dirty.set()

    def source(self, store: Any) -> "PodsAndPolicy":
        return PodsAndPolicy(store, self.set_document)

    async def start(self) -> None:
        self._dirty.clear()
        try:
            await self.sync()
        except Exception as e:
            log.error("network policy: first sync failed: %s", e)
            self._dirty.set()
        self._task = asyncio.create_task(self._loop(), name=f"netpol-{self.node_name}")

    async def stop(self, cleanup: bool = False) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if cleanup:
            try:
                await nft.delete_table(self.table)
            except Exception as e:
                log.warning("network policy: removing table %s failed: %s", self.table, e)

    async def sync(self) -> int:
        t0 = time.perf_counter()
        doc = self.doc
        state = render(doc)
        tx = full(self.table, state) if self.applied is None else diff(self.table, self.applied, state)
        if len(tx):
            try:
                await self.runner(tx.payload())
            except Exception:
                self.applied = None
                raise
        self.applied, self.applied_doc = state, doc
        self.syncs += 1
        self.last_commands = len(tx)
        self.last_sync_seconds = time.perf_counter() - t0
        if self.on_synced is not None:
            self.on_synced(doc)
        return len(tx)

    async def _loop(self) -> None:
        await aio.sync_when_dirty(self._dirty, self.sync, "network policy", log)


def _is_document(obj: dict) -> bool:
    return obj.get("kind") == subjects.NODE_NETWORK_POLICY_KIND


class PodsAndPolicy:
    """The node's part of the node view as the pod informer's source: the compiled policy document is handed to
    ``on_document`` (None when there is none) and never reaches the informer."""

    def __init__(self, store: Any, on_document: Callable[[dict | None], None]) -> None:
        self.store = store
        self.on_document = on_document

    async def list(self, res: Any, namespace: str | None = None) -> tuple[list[dict], int]:
        items, rv = await self.store.list(res, namespace)
        self.on_document(next((o for o in items if _is_document(o)), None))
        return [o for o in items if not _is_document(o)], rv

    async def watch(self, res: Any, namespace: str | None = None, since: int | None = None) -> "_PodWatch":
        return _PodWatch(await self.store.watch(res, namespace, since), self.on_document)


class _PodWatch:
    def __init__(self, inner: Any, on_document: Callable[[dict | None], None]) -> None:
        self.inner = inner
        self.on_document = on_document

    def __aiter__(self) -> "_PodWatch":
        return self

    async def __anext__(self) -> Any:
        while True:
            ev = await self.inner.__anext__()
            if not _is_document(ev.object):
                return ev
            self.on_document(None if ev.type == DELETED else ev.object)

    async def stop(self) -> None:
        await self.inner.stop()
