"""``bus.canary``: the objects ``k8n canary`` writes for --weight, --abort and --promote (one and two primaries, the
class rules, the errors)."""

from __future__ import annotations

import copy

import pytest

from bus.canary import CanaryError, Change, effective_class, primaries, promoted, routing_nothing, with_weight
from bus.ingress import (CANARY, CANARY_BY_COOKIE, CANARY_BY_HEADER, CANARY_BY_HEADER_VALUE, CANARY_WEIGHT,
                         CANARY_WEIGHT_TOTAL, DEFAULT_CLASS_ANNOTATION, canary)

NS = "shop"
CLASSES = [{"metadata": {"name": "k8n", "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}}},
           {"metadata": {"name": "nginx"}}]


def backend(svc: str, port: int | str = 80) -> dict:
    return {"service": {"name": svc, "port": {"number": port} if isinstance(port, int) else {"name": port}}}


def ing(name: str, rules: dict[str, list[tuple[str, str]]], annotations: dict | None = None,
        cls: str | None = "nginx", ns: str = NS) -> dict:
    """``rules``: host → [(path, service)]."""
    spec: dict = {"rules": [{"host": h, "http": {"paths": [{"path": p, "pathType": "Prefix", "backend": backend(s)}
                                                            for p, s in paths]}} if h else
                            {"http": {"paths": [{"path": p, "pathType": "Prefix", "backend": backend(s)}
                                                for p, s in paths]}}
                            for h, paths in rules.items()]}
    if cls:
        spec["ingressClassName"] = cls
    meta = {"name": name, "namespace": ns, "resourceVersion": "7", "annotations": dict(annotations or {})}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def canary_ing(rules=None, **anns) -> dict:
    return ing("web-canary", rules or {"shop.example.com": [("/", "web-v2")]},
               {CANARY: "true", CANARY_WEIGHT: "10", **anns})


def services(obj: dict) -> list[tuple[str, str, str]]:
    return [(r.get("host", ""), p["path"], p["backend"]["service"]["name"])
            for r in obj["spec"]["rules"] for p in r["http"]["paths"]]


# ---- weight and abort --------------------------------------------------------------------------------------------


def test_weight_sets_the_annotation_and_leaves_the_rest():
    c = canary_ing(**{CANARY_BY_HEADER: "X-Canary"})
    before = copy.deepcopy(c)
    out = with_weight(c, 20)
    assert out["metadata"]["annotations"] == {CANARY: "true", CANARY_WEIGHT: "20", CANARY_BY_HEADER: "X-Canary"}
    assert out["metadata"]["resourceVersion"] == "7" and out["spec"] == c["spec"]  # written as a CAS
    assert c == before  # the input is not changed
    assert canary(out["metadata"]["annotations"]).share == 0.2


def test_weight_bounds_follow_the_weight_total():
    assert with_weight(canary_ing(), 0)["metadata"]["annotations"][CANARY_WEIGHT] == "0"
    assert with_weight(canary_ing(), 100)["metadata"]["annotations"][CANARY_WEIGHT] == "100"
    with pytest.raises(CanaryError, match="between 0 and 100"):
        with_weight(canary_ing(), 101)
    with pytest.raises(CanaryError, match="between 0 and 100"):
        with_weight(canary_ing(), -1)
    c = canary_ing(**{CANARY_WEIGHT_TOTAL: "1000"})
    assert with_weight(c, 250)["metadata"]["annotations"][CANARY_WEIGHT] == "250"
    with pytest.raises(CanaryError, match="between 0 and 1000"):
        with_weight(c, 1001)


def test_an_ingress_without_the_canary_annotation_is_refused():
    for anns in ({}, {CANARY: "false"}, {CANARY_WEIGHT: "10"}):
        with pytest.raises(CanaryError, match='ingress "web" is not a canary'):
            with_weight(ing("web", {"a.example.com": [("/", "web")]}, anns), 10)
    with pytest.raises(CanaryError, match="not a canary"):
        routing_nothing(ing("web", {"a.example.com": [("/", "web")]}))
    with_weight(ing("c", {}, {CANARY: "True"}), 5)  # ParseBool, as ingress-nginx


def test_abort_routes_nothing_and_keeps_the_canary():
    c = canary_ing(**{CANARY_BY_HEADER: "X-Canary", CANARY_BY_HEADER_VALUE: "yes", CANARY_BY_COOKIE: "beta",
                      CANARY_WEIGHT_TOTAL: "50", "team": "a"})
    out = routing_nothing(c)
    assert out["metadata"]["annotations"] == {CANARY: "true", CANARY_WEIGHT: "0", CANARY_WEIGHT_TOTAL: "50",
                                              "team": "a"}
    view = canary(out["metadata"]["annotations"])
    assert view.enabled and view.rules == () and view.share == 0.0
    assert out["spec"] == c["spec"]
    assert not view.routes_to_canary({"X-Canary": "yes"}, {"beta": "always"}, 1)


# ---- promote -----------------------------------------------------------------------------------------------------


def test_promote_with_one_primary_takes_the_canarys_backends_for_its_paths_only():
    c = canary_ing({"shop.example.com": [("/api", "api-v2")]})
    prim = ing("web", {"shop.example.com": [("/", "web"), ("/api", "api-v1")]})
    other_host = ing("blog", {"blog.example.com": [("/api", "blog-api")]})
    new, changes, unserved = promoted(c, [prim, other_host, c], CLASSES)
    assert [services(n) for n in new] == [[("shop.example.com", "/", "web"), ("shop.example.com", "/api", "api-v2")]]
    assert new[0]["metadata"]["resourceVersion"] == "7"
    assert changes == [Change("web", "shop.example.com", "/api", "api-v1:80", "api-v2:80")]
    assert unserved == []
    assert services(prim)[1][2] == "api-v1"  # the input is not changed


def test_promote_with_two_primaries_and_a_path_none_serves():
    c = canary_ing({"a.example.com": [("/", "a-v2")], "b.example.com": [("/", "b-v2"), ("/new", "b-v2")]})
    c["spec"]["rules"][1]["http"]["paths"][0]["backend"] = backend("b-v2", "http")
    a = ing("a", {"a.example.com": [("/", "a-v1")]})
    b = ing("b", {"b.example.com": [("/", "b-v1")], "c.example.com": [("/", "c")]})
    new, changes, unserved = promoted(c, [a, b, c], CLASSES)
    assert [(n["metadata"]["name"], services(n)) for n in new] == [
        ("a", [("a.example.com", "/", "a-v2")]),
        ("b", [("b.example.com", "/", "b-v2"), ("c.example.com", "/", "c")])]
    assert new[1]["spec"]["rules"][0]["http"]["paths"][0]["backend"] == backend("b-v2", "http")
    assert changes == [Change("a", "a.example.com", "/", "a-v1:80", "a-v2:80"),
                       Change("b", "b.example.com", "/", "b-v1:80", "b-v2:http")]
    assert unserved == [("b.example.com", "/new")]


def test_promote_redone_changes_nothing_twice():
    c = canary_ing()
    prim = ing("web", {"shop.example.com": [("/", "web")]})
    new, _, _ = promoted(c, [prim], CLASSES)
    again, changes, _ = promoted(c, new, CLASSES)
    assert again == [] and changes == []  # the primary already serves the canary's backend: found, not rewritten


def test_primaries_share_the_namespace_and_class_and_are_no_canaries():
    c = canary_ing()
    rules = {"shop.example.com": [("/", "web")]}
    candidates = [ing("other-ns", rules, ns="elsewhere"), ing("other-class", rules, cls="k8n"),
                  ing("another-canary", rules, {CANARY: "true"}),
                  ing("other-path", {"shop.example.com": [("/x", "w")]}),
                  ing("legacy", rules, {"kubernetes.io/ingress.class": "nginx"}, cls=None), ing("right", rules)]
    assert [i["metadata"]["name"] for i in primaries(c, candidates, CLASSES)] == ["legacy", "right"]
    # without a class an Ingress is the default class's
    no_class = ing("web-canary", rules, {CANARY: "true"}, cls=None)
    assert effective_class(no_class, CLASSES) == "k8n" and effective_class(no_class, []) == ""
    assert [i["metadata"]["name"] for i in primaries(no_class, candidates + [ing("plain", rules, cls=None)],
                                                     CLASSES)] == ["other-class", "plain"]


def test_rules_without_a_host_match_rules_without_a_host():
    c = canary_ing({"": [("/", "web-v2")]})
    prim = ing("web", {"": [("/", "web")]})
    new, changes, _ = promoted(c, [prim, ing("hosted", {"x.example.com": [("/", "x")]})], CLASSES)
    assert [services(n) for n in new] == [[("", "/", "web-v2")]] and changes[0].host == ""


def test_promote_errors_change_nothing():
    c = canary_ing()
    with pytest.raises(CanaryError, match=r'no primary Ingress .* serves the paths of ingress "web-canary" '
                                          r'\(shop.example.com/\)'):
        promoted(c, [ing("web", {"other.example.com": [("/", "web")]})], CLASSES)
    with pytest.raises(CanaryError, match="not a canary"):
        promoted(ing("web", {"shop.example.com": [("/", "web")]}), [], CLASSES)
    empty = ing("web-canary", {}, {CANARY: "true"})
    with pytest.raises(CanaryError, match="no rules with paths"):
        promoted(empty, [ing("web", {"shop.example.com": [("/", "web")]})], CLASSES)
