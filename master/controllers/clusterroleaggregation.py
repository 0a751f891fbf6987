"""ClusterRole aggregation controller (Kubernetes' clusterrole-aggregation-controller): a ClusterRole with an
``aggregationRule`` gets as its rules the union of the rules of the other ClusterRoles its
``clusterRoleSelectors`` match (selectors in order, matching roles by name, each rule once;
``bus.rbac.aggregate_rules``), written only when that changes them.

Any change of any ClusterRole may change what an aggregated one gathers, so every change enqueues every
ClusterRole that has an aggregationRule (as upstream does); ``reconcile`` re-reads the cache.
"""

from __future__ import annotations

import logging

from bus import errors
from bus.controller import Controller
from bus.informer import Informer
from bus.meta import deep_copy
from bus.rbac import aggregate_rules, same_rules
from bus.workqueue import TerminalError

log = logging.getLogger(__name__)


def setup(ctx) -> list:
    return [ClusterRoleAggregation(ctx.client, ctx.informers.informer("clusterroles")).controller]


def has_aggregation(role: dict) -> bool:
    return isinstance(role.get("aggregationRule"), dict)


class ClusterRoleAggregation:
    def __init__(self, client, cluster_roles: Informer) -> None:
        self.client, self.roles = client, cluster_roles
        self.controller = Controller("clusterrole-aggregation", self.reconcile)
        self.controller.watches(cluster_roles)  # the aggregated role itself (and waits for the cache)
        cluster_roles.add_handler(on_add=self._enqueue_aggregated, on_update=lambda _o, _n: self._enqueue_aggregated(),
                                  on_delete=self._enqueue_aggregated)

    def _enqueue_aggregated(self, *_: dict) -> None:
        for key in self.roles.keys():
            role = self.roles.get_by_key(key)
            if role is not None and has_aggregation(role):
                self.controller.queue.add(key)

    async def reconcile(self, key: str) -> None:
        role = self.roles.get_by_key(key)
        if role is None or not has_aggregation(role):
            return
        try:
            rules = aggregate_rules(role, self.roles.list())
        except ValueError as e:  # validation refuses such selectors; one written before that never will be
            raise TerminalError(f"clusterrole {role['metadata'].get('name')}: {e}") from None
        if rules is None or same_rules(rules, role.get("rules")):
            return
        new = deep_copy(role)
        new["rules"] = rules
        try:
            await self.client.update(new)
        except errors.NotFound:
            pass
        # a Conflict propagates: the queue retries with the fresh role
