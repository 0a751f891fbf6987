"""The service proxy's pure parts: Services + Endpoints → desired datapath → nft table content, the
incremental transaction between two states, and the sync loop's choice of full vs incremental
(with a fake nft runner)."""

from __future__ import annotations

import json

import pytest

from node.proxy import ServiceProxy, model, nft

NODE_IP, CIDR, TABLE = "192.168.1.5", "10.244.0.0/16", "k8n-test"


def svc(name: str, ip: str | None = "10.96.0.10", ports: list[dict] | None = None, ns: str = "default",
        **spec) -> dict:
    return {"metadata": {"namespace": ns, "name": name},
            "spec": {"clusterIP": ip, "ports": ports if ports is not None else [{"name": "http", "port": 80}], **spec}}


def eps(ready: list[str], ports: list[dict] | None = None, not_ready: list[str] = ()) -> dict:
    return {"subsets": [{"addresses": [{"ip": i} for i in ready],
                         "notReadyAddresses": [{"ip": i} for i in not_ready],
                         "ports": ports if ports is not None else [{"name": "http", "port": 8080}]}]}


def desired(services: list[dict], endpoints: dict[str, dict]) -> model.Desired:
    return model.desired(services, lambda ns, name: endpoints.get(name), NODE_IP, CIDR)


# ---- model ---------------------------------------------------------------------------------------

def test_only_ready_addresses_with_the_named_port_are_endpoints():
    d = desired([svc("web")], {"web": eps(["10.244.1.3", "10.244.1.2"], not_ready=["10.244.1.9"])})
    (sp,) = d.ports.values()
    assert sp.id == "default/web/tcp/http"
    assert sp.endpoints == (model.Endpoint("10.244.1.2", 8080), model.Endpoint("10.244.1.3", 8080))


def test_named_ports_match_by_name_and_protocol_for_multiple_ports():
    s = svc("multi", ports=[{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"},
                            {"name": "metrics", "port": 9100}])
    e = eps(["10.244.1.2"], ports=[{"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"},
                                   {"name": "metrics", "port": 9100, "protocol": "UDP"}])
    d = desired([s], {"multi": e})
    got = {k: sp.endpoints for k, sp in d.ports.items()}
    assert got == {"default/multi/tcp/http": (model.Endpoint("10.244.1.2", 8080),),
                   "default/multi/udp/dns": (model.Endpoint("10.244.1.2", 5353),),
                   "default/multi/tcp/metrics": ()}  # the Endpoints port is UDP: no TCP endpoint


def test_unnamed_single_port_matches_the_unnamed_endpoints_port():
    d = desired([svc("one", ports=[{"port": 80}])], {"one": eps(["10.244.1.2"], ports=[{"port": 8080}])})
    assert d.ports["default/one/tcp/"].endpoints == (model.Endpoint("10.244.1.2", 8080),)


def test_headless_external_name_and_garbage_have_no_datapath():
    services = [svc("headless", ip="None"), svc("noip", ip=None), svc("ext", type="ExternalName"),
                svc("badport", ports=[{"name": "x", "port": "eighty"}, {"name": "y", "port": 70000}]),
                {"metadata": {"name": "nospec"}}, svc("badproto", ports=[{"port": 80, "protocol": "ICMP"}])]
    bad_eps = {"subsets": [{"addresses": [{"ip": "not-an-ip"}, {}], "ports": [{"port": "x"}]}]}
    assert desired(services, {"headless": bad_eps}).ports == {}
    d = desired([svc("web")], {"web": bad_eps})
    assert d.ports["default/web/tcp/http"].endpoints == ()


def test_node_port_only_for_node_port_types_and_affinity_timeout():
    d = desired([svc("a", ports=[{"name": "http", "port": 80, "nodePort": 30080}]),
                 svc("b", type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30081}],
                     sessionAffinity="ClientIP"),
                 svc("c", sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})],
                {})
    assert d.ports["default/a/tcp/http"].node_port == 0
    assert d.ports["default/b/tcp/http"].node_port == 30081
    assert d.ports["default/b/tcp/http"].affinity_seconds == 10800
    assert d.ports["default/c/tcp/http"].affinity_seconds == 60
    assert d.ports["default/a/tcp/http"].affinity_seconds == 0


# ---- render ------------------------------------------------------------------------------------

def test_no_ready_endpoint_rejects_instead_of_dnat():
    st = nft.render(desired([svc("web", type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}])],
                            {"web": eps([], not_ready=["10.244.1.9"])}))
    assert st.elements["no-endpoint-services"] == {("10.96.0.10", "tcp", 80): ("goto", "reject-chain")}
    assert st.elements["no-endpoint-nodeports"] == {("tcp", 30080): ("goto", "reject-chain")}
    assert st.elements["service-ips"] == {} and st.elements["service-nodeports"] == {}
    assert not any(c.startswith(("service-", "endpoint-", "external-")) and "endpoints-check" not in c
                   for c in st.chains)


def test_service_chain_picks_a_random_endpoint_which_dnats_and_masquerades_hairpin():
    sp_id = "default/web/tcp/http"
    st = nft.render(desired([svc("web")], {"web": eps(["10.244.1.2", "10.244.1.3"])}))
    (svc_chain,) = [c for c in st.chains if c.startswith("service-") and c.endswith("/web/tcp/http")]
    assert svc_chain.endswith(sp_id) and st.elements["service-ips"] == {("10.96.0.10", "tcp", 80): ("goto", svc_chain)}
    text = json.dumps(st.chains[svc_chain])
    assert '"mod": 2' in text and text.count('"goto"') == 2
    ep_chain = next(c for c in st.chains if c.startswith("endpoint-") and c.endswith("10.244.1.2/8080"))
    first, dnat = st.chains[ep_chain]
    assert first[0]["match"]["right"] == "10.244.1.2" and first[1] == {"jump": {"target": "mark-for-masquerade"}}
    assert dnat[1] == {"dnat": {"addr": "10.244.1.2", "port": 8080}}
    assert st.elements["cluster-ips"] == {("10.96.0.10",): None}
    assert st.elements["nodeport-ips"] == {(NODE_IP,): None}


def test_affinity_sets_are_checked_before_the_random_choice():
    st = nft.render(desired([svc("web", sessionAffinity="ClientIP")], {"web": eps(["10.244.1.2", "10.244.1.3"])}))
    assert len(st.affinity) == 2 and set(st.affinity.values()) == {10800}
    (svc_chain,) = [c for c in st.chains if c.startswith("service-") and c.endswith("/web/tcp/http")]
    rules = st.chains[svc_chain]
    assert [r[0]["match"]["right"] for r in rules[1:3]] == [f"@{a}" for a in st.affinity]  # endpoint order
    assert "numgen" in json.dumps(rules[3])


# ---- transactions -----------------------------------------------------------------------------

def many(n: int, extra: dict[str, list[str]] | None = None) -> tuple[list[dict], dict[str, dict]]:
    services = [svc(f"s{i}", ip=f"10.96.{i // 250}.{i % 250 + 1}") for i in range(n)]
    endpoints = {f"s{i}": eps([f"10.244.{i // 250}.{i % 250 + 1}", f"10.244.9.{i % 250 + 1}"]) for i in range(n)}
    for name, ips in (extra or {}).items():
        endpoints[name] = eps(ips)
    return services, endpoints


def test_full_transaction_replaces_the_table_atomically():
    tx = nft.full(TABLE, nft.render(desired(*many(2))))
    assert [list(c) for c in tx.cmds[:3]] == [["add"], ["delete"], ["add"]]
    assert all("table" in c[v] for c, v in zip(tx.cmds[:3], ("add", "delete", "add")))
    kinds = {next(iter(c.values())).keys().__iter__().__next__() for c in tx.cmds}
    assert {"table", "chain", "map", "set", "rule", "element"} <= kinds


def test_unchanged_state_needs_no_commands_and_a_new_node_ip_needs_a_full_sync():
    st = nft.render(desired(*many(5)))
    assert len(nft.diff(TABLE, st, nft.render(desired(*many(5))))) == 0
    moved = nft.render(model.desired(many(5)[0], lambda ns, n: many(5)[1].get(n), "192.168.1.6", CIDR))
    assert nft.diff(TABLE, st, moved) is None


def test_one_endpoint_change_touches_only_that_service():
    old = nft.render(desired(*many(100)))
    new = nft.render(desired(*many(100, {"s7": ["10.244.0.8", "10.244.9.8", "10.244.7.7"]})))
    tx = nft.diff(TABLE, old, new)
    touched = {next(iter(c.values()))[k].get("chain") or next(iter(c.values()))[k].get("name")
               for c in tx.cmds for k in next(iter(c.values()))}
    assert all("default/s7/" in name for name in touched), touched
    verbs = [(v, k) for c in tx.cmds for v, body in c.items() for k in body]
    assert ("add", "chain") in verbs and ("flush", "chain") in verbs and ("add", "rule") in verbs
    assert len(tx) <= 8


def test_removed_service_loses_elements_then_chains_then_affinity_sets():
    services, endpoints = many(3)
    services[1]["spec"]["sessionAffinity"] = "ClientIP"
    old = nft.render(desired(services, endpoints))
    new = nft.render(desired([services[0], services[2]], endpoints))
    tx = nft.diff(TABLE, old, new)
    order = [(v, k) for c in tx.cmds for v, body in c.items() for k in body]
    first_chain_delete = order.index(("delete", "chain"))
    assert order.index(("delete", "element")) < first_chain_delete
    assert max(i for i, o in enumerate(order) if o == ("flush", "chain")) < first_chain_delete
    assert order[-2:] == [("delete", "set")] * 2
    deleted = {c["delete"]["chain"]["name"] for c in tx.cmds if "chain" in c.get("delete", {})}
    assert deleted and all("default/s1/" in n for n in deleted)
    assert len(deleted) == 3  # the service chain and its two endpoint chains


# ---- the sync loop with a fake nft ------------------------------------------------------------

class Source:
    def __init__(self, objs: dict[str, dict]) -> None:
        self.objs = objs

    def list(self) -> list[dict]:
        return list(self.objs.values())

    def get(self, ns, name) -> dict | None:
        return self.objs.get(name)


async def test_proxy_syncs_fully_first_then_incrementally_and_fully_again_after_a_failure():
    services, endpoints = many(3)
    ran: list[dict] = []
    fail = False

    async def runner(payload: bytes) -> None:
        if fail:
            raise nft.NftError("boom")
        ran.append(json.loads(payload))

    src_s, src_e = Source({s["metadata"]["name"]: s for s in services}), Source(dict(endpoints))
    p = ServiceProxy(None, "node-a", NODE_IP, CIDR, services=src_s, endpoints=src_e, runner=runner)
    assert p.table == nft.table_name("node-a") and p.table.startswith("k8n-")
    await p.sync()
    assert "delete" in ran[0]["nftables"][1]  # full: add, delete, add table
    assert await p.sync() == 0 and len(ran) == 1  # nothing changed: nft not called
    src_e.objs["s0"] = eps(["10.244.0.1"])
    await p.sync()
    assert "delete" not in json.dumps(ran[1]["nftables"][:1]) and len(ran[1]["nftables"]) < 10
    fail = True
    src_e.objs["s1"] = eps([])
    with pytest.raises(nft.NftError):
        await p.sync()
    fail = False
    await p.sync()
    assert ran[-1]["nftables"][1] == {"delete": {"table": {"family": "ip", "name": p.table}}}


def test_cache_reuses_unchanged_services_and_recomputes_changed_ones():
    s = {**svc("web"), "metadata": {"namespace": "default", "name": "web", "resourceVersion": "5"}}
    e = {**eps(["10.244.1.2"]), "metadata": {"resourceVersion": "7"}}
    cache: dict = {}
    first = model.desired([s], lambda ns, n: e, NODE_IP, CIDR, cache)
    again = model.desired([s], lambda ns, n: e, NODE_IP, CIDR, cache)
    assert again.ports["default/web/tcp/http"] is first.ports["default/web/tcp/http"]
    e2 = {**eps(["10.244.1.3"]), "metadata": {"resourceVersion": "8"}}
    changed = model.desired([s], lambda ns, n: e2, NODE_IP, CIDR, cache)
    assert changed.ports["default/web/tcp/http"].endpoints == (model.Endpoint("10.244.1.3", 8080),)
    assert model.desired([], lambda ns, n: None, NODE_IP, CIDR, cache).ports == {} and cache == {}
