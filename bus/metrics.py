"""The latest metrics the node agents publish on the bus, as a subscriber keeps them (the gateway's metrics.k8s.io,
``master/gateway/metricsapi.py``; the HPA controller).

- NodeMetrics on ``k8n.metrics.node.<node>``, PodMetrics on ``k8n.metrics.pod.<node>.<ns>.<pod>``
  (``bus.models.metrics``; ``bus.subjects``), every ``--metrics-seconds`` (the ``window``).
- A sample is believed only for what its subject names, and the node token of a subject is one NATS lets only that
  node's agent publish (``bus.roles``): a node's sample must name that node, a pod's that pod, and pod samples are
  kept per publishing node, so another node's claim can neither replace nor hide the samples of the node a pod is
  bound to (:meth:`MetricsCache.pod` takes that node).
- A sample is fresh for ``max(3 windows, min_freshness)`` after it arrived (the receiver's clock, not the agent's):
  30 s for ``kubectl top``; the HPA takes 0, so at a 1 s period a pod whose samples stopped is missing after 3 s
  instead of being averaged in with an old value.
- ``on_pod(node, namespace, pod)``, when set, is called for every pod sample kept, after it is kept (the HPA
  evaluates the autoscalers that select the pod as the sample arrives).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from bus import codec, subjects
from bus.meta import parse_duration
from bus.models.metrics import NodeMetrics, PodMetrics

log = logging.getLogger(__name__)

FRESH_WINDOWS = 3  # a sample is fresh for this many of its windows …
MIN_FRESHNESS = 30.0  # … and at least this many seconds


@dataclass(frozen=True)
class Sample:
    doc: dict  # the NodeMetrics or PodMetrics as published (validated)
    node: str  # the node whose agent published it (its subject's token)
    received: float  # monotonic seconds
    window: float  # seconds

    def fresh(self, now: float, minimum: float = MIN_FRESHNESS) -> bool:
        return now - self.received <= max(FRESH_WINDOWS * self.window, minimum)


def _window(doc: dict) -> float:
    """The sample's window in seconds; ValueError unless it is a positive Go duration."""
    w = doc.get("window")
    seconds = parse_duration(w) if isinstance(w, str) else 0.0
    if seconds <= 0:
        raise ValueError(f"bad window {w!r}")
    return seconds


def _usage_ok(usage: Any) -> bool:
    return isinstance(usage, dict) and "cpu" in usage and "memory" in usage


class MetricsCache:
    """The latest NodeMetrics per node and PodMetrics per pod off the bus."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, min_freshness: float = MIN_FRESHNESS,
                 on_pod: Callable[[str, str, str], Any] | None = None) -> None:
        self.clock = clock
        self.min_freshness = min_freshness
        self.on_pod = on_pod
        self.nodes: dict[str, Sample] = {}
        self.pods: dict[tuple[str, str, str], Sample] = {}  # (node, namespace, name): a node fills only its own
        self._subs: list[Any] = []

    async def start(self, nc: Any, nodes: bool = True) -> None:
        """Subscribe (``nodes``: to the nodes' metrics as well as the pods')."""
        wanted = (subjects.node_metrics_wildcard(),) if nodes else ()
        for subject in (*wanted, subjects.pod_metrics_wildcard()):
            self._subs.append(await nc.subscribe(subject, cb=self.on_message))
        await nc.flush()  # subscribed at the server when this returns

    async def stop(self) -> None:
        for s in self._subs:
            try:
                await s.unsubscribe()
            except Exception:  # the connection may be gone already
                pass
        self._subs.clear()

    async def on_message(self, msg: Any) -> None:
        self.receive(msg.subject, msg.data)

    def receive(self, subject: str, data: bytes) -> bool:
        """Keep one published sample; False (and nothing kept) for anything malformed or naming another object
        than its subject."""
        try:
            node, namespace, pod = subjects.parse_metrics_subject(subject)
            doc = codec.unpack(data)
            if not isinstance(doc, dict):
                raise ValueError("not a map")
            meta = doc.get("metadata") or {}
            if namespace:
                PodMetrics.model_validate(doc)
                containers = doc.get("containers")
                if (meta.get("namespace"), meta.get("name")) != (namespace, pod) or not containers \
                        or not all(c.get("name") and _usage_ok(c.get("usage")) for c in containers):
                    raise ValueError("not this pod's metrics")
            else:
                NodeMetrics.model_validate(doc)
                if meta.get("name") != node or not _usage_ok(doc.get("usage")):
                    raise ValueError("not this node's metrics")
            window = _window(doc)
        except Exception as e:  # anything a publisher could send
            log.debug("ignored metrics on %s: %s", subject, e)
            return False
        sample = Sample(doc, node, self.clock(), window)
        if namespace:
            self.pods[(node, namespace, pod)] = sample
            if self.on_pod is not None:
                try:
                    self.on_pod(node, namespace, pod)
                except Exception:  # a subscriber's bug must not stop the samples
                    log.exception("pod metrics handler failed")
        else:
            self.nodes[node] = sample
        return True

    def node(self, name: str) -> Sample | None:
        s = self.nodes.get(name)
        if s is not None and not s.fresh(self.clock(), self.min_freshness):
            del self.nodes[name]
            return None
        return s

    def pod(self, namespace: str, name: str, node: str | None) -> Sample | None:
        """The pod's fresh sample from the node it is bound to."""
        key = (node or "", namespace, name)
        s = self.pods.get(key)
        if s is not None and not s.fresh(self.clock(), self.min_freshness):
            del self.pods[key]
            return None
        return s

    def prune(self) -> None:
        now = self.clock()
        for table in (self.nodes, self.pods):
            for key in [k for k, s in table.items() if not s.fresh(now, self.min_freshness)]:
                del table[key]
