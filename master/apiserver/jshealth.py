"""JetStream's health as an API server sees it, so that writes fail fast while the store cannot take them.

A NATS cluster that has lost its quorum (two of three servers down) does not refuse a write: the write waits for a
stream leader that does not come and fails only when the store's timeout (``NatsStore.timeout``, 5 s) runs out. So
the API server probes JetStream's account info (``$JS.API.INFO``) once a second. Once the cluster knows it has no
meta leader, every server answers that probe at once with "JetStream system temporarily unavailable" (10008); a probe
that gets no answer at all (the servers this API server can reach are hung) counts after two in a row. While the probe
fails, writes are answered at once with a 503 that says why (:meth:`JetStreamHealth.refusal`) and reads get a short
deadline (:data:`READ_DEADLINE`): a replica that is still up may serve them. The first probe that succeeds lets
everything through again; nothing has to be restarted.

The pure part (:func:`interpret`, :class:`JetStreamHealth`) is separate from the task that probes
(:class:`JetStreamWatch`)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable

import nats.errors
import orjson

from bus import errors, subjects

log = logging.getLogger(__name__)

PROBE_INTERVAL = 1.0  # seconds between probes while JetStream answers
PROBE_INTERVAL_DOWN = 0.5  # and while it does not: writes resume within this of its return
PROBE_TIMEOUT = 1.0
TIMEOUTS_TO_DOWN = 2  # unanswered probes in a row before writes are refused (one may be a busy server)
READ_DEADLINE = 1.0  # seconds a read may take while JetStream is down (a surviving replica answers at once)

CLUSTER_NOT_AVAILABLE = 10008  # JetStream's "JetStream system temporarily unavailable": no meta leader
NOT_ENABLED = (10039, 10076)  # "JetStream not enabled for account" / "JetStream not enabled"


@dataclass(frozen=True, slots=True)
class Probe:
    """One probe's outcome: ``ok``, else ``why`` (for people) and whether it was merely unanswered."""

    ok: bool
    why: str = ""
    unanswered: bool = False


OK = Probe(True)


def interpret(reply: bytes) -> Probe:
    """A probe from JetStream's answer to an account-info request."""
    try:
        body = orjson.loads(reply)
    except orjson.JSONDecodeError:
        return Probe(False, "JetStream's answer to a health probe could not be decoded")
    err = body.get("error") if isinstance(body, dict) else None
    if not err:
        return OK
    code, text = err.get("err_code"), err.get("description") or "no description"
    if code == CLUSTER_NOT_AVAILABLE:
        return Probe(False, f"the NATS cluster has lost its quorum: it has no JetStream meta leader ({text}); "
                            "writes resume by themselves once a majority of the nats-servers is back")
    if code in NOT_ENABLED:
        return Probe(False, f"JetStream is disabled on the NATS server ({text}): it disables itself when its data "
                            "disk is full")
    return Probe(False, f"JetStream reports {text} (error {code})")


def unanswered(seconds: float) -> Probe:
    return Probe(False, f"JetStream did not answer a health probe within {seconds:g}s: the NATS cluster may have "
                        "lost its quorum, or this API server's nats-server is down", unanswered=True)


class JetStreamHealth:
    """What the probes said so far; :meth:`refusal` is what a write gets while JetStream is down."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, timeouts_to_down: int = TIMEOUTS_TO_DOWN) -> None:
        self.clock = clock
        self.timeouts_to_down = timeouts_to_down
        self.down_since: float | None = None
        self.why = ""
        self._unanswered = 0

    @property
    def up(self) -> bool:
        return self.down_since is None

    def record(self, probe: Probe) -> bool:
        """Take one probe's outcome; True when it changed whether JetStream is up."""
        was_up = self.up
        if probe.ok:
            self._unanswered = 0
            self.down_since = None
        else:
            self._unanswered = self._unanswered + 1 if probe.unanswered else 0
            if not probe.unanswered or self._unanswered >= self.timeouts_to_down:
                self.why = probe.why
                if self.down_since is None:
                    self.down_since = self.clock()
        return was_up != self.up

    def refusal(self) -> errors.ApiError | None:
        """The 503 for a request that needs JetStream while it is down (None while it is up)."""
        if self.down_since is None:
            return None
        return errors.unavailable(f"the object store (JetStream) is unavailable: {self.why} "
                                  f"(for {self.clock() - self.down_since:.0f}s); retry later")


class JetStreamWatch:
    """Probes JetStream on ``nc`` every second into :attr:`health` until :meth:`stop`."""

    def __init__(self, nc: nats.NATS, health: JetStreamHealth | None = None) -> None:
        self.nc = nc
        self.health = health or JetStreamHealth()
        self._task: asyncio.Task | None = None

    async def probe(self) -> Probe:
        try:
            msg = await self.nc.request(subjects.JS_API_INFO, b"", timeout=PROBE_TIMEOUT)
        except nats.errors.TimeoutError:
            return unanswered(PROBE_TIMEOUT)
        except nats.errors.NoRespondersError:
            return Probe(False, "no nats-server answers JetStream requests (JetStream is disabled or the NATS "
                                "cluster lost its quorum)")
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError,
                nats.errors.ConnectionDrainingError) as e:
            return Probe(False, f"the connection to NATS is down ({type(e).__name__})", unanswered=True)
        return interpret(msg.data)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="jetstream-health")

    async def _run(self) -> None:
        while True:
            try:
                probe = await self.probe()
            except Exception as e:  # never let the watch die: a broken probe must not refuse writes forever
                log.warning("JetStream health probe failed: %s", e)
                probe = OK
            if self.health.record(probe):
                if self.health.up:
                    log.warning("JetStream answers again: writes are accepted")
                else:
                    log.warning("refusing writes: %s", self.health.why)
            await asyncio.sleep(PROBE_INTERVAL if self.health.up else PROBE_INTERVAL_DOWN)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
