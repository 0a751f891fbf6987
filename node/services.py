"""Node-addressed calls over NATS (logs, exec, portforward, stats) and the metrics publisher.

Protocol (msgpack; subjects from ``bus.subjects``):

- A streaming call names a session (``session``: 16–64 of ``[A-Za-z0-9_-]``, random, picked by the caller): the
  agent sends on ``k8n.node.<node>.session.<session>.out`` and reads the caller's stdin and control messages on
  ``k8n.node.<node>.session.<session>.in`` — subjects under the node's own, so that the bus permissions of
  ``bus.roles`` let only this node's agent send output and only authorized callers read it.
- ``k8n.node.<node>.logs`` request ``{namespace, pod, container?, follow, tail?, previous, session}`` →
  reply ``{code: 200}`` or ``{code, body: Status}``; then messages on the session's ``out``: ``{data: bytes}``…
  and ``{eof: true}``. While following, the client sends ``{keepalive: true}`` (at least every
  10 s) or ``{cancel: true}`` to the session's ``in``.
- ``k8n.node.<node>.exec`` request ``{namespace, pod, container?, command: [...], stdin, tty, session}`` →
  reply ``{code: 200}``; output on the session's ``out`` as ``{stream: "stdout"|"stderr", data}``,
  finally ``{exit: <code>}``; stdin chunks go to the session's ``in`` as ``{data}`` then ``{eof: true}``.
- ``k8n.node.<node>.portforward`` request ``{namespace, pod, port, session}``: one forwarded connection
  (``node/portforward.py``) → reply ``{code: 200}`` once connected (or the kubelet's error, ``{code, body}``),
  then the bytes both ways on the session's subjects as ``bus.relay`` describes.
- ``k8n.node.<node>.stats`` request ``{}`` → ``{code: 200, body: {node: NodeMetrics, pods: [PodMetrics]}}``.
- Metrics are published every period on ``k8n.metrics.node.<node>`` (NodeMetrics) and
  ``k8n.metrics.pod.<node>.<namespace>.<pod>`` (PodMetrics), shaped like metrics.k8s.io/v1beta1.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol

from bus import codec, errors, nodecalls, subjects
from bus.meta import format_duration, format_time
from bus.relay import Relay
from node import portforward

if TYPE_CHECKING:
    from bus.client import ApiClient
    from node.podworker import PodWorker

log = logging.getLogger(__name__)
KEEPALIVE_TIMEOUT = 30.0


def _cpu_seconds() -> tuple[float, float]:
    """(busy, total) jiffies of the whole host from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return float(sum(fields) - idle), float(sum(fields))


def _memory_working_set() -> int:
    """MemTotal − MemAvailable of the host (the first lines of /proc/meminfo; the rest is not parsed)."""
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        k, _, v = line.partition(":")
        info[k] = int(v.split()[0]) * 1024
        if "MemTotal" in info and "MemAvailable" in info:
            break
    return info.get("MemTotal", 0) - info.get("MemAvailable", 0)


def _session_message(data: bytes) -> dict:
    """A message a caller sent on a session's ``in`` subject; anything but a msgpack map counts as empty."""
    try:
        message = codec.unpack(data)
    except Exception:
        return {}
    return message if isinstance(message, dict) else {}


class MetricsSettings(Protocol):
    @property
    def metrics_seconds(self) -> float: ...  # the metrics period (and window)


class ServicesHost(Protocol):
    """What the node services need from the node agent (``node.agent.Agent`` implements it)."""

    @property
    def name(self) -> str: ...  # the node's name: the subjects it serves and publishes on

    @property
    def client(self) -> ApiClient: ...  # its NATS connection (``client.nc``)

    @property
    def config(self) -> MetricsSettings: ...

    @property
    def runtime(self) -> Any: ...  # logs, exec and stats of containers (node.runtime.DockerRuntime)

    @property
    def workers(self) -> Mapping[str, PodWorker]: ...  # the pods this node runs, by uid


class NodeServices:
    def __init__(self, host: ServicesHost) -> None:
        self.host = host
        self.nc = self.host.client.nc
        self._subs: list = []
        self._tasks: set[asyncio.Task] = set()
        self._last_cpu = _cpu_seconds()
        self._container_cpu: dict[str, tuple[float, float]] = {}
        self.latest: dict[str, Any] = {"node": None, "pods": []}

    async def start(self) -> None:
        for call, cb in (("logs", self._on_logs), ("exec", self._on_exec), ("portforward", self._on_portforward),
                         ("stats", self._on_stats)):
            self._subs.append(await self.nc.subscribe(subjects.node_call(self.host.name, call), cb=self._spawn(cb)))

    def _spawn(self, cb):
        async def handler(msg):
            t = asyncio.create_task(cb(msg))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
        return handler

    async def stop(self) -> None:
        for s in self._subs:
            try:
                await s.unsubscribe()
            except Exception:
                pass
        for t in list(self._tasks):
            t.cancel()

    # ---- lookup ------------------------------------------------------------------------------

    def _find(self, req: nodecalls.LogsRequest | nodecalls.ExecRequest) -> tuple[Any, str, Any]:
        for w in self.host.workers.values():
            meta = (w.pod or {}).get("metadata") or {}
            if meta.get("name") == req.pod and meta.get("namespace") == req.namespace:
                spec = w.spec
                names = [c["name"] for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])]
                name = req.container or ((spec.get("containers") or [{}])[0].get("name"))
                if name not in names:
                    raise errors.bad_request(f"container {name} is not valid for pod {req.pod}")
                return w, name, w.current.get(name)
        raise errors.not_found("pods", req.pod)

    def _session(self, req: nodecalls.LogsRequest | nodecalls.ExecRequest | nodecalls.PortForwardRequest
                 ) -> tuple[str, str]:
        """``(out, in)`` subjects of the streaming session the request names."""
        return (subjects.node_session(self.host.name, req.session, subjects.SESSION_OUT),
                subjects.node_session(self.host.name, req.session, subjects.SESSION_IN))

    def _request(self, call: str, msg) -> Any:
        """The call's request, validated before any work (``bus.nodecalls``): None (dropped, logged) when it has no
        reply subject, since whoever sent it cannot be answered; BadRequest when it is malformed."""
        if not msg.reply:
            log.warning("%s request without a reply subject dropped", call)
            return None
        return nodecalls.parse(call, msg.data)

    async def _reply(self, msg, body: dict) -> None:
        if msg.reply:
            await self.nc.publish(msg.reply, codec.pack(body))

    # ---- logs --------------------------------------------------------------------------------

    async def _on_logs(self, msg) -> None:
        try:
            if (req := self._request("logs", msg)) is None:
                return
            w, name, inst = self._find(req)
            if req.previous:
                inst = w.previous.get(name)
                if inst is None:
                    raise errors.bad_request(f'previous terminated container "{name}" in pod "{req.pod}" not found')
            if inst is None:
                raise errors.bad_request(f'container "{name}" in pod "{req.pod}" is waiting to start: '
                                         f'{w.waiting.get(name, ("ContainerCreating",))[0]}')
            out, control = self._session(req)
        except errors.ApiError as e:
            await self._reply(msg, {"code": e.code, "body": e.status()})
            return
        except Exception as e:
            await self._reply(msg, {"code": 400, "body": errors.bad_request(str(e)).status()})
            return
        await self._reply(msg, {"code": 200})
        follow = req.follow and not req.previous
        cancel = asyncio.Event()
        alive = [time.monotonic()]

        async def on_ctl(m) -> None:
            ctl = _session_message(m.data)
            if ctl.get("cancel"):
                cancel.set()
            alive[0] = time.monotonic()

        ctl_sub = await self.nc.subscribe(control, cb=on_ctl)

        async def pump() -> None:
            async for chunk in await self.host.runtime.logs(inst.id, follow=follow, tail=req.tail):
                await self.nc.publish(out, codec.pack({"data": chunk}))

        async def watchdog() -> None:
            while not cancel.is_set():
                await asyncio.sleep(2)
                if follow and time.monotonic() - alive[0] > KEEPALIVE_TIMEOUT:
                    cancel.set()

        pump_t, dog_t, cancel_t = (asyncio.create_task(pump()), asyncio.create_task(watchdog()),
                                   asyncio.create_task(cancel.wait()))
        try:
            await asyncio.wait({pump_t, cancel_t}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (pump_t, dog_t, cancel_t):
                t.cancel()
            await ctl_sub.unsubscribe()
            await self.nc.publish(out, codec.pack({"eof": True}))

    # ---- exec --------------------------------------------------------------------------------

    async def _on_exec(self, msg) -> None:
        try:
            if (req := self._request("exec", msg)) is None:
                return
            w, name, inst = self._find(req)
            if inst is None or inst.state != "running":
                raise errors.bad_request(f'container {name} is not running')
            out, stdin_subject = self._session(req)
            session = await self.host.runtime.exec(inst.id, req.command, stdin=req.stdin, tty=req.tty)
        except errors.ApiError as e:
            await self._reply(msg, {"code": e.code, "body": e.status()})
            return
        except Exception as e:
            await self._reply(msg, {"code": 500, "body": errors.internal(str(e)).status()})
            return
        async def on_stdin(m) -> None:
            data = _session_message(m.data)
            if isinstance(data.get("data"), bytes) and data["data"]:
                await session.write_stdin(data["data"])
            if data.get("eof"):
                await session.close_stdin()

        sub = await self.nc.subscribe(stdin_subject, cb=on_stdin) if req.stdin else None
        await self._reply(msg, {"code": 200})
        try:
            async for stream, data in session:
                await self.nc.publish(out, codec.pack({"stream": stream, "data": data}))
            code = await session.exit_code()
        except Exception as e:
            log.warning("exec in %s failed: %s", name, e)
            code = 126
        finally:
            if sub is not None:
                await sub.unsubscribe()
        await self.nc.publish(out, codec.pack({"exit": code}))

    # ---- port forwarding ---------------------------------------------------------------------

    async def _on_portforward(self, msg) -> None:
        try:
            if (req := self._request("portforward", msg)) is None:
                return
            sandbox = portforward.find_sandbox(self.host.workers.values(), req.namespace, req.pod)
            sock = await portforward.connect(sandbox, req.port)
        except errors.ApiError as e:
            await self._reply(msg, {"code": e.code, "body": e.status()})
            return
        relay = await Relay(self.nc, *self._session(req)).start()
        try:
            await self._reply(msg, {"code": 200})
            await portforward.relay_connection(sock, relay)
        finally:
            sock.close()
            await relay.close()

    # ---- metrics -----------------------------------------------------------------------------

    async def _on_stats(self, msg) -> None:
        try:
            if self._request("stats", msg) is None:
                return
        except errors.ApiError as e:
            await self._reply(msg, {"code": e.code, "body": e.status()})
            return
        if self.latest["node"] is None:
            await self.collect()
        await self._reply(msg, {"code": 200, "body": self.latest})

    async def collect(self) -> dict:
        now_t = time.monotonic()
        busy, total = _cpu_seconds()
        lb, lt = self._last_cpu
        cores = float(os.cpu_count() or 1)
        frac = (busy - lb) / (total - lt) if total > lt else 0.0
        self._last_cpu = (busy, total)
        ts = format_time()
        window = format_duration(self.host.config.metrics_seconds)
        node = {"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {"name": self.host.name},
                "timestamp": ts, "window": window,
                "usage": {"cpu": f"{int(frac * cores * 1e9)}n", "memory": f"{_memory_working_set() // 1024}Ki"}}
        pods = []
        seen: dict[str, tuple[float, float]] = {}  # this round's cpu totals (containers gone are forgotten)
        for w in list(self.host.workers.values()):
            meta = (w.pod or {}).get("metadata") or {}
            containers, complete = [], True
            for name, inst in list(w.current.items()):
                if inst.state != "running":
                    continue
                try:
                    st = await self.host.runtime.stats(inst.id)
                except Exception:
                    continue
                cpu_total = float(st.get("cpu_usage_ns") or 0)
                prev = self._container_cpu.get(inst.id)
                seen[inst.id] = (cpu_total, now_t)
                if prev is None or now_t <= prev[1]:
                    complete = False  # no rate before a second sample: the pod is left out, as metrics-server does
                    continue
                rate = (cpu_total - prev[0]) / (now_t - prev[1])
                mem = int(st.get("memory_working_set_bytes") or st.get("memory_usage_bytes") or 0)
                containers.append({"name": name, "usage": {"cpu": f"{max(0, int(rate))}n", "memory": f"{mem // 1024}Ki"}})
            if containers and complete:
                pods.append({"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                             "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
                             "timestamp": ts, "window": window, "containers": containers})
        self._container_cpu = seen
        self.latest = {"node": node, "pods": pods}
        return self.latest

    async def metrics_loop(self) -> None:
        """Collect and publish every ``metrics_seconds``, on a fixed beat (the time a round takes is not added to
        the period; a round that overruns starts the next at once)."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            try:
                data = await self.collect()
                await self.nc.publish(subjects.node_metrics(self.host.name), codec.pack(data["node"]))
                for p in data["pods"]:
                    m = p["metadata"]
                    await self.nc.publish(subjects.pod_metrics(self.host.name, m["namespace"], m["name"]),
                                          codec.pack(p))
            except Exception as e:
                log.warning("metrics collection failed: %s", e)
            period = self.host.config.metrics_seconds
            due = max(due + period, loop.time())
            await asyncio.sleep(due - loop.time())
