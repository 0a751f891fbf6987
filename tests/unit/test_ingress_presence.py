"""Which addresses an Ingress's status.loadBalancer lists when several ingress controllers run
(node/ingress/presence.py): the live Leases' addresses, per IngressClass, the same answer for every controller."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from node.ingress import presence

NOW = datetime(2026, 12, 4, 3, 0, 0, tzinfo=timezone.utc)


def at(seconds_ago: float) -> float:
    return (NOW - timedelta(seconds=seconds_ago)).timestamp()


def test_live_leases_give_the_union_of_addresses_per_class():
    leases = [presence.lease("n1", ["192.0.2.1"], frozenset({"k8n", "nginx"}), at(1)),
              presence.lease("n2", ["192.0.2.2", "lb.test"], frozenset({"nginx"}), at(5))]
    assert presence.addresses_by_class(leases, NOW) == {"k8n": ["192.0.2.1"],
                                                        "nginx": ["192.0.2.1", "192.0.2.2", "lb.test"]}
    # every controller computes the same from the same Leases, whatever their order
    assert presence.addresses_by_class(leases[::-1], NOW) == presence.addresses_by_class(leases, NOW)


def test_an_expired_lease_or_a_foreign_one_counts_for_nothing():
    old = presence.lease("n1", ["192.0.2.1"], frozenset({"k8n"}), at(presence.LEASE_SECONDS + 1))
    foreign = presence.lease("n3", ["192.0.2.3"], frozenset({"k8n"}), at(1))
    foreign["metadata"]["name"] = "kube-controller-manager"
    broken = presence.lease("n4", ["192.0.2.4"], frozenset({"k8n"}), at(1))
    del broken["spec"]["renewTime"]
    assert presence.addresses_by_class([old, foreign, broken], NOW) == {}


def test_the_lease_is_a_valid_kubernetes_lease():
    from bus.resources import by_plural
    from bus.validation import validate_object

    obj = presence.lease("worker-1", ["192.0.2.1"], frozenset({"k8n"}))
    assert obj["metadata"]["namespace"] == "kube-system" and obj["metadata"]["name"] == "k8n-ingress-worker-1"
    _model, causes = validate_object(by_plural("leases"), obj)
    assert causes == []
