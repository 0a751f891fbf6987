"""Levels, versions, namespace labels and the policy they give, as Kubernetes' ``pod-security-admission/api``
(``helpers.go``, ``constants.go``): the same parsing, the same error texts, the same fall-backs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from bus.errors import Cause
from bus.validation import Errors

PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)  # least to most strict

LABEL_PREFIX = "pod-security.kubernetes.io/"
ENFORCE, AUDIT, WARN = "enforce", "audit", "warn"
MODES = (ENFORCE, AUDIT, WARN)
AUDIT_VIOLATIONS_ANNOTATION = LABEL_PREFIX + "audit-violations"


def level_label(mode: str) -> str:
    return LABEL_PREFIX + mode


def version_label(mode: str) -> str:
    return LABEL_PREFIX + mode + "-version"


@dataclass(frozen=True, order=True)
class Version:
    """``v1.<minor>`` or ``latest`` (newer than every numbered version)."""

    minor: int = 0
    latest: bool = False

    def __str__(self) -> str:
        return "latest" if self.latest else f"v1.{self.minor}"

    def older(self, other: "Version") -> bool:
        if self.latest:
            return False
        return other.latest or self.minor < other.minor


LATEST = Version(latest=True)
_VERSION = re.compile(r"v1\.([0-9]|[1-9][0-9]*)")


class PolicyError(ValueError):
    pass


def parse_level(value: str) -> str:
    if value in LEVELS:
        return value
    raise PolicyError(f"must be one of {', '.join(LEVELS)}")


def parse_version(value: str) -> Version:
    if value == "latest":
        return LATEST
    m = _VERSION.fullmatch(value)
    if m is None:
        raise PolicyError('must be "latest" or "v1.x"')
    return Version(int(m.group(1)))


def compare_levels(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` is less, as or more strict than ``b``."""
    ia, ib = LEVELS.index(a), LEVELS.index(b)
    return (ia > ib) - (ia < ib)


@dataclass(frozen=True)
class LevelVersion:
    level: str
    version: Version = LATEST

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"


@dataclass(frozen=True)
class Policy:
    enforce: LevelVersion
    audit: LevelVersion
    warn: LevelVersion

    def get(self, mode: str) -> LevelVersion:
        return getattr(self, mode)


def policy_to_evaluate(labels: Mapping[str, str] | None, defaults: Policy) -> tuple[Policy, list[Cause]]:
    """The namespace's policy: its labels over ``defaults``, and a cause (field path
    ``metadata.labels[<label>]``) per label that does not parse. A bad enforce level counts as
    ``restricted`` (fail closed), a bad audit or warn level as ``privileged`` (fail open), a bad
    version as ``latest`` — Kubernetes' PolicyToEvaluate."""
    if not labels:
        return defaults, []
    errs = Errors()
    out = {m: defaults.get(m) for m in MODES}
    for mode in MODES:
        parsed = []
        for key, parse, value, fallback in (
                (level_label(mode), parse_level, out[mode].level, RESTRICTED if mode == ENFORCE else PRIVILEGED),
                (version_label(mode), parse_version, out[mode].version, LATEST)):
            if key in labels:
                try:
                    value = parse(str(labels[key]))
                except PolicyError as e:
                    errs.invalid(f"metadata.labels[{key}]", labels[key], str(e))
                    value = fallback
            parsed.append(value)
        out[mode] = LevelVersion(*parsed)
    return Policy(**out), errs.causes
