"""Typed errors of the container runtime layer; ``reason`` is what the agent shows as a container's waiting reason."""

from __future__ import annotations


class RuntimeErr(Exception):
    """A runtime call failed. ``reason`` follows the kubelet's vocabulary (``CreateContainerError``, ...)."""

    def __init__(self, message: str, reason: str = "RuntimeError") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ImagePullError(RuntimeErr):
    """An image could not be made present: reason ``ErrImagePull`` or ``ErrImageNeverPull``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason)


class ContainerNotFound(RuntimeErr):
    """The container does not exist (or is dead / being removed)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "NotFound")
