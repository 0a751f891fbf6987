"""Just enough of Kubernetes' protobuf encoding to read what kubectl's typed client sends.

A body is ``k8s\\0`` followed by a ``runtime.Unknown`` message (1: TypeMeta{1: apiVersion, 2: kind},
2: raw — the object's own message). kubectl sends protobuf for ``create namespace`` (a Namespace)
and ``drain`` (an Eviction with DeleteOptions); those kinds are decoded into the JSON shape, others
are refused (415: send JSON).
"""

from __future__ import annotations

from typing import Any, Iterator

from bus import errors

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"

# message schemas: field number -> (json name, type); type is "str", "int", "bool", "map" (string
# map entries), a schema name (a nested message), or "[...]" for repeated.
_SCHEMAS: dict[str, dict[int, tuple[str, str]]] = {
    "TypeMeta": {1: ("apiVersion", "str"), 2: ("kind", "str")},
    "Unknown": {1: ("typeMeta", "TypeMeta"), 2: ("raw", "bytes"), 3: ("contentEncoding", "str"),
                4: ("contentType", "str")},
    "ObjectMeta": {1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"), 5: ("uid", "str"),
                   6: ("resourceVersion", "str"), 11: ("labels", "map"), 12: ("annotations", "map"),
                   14: ("finalizers", "[str]")},
    "Preconditions": {1: ("uid", "str"), 2: ("resourceVersion", "str")},
    "DeleteOptions": {1: ("gracePeriodSeconds", "int"), 2: ("preconditions", "Preconditions"),
                      3: ("orphanDependents", "bool"), 4: ("propagationPolicy", "str"), 5: ("dryRun", "[str]")},
    "NamespaceSpec": {1: ("finalizers", "[str]")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec")},
    "Eviction": {1: ("metadata", "ObjectMeta"), 2: ("deleteOptions", "DeleteOptions")},
}
KINDS = ("Namespace", "Eviction", "DeleteOptions")


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, varint value or length-delimited bytes); fixed-width fields are skipped."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
            yield num, v
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated field")
            yield num, buf[i:i + n]
            i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    if i != len(buf):
        raise ValueError("truncated message")


def _value(typ: str, raw: int | bytes) -> Any:
    if typ == "int":
        if not isinstance(raw, int):
            raise ValueError("expected a varint")
        return raw - (1 << 64) if raw >= 1 << 63 else raw
    if typ == "bool":
        return bool(raw)
    if not isinstance(raw, bytes):
        raise ValueError("expected a length-delimited field")
    if typ == "str":
        return raw.decode()
    if typ == "bytes":
        return raw
    return decode_message(typ, raw)


def decode_message(schema: str, buf: bytes) -> dict:
    fields = _SCHEMAS[schema]
    out: dict[str, Any] = {}
    for num, raw in _fields(buf):
        if num not in fields:
            continue
        name, typ = fields[num]
        if typ == "map":
            if not isinstance(raw, bytes):
                raise ValueError("expected a map entry")
            entry = {n: v.decode() for n, v in _fields(raw) if isinstance(v, bytes)}
            out.setdefault(name, {})[entry.get(1, "")] = entry.get(2, "")
        elif typ.startswith("["):
            out.setdefault(name, []).append(_value(typ[1:-1], raw))
        else:
            out[name] = _value(typ, raw)
    return out


def decode(body: bytes) -> dict:
    """The JSON form of a protobuf-encoded object; BadRequest/415 Status errors otherwise."""
    if not body.startswith(MAGIC):
        raise errors.bad_request("the protobuf body does not start with the k8s envelope")
    try:
        unknown = decode_message("Unknown", body[len(MAGIC):])
        tm = unknown.get("typeMeta") or {}
        kind = tm.get("kind", "")
        if kind not in KINDS:
            raise errors.ApiError(415, f"k8n reads protobuf only for {', '.join(KINDS)}; send {kind or 'it'} "
                                       "as application/json", "UnsupportedMediaType")
        obj = decode_message(kind, unknown.get("raw") or b"")
    except (ValueError, UnicodeDecodeError) as e:
        raise errors.bad_request(f"the protobuf body could not be decoded: {e}") from None
    return {"kind": kind, "apiVersion": tm.get("apiVersion", ""), **obj}
