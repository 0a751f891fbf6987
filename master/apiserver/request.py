"""One decoded API request and the reply shape every verb returns: what the server's parser builds, the handlers
serve, and subresources such as ``pods/eviction`` take — in a module of its own, so those import neither each
other nor the server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bus.authn import UserInfo
from bus.resources import Resource

NOBODY = UserInfo("system:anonymous", "", ("system:unauthenticated",))


@dataclass
class Request:
    res: Resource
    verb: str
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    body: Any = None
    options: dict = field(default_factory=dict)
    size: int = 0  # bytes of the request on the wire
    request_id: str | None = None  # a write's retry token (``master/apiserver/replies.py``); None: not cached
    user: UserInfo = NOBODY  # who asks: the caller's bus identity, or the user the gateway authenticated

    @property
    def dry_run(self) -> bool:
        dr = self.options.get("dryRun")
        return bool(dr) and dr != [] and dr != "false"


Reply = tuple[int, Any, list[str]]  # (HTTP code, body, warnings)
