"""Bind: the pods/binding subresource (sets spec.nodeName once, PodScheduled=True)."""

from __future__ import annotations

from typing import Any

from bus import errors
from master.scheduler.framework import SUCCESS, CycleState, Status, register
from master.scheduler.podinfo import PodInfo


@register("DefaultBinder")
class DefaultBinder:
    def __init__(self, client: Any = None) -> None:
        self.client = client

    @classmethod
    def create(cls, args: dict, handle: Any) -> "DefaultBinder":
        return cls(getattr(handle, "bind_client", None) or getattr(handle, "client", None))

    async def bind(self, state: CycleState, pod: PodInfo, node: str) -> Status:
        try:
            await self.client.bind(pod.name, node, pod.namespace, uid=pod.uid or None)
        except errors.ApiError as e:
            return Status.error(f"binding rejected: {e}", self.name)
        return SUCCESS
