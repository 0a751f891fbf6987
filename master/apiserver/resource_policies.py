"""The namespace and scheduling policy admission the verbs run, in Kubernetes' order: Priority, DefaultIngressClass
and LimitRanger (mutating, then LimitRanger's checks) on a new object, ResourceQuota last, charged just before the write
(``charged``). Each plugin keeps its own cache of the objects it reads (``master/apiserver/listers.py``)."""

from __future__ import annotations

import contextlib
from typing import AsyncIterator

from bus.resources import Resource
from bus.store import NatsStore
from master.apiserver import priority
from master.apiserver.limitranger import LimitRanger
from master.apiserver.ingressclass import DefaultIngressClass
from master.apiserver.priority import PriorityAdmission
from master.apiserver.quota import QuotaAdmission


class ResourcePolicies:
    def __init__(self, store: NatsStore) -> None:
        self.priority = PriorityAdmission(store)
        self.ingress_class = DefaultIngressClass(store)
        self.limits = LimitRanger(store)
        self.quota = QuotaAdmission(store)

    async def start(self) -> None:
        for plugin in (self.priority, self.ingress_class, self.limits, self.quota):
            await plugin.start()

    async def stop(self) -> None:
        for plugin in (self.priority, self.ingress_class, self.limits, self.quota):
            await plugin.stop()

    async def admit_create(self, res: Resource, namespace: str | None, obj: dict) -> None:
        """Mutate and check a new object (in place); 403s for what the policies refuse."""
        if res.kind == "Pod":
            await self.priority.admit_pod(obj)
        elif res.kind == "PriorityClass":
            self.priority.admit_class(obj, None)
        elif res.kind == "Ingress":
            self.ingress_class.admit_ingress(obj)
        if namespace and res.kind in ("Pod", "PersistentVolumeClaim"):
            await self.limits.admit(res.kind, namespace, obj)

    def admit_update(self, res: Resource, old: dict, new: dict) -> None:
        if res.kind == "Pod":
            priority.keep_on_update(old, new)
        elif res.kind == "PriorityClass":
            self.priority.admit_class(new, old)

    def admit_delete(self, res: Resource, name: str) -> None:
        if res.kind == "PriorityClass":
            priority.refuse_system_delete(name)

    @contextlib.asynccontextmanager
    async def charged(self, res: Resource, namespace: str | None, obj: dict | None, old: dict | None = None,
                      dry_run: bool = False) -> AsyncIterator[None]:
        """ResourceQuota: charged before the body writes ``obj``, given back if it fails (``obj`` None: a removal,
        nothing to charge)."""
        if obj is None:
            yield
            return
        async with self.quota.charged(res, namespace, obj, old, dry_run):
            yield
