"""networking.k8s.io/v1 Ingress and IngressClass, the API half: validation against cases of Kubernetes'
``pkg/apis/networking/validation/validation_test.go`` (field paths and messages as Kubernetes gives them), the snippet
and canary annotations (``bus.ingress``: ingress-nginx's values, defaults and precedence), the DefaultIngressClass
admission's choice, and the ``get`` columns of kubectl's printIngress / printIngressClass."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bus import errors, ingress
from bus.models import to_dict
from bus.resources import by_plural, resolve
from bus.tables import columns
from bus.validation import validate_object, validate_update
from master.apiserver import ingressclass

ING, IC = by_plural("ingresses"), by_plural("ingressclasses")
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
             "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
WILDCARD = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist "
            "of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. "
            "'*.example.com', regex used for validation is "
            "'\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")


def svc(name: str = "web", number: int | None = 80, port_name: str | None = None) -> dict:
    port = {k: v for k, v in (("number", number), ("name", port_name)) if v is not None}
    return {"service": {"name": name, "port": port}}


def path(p: str | None = "/", path_type: str | None = "Prefix", backend: dict | None = None) -> dict:
    out: dict = {"backend": svc() if backend is None else backend}
    if p is not None:
        out["path"] = p
    if path_type is not None:
        out["pathType"] = path_type
    return out


def ing(spec: dict, annotations: dict | None = None) -> dict:
    meta: dict = {"name": "foo", "namespace": "bar"}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def rule(host: str | None, *paths: dict) -> dict:
    out: dict = {"http": {"paths": list(paths or [path()])}}
    if host is not None:
        out["host"] = host
    return out


def causes(obj: dict, res=ING) -> dict[str, list[str]]:
    _, found = validate_object(res, obj)
    out: dict[str, list[str]] = {}
    for c in found:
        out.setdefault(c.field, []).append(c.message)
    return out


# ---- models and defaults ---------------------------------------------------------------------------------------------

def test_a_valid_ingress_round_trips_and_is_served_as_kubernetes_serves_it():
    body = ing({"ingressClassName": "nginx", "defaultBackend": svc("def", None, "http"),
                "tls": [{"hosts": ["foo.com", "*.bar.com"], "secretName": "tls-secret"}],
                "rules": [rule("foo.com", path("/", "Exact"), path("/api", "Prefix", svc("api", 8080))),
                          rule("*.bar.com", path(None, "ImplementationSpecific",
                                                 {"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket",
                                                               "name": "static"}})),
                          rule(None)]})
    model, found = validate_object(ING, body)
    assert found == []
    assert to_dict(model) == body
    assert resolve("ing") == ING and resolve("ingress") == ING and resolve("ingresses.networking.k8s.io") == ING
    assert ING.namespaced and ING.has_status and not IC.namespaced and not IC.has_status


def test_an_ingress_class_without_a_parameters_scope_gets_cluster():
    model, found = validate_object(IC, {"metadata": {"name": "c"}, "spec": {
        "controller": "example.com/ingress", "parameters": {"apiGroup": "k8s.example.com", "kind": "P", "name": "p"}}})
    assert found == []
    assert to_dict(model)["spec"]["parameters"]["scope"] == "Cluster"


# ---- validation (validation_test.go's TestValidateIngress*, TestValidateIngressClass*) -------------------------------

def test_paths_need_a_supported_type_and_an_absolute_clean_path():
    found = causes(ing({"rules": [rule("foo.com", path("/", None), path("foo", "Prefix"), path("", "Exact"),
                                       path("/foo//bar", "Exact"), path("/foo/..", "Prefix"), path("/%2F", "Prefix"),
                                       path("foo", "ImplementationSpecific"), path("", "ImplementationSpecific"),
                                       path("/", "Regex"))]}))
    p = "spec.rules[0].http.paths"
    assert found == {
        f"{p}[0].pathType": ["Required value: pathType must be specified"],
        f"{p}[1].path": ['Invalid value: "foo": must be an absolute path'],
        f"{p}[2].path": ['Invalid value: "": must be an absolute path'],
        f"{p}[3].path": ["Invalid value: \"/foo//bar\": must not contain '//'"],
        f"{p}[4].path": ["Invalid value: \"/foo/..\": cannot end with '/..'"],
        f"{p}[5].path": ["Invalid value: \"/%2F\": must not contain '%2F'"],
        f"{p}[6].path": ['Invalid value: "foo": must be an absolute path'],
        f"{p}[8].pathType": ['Unsupported value: "Regex": supported values: "Exact", "ImplementationSpecific", '
                             '"Prefix"'],
    }


def test_hosts_are_dns_names_with_an_optional_leading_wildcard_never_ips():
    found = causes(ing({"rules": [rule("127.0.0.1"), rule("*.foo.com"), rule("foo.*.com"), rule("*"),
                                  rule("Foo.com"), rule("::1")],
                        "tls": [{"hosts": ["*.ok.com", "*bar.com", "a_b"]}]}))
    assert found == {
        "spec.rules[0].host": ['Invalid value: "127.0.0.1": must be a DNS name, not an IP address'],
        "spec.rules[2].host": [f'Invalid value: "foo.*.com": {WILDCARD}'],
        "spec.rules[3].host": [f'Invalid value: "*": {WILDCARD}'],
        "spec.rules[4].host": [f'Invalid value: "Foo.com": {SUBDOMAIN}'],
        "spec.rules[5].host": ['Invalid value: "::1": must be a DNS name, not an IP address',
                               f'Invalid value: "::1": {SUBDOMAIN}'],
        "spec.tls[0].hosts[1]": [f'Invalid value: "*bar.com": {WILDCARD}'],
        "spec.tls[0].hosts[2]": [f'Invalid value: "a_b": {SUBDOMAIN}'],
    }


def test_backends_are_a_service_or_a_resource_and_a_port_by_number_or_name():
    found = causes(ing({"defaultBackend": {}, "rules": [rule("foo.com",
        path(backend={**svc(), "resource": {"kind": "K", "name": "n"}}),
        path(backend=svc(number=None)), path(backend=svc(number=80, port_name="http")),
        path(backend=svc(number=70000)), path(backend=svc(number=None, port_name="HTTP")),
        path(backend=svc(name="")), path(backend=svc(name="1web")),
        path(backend={"resource": {"apiGroup": "Bad", "kind": "", "name": "a/b"}}))]}))
    p = "spec.rules[0].http.paths"
    assert found == {
        "spec.defaultBackend": ['Invalid value: "": resource or service backend is required'],
        f"{p}[0].backend": ['Invalid value: "": cannot set both resource and service backends'],
        f"{p}[1].backend": ["Required value: port name or number is required"],
        f"{p}[2].backend": ['Invalid value: "": cannot set both port name & port number'],
        f"{p}[3].backend.service.port.number": ["Invalid value: 70000: must be between 1 and 65535, inclusive"],
        f"{p}[4].backend.service.port.name": [
            'Invalid value: "HTTP": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)',
            'Invalid value: "HTTP": must contain at least one letter (a-z)'],
        f"{p}[5].backend.service.name": ["Required value"],
        f"{p}[6].backend.service.name": [
            "Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
            "start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
            "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"],
        f"{p}[7].backend.resource.apiGroup": [f'Invalid value: "Bad": {SUBDOMAIN}'],
        f"{p}[7].backend.resource.kind": ["Required value"],
        f"{p}[7].backend.resource.name": ["Invalid value: \"a/b\": may not contain '/'"],
    }


def test_a_spec_needs_rules_or_a_default_backend_and_a_rule_with_http_needs_paths():
    assert causes(ing({})) == {"spec": [
        "Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"]}
    assert causes(ing({"rules": [{"host": "foo.com", "http": {"paths": []}}, {"host": "bar.com"}]})) == {
        "spec.rules[0].http.paths": ["Required value"]}  # a rule without http is Kubernetes-valid
    assert causes(ing({"ingressClassName": "Bad!", "tls": [{"secretName": "Bad"}], "defaultBackend": svc()})) == {
        "spec.tls[0].secretName": [f'Invalid value: "Bad": {SUBDOMAIN}'],
        "spec.ingressClassName": [f'Invalid value: "Bad!": {SUBDOMAIN}']}


@pytest.mark.parametrize("controller, expected", [
    ("", ["Required value"]),
    ("foo", ['Invalid value: "foo": must be a domain-prefixed path (such as "acme.io/foo")']),
    ("foo.com/", ['Invalid value: "foo.com/": must be a domain-prefixed path (such as "acme.io/foo")']),
    ("Foo.com/bar", [f'Invalid value: "Foo.com": {SUBDOMAIN}']),
    ("foo.com/b a r", ["Invalid value: \"b a r\": Invalid path (regex used for validation is "
                       "'[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')"]),
    ("foo.com/" + "a" * 250, ["Too long: must have at most 250 bytes"]),
])
def test_an_ingress_class_controller_is_a_domain_prefixed_path(controller, expected):
    found = causes({"metadata": {"name": "c"}, "spec": {"controller": controller}}, IC)
    assert found == {"spec.controller": expected}


def test_ingress_class_parameters_and_the_immutable_controller():
    def params(**p) -> dict:
        return {"metadata": {"name": "c"}, "spec": {"controller": "a.io/b", "parameters": {"kind": "K", "name": "n",
                                                                                            **p}}}
    assert causes(params(scope="Namespace"), IC) == {
        "spec.parameters.namespace": ["Required value: `parameters.scope` is set to 'Namespace'"]}
    assert causes(params(scope="Cluster", namespace="x"), IC) == {
        "spec.parameters.namespace": ["Forbidden: `parameters.scope` is set to 'Cluster'"]}
    assert causes(params(scope="World"), IC) == {
        "spec.parameters.scope": ['Unsupported value: "World": supported values: "Cluster", "Namespace"']}
    assert causes(params(scope="Namespace", namespace="ns"), IC) == {}
    model, _ = validate_object(IC, params())
    assert [(c.field, c.message) for c in validate_update(IC, {"spec": {"controller": "a.io/other"}}, model)] == [
        ("spec.controller", 'Invalid value: "a.io/b": field is immutable')]
    assert validate_update(IC, {"spec": {"controller": "a.io/b"}}, model) == []


# ---- annotations: snippets refused, canary values checked ------------------------------------------------------------

@pytest.mark.parametrize("key", [
    "nginx.ingress.kubernetes.io/configuration-snippet", "nginx.ingress.kubernetes.io/server-snippet",
    "nginx.ingress.kubernetes.io/auth-snippet", "nginx.ingress.kubernetes.io/stream-snippet",
    "nginx.ingress.kubernetes.io/modsecurity-snippet", "nginx.org/server-snippets",
    "haproxy.org/backend-config-snippet"])
def test_snippet_annotations_are_refused_at_their_annotation(key):
    found = causes(ing({"defaultBackend": svc()}, {key: "return 200;", "team": "a"}))
    assert found == {f"metadata.annotations[{key}]": [f"Forbidden: {ingress.SNIPPET_MESSAGE}"]}


def test_annotations_that_only_look_alike_are_kept():
    assert causes(ing({"defaultBackend": svc()}, {"example.com/snippets-enabled": "no", "snippet-owner": "x",
                                                  "nginx.ingress.kubernetes.io/rewrite-target": "/"})) == {}


@pytest.mark.parametrize("annotations, field, message", [
    ({"canary": "yes"}, "canary", 'Invalid value: "yes": must be "true" or "false"'),
    ({"canary-weight": "20%"}, "canary-weight",
     'Invalid value: "20%": must be an integer between 0 and 100 (canary-weight-total), inclusive'),
    ({"canary-weight": "101"}, "canary-weight",
     'Invalid value: "101": must be an integer between 0 and 100 (canary-weight-total), inclusive'),
    ({"canary-weight": "-1"}, "canary-weight",
     'Invalid value: "-1": must be an integer between 0 and 100 (canary-weight-total), inclusive'),
    ({"canary-weight": "600", "canary-weight-total": "500"}, "canary-weight",
     'Invalid value: "600": must be an integer between 0 and 500 (canary-weight-total), inclusive'),
    ({"canary-weight-total": "0"}, "canary-weight-total", 'Invalid value: "0": must be a positive integer'),
    ({"canary-by-header-pattern": "^(v1|v2"}, "canary-by-header-pattern",
     'Invalid value: "^(v1|v2": must be a valid regular expression: missing ), unterminated subpattern at position 1'),
    ({"canary-by-header-pattern": "a;b"}, "canary-by-header-pattern",
     "Invalid value: \"a;b\": must be a regular expression of alphanumeric characters and "
     "'-._~/:^$[](){}*+?|&=\\'"),
    ({"canary-by-header": "X-Canary;"}, "canary-by-header",
     "Invalid value: \"X-Canary;\": must consist of alphanumeric characters, '-', '.', '_', '~', '/' or ':'"),
    ({"canary-by-cookie": "a=b"}, "canary-by-cookie",
     "Invalid value: \"a=b\": must consist of alphanumeric characters, '-', '.', '_', '~', '/' or ':'"),
])
def test_invalid_canary_values_are_refused_at_their_annotation(annotations, field, message):
    anns = {ingress.NGINX_PREFIX + k: v for k, v in annotations.items()}
    found = causes(ing({"defaultBackend": svc()}, {ingress.CANARY: "true", **anns}))
    assert found == {f"metadata.annotations[{ingress.NGINX_PREFIX}{field}]": [message]}


def test_the_canary_view_has_ingress_nginx_defaults():
    assert ingress.canary(None) == ingress.Canary()
    plain = ingress.canary({ingress.CANARY_WEIGHT: "30"})  # canary settings without canary: "true" do nothing
    assert not plain.enabled and plain.share == 0.0
    c = ingress.canary({ingress.CANARY: "True", ingress.CANARY_WEIGHT: "5", ingress.CANARY_WEIGHT_TOTAL: "10",
                        ingress.CANARY_BY_COOKIE: "beta", ingress.CANARY_BY_HEADER: "X-Canary",
                        ingress.CANARY_BY_HEADER_VALUE: "v2"})
    assert (c.enabled, c.weight, c.weight_total, c.share, c.header, c.header_value, c.cookie) == (
        True, 5, 10, 0.5, "X-Canary", "v2", "beta")
    assert c.rules == ("header", "cookie", "weight")
    assert ingress.canary({ingress.CANARY: "true"}).rules == () and ingress.canary({ingress.CANARY: "1"}).enabled


def test_canary_routing_follows_ingress_nginx_header_then_cookie_then_weight():
    c = ingress.canary({ingress.CANARY: "true", ingress.CANARY_WEIGHT: "20", ingress.CANARY_BY_HEADER: "X-Canary",
                        ingress.CANARY_BY_COOKIE: "canary"})
    route = c.routes_to_canary
    assert route({"x-canary": "always"}, {"canary": "never"}, 100)  # the header first (its name in any case)
    assert not route({"X-Canary": "never"}, {"canary": "always"}, 1)
    assert route({"X-Canary": "maybe"}, {"canary": "always"}, 100)  # another value: the cookie decides
    assert not route({}, {"canary": "never"}, 1)
    assert route({}, {"canary": "other"}, 20) and not route({}, {}, 21)  # then the weight: 20 of 1..100
    assert sum(route({}, {}, roll) for roll in range(1, 101)) == 20
    by_value = ingress.canary({ingress.CANARY: "true", ingress.CANARY_BY_HEADER: "X-Version",
                               ingress.CANARY_BY_HEADER_VALUE: "v2", ingress.CANARY_BY_HEADER_PATTERN: "^v[0-9]$"})
    assert by_value.routes_to_canary({"X-Version": "v2"}, {}, 1)
    assert not by_value.routes_to_canary({"X-Version": "v3"}, {}, 1)  # the value wins over the pattern
    by_pattern = ingress.canary({ingress.CANARY: "true", ingress.CANARY_BY_HEADER: "X-Version",
                                 ingress.CANARY_BY_HEADER_PATTERN: "^v[2-3]$"})
    assert by_pattern.routes_to_canary({"X-Version": "v3"}, {}, 1)
    assert not by_pattern.routes_to_canary({"X-Version": "always"}, {}, 1)  # a pattern replaces always/never
    assert not ingress.canary({ingress.CANARY_WEIGHT: "100"}).routes_to_canary({}, {}, 1)  # not enabled


# ---- DefaultIngressClass admission -----------------------------------------------------------------------------------

def klass(name: str, created: str, default: bool | str = False) -> dict:
    meta: dict = {"name": name, "creationTimestamp": created}
    if default:
        meta["annotations"] = {ingress.DEFAULT_CLASS_ANNOTATION: "true" if default is True else default}
    return {"metadata": meta, "spec": {"controller": "a.io/b"}}


def test_a_classless_ingress_gets_the_newest_default_class():
    classes = [klass("old", "2026-01-01T00:00:00Z", True), klass("new", "2026-02-01T00:00:00Z", True),
               klass("newest-not-default", "2026-03-01T00:00:00Z"),
               klass("false", "2026-04-01T00:00:00Z", "false")]
    obj = ing({"defaultBackend": svc()})
    ingressclass.resolve(obj, classes)
    assert obj["spec"]["ingressClassName"] == "new"
    tie = [klass("b", "2026-01-01T00:00:00Z", True), klass("a", "2026-01-01T00:00:00Z", True)]
    assert ingressclass.default_class(tie)["metadata"]["name"] == "a"


def test_an_ingress_with_a_class_or_the_legacy_annotation_or_no_default_is_left_alone():
    classes = [klass("k8n", "2026-01-01T00:00:00Z", True)]
    named = ing({"ingressClassName": "nginx", "defaultBackend": svc()})
    ingressclass.resolve(named, classes)
    assert named["spec"]["ingressClassName"] == "nginx"
    legacy = ing({"defaultBackend": svc()}, {ingress.LEGACY_CLASS_ANNOTATION: "nginx"})
    ingressclass.resolve(legacy, classes)
    assert "ingressClassName" not in legacy["spec"] and ingress.class_name(legacy) == "nginx"
    none = ing({"defaultBackend": svc()})
    ingressclass.resolve(none, [klass("plain", "2026-01-01T00:00:00Z")])
    assert "ingressClassName" not in none["spec"] and ingress.class_name(none) is None


def test_the_legacy_annotation_must_match_the_class_name_on_create():
    both = ing({"ingressClassName": "k8n", "defaultBackend": svc()}, {ingress.LEGACY_CLASS_ANNOTATION: "nginx"})
    with pytest.raises(errors.ApiError) as e:
        ingressclass.check_class_annotation(both)
    assert e.value.code == 422
    assert e.value.message == ('Ingress.networking.k8s.io "foo" is invalid: annotations.kubernetes.io/ingress.class: '
                               'Invalid value: "nginx": must match `ingressClassName` when both are specified')
    ingressclass.check_class_annotation(ing({"ingressClassName": "nginx"}, {ingress.LEGACY_CLASS_ANNOTATION: "nginx"}))


def test_the_built_in_classes_are_valid_and_k8n_is_the_default():
    k8n = ingressclass.built_in_class("k8n", ingress.K8N_CONTROLLER, True)
    nginx = ingressclass.built_in_class("nginx", ingress.NGINX_CONTROLLER, False)
    assert ingress.is_default_class(k8n) and not ingress.is_default_class(nginx)
    assert nginx["spec"] == {"controller": "k8s.io/ingress-nginx"}
    assert set(ingress.SERVED_CONTROLLERS) == {"k8n.io/ingress", "k8s.io/ingress-nginx"}


# ---- kubectl's columns -----------------------------------------------------------------------------------------------

def cells(kind: str, obj: dict) -> list[tuple[str, str]]:
    return [(h, fn(obj, NOW)) for h, fn in columns(kind)]


def test_get_ingress_columns_are_print_ingress():
    obj = ing({"ingressClassName": "nginx", "tls": [{"secretName": "s"}],
               "rules": [rule("a.com"), rule(None), rule("b.com"), rule("c.com"), rule("d.com")]})
    obj["metadata"]["creationTimestamp"] = "2026-01-01T11:00:00Z"
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": "10.0.0.2"}, {"hostname": "lb.example.com"},
                                                  {"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]}}
    assert cells("Ingress", obj) == [("NAME", "foo"), ("CLASS", "nginx"), ("HOSTS", "a.com,b.com,c.com + 2 more..."),
                                     ("ADDRESS", "10.0.0.1,10.0.0.2,lb.example.com"), ("PORTS", "80, 443"),
                                     ("AGE", "60m")]
    bare = ing({"defaultBackend": svc()})
    assert [c for _, c in cells("Ingress", bare)][1:5] == ["<none>", "*", "", "80"]


def test_get_ingressclass_columns_are_print_ingress_class():
    c = {"metadata": {"name": "k8n", "creationTimestamp": "2026-01-01T11:59:00Z"},
         "spec": {"controller": "k8n.io/ingress", "parameters": {"apiGroup": "k8s.example.com", "kind": "P",
                                                                 "name": "p"}}}
    assert cells("IngressClass", c) == [("NAME", "k8n"), ("CONTROLLER", "k8n.io/ingress"),
                                        ("PARAMETERS", "P.k8s.example.com/p"), ("AGE", "60s")]
    c["spec"]["parameters"] = None
    assert cells("IngressClass", c)[2] == ("PARAMETERS", "<none>")
