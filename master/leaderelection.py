"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's ``leaderelection`` does it.

Each replica of a component (the controller manager: Lease ``kube-system/kube-controller-manager``;
the scheduler: ``kube-system/kube-scheduler``) runs :func:`run_leader_elected`:

- the candidate reads the Lease every ``retry_period``; it takes it when it is absent, released
  (empty holder) or expired. Expiry is judged on the candidate's own clock: a record counts as
  renewed when the candidate sees it change, so clock skew between hosts does not matter.
- every write is compare-and-set on the Lease's resourceVersion (create, or update with the
  revision read), so two candidates can never both win; a takeover increments ``leaseTransitions``.
- the leader renews every ``retry_period``; if it cannot renew for ``renew_deadline`` (or sees
  another holder) it has lost the lease and must stop acting at once: the default ``on_lost``
  exits the process (the runner restarts it), like kube-controller-manager.
- on a clean shutdown the leader releases the Lease (holder cleared, duration 1 s) so a standby
  takes over at its next retry instead of waiting for expiry.

Settings: :class:`ElectionConfig`, one documented field each (``K8N_LEADER_ELECT``, ...); the
README's controller-manager table is generated from them (``master.controllers.settings``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

from bus import errors
from bus.meta import format_time
from bus.settings import given, setting
from bus.workqueue import Clock

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"


def identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass
class ElectionConfig:
    """Leader election of the controller manager and of each scheduler (``bus.settings`` fields)."""

    enabled: bool = setting(True, "elect a leader among replicas (`false`: every replica acts at once)",
                            name="leader-elect")
    lease_duration: float = setting(15.0, "seconds a standby waits after the leader's last renewal before taking over",
                                    name="leader-elect-lease-duration")
    renew_deadline: float = setting(10.0, "seconds the leader keeps acting without a successful renewal "
                                    "(default at most 2/3 of the lease duration)", name="leader-elect-renew-deadline")
    retry_period: float = setting(2.0, "seconds between attempts to acquire or renew the Lease "
                                  "(default at most 1/5 of the lease duration)", name="leader-elect-retry-period")

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None = None,
                     environ: Mapping[str, str] | None = None) -> "ElectionConfig":
        """From ``options`` (by option name), else the environment (``K8N_LEADER_ELECT_*``), else the
        defaults — the renew deadline and retry period scaled down for a short lease, and each kept
        within the one before. A value that does not parse raises ``bus.settings.SettingsError``."""
        got = given(cls, options, environ)
        duration = got.get("lease_duration", 15.0)
        renew = got.get("renew_deadline", min(10.0, duration * 2 / 3))
        retry = got.get("retry_period", min(2.0, duration / 5))
        return cls(got.get("enabled", True), duration, min(renew, duration), min(retry, renew))


class LeaderElector:
    """The lease state machine. ``clock`` measures expiry and waits (monotonic; tests pass a
    ``FakeClock``), ``wall`` stamps renewTime/acquireTime."""

    def __init__(self, client: Any, name: str, namespace: str = NAMESPACE, ident: str | None = None,
                 config: ElectionConfig | None = None, clock: Clock | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = ident or identity()
        self.config = config or ElectionConfig()
        self.clock = clock or Clock()
        self.wall = wall
        self.observed: dict | None = None  # last Lease spec seen
        self.observed_time = 0.0  # clock time it was first seen
        self.leading = False

    # ---- one attempt ---------------------------------------------------------------------------

    def _observe(self, spec: dict) -> None:
        if spec != self.observed:
            self.observed, self.observed_time = dict(spec), self.clock.now()

    def _spec(self, acquire: str | None, transitions: int) -> dict:
        now = format_time(self.wall(), micro=True)
        return {"holderIdentity": self.identity, "leaseDurationSeconds": max(1, round(self.config.lease_duration)),
                "acquireTime": acquire or now, "renewTime": now, "leaseTransitions": transitions}

    async def try_acquire_or_renew(self) -> bool:
        """One read and at most one CAS write; True when this candidate holds the Lease after it."""
        try:
            lease = await self.client.get("leases", self.name, self.namespace)
        except errors.NotFound:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": self._spec(None, 0)}
            try:
                lease = await self.client.create(body)
            except errors.ApiError as e:
                log.debug("lease %s: create failed: %s", self.name, e)
                return False
            return self._won(lease)
        spec = lease.get("spec") or {}
        self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or self.config.lease_duration)
        if holder and holder != self.identity and self.observed_time + duration > self.clock.now():
            self.leading = False
            return False  # held by another candidate, not expired
        mine = holder == self.identity
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if mine else 1)
        lease = {**lease, "spec": {**spec, **self._spec(spec.get("acquireTime") if mine else None, transitions)}}
        try:
            lease = await self.client.update(lease)  # CAS on metadata.resourceVersion
        except errors.ApiError as e:
            log.debug("lease %s: update failed: %s", self.name, e)
            return False
        return self._won(lease)

    def _won(self, lease: dict) -> bool:
        self._observe(lease.get("spec") or {})
        if not self.leading:
            log.info("lease %s/%s acquired by %s", self.namespace, self.name, self.identity)
        self.leading = True
        return True

    # ---- loops ---------------------------------------------------------------------------------

    async def _sleep(self, seconds: float, stop: asyncio.Event) -> None:
        waiter = asyncio.ensure_future(stop.wait())
        try:
            await self.clock.wait(waiter, seconds)
        finally:
            waiter.cancel()

    async def _attempt(self, timeout: float) -> bool:
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), max(0.1, timeout))
        except (asyncio.TimeoutError, errors.ApiError, OSError) as e:
            log.debug("lease %s: attempt failed: %s", self.name, e)
            return False
        except Exception as e:  # e.g. the connection is closed while reconnecting
            log.warning("lease %s: attempt failed: %s", self.name, e)
            return False

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Retry until this candidate leads (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            if await self._attempt(self.config.renew_deadline):
                return True
            await self._sleep(self.config.retry_period * (1 + 0.2 * random.random()), stop)
        return False

    async def renew(self, stop: asyncio.Event) -> bool:
        """Renew every retry period until ``stop`` (True) or the lease is lost (False): no
        successful renewal within renew_deadline, or another holder seen."""
        while not stop.is_set():
            deadline = self.clock.now() + self.config.renew_deadline
            while True:
                if await self._attempt(deadline - self.clock.now()):
                    break
                if not self.leading or self.clock.now() >= deadline:
                    self.leading = False
                    log.error("lease %s/%s lost by %s", self.namespace, self.name, self.identity)
                    return False
                await self._sleep(self.config.retry_period, stop)
                if stop.is_set():
                    return True
            await self._sleep(self.config.retry_period, stop)
        return True

    async def release(self) -> None:
        """Give the Lease up (holder cleared, 1 s duration) if this candidate still holds it."""
        if not self.leading:
            return
        self.leading = False
        try:
            lease = await asyncio.wait_for(self.client.get("leases", self.name, self.namespace), 5)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            now = format_time(self.wall(), micro=True)
            lease = {**lease, "spec": {**spec, "holderIdentity": "", "leaseDurationSeconds": 1,
                                       "renewTime": now, "acquireTime": now}}
            await asyncio.wait_for(self.client.update(lease), 5)
            log.info("lease %s/%s released by %s", self.namespace, self.name, self.identity)
        except Exception as e:
            log.warning("lease %s: release failed: %s", self.name, e)


def exit_process() -> None:
    """Stop acting at once: the process exits and its runner starts a new candidate."""
    logging.shutdown()
    os._exit(1)


async def run_leader_elected(client: Any, name: str, stop: asyncio.Event,
                             lead: Callable[[asyncio.Event], Awaitable[None]], *,
                             config: ElectionConfig | None = None, on_lost: Callable[[], None] = exit_process,
                             elector: LeaderElector | None = None) -> None:
    """Wait to hold Lease ``kube-system/<name>``, then run ``lead(lead_stop)`` while renewing it.
    ``lead`` must return soon after ``lead_stop`` is set. On ``stop``: stop leading and release the
    lease. On a lost lease: ``on_lost()`` (default: exit the process), then stop leading."""
    config = config or ElectionConfig.from_options()
    if not config.enabled:
        await lead(stop)
        return
    el = elector or LeaderElector(client, name, config=config)
    log.info("%s: waiting to lead (lease %s/%s, identity %s)", name, el.namespace, name, el.identity)
    if not await el.acquire(stop):
        return
    lead_stop = asyncio.Event()
    renewing = asyncio.create_task(el.renew(stop), name=f"lease-{name}")
    leading = asyncio.create_task(lead(lead_stop), name=f"lead-{name}")
    try:
        await asyncio.wait({renewing, leading}, return_when=asyncio.FIRST_COMPLETED)
        if renewing.done() and not renewing.result():
            on_lost()
    finally:
        lead_stop.set()
        renewing.cancel()
        try:
            await leading
        finally:
            await asyncio.gather(renewing, return_exceptions=True)
            await el.release()
