"""Kubernetes ``resource.Quantity``: ``"250m"``, ``"128Mi"``, ``"1.5"``, ``"1e3"``, ``2``.

Quantities are kept as the user wrote them in objects; this module turns them into numbers when k8n needs one.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

_SUFFIX = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}
_RE = re.compile(
    r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]{1,3})?"
)
REGEX_MESSAGE = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
_MAX_LEN = 100


@lru_cache(maxsize=4096)
def _parse_str(s: str) -> Decimal:
    m = _RE.fullmatch(s) if len(s) <= _MAX_LEN else None
    if m is None:
        raise ValueError(REGEX_MESSAGE)
    number, suffix = m.group(1), m.group(2) or ""
    value = Decimal(number)
    if suffix in _SUFFIX:
        return value * _SUFFIX[suffix]
    return value.scaleb(int(suffix[1:]))  # exponent form: 1e3, 12E-3


def parse_quantity(q: str | int | float | Decimal) -> Decimal:
    """Parse a quantity into an exact ``Decimal``; ``ValueError`` with a Kubernetes-style message if it is not one."""
    if type(q) is str:  # the common case first
        return _parse_str(q)
    if isinstance(q, bool):
        raise ValueError(f"{q!r} is not a quantity")
    if isinstance(q, Decimal):
        return q
    if isinstance(q, int):
        return Decimal(q)
    if isinstance(q, float):
        if not math.isfinite(q):
            raise ValueError(f"{q!r} is not a finite quantity")
        return Decimal(repr(q))
    if isinstance(q, str):
        return _parse_str(q)
    raise ValueError(f"{type(q).__name__} is not a quantity")


def is_quantity(q: object) -> bool:
    try:
        parse_quantity(q)  # type: ignore[arg-type]
    except (ValueError, InvalidOperation):
        return False
    return True


def _ceil(d: Decimal) -> int:
    return int(d.to_integral_value(rounding="ROUND_CEILING"))


def cpu_millis(q: str | int | float | Decimal) -> int:
    """Millicores, rounded up as ``Quantity.MilliValue()`` does: ``"250m"`` -> 250, ``1`` -> 1000."""
    return _ceil(parse_quantity(q) * 1000)


def memory_bytes(q: str | int | float | Decimal) -> int:
    """Bytes, rounded up as ``Quantity.Value()`` does: ``"128Mi"`` -> 134217728."""
    return _ceil(parse_quantity(q))


_BINARY = [("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)]
_DECIMAL = [("E", 18), ("P", 15), ("T", 12), ("G", 9), ("M", 6), ("k", 3), ("", 0), ("m", -3), ("u", -6), ("n", -9)]


def format_quantity(value: Decimal | int | float | str, binary: bool = False) -> str:
    """Canonical form: the largest suffix that keeps an integer (``1536Mi`` -> ``"1536Mi"``, 0.1 -> ``"100m"``).

    ``binary=True`` prefers Ki/Mi/Gi… for whole numbers (memory); sub-unit values always use decimal suffixes and
    are rounded up to nano units, as Kubernetes does.
    """
    d = parse_quantity(value) if not isinstance(value, Decimal) else value
    sign = "-" if d < 0 else ""
    d = abs(d)
    if d == 0:
        return "0"
    if binary and d == d.to_integral_value():
        n = int(d)
        for suffix, size in _BINARY:
            if n % size == 0:
                return f"{sign}{n // size}{suffix}"
        return f"{sign}{n}"
    nanos = _ceil(d.scaleb(9))
    for suffix, exp in _DECIMAL:
        unit = 10 ** (exp + 9)
        if nanos % unit == 0:
            return f"{sign}{nanos // unit}{suffix}"
    return f"{sign}{nanos}n"  # pragma: no cover - the n row always divides
