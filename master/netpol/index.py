"""The cluster as NetworkPolicy sees it, kept incrementally (pure: no I/O): pods, namespace labels, policies; the
pods each policy selects and the pods each pod peer admits (shared by peers alike, as Antrea's address groups);
every change answers which nodes' compiled documents may have changed, and :meth:`PolicyIndex.document` compiles
one node's document from the caches.

A pod change re-checks that pod against each policy of its namespace and each cached peer; a namespace's label
change re-checks the peers with a namespace selector; a policy change touches the nodes of the pods it selected
before and after. A node's document depends only on the pods on it, the policies selecting them and the peers of
those policies, so the nodes returned are exactly those whose document can differ.
"""

from __future__ import annotations

from typing import Any, Mapping

from bus import subjects

from .compile import (Peer, PodInfo, Policy, Rule, compile_pod, compile_rule, depends_on_local_pod, parse_policy,
                      peer_admits, pod_info)

PeerKey = tuple  # (policy namespace, Peer.key)


class PolicyIndex:
    def __init__(self) -> None:
        self.pods: dict[str, PodInfo] = {}  # ns/name → pod
        self.by_node: dict[str, set[str]] = {}
        self.by_ns: dict[str, set[str]] = {}
        self.ns_labels: dict[str, dict[str, str]] = {}
        self.policies: dict[str, Policy] = {}  # ns/name → policy
        self.policies_in: dict[str, set[str]] = {}  # namespace → policy keys
        self.selected: dict[str, set[str]] = {}  # policy key → pod keys
        self.peers: dict[PeerKey, tuple[Peer, set[str]]] = {}  # peer → (a Peer, admitted pod keys)
        self.peer_users: dict[PeerKey, set[str]] = {}  # peer → policies using it
        self.any_pod_users: set[str] = set()  # policies whose rules depend on every pod (egress named ports)
        self.compiled: dict[str, dict[tuple, list[dict]]] = {}  # policy → its compiled rules (until they may change)

    # ---- pods ------------------------------------------------------------------------------------------------

    def set_pod(self, obj: Mapping[str, Any]) -> set[str]:
        """Add or replace a pod (from its object); returns the nodes whose documents may change."""
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
        info = pod_info(obj)
        if info is None:
            return self.remove_pod(key)
        old = self.pods.get(key)
        if old == info:
            return set()
        self._unlink(key, old)
        self.pods[key] = info
        self.by_node.setdefault(info.node, set()).add(key)
        self.by_ns.setdefault(info.namespace, set()).add(key)
        return self._pod_changed(key, old, info)

    def remove_pod(self, key: str) -> set[str]:
        old = self.pods.pop(key, None)
        if old is None:
            return set()
        self._unlink(key, old)
        return self._pod_changed(key, old, None)

    def _unlink(self, key: str, old: PodInfo | None) -> None:
        if old is not None:
            self.by_node.get(old.node, set()).discard(key)
            self.by_ns.get(old.namespace, set()).discard(key)

    def _pod_changed(self, key: str, old: PodInfo | None, new: PodInfo | None) -> set[str]:
        nodes = {p.node for p in (old, new) if p is not None}
        for ns in {p.namespace for p in (old, new) if p is not None}:
            for pk in self.policies_in.get(ns, ()):
                sel = self.selected.setdefault(pk, set())
                if new is not None and self.policies[pk].selects(new):
                    sel.add(key)
                else:
                    sel.discard(key)
        dirty = set(self.any_pod_users)
        for pkey, (peer, members) in self.peers.items():
            was = key in members
            now = new is not None and peer_admits(peer, pkey[0], new, self.ns_labels.get(new.namespace))
            if now:
                members.add(key)
            else:
                members.discard(key)
            if was or now:  # joined, left, or changed while a member (address, ports)
                dirty |= self.peer_users.get(pkey, set())
        return nodes | self._nodes_of(dirty)

    # ---- namespaces --------------------------------------------------------------------------------------------

    def set_namespace(self, obj: Mapping[str, Any]) -> set[str]:
        meta = obj.get("metadata") or {}
        return self._ns_labels(meta.get("name") or "", dict(meta.get("labels") or {}))

    def remove_namespace(self, name: str) -> set[str]:
        return self._ns_labels(name, None)

    def _ns_labels(self, name: str, labels: dict[str, str] | None) -> set[str]:
        if self.ns_labels.get(name) == labels:
            return set()
        if labels is None:
            self.ns_labels.pop(name, None)
        else:
            self.ns_labels[name] = labels
        dirty: set[str] = set()
        for pkey, (peer, members) in self.peers.items():
            if peer.namespaces is None:
                continue
            for key in self.by_ns.get(name, ()):
                was, now = key in members, peer_admits(peer, pkey[0], self.pods[key], labels)
                if was != now:
                    (members.add if now else members.discard)(key)
                    dirty |= self.peer_users.get(pkey, set())
        return self._nodes_of(dirty)

    # ---- policies ----------------------------------------------------------------------------------------------

    def set_policy(self, obj: Mapping[str, Any]) -> set[str]:
        pol = parse_policy(obj)
        old = self.policies.get(pol.key)
        if old == pol:
            return set()
        nodes = self.remove_policy(pol.key) if old is not None else set()
        self.policies[pol.key] = pol
        self.policies_in.setdefault(pol.namespace, set()).add(pol.key)
        self.selected[pol.key] = {k for k in self.by_ns.get(pol.namespace, ()) if pol.selects(self.pods[k])}
        for peer in pol.pod_peers():
            pkey = (pol.namespace, peer.key)
            if pkey not in self.peers:
                self.peers[pkey] = (peer, {k for k, p in self.pods.items()
                                           if peer_admits(peer, pol.namespace, p, self.ns_labels.get(p.namespace))})
            self.peer_users.setdefault(pkey, set()).add(pol.key)
        if pol.needs_every_pod():
            self.any_pod_users.add(pol.key)
        return nodes | self._nodes_of({pol.key})

    def remove_policy(self, key: str) -> set[str]:
        pol = self.policies.get(key)
        if pol is None:
            return set()
        nodes = self._nodes_of({key})
        del self.policies[key]
        self.policies_in.get(pol.namespace, set()).discard(key)
        self.selected.pop(key, None)
        self.any_pod_users.discard(key)
        for peer in pol.pod_peers():
            pkey = (pol.namespace, peer.key)
            users = self.peer_users.get(pkey, set())
            users.discard(key)
            if not users:
                self.peer_users.pop(pkey, None)
                self.peers.pop(pkey, None)
        return nodes

    def _nodes_of(self, policy_keys: set[str]) -> set[str]:
        """The nodes of the pods these policies select, whose compiled rules are dropped (their peers changed)."""
        for pk in policy_keys:
            self.compiled.pop(pk, None)
        return {self.pods[k].node for pk in policy_keys for k in self.selected.get(pk, ())}

    # ---- documents ---------------------------------------------------------------------------------------------

    def _peer_pods(self, pol: Policy, peer: Peer | None) -> list[PodInfo]:
        if peer is None:
            return list(self.pods.values())
        entry = self.peers.get((pol.namespace, peer.key))
        return [self.pods[k] for k in entry[1]] if entry else []

    def _rule_entries(self, pol: Policy, direction: str, i: int, rule: Rule, pod: PodInfo) -> list[dict]:
        key = (direction, i, pod.ports if depends_on_local_pod(rule, direction) else None)
        cache = self.compiled.setdefault(pol.key, {})
        got = cache.get(key)
        if got is None:
            got = cache[key] = compile_rule(rule, direction, pod, lambda peer: self._peer_pods(pol, peer),
                                            f"{pol.key}/{direction}/{i}")
        return got

    def document(self, node: str) -> dict | None:
        """The compiled document of one node (None: no pod of it is selected by any policy)."""
        pods: dict[str, dict] = {}
        for key in sorted(self.by_node.get(node, ())):
            pod = self.pods[key]
            pols = [self.policies[pk] for pk in sorted(self.policies_in.get(pod.namespace, ()))
                    if key in self.selected.get(pk, ())]
            if pols:
                pods[pod.ip] = compile_pod(pod, pols, self._rule_entries)
        if not pods:
            return None
        return {"apiVersion": "v1", "kind": subjects.NODE_NETWORK_POLICY_KIND, "metadata": {"name": node},
                "pods": pods}
