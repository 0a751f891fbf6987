"""What a pod worker needs from the node that runs it: the narrow interface :class:`node.podworker.PodWorker`
is handed instead of the whole agent. :class:`node.agent.Agent` implements it structurally (no subclassing), and
``tests/unit/test_podhost.py`` checks both that it does and that the worker uses nothing else of its host.

Kept free of imports of ``node.agent`` and ``node.podworker`` so the agent, its workers and its node services
form no import cycle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from bus.client import ApiClient
    from bus.events import EventRecorder
    from node.volumes import Volumes


class PodSettings(Protocol):
    """The node settings a pod worker reads (``node.agent.AgentConfig`` has them)."""

    @property
    def resync_seconds(self) -> float: ...  # a pod is synced at least this often

    @property
    def pause_image(self) -> str: ...  # the image of the pod's sandbox container

    @property
    def cluster_domain(self) -> str: ...  # the DNS domain written into the pod when the node runs no DNS

    @property
    def backoff_initial(self) -> float: ...  # first restart / image pull back-off (seconds)

    @property
    def backoff_max(self) -> float: ...  # the back-off doubles up to this


@runtime_checkable
class PodHost(Protocol):
    """The node as a pod worker sees it."""

    @property
    def config(self) -> PodSettings: ...

    @property
    def client(self) -> ApiClient: ...  # the pod's status patch and final delete

    @property
    def recorder(self) -> EventRecorder: ...  # the pod's events

    @property
    def runtime(self) -> Any: ...  # the container runtime (node.runtime.DockerRuntime)

    @property
    def network(self) -> Any: ...  # pod networking: attach / detach (node.network.PodNetwork)

    @property
    def dns(self) -> Any: ...  # the node's cluster DNS (node.dns.NodeDns), or None

    @property
    def volumes(self) -> Volumes: ...

    @property
    def host_ip(self) -> str: ...

    async def get_object(self, resource: str, name: str, namespace: str) -> dict:
        """An API object a container's environment refers to (ConfigMap, Secret)."""
        ...

    async def service_env(self, pod: dict) -> dict[str, str]:
        """The Service variables for the pod's containers."""
        ...

    async def image_present(self, image: str) -> bool: ...

    async def sandbox_alive(self, sandbox: Any) -> bool:
        """False only on evidence that the sandbox container is gone or exited."""
        ...

    def wake_at(self, uid: str, when: float) -> None:
        """Sync the pod ``uid`` again at ``when`` (epoch seconds)."""
        ...

    def forget(self, uid: str) -> None:
        """The worker of pod ``uid`` is done: drop it."""
        ...
