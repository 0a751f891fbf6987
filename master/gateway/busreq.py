"""One API server request on the bus, keeping what HTTP needs and ``ApiClient.request`` drops: the
reply's status code (201 Created vs 200 OK) along with the body and the warnings."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors

from bus import codec, errors, subjects
from bus.client import ApiClient, request_payload
from bus.resources import Resource

Reply = tuple[int, Any, list[str]]


async def call(client: ApiClient, res: Resource, verb: str, namespace: str | None = None,
               name: str | None = None, body: Any = None, subresource: str | None = None,
               options: dict | None = None) -> Reply:
    """``(code, body, warnings)``; an error reply raises :class:`bus.errors.ApiError` carrying the
    warnings in ``.warnings``."""
    data = codec.pack(request_payload(res, namespace, name, body, subresource, options))
    subject = subjects.api_subject(res.plural, verb)
    attempt = 0
    while True:
        try:
            msg = await client.nc.request(subject, data, timeout=client.timeout)
            break
        except nats.errors.MaxPayloadError:
            raise errors.too_large("request is larger than the bus's maximum message size") from None
        except nats.errors.NoRespondersError:
            # nobody received it: safe to send again
            attempt += 1
            if attempt > client.retries:
                raise errors.unavailable("the API server is not available (no responders on the bus)") from None
            await asyncio.sleep(min(0.2 * 2**attempt, 2.0))
        except nats.errors.TimeoutError:
            raise errors.ApiError(504, "the API server did not answer in time; the request may still complete",
                                  "Timeout") from None
    reply = codec.unpack(msg.data)
    warnings = list(reply.get("warnings") or [])
    code = int(reply.get("code", 500))
    if code >= 400:
        err = errors.ApiError.from_status(reply.get("body") or {"code": code})
        err.warnings = warnings  # type: ignore[attr-defined]
        raise err
    return code, reply.get("body"), warnings
