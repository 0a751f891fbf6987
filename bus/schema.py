"""Stored-schema versions: how an object's bytes in a bucket are laid out, and how a newer k8n reads older ones.

Every value an API server writes into a bucket carries the header ``K8n-Schema: N``; a value without it was written
by k8n 0.1 (schema 1). Readers (:mod:`bus.store`, :mod:`bus.history`, backups) decode every schema they know into
the API form, so what a component sees never depends on when an object was last written.

Schemas:

1. msgpack of the API object without ``metadata.resourceVersion`` (k8n 0.1).
2. as 1, except a Secret's ``data`` values are raw bytes (msgpack bin) instead of base64 text: a quarter smaller in
   the store and in every watch event, and no base64 pass per read. Readers give the API form back (base64 text).

An API server writes the cluster's *storage schema* (:data:`STORAGE_CONFIGMAP` in ``kube-system``, key
``schema``): a new cluster starts at :data:`CURRENT`; a cluster made by an older k8n stays at the schema it had
until ``k8n upgrade apply`` raises it, once every component on the bus reads the newer one (:data:`READERS`), and
rewrites every object still stored in an older schema (as Kubernetes' storage version migration does: a write of
the same object, so resourceVersions move on). A component older than the schema's reader would misread the
objects it watches, which is why the raise waits for the last of them.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Mapping

from bus import codec

HEADER = "K8n-Schema"
LEGACY = 1  # values without the header
CURRENT = 2
#: the oldest k8n release that reads each schema (a cluster's storage schema is raised only when every component
#: on the bus is at least this)
READERS = {1: "0.1.0", 2: "0.2.0"}
STORAGE_CONFIGMAP = "k8n-storage"  # in kube-system: data.schema
STORAGE_KEY = "schema"

SECRETS = "secrets"  # the bus name of the Secrets' bucket


class SchemaError(ValueError):
    """A stored value of a schema this k8n does not know (written by a newer release)."""


def of(headers: Mapping[str, str] | None) -> int:
    """The schema of a stored message, from its headers (no header: :data:`LEGACY`)."""
    raw = (headers or {}).get(HEADER)
    if not raw:
        return LEGACY
    try:
        return int(raw)
    except ValueError:
        raise SchemaError(f"stored value with an invalid {HEADER} header {raw!r}") from None


def headers_for(schema: int) -> dict[str, str]:
    """The headers a value written in ``schema`` carries (schema 1 has none, as k8n 0.1 wrote it)."""
    return {} if schema == LEGACY else {HEADER: str(schema)}


def encode(bucket: str, body: dict, schema: int) -> bytes:
    """``body`` (API form, no resourceVersion) as stored in ``schema``."""
    if schema >= 2 and bucket == SECRETS:
        body = _secret_to_bytes(body)
    return codec.pack(body)


def decode(bucket: str, data: bytes, headers: Mapping[str, str] | None) -> Any:
    """A stored value of any known schema, in API form. :class:`SchemaError` for a schema newer than this k8n."""
    schema = of(headers)
    if schema > CURRENT:
        raise SchemaError(f"a value in {bucket} is stored in schema {schema}, newer than this k8n reads ({CURRENT}): "
                          "upgrade this component")
    body = codec.unpack(data)
    if schema >= 2 and bucket == SECRETS and isinstance(body, dict):
        body = _secret_from_bytes(body)
    return body


def to_legacy(bucket: str, data: bytes, headers: Mapping[str, str] | None) -> bytes:
    """A stored value re-encoded in schema 1 (what any k8n release reads: backups keep this form)."""
    if of(headers) == LEGACY:
        return data
    return encode(bucket, decode(bucket, data, headers), LEGACY)


def _secret_to_bytes(body: dict) -> dict:
    data = body.get("data")
    if not isinstance(data, dict) or not data:
        return body
    raw: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, str):
            try:
                raw[k] = base64.b64decode(v, validate=True)
                continue
            except (binascii.Error, ValueError):
                pass  # not base64 (validation refuses such a Secret): kept as it is
        raw[k] = v
    return {**body, "data": raw}


def _secret_from_bytes(body: dict) -> dict:
    data = body.get("data")
    if isinstance(data, dict):
        body["data"] = {k: base64.b64encode(v).decode("ascii") if isinstance(v, (bytes, bytearray)) else v
                        for k, v in data.items()}
    return body


def parse_version(text: str) -> tuple[int, int, int]:
    """``"0.2.0"`` / ``"v0.2.0"`` -> ``(0, 2, 0)``; anything after the patch number (``-rc1``) is ignored.
    ValueError when it is not a version."""
    core = text.strip().lstrip("v").split("-", 1)[0].split("+", 1)[0]
    parts = core.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a k8n version: {text!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def readable_by(schema: int, version: str) -> bool:
    """Whether k8n ``version`` reads values stored in ``schema``."""
    return parse_version(version) >= parse_version(READERS[schema])
