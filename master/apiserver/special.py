"""Requests an API server serves beside the resource API (``k8n backup``'s cut, ``k8n upgrade``): one reply each, a
Kubernetes Status for every error, never an exception into the server."""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from nats.aio.msg import Msg

from bus import codec, errors

log = logging.getLogger(__name__)


def payload_of(msg: Msg) -> dict:
    """The request's payload (msgpack or JSON; empty: ``{}``); 400 for what does not decode to an object."""
    try:
        payload = codec.decode(msg.data)[0] if msg.data.strip() else {}
    except ValueError as e:
        raise errors.bad_request(f"the request payload could not be decoded: {e}") from None
    if not isinstance(payload, dict):
        raise errors.bad_request("the request payload must be an object")
    return payload


async def answer(msg: Msg, serve: Callable[[Msg], Awaitable[Any]], what: str) -> None:
    """Reply to ``msg`` with ``serve(msg)``'s body (200) or the error's Status, in the request's encoding."""
    as_json = codec.is_json(msg.data)
    try:
        reply = {"code": 200, "body": await serve(msg)}
    except errors.ApiError as e:
        reply = {"code": e.code, "body": e.status()}
    except Exception as e:  # noqa: BLE001 - answered, never raised into the server
        log.exception("%s failed", what)
        reply = {"code": 500, "body": errors.internal(f"{type(e).__name__}: {e}").status()}
    if msg.reply:
        await msg.respond(codec.encode(reply, as_json))
