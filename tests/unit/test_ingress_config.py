"""render(): Ingress objects → haproxy.cfg + maps + certs (host/path precedence, classes, canary,
TLS/SNI/redirect, no config injection); runtime_commands() for changes without a reload."""

import base64
import shutil
import subprocess

import pytest

from bus import ingress as I
from node.ingress import config as C

NS = "default"
DEFAULT_PEM = C.self_signed_pem()


def svc(name, ports=((80, "http", 8080),), ns=NS):
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": n, "port": p, "targetPort": t}
                                                          for p, n, t in ports]}}


def eps(service, ips, port=8080, port_name="http", ns=NS, ready=True):
    return {"metadata": {"name": service + "-x", "namespace": ns, "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip in ips]}


def backend(service, port=80):
    return {"service": {"name": service, "port": {"number": port} if isinstance(port, int) else {"name": port}}}


def ing(name, rules, cls="k8n", ann=None, tls=None, default=None, created="2026-01-01T00:00:00Z"):
    spec = {"ingressClassName": cls, "rules": [
        {**({"host": h} if h else {}), "http": {"paths": [{"path": p, "pathType": t, "backend": backend(s)}
                                                          for p, t, s in paths]}}
        for h, paths in rules]}
    if tls:
        spec["tls"] = tls
    if default:
        spec["defaultBackend"] = backend(default)
    return {"metadata": {"name": name, "namespace": NS, "annotations": ann or {}, "creationTimestamp": created},
            "spec": spec}


def inputs(ingresses, services=None, slices=None, secrets=(), **kw):
    services = services if services is not None else [svc("a"), svc("b"), svc("c")]
    slices = slices if slices is not None else [eps("a", ["10.0.0.1"]), eps("b", ["10.0.0.2"]),
                                               eps("c", ["10.0.0.3"])]
    return C.Inputs(ingresses=ingresses, services=services, endpoint_slices=slices, secrets=list(secrets),
                    **{"state_dir": "/run/test", "default_cert": DEFAULT_PEM, **kw})


def route_of(plan: C.Plan, host: str, path: str) -> str:
    """What haproxy's lookups do with the rendered maps (exact, then longest prefix; host, wildcard,
    no host; default): the Service port its main backend serves (ns_service_port), or '' for 404."""
    host = host.lower()
    wild = "*." + ".".join(host.split(".")[1:])
    for key in (host + path, wild + path, path):
        if key in plan.exact:
            return plan.backends[plan.routes[plan.exact[key]].main].service
        best = max((k for k in plan.prefix if key.startswith(k)), key=len, default=None)
        if best:
            return plan.backends[plan.routes[plan.prefix[best]].main].service
    return plan.backends[plan.routes[plan.default_route].main].service if plan.default_route else ""


def test_prefix_is_element_wise_and_longest_wins_exact_before_prefix():
    p = C.build(inputs([ing("i", [("foo.com", [("/foo", "Prefix", "a"), ("/foo/bar", "Prefix", "b"),
                                               ("/foo", "Exact", "c"), ("/", "ImplementationSpecific", "c")])])]))
    assert not p.errors
    a, b, c = "default_a_80", "default_b_80", "default_c_80"
    assert route_of(p, "foo.com", "/foo") == c  # Exact beats Prefix for the same path
    assert route_of(p, "foo.com", "/foo/") == a
    assert route_of(p, "foo.com", "/foo/x") == a
    assert route_of(p, "foo.com", "/foobar") == c  # not a prefix element-wise: falls to "/"
    assert route_of(p, "foo.com", "/foo/bar") == b
    assert route_of(p, "foo.com", "/foo/bar/baz") == b
    assert route_of(p, "FOO.com", "/foo/bar/baz") == b
    assert route_of(p, "other.com", "/foo") == ""


def test_trailing_slash_prefix_equals_without():
    p = C.build(inputs([ing("i", [("h.io", [("/app/", "Prefix", "a")])])]))
    assert route_of(p, "h.io", "/app") == route_of(p, "h.io", "/app/x") == "default_a_80"
    assert route_of(p, "h.io", "/apps") == ""


def test_wildcard_host_matches_one_label_and_exact_host_wins():
    p = C.build(inputs([ing("i", [("*.ex.com", [("/", "Prefix", "a")]), ("x.ex.com", [("/", "Prefix", "b")]),
                                  ("", [("/", "Prefix", "c")])])]))
    assert route_of(p, "y.ex.com", "/z") == "default_a_80"
    assert route_of(p, "x.ex.com", "/z") == "default_b_80"
    assert route_of(p, "a.b.ex.com", "/") == "default_c_80"  # wildcard covers one label only
    assert route_of(p, "ex.com", "/") == "default_c_80"


def test_default_backend_oldest_ingress_and_conflicts_oldest_wins():
    old = ing("old", [("h.io", [("/", "Prefix", "a")])], default="b", created="2025-01-01T00:00:00Z")
    new = ing("new", [("h.io", [("/", "Prefix", "c")])], default="c", created="2026-01-01T00:00:00Z")
    p = C.build(inputs([new, old]))
    assert route_of(p, "h.io", "/x") == "default_a_80"
    assert route_of(p, "nope.io", "/x") == "default_b_80"
    assert any("already served" in e for _, e in p.errors)


def test_classes_not_served_are_ignored_and_default_class_applies():
    other = ing("other", [("h.io", [("/", "Prefix", "b")])], cls="traefik")
    nginx = ing("ng", [("h.io", [("/", "Prefix", "a")])], cls="nginx")
    p = C.build(inputs([other, nginx]))
    assert route_of(p, "h.io", "/") == "default_a_80" and not p.errors
    noclass = ing("nc", [("n.io", [("/", "Prefix", "c")])], cls=None)
    del noclass["spec"]["ingressClassName"]
    assert route_of(C.build(inputs([noclass])), "n.io", "/") == ""
    dflt = {"metadata": {"name": "k8n", "annotations": {I.DEFAULT_CLASS_ANNOTATION: "true"}}}
    assert route_of(C.build(inputs([noclass], ingress_classes=[dflt])), "n.io", "/") == "default_c_80"
    legacy = ing("lg", [("l.io", [("/", "Prefix", "c")])], cls=None, ann={I.LEGACY_CLASS_ANNOTATION: "nginx"})
    del legacy["spec"]["ingressClassName"]
    assert route_of(C.build(inputs([legacy])), "l.io", "/") == "default_c_80"


def test_backends_resolve_named_ports_to_ready_pod_endpoints():
    s = svc("web", ports=((80, "http", 8080), (9000, "metrics", 9100)))
    slices = [eps("web", ["10.1.0.1", "10.1.0.2"], 8080, "http"), eps("web", ["10.1.0.3"], 8080, "http", ready=False),
              eps("web", ["10.1.0.1"], 9100, "metrics")]
    i = ing("i", [("h.io", [("/", "Prefix", "web")])])
    i["spec"]["rules"][0]["http"]["paths"].append({"path": "/m", "pathType": "Prefix",
                                                   "backend": backend("web", "metrics")})
    p = C.build(inputs([i], services=[s], slices=slices))
    assert p.backend_of("default_web_80").ready == [C.Endpoint("10.1.0.1", 8080), C.Endpoint("10.1.0.2", 8080)]
    assert p.backend_of("default_web_9000").ready == [C.Endpoint("10.1.0.1", 9100)]
    cfg, _, _ = C.render_plan(p)
    assert "server s1 10.1.0.1:8080" in cfg and "10.96.0.10" not in cfg  # pods, never the ClusterIP


def test_backend_without_ready_endpoints_answers_503_and_missing_service_is_reported():
    p = C.build(inputs([ing("i", [("h.io", [("/", "Prefix", "a"), ("/z", "Prefix", "zz")])])], slices=[]))
    cfg, _, _ = C.render_plan(p)
    assert "server s1 127.0.0.1:1 disabled" in cfg
    assert any("zz not found" in e for _, e in p.errors)


def canary(weight=None, total=None, header=None, value=None, pattern=None, cookie=None):
    a = {I.NGINX_PREFIX + "canary": "true"}
    for k, v in (("canary-weight", weight), ("canary-weight-total", total), ("canary-by-header", header),
                 ("canary-by-header-value", value), ("canary-by-header-pattern", pattern),
                 ("canary-by-cookie", cookie)):
        if v is not None:
            a[I.NGINX_PREFIX + k] = str(v)
    return a


def test_canary_header_then_cookie_then_weight_in_order():
    main = ing("main", [("h.io", [("/", "Prefix", "a")])])
    can = ing("can", [("h.io", [("/", "Prefix", "b")])], ann=canary(weight=20, header="X-Canary", cookie="cny"))
    p = C.build(inputs([main, can]))
    assert not p.errors
    cfg, maps, _ = C.render_plan(p)
    r = p.routes[p.prefix["h.io/"]]
    a, b = p.backend_of("default_a_80").name, p.backend_of("default_b_80").name
    assert (r.main, r.canary) == (a, b)
    lines = [ln.strip() for ln in cfg.splitlines() if "use_backend" in ln]
    on = f"{{ var(txn.route) -m str {r.id} }}"
    assert lines[:5] == [
        f"use_backend {b} if {on} {{ req.hdr(X-Canary) -m str always }}",
        f"use_backend {a} if {on} {{ req.hdr(X-Canary) -m str never }}",
        f"use_backend {b} if {on} {{ req.cook(cny) -m str always }}",
        f"use_backend {a} if {on} {{ req.cook(cny) -m str never }}",
        f"use_backend {b} if {on} {{ var(txn.rand),sub(txn.cw) lt 0 }}"]
    assert f"{r.id} 200000\n" in maps["weights.map"] and f"{r.id} {a}\n" in maps["backends.map"]
    assert lines[5] == "use_backend %[var(txn.backend)]"


def test_canary_header_value_and_pattern_weight_total():
    main = ing("main", [("h.io", [("/", "Prefix", "a")])])
    can = ing("can", [("h.io", [("/", "Prefix", "b")])],
              ann=canary(weight=5, total=1000, header="X-V", value="v2.beta"))
    cfg, maps, _ = C.render(inputs([main, can]))
    assert "{ req.hdr(X-V) -m str 'v2.beta' }" in cfg
    assert "never" not in cfg  # with a value, other values fall through to cookie/weight
    assert " 5000\n" in maps["weights.map"]  # 5 of 1000 = 0.5 %
    can2 = ing("can", [("h.io", [("/", "Prefix", "b")])], ann=canary(header="X-V", pattern="^v[23]$"))
    cfg, _, _ = C.render(inputs([main, can2]))
    assert "{ req.hdr(X-V) -m reg '^v[23]$' }" in cfg


def test_canary_without_main_or_with_bad_fields_is_reported_not_rendered():
    can = ing("can", [("h.io", [("/", "Prefix", "b")])], ann=canary(weight=50))
    p = C.build(inputs([can]))
    assert not p.routes and any("no main Ingress" in e for _, e in p.errors)
    main = ing("main", [("h.io", [("/", "Prefix", "a")])])
    for bad in (canary(header="X-A }\nbackend"), canary(header="X", value="a\nb"), canary(cookie="c;d"),
                canary(header="X", value="it's \"v2\""), canary(header="X", pattern="^a' }"),
                canary(header="X", pattern="(unclosed"), canary(weight="abc")):
        p = C.build(inputs([main, ing("can", [("h.io", [("/", "Prefix", "b")])], ann=bad)]))
        assert p.errors and not any(r.canary for r in p.routes.values()), bad


def test_snippet_annotations_refuse_the_ingress():
    bad = ing("snip", [("h.io", [("/", "Prefix", "a")])],
              ann={I.NGINX_PREFIX + "configuration-snippet": "lua_code {}", I.NGINX_PREFIX + "server-snippet": "x"})
    p = C.build(inputs([bad]))
    cfg, maps, _ = C.render_plan(p)
    assert "lua_code" not in cfg and not p.routes
    assert p.errors and "snippet annotations are refused" in p.errors[0][1]


@pytest.mark.parametrize("path", ["/a b", "/a\nbackend x", "/a\"b", "/a#b", "/a?b", "/a\\b", "a/b", "/a\tb", "/a'\n"])
def test_paths_that_could_inject_are_refused(path):
    p = C.build(inputs([ing("i", [("h.io", [(path, "Prefix", "a"), ("/ok", "Exact", "a")])])]))
    cfg, maps, _ = C.render_plan(p)
    assert list(p.exact) == ["h.io/ok"] and not p.prefix
    assert any("invalid path" in e for _, e in p.errors)
    for text in (cfg, *maps.values()):
        assert "backend x" not in text and all(len(ln.split()) == 2 for ln in maps["exact.map"].splitlines())


@pytest.mark.parametrize("host", ["h.io\nx", "h io", "H.IO", "a..b", "*.*.b", "h.io:80", "*"])
def test_hosts_that_could_inject_are_refused(host):
    p = C.build(inputs([ing("i", [(host, [("/", "Prefix", "a")])])]))
    assert not p.exact and any("invalid host" in e for _, e in p.errors)


def test_quote_is_one_word_and_refuses_control_characters():
    assert C.quote("a'b") == "'a'\\''b'"
    with pytest.raises(ValueError):
        C.quote("a\nb")


def tls_secret(name, host):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pem = C.self_signed_pem(host)
    crt = pem[:pem.index(b"-----END CERTIFICATE-----") + 26]
    key = pem[len(crt):].lstrip()
    x509.load_pem_x509_certificate(crt)
    serialization.load_pem_private_key(key, None)
    return {"metadata": {"name": name, "namespace": NS}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(key).decode()}}


def test_tls_sni_cert_per_host_and_redirect():
    s = tls_secret("h-tls", "h.io")
    i = ing("i", [("h.io", [("/", "Prefix", "a")]), ("plain.io", [("/", "Prefix", "a")])],
            tls=[{"hosts": ["h.io"], "secretName": "h-tls"}])
    cfg, maps, certs = C.render(inputs([i], secrets=[s]))
    assert maps["crt-list.txt"] == "certs/default_h-tls.pem h.io\n"
    assert maps["redirect.map"] == "h.io 1\n"
    assert certs["default.pem"] == DEFAULT_PEM and b"PRIVATE KEY" in certs["certs/default_h-tls.pem"]
    assert "ssl crt default.pem crt-list crt-list.txt" in cfg and "code 308" in cfg
    off = ing("i", i["spec"]["rules"] and [("h.io", [("/", "Prefix", "a")])],
              tls=[{"hosts": ["h.io"], "secretName": "h-tls"}], ann={I.NGINX_PREFIX + "ssl-redirect": "false"})
    assert C.render(inputs([off], secrets=[s]))[1]["redirect.map"] == ""


def test_bad_tls_secret_is_reported_without_key_material():
    s = tls_secret("h-tls", "h.io")
    other_key = tls_secret("o", "o.io")["data"]["tls.key"]
    s["data"]["tls.key"] = other_key
    p = C.build(inputs([ing("i", [("h.io", [("/", "Prefix", "a")])], tls=[{"hosts": ["h.io"], "secretName": "h-tls"}])],
                       secrets=[s]))
    assert not p.certs and not p.redirect_hosts
    assert any("does not match" in e for _, e in p.errors)
    assert "PRIVATE" not in repr(p.errors) and other_key[:20] not in repr(p.errors)


def test_runtime_commands_endpoints_and_weights_without_reload():
    main = ing("main", [("h.io", [("/", "Prefix", "a")])])
    can = ing("can", [("h.io", [("/", "Prefix", "b")])], ann=canary(weight=10))
    old = C.build(inputs([main, can], slices=[eps("a", ["10.0.0.1", "10.0.0.5"]), eps("b", ["10.0.0.2"])]))
    can["metadata"]["annotations"][I.NGINX_PREFIX + "canary-weight"] = "30"
    new = C.build(inputs([main, can], slices=[eps("a", ["10.0.0.5", "10.0.0.7"]), eps("b", [])]), previous=old)
    cmds = C.runtime_commands(old, new)
    rid = new.prefix["h.io/"]
    a, b = new.backend_of("default_a_80").name, new.backend_of("default_b_80").name
    assert cmds == [f"set server {a}/s1 addr 10.0.0.7 port 8080",  # 10.0.0.5 keeps its slot s2
                    f"set map weights.map {rid} 300000",
                    f"set server {b}/s1 state maint"]  # servers leave last: the maps no longer send them requests
    # the rendered file matches what the runtime now holds
    cfg, _, _ = C.render_plan(new)
    assert "server s1 10.0.0.7:8080\n    server s2 10.0.0.5:8080" in cfg
    grown = C.build(inputs([main, can], slices=[eps("a", [f"10.0.1.{n}" for n in range(9)])]), previous=new)
    assert C.runtime_commands(new, grown) is None  # outgrew the slots: reload
    moved = C.build(inputs([main, ing("x", [("x.io", [("/", "Prefix", "c")])])]), previous=new)
    assert C.runtime_commands(new, moved) is None  # the canary route went: its rules are configuration


def test_new_services_and_moved_paths_take_spare_backends_without_reload():
    """A path that moves to another Service, and a new Service behind a new host, change maps and server
    addresses only; the pool grows (a reload) only when its spares run out, and then tops them up."""
    first = C.build(inputs([ing("web", [("h.io", [("/", "Prefix", "a")])])], slices=[eps("a", ["10.0.0.1"])]))
    assert len(first.backends) == 1 + C.MIN_SPARES
    a = first.backend_of("default_a_80").name
    moved = C.build(inputs([ing("web", [("h.io", [("/", "Prefix", "b")])])],
                           slices=[eps("a", ["10.0.0.1"]), eps("b", ["10.0.0.2"])]), previous=first)
    cmds = C.runtime_commands(first, moved)
    b = moved.backend_of("default_b_80").name
    assert b != a and moved.backend_of("default_a_80") is None and moved.backends[a].ready == []
    rid = moved.prefix["h.io/"]
    assert f"set server {b}/s1 addr 10.0.0.2 port 8080" in cmds and f"set server {b}/s1 state ready" in cmds
    assert f"set server {a}/s1 state maint" in cmds
    switched = next(i for i, c in enumerate(cmds) if c.startswith(("set map backends.map", "add map backends.map")))
    assert cmds.index(f"set server {b}/s1 state ready") < switched < cmds.index(f"set server {a}/s1 state maint")
    # a route is in backends.map before the path's map entry names it, and leaves after
    named = [i for i, c in enumerate(cmds) if c.startswith(("set map prefix.map", "set map exact.map"))]
    assert named and switched < min(named)
    gone = [i for i, c in enumerate(cmds) if c.startswith("del map backends.map")]
    assert all(g > max(named) for g in gone)
    assert any(c.startswith("set map backends.map ") and c.endswith(f" {b}") or c == f"add map backends.map {rid} {b}"
               for c in cmds)
    assert route_of(moved, "h.io", "/x") == "default_b_80"
    # new hosts with new Services until the spares are used up: no reload; then one reload grows the pool
    plan, ings, slices = moved, [ing("web", [("h.io", [("/", "Prefix", "b")])])], [eps("b", ["10.0.0.2"])]
    services = [svc("b")]
    for n in range(C.MIN_SPARES + 1):  # the spares, and the backend "a" left
        ings.append(ing(f"n{n}", [(f"n{n}.io", [("/", "Prefix", f"s{n}")])]))
        slices.append(eps(f"s{n}", [f"10.0.1.{n}"]))
        services.append(svc(f"s{n}"))
        nxt = C.build(inputs(list(ings), services=list(services), slices=list(slices)), previous=plan)
        assert not nxt.errors
        grew = C.runtime_commands(plan, nxt) is None
        assert grew == (n == C.MIN_SPARES), n  # the last one needs more than the pool has
        assert route_of(nxt, f"n{n}.io", "/") == f"default_s{n}_80"
        plan = nxt
    used = sum(1 for x in plan.backends.values() if x.service)
    assert len(plan.backends) - used >= C.MIN_SPARES


@pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy not installed")
def test_rendered_config_with_hostile_values_passes_haproxy_check(tmp_path):
    s = tls_secret("h-tls", "h.io")
    main = ing("main", [("h.io", [("/", "Prefix", "a"), ("/x;y'z", "Exact", "b")]), ("*.w.io", [("/", "Prefix", "c")]),
                        ("", [("/", "Prefix", "a")])], tls=[{"hosts": ["h.io", "*.w.io"], "secretName": "h-tls"}],
               default="c")
    can = ing("can", [("h.io", [("/", "Prefix", "b")])],
              ann=canary(weight=20, header="X-C", pattern="^a}{b|(c){2}$", cookie="c"))
    cfg, maps, certs = C.render(inputs([main, can], secrets=[s], state_dir=str(tmp_path), http_port=18081,
                                       https_port=18444))
    assert "-m reg " + C.quote("^a}{b|(c){2}$") + " }" in cfg and "x;y'z" in maps["exact.map"]
    for name, text in {"haproxy.cfg": cfg, **maps}.items():
        (tmp_path / name).write_text(text)
    for name, data in certs.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(data)
    r = subprocess.run(["haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout


def test_malformed_service_port_and_operator_settings_never_reach_the_config():
    bad = svc("a")
    bad["spec"]["ports"][0]["port"] = "80\nbackend x"
    bad["spec"]["ports"][0]["name"] = "web"
    i = ing("i", [("h.io", [("/", "Prefix", "a")])])
    i["spec"]["rules"][0]["http"]["paths"][0]["backend"] = backend("a", "web")
    p = C.build(inputs([i], services=[bad]))
    assert not any(b.service for b in p.backends.values()) and any("invalid port" in e for _, e in p.errors)
    with pytest.raises(ValueError):
        C.render(inputs([], bind_address="0.0.0.0:80\nx"))
    with pytest.raises(ValueError):
        C.render(inputs([], https_port="443 ssl crt /etc/x"))
