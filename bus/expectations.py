"""Expectations (Kubernetes' UIDTrackingControllerExpectations): a controller records the creates
and deletes it just issued and skips acting for that owner until its informer has observed them
(or they have expired), so a lagging cache never causes duplicate creates or deletes.

Typical use in a ReplicaSet-style reconcile::

    if not exp.satisfied(key):
        return                                   # wait for the cache to catch up
    exp.expect_creations(key, n)
    for _ in range(n):
        try: await client.create(pod)
        except ApiError: exp.creation_observed(key)   # it will never be observed
    # informer handlers: on_add(pod) -> exp.creation_observed(owner_key)
    #                    on_delete(pod) -> exp.deletion_observed(owner_key, pod uid)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

DEFAULT_TTL = 300.0  # seconds; Kubernetes' ExpectationsTimeout


@dataclass
class _Expectation:
    adds: int
    uids: set[str] = field(default_factory=set)
    timestamp: float = 0.0


class Expectations:
    def __init__(self, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._exp: dict[str, _Expectation] = {}

    def expect_creations(self, key: str, n: int) -> None:
        """Replace the pending creates for ``key`` with ``n`` (pending deletes are kept)."""
        e = self._exp.get(key)
        uids = e.uids if e else set()
        self._exp[key] = _Expectation(n, uids, self.clock())

    def expect_deletions(self, key: str, uids: Iterable[str]) -> None:
        """Replace the pending deletes for ``key`` with these object UIDs."""
        e = self._exp.get(key)
        self._exp[key] = _Expectation(e.adds if e else 0, set(uids), self.clock())

    def creation_observed(self, key: str) -> None:
        self.lower_expectations(key, adds=1)

    def deletion_observed(self, key: str, uid: str) -> None:
        self.lower_expectations(key, uids=(uid,))

    def lower_expectations(self, key: str, adds: int = 0, uids: Iterable[str] = ()) -> None:
        """Count ``adds`` creates and these deletes as done (also for failed API calls)."""
        e = self._exp.get(key)
        if e is None:
            return
        e.adds = max(0, e.adds - adds)
        e.uids.difference_update(uids)

    def pending(self, key: str) -> tuple[int, set[str]]:
        """``(creates still expected, UIDs whose delete is still expected)``."""
        e = self._exp.get(key)
        return (e.adds, set(e.uids)) if e else (0, set())

    def satisfied(self, key: str) -> bool:
        """True when nothing is pending for ``key``, nothing was ever recorded, or the record is
        older than the TTL (a lost event must not block the controller forever)."""
        e = self._exp.get(key)
        if e is None:
            return True
        if e.adds <= 0 and not e.uids:
            return True
        return self.clock() - e.timestamp > self.ttl

    def delete(self, key: str) -> None:
        """Forget ``key`` (its owner was deleted)."""
        self._exp.pop(key, None)
