"""The node view: a copy of every bound pod keyed ``<node>.<namespace>.<name>`` in the
``nodepods`` bucket, so that each node agent watches only its own pods (its cost does not grow
with the cluster). One ordered watch of the pods bucket feeds it; on start it is reconciled
against a full list, so it converges after any crash.

Next to each node's pods it keeps the NetworkPolicy rules compiled for them (``master/netpol``).

Objects in the view carry the view's own revision as resourceVersion: agents read it and write
pods through the API with patches (never a CAS update with a view revision).
"""

from __future__ import annotations

import asyncio
import logging

from bus import errors, roles, subjects
from bus.resources import NODE_PODS, by_plural
from bus.roles import Identity
from bus.client import ApiClient
from bus.store import DELETED, NatsStore, connect_store
from master.leaderelection import ElectionConfig, run_leader_elected
from master.netpol.documents import NodeDocuments

log = logging.getLogger(__name__)
PODS = by_plural("pods")


def _view_key(pod: dict) -> str | None:
    node = (pod.get("spec") or {}).get("nodeName")
    meta = pod.get("metadata") or {}
    if not node or not meta.get("namespace") or not meta.get("name"):
        return None
    return subjects.node_pod_key(node, meta["namespace"], meta["name"])


def _strip(pod: dict) -> dict:
    meta = dict(pod.get("metadata") or {})
    meta.pop("resourceVersion", None)
    return {**pod, "metadata": meta}


class NodeView:
    def __init__(self, store: NatsStore) -> None:
        self.store = store
        self.current: dict[str, dict] = {}  # view key -> pod body as last written
        self.policies = NodeDocuments(store)

    async def reconcile(self) -> int:
        """Make the view equal the pods bucket; returns the pods revision it reflects."""
        pods, rv = await self.store.list(PODS)
        view, _ = await self.store.list(NODE_PODS)
        want = {k: _strip(p) for p in pods if (k := _view_key(p))}
        have = {k: _strip(p) for p in view if (k := _view_key(p))}
        self.policies.replace(pods, view)
        for key, body in have.items():
            if key not in want:
                await self.store.remove_key(NODE_PODS, key, body)
        for key, body in want.items():
            if have.get(key) != body:
                await self.store.put_key(NODE_PODS, key, body)
        self.current = want
        return rv

    async def apply(self, etype: str, pod: dict) -> None:
        self.policies.pod_event(etype, pod)
        key = _view_key(pod)
        if key is None:
            return
        body = _strip(pod)
        if etype == DELETED:
            self.current.pop(key, None)
            await self.store.remove_key(NODE_PODS, key, body)
        elif self.current.get(key) != body:
            self.current[key] = body
            await self.store.put_key(NODE_PODS, key, body)

    async def run(self, stop: asyncio.Event) -> None:
        await self.policies.start()
        try:
            await self._run(stop)
        finally:
            await self.policies.stop()

    async def _run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            watch = None
            try:
                rv = await self.reconcile()
                watch = await self.store.watch(PODS, None, rv)
                stopper = asyncio.create_task(stop.wait())
                while not stop.is_set():
                    nxt = asyncio.create_task(watch.__anext__())
                    done, _ = await asyncio.wait({nxt, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    if nxt not in done:
                        nxt.cancel()
                        break
                    ev = nxt.result()
                    await self.apply(ev.type, ev.object)
                stopper.cancel()
            except (errors.Gone, StopAsyncIteration):
                log.info("node view: watch ended; reconciling again")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("node view failed; reconciling again")
                await asyncio.sleep(1)
            finally:
                if watch is not None:
                    await watch.stop()


LEASE_NAME = "k8n-nodeview"  # kube-system/k8n-nodeview: one node view writes at a time, the others stand by


async def run(server_url: str, stop: asyncio.Event, election: ElectionConfig | None = None) -> None:
    """Run the node view while this replica holds the Lease ``kube-system/k8n-nodeview`` (two writing at once
    would each replay the pods stream into the view: a lagging one could put back what the other removed)."""
    store = await connect_store(server_url, Identity(roles.NODEVIEW))
    try:
        await store.wait_buckets((PODS, NODE_PODS, by_plural("namespaces"), by_plural("networkpolicies")), stop)  # the API servers make them
        client = ApiClient(store.nc)
        await run_leader_elected(client, LEASE_NAME, stop, lambda lead_stop: NodeView(store).run(lead_stop),
                                 config=election or ElectionConfig.from_options())
    finally:
        await store.nc.drain()
