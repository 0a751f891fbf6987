"""The pod's resolv.conf for each dnsPolicy (with dnsConfig merged as the kubelet does) and its /etc/hosts."""

from __future__ import annotations

from node.runtime import podfiles
from tests import builders

HOST = "nameserver 10.255.255.53\nnameserver 127.0.0.53\nsearch corp.example\noptions edns0\n"


def pod(ns: str = "shop", **spec) -> dict:
    return builders.pod("web-1", ns, bare=True, **spec)


def test_cluster_first_points_at_the_cluster_dns_with_the_search_path():
    assert podfiles.pod_resolv_conf(pod(), HOST, "10.244.7.1") == (
        "nameserver 10.244.7.1\n"
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
        "options ndots:5\n")


def test_cluster_domain_is_configurable():
    out = podfiles.pod_resolv_conf(pod("default", dnsPolicy="ClusterFirst"), "", "10.244.7.1", "k8n.test")
    assert "search default.svc.k8n.test svc.k8n.test k8n.test\n" in out


def test_cluster_first_without_a_cluster_dns_falls_back_to_the_host():
    out = podfiles.pod_resolv_conf(pod(), HOST, None)
    assert out == podfiles.resolv_conf(HOST)
    assert "127.0.0.53" not in out and "nameserver 10.255.255.53" in out


def test_default_policy_keeps_the_host_file():
    assert podfiles.pod_resolv_conf(pod(dnsPolicy="Default"), HOST, "10.244.7.1") == podfiles.resolv_conf(HOST)


def test_host_network_cluster_first_uses_the_host_but_with_host_net_variant_the_cluster():
    assert "10.244.7.1" not in podfiles.pod_resolv_conf(pod(hostNetwork=True), HOST, "10.244.7.1")
    out = podfiles.pod_resolv_conf(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), HOST, "10.244.7.1")
    assert out.startswith("nameserver 10.244.7.1\n")


def test_none_policy_uses_only_dns_config():
    cfg = {"nameservers": ["1.2.3.4"], "searches": ["ns1.svc.cluster-domain.example", "my.dns.search.suffix"],
           "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}
    assert podfiles.pod_resolv_conf(pod(dnsPolicy="None", dnsConfig=cfg), HOST, "10.244.7.1") == (
        "nameserver 1.2.3.4\nsearch ns1.svc.cluster-domain.example my.dns.search.suffix\n"
        "options ndots:2 edns0\n")


def test_dns_config_merges_into_cluster_first():
    cfg = {"nameservers": ["10.244.7.1", "9.9.9.9", "8.8.8.8", "1.1.1.1"], "searches": ["extra.example"],
           "options": [{"name": "ndots", "value": "1"}, {"name": "timeout", "value": "2"}]}
    out = podfiles.pod_resolv_conf(pod(dnsConfig=cfg), HOST, "10.244.7.1")
    lines = out.splitlines()
    assert [ln for ln in lines if ln.startswith("nameserver")] == [
        "nameserver 10.244.7.1", "nameserver 9.9.9.9", "nameserver 8.8.8.8"]  # no duplicate, at most 3
    assert lines[-2].endswith(" corp.example extra.example")
    assert lines[-1] == "options ndots:1 timeout:2"  # the pod's value replaces ndots:5


def test_hosts_file_has_the_pod_ip_and_hostname_and_aliases():
    p = pod(hostname="db-0", subdomain="db", hostAliases=[{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar"]}])
    hosts = podfiles.pod_hosts(p, "10.244.7.9")
    assert "127.0.0.1\tlocalhost\n" in hosts
    assert "10.244.7.9\tdb-0.db.shop.svc.cluster.local\tdb-0\n" in hosts
    assert hosts.endswith("# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar\n")
    assert "10.244.7.9\tweb-1\n" in podfiles.pod_hosts(pod(), "10.244.7.9")
    assert "web-1" not in podfiles.pod_hosts(pod(), "")  # no IP yet: localhost only


def test_write_then_write_hosts_keeps_the_same_file(tmp_path):
    host = tmp_path / "host-resolv.conf"
    host.write_text(HOST)
    paths = podfiles.write(tmp_path / "sb", str(host), pod(), nameserver="10.244.7.1")
    hosts = tmp_path / "sb" / "hosts"
    inode = hosts.stat().st_ino
    podfiles.write_hosts(tmp_path / "sb", pod(), "10.244.7.9")
    assert hosts.stat().st_ino == inode  # bind mounts of the old inode see the new content
    assert "10.244.7.9\tweb-1" in hosts.read_text()
    assert open(paths["/etc/resolv.conf"]).read().startswith("nameserver 10.244.7.1\n")
