"""What exists from the first start: the system namespaces."""

from __future__ import annotations

from bus import errors
from bus.resources import by_plural
from bus.store import NatsStore
from master.apiserver import strategy
from master.apiserver.admission import SYSTEM_NAMESPACES


async def bootstrap(store: NatsStore) -> None:
    res = by_plural("namespaces")
    for name in SYSTEM_NAMESPACES:
        obj = {"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}}
        strategy.prepare_create(res, obj, None)
        try:
            await store.create(res, None, name, obj)
        except errors.AlreadyExists:
            pass
