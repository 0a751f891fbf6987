"""The object-metadata vocabulary every component shares, on plain (stored-form) dicts — what apimachinery's
metav1 and util packages give Kubernetes' Go code:

- API times: :data:`RFC3339` (``metav1.Time``, to the second) and :data:`RFC3339_MICRO` (``metav1.MicroTime``),
  :func:`format_time` / :func:`now` to write them, :func:`parse_time` / :func:`timestamp` to read them
  (absent or unreadable → None, never an exception).
- Conditions: :func:`get_condition`, :func:`set_condition` (lastTransitionTime kept while the status is).
- Names: :func:`generate_name` (``names.SimpleNameGenerator``), :func:`safe_encode` (``rand.SafeEncodeString``).
- :func:`deep_copy` of stored data, :data:`TERMINAL_POD_PHASES`, and read-only accessors (:func:`meta`,
  :func:`name_of`, :func:`namespace_of`, :func:`uid_of`, :func:`labels_of`, :func:`key_of`).
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timezone
from typing import Any, overload

from bus import codec, subjects

# ---- time ----------------------------------------------------------------------------------------

RFC3339 = "%Y-%m-%dT%H:%M:%SZ"  # metav1.Time: UTC, to the second
RFC3339_MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"  # metav1.MicroTime: UTC, to the microsecond (leases)


def format_time(t: float | datetime | None = None, *, micro: bool = False) -> str:
    """An API timestamp (UTC) of epoch seconds or a datetime (naive means UTC); the current time when ``t`` is
    None. Seconds are truncated, as Kubernetes' ``metav1.Time`` serialises; ``micro`` keeps microseconds."""
    if t is None:
        dt = datetime.now(timezone.utc)
    elif isinstance(t, datetime):
        dt = t.astimezone(timezone.utc) if t.tzinfo else t
    else:
        dt = datetime.fromtimestamp(t, timezone.utc)
    return dt.strftime(RFC3339_MICRO if micro else RFC3339)


_now_cache: tuple[int, str] = (0, "")


def now() -> str:
    """The current time as an API timestamp (``metav1.Now()``, to the second; cached for the current second)."""
    global _now_cache
    t = int(time.time())
    if _now_cache[0] != t:
        _now_cache = (t, format_time(t))
    return _now_cache[1]


def micro_now() -> str:
    """The current time as ``metav1.MicroTime``, e.g. ``2026-01-02T03:04:05.123456Z``."""
    return format_time(micro=True)


def parse_time(ts: Any) -> datetime | None:
    """An aware datetime of an RFC 3339 time (with or without a fraction; no offset means UTC); None when
    ``ts`` is absent, not a string or unreadable."""
    if not ts or not isinstance(ts, str):
        return None
    try:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


@overload
def timestamp(ts: Any) -> float | None: ...
@overload
def timestamp(ts: Any, default: float) -> float: ...


def timestamp(ts: Any, default: float | None = None) -> float | None:
    """Epoch seconds of an RFC 3339 time; ``default`` when absent or unreadable."""
    t = parse_time(ts)
    return t.timestamp() if t is not None else default


# ---- conditions ----------------------------------------------------------------------------------


def get_condition(obj: dict | None, type_: str) -> dict | None:
    """The condition of ``type_`` in ``obj.status.conditions``, or None."""
    conditions = (((obj or {}).get("status") or {}).get("conditions")) or ()
    return next((c for c in conditions if c.get("type") == type_), None)


def set_condition(conditions: list[dict], cond: dict, now: str | None = None) -> list[dict]:
    """``conditions`` with ``cond`` in place of the one of its type (appended when there is none). The old
    lastTransitionTime is kept while the status stays the same; otherwise it is ``now`` when given, else
    ``cond``'s own."""
    out = []
    placed = False
    for c in conditions:
        if c.get("type") == cond["type"]:
            if c.get("status") == cond.get("status") and c.get("lastTransitionTime"):
                cond = {**cond, "lastTransitionTime": c["lastTransitionTime"]}
            elif now is not None:
                cond = {**cond, "lastTransitionTime": now}
            out.append(cond)
            placed = True
        else:
            out.append(c)
    if not placed:
        out.append(cond if now is None else {**cond, "lastTransitionTime": now})
    return out


# ---- names ---------------------------------------------------------------------------------------

_names = random.Random()  # seeded from os.urandom
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand: no vowels, no look-alikes
GENERATED_SUFFIX_LENGTH = 5


def generate_name(prefix: str) -> str:
    """``generateName``'s name: ``prefix`` plus five random characters of :data:`NAME_ALPHABET` (not secret: as
    Kubernetes, a fast non-cryptographic generator, seeded from the OS)."""
    return prefix + "".join(_names.choices(NAME_ALPHABET, k=GENERATED_SUFFIX_LENGTH))


def safe_encode(data: str | bytes) -> str:
    """``rand.SafeEncodeString``: each byte mapped into :data:`NAME_ALPHABET` (deterministic name suffixes)."""
    raw = data.encode() if isinstance(data, str) else data
    return "".join(NAME_ALPHABET[b % len(NAME_ALPHABET)] for b in raw)


# ---- objects -------------------------------------------------------------------------------------

TERMINAL_POD_PHASES = frozenset({"Succeeded", "Failed"})


def deep_copy(obj: Any) -> Any:
    """A deep copy of stored (msgpack-plain) data: a msgpack round trip beats copy.deepcopy."""
    return codec.unpack(codec.pack(obj))


def meta(obj: dict) -> dict:
    """``obj.metadata`` ({} when absent); read-only."""
    return obj.get("metadata") or {}


def name_of(obj: dict) -> str | None:
    return meta(obj).get("name")


def namespace_of(obj: dict) -> str | None:
    return meta(obj).get("namespace")


def uid_of(obj: dict) -> str | None:
    return meta(obj).get("uid")


def labels_of(obj: dict) -> dict:
    """``obj.metadata.labels`` ({} when absent); read-only."""
    return meta(obj).get("labels") or {}


def key_of(obj: dict) -> str:
    """The object's store key (``<namespace>.<name>``, or ``<name>`` when cluster-scoped)."""
    m = meta(obj)
    return subjects.object_key(m.get("namespace"), m.get("name", ""))


def parse_duration(text: str) -> float:
    """Seconds of a Go duration as kubectl's flags take it (``30s``, ``5m``, ``1h30m``, ``250ms``) or of a bare
    number of seconds; ValueError otherwise."""
    import re

    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ValueError(f'time: invalid duration "{text}"')
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(a) * scale[b] for a, b in parts)


def format_duration(seconds: float) -> str:
    """A duration as Go's ``time.Duration.String`` (and ``metav1.Duration`` in JSON) writes it: ``10s``, ``1m30s``,
    ``1h0m0s``, ``10.006s``, ``250ms``, ``0s``."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    if ns < 10**9:
        for unit, size, digits in (("ms", 10**6, 6), ("µs", 10**3, 3), ("ns", 1, 0)):
            if ns >= size:
                whole, frac = divmod(ns, size)
                return f"{sign}{whole}{f'.{frac:0{digits}d}'.rstrip('0') if frac else ''}{unit}"
    secs, frac = divmod(ns, 10**9)
    hours, rest = divmod(secs, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs}{f'.{frac:09d}'.rstrip('0') if frac else ''}s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    return f"{sign}{minutes}m{text}" if minutes else f"{sign}{text}"
