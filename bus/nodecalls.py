"""The requests of the node-addressed calls (``k8n.node.<node>.logs|exec|portforward|stats``), typed: the client
builds them here and the agent parses every one here before it does any work, so a request with a missing reply
subject, a bad session id, a name that is not a Kubernetes name or a value of the wrong type is answered with a 400
Status naming the field (or dropped when nobody waits for an answer), never half-served."""

from __future__ import annotations

from typing import Annotated, Any, Callable

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from bus import codec, errors, subjects
from bus.labels import dns1123_label_errors, dns1123_subdomain_errors

MAX_COMMAND_ARGS = 4096
MAX_ARG_BYTES = 128 * 1024


def _checked(check: Callable[[str], list[str]]) -> Callable[[str], str]:
    def validate(value: str) -> str:
        if problems := check(value):
            raise ValueError("; ".join(problems))
        return value
    return validate


def _session_id(value: str) -> str:
    if not subjects.SESSION_ID.fullmatch(value):
        raise ValueError("must be 16 to 64 characters of A-Z, a-z, 0-9, '_' and '-'")
    return value


def _argument(value: str) -> str:
    if "\x00" in value or len(value.encode()) > MAX_ARG_BYTES:
        raise ValueError(f"must not contain NUL and be at most {MAX_ARG_BYTES} bytes")
    return value


Label = Annotated[str, AfterValidator(_checked(dns1123_label_errors))]
Subdomain = Annotated[str, AfterValidator(_checked(dns1123_subdomain_errors))]
Session = Annotated[str, AfterValidator(_session_id)]
Argument = Annotated[str, AfterValidator(_argument)]


class _Call(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    def pack(self) -> bytes:
        return codec.pack(self.model_dump())


class StatsRequest(_Call):
    pass


class _PodCall(_Call):
    namespace: Label
    pod: Subdomain
    container: Label | None = None  # None: the pod's default container
    session: Session  # the streaming session's id (``bus.subjects.node_session``)


class LogsRequest(_PodCall):
    follow: bool = False
    tail: Annotated[int, Field(ge=0)] | None = None
    previous: bool = False


class ExecRequest(_PodCall):
    command: Annotated[list[Argument], Field(min_length=1, max_length=MAX_COMMAND_ARGS)]
    stdin: bool = False
    tty: bool = False


class PortForwardRequest(_Call):
    """One forwarded connection: the agent connects to ``port`` on the pod's loopback, inside its network namespace,
    and relays the bytes on the session's subjects (``bus.relay``)."""
    namespace: Label
    pod: Subdomain
    port: Annotated[int, Field(ge=1, le=65535)]
    session: Session


REQUESTS: dict[str, type[_Call]] = {"logs": LogsRequest, "exec": ExecRequest, "portforward": PortForwardRequest,
                                    "stats": StatsRequest}


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def build(call: str, **fields: Any) -> Any:
    """The request of ``call`` with ``fields``; BadRequest (400) naming the first bad field otherwise."""
    try:
        return REQUESTS[call].model_validate(fields)
    except ValidationError as e:
        first = e.errors()[0]
        where = _path(first["loc"]) or call
        raise errors.bad_request(f"invalid {call} request: {where}: {first['msg']}") from None


def parse(call: str, data: bytes) -> Any:
    """The request of ``call`` in ``data`` as the agent receives it; BadRequest (400) when it is malformed."""
    try:
        raw = codec.unpack(data)
    except Exception:
        raw = None
    if not isinstance(raw, dict):
        raise errors.bad_request(f"the {call} request is not a msgpack map")
    return build(call, **{str(k): v for k, v in raw.items()})
