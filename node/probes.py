"""Container probes (liveness, readiness, startup) with exec, httpGet and tcpSocket handlers and
Kubernetes' thresholds: a worker per probe that reports result changes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

log = logging.getLogger(__name__)

LIVENESS, READINESS, STARTUP = "liveness", "readiness", "startup"


def resolve_port(port: Any, container: dict) -> int:
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} not found in container {container.get('name')}")


async def _http(probe: dict, container: dict, pod_ip: str, timeout: float) -> tuple[bool, str]:
    import aiohttp

    get = probe["httpGet"]
    port = resolve_port(get.get("port"), container)
    host = get.get("host") or pod_ip
    scheme = (get.get("scheme") or "HTTP").lower()
    path = get.get("path") or "/"
    url = f"{scheme}://{host}:{port}{path if path.startswith('/') else '/' + path}"
    headers = {h["name"]: h.get("value", "") for h in get.get("httpHeaders") or [] if h.get("name")}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s:
            async with s.get(url, headers=headers, allow_redirects=False, ssl=False) as r:
                if 200 <= r.status < 400:
                    return True, ""
                return False, f"HTTP probe failed with statuscode: {r.status}"
    except asyncio.TimeoutError:
        return False, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
    except Exception as e:
        return False, f'Get "{url}": {e}'


async def _tcp(probe: dict, container: dict, pod_ip: str, timeout: float) -> tuple[bool, str]:
    sock = probe["tcpSocket"]
    port = resolve_port(sock.get("port"), container)
    host = sock.get("host") or pod_ip
    try:
        _, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        w.close()
        return True, ""
    except Exception as e:
        return False, f"dial tcp {host}:{port}: {e or 'connect: connection refused'}"


async def _exec(probe: dict, runtime: Any, container_id: str, timeout: float) -> tuple[bool, str]:
    cmd = list((probe.get("exec") or {}).get("command") or [])
    try:
        session = await runtime.exec(container_id, cmd, stdin=False, tty=False)
        out = bytearray()

        async def drain() -> int:
            async for _stream, data in session:
                if len(out) < 10240:
                    out.extend(data)
            return await session.exit_code()

        code = await asyncio.wait_for(drain(), timeout)
    except asyncio.TimeoutError:
        return False, f"command {cmd!r} timed out"
    except Exception as e:
        return False, f"exec failed: {e}"
    if code == 0:
        return True, ""
    return False, out.decode("utf-8", "replace").strip() or f"command {cmd!r} exited with {code}"


async def run_probe(probe: dict, container: dict, runtime: Any, container_id: str, pod_ip: str) -> tuple[bool, str]:
    timeout = float(probe.get("timeoutSeconds") or 1)
    if probe.get("exec"):
        return await _exec(probe, runtime, container_id, timeout)
    if probe.get("httpGet"):
        return await _http(probe, container, pod_ip, timeout)
    if probe.get("tcpSocket"):
        return await _tcp(probe, container, pod_ip, timeout)
    return True, ""  # grpc and unknown handlers: not implemented, never fail


class ProbeWorker:
    """Runs one probe of one container instance until stopped. ``result`` is None (unknown),
    True or False after the thresholds; ``on_change(worker)`` is called when it flips."""

    def __init__(self, kind: str, probe: dict, container: dict, runtime: Any, container_id: str,
                 pod_ip: Callable[[], str], on_change: Callable[["ProbeWorker"], None]) -> None:
        self.kind, self.probe, self.container = kind, probe, container
        self.runtime, self.container_id, self.pod_ip = runtime, container_id, pod_ip
        self.on_change = on_change
        self.result: bool | None = None
        self.message = ""
        self._task: asyncio.Task | None = None
        self._streak = 0
        self._last: bool | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"probe-{self.kind}-{self.container.get('name')}")

    def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def _loop(self) -> None:
        p = self.probe
        period = float(p.get("periodSeconds") or 10)
        success_t = int(p.get("successThreshold") or 1)
        failure_t = int(p.get("failureThreshold") or 3)
        await asyncio.sleep(float(p.get("initialDelaySeconds") or 0))
        while True:
            try:
                ok, msg = await run_probe(p, self.container, self.runtime, self.container_id, self.pod_ip())
            except asyncio.CancelledError:
                raise
            except Exception as e:
                ok, msg = False, str(e)
            self._streak = self._streak + 1 if ok == self._last else 1
            self._last = ok
            new = self.result
            if ok and self._streak >= success_t:
                new = True
            elif not ok and self._streak >= failure_t:
                new = False
            self.message = msg
            if new != self.result:
                self.result = new
                try:
                    self.on_change(self)
                except Exception:
                    log.exception("probe change handler failed")
            if self.kind == STARTUP and self.result:
                return  # a startup probe stops once it succeeded
            await asyncio.sleep(period)
