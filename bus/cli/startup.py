"""The start steps of ``k8n up`` after NATS: the pod sandbox image, the API server answering, the control plane
leading (the Leases of the controller manager, the scheduler and the node view renewed by this run), the HTTPS
gateway ready, and the node Ready (its Node's Ready condition True and its Lease renewed by this run). Each step
prints its line with how long its component took to get there (:class:`bus.cli.progress.Steps`); one that does
not get there in time, or whose component keeps dying, is a :class:`StepFailed` naming the step and why."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from bus import errors
from bus.config import PAUSE_IMAGE
from bus.meta import get_condition, timestamp

if TYPE_CHECKING:
    from bus.cli.progress import Steps
    from bus.cli.runner import Child
    from bus.client import ApiClient

#: the Leases kube-system/NAME the control plane's leaders renew
CONTROL_PLANE_LEASES = {"kube-controller-manager": "controller manager", "kube-scheduler": "scheduler",
                        "k8n-nodeview": "node view"}
DIES = 3  # a component that died this many times while its step waited fails the step
API_TIMEOUT, CONTROL_PLANE_TIMEOUT, GATEWAY_TIMEOUT, NODE_TIMEOUT = 60.0, 60.0, 60.0, 90.0


class StepFailed(RuntimeError):
    """A start step did not complete; the message says why."""


class Stopping(Exception):
    """SIGINT or SIGTERM arrived while a step waited."""


def _last_line(path: Path | None) -> str:
    try:
        with open(path, "rb") as f:  # type: ignore[arg-type]
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except (OSError, TypeError):
        return ""
    return lines[-1].strip()[:300] if lines else ""


def dying(children: list[Child]) -> str | None:
    """Why a step cannot complete: one of ``children`` died :data:`DIES` times (None otherwise)."""
    from bus.cli.runner import _exit_text

    for c in children:
        if c.proc is not None and c.restarts >= DIES - 1 and c.proc.poll() is not None:
            last = _last_line(c.log_path)
            return (f"{c.name} {_exit_text(c.proc.returncode)} ({c.restarts + 1} times); see {c.log_path}"
                    + (f": {last}" if last else ""))
    return None


async def until(check: Callable[[], Awaitable[Any]], timeout: float, tick: Callable[[], bool],
                children: list[Child], what: str) -> Any:
    """Poll ``check()`` every 0.2 s (an exception counts as not yet) until it answers something true, supervising
    the children with ``tick()`` meanwhile. :class:`Stopping` when ``tick()`` says so; :class:`StepFailed` when a
    child keeps dying or ``timeout`` passes (``what`` did not happen)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        if tick():
            raise Stopping()
        why = dying(children)
        if why:
            raise StepFailed(why)
        try:
            got = await check()
        except Exception as e:  # noqa: BLE001 - not yet
            got, last = None, e
        if got:
            return got
        if time.monotonic() > deadline:
            logs = ", ".join(str(c.log_path) for c in children if c.log_path)
            raise StepFailed(f"{what} in {timeout:g}s" + (f" (last: {last})" if last else "")
                             + (f"; see {logs}" if logs else ""))
        await asyncio.sleep(0.2)


def renewed_since(lease: dict | None, since: float) -> bool:
    """A Lease held and renewed at or after wall-clock time ``since`` (less a second: times are to the second
    or microsecond)."""
    spec = (lease or {}).get("spec") or {}
    return bool(spec.get("holderIdentity")) and timestamp(spec.get("renewTime"), 0.0) >= since - 1.0


def node_ready(node: dict | None) -> bool:
    return (get_condition(node, "Ready") or {}).get("status") == "True"


def leader_election_on() -> bool:
    from bus.settings import SettingsError, parse

    try:
        return parse(bool, os.environ.get("K8N_LEADER_ELECT", "true"), "K8N_LEADER_ELECT")
    except SettingsError:
        return True


def ensure_pause_image(image: str | None = None) -> str:
    """The pod sandbox image is in Docker (pulled when it is not); what was done. StepFailed when Docker does not
    answer or the image cannot be had."""
    import docker

    image = image or os.environ.get("K8N_PAUSE_IMAGE") or PAUSE_IMAGE
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as e:  # noqa: BLE001 - any failure to reach Docker
        raise StepFailed(f"cannot reach Docker ({e}); start it (bash deploy/node-deps.sh) or run `k8n up "
                         "--no-agent`") from None
    try:
        client.images.get(image)
        return f"{image} present"
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.DockerException as e:
        raise StepFailed(f"Docker did not answer about {image}: {e}") from None
    try:
        repo, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
        client.images.pull(repo, tag=tag)
    except docker.errors.DockerException as e:
        raise StepFailed(f"the pod sandbox image {image} is not present and could not be pulled ({e}); "
                         "build k8n's images: bash deploy/images/build.sh") from None
    return f"{image} pulled"


async def _gateway_ready(url: str) -> bool:
    import ssl
    import urllib.request

    def get() -> bool:
        ctx = ssl._create_unverified_context()  # our own child on this machine: clients check its certificate
        with urllib.request.urlopen(url, timeout=1, context=ctx) as r:
            return r.status == 200

    return await asyncio.to_thread(get)


@dataclass
class _Step:
    name: str
    check: Callable[[], Awaitable[Any]]
    timeout: float
    children: list[Child]
    what: str  # what did not happen, for a timeout
    detail: str
    since: float


class Startup:
    """The steps after the components were launched (at ``launched``, a ``time.monotonic()``; ``wall``: the same
    instant by the wall clock, for the Leases). The steps are added, then :meth:`run` checks them all at once
    and prints them in order, each with the time it took to complete."""

    def __init__(self, client: ApiClient, steps: Steps, tick: Callable[[], bool], launched: float,
                 wall: float) -> None:
        self.client, self.steps, self.tick, self.launched, self.wall = client, steps, tick, launched, wall
        self.plan: list[_Step] = []

    def add(self, name: str, check: Callable[[], Awaitable[Any]], timeout: float, children: list[Child], what: str,
            detail: str = "", since: float | None = None) -> None:
        self.plan.append(_Step(name, check, timeout, children, what, detail,
                               self.launched if since is None else since))

    async def run(self) -> None:
        """Every step checked concurrently, printed in order; StepFailed (``NAME: REASON``) for the first that
        fails in that order, Stopping on a signal."""
        async def timed(step: _Step) -> float:
            await until(step.check, step.timeout, self.tick, step.children, step.what)
            return time.monotonic()

        tasks = [asyncio.create_task(timed(step)) for step in self.plan]
        try:
            for step, task in zip(self.plan, tasks):
                self.steps.begin(step.name, step.since)
                try:
                    at = await task
                except StepFailed as e:
                    self.steps.failed(str(e))
                    raise StepFailed(f"{step.name}: {e}") from None
                except Stopping:
                    self.steps.failed("interrupted")
                    raise
                self.steps.done(step.detail, at=at)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def api_server(self, children: list[Child]) -> None:
        async def check() -> bool:
            await self.client.get("namespaces", "default")
            return True

        self.add("API server", check, API_TIMEOUT, children, "the API server did not answer")

    def control_plane(self, children: list[Child]) -> None:
        if not leader_election_on():
            self.add("control plane", _at_once, 0, children, "", "started (leader election off: not checked)")
            return

        async def check() -> bool:
            waiting = []
            for lease, who in CONTROL_PLANE_LEASES.items():
                try:
                    got = await self.client.get("leases", lease, "kube-system")
                except errors.NotFound:
                    got = None
                if not renewed_since(got, self.wall):
                    waiting.append(who)
            if waiting:
                raise StepFailed(f"no leader yet: {', '.join(waiting)}")
            return True

        self.add("control plane", check, CONTROL_PLANE_TIMEOUT, children, "the control plane did not elect its "
                 "leaders", "controller manager, scheduler, node view leading")

    def gateway(self, children: list[Child], http_url: str) -> None:
        self.add("gateway", lambda: _gateway_ready(f"{http_url}/readyz"), GATEWAY_TIMEOUT, children,
                 f"the HTTPS API did not answer at {http_url}/readyz", http_url)

    def node(self, children: list[Child], name: str, since: float) -> None:
        async def check() -> bool:
            try:
                node = await self.client.get("nodes", name)
            except errors.NotFound:
                raise StepFailed("not registered yet") from None
            if not node_ready(node):
                raise StepFailed(f"Ready is {(get_condition(node, 'Ready') or {}).get('status', 'unknown')}")
            lease = await self.client.get("leases", name, "kube-node-lease")
            if not renewed_since(lease, self.wall):
                raise StepFailed("its Lease is not renewed yet")
            return True

        self.add(f"node {name}", check, NODE_TIMEOUT, children, f"node {name} did not become Ready", "Ready",
                 since=since)


async def _at_once() -> bool:
    return True
