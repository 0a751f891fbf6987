"""ResourceQuota admission (``k8s.io/apiserver/pkg/admission/plugin/resourcequota``), with compare-and-set.

Before a create (and an update of a Service or PersistentVolumeClaim, whose usage can grow) is written, every
quota of the namespace whose ``status.hard`` limits something the object uses (and whose scopes it is in) is
charged: its ``status.used`` is raised by the object's usage with a compare-and-set on the quota's
resourceVersion, re-read and retried on a conflict, so concurrent creates — on one API server or several — can
never take a quota past ``hard``. A create that would is a 403 worded as Kubernetes words it
(``exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2``); so is a pod without the requests or
limits a quota tracks (``failed quota: q: must specify limits.cpu for: app``) and one charged against a quota
whose usage the controller has not computed yet (``status unknown for quota: q, resources: pods``).

Requests waiting on a namespace's quotas are charged in batches, as Kubernetes' quota evaluator does: checked in
turn against the quotas as the earlier ones leave them, each quota written once per batch; a request a quota
refuses after another of its quotas was charged has that charge given back. If the object's write then fails, the
charge is taken back too; the resourcequota controller
(``master/controllers/resourcequota.py``) recomputes usage from the objects anyway, releasing what deleted or
finished objects used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import AsyncIterator

from bus import errors
from bus.meta import deep_copy
from bus.quota import (
    Usage, add, exceeded, format_list, mask, matching_resources, non_zero, parse_list, pod_constraints, pretty,
    quota_matches, subtract_non_negative, usage,
)
from bus.resources import Resource
from bus.store import NatsStore
from master.apiserver.listers import CachedLister

log = logging.getLogger(__name__)

PLURAL = "resourcequotas"
CAS_ATTEMPTS = 40
# Kinds whose updates can change what they use (Kubernetes' evaluators that handle Update)
UPDATE_CHARGED = ("Service", "PersistentVolumeClaim")


def _name(q: dict) -> str:
    return q["metadata"]["name"]


def _status(q: dict, field: str) -> dict:
    return (q.get("status") or {}).get(field) or {}


def relevant(res: Resource, obj: dict, quotas: list[dict]) -> list[dict]:
    """The quotas that limit ``obj`` (``evaluator.Matches`` on ``status.hard``); a 403 for a pod missing what one
    of them requires it to state, or a quota whose usage is not known yet."""
    name = (obj.get("metadata") or {}).get("name") or ""
    out = []
    for q in quotas:
        if not quota_matches(q, res, obj):
            continue
        restricted = matching_resources(res, _status(q, "hard"))
        if res.kind == "Pod" and (msg := pod_constraints(restricted, obj)):
            raise errors.forbidden(res.plural, name, f"failed quota: {_name(q)}: {msg}", res.group)
        used = _status(q, "used")
        if any(r not in used for r in restricted):
            raise errors.forbidden(res.plural, name, f"status unknown for quota: {_name(q)}, resources: "
                                                     f"{','.join(sorted(restricted))}", res.group)
        out.append(q)
    return out


def delta_of(res: Resource, obj: dict, old: dict | None, now: datetime | None = None) -> Usage:
    """What writing ``obj`` (over ``old``, for an update) adds to usage: nothing it already used, no zeros."""
    delta = non_zero(usage(res, obj, now))
    if old is not None:
        delta = non_zero(subtract_non_negative(delta, usage(res, old, now)))
    return delta


def charge(res: Resource, obj: dict, quota: dict, delta: Usage) -> tuple[dict | None, Usage]:
    """(the quota with ``delta`` added to ``status.used``, or None when it limits none of it; what was added);
    a 403 when that goes past ``status.hard``."""
    hard_raw = _status(quota, "hard")
    hard = parse_list(hard_raw)
    requested = mask(delta, hard)
    if not requested:
        return None, {}
    used_raw = _status(quota, "used")
    used = parse_list(used_raw)
    new = add(used, requested)
    over = exceeded(mask(new, requested), hard)
    if over:
        name = (obj.get("metadata") or {}).get("name") or ""
        raise errors.forbidden(res.plural, name, (
            f"exceeded quota: {_name(quota)}, requested: {pretty(format_list(mask(requested, over), hard_raw))}, "
            f"used: {pretty({k: str(used_raw.get(k, '0')) for k in over})}, "
            f"limited: {pretty({k: str(hard_raw[k]) for k in over})}"), res.group)
    out = deep_copy(quota)
    out["status"]["used"] = {**used_raw, **format_list(mask(new, requested), hard_raw)}
    return out, requested


def release(quota: dict, amount: Usage) -> dict:
    """The quota with ``amount`` taken back off ``status.used`` (never below zero)."""
    hard_raw = _status(quota, "hard")
    used_raw = _status(quota, "used")
    back = subtract_non_negative(mask(parse_list(used_raw), amount), amount)
    out = deep_copy(quota)
    out.setdefault("status", {})["used"] = {**used_raw, **format_list(back, hard_raw)}
    return out


def _rv(obj: dict) -> int:
    return int(obj["metadata"]["resourceVersion"])


@dataclass(eq=False)
class _Ask:
    """A request waiting to be charged: its object, what it adds, the quotas that limit it (by name)."""

    res: Resource
    obj: dict
    delta: Usage
    quotas: dict[str, dict]
    done: asyncio.Future
    charged: dict[str, Usage] = field(default_factory=dict)


class QuotaAdmission:
    def __init__(self, store: NatsStore) -> None:
        self.store = store
        self.quotas = CachedLister(store, PLURAL)
        self._waiting: dict[str, list[_Ask]] = {}  # namespace -> requests waiting for their charge
        self._draining: set[str] = set()  # namespaces whose waiting requests a task is charging
        self._tasks: set[asyncio.Task] = set()
        # the newest revision of each quota this server wrote or read, ahead of its cache's watch
        self._latest: dict[tuple[str, str], dict] = {}

    async def start(self) -> None:
        await self.quotas.start()

    async def stop(self) -> None:
        await self.quotas.stop()

    @contextlib.asynccontextmanager
    async def charged(self, res: Resource, namespace: str | None, obj: dict, old: dict | None = None,
                      dry_run: bool = False) -> AsyncIterator[None]:
        """Charge the namespace's quotas for writing ``obj`` (a 403 if that would exceed one); take the charge
        back if the body (the write) fails."""
        charges = await self.charge(res, namespace, obj, old, dry_run)
        try:
            yield
        except BaseException:
            if charges:
                await self.uncharge(namespace, charges)
            raise

    async def charge(self, res: Resource, namespace: str | None, obj: dict, old: dict | None,
                     dry_run: bool = False) -> dict[str, Usage]:
        if not res.namespaced or not namespace or (old is not None and res.kind not in UPDATE_CHARGED):
            return {}
        quotas = await self.quotas.in_namespace(namespace)
        if not quotas:
            return {}
        targets = relevant(res, obj, quotas)
        delta = delta_of(res, obj, old)
        if not targets or not delta:
            return {}
        if dry_run:
            for q in targets:
                charge(res, obj, self._newest(namespace, q), delta)
            return {}
        ask = _Ask(res, obj, delta, {_name(q): q for q in targets}, asyncio.get_running_loop().create_future())
        self._waiting.setdefault(namespace, []).append(ask)
        if namespace not in self._draining:
            self._draining.add(namespace)
            task = asyncio.create_task(self._drain(namespace))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await ask.done

    async def _drain(self, namespace: str) -> None:
        """Charge what waits for the namespace's quotas, batch after batch, until nothing does."""
        try:
            while batch := self._waiting.pop(namespace, None):
                try:
                    await self._charge_batch(namespace, batch)
                except Exception as e:  # noqa: BLE001 - every waiter gets an answer
                    for a in batch:
                        if not a.done.done():
                            a.done.set_exception(e)
        finally:
            self._draining.discard(namespace)

    def _newest(self, namespace: str, quota: dict) -> dict:
        mine = self._latest.get((namespace, _name(quota)))
        return mine if mine is not None and _rv(mine) > _rv(quota) else quota

    def _seen(self, namespace: str, quota: dict | None, name: str) -> dict | None:
        if quota is None:
            self._latest.pop((namespace, name), None)
        else:
            self._latest[(namespace, name)] = quota
        return quota

    async def _charge_batch(self, namespace: str, batch: list["_Ask"]) -> None:
        """Kubernetes' quota evaluator: the waiting requests are checked in turn against the quotas as the earlier
        ones leave them, and each quota changed is written once, with a compare-and-set; a quota whose write lost is
        read again and the requests on it decided again."""
        qres = self.quotas.res
        current: dict[str, dict | None] = {}
        for a in batch:
            for n, q in a.quotas.items():
                q = self._newest(namespace, q)
                if current.get(n) is None or _rv(q) > _rv(current[n]):  # type: ignore[arg-type]
                    current[n] = q
        settled: dict[int, set[str]] = {id(a): set() for a in batch}  # quotas decided for each request
        refused: dict[int, tuple[str, errors.ApiError]] = {}
        read: set[str] = set()  # quotas read from the store in this batch (not from the cache)
        for attempt in range(CAS_ATTEMPTS):
            live = [a for a in batch if id(a) not in refused and set(a.quotas) - settled[id(a)]]
            if not live:
                # a refusal must not rest on a cached quota the watch has not brought up to date (a release)
                stale = {n for n, _e in refused.values() if n not in read}
                for n in stale:
                    q = await self.quotas.fresh(namespace, n)
                    read.add(n)
                    if q is None or _rv(q) != _rv(current[n]):  # type: ignore[arg-type]
                        current[n] = self._seen(namespace, q, n)
                        for k, (m, _e) in list(refused.items()):
                            if m == n:
                                del refused[k]
                if not [a for a in batch if id(a) not in refused and set(a.quotas) - settled[id(a)]]:
                    break
                continue
            new = {n: q for n, q in current.items() if q is not None}
            adds: dict[str, list[tuple[_Ask, Usage]]] = {n: [] for n in new}
            looked: dict[str, list[_Ask]] = {n: [] for n in current}
            for a in live:
                todo = [n for n in a.quotas if n not in settled[id(a)]]
                tentative: dict[str, tuple[dict, Usage]] = {}
                try:
                    for n in todo:
                        if n not in new or not relevant(a.res, a.obj, [new[n]]):
                            continue
                        q2, added = charge(a.res, a.obj, new[n], a.delta)
                        if q2 is not None:
                            tentative[n] = (q2, added)
                except errors.ApiError as e:
                    refused[id(a)] = (n, e)  # nothing of this round counts for it
                    continue
                for n in todo:
                    looked[n].append(a)
                for n, (q2, added) in tentative.items():
                    new[n] = q2
                    adds[n].append((a, added))
            failed: set[str] = set()
            for n, group in adds.items():
                if not group:
                    continue
                try:
                    current[n] = self._seen(namespace, await self.store.update(qres, namespace, n, new[n],
                                                                               _rv(current[n])), n)
                    for a, added in group:
                        a.charged[n] = added
                except errors.Conflict:
                    failed.add(n)
            for n, group in looked.items():
                if n not in failed:
                    for a in group:
                        settled[id(a)].add(n)
            for k, (n, _e) in list(refused.items()):
                if n in failed:  # decided on a quota since changed: decide again
                    del refused[k]
            if failed:
                await asyncio.sleep(random.uniform(0, 0.002 * min(attempt, 10)))
                for n in failed:
                    current[n] = self._seen(namespace, await self.quotas.fresh(namespace, n), n)
                    read.add(n)
        too_many = errors.conflict(PLURAL, ",".join(sorted(current)), "", "too many concurrent writers; try again")
        for a in batch:
            why = refused[id(a)][1] if id(a) in refused else (
                too_many if set(a.quotas) - settled[id(a)] else None)
            if why is not None and a.charged:
                await self.uncharge(namespace, a.charged)
            if why is not None:
                a.done.set_exception(why)
            else:
                a.done.set_result(a.charged)

    async def uncharge(self, namespace: str, charges: dict[str, Usage]) -> None:
        """Take back what a failed write was charged (best effort: the controller corrects what this misses)."""
        qres = self.quotas.res
        for name, amount in charges.items():
            for _ in range(CAS_ATTEMPTS):
                cur = self._seen(namespace, await self.quotas.fresh(namespace, name), name)
                if cur is None:
                    break
                try:
                    self._seen(namespace, await self.store.update(qres, namespace, name, release(cur, amount),
                                                                  _rv(cur)), name)
                    break
                except errors.Conflict:
                    continue
                except Exception as e:  # noqa: BLE001
                    log.warning("could not release quota %s/%s after a failed write: %s", namespace, name, e)
                    break
