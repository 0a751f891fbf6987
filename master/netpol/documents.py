"""Each node's compiled NetworkPolicy document, kept in the node view bucket under
``bus.subjects.node_network_policy_key(node)`` (the agent's watch of its own pods brings it). The node view feeds
pods in; namespaces and policies come from informers here. Changes mark the nodes they touch
(:class:`~master.netpol.index.PolicyIndex`); one flush at a time recompiles those nodes' documents and writes only
the ones that changed (a node without selected pods has no document)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bus import subjects
from bus.informer import Informer
from bus.meta import key_of
from bus.resources import NODE_PODS
from bus.store import DELETED

from .index import PolicyIndex

log = logging.getLogger(__name__)


def _strip(doc: dict) -> dict:
    meta = {k: v for k, v in (doc.get("metadata") or {}).items() if k != "resourceVersion"}
    return {**doc, "metadata": meta}


def _key(pod: dict) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


class NodeDocuments:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.index = PolicyIndex()
        self.written: dict[str, dict] = {}  # node → its document as in the bucket
        self.dirty: set[str] = set()
        self.writes = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.namespaces = Informer(store, "namespaces")
        self.policies = Informer(store, "networkpolicies")
        self.namespaces.add_handler(on_add=self._set_ns, on_update=lambda _o, n: self._set_ns(n),
                                    on_delete=lambda o: self._mark(self.index.remove_namespace(key_of(o))))
        self.policies.add_handler(on_add=self._set_policy, on_update=lambda _o, n: self._set_policy(n),
                                  on_delete=lambda o: self._mark(self.index.remove_policy(_key(o))))

    def _set_ns(self, obj: dict) -> None:
        self._mark(self.index.set_namespace(obj))

    def _set_policy(self, obj: dict) -> None:
        self._mark(self.index.set_policy(obj))

    def _mark(self, nodes: set[str]) -> None:
        nodes.discard("")
        if nodes:
            self.dirty |= nodes
            self._wake.set()

    async def start(self) -> None:
        """Sync namespaces and policies (no document is written before both are known), then keep flushing."""
        await asyncio.gather(self.namespaces.start(), self.policies.start())
        self._task = asyncio.create_task(self._loop(), name="netpol-documents")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(self.namespaces.stop(), self.policies.stop())

    # ---- fed by the node view --------------------------------------------------------------------------------

    def replace(self, pods: list[dict], view: list[dict]) -> None:
        """After a full list: the pods as they are, the documents as the bucket holds them."""
        listed = {_key(p) for p in pods}
        for key in [k for k in self.index.pods if k not in listed]:
            self._mark(self.index.remove_pod(key))
        for p in pods:
            self._mark(self.index.set_pod(p))
        self.written = {d["metadata"]["name"]: _strip(d) for d in view
                        if d.get("kind") == subjects.NODE_NETWORK_POLICY_KIND}
        self._mark(set(self.written) | set(self.index.by_node))

    def pod_event(self, etype: str, pod: dict) -> None:
        if etype == DELETED:
            self._mark(self.index.remove_pod(_key(pod)))
        else:
            self._mark(self.index.set_pod(pod))

    # ---- writes ------------------------------------------------------------------------------------------------

    async def flush(self) -> int:
        """Write the changed documents of the marked nodes (concurrently); returns how many were written."""
        nodes, self.dirty = self.dirty, set()
        changes = [(node, doc) for node in nodes if (doc := self.index.document(node)) != self.written.get(node)]
        results = await asyncio.gather(*(self._write(node, doc) for node, doc in changes), return_exceptions=True)
        failed = [(node, r) for (node, _), r in zip(changes, results) if isinstance(r, BaseException)]
        self.dirty |= {node for node, _ in failed}  # retried by the loop
        self.writes += len(changes) - len(failed)
        if failed:
            raise failed[0][1]
        return len(changes)

    async def _write(self, node: str, doc: dict | None) -> None:
        key = subjects.node_network_policy_key(node)
        if doc is None:
            await self.store.remove_key(NODE_PODS, key, self.written[node])
            del self.written[node]
        else:
            await self.store.put_key(NODE_PODS, key, doc)
            self.written[node] = doc

    async def _loop(self) -> None:
        delay = 0.1
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.error("network policy documents: write failed (retrying in %.1fs): %s", delay, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                self._wake.set()
