"""Cron schedules as Kubernetes reads a CronJob's ``spec.schedule``: robfig/cron v3's ``ParseStandard``.

``parse(spec)`` accepts what ``ParseStandard`` accepts — five fields (minute hour day-of-month month day-of-week,
with ``*``, ``?``, ranges, steps, lists and the names ``jan``…``dec``, ``sun``…``sat``), the descriptors
``@yearly`` ``@annually`` ``@monthly`` ``@weekly`` ``@daily`` ``@midnight`` ``@hourly`` and ``@every <duration>``,
and a leading ``TZ=``/``CRON_TZ=`` zone — and raises ``ValueError`` with robfig's message otherwise
(``expected exactly 5 fields, found 1: [error]``), which the API server reports as Kubernetes does. Anything
robfig refuses is refused here even where croniter would take it (seconds fields, ``L``, ``#``, day-of-week 7).

A parsed schedule's ``next(t)`` (the first activation strictly after ``t``, epoch seconds) is croniter's, in the
schedule's zone (daylight-saving changes included), on an expression rebuilt from the parsed fields; ``@every``
is a constant delay, as robfig's ``ConstantDelaySchedule``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

_MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
_DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
# (min, max, names) of minute, hour, day of month, month, day of week
_BOUNDS: tuple[tuple[int, int, dict[str, int] | None], ...] = (
    (0, 59, None), (0, 23, None), (1, 31, None), (1, 12, _MONTHS), (0, 6, _DAYS))
_DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
                "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_EVERY = "@every "
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def load_zone(name: str) -> tzinfo:
    """Go's ``time.LoadLocation``: ``""`` and ``UTC`` are UTC; an unknown name raises ``ValueError`` with Go's
    message (``unknown time zone Mars/Olympus``)."""
    if name in ("", "UTC"):
        return timezone.utc
    if name == "Local":
        return local_zone()
    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name}") from None


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_zone() -> tzinfo:
    """The zone of this process (``TZ``, else ``/etc/localtime``), as a schedule without ``timeZone`` uses it in
    kube-controller-manager; UTC when neither names one."""
    for candidate in (os.environ.get("TZ", "").lstrip(":"), _localtime_name()):
        if candidate:
            try:
                return _zone(candidate)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                continue
    return timezone.utc


def _localtime_name() -> str:
    try:
        target = str(Path("/etc/localtime").resolve())
    except OSError:
        return ""
    return target.split("/zoneinfo/", 1)[1] if "/zoneinfo/" in target else ""


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: a croniter expression in ``zone``, or a constant ``every`` seconds."""

    expression: str = ""
    zone: tzinfo = timezone.utc
    every: float = 0.0

    def next(self, t: float) -> float:
        """The first activation strictly after ``t`` (epoch seconds)."""
        if self.every:
            return float(int(t)) + self.every  # robfig: t + delay, less t's fraction of a second
        start = datetime.fromtimestamp(int(t), self.zone)  # robfig rounds down to the second, then looks after it
        return croniter(self.expression, start).get_next(datetime).timestamp()


def parse(spec: str, zone: tzinfo | None = None) -> Schedule:
    """``spec`` as robfig/cron's ``ParseStandard`` reads it; ``zone`` is the default location (the controller's)."""
    if not spec:
        raise ValueError("empty spec string")
    loc = zone if zone is not None else timezone.utc
    if spec.startswith(("TZ=", "CRON_TZ=")):
        i, eq = spec.find(" "), spec.find("=")
        name = spec[eq + 1:i] if i >= 0 else spec[eq + 1:]
        try:
            loc = load_zone(name)
        except ValueError as exc:
            raise ValueError(f"provided bad location {name}: {exc}") from None
        spec = spec[i:].strip() if i >= 0 else ""
    if spec.startswith("@"):
        if spec in _DESCRIPTORS:
            return Schedule(_DESCRIPTORS[spec], loc)
        if spec.startswith(_EVERY):
            text = spec[len(_EVERY):]
            try:
                seconds = parse_duration(text)
            except ValueError as exc:
                raise ValueError(f"failed to parse duration {spec}: {exc}") from None
            return Schedule(every=max(float(int(seconds)), 1.0), zone=loc)  # robfig: at least 1s, whole seconds
        raise ValueError(f"unrecognized descriptor: {spec}")
    fields = spec.split()
    if len(fields) != 5:
        raise ValueError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    parts = []
    for i, (field, (lo, hi, names)) in enumerate(zip(fields, _BOUNDS)):
        values, star = _field(field, lo, hi, names)
        # day of month and day of week keep "*" so that croniter applies robfig's rule (restricted in both: either)
        parts.append("*" if star and i in (2, 4) else ",".join(map(str, sorted(values))))
    return Schedule(" ".join(parts), loc)


def validate(spec: str) -> str | None:
    """robfig's error message for ``spec``, or None when it parses."""
    try:
        parse(spec)
    except ValueError as exc:
        return str(exc)
    return None


def _field(field: str, lo: int, hi: int, names: dict[str, int] | None) -> tuple[set[int], bool]:
    """robfig's getField: a comma-separated list of ranges; (the values, whether it is a star)."""
    values: set[int] = set()
    star = False
    for expr in (e for e in field.split(",") if e):
        got, is_star = _range(expr, lo, hi, names)
        values |= got
        star = star or is_star
    return values, star


def _range(expr: str, lo: int, hi: int, names: dict[str, int] | None) -> tuple[set[int], bool]:
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    single = len(low_high) == 1
    star = False
    if low_high[0] in ("*", "?"):
        start, end, star = lo, hi, True
    else:
        start = _int_or_name(low_high[0], names)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _int_or_name(low_high[1], names)
        else:
            raise ValueError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _int(range_and_step[1])
        if single:  # "N/step" means "N-max/step"
            end = hi
        if step > 1:
            star = False
    else:
        raise ValueError(f"too many slashes: {expr}")
    if start < lo:
        raise ValueError(f"beginning of range ({start}) below minimum ({lo}): {expr}")
    if end > hi:
        raise ValueError(f"end of range ({end}) above maximum ({hi}): {expr}")
    if start > end:
        raise ValueError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise ValueError(f"step of range should be a positive number: {expr}")
    return set(range(start, end + 1, step)), star


def _int_or_name(expr: str, names: dict[str, int] | None) -> int:
    if names is not None and expr.lower() in names:
        return names[expr.lower()]
    return _int(expr)


def _int(expr: str) -> int:
    """Go's strconv.Atoi with robfig's messages."""
    if not re.fullmatch(r"[+-]?[0-9]+", expr):
        raise ValueError(f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": invalid syntax')
    num = int(expr)
    if num < 0:
        raise ValueError(f"negative number ({num}) not allowed: {expr}")
    return num


def parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration`` (``1h30m``, ``90s``, ``1.5h``) in seconds; its message when it is not one."""
    s = text
    sign = 1.0
    if s[:1] in ("-", "+"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total, pos = 0.0, 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m or m.group(1) in ("", "."):
            if re.match(r"[0-9.]+$", s[pos:]):
                raise ValueError(f'time: missing unit in duration "{text}"')
            if re.match(r"[0-9.]+", s[pos:]):
                unit = re.match(r"[0-9.]+([^0-9.]*)", s[pos:]).group(1)  # type: ignore[union-attr]
                raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return sign * total
