"""Host-local IP address management for one node's podCIDR.

The gateway takes the first address of the range; pods get the rest (``.2`` … ``.254`` of a /24).
Allocation is idempotent per owner (the pod uid) and round-robin after the last address handed out, so
a just-freed address is not reused at once. Every change is written to the state file atomically
(temporary file + rename) under an exclusive ``flock``, and every operation re-reads the file, so a
restarted agent -- or a second instance on the same file -- never hands out an address twice.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class IpamError(RuntimeError):
    """The state file does not fit this range, or the range is misconfigured."""


class RangeExhausted(IpamError):
    """Every pod address of the range is allocated."""


class Ipam:
    def __init__(self, cidr: str, state_file: Path) -> None:
        self.network = ipaddress.ip_network(cidr, strict=True)
        if self.network.version != 4 or self.network.num_addresses < 4:
            raise IpamError(f"pod CIDR {cidr} must be an IPv4 range of at least 4 addresses (/30)")
        self.cidr = str(self.network)
        self.gateway = str(self.network.network_address + 1)
        self.state_file = Path(state_file)
        self._lock_file = self.state_file.with_name(self.state_file.name + ".lock")
        self._mutex = threading.Lock()
        self._first = int(self.network.network_address) + 2
        self._last = int(self.network.broadcast_address) - 1
        with self._state():  # validate an existing file now, not at the first allocation
            pass

    @property
    def prefixlen(self) -> int:
        return self.network.prefixlen

    @property
    def size(self) -> int:
        """How many pod addresses the range holds."""
        return self._last - self._first + 1

    def allocate(self, owner: str) -> str:
        """The address of ``owner``, allocating the next free one if it has none."""
        with self._state() as state:
            owners: dict[str, str] = state["owners"]
            if owner in owners:
                return owners[owner]
            taken = {int(ipaddress.ip_address(ip)) for ip in owners.values()}
            start = int(ipaddress.ip_address(state["last"])) if state["last"] else self._last
            for step in range(1, self.size + 1):
                candidate = self._first + (start - self._first + step) % self.size
                if candidate not in taken:
                    ip = str(ipaddress.ip_address(candidate))
                    owners[owner] = ip
                    state["last"] = ip
                    return ip
            raise RangeExhausted(f"pod CIDR {self.cidr} is exhausted: all {self.size} addresses are allocated")

    def release(self, owner: str) -> str | None:
        """Free the address of ``owner``; returns it, or None if it had none."""
        with self._state() as state:
            return state["owners"].pop(owner, None)

    def allocated(self) -> dict[str, str]:
        with self._state(write=False) as state:
            return dict(state["owners"])

    def clear(self) -> None:
        """Forget every allocation and remove the state file."""
        if not self.state_file.parent.exists():
            return
        with self._mutex, self._flock():
            self.state_file.unlink(missing_ok=True)
        self._lock_file.unlink(missing_ok=True)

    # ---- persistence ----------------------------------------------------------------------------

    @contextmanager
    def _flock(self) -> Iterator[None]:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)  # also after a teardown
        fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextmanager
    def _state(self, write: bool = True) -> Iterator[dict]:
        with self._mutex, self._flock():
            state = self._load()
            before = json.dumps(state, sort_keys=True)
            yield state
            if write and json.dumps(state, sort_keys=True) != before:
                self._save(state)

    def _load(self) -> dict:
        try:
            state = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {"cidr": self.cidr, "last": None, "owners": {}}
        except ValueError as e:
            raise IpamError(f"{self.state_file}: unreadable IPAM state: {e}") from e
        if state.get("cidr") != self.cidr:
            raise IpamError(f"{self.state_file} holds allocations for {state.get('cidr')}, not {self.cidr}")
        return state

    def _save(self, state: dict) -> None:
        tmp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_file)
