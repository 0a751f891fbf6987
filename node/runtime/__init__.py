"""The node's container runtime layer: pods on Docker (a pause sandbox holding the network namespace, app
containers joining it), tied to their pods by labels. See ``DockerRuntime``."""

from .docker_runtime import DockerRuntime, default_pull_policy
from .errors import ContainerNotFound, ImagePullError, RuntimeErr
from .model import (SANDBOX_NAME, ContainerInfo, ContainerStatus, Mount, Sandbox, container_hash,
                    container_name)
from .spec import normalize_image
from .streams import ExecSession

__all__ = [
    "DockerRuntime", "default_pull_policy", "ContainerNotFound", "ImagePullError", "RuntimeErr",
    "SANDBOX_NAME", "ContainerInfo", "ContainerStatus", "Mount", "Sandbox", "container_hash", "container_name",
    "normalize_image", "ExecSession",
]
