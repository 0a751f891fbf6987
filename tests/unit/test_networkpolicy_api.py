"""networking.k8s.io/v1 NetworkPolicy's API half: defaults (``SetDefaults_NetworkPolicy``/``_NetworkPolicyPort``),
validation against the cases of Kubernetes' ``pkg/apis/networking/validation/validation_test.go`` (with the field paths
and messages Kubernetes gives), the ``get`` columns and ``describe`` text kubectl prints, and who on the bus reads the
bucket."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bus import roles, subjects
from bus.cli.describe import describe_object
from bus.models import to_dict
from bus.resources import by_plural, resolve
from bus.roles import Identity, permissions_for
from bus.tables import columns
from bus.validation import parse_cidr, validate_object

NP = by_plural("networkpolicies")
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
AB = {"matchLabels": {"a": "b"}}
INVALID_SELECTOR = {"matchLabels": {"NoUppercaseOrSpecialCharsLike=Equals": "b"}}
CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


def policy(spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "foo", "namespace": "bar"}, "spec": spec}


def causes(spec: dict) -> dict[str, list[str]]:
    _, found = validate_object(NP, policy(spec))
    out: dict[str, list[str]] = {}
    for c in found:
        out.setdefault(c.field, []).append(c.message)
    return out


def defaulted(spec: dict) -> dict:
    model, found = validate_object(NP, policy(spec))
    assert found == []
    return to_dict(model)["spec"]


def ingress_from(*peers: dict) -> dict:
    return {"podSelector": AB, "ingress": [{"from": list(peers)}]}


def ip_block(cidr: str | None, *excepts: str) -> dict:
    block: dict = {} if cidr is None else {"cidr": cidr}
    if excepts:
        block["except"] = list(excepts)
    return {"ipBlock": block}


PORTS = [{"port": 80}, {"protocol": "TCP"}, {"protocol": "TCP", "port": 443}, {"protocol": "UDP", "port": "dns"},
         {"protocol": "SCTP", "port": 7777}]
V4_BLOCK = ip_block("192.168.0.0/16", "192.168.3.0/24", "192.168.4.0/24")
V6_BLOCK = ip_block("fd00:192:168::/48", "fd00:192:168:3::/64", "fd00:192:168:4::/64")


# ---- upstream success cases ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", [
    {"podSelector": AB, "ingress": []},
    {"podSelector": AB, "ingress": [{"from": [], "ports": []}]},
    {"podSelector": AB, "ingress": [{"ports": PORTS}]},
    ingress_from({"podSelector": {"matchLabels": {"c": "d"}}}),
    ingress_from({"namespaceSelector": {"matchLabels": {"c": "d"}}}),
    ingress_from({"namespaceSelector": {"matchLabels": {"c": "d"}}, "podSelector": {"matchLabels": {"e": "f"}}}),
    {"podSelector": AB, "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"c": "d"}}}]}],
     "ingress": [{"from": [V4_BLOCK]}]},
    ingress_from(V4_BLOCK),
    {"podSelector": AB, "egress": [{"to": [V4_BLOCK]}], "policyTypes": ["Egress"]},
    {"podSelector": AB, "egress": [{"to": [V4_BLOCK]}], "policyTypes": ["Ingress", "Egress"]},
    {"podSelector": AB, "egress": [{"ports": PORTS}]},
    ingress_from(V6_BLOCK),
    {"podSelector": AB, "egress": [{"to": [V6_BLOCK]}], "policyTypes": ["Ingress", "Egress"]},
    {"podSelector": AB, "egress": [{"ports": [{"port": 30000, "endPort": 32768}, {"port": 32000, "endPort": 32000}]}]},
    {"podSelector": {}, "ingress": [{}]},  # allow all
    ingress_from(ip_block("10.0.0.1/8", "10.1.2.3/16")),  # ParseCIDRSloppy: host bits are fine
    ingress_from(ip_block("010.000.0.0/8")),  # ... and so are leading zeros
    {"podSelector": AB, "policyTypes": ["Ingress", "Ingress"]},  # Kubernetes checks the count, not uniqueness
])
def test_kubernetes_success_cases_are_valid(spec):
    assert causes(spec) == {}


# ---- upstream error cases, with Kubernetes' paths and messages -------------------------------------------------------

LABEL_KEY_MSG = ('Invalid value: "NoUppercaseOrSpecialCharsLike=Equals": name part must consist of alphanumeric '
                 "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  "
                 "or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")


@pytest.mark.parametrize("spec, want", [
    pytest.param(ingress_from({"namespaceSelector": {"matchLabels": {"c": "d"}}, **V4_BLOCK}),
                 {"spec.ingress[0].from[0]": ["Forbidden: may not specify both ipBlock and another peer"]},
                 id="namespaceSelector and ipBlock"),
    pytest.param({"podSelector": AB, "egress": [{"to": [{"podSelector": {"matchLabels": {"c": "d"}}, **V4_BLOCK}]}]},
                 {"spec.egress[0].to[0]": ["Forbidden: may not specify both ipBlock and another peer"]},
                 id="podSelector and ipBlock"),
    pytest.param({"podSelector": AB, "ingress": [{"from": [{}]}], "egress": [{"to": [{}]}]},
                 {"spec.ingress[0].from[0]": ["Required value: must specify a peer"],
                  "spec.egress[0].to[0]": ["Required value: must specify a peer"]},
                 id="missing from and to type"),
    pytest.param({"podSelector": INVALID_SELECTOR, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
        "c": "d"}}}]}]}, {"spec.podSelector.matchLabels": [LABEL_KEY_MSG]}, id="invalid spec.podSelector"),
    pytest.param({"ingress": [{"ports": [{"protocol": "ICMP", "port": 80}]}]},
                 {"spec.ingress[0].ports[0].protocol": [
                     'Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"']},
                 id="invalid ingress.ports.protocol"),
    pytest.param({"ingress": [{"ports": [{"protocol": "TCP", "port": 123456789}]}]},
                 {"spec.ingress[0].ports[0].port": ["Invalid value: 123456789: must be between 1 and 65535, inclusive"]},
                 id="invalid ingress.ports.port (int)"),
    pytest.param({"ingress": [{"ports": [{"protocol": "TCP", "port": "!@#$"}]}]},
                 {"spec.ingress[0].ports[0].port": [
                     'Invalid value: "!@#$": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)',
                     'Invalid value: "!@#$": must contain at least one letter (a-z)']},
                 id="invalid ingress.ports.port (str)"),
    pytest.param({"ingress": [{"from": [{"podSelector": INVALID_SELECTOR}]}]},
                 {"spec.ingress[0].from[0].podSelector.matchLabels": [LABEL_KEY_MSG]},
                 id="invalid ingress.from.podSelector"),
    pytest.param({"egress": [{"to": [{"podSelector": INVALID_SELECTOR}]}]},
                 {"spec.egress[0].to[0].podSelector.matchLabels": [LABEL_KEY_MSG]}, id="invalid egress.to.podSelector"),
    pytest.param({"egress": [{"ports": [{"protocol": "ICMP", "port": 80}]}]},
                 {"spec.egress[0].ports[0].protocol": [
                     'Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"']},
                 id="invalid egress.ports.protocol"),
    pytest.param({"egress": [{"ports": [{"protocol": "TCP", "port": 123456789}]}]},
                 {"spec.egress[0].ports[0].port": ["Invalid value: 123456789: must be between 1 and 65535, inclusive"]},
                 id="invalid egress.ports.port (int)"),
    pytest.param({"ingress": [{"from": [{"namespaceSelector": INVALID_SELECTOR}]}]},
                 {"spec.ingress[0].from[0].namespaceSelector.matchLabels": [LABEL_KEY_MSG]},
                 id="invalid ingress.from.namespaceSelector"),
    pytest.param({"ingress": [{"from": [ip_block(None, "192.168.8.0/24", "192.168.9.0/24")]}]},
                 {"spec.ingress[0].from[0].ipBlock.cidr": ["Required value"]}, id="missing cidr field"),
    pytest.param(ingress_from(ip_block("192.168.5.6", "192.168.1.0/24", "192.168.2.0/24")),
                 {"spec.ingress[0].from[0].ipBlock.cidr": [f'Invalid value: "192.168.5.6": {CIDR_MSG}']},
                 id="invalid cidr format"),
    pytest.param(ingress_from(ip_block("fd00:192:168::", "fd00:192:168:3::/64", "fd00:192:168:4::/64")),
                 {"spec.ingress[0].from[0].ipBlock.cidr": [f'Invalid value: "fd00:192:168::": {CIDR_MSG}']},
                 id="invalid ipv6 cidr format"),
    pytest.param(ingress_from(ip_block("192.168.8.0/24", "", " ")),
                 {"spec.ingress[0].from[0].ipBlock.except[0]": [f'Invalid value: "": {CIDR_MSG}'],
                  "spec.ingress[0].from[0].ipBlock.except[1]": [f'Invalid value: " ": {CIDR_MSG}']},
                 id="except field is an empty string"),
    pytest.param(ingress_from(ip_block("192.168.8.0/24", "192.168.9.1/24")),
                 {"spec.ingress[0].from[0].ipBlock.except[0]": [
                     'Invalid value: "192.168.9.1/24": must be a strict subset of `cidr`']},
                 id="except IP is outside of CIDR range"),
    pytest.param(ingress_from(ip_block("192.168.0.0/24", "192.168.0.0/24")),
                 {"spec.ingress[0].from[0].ipBlock.except[0]": [
                     'Invalid value: "192.168.0.0/24": must be a strict subset of `cidr`']},
                 id="except IP is not strictly within CIDR range"),
    pytest.param(ingress_from(ip_block("fd00:192:168:1::/64", "fd00:192:168:2::/64")),
                 {"spec.ingress[0].from[0].ipBlock.except[0]": [
                     'Invalid value: "fd00:192:168:2::/64": must be a strict subset of `cidr`']},
                 id="except IPv6 is outside of CIDR range"),
    pytest.param({"podSelector": AB, "egress": [{"to": [V4_BLOCK]}], "policyTypes": ["foo", "bar"]},
                 {"spec.policyTypes[0]": ['Unsupported value: "foo": supported values: "Ingress", "Egress"'],
                  "spec.policyTypes[1]": ['Unsupported value: "bar": supported values: "Ingress", "Egress"']},
                 id="invalid policyTypes"),
    pytest.param({"podSelector": AB, "egress": [{"to": [V4_BLOCK]}], "policyTypes": ["foo", "bar", "baz"]},
                 {"spec.policyTypes": [
                     'Invalid value: ["foo", "bar", "baz"]: may not specify more than two policyTypes']},
                 id="too many policyTypes"),
    pytest.param({"egress": [{"ports": [{"port": 35000, "endPort": 32768}]}]},
                 {"spec.egress[0].ports[0].endPort": ["Invalid value: 32768: must be greater than or equal to `port`"]},
                 id="endPort lower than port"),
    pytest.param({"egress": [{"ports": [{"port": "https", "endPort": 32768}]}]},
                 {"spec.egress[0].ports[0].endPort": [
                     "Invalid value: 32768: may not be specified when `port` is non-numeric"]},
                 id="endPort with a named port"),
    pytest.param({"egress": [{"ports": [{"endPort": 32768}]}]},
                 {"spec.egress[0].ports[0].endPort": [
                     "Invalid value: 32768: may not be specified when `port` is not specified"]},
                 id="endPort without port"),
    pytest.param({"egress": [{"ports": [{"port": 30000, "endPort": 65537}]}]},
                 {"spec.egress[0].ports[0].endPort": ["Invalid value: 65537: must be between 1 and 65535, inclusive"]},
                 id="endPort out of range"),
    pytest.param({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": ["not valid"]}]}},
                 {"spec.podSelector.matchExpressions[0].values[0]": [
                     'Invalid value: "not valid": a valid label must be an empty string or consist of alphanumeric '
                     "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
                     "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
                     "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]},
                 id="selector value not a label value"),
    pytest.param({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}},
                 {"spec.podSelector.matchExpressions[0].values": [
                     "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"]},
                 id="values with Exists"),
])
def test_kubernetes_error_cases_name_the_field(spec, want):
    assert causes(spec) == want


def test_wrong_types_are_reported_at_their_path():
    found = causes({"ingress": [{"ports": [{"port": True}, {"endPort": "x"}]}], "policyTypes": "Ingress"})
    assert set(found) == {"spec.ingress[0].ports[0].port", "spec.ingress[0].ports[1].endPort", "spec.policyTypes"}


# ---- defaults --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, types", [
    ({}, ["Ingress"]),
    ({"ingress": [{}]}, ["Ingress"]),
    ({"egress": []}, ["Ingress"]),
    ({"egress": [{}]}, ["Ingress", "Egress"]),
    ({"ingress": [{}], "egress": [{}]}, ["Ingress", "Egress"]),
    ({"egress": [{}], "policyTypes": ["Egress"]}, ["Egress"]),  # what was written stays
    ({"policyTypes": []}, ["Ingress"]),
])
def test_policy_types_default_as_kubernetes_does(spec, types):
    assert defaulted(spec)["policyTypes"] == types


def test_ports_default_to_tcp_and_an_absent_pod_selector_is_the_empty_one():
    spec = defaulted({"podSelector": None, "ingress": [{"ports": [{"port": 53}, {"port": 53, "protocol": None},
                                                                  {"protocol": "UDP"}]}]})
    assert spec["podSelector"] == {}
    assert spec["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 53}, {"protocol": "TCP", "port": 53},
                                           {"protocol": "UDP"}]
    assert list(defaulted({"ingress": [{"from": [V4_BLOCK], "ports": [{"port": 1}]}]})["ingress"][0]) == [
        "ports", "from"]  # Kubernetes' field order


@pytest.mark.parametrize("text, network", [
    ("10.0.0.0/8", "10.0.0.0/8"), ("10.1.2.3/8", "10.0.0.0/8"), ("010.001.0.0/16", "10.1.0.0/16"),
    ("fd00::1/64", "fd00::/64"), ("0.0.0.0/0", "0.0.0.0/0"),
])
def test_cidrs_parse_as_kubernetes_parses_them(text, network):
    assert str(parse_cidr(text)) == network


@pytest.mark.parametrize("text", ["10.0.0.0", "10.0.0.0/33", "10.0.0.0/255.0.0.0", "256.0.0.0/8", "fd00::/129",
                                  "fe80::1%eth0/64", "10.0.0.0/ 8", "", "x/8", "10.0.0.0/+8"])
def test_what_kubernetes_would_not_parse_is_no_cidr(text):
    assert parse_cidr(text) is None


# ---- the resource, columns, describe, bus roles -----------------------------------------------------------------------

def test_the_resource_is_served_as_kubernetes_serves_it():
    assert resolve("netpol") is NP and resolve("networkpolicy") is NP and resolve("networkpolicies.networking.k8s.io") is NP
    assert (NP.group, NP.version, NP.kind, NP.namespaced, NP.subresources) == (
        "networking.k8s.io", "v1", "NetworkPolicy", True, ())


def test_get_columns_are_kubectls():
    obj = {"metadata": {"name": "np", "creationTimestamp": "2026-01-01T11:55:00Z"},
           "spec": {"podSelector": {"matchLabels": {"role": "db"}, "matchExpressions": [
               {"key": "tier", "operator": "In", "values": ["b", "a"]}]}}}
    assert [(h, fn(obj, NOW)) for h, fn in columns("NetworkPolicy", wide=True)] == [
        ("NAME", "np"), ("POD-SELECTOR", "role=db,tier in (a,b)"), ("AGE", "5m")]
    assert columns("NetworkPolicy")[1][1]({"spec": {"podSelector": {}}}, NOW) == "<none>"


def test_describe_prints_kubectls_network_policy_text():
    spec = {"podSelector": {}, "ingress": [{}, {"from": [{"namespaceSelector": {"matchLabels": {"a": "b"}},
                                                        "podSelector": {}}],
                                                "ports": [{"protocol": "UDP", "port": 53},
                                                          {"protocol": "TCP", "port": 30000, "endPort": 30010}]}],
            "egress": [{"to": [ip_block("10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16")]}],
            "policyTypes": ["Ingress", "Egress"]}
    text = describe_object(NP, {**policy(spec), "metadata": {"name": "np", "namespace": "bar"}}, [], now=NOW)
    assert text.split("Spec:\n", 1)[1].split("\nEvents:")[0] == "\n".join([
        "  PodSelector:     <none> (Allowing the specific traffic to all pods in this namespace)",
        "  Allowing ingress traffic:",
        "    To Port: <any> (traffic allowed to all ports)",
        "    From: <any> (traffic not restricted by source)",
        "    ----------",
        "    To Port: 53/UDP",
        "    To Port: 30000-30010/TCP",
        "    From:",
        "      NamespaceSelector: a=b",
        "      PodSelector: <none>",
        "  Allowing egress traffic:",
        "    To Port: <any> (traffic allowed to all ports)",
        "    To:",
        "      IPBlock:",
        "        CIDR: 10.0.0.0/8",
        "        Except: 10.1.0.0/16, 10.2.0.0/16",
        "  Policy Types: Ingress, Egress",
    ])


def _reads(identity: Identity, resource: str) -> bool:
    p = permissions_for(identity)
    create = subjects.js_consumer_create(subjects.stream(resource), subjects.kv_subject(resource))
    return create in p.pub_allow or (
        subjects.js_consumer_create("*", ">") in p.pub_allow
        and not any(subjects.stream(resource) in d for d in p.pub_deny))


def test_the_node_view_and_the_subscriber_read_policies_and_the_node_view_namespaces_too():
    view = Identity(roles.NODEVIEW)
    assert _reads(view, "networkpolicies") and _reads(view, "namespaces") and _reads(view, "pods")
    assert not _reads(view, "secrets") and not _reads(view, "services")
    assert _reads(Identity(roles.SUBSCRIBER, "ev"), "networkpolicies")
    assert not _reads(Identity(roles.SUBSCRIBER, "ev"), "secrets")
