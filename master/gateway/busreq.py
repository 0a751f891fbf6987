"""One API server request on the bus, keeping what HTTP needs and ``ApiClient.request`` drops: the
reply's status code (201 Created vs 200 OK) along with the body and the warnings. The request goes through
``ApiClient.call`` — the client's one request path: its request id and its retries — and only the failures are
put the way HTTP says them."""

from __future__ import annotations

from typing import Any

from bus import errors
from bus.authn import UserInfo
from bus.client import ApiClient, Reply
from bus.resources import Resource


async def call(client: ApiClient, res: Resource, verb: str, namespace: str | None = None,
               name: str | None = None, body: Any = None, subresource: str | None = None,
               options: dict | None = None, user: UserInfo | None = None) -> Reply:
    """``(code, body, warnings)``; an error reply raises :class:`bus.errors.ApiError` carrying the
    warnings in ``.warnings``. No answer after the client's retries is a 504 when the request may still
    complete, a 503 when no apiserver was there to receive it."""
    try:
        code, out, warnings = await client.call(res, verb, namespace, name, body, subresource, options,
                                                user.as_dict() if user is not None else None)
    except errors.NoReply as e:
        if e.timed_out:
            raise errors.ApiError(504, "the API server did not answer in time; the request may still complete",
                                  "Timeout") from None
        raise errors.unavailable("the API server is not available (no responders on the bus)") from None
    if code >= 400:
        err = errors.ApiError.from_status(out or {"code": code})
        err.warnings = warnings  # type: ignore[attr-defined]
        raise err
    return code, out, warnings
