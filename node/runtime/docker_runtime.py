"""``DockerRuntime``: the node agent's asyncio facade over the blocking docker SDK.

The sandbox (pause) container runs with Docker networking *disabled* rather than network mode ``none``: runc
still gives it a fresh network namespace with ``lo`` up (which pod networking wires), but dockerd skips
libnetwork, which halves sandbox start-up here (~140 ms instead of ~330 ms). Two consequences: Docker writes
no ``/etc/hosts``/``/etc/resolv.conf``, so the runtime writes the pod's own (the kubelet's content: see
``podfiles``) under ``state_dir`` and bind-mounts them into every app container, as the kubelet does (a
mount the agent passes for either path wins); and dockerd's stats endpoint fails for containers joined to such
a sandbox, so ``stats`` reads the cgroup files (see ``cgroups``).

Every SDK call runs in the runtime's own thread pool (the loop's default pool is small: 2 cores → 6 workers,
which would cap a pod burst at 6 concurrent Docker calls); streams that may last (``logs -f``) get a thread
of their own and exec sessions use the hijacked socket without threads. Only the low-level API is used, so
each operation costs exactly the Docker calls it needs (the high-level ``containers.create`` inspects again).
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

from bus.config import PAUSE_IMAGE

from . import cgroups, podfiles, security
from .errors import ContainerNotFound, ImagePullError, RuntimeErr
from .model import (LABEL_NODE, LABEL_POD_UID, SANDBOX_NAME, ContainerInfo, ContainerStatus, Mount, Sandbox,
                    container_hash, container_name, info_from_list, labels, pod_meta, status_from_inspect)
from .spec import container_create_args, normalize_image
from .streams import ExecSession, thread_stream

T = TypeVar("T")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_GONE_STATES = ("dead", "removing")
# a registry that answered and refused the credentials (dockerd's words for a 401/403)
_DENIED = re.compile(r"unauthorized|no basic auth credentials|authentication required", re.IGNORECASE)


def _explain(e: BaseException) -> str:
    return str(getattr(e, "explanation", None) or e)


def translate(e: BaseException, reason: str = "RuntimeError") -> BaseException:
    """A docker SDK / transport error as a runtime error; anything else unchanged."""
    if isinstance(e, RuntimeErr):
        return e
    if isinstance(e, docker.errors.ImageNotFound):
        return RuntimeErr(_explain(e), reason)
    if isinstance(e, docker.errors.NotFound):
        return ContainerNotFound(_explain(e))
    if isinstance(e, (docker.errors.DockerException, requests.exceptions.RequestException)):
        return RuntimeErr(_explain(e), reason)
    return e


def _node_capabilities() -> list[str] | None:
    try:
        return security.node_capabilities(Path("/proc/self/status").read_text(),
                                          Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return None


def default_pull_policy(image: str) -> str:
    """Kubernetes' default: Always for ``:latest`` (or no tag), IfNotPresent otherwise."""
    return "Always" if normalize_image(image).endswith(":latest") else "IfNotPresent"


class DockerRuntime:
    def __init__(self, node_name: str, pause_image: str = PAUSE_IMAGE,
                 client: docker.DockerClient | None = None, *, pull_timeout: float = 300.0,
                 workers: int = 32, state_dir: str | os.PathLike = "/var/lib/k8n/runtime") -> None:
        self.node_name = node_name
        self.state_dir = Path(state_dir) / node_name  # per sandbox: <sandbox id>/{hosts,resolv.conf}
        self.pause_image = pause_image
        self.pull_timeout = pull_timeout
        self.client = client or docker.from_env(max_pool_size=workers)
        self.api = self.client.api
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="docker")
        self._pause_present = False
        self.node_caps = _node_capabilities()  # None: privileged containers are Docker's privileged mode

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    async def _call(self, fn: Callable[..., T], *args: Any, reason: str = "RuntimeError", **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        except Exception as e:  # noqa: BLE001 - translated
            raise translate(e, reason) from e

    # ---- images ------------------------------------------------------------------------------------------------

    def _image_id_blocking(self, ref: str) -> str | None:
        try:
            return self.api.inspect_image(ref)["Id"]
        except docker.errors.ImageNotFound:
            return None

    async def _local_image(self, ref: str) -> str | None:
        return await self._call(self._image_id_blocking, ref)

    def _pull_blocking(self, ref: str, auth: dict | None = None) -> None:
        repo, _, tag = ref.partition("@") if "@" in ref else ref.rpartition(":")
        for msg in self.api.pull(repo, tag=tag, stream=True, decode=True, auth_config=auth):
            if "error" in msg:  # errors after the stream started come in the body
                raise docker.errors.APIError(msg["error"], explanation=msg["error"])

    async def image_user(self, image: str) -> str:
        """The user an image runs as (its ``Config.User``; empty: root)."""
        data = await self._call(self.api.inspect_image, normalize_image(image), reason="CreateContainerConfigError")
        return str((data.get("Config") or {}).get("User") or "")

    async def image_present(self, image: str) -> bool:
        return await self._local_image(normalize_image(image)) is not None

    async def ensure_image(self, image: str, pull_policy: str | None = None,
                           auths: list[dict] | None = None) -> str:
        """Make ``image`` present as ``pull_policy`` says and return its id; ``ImagePullError`` otherwise.
        ``auths``: the registry credentials matching the image (``pullsecrets``), tried in turn as the kubelet
        does (none: Docker's own configuration).

        Never/IfNotPresent follow Kubernetes. Always pulls, but when the pull fails and the image is present
        locally the local image is used without complaint (k8n runs where registries are often unreachable;
        Kubernetes would report ErrImagePull) — unless the registry refused the credentials: then the pod may
        not use the image, as on Kubernetes."""
        ref = normalize_image(image)
        policy = pull_policy or default_pull_policy(ref)
        if policy not in PULL_POLICIES:
            raise ImagePullError("ErrImagePull", f'unknown image pull policy "{policy}"')
        if policy != "Always" and (image_id := await self._local_image(ref)):
            return image_id
        if policy == "Never":
            raise ImagePullError("ErrImageNeverPull",
                                 f'Container image "{image}" is not present with pull policy of Never')
        failures: list[str] = []
        for auth in auths or [None]:
            try:
                await asyncio.wait_for(self._call(self._pull_blocking, ref, auth), self.pull_timeout)
                break
            except (RuntimeErr, TimeoutError) as e:
                detail = f"pull timed out after {self.pull_timeout:g}s" if isinstance(e, TimeoutError) else str(e)
                failures.append(detail)
        else:
            denied = any(_DENIED.search(f) for f in failures)
            if policy == "Always" and not denied and (image_id := await self._local_image(ref)):
                return image_id
            detail = failures[0] if len(set(failures)) == 1 else "[" + ", ".join(dict.fromkeys(failures)) + "]"
            raise ImagePullError("ErrImagePull", f'Failed to pull image "{image}": {detail}') from None
        if image_id := await self._local_image(ref):
            return image_id
        raise ImagePullError("ErrImagePull", f'Failed to pull image "{image}": not present after the pull')

    # ---- sandboxes ---------------------------------------------------------------------------------------------

    async def create_sandbox(self, pod: dict, attempt: int = 0, *, nameserver: str | None = None,
                             cluster_domain: str = podfiles.DEFAULT_DOMAIN) -> Sandbox:
        """Create and start the pod's pause container (its own network namespace, ``lo`` only; hostname
        ``spec.hostname`` or the pod name) and return where its namespace is. The pod's resolv.conf follows
        its dnsPolicy with ``nameserver`` as the cluster DNS (see ``podfiles``)."""
        if not self._pause_present:
            await self.ensure_image(self.pause_image, "IfNotPresent")
            self._pause_present = True
        spec = pod.get("spec") or {}
        create, host = security.sandbox_args(pod, (spec.get("hostname") or pod_meta(pod)[0])[:63])
        try:
            host_config = self.api.create_host_config(**host)
        except docker.errors.DockerException as e:
            raise RuntimeErr(_explain(e), "CreatePodSandboxError") from e
        cid = (await self._call(
            self.api.create_container, self.pause_image, name=container_name(pod, SANDBOX_NAME, attempt),
            labels=labels(self.node_name, pod, SANDBOX_NAME, attempt), host_config=host_config, **create,
            reason="CreatePodSandboxError",
        ))["Id"]
        try:
            podfiles.write(self.state_dir / cid, pod=pod, nameserver=nameserver, cluster_domain=cluster_domain)
            await self._call(self.api.start, cid, reason="CreatePodSandboxError")
            pid = (await self._call(self.api.inspect_container, cid))["State"]["Pid"]
        except BaseException:
            await asyncio.shield(self.remove_sandbox(cid))
            raise
        return Sandbox(id=cid, netns_path=f"/proc/{pid}/ns/net", pid=pid)

    async def write_hosts(self, sandbox_id: str, pod: dict, pod_ip: str,
                          cluster_domain: str = podfiles.DEFAULT_DOMAIN) -> None:
        """The pod's /etc/hosts with its own IP and hostname, once its network gave it an IP."""
        podfiles.write_hosts(self.state_dir / sandbox_id, pod, pod_ip, cluster_domain)

    async def sandbox(self, sandbox_id: str) -> Sandbox:
        """The Sandbox of a running pause container (an agent adopting it after a restart)."""
        st = await self.inspect(sandbox_id)
        return Sandbox(sandbox_id, f"/proc/{st.pid}/ns/net", st.pid)

    async def remove_sandbox(self, sandbox_id: str) -> None:
        await self.remove_container(sandbox_id)
        podfiles.remove(self.state_dir / sandbox_id)

    def _pod_file_mounts(self, sandbox_id: str, mounts: list[Mount]) -> list[Mount]:
        taken = {m.target for m in mounts}
        return [Mount(source, target) for target, source in podfiles.paths(self.state_dir / sandbox_id).items()
                if target not in taken and os.path.exists(source)]

    # ---- containers --------------------------------------------------------------------------------------------

    async def create_container(self, pod: dict, container: dict, sandbox: Sandbox | str, attempt: int,
                               env: dict[str, str], mounts: list[Mount], init: bool = False) -> str:
        """Create (not start) a container in the sandbox's namespaces; returns its id.
        ``$(VAR)`` references in command/args are expanded from ``env``, as the kubelet does."""
        sandbox_id = sandbox.id if isinstance(sandbox, Sandbox) else sandbox
        create, host = container_create_args(container, env, mounts + self._pod_file_mounts(sandbox_id, mounts))
        config_user = await self.image_user(container["image"]) if security.needs_image_user(pod, container) else None
        if error := security.run_as_non_root_error(pod, container, config_user):
            raise RuntimeErr(error, "CreateContainerConfigError")
        sec_create, sec_host = security.container_args(pod, container, config_user, self.node_caps)
        raw = {k: sec_host.pop(k) for k in security.RAW_HOST_FIELDS if k in sec_host}
        name = container["name"]
        try:
            host_config = self.api.create_host_config(**security.namespaces(pod, sandbox_id), **host, **sec_host)
        except docker.errors.DockerException as e:
            raise RuntimeErr(_explain(e), "CreateContainerConfigError") from e
        host_config.update(raw)
        result = await self._call(
            self.api.create_container, **create, **sec_create, name=container_name(pod, name, attempt),
            host_config=host_config,
            labels=labels(self.node_name, pod, name, attempt, init, container_hash(container)),
            reason="CreateContainerError",
        )
        return result["Id"]

    async def start_container(self, container_id: str) -> None:
        await self._call(self.api.start, container_id, reason="RunContainerError")

    async def stop_container(self, container_id: str, grace_seconds: int) -> None:
        """SIGTERM, up to ``grace_seconds`` for the process to end, then SIGKILL (Docker's stop)."""
        await self._call(self.api.stop, container_id, timeout=max(0, int(grace_seconds)))

    async def remove_container(self, container_id: str) -> None:
        """Force-remove (killing it if running) with its anonymous volumes; a missing container is fine."""
        try:
            await self._call(self.api.remove_container, container_id, force=True, v=True)
        except ContainerNotFound:
            pass
        except RuntimeErr as e:
            if "already in progress" not in e.message:
                raise

    async def list_containers(self, pod_uid: str | None = None) -> list[ContainerInfo]:
        """Every container of this node (sandboxes too, running or not), or only those of the pod ``pod_uid``,
        from one list call."""
        label = [f"{LABEL_NODE}={self.node_name}"] + ([f"{LABEL_POD_UID}={pod_uid}"] if pod_uid else [])
        found = await self._call(self.api.containers, all=True, filters={"label": label})
        return [info_from_list(c) for c in found]

    async def inspect(self, container_id: str) -> ContainerStatus:
        status = status_from_inspect(await self._call(self.api.inspect_container, container_id))
        if status.state in _GONE_STATES:
            raise ContainerNotFound(f"container {container_id} is {status.state}")
        return status

    async def cleanup_node(self) -> None:
        """Remove every container of this node (tests, hard reset)."""
        await asyncio.gather(*(self.remove_container(c.id) for c in await self.list_containers()))
        podfiles.remove(self.state_dir)

    # ---- logs, exec, stats -------------------------------------------------------------------------------------

    async def logs(self, container_id: str, follow: bool = False, tail: int | None = None,
                   timestamps: bool = False) -> AsyncIterator[bytes]:
        """stdout and stderr merged in order. Errors (e.g. ``ContainerNotFound``) are raised by the await;
        closing or cancelling the iteration ends a follow."""
        return await thread_stream(
            lambda: self.api.logs(container_id, stdout=True, stderr=True, stream=True, follow=follow,
                                  tail="all" if tail is None else max(0, tail), timestamps=timestamps),
            translate)

    async def exec(self, container_id: str, cmd: list[str], stdin: bool = False, tty: bool = False) -> ExecSession:
        exec_id = (await self._call(self.api.exec_create, container_id, cmd, stdout=True, stderr=True,
                                    stdin=stdin, tty=tty))["Id"]
        sock = await self._call(self.api.exec_start, exec_id, socket=True, tty=tty)
        return ExecSession(sock, tty, lambda: self._call(self.api.exec_inspect, exec_id))

    async def stats(self, container_id: str) -> dict[str, int]:
        """One sample: ``cpu_usage_ns`` (cumulative CPU time), ``memory_usage_bytes`` and
        ``memory_working_set_bytes`` (usage − inactive_file). From the cgroup files when the container's cgroup
        is found (pass the full id), else from Docker's one-shot stats."""
        if found := cgroups.container_stats(container_id):
            return found
        s = await self._call(self.api.stats, container_id, stream=False, one_shot=True)
        mem = s.get("memory_stats") or {}
        detail = mem.get("stats") or {}
        inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0))
        usage = int(mem.get("usage") or 0)
        return {
            "cpu_usage_ns": int(((s.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0),
            "memory_usage_bytes": usage,
            "memory_working_set_bytes": max(0, usage - int(inactive or 0)),
        }
