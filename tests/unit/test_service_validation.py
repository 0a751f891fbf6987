"""Service validation: what the Kubernetes apiserver reports for a bad Service, with field paths."""

from __future__ import annotations

from bus.resources import by_kind
from bus.validation import validate_object, validate_update


def causes(spec: dict, name: str = "s") -> dict[str, str]:
    _, found = validate_object(by_kind("Service"), {"metadata": {"name": name}, "spec": spec})
    return {c.field: c.message for c in found}


def update_causes(old_spec: dict, new_spec: dict) -> dict[str, str]:
    old = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": old_spec}
    model, _ = validate_object(by_kind("Service"), {"metadata": {"name": "s"}, "spec": new_spec})
    return {c.field: c.message for c in validate_update(by_kind("Service"), old, model)}


PORT = [{"port": 80}]


def test_a_plain_service_and_the_usual_variants_are_valid():
    assert causes({"selector": {"app": "web"}, "ports": PORT}) == {}
    assert causes({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080, "targetPort": "http"}]}) == {}
    assert causes({"type": "LoadBalancer", "ports": PORT, "clusterIP": "10.96.0.10"}) == {}
    assert causes({"clusterIP": "None"}) == {}  # headless: ports optional
    assert causes({"type": "ExternalName", "externalName": "db.example.com"}) == {}
    assert causes({"ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"},
                             {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}) == {}
    assert causes({"ports": PORT, "sessionAffinity": "ClientIP",
                   "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}}}) == {}


def test_type_ports_protocol_and_affinity():
    assert causes({"type": "Internal", "ports": PORT}) == {
        "spec.type": 'Unsupported value: "Internal": supported values: "ClusterIP", "NodePort", "LoadBalancer", '
                     '"ExternalName"'}
    assert causes({"selector": {"app": "web"}}) == {"spec.ports": "Required value"}
    assert causes({"ports": [{"port": 0}]}) == {
        "spec.ports[0].port": "Invalid value: 0: must be between 1 and 65535, inclusive",
        "spec.ports[0].targetPort": "Invalid value: 0: must be between 1 and 65535, inclusive"}
    assert causes({"ports": [{"port": 70000, "targetPort": 8080}]}) == {
        "spec.ports[0].port": "Invalid value: 70000: must be between 1 and 65535, inclusive"}
    assert causes({"ports": [{"port": 80, "protocol": "HTTP"}]}) == {
        "spec.ports[0].protocol": 'Unsupported value: "HTTP": supported values: "TCP", "UDP", "SCTP"'}
    assert causes({"ports": PORT, "sessionAffinity": "Sticky"}) == {
        "spec.sessionAffinity": 'Unsupported value: "Sticky": supported values: "ClientIP", "None"'}
    assert causes({"ports": PORT, "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10}}}) == {
        "spec.sessionAffinityConfig": "Forbidden: must not be set when session affinity is None"}
    assert causes({"ports": PORT, "sessionAffinity": "ClientIP",
                   "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}}) == {
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds": "Invalid value: 0: must be greater than 0 and less "
                                                              "than 86400"}
    assert causes({"type": "ExternalName"}) == {"spec.externalName": "Required value"}


def test_port_names_target_ports_and_node_ports():
    got = causes({"ports": [{"port": 80}, {"name": "Web_1", "port": 81}, {"name": "b", "port": 82},
                            {"name": "b", "port": 83}]})
    assert got["spec.ports[0].name"] == "Required value"
    assert got["spec.ports[1].name"].startswith('Invalid value: "Web_1": a lowercase RFC 1123 label')
    assert got["spec.ports[3].name"] == 'Duplicate value: "b"'
    assert causes({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}) == {
        "spec.ports[1]": 'Duplicate value: {"port": 80, "protocol": "TCP"}'}
    assert causes({"ports": [{"port": 80, "targetPort": "http_web"}]}) == {
        "spec.ports[0].targetPort": 'Invalid value: "http_web": must contain only alpha-numeric characters (a-z, '
                                    '0-9), and hyphens (-)'}
    assert causes({"ports": [{"port": 80, "targetPort": 65536}]}) == {
        "spec.ports[0].targetPort": "Invalid value: 65536: must be between 1 and 65535, inclusive"}
    assert causes({"ports": [{"port": 80, "nodePort": 30080}]}) == {
        "spec.ports[0].nodePort": "Forbidden: may not be used when `type` is 'ClusterIP'"}
    assert causes({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080},
                                                 {"name": "b", "port": 81, "nodePort": 30080}]}) == {
        "spec.ports[1].nodePort": "Duplicate value: 30080"}
    # TCP and UDP may share one NodePort, as in Kubernetes
    shared = [{"name": "a", "port": 53, "nodePort": 30053},
              {"name": "b", "port": 53, "protocol": "UDP", "nodePort": 30053}]
    assert causes({"type": "NodePort", "ports": shared}) == {}


def test_cluster_ip_and_families():
    assert causes({"ports": PORT, "clusterIP": "10.96.0.300"}) == {
        "spec.clusterIPs[0]": 'Invalid value: "10.96.0.300": must be a valid IP address, (e.g. 10.9.8.7 or '
                              '2001:db8::ffff)'}
    assert causes({"ports": PORT, "clusterIP": "fd00::10"}) == {
        "spec.clusterIPs[0]": 'Invalid value: "fd00::10": expected an IPv4 value as indicated by `ipFamilies[0]`'}
    assert causes({"ports": PORT, "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.11"]}) == {
        "spec.clusterIPs[0]": 'Invalid value: "10.96.0.11": must be same as clusterIP'}
    assert causes({"type": "NodePort", "ports": PORT, "clusterIP": "None"}) == {
        "spec.clusterIPs[0]": "Invalid value: \"None\": may not be set to 'None' for NodePort services"}
    assert causes({"type": "ExternalName", "externalName": "a.example.com", "clusterIP": "10.96.0.10"}) == {
        "spec.clusterIPs": "Forbidden: may not be set for ExternalName services"}
    assert causes({"ports": PORT, "ipFamilies": ["IPv6"]}) == {
        "spec.ipFamilies[0]": 'Invalid value: "IPv6": not configured on this cluster'}
    assert causes({"ports": PORT, "ipFamilyPolicy": "RequireDualStack"}) == {
        "spec.ipFamilyPolicy": 'Invalid value: "RequireDualStack": this cluster is not configured for dual-stack '
                               'services'}
    assert causes({"ports": PORT, "selector": {"app": "bad value!"}})["spec.selector"].startswith(
        'Invalid value: "bad value!"')


def test_cluster_ip_is_immutable_unless_the_service_becomes_external_name():
    old = {"ports": PORT, "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]}
    assert update_causes(old, {"ports": PORT, "clusterIP": "10.96.0.11"}) == {
        "spec.clusterIP": 'Invalid value: "10.96.0.11": field is immutable'}
    assert update_causes(old, {"ports": PORT, "clusterIP": "None"}) == {
        "spec.clusterIP": 'Invalid value: "None": field is immutable'}
    assert update_causes(old, dict(old)) == {}
    assert update_causes(old, {"type": "ExternalName", "externalName": "a.example.com"}) == {}
    assert update_causes({"type": "ExternalName", "externalName": "a.example.com"},
                         {"ports": PORT, "clusterIP": "10.96.0.12"}) == {}


def test_an_update_keeps_allocated_values_it_leaves_out_and_drops_those_a_type_change_voids():
    from master.apiserver.service_alloc import patch_allocated

    res = by_kind("Service")
    old = {"spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                    "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "dns", "port": 53,
                                                                                "nodePort": 30053}]}}
    new = {"spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80}, {"name": "other", "port": 53}]}}
    patch_allocated(res, old, new)
    assert new["spec"]["clusterIP"] == "10.96.0.10" and new["spec"]["clusterIPs"] == ["10.96.0.10"]
    assert new["spec"]["ports"] == [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "other", "port": 53}]
    to_cluster_ip = {"spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10",
                              "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}
    patch_allocated(res, old, to_cluster_ip)
    assert to_cluster_ip["spec"]["ports"] == [{"name": "http", "port": 80}]
    to_external = {"spec": {"type": "ExternalName", "externalName": "a.example.com", "clusterIP": "10.96.0.10"}}
    patch_allocated(res, old, to_external)
    assert "clusterIP" not in to_external["spec"]
    junk = {"spec": {"type": "NodePort", "ports": [{"name": ["x"], "nodePort": {"a": 1}}, 7]}}
    patch_allocated(res, old, junk)  # a malformed body is left for validation to report
    assert junk["spec"]["clusterIP"] == "10.96.0.10"
