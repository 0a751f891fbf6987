"""One worker per pod on this node: drives the pod's sandbox, network and containers toward its
spec (init containers in order, restart policy with CrashLoopBackOff, probes) and writes its
status. Level-triggered: every ``sync`` looks at the current state and does the next step."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bus import errors, telemetry
from bus.events import NORMAL, WARNING
from bus.meta import TERMINAL_POD_PHASES, format_time, timestamp
from node.env import ConfigError, build_env
from node.network.hostports import host_ports
from node.probes import LIVENESS, READINESS, STARTUP, ProbeWorker
from node.runtime import pullsecrets
from node.runtime.security import SYSCTL_FORBIDDEN, forbidden_sysctl
from node.status import RUNNING, TERMINATED, ContainerView, pod_status
from node.telemetry import KubeletMetrics
from node.volumes import VolumeError

if TYPE_CHECKING:
    from node.podhost import PodHost

log = logging.getLogger(__name__)
RESET_BACKOFF_AFTER = 600.0  # a container that ran this long restarts without delay
START_FAILED_EXIT_CODE = 128  # a start failure Docker gave no exit code for (containerd's StartError uses 128)


@dataclass
class Instance:
    """One Docker container running (or having run) a Kubernetes container."""

    id: str
    attempt: int
    state: str = "created"  # docker state: created / running / exited / ...
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    image_id: str = ""
    inspected: bool = False
    start_failed: bool = False  # created, but Docker could not start it (e.g. the command is not in the image)
    message: str = ""  # why it could not start (Docker's State.Error)

    @property
    def alive(self) -> bool:
        """Running, or created and about to be started. A container whose start failed stays in Docker's
        "created" state forever: it is a terminated instance (dockershim reported it as exited)."""
        return self.state in ("running", "created") and not self.start_failed


class PodWorker:
    def __init__(self, host: PodHost, uid: str, pod: dict) -> None:
        self.host = host  # the node agent, seen through the narrow interface of node.podhost
        self.uid = uid
        self.pod: dict | None = pod
        self.deleted = False  # gone from the API (not just terminating)
        self.sandbox: Any = None
        self.pod_ip = ""
        self.start_time: str | None = None
        self.volume_paths: dict[str, str] | None = None
        self.current: dict[str, Instance] = {}  # container name -> latest instance
        self.previous: dict[str, Instance] = {}  # container name -> instance before it
        self.waiting: dict[str, tuple[str, str]] = {}  # container name -> (reason, message)
        self.backoff: dict[str, tuple[float, float]] = {}  # name -> (not before, last delay)
        self.probes: dict[tuple[str, str], ProbeWorker] = {}
        self.init_failed = False
        self.rejected = False  # refused by the node's admission (SysctlForbidden): Failed, never run
        self.host_ports: list | None = None  # the hostPort mappings programmed for this sandbox (None: not yet)
        self.pod_reason = ""
        self.pod_message = ""
        self.last_status: dict | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.done = False
        # kubelet_pod_start_duration_seconds: from now to the first Running status (not for a pod running already)
        running = ((pod.get("status") or {}).get("phase") == "Running")
        self._metrics = None if running else telemetry.metrics(KubeletMetrics)
        self._seen = time.monotonic()

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"pod-{self.uid[:8]}")

    def update(self, pod: dict | None) -> None:
        if pod is None:
            self.deleted = True
        else:
            self.pod = pod
        self.trigger()

    def trigger(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Stop driving the pod (agent shutdown): containers keep running for adoption."""
        for p in self.probes.values():
            p.stop()
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    async def _loop(self) -> None:
        while not self.done:
            self._wake.clear()
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pod %s: sync failed", self.name)
            if self.done:
                break
            try:
                await asyncio.wait_for(self._wake.wait(), self.host.config.resync_seconds)
            except asyncio.TimeoutError:
                pass
        self.host.forget(self.uid)

    @property
    def name(self) -> str:
        meta = (self.pod or {}).get("metadata") or {}
        return f"{meta.get('namespace')}/{meta.get('name')}"

    @property
    def spec(self) -> dict:
        return (self.pod or {}).get("spec") or {}

    # ---- the sync step ---------------------------------------------------------------------

    async def sync(self) -> None:
        pod = self.pod
        if pod is None:
            return
        if self.deleted or (pod.get("metadata") or {}).get("deletionTimestamp"):
            await self.terminate()
            return
        if self.rejected or await self._reject():
            return
        if await self._terminal_and_settled():
            await self.write_status()
            return
        if not await self.ensure_sandbox():
            await self.write_status()
            return
        if self.volume_paths is None:
            try:
                self.volume_paths = await self.host.volumes.prepare(pod)
                self.pod_reason = self.pod_message = ""
            except VolumeError as e:
                await self.event(WARNING, e.reason, str(e))
                self.pod_message = str(e)
                await self.write_status()
                return
        await self.refresh_instances()
        if await self.run_init_containers():
            await self.run_app_containers()
        await self.write_status()

    async def _reject(self) -> bool:
        """The kubelet's admission of what only the node checks (sysctls outside the safe set): a refused pod is
        Failed with the reason and ``Pod was rejected: …``, and nothing of it runs."""
        message = forbidden_sysctl(self.pod) if not self.sandbox and not self.current else None
        if message is None:
            return False
        if (self.pod.get("status") or {}).get("reason") == SYSCTL_FORBIDDEN:  # said before (an agent restart)
            self.rejected = True
            return True
        await self.event(WARNING, SYSCTL_FORBIDDEN, message)
        status = {"phase": "Failed", "reason": SYSCTL_FORBIDDEN, "message": "Pod was rejected: " + message}
        if qos := (self.pod.get("status") or {}).get("qosClass"):
            status["qosClass"] = qos
        meta = self.pod["metadata"]
        try:
            await self.host.client.patch("pods", meta["name"], [{"op": "add", "path": "/status", "value": status}],
                                          meta.get("namespace"), patch_type="json", subresource="status")
        except errors.NotFound:
            self.deleted = True
            self.trigger()
            return True
        self.rejected, self.last_status = True, status
        return True

    async def _terminal_and_settled(self) -> bool:
        """A pod that reached Succeeded/Failed is not restarted; nothing more to do."""
        phase = ((self.last_status or {}).get("phase")) or (self.pod.get("status") or {}).get("phase")
        return phase in TERMINAL_POD_PHASES and self.last_status is not None

    async def ensure_sandbox(self) -> bool:
        rt = self.host.runtime
        if self.sandbox is not None and not await self.host.sandbox_alive(self.sandbox):
            await self.event(NORMAL, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
            await self.kill_containers(grace=0)
            await self._remove_sandbox()
        if self.sandbox is None:
            try:
                await rt.ensure_image(self.host.config.pause_image, "IfNotPresent")
                dns = self.host.dns
                domain = dns.domain if dns is not None else self.host.config.cluster_domain
                self.sandbox = await rt.create_sandbox(self.pod, nameserver=dns.nameserver if dns else None,
                                                       cluster_domain=domain)
                if self.spec.get("hostNetwork"):  # the node's network namespace: the node's address
                    self.pod_ip = self.host.host_ip
                else:
                    self.pod_ip = await self.host.network.attach(self.uid, self.sandbox.netns_path)
                await rt.write_hosts(self.sandbox.id, self.pod, self.pod_ip, domain)
            except Exception as e:
                log.exception("pod %s: sandbox failed", self.name)
                await self.event(WARNING, "FailedCreatePodSandBox", f"Failed to create pod sandbox: {e}")
                if self.sandbox is not None:
                    await self._remove_sandbox()
                return False
            self.start_time = self.start_time or format_time()
        if self.host_ports is None and not self.spec.get("hostNetwork"):
            try:
                self.host_ports = host_ports(self.pod)
                if self.host_ports:
                    await self.host.network.map_host_ports(self.uid, self.pod_ip, self.host_ports)
            except Exception as e:
                self.host_ports = None
                log.warning("pod %s: host ports: %s", self.name, e)
                await self.event(WARNING, "FailedCreatePodSandBox", f"Failed to map host ports: {e}")
                return False
        return True

    async def _remove_sandbox(self) -> None:
        sb, self.sandbox, self.host_ports = self.sandbox, None, None
        if sb is not None:
            try:
                await self.host.runtime.remove_sandbox(sb.id)
            except Exception as e:
                log.warning("pod %s: removing sandbox: %s", self.name, e)

    async def refresh_instances(self) -> None:
        for inst in list(self.current.values()):
            if inst.state != "running" or not inst.inspected:
                await self._inspect(inst)

    async def _inspect(self, inst: Instance) -> None:
        try:
            st = await self.host.runtime.inspect(inst.id)
        except Exception:
            inst.state, inst.exit_code, inst.inspected = "exited", inst.exit_code if inst.exit_code is not None else 137, True
            return
        inst.state = st.state
        inst.exit_code = st.exit_code
        inst.oom_killed = bool(st.oom_killed)
        inst.started_at = st.started_at
        inst.finished_at = st.finished_at
        inst.image_id = getattr(st, "image_id", "") or inst.image_id
        inst.inspected = True
        if st.state == "created" and (inst.start_failed or getattr(st, "error", "")):
            # never ran: Docker keeps it "created" with State.Error and the exit code it would have had
            # (127/126 for a missing / non-executable command); adopted ones are recognised by the error
            inst.start_failed = True
            inst.message = getattr(st, "error", "") or inst.message
            inst.state = "exited"
            inst.exit_code = st.exit_code or inst.exit_code or START_FAILED_EXIT_CODE
            secs = getattr(st, "created", 0)
            created = format_time(secs) if secs else None
            inst.started_at = inst.started_at or created
            inst.finished_at = inst.finished_at or created

    # ---- containers ------------------------------------------------------------------------

    async def run_init_containers(self) -> bool:
        """True once every init container has succeeded."""
        policy = self.spec.get("restartPolicy") or "Always"
        for c in self.spec.get("initContainers") or []:
            inst = self.current.get(c["name"])
            if inst is None:
                await self.start_container(c, init=True)
                return False
            if inst.alive:
                return False
            if inst.exit_code == 0:
                continue
            if policy == "Never":
                self.init_failed = True
                return False
            await self.maybe_restart(c, inst, init=True)
            return False
        return True

    async def run_app_containers(self) -> None:
        policy = self.spec.get("restartPolicy") or "Always"
        for c in self.spec.get("containers") or []:
            name = c["name"]
            inst = self.current.get(name)
            if inst is None:
                await self.start_container(c)
                continue
            if inst.state == "running":
                live = self.probes.get((name, LIVENESS))
                if live is not None and live.result is False:
                    await self.event(NORMAL, "Killing", f"Container {name} failed liveness probe, will be restarted",
                                     name)
                    await self.stop_instance(name, inst, self.grace_seconds())
                    await self._inspect(inst)
                else:
                    continue
            if inst.state in ("exited", "dead") or inst.start_failed:
                if policy == "Always" or (policy == "OnFailure" and inst.exit_code != 0):
                    await self.maybe_restart(c, inst)

    async def maybe_restart(self, c: dict, inst: Instance, init: bool = False) -> None:
        name = c["name"]
        cfg = self.host.config
        not_before, delay = self.backoff.get(name, (0.0, 0.0))
        ran = timestamp(inst.finished_at, 0.0) - timestamp(inst.started_at, 0.0)
        if ran > RESET_BACKOFF_AFTER:
            not_before, delay = 0.0, 0.0
        now = time.time()
        if now < not_before:
            msg = f"back-off {int(delay)}s restarting failed container={name} pod={self.pod['metadata']['name']}_" \
                  f"{self.pod['metadata'].get('namespace')}({self.uid})"
            if self.waiting.get(name, ("",))[0] != "CrashLoopBackOff":
                await self.event(WARNING, "BackOff", "Back-off restarting failed container " + name, name)
            self.waiting[name] = ("CrashLoopBackOff", msg)
            self.host.wake_at(self.uid, not_before)
            return
        next_delay = cfg.backoff_initial if delay == 0 else min(cfg.backoff_max, delay * 2)
        self.backoff[name] = (now + next_delay, next_delay)
        await self.start_container(c, init=init)

    def grace_seconds(self) -> int:
        meta = (self.pod or {}).get("metadata") or {}
        g = meta.get("deletionGracePeriodSeconds")
        if g is None:
            g = self.spec.get("terminationGracePeriodSeconds")
        return 30 if g is None else int(g)

    async def start_container(self, c: dict, init: bool = False) -> None:
        name = c["name"]
        rt = self.host.runtime
        image = c.get("image", "")
        policy = c.get("imagePullPolicy") or "IfNotPresent"
        prev = self.current.get(name)
        attempt = 0 if prev is None else prev.attempt + 1
        try:
            present = await self.host.image_present(image)
            if not present or policy == "Always":
                await self.event(NORMAL, "Pulling", f'Pulling image "{image}"', name)
            auths = await self.pull_credentials(image) if policy == "Always" or not (present or policy == "Never") \
                else []
            await (rt.ensure_image(image, policy, auths) if auths else rt.ensure_image(image, policy))
            if present:
                await self.event(NORMAL, "Pulled", f'Container image "{image}" already present on machine', name)
            else:
                await self.event(NORMAL, "Pulled", f'Successfully pulled image "{image}"', name)
        except Exception as e:
            reason = getattr(e, "reason", "ErrImagePull")
            first = self.waiting.get(name, ("",))[0] not in ("ErrImagePull", "ImagePullBackOff")
            self.waiting[name] = (reason if first else "ImagePullBackOff",
                                  str(e) if first else f'Back-off pulling image "{image}"')
            failed = str(e) if str(e).startswith("Failed to pull image") else f'Failed to pull image "{image}": {e}'
            await self.event(WARNING, "Failed", failed if first else f'Back-off pulling image "{image}"', name)
            if reason == "ErrImagePull":
                delay = self.backoff.get(name, (0.0, 0.0))[1]
                delay = self.host.config.backoff_initial if delay == 0 else min(self.host.config.backoff_max, delay * 2)
                self.backoff[name] = (time.time() + delay, delay)
                self.host.wake_at(self.uid, time.time() + delay)
            return
        try:
            env = await build_env(self.pod, c, self.host.get_object, self.host.host_ip,
                                  await self.host.service_env(self.pod), self.pod_ip)
        except ConfigError as e:
            self.waiting[name] = ("CreateContainerConfigError", str(e))
            await self.event(WARNING, "Failed", f"Error: {e}", name)
            self.host.wake_at(self.uid, time.time() + 2)
            return
        try:
            mounts = self.host.volumes.mounts(c, self.volume_paths or {})
        except VolumeError as e:  # a subPath that is a symlink (or not inside its volume): never mounted
            self.waiting[name] = (e.reason, str(e))
            await self.event(WARNING, "Failed", f"Error: {e}", name)
            self.host.wake_at(self.uid, time.time() + 2)
            return
        try:
            cid = await rt.create_container(self.pod, c, self.sandbox, attempt, env, mounts, init=init)
        except Exception as e:
            config = getattr(e, "reason", "") == "CreateContainerConfigError"  # e.g. runAsNonRoot and a root image
            self.waiting[name] = ("CreateContainerConfigError" if config else "CreateContainerError", str(e))
            await self.event(WARNING, "Failed", f"Error: {e}", name)
            if config:
                self.host.wake_at(self.uid, time.time() + 2)
            return
        # From here on the container exists in Docker: it is this container's current instance whatever
        # happens next, so a failed start is counted, shown, restarted with back-off and removed with the pod.
        inst = Instance(cid, attempt, state="created")
        await self._record(name, inst)
        await self.event(NORMAL, "Created", f"Created container {name}", name)
        try:
            await rt.start_container(cid)
        except Exception as e:
            inst.start_failed, inst.message = True, str(e)
            await self._inspect(inst)  # Docker's exit code (127: command not found) and State.Error
            if inst.state == "running":  # the start went through after all (e.g. the call timed out)
                inst.start_failed, inst.message = False, ""
            else:
                inst.state, inst.inspected = "exited", True
                if inst.exit_code is None:
                    inst.exit_code = START_FAILED_EXIT_CODE
                self.waiting[name] = ("RunContainerError", str(e))
                await self.event(WARNING, "Failed", f"Error: failed to start container {name}: {e}", name)
                self.trigger()  # the next sync restarts it (or backs off) as for any exited container
                return
        await self.event(NORMAL, "Started", f"Started container {name}", name)
        self.waiting.pop(name, None)
        inst.state, inst.started_at = "running", format_time()
        if not init:
            self.start_probes(c, inst)

    async def pull_credentials(self, image: str) -> list[dict]:
        """The credentials of the pod's imagePullSecrets that match ``image``'s registry, most specific first (the
        kubelet's getPullSecretsForPod and keyring). A Secret that cannot be read is a warning, not a failure."""
        found, missing = [], []
        namespace = (self.pod or {}).get("metadata", {}).get("namespace") or "default"
        for ref in self.spec.get("imagePullSecrets") or []:
            if name := (ref or {}).get("name"):
                try:
                    found.append(await self.host.get_object("secrets", name, namespace))
                except Exception as e:  # noqa: BLE001 - any failure: pull without it, as the kubelet
                    log.info("pod %s: pull secret %s: %s", self.name, name, e)
                    missing.append(name)
        if missing:
            await self.event(WARNING, "FailedToRetrieveImagePullSecret",
                             f"Unable to retrieve some image pull secrets ({', '.join(missing)}); attempting to pull "
                             "the image may not succeed.")
        return [auth.docker() for auth in pullsecrets.keyring(found).lookup(image)]

    async def _record(self, name: str, inst: Instance) -> None:
        """Make ``inst`` the current instance; the current one becomes the previous, and the one before that
        is removed (Kubernetes keeps the current and one previous instance of each container)."""
        prev = self.current.get(name)
        if prev is not None:
            old = self.previous.get(name)
            if old is not None and old.id not in (prev.id, inst.id):
                await self._remove_quietly(old.id)
            self.previous[name] = prev
        self.current[name] = inst

    async def _remove_quietly(self, cid: str) -> None:
        try:
            await self.host.runtime.remove_container(cid)
        except Exception as e:
            log.warning("pod %s: removing container %s: %s", self.name, cid[:12], e)

    def start_probes(self, c: dict, inst: Instance) -> None:
        name = c["name"]
        for kind in (LIVENESS, READINESS, STARTUP):
            old = self.probes.pop((name, kind), None)
            if old:
                old.stop()
            probe = c.get(f"{kind}Probe")
            if probe:
                w = ProbeWorker(kind, probe, c, self.host.runtime, inst.id, lambda: self.pod_ip, self._probe_changed)
                self.probes[(name, kind)] = w
                if kind == STARTUP or (name, STARTUP) not in self.probes:
                    w.start()

    def resume_probes(self, c: dict, inst: Instance) -> None:
        """The probes of a container adopted after an agent restart, starting from what the pod's status said of
        that very container (started, ready) instead of from unknown: a Ready pod stays Ready, and in its Services'
        endpoints, until its probes fail rather than until they first run again."""
        self.start_probes(c, inst)
        name = c["name"]
        st = next((s for s in ((self.pod or {}).get("status") or {}).get("containerStatuses") or []
                   if s.get("name") == name and s.get("containerID") == f"docker://{inst.id}"), None)
        if st is None or not st.get("started"):
            return
        ready = self.probes.get((name, READINESS))
        if ready is not None and st.get("ready"):
            ready.result = True
        startup = self.probes.get((name, STARTUP))
        if startup is not None:  # it succeeded before: done, and the other probes run
            startup.stop()
            startup.result = True
            self._probe_changed(startup)

    def _probe_changed(self, w: ProbeWorker) -> None:
        name = w.container.get("name", "")
        if w.kind == STARTUP and w.result:
            for kind in (LIVENESS, READINESS):
                p = self.probes.get((name, kind))
                if p is not None and p._task is None:
                    p.start()
        if w.result is False and w.kind in (LIVENESS, READINESS, STARTUP):
            asyncio.create_task(self.event(WARNING, "Unhealthy", f"{w.kind.capitalize()} probe failed: {w.message}",
                                           name))
            if w.kind == STARTUP:  # a failed startup probe kills like liveness
                self.probes[(name, LIVENESS)] = w
        self.trigger()

    async def stop_instance(self, name: str, inst: Instance, grace: int) -> None:
        for kind in (LIVENESS, READINESS, STARTUP):
            p = self.probes.pop((name, kind), None)
            if p:
                p.stop()
        try:
            await self.host.runtime.stop_container(inst.id, grace)
        except Exception as e:
            log.warning("pod %s: stopping %s: %s", self.name, name, e)

    async def kill_containers(self, grace: int, quiet: bool = False) -> None:
        """Stop the running containers (``grace`` seconds for SIGTERM) and remove every app container of the
        pod: the ones this worker tracks and any other Docker still holds with the pod's uid label."""
        running = [(n, i) for n, i in self.current.items() if i.alive]
        for n, _ in running:
            if not quiet:
                await self.event(NORMAL, "Killing", f"Stopping container {n}", n)
        await asyncio.gather(*(self.stop_instance(n, i, grace) for n, i in running))
        ids = {i.id for i in list(self.current.values()) + list(self.previous.values())}
        self.current.clear()
        self.previous.clear()
        for p in self.probes.values():
            p.stop()
        self.probes.clear()
        ids |= {c.id for c in await self._pod_containers() if not c.is_sandbox}
        await asyncio.gather(*(self._remove_quietly(cid) for cid in ids))

    async def _pod_containers(self) -> list:
        """This pod's containers as Docker lists them (sandboxes too)."""
        try:
            return [c for c in await self.host.runtime.list_containers(pod_uid=self.uid) if c.pod_uid == self.uid]
        except Exception as e:
            log.warning("pod %s: listing its containers: %s", self.name, e)
            return []

    # ---- termination -----------------------------------------------------------------------

    async def terminate(self) -> None:
        await self.kill_containers(self.grace_seconds() if not self.deleted else min(self.grace_seconds(), 2))
        await self._remove_sandbox()
        for c in await self._pod_containers():  # e.g. a sandbox of an earlier, replaced one
            try:
                await (self.host.runtime.remove_sandbox(c.id) if c.is_sandbox
                       else self.host.runtime.remove_container(c.id))
            except Exception as e:
                log.warning("pod %s: removing container %s: %s", self.name, c.id[:12], e)
        try:
            await self.host.network.detach(self.uid)
        except Exception as e:
            log.warning("pod %s: network detach: %s", self.name, e)
        self.host.volumes.cleanup(self.uid)
        if not self.deleted:
            meta = self.pod["metadata"]
            try:
                await self.host.client.delete("pods", meta["name"], meta.get("namespace"), grace_period_seconds=0,
                                               preconditions={"uid": self.uid})
            except (errors.NotFound, errors.Conflict):
                pass
        self.done = True

    # ---- status ----------------------------------------------------------------------------

    def views(self, containers: list[dict], init: bool) -> list[ContainerView]:
        out = []
        for c in containers:
            name = c["name"]
            inst = self.current.get(name)
            v = ContainerView(name=name, image=c.get("image", ""))
            prev = self.previous.get(name)
            if prev is not None and not prev.alive:
                v.last_terminated = _terminated(prev)
            if inst is None:
                initializing = not init and any(
                    (i := self.current.get(ic["name"])) is None or i.exit_code != 0 or i.state == "running"
                    for ic in self.spec.get("initContainers") or [])
                v.reason, v.message = self.waiting.get(name, ("PodInitializing" if initializing else "ContainerCreating", ""))
                out.append(v)
                continue
            v.container_id, v.image_id, v.restart_count = inst.id, inst.image_id, inst.attempt
            # as the kubelet: a failure reason (RunContainerError, CrashLoopBackOff, ...) shows as waiting only
            # while the container is to be restarted; otherwise the status is its terminated state
            if name in self.waiting and (inst.alive or self._will_restart(inst, init)):
                v.reason, v.message = self.waiting[name]
                v.last_terminated = _terminated(inst) if not inst.alive else v.last_terminated
                out.append(v)
                continue
            if inst.alive:
                v.state, v.started_at = RUNNING, inst.started_at
                startup = self.probes.get((name, STARTUP))
                v.started = startup is None or bool(startup.result)
                ready = self.probes.get((name, READINESS))
                v.ready = not init and v.started and (ready is None or ready.result is True)
            else:
                v.state = TERMINATED
                t = _terminated(inst)
                v.exit_code, v.reason, v.started_at, v.finished_at = t["exitCode"], t["reason"], t["startedAt"], \
                    t["finishedAt"]
                v.message = t.get("message", "")
            out.append(v)
        return out

    def _will_restart(self, inst: Instance, init: bool) -> bool:
        """Whether the restart policy restarts this exited instance (init containers: until they succeed)."""
        policy = self.spec.get("restartPolicy") or "Always"
        if init:
            return policy != "Never" and inst.exit_code != 0
        return policy == "Always" or (policy == "OnFailure" and inst.exit_code != 0)

    async def write_status(self) -> None:
        if self.pod is None or self.done:
            return
        init = self.views(self.spec.get("initContainers") or [], True)
        apps = self.views(self.spec.get("containers") or [], False)
        status = pod_status(self.pod, init, apps, self.pod_ip, self.host.host_ip, self.start_time,
                            format_time(), self.init_failed, self.pod_reason, self.pod_message)
        current = self.pod.get("status") or {}
        if status == current or status == self.last_status:
            self.last_status = status
            return
        meta = self.pod["metadata"]
        try:
            await self.host.client.patch("pods", meta["name"], [{"op": "add", "path": "/status", "value": status}],
                                          meta.get("namespace"), patch_type="json", subresource="status")
            self.last_status = status
            if self._metrics is not None and status.get("phase") == "Running":
                self._metrics.pod_start.observe(time.monotonic() - self._seen)
                self._metrics = None
        except errors.NotFound:
            self.deleted = True
            self.trigger()
        except errors.ApiError as e:
            log.warning("pod %s: status write failed: %s", self.name, e)

    async def event(self, type_: str, reason: str, message: str, container: str | None = None) -> None:
        if self.pod is None:
            return
        field = None
        if container:
            init = any(c.get("name") == container for c in self.spec.get("initContainers") or [])
            field = f"spec.{'initContainers' if init else 'containers'}{{{container}}}"
        await self.host.recorder.event(self.pod, type_, reason, message, field)


def _terminated(inst: Instance) -> dict[str, Any]:
    code = inst.exit_code if inst.exit_code is not None else 0
    if inst.start_failed:  # dockershim's reason for a container Docker created but could not start
        reason = "ContainerCannotRun"
        code = code or START_FAILED_EXIT_CODE
    else:
        reason = "OOMKilled" if inst.oom_killed else ("Completed" if code == 0 else "Error")
    out = {"exitCode": code, "reason": reason, "startedAt": inst.started_at, "finishedAt": inst.finished_at,
           "containerID": f"docker://{inst.id}"}
    if inst.start_failed and inst.message:
        out["message"] = inst.message
    return out
