"""Request bodies in, JSON (or Table) responses out, errors as Kubernetes ``Status``."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import yaml
from aiohttp import web

from bus import codec, errors
from master.gateway import protobuf

JSON = "application/json"
TABLE_MEDIA = "application/json;as=Table;v=v1;g=meta.k8s.io"
MAX_BODY = 3 * 1024 * 1024  # as kube-apiserver


def warning_header(text: str) -> str:
    """RFC 7234 warning as kube-apiserver sends it: ``299 - "text"``."""
    clean = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return f'299 - "{clean}"'


_GO_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"),
               ("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))


def encode_json(body: Any) -> bytes:
    """JSON as kube-apiserver's serializer writes it (Go's ``json.Encoder``): compact, ``<``, ``>``, ``&``, U+2028
    and U+2029 escaped inside strings (they never occur outside one), and a trailing newline."""
    out = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE)
    for raw, escaped in _GO_ESCAPES:
        if raw in out:
            out = out.replace(raw, escaped)
    return out


def json_response(body: Any, status: int = 200, warnings: list[str] | None = None,
                  content_type: str = JSON) -> web.Response:
    resp = web.Response(body=encode_json(body), status=status)
    resp.headers["Content-Type"] = content_type
    for w in warnings or ():
        resp.headers.add("Warning", warning_header(w))
    return resp


def error_response(err: errors.ApiError, warnings: list[str] | None = None) -> web.Response:
    resp = json_response(err.status(), err.code, warnings)
    retry_after = (err.details or {}).get("retryAfterSeconds") if isinstance(err.details, dict) else None
    if isinstance(retry_after, int) and retry_after > 0:  # as kube-apiserver's ErrorNegotiated
        resp.headers["Retry-After"] = str(retry_after)
    return resp


def media_type(request: web.Request) -> str:
    return (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()


async def read_body(request: web.Request, yaml_ok: bool = False) -> Any:
    """The decoded body: JSON, a protobuf envelope, or (``yaml_ok``) YAML; Status errors otherwise."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise errors.too_large(f"the request body is {request.content_length} bytes, the limit is {MAX_BODY}")
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise errors.too_large(f"the request body is {len(raw)} bytes, the limit is {MAX_BODY}")
    if not raw.strip():
        return None
    mt = media_type(request)
    if mt == protobuf.MEDIA_TYPE or raw.startswith(protobuf.MAGIC):
        return protobuf.decode(raw)
    return await decode_body(raw, yaml_ok or mt in YAML_MEDIA)


YAML_MEDIA = ("application/yaml", "application/apply-patch+yaml")
YAML_INLINE = 64 * 1024  # a larger YAML body is decoded on a worker thread (pure-Python parsing is slow)


async def decode_body(raw: bytes, yaml_ok: bool) -> Any:
    """JSON (or, ``yaml_ok``, YAML) bytes → a value, bounded: invalid UTF-8, nesting deeper than the API
    server's limit and YAML alias bombs are 400s, refused before anything is expanded or recursed into."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise errors.bad_request(f"the request body is not valid UTF-8: {e}") from None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        if "depth limit" in str(e):
            raise errors.bad_request(_too_deep()) from None
        if not yaml_ok:
            raise errors.bad_request(f"the request body is not valid JSON: {e}") from None
    else:
        if codec.too_deep(value):
            raise errors.bad_request(_too_deep())
        return value
    try:
        if len(raw) <= YAML_INLINE:
            return codec.load_yaml(text)
        return await asyncio.to_thread(codec.load_yaml, text)
    except yaml.YAMLError as e:
        raise errors.bad_request(f"the request body is not valid YAML: {e}") from None


def _too_deep() -> str:
    return f"the request body is nested deeper than {codec.MAX_DEPTH} levels"
