"""JetStream's health as a nats-server reports it on its HTTP monitoring port, and what ``k8n up`` does when the
data disk fills up.

Observed with nats-server 2.15.1 (one server, ``sync_interval: always``, store on a 40 MiB tmpfs): a write that finds
no space left makes the stream log "Critical write error … no space left on device"; from then on the stream
answers no write (not after the space is freed, not after ``nats-server --signal reload``) while it still serves
reads, and the server's full ``/healthz`` answers 503 naming the write error (``/healthz?js-enabled-only=true`` still
says ok). In a cluster the Raft layer disables JetStream instead ("JetStream out of resources, will be DISABLED";
``/jsz`` says ``disabled``). Only a restart brings it back. A server restarted on the full disk gives JetStream the
little room there is (``max_storage`` is 75% of the space free when it starts), serves reads and refuses writes at
once ("insufficient resources", which the API server answers with a 503); one restarted after space was freed stores
again, with every acknowledged write there (its blocks were fsynced before the acknowledgement).

So :class:`DiskFullRecovery` restarts the server once when it sees the disk full (writes then fail at once instead of
after the store's timeout) and again once there is room (:func:`room_needed`). The pure part takes what
:func:`probe` and :func:`free_bytes` measured, so it is tested without a server.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable

#: what nats-server says when a store has no room (its logs, /healthz, JetStream API errors)
OUT_OF_SPACE_WORDS = ("no space left on device", "insufficient storage", "insufficient resources",
                      "resource limits exceeded", "out of resources", "disk quota exceeded")
HEADROOM = 4 * 1024 * 1024  # bytes JetStream must be able to store beyond what it holds before it counts as healthy
MAX_STORAGE_SHARE = 0.75  # nats-server gives JetStream this share of the free space when it starts (no max_storage)
RESTART_GAP = 5.0  # seconds at least between two restarts for space


@dataclass(frozen=True, slots=True)
class JetStreamState:
    """What one server's monitoring says: ``ok``, else ``why``; ``out_of_space`` when the cause is a full store."""

    ok: bool
    why: str = ""
    out_of_space: bool = False
    storage: int = 0  # bytes JetStream holds on disk


def says_out_of_space(text: str) -> bool:
    low = text.lower()
    return any(w in low for w in OUT_OF_SPACE_WORDS)


def assess(healthz: dict, jsz: dict | None) -> JetStreamState:
    """The state from ``/healthz``'s body (``{"status": "ok"}`` or ``{"status": "unavailable", "error": …}``) and
    ``/jsz`` (None when it did not answer)."""
    storage = int((jsz or {}).get("storage") or 0)
    if (jsz or {}).get("disabled"):
        return JetStreamState(False, "JetStream is disabled", True, storage)
    if healthz.get("status") != "ok":
        why = str(healthz.get("error") or healthz.get("status") or "unhealthy")
        return JetStreamState(False, why, says_out_of_space(why), storage)
    limit = int(((jsz or {}).get("config") or {}).get("max_storage") or 0)
    if limit > 0 and storage + HEADROOM > limit:
        return JetStreamState(False, f"JetStream holds {storage} bytes and may store {limit} (what was free on the "
                                     "disk when the server started)", True, storage)
    return JetStreamState(True, storage=storage)


def room_needed(storage: int) -> int:
    """Free bytes on the data disk that let a restarted server store again: it takes 75% of what is free for
    everything JetStream holds plus :data:`HEADROOM`."""
    return int((storage + 2 * HEADROOM) / MAX_STORAGE_SHARE)


def _get_json(url: str, timeout: float) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:  # /healthz answers 503 with the reason in its body
        try:
            return e.code, json.loads(e.read() or b"{}")
        except ValueError:
            return e.code, {"status": "unavailable", "error": f"HTTP {e.code}"}


def probe(monitor: str, timeout: float = 1.0) -> JetStreamState | None:
    """Ask the server at ``monitor`` (``http://host:port``); None when it does not answer (down or starting)."""
    try:
        _, healthz = _get_json(f"{monitor}/healthz", timeout)
        _, jsz = _get_json(f"{monitor}/jsz", timeout)
    except (OSError, ValueError):
        return None
    return assess(healthz, jsz)


def free_bytes(path: os.PathLike | str) -> int:
    """Bytes an unprivileged writer may still use on the filesystem of ``path`` (0 when it cannot be told)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


@dataclass(frozen=True, slots=True)
class Action:
    restart: bool
    message: str


class DiskFullRecovery:
    """When to restart a server whose disk filled up, and what to tell the person running ``k8n up``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, restart_gap: float = RESTART_GAP) -> None:
        self.clock = clock
        self.restart_gap = restart_gap
        self.full = False
        self.last_restart = float("-inf")

    def next(self, state: JetStreamState | None, free: int) -> Action | None:
        """The action for one probe (None: nothing to do) given ``free`` bytes on the data disk."""
        if state is None:
            return None
        if not self.full:
            if state.ok or not state.out_of_space:
                return None
            self.full = True
            return self._restart(f"JetStream disabled itself: the data disk is full ({state.why}; {_mib(free)} "
                                 "free); restarting nats-server so writes are refused at once, and again when space "
                                 "is freed")
        if state.ok:
            self.full = False
            return Action(False, "JetStream stores again: the data disk has room")
        if not state.out_of_space or free < room_needed(state.storage):
            return None
        if self.clock() - self.last_restart < self.restart_gap:
            return None
        return self._restart(f"space was freed on the data disk ({_mib(free)} free); restarting nats-server so "
                             "JetStream stores again")

    def _restart(self, message: str) -> Action:
        self.last_restart = self.clock()
        return Action(True, message)


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
