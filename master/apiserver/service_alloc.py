"""ClusterIP and NodePort allocation for Services, as kube-apiserver's allocators do it.

- ClusterIPs come from the service CIDR (``$K8N_SERVICE_CIDR``, default ``10.96.0.0/12``; the network
  and broadcast addresses are never handed out), NodePorts from ``$K8N_NODE_PORT_RANGE`` (default
  ``30000-32767``). Random picks prefer the upper part of each range, leaving the lower band to
  requested values, as Kubernetes does.
- Every IP or port in use is a claim: a key in the ``SERVICE_ALLOCATIONS`` bucket written with a KV
  create that expects absence, so several apiserver replicas never hand out the same value. A claim
  names its Service (namespace, name, uid).
- :func:`allocated` wraps the store write of a Service: it claims what the new object needs beyond
  what the old one holds (and fills ``spec.clusterIP(s)``, ``ipFamilies``, ``nodePort``), releases
  those claims if the write fails, and after a successful write releases what the old object held
  and the new one does not (all of it when the Service is removed).
- :func:`patch_allocated` makes an update that omits allocated values keep them, and drops the
  values a type change makes meaningless (Kubernetes' patchAllocatedValues/dropTypeDependentFields).
- A claim whose Service never appeared or no longer holds the value (an apiserver died between
  claim and write) is taken over after ``STALE_AFTER`` seconds.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import random
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator

from bus import errors, subjects
from bus.errors import Cause
from bus.models.decode import fmt_value
from bus.resources import SERVICE_ALLOCATIONS, Resource, by_plural
from master.apiserver.settings import DEFAULT_NODE_PORT_RANGE, DEFAULT_SERVICE_CIDR, ApiServerSettings

log = logging.getLogger(__name__)

STALE_AFTER = 30.0
RANDOM_TRIES = 32
IP, PORT = subjects.ALLOC_CLUSTER_IP, subjects.ALLOC_NODE_PORT
_IP_FIELDS = ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy")


# ---- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranges:
    network: ipaddress.IPv4Network
    first_ip: int  # first and last allocatable address (as integers)
    last_ip: int
    first_port: int
    last_port: int

    def ip_in_range(self, ip: str) -> bool:
        try:
            n = int(ipaddress.IPv4Address(ip))
        except ValueError:
            return False
        return self.first_ip <= n <= self.last_ip

    def port_in_range(self, port: int) -> bool:
        return self.first_port <= port <= self.last_port

    @property
    def port_range(self) -> str:
        return f"{self.first_port}-{self.last_port}"


@functools.lru_cache(maxsize=8)
def _parse(cidr: str, ports: str) -> Ranges:
    net = ipaddress.ip_network(cidr.strip(), strict=False)
    if not isinstance(net, ipaddress.IPv4Network) or net.prefixlen > 30:
        raise ValueError(f"K8N_SERVICE_CIDR {cidr!r}: an IPv4 network of at least 4 addresses (/30) is required")
    lo, _, hi = ports.strip().partition("-")
    first, last = int(lo), int(hi or lo)
    if not 1 <= first <= last <= 65535:
        raise ValueError(f"K8N_NODE_PORT_RANGE {ports!r}: expected FIRST-LAST within 1-65535")
    return Ranges(net, int(net.network_address) + 1, int(net.broadcast_address) - 1, first, last)


def ranges() -> Ranges:
    """The service CIDR and NodePort range this apiserver allocates from (environment, cached)."""
    s = ApiServerSettings.load()
    return _parse(s.service_cidr or DEFAULT_SERVICE_CIDR, s.node_port_range or DEFAULT_NODE_PORT_RANGE)


def first_address() -> str:
    """The first address of the range: the ``kubernetes`` Service's."""
    return str(ipaddress.IPv4Address(ranges().first_ip))


# ---- what a Service holds (stored, validated dicts) --------------------------------------------


def _spec(svc: dict | None) -> dict:
    spec = (svc or {}).get("spec")
    return spec if isinstance(spec, dict) else {}


def _type(spec: dict) -> str:
    t = spec.get("type")
    return t if isinstance(t, str) and t else "ClusterIP"


def _ports(spec: dict) -> list[dict]:
    ports = spec.get("ports")
    return [p for p in ports if isinstance(p, dict)] if isinstance(ports, list) else []


def needs_cluster_ip(spec: dict) -> bool:
    return _type(spec) != "ExternalName" and spec.get("clusterIP") != "None"


def needs_node_ports(spec: dict) -> bool:
    t = _type(spec)
    return t == "NodePort" or (t == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is not False)


def held_ip(svc: dict | None) -> str | None:
    spec = _spec(svc)
    ip = spec.get("clusterIP")
    return ip if needs_cluster_ip(spec) and isinstance(ip, str) and ip else None


def held_ports(svc: dict | None) -> set[int]:
    spec = _spec(svc)
    if not needs_node_ports(spec):
        return set()
    return {p["nodePort"] for p in _ports(spec) if isinstance(p.get("nodePort"), int) and p["nodePort"] > 0}


def held(svc: dict | None) -> set[tuple[str, str]]:
    """Every claim the Service holds, as ``(kind, value)``."""
    out = {(PORT, str(p)) for p in held_ports(svc)}
    ip = held_ip(svc)
    if ip:
        out.add((IP, ip))
    return out


# ---- updates that omit allocated values -------------------------------------------------------


def patch_allocated(res: Resource, old: dict, new: Any) -> None:
    """On an update of a Service (raw request body, in place): keep the old ClusterIP and NodePorts
    the new object leaves out; drop those a type change leaves meaningless when the request left
    them unchanged (ClusterIP of a Service turned ExternalName, NodePorts of one turned ClusterIP)."""
    if res.kind != "Service" or not isinstance(new, dict):
        return
    ospec, nspec = _spec(old), new.get("spec")
    if not isinstance(nspec, dict) or not isinstance(nspec.get("type", "ClusterIP"), str):
        return
    if _type(nspec) == "ExternalName" and _type(ospec) != "ExternalName":
        for f in _IP_FIELDS:
            if f in nspec and nspec[f] == ospec.get(f):
                del nspec[f]
    old_by_name = {_name(p): p.get("nodePort") for p in _ports(ospec)}
    if needs_node_ports(ospec) and not needs_node_ports(nspec):
        for p in _ports(nspec):
            if p.get("nodePort") and p.get("nodePort") == old_by_name.get(_name(p)):
                del p["nodePort"]
    if needs_cluster_ip(ospec) and needs_cluster_ip(nspec):
        if not nspec.get("clusterIP") and not nspec.get("clusterIPs") and ospec.get("clusterIP"):
            nspec["clusterIP"] = ospec["clusterIP"]
            nspec["clusterIPs"] = list(ospec.get("clusterIPs") or [ospec["clusterIP"]])
    if needs_node_ports(ospec) and needs_node_ports(nspec):
        used = held_ports(old) & {p.get("nodePort") for p in _ports(nspec) if isinstance(p.get("nodePort"), int)}
        for p in _ports(nspec):
            if not p.get("nodePort"):
                was = old_by_name.get(_name(p))
                if was and was not in used:
                    p["nodePort"] = was


def _name(port: dict) -> str:
    name = port.get("name")
    return name if isinstance(name, str) else ""


# ---- claims ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, svc: dict) -> "Owner":
        m = svc.get("metadata") or {}
        return cls(str(m.get("namespace") or ""), str(m.get("name") or ""), str(m.get("uid") or ""))

    def owns(self, claim: dict) -> bool:
        return claim.get("namespace") == self.namespace and claim.get("name") == self.name


class Allocator:
    def __init__(self, store: Any, rng: Ranges | None = None) -> None:
        self.store = store
        self.ranges = rng or ranges()

    async def _get(self, kind: str, value: str) -> dict | None:
        ns, name = subjects.service_alloc_key(kind, value)
        try:
            return await self.store.get(SERVICE_ALLOCATIONS, ns, name)
        except errors.NotFound:
            return None

    async def _stale(self, kind: str, value: str, claim: dict) -> bool:
        if time.time() - float(claim.get("time") or 0) < STALE_AFTER:
            return False
        try:
            svc = await self.store.get(by_plural("services"), claim.get("namespace"), str(claim.get("name") or ""))
        except errors.NotFound:
            return True
        return (svc.get("metadata") or {}).get("uid") != claim.get("uid") or (kind, value) not in held(svc)

    async def claim(self, kind: str, value: str, owner: Owner, dry_run: bool = False, adopt: bool = False) -> bool:
        """Claim one IP or port for ``owner``; False when someone else holds it. ``adopt`` takes
        over a claim that already names the owner's namespace/name (bootstrap only)."""
        ns, name = subjects.service_alloc_key(kind, value)
        body = {"kind": kind, "value": value, "namespace": owner.namespace, "name": owner.name, "uid": owner.uid,
                "time": time.time()}
        if not dry_run:
            try:
                await self.store.create(SERVICE_ALLOCATIONS, ns, name, body)
                return True
            except errors.AlreadyExists:
                pass
        cur = await self._get(kind, value)
        if cur is None:
            return dry_run or await self.claim(kind, value, owner)
        if not (adopt and owner.owns(cur)) and not await self._stale(kind, value, cur):
            return False
        if dry_run:
            return True
        log.warning("service allocation %s %s: taking over a stale claim of %s/%s", kind, value,
                    cur.get("namespace"), cur.get("name"))
        try:
            await self.store.update(SERVICE_ALLOCATIONS, ns, name, body, int(cur["metadata"]["resourceVersion"]))
            return True
        except (errors.Conflict, errors.NotFound):
            return False

    async def release(self, kind: str, value: str, owner: Owner) -> None:
        """Give back one claim if ``owner`` holds it (never fails: a leak is repaired as stale)."""
        ns, name = subjects.service_alloc_key(kind, value)
        try:
            cur = await self._get(kind, value)
            if cur is not None and owner.owns(cur):
                await self.store.delete(SERVICE_ALLOCATIONS, ns, name, cur, int(cur["metadata"]["resourceVersion"]))
        except (errors.NotFound, errors.Conflict):
            pass
        except Exception as e:  # noqa: BLE001 - the Service write already happened; a claim left over goes stale
            log.warning("service allocation %s %s: release failed: %s", kind, value, e)

    async def release_all(self, claims: Any, owner: Owner) -> None:
        for kind, value in claims:
            await self.release(kind, value, owner)

    async def _taken(self, kind: str) -> set[str]:
        items, _ = await self.store.list(SERVICE_ALLOCATIONS, kind)
        return {str(o.get("value")) for o in items}

    async def pick(self, kind: str, owner: Owner, dry_run: bool, avoid: set[str] = frozenset()) -> str:
        """Claim a random free value: random tries in the upper band, then anywhere, then from the
        list of claims. Raises 500 when the range is full."""
        r = self.ranges
        lo, hi = (r.first_ip, r.last_ip) if kind == IP else (r.first_port, r.last_port)
        size = hi - lo + 1
        static = min(max(16, size // 16), 256) if kind == IP else min(max(16, size // 32), 128)
        fmt = (lambda n: str(ipaddress.IPv4Address(n))) if kind == IP else str
        if size > 4 * static:
            for i in range(RANDOM_TRIES):
                n = random.randint(lo + static if i < RANDOM_TRIES // 2 else lo, hi)
                v = fmt(n)
                if v not in avoid and await self.claim(kind, v, owner, dry_run):
                    return v
        taken = await self._taken(kind) | set(avoid)
        numbers = range(lo, hi + 1) if size <= 1 << 16 else {random.randint(lo, hi) for _ in range(4096)}
        free = [n for n in numbers if fmt(n) not in taken]  # a huge range is sampled, not enumerated
        random.shuffle(free)
        free.sort(key=lambda n: n < lo + static)  # the upper band first
        for n in free:
            if await self.claim(kind, fmt(n), owner, dry_run):
                return fmt(n)
        for v in sorted(taken - set(avoid)):  # last resort: claims left behind by a dead apiserver
            if await self.claim(kind, v, owner, dry_run):
                return v
        what = "serviceIP" if kind == IP else "nodePort"
        raise errors.internal(f"failed to allocate a {what}: range is full")

    # -- one Service

    async def fill(self, old: dict | None, new: dict, dry_run: bool = False,
                   adopt: bool = False) -> list[tuple[str, str]]:
        """Claim (and write into ``new``) what ``new`` needs beyond what ``old`` holds; on error
        release what was claimed and raise (422 with field paths, or 500 when a range is full)."""
        owner, spec = Owner.of(new), new.setdefault("spec", {})
        have = held(old)
        claimed: list[tuple[str, str]] = []
        causes: list[Cause] = []

        async def take(kind: str, value: str) -> bool:
            if (kind, value) in have or (kind, value) in claimed:
                return True
            if await self.claim(kind, value, owner, dry_run, adopt):
                claimed.append((kind, value))
                return True
            return False

        try:
            await self._fill_ip(spec, take, causes, owner, dry_run, have, claimed)
            await self._fill_ports(spec, take, causes, owner, dry_run, have, claimed)
        except BaseException:
            if not dry_run:
                await self.release_all(claimed, owner)
            raise
        if causes:
            if not dry_run:
                await self.release_all(claimed, owner)
            raise errors.invalid("Service", owner.name, causes)
        return claimed

    async def _fill_ip(self, spec, take, causes, owner, dry_run, have, claimed) -> None:
        if _type(spec) == "ExternalName":
            for f in _IP_FIELDS:
                spec.pop(f, None)
            return
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        if spec.get("clusterIP") == "None":
            spec["clusterIPs"] = ["None"]
            return
        want = spec.get("clusterIP") or (spec.get("clusterIPs") or [None])[0]
        if want:
            if not self.ranges.ip_in_range(want):
                causes.append(Cause("spec.clusterIPs", f"Invalid value: {fmt_value([want])}: failed to allocate IP "
                                    f"{want}: the provided IP ({want}) is not in the valid range. The range of valid "
                                    f"IPs is {self.ranges.network}"))
                return
            if not await take(IP, want):
                causes.append(Cause("spec.clusterIPs", f"Invalid value: {fmt_value([want])}: failed to allocate IP "
                                    f"{want}: provided IP is already allocated"))
                return
        else:
            want = await self.pick(IP, owner, dry_run)
            if not dry_run:
                claimed.append((IP, want))
        spec["clusterIP"], spec["clusterIPs"] = want, [want]

    async def _fill_ports(self, spec, take, causes, owner, dry_run, have, claimed) -> None:
        if not needs_node_ports(spec):
            return
        ports = _ports(spec)
        for i, p in enumerate(ports):
            np = p.get("nodePort")
            if not np:
                continue
            if not self.ranges.port_in_range(np):
                causes.append(Cause(f"spec.ports[{i}].nodePort", f"Invalid value: {np}: provided port is not in the "
                                    f"valid range. The range of valid ports is {self.ranges.port_range}"))
            elif not await take(PORT, str(np)):
                causes.append(Cause(f"spec.ports[{i}].nodePort", f"Invalid value: {np}: provided port is already "
                                    "allocated"))
        if causes:
            return
        in_use = {str(p["nodePort"]) for p in ports if p.get("nodePort")}
        for p in ports:
            if p.get("nodePort"):
                continue
            twin = next((q for q in ports if q is not p and q.get("nodePort") and q.get("port") == p.get("port")
                         and q.get("protocol", "TCP") != p.get("protocol", "TCP")), None)
            if twin is not None:  # TCP and UDP on one port number share their NodePort, as in Kubernetes
                p["nodePort"] = twin["nodePort"]
                continue
            v = await self.pick(PORT, owner, dry_run, avoid=in_use | {v for k, v in have if k == PORT})
            if not dry_run:
                claimed.append((PORT, v))
            in_use.add(v)
            p["nodePort"] = int(v)


@asynccontextmanager
async def allocated(store: Any, res: Resource, old: dict | None, new: dict | None,
                    dry_run: bool = False) -> AsyncIterator[None]:
    """Wrap the store write that turns ``old`` into ``new`` (None: a create / a removal). Does
    nothing for other kinds."""
    if res.kind != "Service":
        yield
        return
    alloc = Allocator(store)
    owner = Owner.of(new if new is not None else old or {})
    claimed = await alloc.fill(old, new, dry_run) if new is not None else []
    try:
        yield
    except BaseException:
        if not dry_run:
            await alloc.release_all(claimed, owner)
        raise
    if not dry_run and old is not None:
        await alloc.release_all(sorted(held(old) - held(new)), Owner.of(old))
