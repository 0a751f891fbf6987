"""Checks, their versions, and the evaluator (Kubernetes' ``policy/checks.go`` and ``registry.go``).

A check has an ID, a level and one or more versions, each a pure ``fn(metadata, spec) -> CheckResult`` valid from
its minimum ``v1.<minor>`` until the next. Evaluating ``level:version`` runs, in a fixed order (baseline IDs sorted,
then restricted IDs sorted), the baseline checks, and for ``restricted`` also the restricted ones — minus the
baseline checks a restricted check overrides at that version (hostPath volumes by the volume-type check, ...).
A version newer than every check's newest (and ``latest``) evaluates as that newest version."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from master.apiserver.podsecurity.api import BASELINE, PRIVILEGED, RESTRICTED, LevelVersion, Version


@dataclass(frozen=True)
class CheckResult:
    allowed: bool
    reason: str = ""
    detail: str = ""


ALLOWED = CheckResult(True)
CheckFn = Callable[[dict, dict], CheckResult]  # (pod metadata, pod spec), both camelCase dicts


@dataclass(frozen=True)
class VersionedCheck:
    minimum: int  # the v1.<minor> this version of the check applies from
    fn: CheckFn
    overrides: tuple[str, ...] = ()  # baseline check IDs this (restricted) version replaces


@dataclass(frozen=True)
class Check:
    id: str
    level: str
    versions: tuple[VersionedCheck, ...]


@dataclass
class Aggregate:
    """What a pod got from one level:version: allowed, and each failed check's reason and detail."""

    allowed: bool = True
    reasons: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def forbidden_reason(self) -> str:
        return ", ".join(self.reasons)

    def forbidden_detail(self) -> str:
        """``reason (detail), reason, ...`` — what the 403 and the warnings say."""
        return ", ".join(f"{r} ({d})" if d else r for r, d in zip(self.reasons, self.details))


def aggregate(results: Iterable[CheckResult]) -> Aggregate:
    out = Aggregate()
    for r in results:
        if not r.allowed:
            out.allowed = False
            out.reasons.append(r.reason)
            out.details.append(r.detail)
    return out


class Evaluator:
    def __init__(self, checks: Iterable[Check]) -> None:
        checks = list(checks)
        ids = [c.id for c in checks]
        if len(set(ids)) != len(ids):
            raise ValueError("check IDs must be unique")
        for c in checks:
            if c.level not in (BASELINE, RESTRICTED) or not c.versions:
                raise ValueError(f"check {c.id}: a baseline or restricted check needs at least one version")
            mins = [v.minimum for v in c.versions]
            if mins != sorted(set(mins)):
                raise ValueError(f"check {c.id}: versions must be strictly increasing")
            if c.level != RESTRICTED and any(v.overrides for v in c.versions):
                raise ValueError(f"check {c.id}: only restricted checks may override")
        self.max_minor = max(c.versions[-1].minimum for c in checks)
        order = sorted(c.id for c in checks if c.level == BASELINE) + sorted(
            c.id for c in checks if c.level == RESTRICTED)
        by_id = {c.id: c for c in checks}
        self._checks = [by_id[i] for i in order]
        self._cache: dict[tuple[str, int], list[CheckFn]] = {}

    @property
    def max_version(self) -> Version:
        return Version(self.max_minor)

    def _minor(self, version: Version) -> int:
        return self.max_minor if version.latest else min(version.minor, self.max_minor)

    def fns(self, level: str, minor: int) -> list[CheckFn]:
        key = (level, minor)
        if key not in self._cache:
            active: list[tuple[Check, VersionedCheck]] = []
            for c in self._checks:
                if level == BASELINE and c.level != BASELINE:
                    continue
                v = next((v for v in reversed(c.versions) if v.minimum <= minor), None)
                if v is not None:
                    active.append((c, v))
            overridden = {o for c, v in active if c.level == RESTRICTED for o in v.overrides}
            self._cache[key] = [v.fn for c, v in active if c.id not in overridden]
        return self._cache[key]

    def evaluate(self, lv: LevelVersion, metadata: dict, spec: dict) -> Aggregate:
        if lv.level == PRIVILEGED:
            return Aggregate()
        return aggregate(fn(metadata, spec) for fn in self.fns(lv.level, self._minor(lv.version)))
