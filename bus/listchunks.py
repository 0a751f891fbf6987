"""List chunking (``limit`` / ``continue``) as kube-apiserver does it: the pure parts.

A chunked list reads every page from one snapshot, the first page's resourceVersion (a bucket revision). The
continue token is Kubernetes' own format — unpadded URL-safe base64 of ``{"v":"meta.k8s.io/v1","rv":N,"start":K}``,
``K`` the last returned key plus ``"\\u0000"`` — where a key is the object's path below the listed collection:
``name`` inside one namespace, ``namespace/name`` across namespaces (so pages come in the order etcd's keys give).
The reading itself is :meth:`bus.store.NatsStore.list_page`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from bus import errors, subjects

TOKEN_VERSION = "meta.k8s.io/v1"
#: kube-apiserver's message for a token whose snapshot is gone (apiserver/pkg/storage/etcd3)
EXPIRED_MESSAGE = ("The provided continue parameter is too old to display a consistent list result. You can start a "
                   "new list without the continue parameter, or use the continue token in this response to retrieve "
                   "the remainder of the results. Continuing with the provided token results in an inconsistent list "
                   "- objects that were created, modified, or deleted between the time the first chunk was returned "
                   "and now may show up in the list.")
PAGE_BYTES = 4 * 1024 * 1024  # a page also ends once its objects take this much (replies cross the bus)
GET_BATCH = 500  # keys per batched direct get
KEY_SNAPSHOTS = 4  # chunked lists whose sorted keys a store remembers between chunks


@dataclass(frozen=True)
class Continue:
    revision: int  # the snapshot; -1: the latest (the token an expired list answers: an inconsistent remainder)
    start: str  # list keys >= start


def encode_continue(revision: int, last_key: str) -> str:
    body = json.dumps({"v": TOKEN_VERSION, "rv": revision, "start": last_key + "\x00"}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_continue(token: str) -> Continue:
    """The token's snapshot and start key; 400 with kube-apiserver's messages for a token it would refuse."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = json.loads(raw)
    except (binascii.Error, ValueError) as e:
        raise errors.bad_request(f"continue key is not valid: {e}") from None
    if not isinstance(doc, dict) or doc.get("v") != TOKEN_VERSION:
        raise errors.bad_request("continue key is not valid: server does not recognize this encoded version")
    rv, start = doc.get("rv"), doc.get("start")
    if not isinstance(rv, int) or isinstance(rv, bool) or rv == 0 or rv < -1:
        raise errors.bad_request(f"continue key is not valid: incorrect encoded start resourceVersion "
                                 f"(version {TOKEN_VERSION})")
    if not isinstance(start, str) or not start:
        raise errors.bad_request("continue key is not valid: encoded start key empty")
    if start.startswith("/") or ".." in start.split("/"):
        raise errors.bad_request(f"continue key is not valid: invalid start key {start!r}")
    return Continue(rv, start)


def list_key(namespace: str | None, name: str, across_namespaces: bool) -> str:
    """The object's key below the listed collection, in the order pages follow."""
    return f"{namespace}/{name}" if across_namespaces and namespace else name


def keys_of(bucket_subjects: list[str], resource: str, across_namespaces: bool) -> list[tuple[str, str]]:
    """``(list key, KV subject)`` of each subject, in list-key order."""
    out = []
    for subj in bucket_subjects:
        ns, name = subjects.parse_key(subjects.key_from_kv_subject(resource, subj))
        out.append((list_key(ns, name, across_namespaces), subj))
    out.sort()
    return out


def expired(start: str) -> errors.Gone:
    """410 Expired for a token whose snapshot is no longer kept, carrying (as kube-apiserver's does) a token for the
    inconsistent remainder: the same start key, read at the latest revision."""
    err = errors.Gone(410, EXPIRED_MESSAGE, "Expired")
    body = json.dumps({"v": TOKEN_VERSION, "rv": -1, "start": start}, separators=(",", ":"))
    err.metadata = {"continue": base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")}
    return err


UNLIMITED = 1 << 62  # a continued list without a limit reads the rest


def chunking(options: dict) -> tuple[int, str | None]:
    """``(limit, continue token)`` of a list request; limit 0 when it asks for everything. As kube-apiserver:
    ``resourceVersion=0`` lists without chunking (served from its cache there), and a continue token may not come
    with a resourceVersion."""
    limit, token = options.get("limit"), options.get("continue") or None
    if isinstance(limit, str):
        try:
            limit = int(limit)
        except ValueError:
            raise errors.bad_request(f"invalid limit {limit!r}: must be an integer") from None
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
        raise errors.bad_request("limit must be an integer")
    if token is not None and not isinstance(token, str):
        raise errors.bad_request("continue must be a string")
    rv = options.get("resourceVersion")
    if token and rv not in (None, ""):
        raise errors.bad_request("specifying resource version is not allowed when using continue")
    if str(rv) == "0" and not token:
        return 0, None
    return max(0, limit or 0), token


def chunk_body(res: Any, items: list[dict], revision: int, more: str | None) -> dict:
    """The List a chunk answers: its snapshot's resourceVersion and, when more follows, the continue token."""
    meta = {"resourceVersion": str(revision), **({"continue": more} if more else {})}
    return {"apiVersion": res.api_version, "kind": f"{res.kind}List", "metadata": meta, "items": items}
