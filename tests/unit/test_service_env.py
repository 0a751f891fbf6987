"""Service environment variables as the kubelet sets them (pkg/kubelet/envvars), and how the container's own
env overrides and expands them."""

from __future__ import annotations

from node.env import build_env, service_env, vars_of_service


def svc(name: str, ns: str = "default", ip: str | None = "10.0.0.11", ports=None, type_: str | None = None) -> dict:
    spec: dict = {"ports": ports if ports is not None else [{"port": 6379, "protocol": "TCP"}]}
    if ip is not None:
        spec["clusterIP"] = ip
    if type_:
        spec["type"] = type_
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


KUBERNETES = svc("kubernetes", "default", "10.96.0.1", [{"name": "https", "port": 443, "protocol": "TCP"}])


def test_documented_example_redis_primary():
    # kubernetes.io "Service" docs: Service redis-primary, TCP port 6379, cluster IP 10.0.0.11
    assert vars_of_service(svc("redis-primary")) == {
        "REDIS_PRIMARY_SERVICE_HOST": "10.0.0.11",
        "REDIS_PRIMARY_SERVICE_PORT": "6379",
        "REDIS_PRIMARY_PORT": "tcp://10.0.0.11:6379",
        "REDIS_PRIMARY_PORT_6379_TCP": "tcp://10.0.0.11:6379",
        "REDIS_PRIMARY_PORT_6379_TCP_PROTO": "tcp",
        "REDIS_PRIMARY_PORT_6379_TCP_PORT": "6379",
        "REDIS_PRIMARY_PORT_6379_TCP_ADDR": "10.0.0.11",
    }


def test_named_ports_multiple_ports_and_udp():
    env = vars_of_service(svc("dns-svc", ip="10.96.0.10", ports=[
        {"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        {"name": "metrics", "port": 9153}]))
    assert env["DNS_SVC_SERVICE_PORT"] == "53"  # the first port
    assert env["DNS_SVC_SERVICE_PORT_DNS"] == "53"
    assert env["DNS_SVC_SERVICE_PORT_DNS_TCP"] == "53"
    assert env["DNS_SVC_SERVICE_PORT_METRICS"] == "9153"
    assert env["DNS_SVC_PORT"] == "udp://10.96.0.10:53"  # Docker links: the first port
    assert env["DNS_SVC_PORT_53_UDP"] == "udp://10.96.0.10:53"
    assert env["DNS_SVC_PORT_53_UDP_PROTO"] == "udp"
    assert env["DNS_SVC_PORT_53_TCP_ADDR"] == "10.96.0.10"
    assert env["DNS_SVC_PORT_9153_TCP"] == "tcp://10.96.0.10:9153"  # protocol defaults to TCP


def test_ipv6_cluster_ip_is_bracketed():
    env = vars_of_service(svc("v6", ip="fd00::10", ports=[{"port": 80}]))
    assert env["V6_PORT"] == "tcp://[fd00::10]:80" and env["V6_SERVICE_HOST"] == "fd00::10"


def test_headless_external_name_and_unallocated_services_give_nothing():
    services = [svc("headless", "shop", ip="None"), svc("ext", "shop", ip=None, type_="ExternalName"),
                svc("pending", "shop", ip=None), svc("web", "shop", ip="10.96.5.5", ports=[{"port": 80}])]
    env = service_env(services, "shop")
    assert {k.split("_")[0] for k in env} == {"WEB"}


def test_only_the_pod_namespace_plus_the_master_service():
    services = [KUBERNETES, svc("web", "shop", "10.96.5.5", [{"port": 80}]),
                svc("other", "elsewhere", "10.96.6.6", [{"port": 81}]),
                svc("db", "default", "10.96.7.7", [{"port": 5432}])]
    env = service_env(services, "shop")
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["KUBERNETES_PORT_443_TCP_ADDR"] == "10.96.0.1"
    assert env["WEB_SERVICE_HOST"] == "10.96.5.5"
    assert not any(k.startswith(("OTHER_", "DB_")) for k in env)
    assert "DB_SERVICE_HOST" in service_env(services, "default")


def test_enable_service_links_false_keeps_only_the_master_service():
    services = [KUBERNETES, svc("web", "shop", "10.96.5.5", [{"port": 80}])]
    env = service_env(services, "shop", enable_service_links=False)
    assert "KUBERNETES_SERVICE_HOST" in env and "WEB_SERVICE_HOST" not in env
    assert "WEB_SERVICE_HOST" in service_env(services, "shop", enable_service_links=None)  # unset: default on


def test_a_namespace_service_named_kubernetes_wins_over_the_master_one():
    mine = svc("kubernetes", "shop", "10.96.9.9", [{"port": 8443}])
    for order in ([KUBERNETES, mine], [mine, KUBERNETES]):
        assert service_env(order, "shop")["KUBERNETES_SERVICE_HOST"] == "10.96.9.9"
        assert service_env(order, "shop", enable_service_links=False)["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


async def test_container_env_overrides_and_expands_service_vars():
    services_env = service_env([svc("redis-primary", "default")], "default")
    container = {"name": "app", "env": [
        {"name": "REDIS_PRIMARY_SERVICE_PORT", "value": "1234"},
        {"name": "REDIS_URL", "value": "redis://$(REDIS_PRIMARY_SERVICE_HOST):$(REDIS_PRIMARY_PORT_6379_TCP_PORT)"}]}
    pod = {"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [container]}}

    async def get(resource, name, ns):
        raise AssertionError("no lookups expected")

    env = await build_env(pod, container, get, service_env=services_env)
    assert env["REDIS_PRIMARY_SERVICE_PORT"] == "1234"
    assert env["REDIS_URL"] == "redis://10.0.0.11:6379"
    assert env["REDIS_PRIMARY_SERVICE_HOST"] == "10.0.0.11"
