"""NetworkPolicy semantics of the compiler (master/netpol), checked on compiled documents: what each pod admits,
as Kubernetes' networking.k8s.io/v1 documentation describes it."""

from __future__ import annotations

import ipaddress

from master.netpol.index import PolicyIndex


def pod(name, ip, ns="default", node="n1", labels=None, ports=(), **spec):
    containers = [{"name": "c", "image": "x", "ports": [{"name": n, "containerPort": p, "protocol": proto}
                                                          for n, p, proto in ports]}]
    return {"metadata": {"namespace": ns, "name": name, "labels": labels or {}},
            "spec": {"nodeName": node, "containers": containers, **spec}, "status": {"podIP": ip, "phase": "Running"}}


def namespace(name, **labels):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}}


def policy(name, ns="default", **spec):
    spec.setdefault("podSelector", {})
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec}


def cluster(*objs) -> PolicyIndex:
    idx = PolicyIndex()
    for ns in ("default", "other", "prod"):
        idx.set_namespace(namespace(ns, env="prod" if ns == "prod" else "dev"))
    for o in objs:
        if "podIP" in (o.get("status") or {}):
            idx.set_pod(o)
    for o in objs:
        if "podIP" not in (o.get("status") or {}):
            idx.set_policy(o)
    return idx


def admits(idx: PolicyIndex, direction: str, pod_ip: str, peer_ip: str, proto: str = "TCP", port: int = 80) -> bool:
    """Whether the compiled rules of ``pod_ip`` admit ``peer_ip`` (source for Ingress, destination for Egress)."""
    node = next(p.node for p in idx.pods.values() if p.ip == pod_ip)
    doc = idx.document(node)
    entries = ((doc or {}).get("pods") or {}).get(pod_ip, {}).get(direction)
    if entries is None:
        return True  # not isolated
    addr = ipaddress.ip_address(peer_ip)
    for e in entries:
        if e["peers"] is not None and not any(addr in ipaddress.ip_network(p) for p in e["peers"]):
            continue
        if not e["ports"]:
            return True
        for p_proto, p, end in e["ports"]:
            if p_proto == proto and (p is None or p <= port <= (end or p)):
                return True
    return False


WEB = pod("web", "10.244.1.2", labels={"app": "web"}, ports=[("http", 8080, "TCP")])
CLIENT = pod("client", "10.244.1.3", labels={"app": "client"})
OTHER = pod("o", "10.244.2.4", ns="other", node="n2", labels={"app": "client"})
PROD = pod("p", "10.244.2.5", ns="prod", node="n2", labels={"app": "client"})


def test_no_policy_leaves_every_pod_open_and_writes_no_document():
    idx = cluster(WEB, CLIENT)
    assert idx.document("n1") is None
    assert admits(idx, "Ingress", WEB["status"]["podIP"], "192.0.2.1")


def test_deny_all_ingress_isolates_selected_pods_only_in_that_direction():
    idx = cluster(WEB, CLIENT, OTHER, policy("deny", podSelector={"matchLabels": {"app": "web"}}))
    assert not admits(idx, "Ingress", "10.244.1.2", "10.244.1.3")
    assert admits(idx, "Egress", "10.244.1.2", "10.244.1.3")  # policyTypes defaults to [Ingress]
    assert admits(idx, "Ingress", "10.244.1.3", "10.244.1.2")  # not selected
    assert idx.document("n1")["pods"]["10.244.1.2"] == {"pod": "default/web", "Ingress": []}


def test_empty_pod_selector_selects_every_pod_of_its_namespace_only():
    idx = cluster(WEB, CLIENT, OTHER, policy("deny"))
    assert not admits(idx, "Ingress", "10.244.1.2", "10.244.2.4")
    assert not admits(idx, "Ingress", "10.244.1.3", "10.244.2.4")
    assert admits(idx, "Ingress", "10.244.2.4", "10.244.1.2")


def test_missing_or_empty_from_admits_everyone_but_no_rules_admit_no_one():
    for rule in ({}, {"from": []}, {"ports": []}):
        idx = cluster(WEB, policy("p", ingress=[rule]))
        assert admits(idx, "Ingress", "10.244.1.2", "203.0.113.9", port=1234), rule
    idx = cluster(WEB, policy("p", ingress=[]))
    assert not admits(idx, "Ingress", "10.244.1.2", "203.0.113.9")


def test_pod_selector_peer_admits_matching_pods_of_the_policy_namespace():
    idx = cluster(WEB, CLIENT, OTHER, policy("p", podSelector={"matchLabels": {"app": "web"}},
                                             ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]))
    assert admits(idx, "Ingress", "10.244.1.2", "10.244.1.3")
    assert not admits(idx, "Ingress", "10.244.1.2", "10.244.2.4")  # same labels, other namespace


def test_namespace_selector_alone_admits_every_pod_of_matching_namespaces():
    idx = cluster(WEB, CLIENT, OTHER, PROD, policy(
        "p", ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"env": "prod"}}}]}]))
    assert admits(idx, "Ingress", "10.244.1.2", "10.244.2.5")
    assert not admits(idx, "Ingress", "10.244.1.2", "10.244.2.4")
    assert not admits(idx, "Ingress", "10.244.1.2", "10.244.1.3")  # own namespace is not prod


def test_empty_namespace_selector_means_all_namespaces():
    idx = cluster(WEB, CLIENT, OTHER, PROD, policy("p", ingress=[{"from": [{"namespaceSelector": {}}]}]))
    for ip in ("10.244.1.3", "10.244.2.4", "10.244.2.5"):
        assert admits(idx, "Ingress", "10.244.1.2", ip)
    assert not admits(idx, "Ingress", "10.244.1.2", "192.0.2.1")  # pods only, not every address


def test_namespace_and_pod_selector_in_one_peer_is_an_and_in_two_peers_an_or():
    other_web = pod("ow", "10.244.2.6", ns="other", node="n2", labels={"app": "web"})
    both = policy("p", ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"env": "dev"}},
                                           "podSelector": {"matchLabels": {"app": "client"}}}]}])
    idx = cluster(WEB, CLIENT, OTHER, PROD, other_web, both)
    assert admits(idx, "Ingress", "10.244.1.2", "10.244.2.4")
    assert not admits(idx, "Ingress", "10.244.1.2", "10.244.2.6")  # dev namespace, wrong labels
    assert not admits(idx, "Ingress", "10.244.1.2", "10.244.2.5")  # right labels, prod namespace
    either = policy("p", ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}},
                                            {"podSelector": {"matchLabels": {"app": "client"}}}]}])
    idx = cluster(WEB, CLIENT, OTHER, PROD, other_web, either)
    assert admits(idx, "Ingress", "10.244.1.2", "10.244.2.6")
    assert not admits(idx, "Ingress", "10.244.1.2", "10.244.2.5")


def test_ip_block_with_except_applies_to_any_address_pods_included():
    idx = cluster(WEB, CLIENT, OTHER, policy(
        "p", ingress=[{"from": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.2.0/24"]}}]}]))
    assert admits(idx, "Ingress", "10.244.1.2", "10.244.1.3")
    assert admits(idx, "Ingress", "10.244.1.2", "10.244.77.1")  # no pod there: still in the block
    assert not admits(idx, "Ingress", "10.244.1.2", "10.244.2.4")
    assert not admits(idx, "Ingress", "10.244.1.2", "192.0.2.1")
    entry = idx.document("n1")["pods"]["10.244.1.2"]["Ingress"][0]
    nets = [ipaddress.ip_network(p) for p in entry["peers"]]
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])


def test_ports_protocols_end_port_and_port_less_entries():
    idx = cluster(WEB, CLIENT, policy("p", ingress=[{"ports": [
        {"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 9000, "endPort": 9010},
        {"protocol": "UDP"}]}]))
    ok = [("TCP", 80), ("TCP", 9000), ("TCP", 9005), ("TCP", 9010), ("UDP", 53), ("UDP", 9999)]
    no = [("TCP", 81), ("TCP", 9011), ("SCTP", 80)]
    for proto, port in ok:
        assert admits(idx, "Ingress", "10.244.1.2", "10.244.1.3", proto, port), (proto, port)
    for proto, port in no:
        assert not admits(idx, "Ingress", "10.244.1.2", "10.244.1.3", proto, port), (proto, port)


def test_named_port_on_ingress_resolves_on_the_selected_pod():
    web2 = pod("web2", "10.244.1.9", labels={"app": "web"}, ports=[("http", 9090, "TCP")])
    idx = cluster(WEB, web2, CLIENT, policy("p", podSelector={"matchLabels": {"app": "web"}},
                                            ingress=[{"ports": [{"port": "http"}]}]))
    assert admits(idx, "Ingress", "10.244.1.2", "10.244.1.3", port=8080)
    assert not admits(idx, "Ingress", "10.244.1.2", "10.244.1.3", port=9090)
    assert admits(idx, "Ingress", "10.244.1.9", "10.244.1.3", port=9090)
    idx = cluster(CLIENT, policy("p", ingress=[{"ports": [{"port": "http"}]}]))
    assert not admits(idx, "Ingress", "10.244.1.3", "10.244.1.2", port=8080)  # client has no such port


def test_named_port_on_egress_resolves_on_each_destination_pod():
    web2 = pod("web2", "10.244.2.9", node="n2", labels={"app": "web"}, ports=[("http", 9090, "TCP")])
    idx = cluster(WEB, web2, CLIENT, policy("p", podSelector={"matchLabels": {"app": "client"}},
                                            policyTypes=["Egress"],
                                            egress=[{"to": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                                                     "ports": [{"port": "http"}]}]))
    assert admits(idx, "Egress", "10.244.1.3", "10.244.1.2", port=8080)
    assert not admits(idx, "Egress", "10.244.1.3", "10.244.1.2", port=9090)
    assert admits(idx, "Egress", "10.244.1.3", "10.244.2.9", port=9090)
    assert not admits(idx, "Egress", "10.244.1.3", "10.244.2.9", port=8080)
    assert admits(idx, "Ingress", "10.244.1.3", "10.244.1.2")  # Egress only


def test_egress_to_an_ip_block_and_default_policy_types_with_egress_rules():
    idx = cluster(WEB, CLIENT, policy("p", egress=[{"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}]}]))
    assert admits(idx, "Egress", "10.244.1.3", "192.0.2.7")
    assert not admits(idx, "Egress", "10.244.1.3", "10.244.1.2")
    assert not admits(idx, "Ingress", "10.244.1.3", "10.244.1.2")  # [Ingress, Egress]: no ingress rule


def test_rules_of_several_policies_add_up():
    idx = cluster(WEB, CLIENT, OTHER, policy("a", ingress=[{"from": [{"podSelector": {}}]}]),
                  policy("b", ingress=[{"from": [{"ipBlock": {"cidr": "10.244.2.4/32"}}]}]))
    assert admits(idx, "Ingress", "10.244.1.2", "10.244.1.3")
    assert admits(idx, "Ingress", "10.244.1.2", "10.244.2.4")
    assert not admits(idx, "Ingress", "10.244.1.2", "10.244.2.5")


def test_pods_without_their_own_address_are_neither_selected_nor_peers():
    host = pod("h", "192.0.2.10", labels={"app": "client"}, hostNetwork=True)
    done = pod("d", "10.244.1.8", labels={"app": "client"})
    done["status"]["phase"] = "Succeeded"
    idx = cluster(WEB, host, done, policy("p", ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]))
    entry = idx.document("n1")["pods"]["10.244.1.2"]["Ingress"]
    assert entry == []  # the peer admits no pod: the rule admits nothing
    assert set(idx.document("n1")["pods"]) == {"10.244.1.2"}
