"""Codecs: msgpack between components, orjson/YAML at the edges."""

from __future__ import annotations

from typing import Any

import msgpack
import orjson
import yaml

# The bus is JSON-compatible data only (dicts, lists, str, int, float, bool, None).


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def to_json(obj: Any, pretty: bool = False) -> bytes:
    opts = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps(obj, option=opts | orjson.OPT_NON_STR_KEYS)


def from_json(data: bytes | str) -> Any:
    return orjson.loads(data)


def is_json(data: bytes) -> bool:
    """A request whose first non-blank byte is '{' is JSON (a msgpack map never starts so)."""
    stripped = data.lstrip()
    return stripped[:1] == b"{"


def decode(data: bytes) -> tuple[Any, bool]:
    """Decode a request payload; returns (value, was_json). Raises ValueError on garbage."""
    if is_json(data):
        try:
            return orjson.loads(data), True
        except orjson.JSONDecodeError as e:
            raise ValueError(f"invalid JSON: {e}") from None
    try:
        return unpack(data), False
    except Exception as e:  # msgpack raises several types on garbage
        raise ValueError(f"invalid msgpack: {e}") from None


def encode(obj: Any, as_json: bool) -> bytes:
    return to_json(obj) if as_json else pack(obj)


def load_yaml_documents(text: str) -> list[Any]:
    """All non-empty documents of a multi-document YAML (or JSON) text."""
    return [d for d in yaml.safe_load_all(text) if d is not None]


def to_yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)
